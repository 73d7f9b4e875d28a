// veil eval MODEL.veil --keys KEYDIR -i QUERY.bin -o ANSWER.bin: the server's step.
// It reads the evaluation keys only (relin.key, galois.key), never secret.key or
// public.key, runs the compiled model on each run of the query's ciphertexts and
// writes the output ciphertexts back to back (+ ANSWER.bin.json).
#include <chrono>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "common.hpp"

namespace veil::cli {

namespace {

struct EvalArgs {
  std::string model, keydir, input, output, backend = "auto";
  int threads = 0;
  Verbosity verbosity;
};

void run_eval(const EvalArgs& a) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  if (a.threads > 0) set_cpu_threads(a.threads);
  const nn::ModelFile m = load_model(a.model);
  auto ctx = Context::create(m.params, parse_backend(a.backend));
  const nn::CompiledModel plan(ctx, m.model, m.options);
  const Verbosity& v = a.verbosity;

  // The query first: a wrong file fails before the (larger) keys are read.
  const Bytes query = read_file(
      a.input, "query", "make one with `veil encrypt " + a.model + " --keys KEYDIR -i INPUTS -o " + a.input + "`");
  const auto blobs = split_blobs(query, a.input);
  const size_t per_run = plan.input_ciphertexts();
  if (blobs.empty() || blobs.size() % per_run != 0)
    bad_input(a.input + " holds " + std::to_string(blobs.size()) + " ciphertext(s); model " + m.name + " takes " +
              std::to_string(per_run) + " per run: was it encrypted for another model?");
  const size_t runs = blobs.size() / per_run;
  std::optional<uint64_t> inputs;
  const std::string sidecar_path = a.input + ".json";
  if (const auto side = read_sidecar(sidecar_path)) {
    const auto name = side->find("model");
    if (name != side->end() && name->second != m.name)
      bad_input(a.input + " was encrypted for model " + name->second + ", not " + m.name + " (" + sidecar_path + ")");
    if (json_uint(*side, "runs", sidecar_path) != runs ||
        json_uint(*side, "ciphertexts_per_run", sidecar_path) != per_run)
      bad_input(sidecar_path + " does not describe " + a.input + " (" + std::to_string(runs) + " run(s) of " +
                std::to_string(per_run) + " ciphertext(s)); the files do not belong together");
    inputs = json_uint(*side, "inputs", sidecar_path);
    if (*inputs > runs * plan.batch() || *inputs + plan.batch() <= runs * plan.batch())
      bad_input(sidecar_path + ": " + std::to_string(*inputs) + " inputs do not fit " + std::to_string(runs) +
                " run(s) of " + std::to_string(plan.batch()));
  }
  for (size_t i = 0; i < blobs.size(); ++i)
    check_fingerprint(blobs[i], m.params, a.input + " (ciphertext " + std::to_string(i) + ")",
                      "it was encrypted for another model");

  const RelinKey rk = deserialize_relin_key(ctx, read_key(a.keydir, "relin.key", a.model, m.params, true));
  const GaloisKeys gk = deserialize_galois_keys(ctx, read_key(a.keydir, "galois.key", a.model, m.params, true));
  progress(v, "model " + m.name + " on the " + ctx->backend().name() + " backend: " + std::to_string(runs) +
                  " run(s) of " + std::to_string(per_run) + " ciphertext(s), keys loaded in " +
                  format_double(std::chrono::duration<double>(clock::now() - t0).count(), "%.1f") + " s");

  Evaluator eval(ctx);
  AtomicFile out(a.output);
  double run_seconds = 0;
  for (size_t r = 0; r < runs; ++r) {
    std::vector<Ciphertext> cts;
    cts.reserve(per_run);
    for (size_t k = 0; k < per_run; ++k) {
      try {
        cts.push_back(deserialize_ciphertext(ctx, blobs[r * per_run + k]));
      } catch (const Error& e) {
        bad_input(a.input + ": ciphertext " + std::to_string(r * per_run + k) + ": " + e.what());
      }
    }
    const auto t = clock::now();
    std::vector<Ciphertext> outputs;
    try {
      outputs = plan.run(eval, cts, rk, gk);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::MissingKey)
        bad_input(std::string(e.what()) + "; " + join_path(a.keydir, "galois.key") +
                  " lacks a rotation the model needs: make the keys with `veil keygen " + a.model + "`");
      throw;
    }
    ctx->backend().synchronize();
    const double s = std::chrono::duration<double>(clock::now() - t).count();
    run_seconds += s;
    for (const Ciphertext& ct : outputs) out.write(serialize(ct));
    progress(v, "  run " + std::to_string(r + 1) + "/" + std::to_string(runs) + ": " + format_double(s * 1e3, "%.0f") +
                    " ms");
  }
  out.commit();
  std::string side = "{\"model\": " + json_string(m.name);
  if (inputs) side += ", \"inputs\": " + std::to_string(*inputs);
  side += ", \"runs\": " + std::to_string(runs) +
          ", \"ciphertexts_per_run\": " + std::to_string(plan.output_ciphertexts()) + ", \"format\": 1}\n";
  write_text_atomic(a.output + ".json", side);
  progress(v, "wrote " + a.output + " (" + format_bytes(out.bytes_written()) + "); evaluation " +
                  format_double(run_seconds, "%.2f") + " s, total " +
                  format_double(std::chrono::duration<double>(clock::now() - t0).count(), "%.2f") + " s");
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand(
      "eval", "Evaluate the model on an encrypted query (server side): reads relin.key and galois.key only");
  sub->add_option("model", args->model, "Model file (from veil compile)")->required();
  sub->add_option("--keys", args->keydir, "Directory with the client's relin.key and galois.key")->required();
  sub->add_option("-i,--input", args->input, "Query (from veil encrypt)")->required();
  sub->add_option("-o,--output", args->output, "Answer file to write (ANSWER.bin)")->required();
  sub->add_option("--backend", args->backend, "cpu, cuda, or auto (cuda when a device is usable)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  sub->add_option("--threads", args->threads, "OpenMP threads of the cpu backend (default: OMP_NUM_THREADS or all)")
      ->check(CLI::Range(1, 1024));
  add_verbosity(*sub, args->verbosity);
  add_footer(*sub);
  sub->callback([args] { run_eval(*args); });
}

}  // namespace veil::cli
