// Kernel launches per CKKS operation on the cuda backend, counted in the simulator
// (no GPU needed): launches, blocks per launch, threads per block. At small N every
// launch costs a few microseconds of latency however little it does, so these
// counts bound how fast an operation can be there. Timings mean nothing here.
//
//   make -f tools/cuda_sim/Makefile census ROOT=$PWD OUT=$PWD/build-cudasim
//   VEIL_SIM_THREADS=1 build-cudasim/census   # element-wise grids; the counts do not change
//
// (With VEIL_SIM_THREADS=1 the NTT and key-switching kernels compute garbage, but
// they are launched the same way, so the census is the same; it is several times faster.)
#include <cuda_runtime.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <vector>
#include <string>

#include "veil/nn/convnet.hpp"
#include "veil/nn/model.hpp"
#include "veil/veil.hpp"

namespace {

using namespace veil;

void census(const std::string& what, const Context& ctx, const std::function<void()>& op) {
  ctx.backend().synchronize();
  sim_detail::reset_launch_tally();
  op();
  ctx.backend().synchronize();
  unsigned long long launches = 0, min_blocks = ~0ull;
  std::string kernels;
  for (const auto& t : sim_detail::launch_tally()) {
    launches += t.launches;
    const unsigned long long per = t.blocks / t.launches;
    min_blocks = std::min(min_blocks, per);
    kernels += "  " + std::string(t.kernel) + " x" + std::to_string(t.launches) + " (" + std::to_string(per) +
               " blocks of " + std::to_string(t.threads_per_block) + ")";
  }
  std::printf("%-28s %5llu launches, fewest blocks %4llu |%s\n", what.c_str(), launches,
              launches ? min_blocks : 0, kernels.c_str());
}

void operations(uint32_t log_n) {
  const Parameters params = Parameters::preset(log_n);
  auto ctx = Context::create(params, BackendKind::Cuda);
  KeyGenerator keygen(ctx, RandomSource::insecure_deterministic(1));
  const PublicKey pk = keygen.create_public_key();
  const RelinKey rk = keygen.create_relin_key();
  const GaloisKeys gk = keygen.create_galois_keys({1}, false);
  Encoder encoder(ctx);
  Encryptor pk_enc(ctx, pk), sk_enc(ctx, keygen.secret_key());
  Decryptor dec(ctx, keygen.secret_key());
  Evaluator eval(ctx);
  std::vector<double> values(params.slots(), 0.25);
  Plaintext pt = encoder.encode(values);
  Ciphertext a = pk_enc.encrypt(pt), b = pk_enc.encrypt(pt);
  Ciphertext prod = eval.multiply(a, b, rk);
  std::printf("\nN = 2^%u, %u q limbs, dnum %u (Parameters::preset)\n", log_n, params.max_level() + 1, params.dnum());
  census("encode", *ctx, [&] { encoder.encode(values); });
  census("encrypt (public key)", *ctx, [&] { pk_enc.encrypt(pt); });
  census("encrypt (secret key)", *ctx, [&] { sk_enc.encrypt(pt); });
  census("add", *ctx, [&] { eval.add(a, b); });
  census("multiply (no relin)", *ctx, [&] { eval.multiply_no_relin(a, b); });
  census("multiply + relinearize", *ctx, [&] { eval.multiply(a, b, rk); });
  census("rescale", *ctx, [&] { eval.rescale(prod); });
  census("multiply + relinearize + rescale", *ctx,
         [&] { eval.relinearize_rescale(eval.multiply_no_relin(a, b), rk); });
  census("rotate 1", *ctx, [&] { eval.rotate(a, 1, gk); });
  census("decrypt", *ctx, [&] { dec.decrypt(a); });
}

void convnet(const std::string& data) {
  const auto weights = nn::load_convnet_weights(data + "/convnet_digits.weights");
  const auto set = nn::load_convnet_test_set(data, 64);
  auto ctx = Context::create(nn::convnet_parameters(13), BackendKind::Cuda);
  KeyGenerator keygen(ctx, RandomSource::insecure_deterministic(1));
  const PublicKey pk = keygen.create_public_key();
  const RelinKey rk = keygen.create_relin_key();
  nn::CompiledModel model(ctx, nn::convnet_model(weights));
  const GaloisKeys gk = keygen.create_galois_keys(model.rotation_steps(), false);
  Encoder encoder(ctx);
  Encryptor enc(ctx, pk);
  Evaluator eval(ctx);
  std::vector<Ciphertext> in;
  for (const auto& slots : model.encode(set.images)) in.push_back(enc.encrypt(encoder.encode(slots)));
  std::printf("\nThe digits ConvNet (convnet_parameters(13), %zu images per run, %zu input ciphertexts)\n",
              model.batch(), in.size());
  census("CompiledModel::run", *ctx, [&] { model.run(eval, in, rk, gk); });
  // Recorded once, each run is one graph launch between two copy launches (all inputs
  // in, all outputs out): the host's part no longer grows with the kernels.
  RecordedComputation recorded([&](const std::vector<Ciphertext>& x) { return model.run(eval, x, rk, gk); }, in);
  census("RecordedComputation::run", *ctx, [&] { recorded.run(in); });  // the kernels the replay runs
  std::printf("%-28s host: 2 copy launches + 1 cudaGraphLaunch of %zu nodes\n", "  (what the host issues)",
              recorded.operations());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string data =
      argc > 1 ? argv[1] : (std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "tests" / "data").string();
  for (uint32_t log_n : {13u, 16u}) operations(log_n);
  convnet(data);
}
