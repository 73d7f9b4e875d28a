// veil keygen MODEL.veil -o KEYDIR: the client's keys for one model. KEYDIR (0700)
// gets secret.key (0600, created exclusively: never overwritten without --force),
// public.key, relin.key and galois.key (only the rotations the model uses). The
// server needs relin.key and galois.key; secret.key never leaves the client.
#include <string.h>

#include <chrono>
#include <memory>

#include "commands.hpp"
#include "common.hpp"

namespace veil::cli {

namespace {

struct KeygenArgs {
  std::string model, keydir;
  bool force = false;
  Verbosity verbosity;
};

void run_keygen(const KeygenArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const nn::ModelFile m = load_model(a.model);
  const std::string secret_path = join_path(a.keydir, "secret.key");
  make_private_dir(a.keydir);
  if (!a.force && file_exists(secret_path))
    bad_input(secret_path +
              " exists; pass --force to replace it (queries encrypted under the old key can then no "
              "longer be decrypted) or choose another directory");
  auto ctx = Context::create(m.params, BackendKind::Cpu);
  const nn::CompiledModel plan(ctx, m.model, m.options);
  const auto steps = plan.rotation_steps();
  KeyGenerator keygen(ctx);
  {
    Bytes sk = serialize_secret_key(keygen.secret_key());
    try {
      write_file_exclusive(secret_path, sk, a.force);
    } catch (...) {
      explicit_bzero(sk.data(), sk.size());
      throw;
    }
    explicit_bzero(sk.data(), sk.size());
  }
  const Verbosity& v = a.verbosity;
  auto write_key = [&](const std::string& name, const Bytes& bytes) {
    write_file_atomic(join_path(a.keydir, name), {ByteView(bytes)});
    progress(v, "  " + name + ": " + format_bytes(bytes.size()));
  };
  progress(v, "keys for model " + m.name + " (N = " + std::to_string(m.params.n()) + ") in " + a.keydir + ":");
  progress(v, "  secret.key: keep it; it never leaves this machine");
  write_key("public.key", serialize(keygen.create_public_key()));
  write_key("relin.key", serialize(keygen.create_relin_key()));
  write_key("galois.key", serialize(keygen.create_galois_keys(steps, false)));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress(v, "  (" + std::to_string(steps.size()) + " rotation keys, " + format_double(s, "%.1f") +
                  " s) the server needs relin.key and galois.key only");
}

}  // namespace

void add_keygen_command(CLI::App& app) {
  auto args = std::make_shared<KeygenArgs>();
  CLI::App* sub = app.add_subcommand(
      "keygen",
      "Make the client's keys for a model: secret.key (private, 0600), public.key, and the evaluation keys "
      "relin.key and galois.key for the server");
  sub->add_option("model", args->model, "Model file (from veil compile)")->required();
  sub->add_option("-o,--output", args->keydir, "Key directory to create or fill (mode 0700)")->required();
  sub->add_flag("--force", args->force, "Replace an existing secret.key");
  add_verbosity(*sub, args->verbosity);
  add_footer(*sub);
  sub->callback([args] { run_keygen(*args); });
}

}  // namespace veil::cli
