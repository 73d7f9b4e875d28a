// veil-serve-load: a bounded load generator for the model server, on loopback only.
//
//   veil-serve-load [--clients 1,4,16] [--requests 8] [--threads T] [--seconds 120]
//                   [--data DIR] [--json]
//
// It starts a ModelServer with the digits ConvNet (N = 2^13, 64 images per request)
// on a free 127.0.0.1 port, and for each client count runs that many clients at once,
// each with its own keys and session, each sending --requests inference requests of
// one full batch (pre-encrypted, so the timing is the server's: HTTP, deserialization,
// key-store reads, inference, serialization). It reports requests/s, p50/p95/p99
// latency and errors, beside the in-process time of the same inference
// (CompiledModel::run on the same ciphertexts, no HTTP), and the server's own overhead
// = p50 latency at one client / in-process time - 1. Every run stops after --seconds.
#include <httplib.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "veil/nn/convnet.hpp"
#include "veil/serve/server.hpp"
#include "veil/veil.hpp"

namespace {

using namespace veil;
using clock_type = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Options {
  std::vector<size_t> clients = {1, 4, 16};
  size_t requests = 8, threads = 0;
  double seconds = 120;
  std::string data = VEIL_DATA_DIR;
  bool json = false;
};

double ms_since(clock_type::time_point t) { return std::chrono::duration<double, std::milli>(clock_type::now() - t).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

std::string blobs(const std::vector<Bytes>& parts) {
  std::string s;
  for (const auto& b : parts) s.append(reinterpret_cast<const char*>(b.data()), b.size());
  return s;
}

// One client: its keys, its session body and one encrypted batch.
struct Client {
  std::string session_body, query;
};

Client make_client(const ContextPtr& ctx, const nn::CompiledModel& plan, const std::vector<std::vector<double>>& imgs) {
  KeyGenerator keygen(ctx);
  Encoder encoder(ctx);
  Encryptor enc(ctx, keygen.secret_key());
  Client c;
  c.session_body = blobs({serialize(keygen.create_relin_key()),
                          serialize(keygen.create_galois_keys(plan.rotation_steps(), false))});
  std::vector<Bytes> in;
  for (const auto& slots : plan.encode(imgs))
    in.push_back(serialize(enc.encrypt(encoder.encode(slots, plan.input_scale(), static_cast<int>(plan.input_level())))));
  c.query = blobs(in);
  return c;
}

struct Row {
  size_t clients = 0, ok = 0, errors = 0;
  double wall_s = 0, p50 = 0, p95 = 0, p99 = 0;
};

Row run_load(int port, const std::vector<Client>& clients, size_t requests, double seconds) {
  Row row;
  row.clients = clients.size();
  std::vector<std::vector<double>> lat(clients.size());
  std::atomic<size_t> errors{0};
  const auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  const auto t0 = clock_type::now();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < clients.size(); ++i) {
    threads.emplace_back([&, i] {
      httplib::Client http("127.0.0.1", port);
      http.set_read_timeout(300);
      auto r = http.Post("/v1/sessions?model=digits", clients[i].session_body, "application/octet-stream");
      if (!r || r->status != 201) {
        errors += requests;
        return;
      }
      const std::string id = r->body.substr(r->body.find("\"session\":\"") + 11, 64);
      for (size_t k = 0; k < requests && clock_type::now() < deadline; ++k) {
        const auto t = clock_type::now();
        auto a = http.Post(("/v1/sessions/" + id + "/infer").c_str(), clients[i].query, "application/octet-stream");
        if (!a || a->status != 200) ++errors;
        else lat[i].push_back(ms_since(t));
      }
    });
  }
  for (auto& t : threads) t.join();
  row.wall_s = ms_since(t0) / 1000;
  std::vector<double> all;
  for (const auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  row.ok = all.size();
  row.errors = errors;
  row.p50 = percentile(all, 0.50), row.p95 = percentile(all, 0.95), row.p99 = percentile(all, 0.99);
  return row;
}

std::vector<size_t> parse_list(const char* s) {
  std::vector<size_t> v;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) v.push_back(std::stoul(part));
  return v;
}

int run(const Options& o) {
  const auto weights = nn::load_convnet_weights(o.data + "/convnet_digits.weights");
  nn::CompileOptions copt;
  copt.batch = 64;
  nn::ModelFile file{"digits", nn::convnet_model(weights), nn::convnet_parameters(13), copt, 0, 1, 10, 11, 0, ""};
  const auto imgs = nn::load_convnet_test_set(o.data, 64).images;
  const size_t max_clients = *std::max_element(o.clients.begin(), o.clients.end());

  const size_t server_threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  // In-process: the same inference with no HTTP, with the OpenMP share one server worker
  // gets (cores / server threads); one warm-up, then the median of 5.
  omp_set_num_threads(static_cast<int>(std::max<size_t>(1, std::thread::hardware_concurrency() / server_threads)));
  auto ctx = Context::create(file.params, BackendKind::Cpu);
  nn::CompiledModel plan(ctx, file.model, file.options);
  std::vector<double> inproc;
  {
    KeyGenerator keygen(ctx);
    Encoder encoder(ctx);
    Encryptor enc(ctx, keygen.secret_key());
    const auto rk = keygen.create_relin_key();
    const auto gk = keygen.create_galois_keys(plan.rotation_steps(), false);
    std::vector<Ciphertext> in;
    for (const auto& slots : plan.encode(imgs))
      in.push_back(enc.encrypt(encoder.encode(slots, plan.input_scale(), static_cast<int>(plan.input_level()))));
    Evaluator eval(ctx);
    for (int i = 0; i < 6; ++i) {
      const auto t = clock_type::now();
      auto out = plan.run(eval, in, rk, gk);
      if (i > 0) inproc.push_back(ms_since(t));
    }
  }
  const double inproc_ms = percentile(inproc, 0.5);
  std::fprintf(stderr, "preparing %zu clients' keys and queries...\n", max_clients);
  std::vector<Client> clients;
  for (size_t i = 0; i < max_clients; ++i) clients.push_back(make_client(ctx, plan, imgs));

  const auto store_dir = fs::temp_directory_path() / ("veil-serve-load-" + std::to_string(::getpid()));
  serve::ServerOptions sopt;
  sopt.threads = server_threads;
  sopt.max_inflight = sopt.threads;
  serve::ModelServer server({file}, std::make_shared<serve::DirectoryKeyStore>(store_dir.string()), sopt);
  server.start();
  std::vector<Row> rows;
  for (size_t n : o.clients) {
    rows.push_back(run_load(server.port(), std::vector<Client>(clients.begin(), clients.begin() + static_cast<std::ptrdiff_t>(n)),
                            o.requests, o.seconds));
    std::fprintf(stderr, "%zu client(s): %zu ok, %zu errors\n", n, rows.back().ok, rows.back().errors);
  }
  server.stop();
  fs::remove_all(store_dir);

  const double overhead = rows.front().p50 / inproc_ms - 1;
  if (o.json) {
    std::printf("{\"in_process_ms\": %.2f, \"server_threads\": %zu, \"hardware_threads\": %u, \"rows\": [", inproc_ms, sopt.threads,
                std::thread::hardware_concurrency());
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("%s{\"clients\": %zu, \"ok\": %zu, \"errors\": %zu, \"requests_per_s\": %.3f, \"p50_ms\": %.2f, \"p95_ms\": %.2f, \"p99_ms\": %.2f}",
                  i ? ", " : "", r.clients, r.ok, r.errors, r.ok / r.wall_s, r.p50, r.p95, r.p99);
    }
    std::printf("], \"overhead_one_client\": %.4f}\n", overhead);
    return 0;
  }
  std::printf("digits ConvNet, N = 8192, 64 images per request, server threads %zu, %u hardware threads\n",
              sopt.threads, std::thread::hardware_concurrency());
  std::printf("in-process inference (no HTTP): %.1f ms\n\n", inproc_ms);
  std::printf("| clients | requests ok | errors | requests/s | images/s | p50 (ms) | p95 (ms) | p99 (ms) |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows)
    std::printf("| %zu | %zu | %zu | %.2f | %.0f | %.1f | %.1f | %.1f |\n", r.clients, r.ok, r.errors, r.ok / r.wall_s,
                64 * r.ok / r.wall_s, r.p50, r.p95, r.p99);
  std::printf("\nround trip at one client / in-process: %.2fx (server overhead %.1f%%)\n", rows.front().p50 / inproc_ms,
              100 * overhead);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "veil-serve-load: %s needs a value (--help)\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::printf("veil-serve-load [--clients 1,4,16] [--requests 8] [--threads T] [--seconds 120] [--data DIR] [--json]\n"
                  "Load test of veil's model server on loopback with the digits ConvNet (bounded in count and time).\n");
      return 0;
    }
    if (a == "--clients") o.clients = parse_list(next());
    else if (a == "--requests") o.requests = std::stoul(next());
    else if (a == "--threads") o.threads = std::stoul(next());
    else if (a == "--seconds") o.seconds = std::stod(next());
    else if (a == "--data") o.data = next();
    else if (a == "--json") o.json = true;
    else {
      std::fprintf(stderr, "veil-serve-load: unknown option %s (--help)\n", a.c_str());
      return 2;
    }
  }
  if (o.clients.empty() || o.requests == 0) {
    std::fprintf(stderr, "veil-serve-load: --clients and --requests must be positive\n");
    return 2;
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "veil-serve-load: %s\n", e.what());
    return 1;
  }
}
