// veil serve MODEL.veil [MORE.veil ...]: the model server (docs/serve.md) until
// SIGINT or SIGTERM. It prints the address it listens on (one line on stdout, so a
// script can read the port chosen with --port 0) and never reads a secret key.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "commands.hpp"
#include "common.hpp"
#include "veil/serve/server.hpp"

namespace veil::cli {

namespace {

struct ServeArgs {
  std::vector<std::string> models;
  std::string host = "127.0.0.1", backend = "cpu", key_store, tls_cert, tls_key, replay = "auto";
  int port = 8080;
  size_t threads = 0, max_sessions = 1000, max_inflight = 0;
  double max_body_mb = 256, session_ttl = 3600, timeout = 60;
  bool allow_insecure = false;
  Verbosity verbosity;
};

std::string default_store() {
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return std::string(x) + "/veil/sessions";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.local/state/veil/sessions";
  return "veil-sessions";
}

void run_serve(const ServeArgs& a) {
  std::vector<nn::ModelFile> models;
  for (const auto& path : a.models) {
    if (!a.allow_insecure) {
      models.push_back(load_model(path));
      continue;
    }
    SerializationLimits limits;  // only this flag lets testing-only parameters load
    limits.allow_insecure_parameters = true;
    models.push_back(nn::read_model_file(path, limits));
  }
  serve::ServerOptions o;
  o.host = a.host;
  o.port = a.port;
  o.threads = a.threads ? a.threads : std::max(1u, std::thread::hardware_concurrency());
  o.backend = parse_backend(a.backend);
  o.max_body_bytes = static_cast<size_t>(a.max_body_mb * 1024 * 1024);
  o.max_sessions = a.max_sessions;
  o.max_inflight = a.max_inflight ? a.max_inflight : o.threads;
  o.session_ttl = std::chrono::seconds(static_cast<int64_t>(a.session_ttl));
  o.io_timeout = std::chrono::seconds(static_cast<int64_t>(a.timeout));
  o.allow_insecure_parameters = a.allow_insecure;
  o.replay = a.replay == "always"  ? serve::ServerOptions::Replay::Always
             : a.replay == "never" ? serve::ServerOptions::Replay::Never
                                   : serve::ServerOptions::Replay::Auto;
  o.tls_cert = a.tls_cert;
  o.tls_key = a.tls_key;
  const std::string store_spec = a.key_store.empty() ? default_store() : a.key_store;
  auto store = serve::open_key_store(store_spec);
  // Block the signals here, so that only the waiting thread below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  serve::ModelServer server(std::move(models), store, o);
  server.start();
  std::printf("veil serve: listening on %s://%s:%d (%zu model(s), key store %s, %zu threads)\n",
              a.tls_cert.empty() ? "http" : "https", a.host.c_str(), server.port(), a.models.size(),
              store->describe().c_str(), o.threads);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  progress(a.verbosity, std::string("stopping (") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + ")");
  server.stop();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* sub = app.add_subcommand("serve", "Serve compiled models over HTTP(S) until SIGINT/SIGTERM (docs/serve.md)");
  sub->add_option("models", a->models, "Model files (from veil compile)")->required()->check(CLI::ExistingFile);
  sub->add_option("--host", a->host, "Address to listen on (127.0.0.1: this machine only)")->capture_default_str();
  sub->add_option("--port", a->port, "Port (0: any free one, printed at start)")->capture_default_str()
      ->check(CLI::Range(0, 65535));
  sub->add_option("--threads", a->threads, "HTTP worker threads (default: the cores; each inference gets cores / threads OpenMP threads)");
  sub->add_option("--backend", a->backend, "cpu, cuda or auto")->capture_default_str();
  sub->add_option("--key-store", a->key_store,
                  "Where sessions' evaluation keys live: a directory, or redis://HOST:PORT[/PREFIX] shared by "
                  "several servers (default: $XDG_STATE_HOME/veil/sessions)");
  sub->add_option("--max-body-mb", a->max_body_mb, "Largest request body")->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-sessions", a->max_sessions, "Sessions the key store may hold")->capture_default_str();
  sub->add_option("--max-inflight", a->max_inflight, "Concurrent inferences; more get 503 (default: --threads)");
  sub->add_option("--session-ttl", a->session_ttl, "Seconds a session lives")->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--timeout", a->timeout, "Seconds to read a request or write a response")->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--replay", a->replay,
                  "auto: on cuda, record each session's first inference and replay it as one CUDA graph "
                  "launch after; always: on every backend (cpu: nothing saved, for tests); never")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "always", "never"}));
  sub->add_option("--tls-cert", a->tls_cert, "PEM certificate (chain): serve HTTPS")->check(CLI::ExistingFile);
  sub->add_option("--tls-key", a->tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  sub->add_flag("--allow-insecure-parameters", a->allow_insecure,
                "Serve models whose parameters are below the 128-bit bound (testing only)");
  add_verbosity(*sub, a->verbosity);
  add_footer(*sub);
  sub->callback([a] { run_serve(*a); });
}

}  // namespace veil::cli
