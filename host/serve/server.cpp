// The model server (include/veil/serve/server.hpp): routes, session keys, limits and
// metrics over cpp-httplib. Handlers turn every veil::Error into a JSON 4xx/5xx and
// keep serving.
#include "veil/serve/server.hpp"

#include <httplib.h>
#include <omp.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "veil/context.hpp"
#include "veil/error.hpp"
#include "veil/evaluator.hpp"
#include "veil/recorded_computation.hpp"
#include "veil/nn/compile.hpp"
#include "veil/serialization.hpp"
#include "veil/stream_scope.hpp"

namespace veil::serve {

namespace {

using json = nlohmann::json;

struct ModelEntry {
  nn::ModelFile file;
  ContextPtr ctx;
  std::unique_ptr<nn::CompiledModel> plan;
  json description;
};

struct SessionKeys {
  std::string model;
  RelinKey rk;
  GaloisKeys gk;
  // The session's recorded run (ServerOptions::replay), made by its first inference;
  // declared last: it reads rk and gk, so it goes first.
  struct Recorded {
    std::mutex mutex;
    std::unique_ptr<RecordedComputation> run;
  };
  std::unique_ptr<Recorded> recorded = std::make_unique<Recorded>();
};

// An HTTP-facing failure: status and message.
struct HttpError {
  int status;
  std::string message;
};

int status_for(const Error& e) {
  switch (e.code()) {
    case ErrorCode::Backend: return 500;
    default: return 400;
  }
}

// JSON text that is valid whatever bytes a client put into the strings (a model name
// or session id echoed in a message may be any bytes, not UTF-8: replaced, never thrown).
std::string to_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(to_json(json{{"error", message}, {"status", status}}), "application/json");
}

std::string base64(const Bytes& b) {
  std::string out(sodium_base64_encoded_len(b.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), b.data(), b.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

// The layers without their values: what a client needs to rebuild the plan's input
// and output layouts (serve/client.hpp), never a weight.
json architecture(const nn::Sequential& model) {
  json layers = json::array();
  for (const nn::Layer& l : model.layers()) {
    switch (l.kind) {
      case nn::LayerKind::Conv2d:
        layers.push_back({{"kind", "conv2d"}, {"out", l.out}, {"kernel", l.kernel}, {"stride", l.stride},
                          {"pads", {l.pad.top, l.pad.left, l.pad.bottom, l.pad.right}}});
        break;
      case nn::LayerKind::Square: layers.push_back({{"kind", "square"}}); break;
      case nn::LayerKind::Activation:
        layers.push_back({{"kind", "activation"}, {"degree", l.poly->degree()}, {"a", l.poly->a()}, {"b", l.poly->b()}});
        break;
      case nn::LayerKind::AvgPool2d:
        layers.push_back({{"kind", "avg_pool2d"}, {"kernel", l.kernel}, {"stride", l.stride},
                          {"pads", {l.pad.top, l.pad.left, l.pad.bottom, l.pad.right}},
                          {"count_include_pad", l.count_include_pad}});
        break;
      case nn::LayerKind::GlobalAvgPool: layers.push_back({{"kind", "global_avg_pool"}}); break;
      case nn::LayerKind::ResidualBegin: layers.push_back({{"kind", "residual_begin"}}); break;
      case nn::LayerKind::ResidualAdd: layers.push_back({{"kind", "residual_add"}}); break;
      case nn::LayerKind::Affine: layers.push_back({{"kind", "affine"}}); break;
      case nn::LayerKind::Flatten: layers.push_back({{"kind", "flatten"}}); break;
      case nn::LayerKind::Linear: layers.push_back({{"kind", "linear"}, {"out", l.out}}); break;
    }
  }
  return layers;
}

// The plan, parameters and precision: what a client needs to encrypt and decrypt.
json describe_plan(const ModelEntry& m) {
  const auto& f = m.file;
  const auto& p = f.params;
  const auto& plan = *m.plan;
  return json{{"name", f.name},
              {"input", {{"channels", f.model.channels()}, {"height", f.model.height()}, {"width", f.model.width()}}},
              {"input_range", {f.input_min, f.input_max}},
              {"batch", plan.batch()},
              {"packing", nn::packing_name(f.options.packing)},
              {"input_ciphertexts", plan.input_ciphertexts()},
              {"output_ciphertexts", plan.output_ciphertexts()},
              {"output_size", plan.output_size()},
              {"depth", plan.depth()},
              {"input_level", plan.input_level()},
              {"input_scale", plan.input_scale()},
              {"rotation_steps", plan.rotation_steps()},
              {"layers", architecture(f.model)},
              {"options",
               {{"level", f.options.level}, {"scale", f.options.scale}, {"channel_blocks", plan.channel_blocks()}}},
              {"precision", {{"promised_bits", f.promised_bits}, {"measured_bits", f.measured_bits}}},
              {"parameters",
               {{"log_n", p.log_n()},
                {"log_qp", p.log_qp()},
                {"q_primes", p.max_level() + 1},
                {"special_primes", p.alpha()},
                {"dnum", p.dnum()},
                {"fingerprint", std::to_string(p.fingerprint())},
                {"blob", base64(serialize(p))}}}};
}

json describe_model(const ModelEntry& m) {
  const auto& f = m.file;
  json d = describe_plan(m);
  if (f.featurizer)  // how the client makes the input (e.g. from a SMILES string): public, like the layers
    d["featurizer"] = {{"name", f.featurizer->name},
                       {"version", f.featurizer->version},
                       {"cap", f.featurizer->cap},
                       {"cells", f.featurizer->cells},
                       {"property", f.featurizer->property}};
  return d;
}


// Session value in the key store: u16 name length, name, then the key blobs as uploaded.
std::vector<uint8_t> pack_session(const std::string& model, ByteView keys) {
  std::vector<uint8_t> v;
  v.reserve(2 + model.size() + keys.size());
  v.push_back(static_cast<uint8_t>(model.size()));
  v.push_back(static_cast<uint8_t>(model.size() >> 8));
  v.insert(v.end(), model.begin(), model.end());
  v.insert(v.end(), keys.begin(), keys.end());
  return v;
}

// Prometheus counters and the inference latency histogram.
class Metrics {
 public:
  void count(const std::string& route, int status, size_t in, size_t out) {
    std::lock_guard lock(mutex_);
    ++requests_[route + "\",status=\"" + std::to_string(status)];
    bytes_in_ += in;
    bytes_out_ += out;
  }
  void recorded() {
    std::lock_guard lock(mutex_);
    ++recorded_;
  }
  void replayed() {
    std::lock_guard lock(mutex_);
    ++replayed_;
  }
  void infer_seconds(double s) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < kBuckets.size(); ++i)
      if (s <= kBuckets[i]) ++buckets_[i];
    ++infer_count_;
    infer_sum_ += s;
  }
  std::string text(size_t sessions, size_t inflight) {
    std::lock_guard lock(mutex_);
    std::ostringstream o;
    o << "# TYPE veil_requests_total counter\n";
    for (const auto& [k, v] : requests_) o << "veil_requests_total{route=\"" << k << "\"} " << v << "\n";
    o << "# TYPE veil_request_bytes_total counter\nveil_request_bytes_total " << bytes_in_ << "\n";
    o << "# TYPE veil_response_bytes_total counter\nveil_response_bytes_total " << bytes_out_ << "\n";
    o << "# TYPE veil_sessions gauge\nveil_sessions " << sessions << "\n";
    o << "# TYPE veil_inferences_in_flight gauge\nveil_inferences_in_flight " << inflight << "\n";
    o << "# TYPE veil_infer_seconds histogram\n";
    for (size_t i = 0; i < kBuckets.size(); ++i)
      o << "veil_infer_seconds_bucket{le=\"" << kBuckets[i] << "\"} " << buckets_[i] << "\n";
    o << "veil_infer_seconds_bucket{le=\"+Inf\"} " << infer_count_ << "\n";
    o << "veil_infer_seconds_sum " << infer_sum_ << "\nveil_infer_seconds_count " << infer_count_ << "\n";
    o << "# TYPE veil_recorded_runs_total counter\nveil_recorded_runs_total " << recorded_ << "\n";
    o << "# TYPE veil_replayed_inferences_total counter\nveil_replayed_inferences_total " << replayed_ << "\n";
    return o.str();
  }

 private:
  static constexpr std::array<double, 10> kBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  std::mutex mutex_;
  std::map<std::string, uint64_t> requests_;
  std::array<uint64_t, kBuckets.size()> buckets_{};
  uint64_t infer_count_ = 0, bytes_in_ = 0, bytes_out_ = 0, recorded_ = 0, replayed_ = 0;
  double infer_sum_ = 0;
};

}  // namespace

