// veil bench MODEL.veil: what one query of this model costs on this machine, step by
// step, in process (no files, no network): key generation, encoding + encryption of a
// full batch of random inputs in the model's range, the server's evaluation, and
// decryption + decoding; the median of --runs for each repeated step, the upload and
// download sizes, and the precision of those runs against float64.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include "commands.hpp"
#include "common.hpp"
#include "veil/nn/compile.hpp"

namespace veil::cli {

namespace {

struct BenchArgs {
  std::string model, backend = "auto";
  int runs = 3, threads = 0;
  bool json = false;
  Verbosity verbosity;
};

using clock_type = std::chrono::steady_clock;
double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_bench(const BenchArgs& a) {
  if (a.threads > 0) set_cpu_threads(a.threads);
  const nn::ModelFile m = load_model(a.model);
  auto ctx = Context::create(m.params, parse_backend(a.backend));
  const nn::CompiledModel plan(ctx, m.model, m.options);
  progress(a.verbosity, "model " + m.name + ", N = " + std::to_string(m.params.n()) + ", " + ctx->backend().name() +
                            " backend, " + std::to_string(a.runs) + " run(s)");
  auto t = clock_type::now();
  KeyGenerator keygen(ctx);
  const RelinKey rk = keygen.create_relin_key();
  const GaloisKeys gk = keygen.create_galois_keys(plan.rotation_steps(), false);
  ctx->backend().synchronize();
  const double keygen_ms = ms_since(t);
  Encoder encoder(ctx);
  Encryptor encryptor(ctx, keygen.secret_key());
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator eval(ctx);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> dist(m.input_min, m.input_max);
  std::vector<std::vector<double>> images(plan.batch(), std::vector<double>(m.model.input_size()));
  for (auto& img : images)
    for (auto& v : img) v = m.input_max > m.input_min ? dist(rng) : m.input_min;
  std::vector<double> enc_ms, eval_ms, dec_ms;
  double max_err = 0, max_ref = 0;
  for (int r = 0; r < a.runs; ++r) {
    t = clock_type::now();
    std::vector<Ciphertext> in;
    for (const auto& slots : plan.encode(images))
      in.push_back(encryptor.encrypt(encoder.encode(slots, plan.input_scale(), static_cast<int>(plan.input_level()))));
    ctx->backend().synchronize();
    enc_ms.push_back(ms_since(t));
    t = clock_type::now();
    const auto out = plan.run(eval, in, rk, gk);
    ctx->backend().synchronize();
    eval_ms.push_back(ms_since(t));
    t = clock_type::now();
    std::vector<std::vector<double>> decoded;
    for (const auto& ct : out) decoded.push_back(encoder.decode(decryptor.decrypt(ct)));
    const auto got = plan.decode(decoded, images.size());
    dec_ms.push_back(ms_since(t));
    for (size_t i = 0; i < images.size(); ++i) {
      const auto want = m.model.forward(images[i]);
      for (size_t f = 0; f < want.size(); ++f) {
        max_err = std::max(max_err, std::fabs(got[i][f] - want[f]));
        max_ref = std::max(max_ref, std::fabs(want[f]));
      }
    }
  }
  const auto cost = nn::query_cost(m);
  const double bits = -std::log2(std::max(max_err, 1e-300) / std::max(1.0, max_ref));
  const double per_image = median(eval_ms) / static_cast<double>(plan.batch());
  if (a.json) {
    std::printf("{\"model\": %s, \"backend\": %s, \"n\": %llu, \"batch\": %zu, \"runs\": %d, \"keygen_ms\": %.3f, "
                "\"encrypt_ms\": %.3f, \"eval_ms\": %.3f, \"decrypt_ms\": %.3f, \"eval_ms_per_input\": %.4f, "
                "\"upload_bytes\": %llu, \"download_bytes\": %llu, \"precision_bits\": %.2f}\n",
                json_string(m.name).c_str(), json_string(ctx->backend().name()).c_str(),
                static_cast<unsigned long long>(m.params.n()), plan.batch(), a.runs, keygen_ms, median(enc_ms),
                median(eval_ms), median(dec_ms), per_image, static_cast<unsigned long long>(cost.upload_bytes),
                static_cast<unsigned long long>(cost.download_bytes), bits);
    return;
  }
  std::printf("model %s, N = %llu, %zu input(s) per query, %s backend, median of %d run(s)\n", m.name.c_str(),
              static_cast<unsigned long long>(m.params.n()), plan.batch(), ctx->backend().name().c_str(), a.runs);
  std::printf("  key generation (client, once)   %10.1f ms  (%zu Galois keys)\n", keygen_ms, cost.galois_keys);
  std::printf("  encode + encrypt (client)       %10.1f ms  upload %s\n", median(enc_ms),
              format_bytes(cost.upload_bytes).c_str());
  std::printf("  evaluation (server)             %10.1f ms  %.3f ms per input\n", median(eval_ms), per_image);
  std::printf("  decrypt + decode (client)       %10.1f ms  download %s\n", median(dec_ms),
              format_bytes(cost.download_bytes).c_str());
  std::printf("  precision of these runs         %10.1f bits (promised %.1f)\n", bits, m.promised_bits);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand("bench", "Time one query of a model on this machine, step by step (in process)");
  sub->add_option("model", a->model, "Model file (from veil compile)")->required();
  sub->add_option("--runs", a->runs, "Repetitions of encrypt / eval / decrypt (median)")->capture_default_str()
      ->check(CLI::Range(1, 1000));
  sub->add_option("--backend", a->backend, "cpu, cuda, or auto")->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  sub->add_option("--threads", a->threads, "OpenMP threads of the cpu backend")->check(CLI::Range(1, 1024));
  sub->add_flag("--json", a->json, "One JSON object");
  add_verbosity(*sub, a->verbosity);
  add_footer(*sub);
  sub->callback([a] { run_bench(*a); });
}

}  // namespace veil::cli
