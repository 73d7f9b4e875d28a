// veil-demo: encrypt a vector, multiply, rotate, decrypt, and print the
// precision against plain double-precision evaluation.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

#include "veil/veil.hpp"

namespace {
double precision_bits(const std::vector<double>& want, const std::vector<double>& got, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::fabs(want[i] - got[i]);
  return -std::log2(sum / static_cast<double>(n));
}
}  // namespace

int main() {
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  try {
    auto params = veil::Parameters::preset(14);
    std::printf("Veil demo: %s\n", params.describe().c_str());
    auto t0 = clock::now();
    auto ctx = veil::Context::create(params, veil::BackendKind::Cpu);
    veil::KeyGenerator keygen(ctx);
    auto pk = keygen.create_public_key();
    auto rk = keygen.create_relin_key();
    auto gk = keygen.create_galois_keys({1, 5}, false);
    auto t1 = clock::now();
    std::printf("context + keys: %.1f ms (backend: %s)\n", ms(t0, t1), ctx->backend().name().c_str());

    const size_t slots = params.slots();
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> dist(-1, 1);
    std::vector<double> x(slots), y(slots);
    for (auto& v : x) v = dist(rng);
    for (auto& v : y) v = dist(rng);

    veil::Encoder encoder(ctx);
    veil::Encryptor encryptor(ctx, pk);
    veil::Decryptor decryptor(ctx, keygen.secret_key());
    veil::Evaluator eval(ctx);

    auto t2 = clock::now();
    auto cx = encryptor.encrypt(encoder.encode(x));
    auto cy = encryptor.encrypt(encoder.encode(y));
    auto t3 = clock::now();
    auto prod = eval.rescale(eval.multiply(cx, cy, rk));
    auto t4 = clock::now();
    auto rot = eval.rotate(prod, 5, gk);
    auto t5 = clock::now();
    auto out = encoder.decode(decryptor.decrypt(rot));
    auto t6 = clock::now();

    std::vector<double> want(slots);
    for (size_t i = 0; i < slots; ++i) want[i] = x[(i + 5) % slots] * y[(i + 5) % slots];
    std::printf("encrypt x2: %.2f ms, multiply+relin+rescale: %.2f ms, rotate: %.2f ms, decrypt+decode: %.2f ms\n",
                ms(t2, t3), ms(t3, t4), ms(t4, t5), ms(t5, t6));
    std::printf("slot 0..3: ");
    for (int i = 0; i < 4; ++i) std::printf("%+.6f (want %+.6f)  ", out[i], want[i]);
    std::printf("\nmean precision of rotate(x * y, 5): %.1f bits over %zu slots\n",
                precision_bits(want, out, slots), slots);
    return 0;
  } catch (const veil::Error& e) {
    std::fprintf(stderr, "veil error: %s\n", e.what());
    return 1;
  }
}