struct ModelServer::Impl {
  ServerOptions opt;
  std::shared_ptr<KeyStore> store;
  std::map<std::string, ModelEntry> models;
  std::unique_ptr<httplib::Server> owned_http;  // an SSLServer when TLS is configured
  httplib::Server& http;
  std::thread thread;

  explicit Impl(std::unique_ptr<httplib::Server> server) : owned_http(std::move(server)), http(*owned_http) {}
  int port = -1;
  std::atomic<size_t> inflight{0};
  std::mutex cache_mutex;
  std::list<std::pair<std::string, std::shared_ptr<const SessionKeys>>> cache;  // most recent first
  Metrics metrics;

  const ModelEntry& model(const std::string& name) const {
    auto it = models.find(name);
    if (it == models.end()) throw HttpError{404, "no model named \"" + name + "\""};
    return it->second;
  }

  // The keys of a session: the in-memory cache, else the store (validated again: the
  // store may be shared with other processes).
  std::shared_ptr<const SessionKeys> keys(const std::string& id) {
    if (!valid_session_id(id)) throw HttpError{404, "no such session"};
    if (!store->alive(id)) {  // deleted through another server, or expired
      forget(id);
      throw HttpError{404, "no such session (unknown or expired)"};
    }
    {
      std::lock_guard lock(cache_mutex);
      for (auto it = cache.begin(); it != cache.end(); ++it)
        if (it->first == id) {
          cache.splice(cache.begin(), cache, it);
          return it->second;
        }
    }
    auto value = store->get(id);
    if (!value || value->size() < 2) throw HttpError{404, "no such session (unknown or expired)"};
    const size_t len = (*value)[0] | (size_t{(*value)[1]} << 8);
    if (value->size() < 2 + len) throw HttpError{404, "no such session (corrupted entry)"};
    const std::string name(value->begin() + 2, value->begin() + 2 + static_cast<std::ptrdiff_t>(len));
    const ModelEntry& m = model(name);
    auto keys = std::make_shared<SessionKeys>(parse_keys(m, ByteView(*value).subspan(2 + len)));
    std::lock_guard lock(cache_mutex);
    cache.emplace_front(id, keys);
    while (cache.size() > std::max<size_t>(1, opt.key_cache)) cache.pop_back();
    return keys;
  }

