// Encrypts, adds and decrypts through the installed headers and library.
#include <cmath>
#include <cstdio>
#include <vector>

#include "veil/veil.hpp"

int main() {
  auto ctx = veil::Context::create(veil::Parameters::preset(13));
  veil::KeyGenerator keygen(ctx);
  veil::Encoder encoder(ctx);
  veil::Encryptor encryptor(ctx, keygen.create_public_key());
  veil::Decryptor decryptor(ctx, keygen.secret_key());
  veil::Evaluator eval(ctx);
  std::vector<double> x{0.5, -0.25, 0.125};
  auto ct = encryptor.encrypt(encoder.encode(x));
  auto out = encoder.decode(decryptor.decrypt(eval.add(ct, ct)));
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::fabs(out[i] - 2 * x[i]) > 1e-6) {
      std::printf("consumer: slot %zu wrong: %f\n", i, out[i]);
      return 1;
    }
  }
  std::printf("consumer: OK\n");
  return 0;
}
