// veil: the command-line program. A model owner compiles an ONNX model into a model
// file (CKKS parameters chosen and checked by an encrypted dry run); a client makes
// keys, encrypts inputs and decrypts answers; a server evaluates queries with the
// client's evaluation keys only. Each subcommand lives in cmd_<name>.cpp; exit codes
// and file helpers in common.hpp.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>

#include "commands.hpp"
#include "common.hpp"

#ifndef VEIL_VERSION
#define VEIL_VERSION "unknown"
#endif

namespace {

std::string command_name(const CLI::App& app) {
  const auto subs = app.get_subcommands();
  return subs.empty() ? "veil" : "veil " + subs.front()->get_name();
}

}  // namespace

// A server's idle OpenMP threads must wait passively, not spin on the cores other
// requests need. libgomp reads OMP_WAIT_POLICY when it loads, so `veil serve` sets it
// and starts itself again (once; if that fails it carries on as it is).
void passive_openmp_for_serve(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "serve" || std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);
}

int main(int argc, char** argv) {
  using namespace veil::cli;
  passive_openmp_for_serve(argc, argv);
  CLI::App app{"veil: encrypted inference of neural networks with CKKS (Veil " VEIL_VERSION
               ").\n"
               "The server only ever sees ciphertexts and evaluation keys; only the client's secret key decrypts.",
               "veil"};
  app.set_version_flag("--version", "veil " VEIL_VERSION);
  app.require_subcommand(1);
  app.footer(std::string("Typical use:\n"
                         "  veil compile model.onnx -o model.veil --explain       (model owner)\n"
                         "  veil keygen model.veil -o keys                        (client)\n"
                         "  veil encrypt model.veil --keys keys -i x.npy -o query.bin\n"
                         "  veil eval model.veil --keys server-keys -i query.bin -o answer.bin\n"
                         "      (server: needs relin.key and galois.key only, never secret.key)\n"
                         "  veil decrypt model.veil --keys keys -i answer.bin -o y.npy --argmax\n"
                         "Or as a service:\n"
                         "  veil serve model.veil --port 8080                     (server)\n"
                         "  veil query -i x.npy --argmax http://127.0.0.1:8080     (client)\n\n") +
             kExitFooter);
  add_compile_command(app);
  add_info_command(app);
  add_keygen_command(app);
  add_encrypt_command(app);
  add_eval_command(app);
  add_decrypt_command(app);
  add_serve_command(app);
  add_query_command(app);
  add_bench_command(app);

  try {
    app.parse(argc, argv);
    return kOk;
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with code 0; every other parse error is a usage error.
    const int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  } catch (const CliError& e) {
    std::fprintf(stderr, "%s: %s\n", command_name(app).c_str(), e.what());
    return e.exit_code();
  } catch (const veil::Error& e) {
    std::fprintf(stderr, "%s: %s\n", command_name(app).c_str(), e.what());
    return e.code() == veil::ErrorCode::Backend ? kInternal : kBadInput;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: out of memory\n", command_name(app).c_str());
    return kInternal;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: internal error: %s\n", command_name(app).c_str(), e.what());
    return kInternal;
  }
}