  void forget(const std::string& id) {
    std::lock_guard lock(cache_mutex);
    cache.remove_if([&](const auto& e) { return e.first == id; });
  }

  // Exactly a relinearization key and Galois keys with every step the model needs.
  static SessionKeys parse_keys(const ModelEntry& m, ByteView body) {
    const auto blobs = split_blobs(body, 2);
    if (blobs.size() != 2)
      throw HttpError{400, "a session needs two blobs: the relinearization key, then the Galois keys"};
    SessionKeys k{m.file.name, deserialize_relin_key(m.ctx, blobs[0]), deserialize_galois_keys(m.ctx, blobs[1])};
    for (int64_t step : m.plan->rotation_steps())
      if (!k.gk.has(galois_element_for_step(*m.ctx, step)))
        throw HttpError{400, "the Galois keys lack rotation step " + std::to_string(step) + " that model \"" +
                                 m.file.name + "\" needs (GET /v1/models/" + m.file.name + " lists them)"};
    return k;
  }

  void create_session(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_param("model")) throw HttpError{400, "POST /v1/sessions?model=NAME: the model is missing"};
    const ModelEntry& m = model(req.get_param_value("model"));
    const ByteView body(reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size());
    parse_keys(m, body);  // refuse bad keys before storing anything
    if (store->count() >= opt.max_sessions) {
      res.set_header("Retry-After", "60");
      throw HttpError{503, "the server holds its maximum of " + std::to_string(opt.max_sessions) + " sessions"};
    }
    const std::string id = new_session_id();
    store->put(id, pack_session(m.file.name, body), opt.session_ttl);
    res.status = 201;
    res.set_content(to_json(json{{"session", id}, {"model", m.file.name}, {"expires_in", opt.session_ttl.count()}}),
                    "application/json");
  }

  // The model on the inputs: a replay of the session's recorded run when replay is on
  // and the inputs have its shape (the first inference records it), else directly.
  std::vector<Ciphertext> run_model(const ModelEntry& m, const SessionKeys& k, const std::vector<Ciphertext>& inputs) {
    const nn::CompiledModel& plan = *m.plan;
    auto direct = [&plan, &m, &k](const std::vector<Ciphertext>& in) { return plan.run(Evaluator(m.ctx), in, k.rk, k.gk); };
    const bool replay = opt.replay == ServerOptions::Replay::Always ||
                        (opt.replay == ServerOptions::Replay::Auto && m.ctx->backend().name() == "cuda");
    if (!replay) return direct(inputs);
    std::lock_guard lock(k.recorded->mutex);  // one run at a time per session: the recording's buffers are shared
    if (!k.recorded->run) {
      k.recorded->run = std::make_unique<RecordedComputation>(direct, inputs);
      metrics.recorded();
    }
    if (!k.recorded->run->matches(inputs)) return direct(inputs);
    metrics.replayed();
    return k.recorded->run->run(inputs);
  }

  void infer(const httplib::Request& req, httplib::Response& res) {
    const auto k = keys(req.matches[1].str());
    const ModelEntry& m = model(k->model);
    const nn::CompiledModel& plan = *m.plan;
    const auto blobs = split_blobs(ByteView(reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size()),
                                   plan.input_ciphertexts() + 1);
    if (blobs.size() != plan.input_ciphertexts())
      throw HttpError{400, "model \"" + m.file.name + "\" takes " + std::to_string(plan.input_ciphertexts()) +
                               " input ciphertexts, the request holds " + std::to_string(blobs.size())};
    std::vector<Ciphertext> inputs;
    inputs.reserve(blobs.size());
    for (const auto& b : blobs) inputs.push_back(deserialize_ciphertext(m.ctx, b));
    // A bounded number of inferences at once: the rest are told to retry.
    if (inflight.fetch_add(1) >= opt.max_inflight) {
      inflight.fetch_sub(1);
      res.set_header("Retry-After", "1");
      throw HttpError{503, "the server is busy (" + std::to_string(opt.max_inflight) + " inferences in flight)"};
    }
    struct Release {
      std::atomic<size_t>& n;
      ~Release() { n.fetch_sub(1); }
    } release{inflight};
    // No oversubscription: each worker's OpenMP team gets its share of the cores.
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    omp_set_num_threads(std::max(1, cores / static_cast<int>(std::max<size_t>(1, opt.threads))));
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<Ciphertext> outputs;
    {
      std::optional<StreamScope> scope;
      if (m.ctx->backend().name() == "cuda") scope.emplace(m.ctx);
      outputs = run_model(m, *k, inputs);
      if (scope) scope->synchronize();
    }
    metrics.infer_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::string body;
    for (const auto& ct : outputs) {
      const Bytes b = serialize(ct, false);
      body.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    res.set_content(std::move(body), "application/octet-stream");
  }

  // Runs a handler, mapping its failures to JSON errors, and counts the request.
  void handle(const std::string& route, const httplib::Request& req, httplib::Response& res,
              void (Impl::*fn)(const httplib::Request&, httplib::Response&)) {
    try {
      (this->*fn)(req, res);
    } catch (const HttpError& e) {
      send_error(res, e.status, e.message);
    } catch (const Error& e) {
      send_error(res, status_for(e), e.what());
    } catch (const std::bad_alloc&) {
      send_error(res, 500, "out of memory");
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what());
    }
    if (res.status == -1) res.status = 200;  // what cpp-httplib would make of "not set"
    metrics.count(route, res.status, req.body.size(), res.body.size());
  }

  void list_models(const httplib::Request&, httplib::Response& res) {
    json all = json::array();
    for (const auto& [name, m] : models) all.push_back(m.description);
    res.set_content(to_json(all), "application/json");
  }
  void get_model(const httplib::Request& req, httplib::Response& res) {
    res.set_content(to_json(model(req.matches[1].str()).description), "application/json");
  }
  void delete_session(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    forget(id);
    if (!store->erase(id)) throw HttpError{404, "no such session"};
    res.status = 204;
  }
  void metrics_text(const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics.text(store->count(), inflight.load()), "text/plain; version=0.0.4");
  }

  void healthz(const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); }

  // The routes, in one table that both the HTTP server and respond() (no socket) use.
  struct Route {
    const char* method;
    const char* pattern;
    const char* name;
    void (Impl::*fn)(const httplib::Request&, httplib::Response&);
  };
  static constexpr Route kRoutes[] = {
      {"GET", "/healthz", "healthz", &Impl::healthz},
      {"GET", "/v1/models", "models", &Impl::list_models},
      {"GET", R"(/v1/models/([^/]+))", "model", &Impl::get_model},
      {"POST", "/v1/sessions", "sessions", &Impl::create_session},
      {"POST", R"(/v1/sessions/([^/]+)/infer)", "infer", &Impl::infer},
      {"DELETE", R"(/v1/sessions/([^/]+))", "session", &Impl::delete_session},
      {"GET", "/metrics", "metrics", &Impl::metrics_text},
  };

  void routes() {
    for (const Route& r : kRoutes) {
      auto handler = [this, r](const httplib::Request& req, httplib::Response& res) { handle(r.name, req, res, r.fn); };
      const std::string method = r.method;
      if (method == "GET") http.Get(r.pattern, handler);
      else if (method == "POST") http.Post(r.pattern, handler);
      else http.Delete(r.pattern, handler);
    }
    // Unknown routes, and the 413 httplib answers for bodies over the limit: JSON too.
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty())
        send_error(res, res.status,
                   res.status == 413 ? "request body over the server's limit"
                   : res.status == 404 ? "no such route (see GET /v1/models)"
                                       : "request refused (HTTP " + std::to_string(res.status) + ")");
    });
  }

  httplib::Response respond(const std::string& method, const std::string& target, const std::string& body) {
    httplib::Response res;
    // The limit cpp-httplib puts on a request line's target: longer ones never reach the
    // routes there (and std::regex recurses per character of the path).
    if (target.size() > CPPHTTPLIB_REQUEST_URI_MAX_LENGTH) {
      send_error(res, 414, "request target longer than " + std::to_string(CPPHTTPLIB_REQUEST_URI_MAX_LENGTH) + " bytes");
      return res;
    }
    httplib::Request req;
    req.method = method;
    const size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) httplib::detail::parse_query_text(target.substr(q + 1), req.params);
    req.body = body;
    if (body.size() > opt.max_body_bytes) {
      send_error(res, 413, "request body over the server's limit");
      return res;
    }
    for (const Route& r : kRoutes) {
      if (method != r.method || !std::regex_match(req.path, req.matches, std::regex(r.pattern))) continue;
      handle(r.name, req, res, r.fn);
      return res;
    }
    send_error(res, 404, "no such route (see GET /v1/models)");
    return res;
  }
};

namespace {
std::unique_ptr<httplib::Server> make_http(const ServerOptions& o) {
  require(o.tls_cert.empty() == o.tls_key.empty(), ErrorCode::InvalidArgument,
          "serve: TLS needs both a certificate and its private key");
  if (o.tls_cert.empty()) return std::make_unique<httplib::Server>();
  auto s = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str());
  require(s->is_valid(), ErrorCode::InvalidArgument,
          "serve: cannot use the TLS certificate " + o.tls_cert + " with key " + o.tls_key +
              " (unreadable, not PEM, or they do not match)");
  return s;
}
}  // namespace

ModelServer::ModelServer(std::vector<nn::ModelFile> models, std::shared_ptr<KeyStore> store, ServerOptions options)
    : impl_(std::make_unique<Impl>(make_http(options))) {
  require(!models.empty(), ErrorCode::InvalidArgument, "serve: no models");
  require(store != nullptr, ErrorCode::InvalidArgument, "serve: no key store");
  impl_->opt = options;
  impl_->store = std::move(store);
  for (auto& f : models) {
    require(!impl_->models.count(f.name), ErrorCode::InvalidArgument, "serve: two models named \"" + f.name + "\"");
    require(options.allow_insecure_parameters || f.params.security() == Security::HEStandard128,
            ErrorCode::InvalidArgument,
            "serve: model \"" + f.name + "\" has parameters below the 128-bit bound (insecure testing only)");
    ModelEntry e{f, Context::create(f.params, options.backend), nullptr, {}};
    e.plan = std::make_unique<nn::CompiledModel>(e.ctx, e.file.model, e.file.options);
    const uint64_t query_bytes = nn::query_cost(f).upload_bytes + (uint64_t{1} << 20);
    impl_->opt.max_body_bytes = std::max<uint64_t>(impl_->opt.max_body_bytes, query_bytes);
    e.description = describe_model(e);
    const std::string name = f.name;
    impl_->models.emplace(name, std::move(e));
  }
  impl_->routes();
}

ModelServer::~ModelServer() { stop(); }

void ModelServer::start() {
  Impl& s = *impl_;
  require(!s.thread.joinable(), ErrorCode::InvalidArgument, "serve: already started");
  const size_t threads = std::max<size_t>(1, s.opt.threads);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_payload_max_length(s.opt.max_body_bytes);
  s.http.set_read_timeout(s.opt.io_timeout.count());
  s.http.set_write_timeout(s.opt.io_timeout.count());
  if (s.opt.port == 0) {
    s.port = s.http.bind_to_any_port(s.opt.host);
  } else {
    s.port = s.http.bind_to_port(s.opt.host, s.opt.port) ? s.opt.port : -1;
  }
  require(s.port > 0, ErrorCode::Backend,
          "serve: cannot listen on " + s.opt.host + ":" + std::to_string(s.opt.port) + " (in use, or no permission)");
  s.thread = std::thread([&s] { s.http.listen_after_bind(); });
  while (!s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

int ModelServer::port() const { return impl_->port; }

ModelServer::Answer ModelServer::respond(const std::string& method, const std::string& target,
                                         const std::string& body) {
  httplib::Response res = impl_->respond(method, target, body);
  return Answer{res.status, std::move(res.body)};
}

void ModelServer::stop() {
  Impl& s = *impl_;
  if (!s.thread.joinable()) return;
  s.http.stop();
  s.thread.join();
}

}  // namespace veil::serve
