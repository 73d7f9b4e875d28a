// The model server, started for real on a loopback port the test picks, and talked to
// over HTTP: a full encrypted round trip of the digits ConvNet, hostile requests (each
// followed by a good one), expiry, concurrent clients with their own keys, and two
// servers sharing one key store.
#include <httplib.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "redis_fixture.hpp"
#include "test_util.hpp"
#include "veil/nn/compile.hpp"
#include "veil/nn/convnet.hpp"
#include "veil/nn/onnx.hpp"
#include "veil/serve/client.hpp"
#include "veil/serve/server.hpp"

namespace veil::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kData = (fs::path(__FILE__).parent_path() / "data").string();

nn::ModelFile digits_file() {
  static const nn::ModelFile file = [] {
    nn::CompileOptions o;
    o.batch = 64;
    return nn::ModelFile{"digits", nn::convnet_model(nn::load_convnet_weights(kData + "/convnet_digits.weights")),
                         nn::convnet_parameters(13), o, 0, 1, 10, 11, 0, "test", {}};
  }();
  return file;
}

// A temporary key-store directory, removed at the end.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("veil-serve-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(counter()++));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

struct Server {
  // store: a directory, or redis://HOST:PORT/PREFIX.
  explicit Server(const std::string& store, serve::ServerOptions o = {})
      : server({digits_file()}, serve::open_key_store(store), o) {
    server.start();
  }
  // Generous timeouts: under sanitizers, or queued behind other clients' inferences, an
  // answer can take longer than cpp-httplib's 5-second default.
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(600);
    c.set_write_timeout(600);
    return c;
  }
  serve::ModelServer server;
};

std::string body_of(const std::vector<Bytes>& blobs) {
  std::string s;
  for (const auto& b : blobs) s.append(reinterpret_cast<const char*>(b.data()), b.size());
  return s;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A client of the digits model: its own keys, encryption, decryption.
struct Client {
  Client()
      : ctx(Context::create(digits_file().params, BackendKind::Cpu)),
        plan(ctx, digits_file().model, digits_file().options),
        keygen(ctx),
        encoder(ctx),
        encryptor(ctx, keygen.secret_key()),
        decryptor(ctx, keygen.secret_key()) {}

  std::string session_body() {
    return body_of({serialize(keygen.create_relin_key()),
                    serialize(keygen.create_galois_keys(plan.rotation_steps(), false))});
  }
  std::string open(const httplib::Client& http) {
    auto r = const_cast<httplib::Client&>(http).Post("/v1/sessions?model=digits", session_body(),
                                                     "application/octet-stream");
    EXPECT_TRUE(r) << "no response";
    if (!r) return "";
    EXPECT_EQ(r->status, 201) << r->body;
    return json::parse(r->body).value("session", "");
  }
  std::string query(const std::vector<std::vector<double>>& images) {
    std::vector<Bytes> blobs;
    for (const auto& slots : plan.encode(images))
      blobs.push_back(serialize(encryptor.encrypt(
          encoder.encode(slots, plan.input_scale(), static_cast<int>(plan.input_level())))));
    return body_of(blobs);
  }
  // Classes from an answer body.
  std::vector<int> classes(const std::string& body, size_t images) {
    const ByteView view(reinterpret_cast<const uint8_t*>(body.data()), body.size());
    std::vector<std::vector<double>> decoded;
    for (const auto& b : split_blobs(view, 16)) decoded.push_back(encoder.decode(decryptor.decrypt(deserialize_ciphertext(ctx, b))));
    std::vector<int> out;
    for (const auto& logits : plan.decode(decoded, images)) out.push_back(nn::argmax(logits));
    return out;
  }

  ContextPtr ctx;
  nn::CompiledModel plan;
  KeyGenerator keygen;
  Encoder encoder;
  Encryptor encryptor;
  Decryptor decryptor;
};

std::vector<std::vector<double>> images(size_t count) { return nn::load_convnet_test_set(kData, count).images; }

size_t agreement(const std::vector<int>& got, const std::vector<std::vector<double>>& imgs) {
  const auto model = digits_file().model;
  size_t same = 0;
  for (size_t i = 0; i < imgs.size(); ++i) same += got[i] == nn::argmax(model.forward(imgs[i]));
  return same;
}

// POST infer and the classes of the answer (status checked).
std::vector<int> infer(Client& c, httplib::Client& http, const std::string& session,
                       const std::vector<std::vector<double>>& imgs) {
  auto r = http.Post(("/v1/sessions/" + session + "/infer").c_str(), c.query(imgs), "application/octet-stream");
  if (!r) {
    ADD_FAILURE() << "no response";
    return {};
  }
  EXPECT_EQ(r->status, 200) << r->body;
  if (r->status != 200) return {};
  return c.classes(r->body, imgs.size());
}

void expect_json_error(const httplib::Result& r, int status, const std::string& what) {
  ASSERT_TRUE(r) << what << ": no response";
  EXPECT_EQ(r->status, status) << what << ": " << r->body;
  if (r->status != 200 && r->status != 204) {
    const json j = json::parse(r->body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r->body;
  }
}

TEST(Serve, DescribesItsModelsAndAnswersAnEncryptedQuery) {
  TempDir store;
  Server s(store.path.string());
  auto http = s.client();
  auto health = http.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->body, "ok\n");
  auto models = http.Get("/v1/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(json::parse(models->body).size(), 1u);
  auto desc = http.Get("/v1/models/digits");
  ASSERT_TRUE(desc);
  const json d = json::parse(desc->body);
  Client c;
  EXPECT_EQ(d["batch"], 64);
  EXPECT_EQ(d["input_ciphertexts"], c.plan.input_ciphertexts());
  EXPECT_EQ(d["rotation_steps"].get<std::vector<int64_t>>(), c.plan.rotation_steps());
  EXPECT_EQ(desc->body.find("weight"), std::string::npos);  // never the weights
  const std::string session = c.open(http);
  ASSERT_EQ(session.size(), 64u);
  const auto imgs = images(64);
  const auto got = infer(c, http, session, imgs);
  ASSERT_EQ(got.size(), 64u);
  EXPECT_GE(agreement(got, imgs), 62u);
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("veil_infer_seconds_count 1"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("veil_sessions 1"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("route=\"model\",status=\"200\"} 1"), std::string::npos) << metrics->body;
  // The routes answer the same without a socket (what the HTTP fuzz harness drives).
  const auto direct = s.server.respond("GET", "/v1/models/digits", "");
  EXPECT_EQ(direct.status, 200);
  EXPECT_EQ(json::parse(direct.body)["batch"], 64);
  EXPECT_EQ(s.server.respond("GET", "/nope", "").status, 404);
  EXPECT_EQ(s.server.respond("POST", "/v1/sessions?model=digits", "junk").status, 400);
}

TEST(Serve, HostileRequestsGetJsonErrorsAndTheServerKeepsServing) {
  TempDir store;
  serve::ServerOptions o;
  o.max_body_bytes = 48 << 20;  // keys of this model: about 21 MB
  Server s(store.path.string(), o);
  auto http = s.client();
  Client c;
  const std::string session = c.open(http);
  const auto imgs = images(8);
  auto still_serving = [&](const std::string& after) {
    const auto got = infer(c, http, session, imgs);
    EXPECT_EQ(got.size(), 8u) << "after " << after;
  };
  expect_json_error(http.Get("/v1/models/nope"), 404, "unknown model");
  // The longest target cpp-httplib takes (fuzz_http found a 33 KB one overflowing
  // std::regex's recursion through respond(); over HTTP targets stop at 8 KB).
  expect_json_error(http.Get(("/v1/models/" + std::string(8000, 'a')).c_str()), 404, "an 8 KB model name");
  EXPECT_EQ(s.server.respond("GET", "/v1/models/" + std::string(40000, 'a'), "").status, 414);
  // Bytes that are not UTF-8 echoed in the message (found by fuzz_http: it was a 500).
  expect_json_error(http.Get("/v1/models/%FF%FEx"), 404, "a model name that is not UTF-8");
  expect_json_error(http.Post("/v1/sessions?model=%FF", "x", "application/octet-stream"), 404, "a non-UTF-8 model");
  expect_json_error(http.Get("/v2/nothing"), 404, "unknown route");
  expect_json_error(http.Post("/v1/sessions", "x", "application/octet-stream"), 400, "no model parameter");
  expect_json_error(http.Post("/v1/sessions?model=nope", "x", "application/octet-stream"), 404, "unknown model");
  expect_json_error(http.Post("/v1/sessions?model=digits", "garbage", "application/octet-stream"), 400,
                    "garbage keys");
  // A secret key is refused like any wrong object.
  expect_json_error(http.Post("/v1/sessions?model=digits",
                              body_of({serialize_secret_key(c.keygen.secret_key()),
                                       serialize(c.keygen.create_galois_keys(c.plan.rotation_steps(), false))}),
                              "application/octet-stream"),
                    400, "a secret key");
  // Keys of another parameter set.
  {
    auto other = Context::create(nn::convnet_parameters(14), BackendKind::Cpu);
    KeyGenerator kg(other);
    expect_json_error(http.Post("/v1/sessions?model=digits",
                                body_of({serialize(kg.create_relin_key()), serialize(kg.create_galois_keys({1}, false))}),
                                "application/octet-stream"),
                      400, "keys of other parameters");
  }
  expect_json_error(http.Post("/v1/sessions?model=digits",
                              body_of({serialize(c.keygen.create_relin_key()),
                                       serialize(c.keygen.create_galois_keys({1}, false))}),
                              "application/octet-stream"),
                    400, "Galois keys without the model's steps");
  still_serving("bad sessions");
  const std::string unknown(64, 'a');
  expect_json_error(http.Post(("/v1/sessions/" + unknown + "/infer").c_str(), c.query(imgs), "application/octet-stream"),
                    404, "unknown session");
  expect_json_error(http.Post("/v1/sessions/..%2f..%2fetc/infer", "x", "application/octet-stream"), 404,
                    "malformed session id");
  expect_json_error(http.Post(("/v1/sessions/" + session + "/infer").c_str(), "garbage", "application/octet-stream"),
                    400, "garbage ciphertexts");
  {
    const std::string one = c.query(imgs);
    const auto first = split_blobs(ByteView(reinterpret_cast<const uint8_t*>(one.data()), one.size()), 64).front();
    expect_json_error(http.Post(("/v1/sessions/" + session + "/infer").c_str(),
                                std::string(reinterpret_cast<const char*>(first.data()), first.size()),
                                "application/octet-stream"),
                      400, "one ciphertext of 49");
  }
  expect_json_error(http.Post(("/v1/sessions/" + session + "/infer").c_str(), std::string(49 << 20, 'x'),
                              "application/octet-stream"),
                    413, "an oversized body");
  still_serving("bad inferences");
  auto del = http.Delete(("/v1/sessions/" + session).c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 204);
  expect_json_error(http.Post(("/v1/sessions/" + session + "/infer").c_str(), c.query(imgs), "application/octet-stream"),
                    404, "a deleted session");
  const std::string again = c.open(http);
  EXPECT_EQ(infer(c, http, again, imgs).size(), 8u);
}

// Replay::Always on the cpu backend takes the recorded-run path (on cuda: CUDA graph
// replays) without saving anything: each session records its first inference and
// replays it after. Same keys and the same query bytes to a server with and one
// without replay: byte-identical answers, the first and the later ones, and the
// counters say what happened.
TEST(Serve, ReplayedSessionsAnswerAsDirectRunsDo) {
  TempDir store_a, store_b;
  serve::ServerOptions replaying, direct;
  replaying.replay = serve::ServerOptions::Replay::Always;
  direct.replay = serve::ServerOptions::Replay::Never;
  Server a(store_a.path.string(), replaying), b(store_b.path.string(), direct);
  auto http_a = a.client(), http_b = b.client();
  Client c;
  const std::string keys = c.session_body();  // the same evaluation keys on both servers
  auto session = [&](httplib::Client& http) {
    auto r = http.Post("/v1/sessions?model=digits", keys, "application/octet-stream");
    EXPECT_TRUE(r && r->status == 201);
    return r ? json::parse(r->body).value("session", "") : std::string();
  };
  const std::string sa = session(http_a), sb = session(http_b);
  const auto imgs = images(16);
  for (int round = 0; round < 2; ++round) {
    const std::string body = c.query(imgs);
    auto ra = http_a.Post(("/v1/sessions/" + sa + "/infer").c_str(), body, "application/octet-stream");
    auto rb = http_b.Post(("/v1/sessions/" + sb + "/infer").c_str(), body, "application/octet-stream");
    ASSERT_TRUE(ra && rb);
    ASSERT_EQ(ra->status, 200) << ra->body;
    ASSERT_EQ(rb->status, 200) << rb->body;
    EXPECT_TRUE(ra->body == rb->body) << "round " << round << ": the replayed answer differs";
    EXPECT_GE(agreement(c.classes(ra->body, imgs.size()), imgs), imgs.size() - 1);
  }
  const auto ma = http_a.Get("/metrics"), mb = http_b.Get("/metrics");
  ASSERT_TRUE(ma && mb);
  EXPECT_NE(ma->body.find("veil_recorded_runs_total 1\n"), std::string::npos) << ma->body;
  EXPECT_NE(ma->body.find("veil_replayed_inferences_total 2\n"), std::string::npos) << ma->body;
  EXPECT_NE(mb->body.find("veil_recorded_runs_total 0\n"), std::string::npos) << mb->body;
}

TEST(Serve, SessionsExpire) {
  TempDir store;
  serve::ServerOptions o;
  o.session_ttl = std::chrono::seconds(1);
  Server s(store.path.string(), o);
  auto http = s.client();
  Client c;
  const std::string session = c.open(http);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  expect_json_error(http.Post(("/v1/sessions/" + session + "/infer").c_str(), c.query(images(4)),
                              "application/octet-stream"),
                    404, "an expired session");
}

// 16 clients x 4 requests at once, each client with its own keys: every answer
// decrypts under its own key to its own images' classes (none mixed up, none lost).
TEST(Serve, ConcurrentClientsEachGetTheirOwnAnswers) {
  TempDir store;
  serve::ServerOptions o;
  o.threads = 4;
  Server s(store.path.string(), o);
  const auto imgs = images(64);
  run_on_threads(16, [&](size_t i) {
    auto http = s.client();
    Client c;
    const std::string session = c.open(http);
    for (size_t r = 0; r < 4; ++r) {
      // Each request sends a different slice so that mixed-up answers would show.
      const size_t first = (3 * i + 5 * r) % 48;
      std::vector<std::vector<double>> mine(imgs.begin() + static_cast<std::ptrdiff_t>(first),
                                            imgs.begin() + static_cast<std::ptrdiff_t>(first + 16));
      const auto got = infer(c, http, session, mine);
      ASSERT_EQ(got.size(), mine.size());
      EXPECT_GE(agreement(got, mine), mine.size() - 1) << "client " << i << " request " << r;
    }
  });
}

TEST(Serve, TwoServersShareOneKeyStore) {
  TempDir store;
  Server a(store.path.string()), b(store.path.string());
  auto ha = a.client(), hb = b.client();
  Client c;
  const std::string session = c.open(ha);
  const auto imgs = images(8);
  EXPECT_EQ(infer(c, hb, session, imgs).size(), 8u);  // opened on a, served by b
  EXPECT_EQ(infer(c, ha, session, imgs).size(), 8u);
  auto del = hb.Delete(("/v1/sessions/" + session).c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 204);
  // a cached the keys, but the session is gone everywhere.
  expect_json_error(ha.Post(("/v1/sessions/" + session + "/infer").c_str(), c.query(imgs), "application/octet-stream"),
                    404, "a session deleted on the other server");
}

TEST(Serve, RedisKeyStoreKeepsExpiresAndForgets) {
  RedisServer redis;
  auto store = serve::open_key_store(redis.url());
  const std::string a = serve::new_session_id(), b = serve::new_session_id();
  const std::vector<uint8_t> value = {0, 1, 2, 255, 0, 7};  // binary-safe
  store->put(a, value, std::chrono::seconds(60));
  store->put(b, value, std::chrono::seconds(1));
  EXPECT_EQ(store->get(a), value);
  EXPECT_TRUE(store->alive(a));
  EXPECT_EQ(store->count(), 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  EXPECT_FALSE(store->get(b).has_value());
  EXPECT_FALSE(store->alive(b));
  EXPECT_TRUE(store->erase(a));
  EXPECT_FALSE(store->erase(a));
  EXPECT_EQ(store->count(), 0u);
  EXPECT_FALSE(store->get("../../etc").has_value());
  EXPECT_THROW(serve::open_key_store("redis://127.0.0.1:" + std::to_string(free_loopback_port())), Error);
}

// Two replicas behind any load balancer: sessions opened on one are served by the
// other, deleted everywhere at once, and survive the loss of the replica that opened them.
TEST(Serve, TwoServersShareOneRedis) {
  RedisServer redis;
  auto b = std::make_unique<Server>(redis.url());
  auto a = std::make_unique<Server>(redis.url());
  auto ha = a->client(), hb = b->client();
  Client c;
  const auto imgs = images(8);
  const std::string first = c.open(ha), second = c.open(ha);
  for (int r = 0; r < 2; ++r) {  // alternating replicas
    EXPECT_GE(agreement(infer(c, hb, first, imgs), imgs), 7u);
    EXPECT_GE(agreement(infer(c, ha, first, imgs), imgs), 7u);
  }
  auto del = hb.Delete(("/v1/sessions/" + first).c_str());
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 204);
  expect_json_error(ha.Post(("/v1/sessions/" + first + "/infer").c_str(), c.query(imgs), "application/octet-stream"),
                    404, "a session deleted through the other replica");
  a.reset();  // the replica that opened `second` is gone
  EXPECT_GE(agreement(infer(c, hb, second, imgs), imgs), 7u);
}

// The query client against a real server: batches, cached keys (0600 secret key),
// a reused session, and a server that forgot the session.
TEST(Serve, QueryClientEncryptsSendsAndDecrypts) {
  TempDir store, cache;
  const auto imgs = images(70);  // a full batch of 64 and one of 6
  std::string secret_before;
  int port = 0;
  {
    Server s(store.path.string());
    port = s.server.port();
    serve::QueryOptions o;
    o.cache_dir = cache.path.string();
    std::vector<std::string> lines;
    o.progress = [&](const std::string& l) { lines.push_back(l); };
    serve::QueryClient q("http://127.0.0.1:" + std::to_string(s.server.port()), "digits", o);
    EXPECT_EQ(q.batch(), 64u);
    EXPECT_EQ(q.input_size(), 28u * 28u);
    const auto out = q.infer(imgs);
    ASSERT_EQ(out.size(), 70u);
    std::vector<int> classes;
    for (const auto& y : out) classes.push_back(nn::argmax(y));
    EXPECT_GE(agreement(classes, imgs), 68u);
    const fs::path sk = fs::path(q.key_dir()) / "secret.key";
    ASSERT_TRUE(fs::exists(sk));
    EXPECT_EQ(fs::status(sk).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
    secret_before = read_bytes(sk);
    EXPECT_THROW(q.infer({std::vector<double>(5, 0.0)}), Error);  // wrong size, refused locally
    EXPECT_GE(lines.size(), 3u);
  }
  // A restarted server on the same address with an empty store: the cached session is
  // unknown there, the client opens another with the same cached keys.
  serve::ServerOptions restarted;
  restarted.port = port;
  Server s2(store.path.string() + "-2", restarted);
  serve::QueryOptions o;
  o.cache_dir = cache.path.string();
  serve::QueryClient q("http://127.0.0.1:" + std::to_string(port), "digits", o);
  const auto out = q.infer(std::vector<std::vector<double>>(imgs.begin(), imgs.begin() + 4));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(read_bytes(fs::path(q.key_dir()) / "secret.key"), secret_before);  // the same keys
  q.close();
  fs::remove_all(store.path.string() + "-2");
  EXPECT_THROW(serve::QueryClient("http://127.0.0.1:" + std::to_string(s2.server.port()), "nope", o), Error);
  EXPECT_THROW(serve::QueryClient("ftp://x", "digits", o), Error);
  EXPECT_THROW(serve::QueryClient("http://127.0.0.1:" + std::to_string(free_loopback_port()), "digits", o), Error);
}

// HTTPS with a self-signed certificate made by the test (Debian's openssl command).
TEST(Serve, ServesOverTls) {
  TempDir store, tls, cache;
  const std::string cert = (tls.path / "cert.pem").string(), key = (tls.path / "key.pem").string();
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
                          " -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a test certificate";
  serve::ServerOptions o;
  o.tls_cert = cert;
  o.tls_key = key;
  Server s(store.path.string(), o);
  serve::QueryOptions q;
  q.cache_dir = cache.path.string();
  q.ca_cert = cert;
  serve::QueryClient client("https://127.0.0.1:" + std::to_string(s.server.port()), "digits", q);
  const auto imgs = images(4);
  const auto out = client.infer(imgs);
  ASSERT_EQ(out.size(), 4u);
  // Plain HTTP to the TLS port gets nowhere; an untrusted certificate is refused.
  httplib::Client plain("127.0.0.1", s.server.port());
  auto r = plain.Get("/healthz");
  EXPECT_TRUE(!r || r->status != 200);
  serve::QueryOptions untrusting;
  untrusting.cache_dir = cache.path.string();
  untrusting.ca_cert = (tls.path / "missing.pem").string();
  EXPECT_THROW(serve::QueryClient("https://127.0.0.1:" + std::to_string(s.server.port()), "digits", untrusting), Error);
  serve::ServerOptions half;
  half.tls_cert = cert;
  EXPECT_THROW(Server(store.path.string(), half), Error);
}

// n values drawn uniformly from [lo, hi) (random weights and inputs of the served models).
std::vector<double> uniform(std::mt19937_64& rng, size_t n, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Serves `file` on a loopback port, queries `inputs` through a QueryClient (after
// `check` looks at it) and returns the promise's metric (nn/compile.hpp): the largest
// error over max(1, max |y|) against model.forward, over every output.
double served_relative_error(const nn::Sequential& model, const nn::ModelFile& file,
                             const std::vector<std::vector<double>>& inputs,
                             const std::function<void(serve::QueryClient&)>& check = {}) {
  TempDir store, cache;
  serve::ModelServer server({file}, std::make_shared<serve::DirectoryKeyStore>(store.path.string()));
  server.start();
  serve::QueryOptions q;
  q.cache_dir = cache.path.string();
  serve::QueryClient client("http://127.0.0.1:" + std::to_string(server.port()), file.name, q);
  if (check) check(client);
  const auto out = client.infer(inputs);
  EXPECT_EQ(out.size(), inputs.size());
  double ref = 1, err = 0;
  for (size_t i = 0; i < std::min(out.size(), inputs.size()); ++i) {
    const auto want = model.forward(inputs[i]);
    EXPECT_EQ(out[i].size(), want.size());
    for (size_t k = 0; k < std::min(want.size(), out[i].size()); ++k) {
      ref = std::max(ref, std::fabs(want[k]));
      err = std::max(err, std::fabs(out[i][k] - want[k]));
    }
  }
  return err / ref;
}

// compile -> serve -> query of an MLP (two hidden layers, a square and a polynomial
// activation): the outputs match float64 within the promised precision.
TEST(Serve, MlpCompiledServedAndQueriedKeepsItsPromise) {
  std::mt19937_64 rng(5);
  auto w = [&](size_t n) { return uniform(rng, n, -0.5, 0.5); };
  nn::Sequential mlp(8, 8);
  mlp.flatten().linear(16, w(16 * 64), w(16)).square().linear(12, w(12 * 16), w(12));
  mlp.activation(nn::Polynomial::from_power({0, 1, 0.1}, -8, 8)).linear(3, w(3 * 12), w(3));
  nn::AutoCompileOptions o;
  o.input_min = -1;
  o.precision_bits = 14;
  const nn::ModelFile file = nn::compile_model(mlp, "mlp", o);
  std::vector<std::vector<double>> inputs;
  for (int i = 0; i < 5; ++i) inputs.push_back(uniform(rng, 64, -1, 1));
  const double err = served_relative_error(mlp, file, inputs);
  EXPECT_LE(err, std::ldexp(1.0, -14)) << "measured " << -std::log2(err) << " bits";
}

// compile -> serve -> query of a multi-channel CNN with every spatial layer kind: the
// client rebuilds the plan from the server's description (spatial packing, channels
// per ciphertext, affine, padded and depthwise convs, a residual block, a padded pool,
// a global pool) and its answers match float64 within the promised precision.
TEST(Serve, MultiChannelCnnCompiledServedAndQueriedKeepsItsPromise) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(-0.4, 0.4);
  auto w = [&](size_t n) { return uniform(rng, n, -0.4, 0.4); };
  std::vector<double> depthwise(4 * 4 * 9, 0.0);
  for (size_t c = 0; c < 4; ++c)
    for (size_t t = 0; t < 9; ++t) depthwise[(c * 4 + c) * 9 + t] = u(rng);
  nn::Sequential cnn(2, 8, 8);
  cnn.affine({2.0, -1.0}, {-1.0, 0.5})
      .conv2d(4, 3, 1, nn::Padding::same(1), w(4 * 2 * 9), w(4))
      .square()
      .residual_begin()
      .conv2d(4, 3, 1, nn::Padding::same(1), depthwise, w(4))
      .residual_add()
      .avg_pool2d(3, 1, nn::Padding::same(1), false)
      .global_avg_pool()
      .flatten()
      .linear(3, w(3 * 4), w(3));
  nn::AutoCompileOptions o;
  o.precision_bits = 12;
  const nn::ModelFile file = nn::compile_model(cnn, "cnn", o);
  std::vector<std::vector<double>> inputs;
  for (int i = 0; i < 3; ++i) inputs.push_back(uniform(rng, 128, 0, 1));
  const double err = served_relative_error(cnn, file, inputs,
                                           [](serve::QueryClient& c) { EXPECT_EQ(c.input_channels(), 2u); });
  EXPECT_LE(err, std::ldexp(1.0, -12)) << "measured " << -std::log2(err) << " bits";
}

// Packing::Slots through the whole path: compiled with automatic parameters, served,
// queried with a few inputs of a run of slots(); the session needs no Galois key.
TEST(Serve, SlotsPackedCnnCompiledServedAndQueriedKeepsItsPromise) {
  std::mt19937_64 rng(19);
  auto w = [&](size_t n) { return uniform(rng, n, -0.4, 0.4); };
  nn::Sequential cnn(2, 6, 6);
  cnn.conv2d(3, 3, 1, nn::Padding::same(1), w(3 * 2 * 9), w(3)).square().avg_pool2d(2).flatten().linear(3, w(3 * 27), w(3));
  nn::AutoCompileOptions o;
  o.precision_bits = 12;
  o.packing = nn::Packing::Slots;
  const nn::ModelFile file = nn::compile_model(cnn, "slots", o);
  EXPECT_EQ(file.options.packing, nn::Packing::Slots);
  EXPECT_EQ(file.options.batch, file.params.slots());
  EXPECT_EQ(nn::query_cost(file).galois_keys, 0u);
  const nn::ModelFile again = nn::deserialize_model(nn::serialize_model(file));
  EXPECT_EQ(again.options.packing, nn::Packing::Slots);
  std::vector<std::vector<double>> inputs;
  for (int i = 0; i < 5; ++i) inputs.push_back(uniform(rng, 72, 0, 1));
  const double err = served_relative_error(cnn, again, inputs);
  EXPECT_LE(err, std::ldexp(1.0, -12)) << "measured " << -std::log2(err) << " bits";
}

#ifdef VEIL_TEST_ONNX
// compile -> serve -> query of a torch-exported CNN with BatchNorm (2-D and 1-D),
// AveragePool, Gemm, a polynomial and MatMul: the decrypted outputs match torch's
// float64 outputs (tests/data/onnx_ops_expected.txt) within the promised precision.
TEST(Serve, TorchModelCompiledServedAndQueriedKeepsItsPromise) {
  std::ifstream in(kData + "/onnx_ops_expected.txt");
  std::vector<std::vector<double>> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::vector<double> v;
    for (double x; ls >> x;) v.push_back(x);
    rows.push_back(v);
  }
  ASSERT_EQ(rows.size(), 8u);
  std::vector<std::vector<double>> inputs, torch;
  double lo = 0, hi = 0;
  for (size_t i = 0; i < rows.size(); i += 2) {
    inputs.push_back(rows[i]);
    torch.push_back(rows[i + 1]);
    for (double x : rows[i]) lo = std::min(lo, x), hi = std::max(hi, x);
  }
  nn::AutoCompileOptions o;
  o.input_min = lo, o.input_max = hi;
  o.max_log_n = 14;
  const nn::ModelFile file = nn::compile_model(nn::import_onnx(kData + "/onnx_ops.onnx"), "ops", o);
  TempDir store, cache;
  serve::ModelServer server({file}, std::make_shared<serve::DirectoryKeyStore>(store.path.string()));
  server.start();
  serve::QueryOptions q;
  q.cache_dir = cache.path.string();
  serve::QueryClient client("http://127.0.0.1:" + std::to_string(server.port()), "ops", q);
  const auto out = client.infer(inputs);
  ASSERT_EQ(out.size(), inputs.size());
  double ref = 1, err = 0;  // the promise's metric, over all inputs
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t k = 0; k < out[i].size(); ++k) {
      ref = std::max(ref, std::fabs(torch[i][k]));
      err = std::max(err, std::fabs(out[i][k] - torch[i][k]));
    }
  EXPECT_LE(err, std::ldexp(ref, -static_cast<int>(file.promised_bits)) + 1e-6)
      << "measured " << -std::log2(err / ref) << " bits";
}
#endif

TEST(Serve, RefusesBadConfigurations) {
  TempDir store;
  auto ks = std::make_shared<serve::DirectoryKeyStore>(store.path.string());
  EXPECT_THROW(serve::ModelServer({}, ks), Error);
  EXPECT_THROW(serve::ModelServer({digits_file(), digits_file()}, ks), Error);
  EXPECT_THROW(serve::ModelServer({digits_file()}, nullptr), Error);
  EXPECT_FALSE(serve::valid_session_id("../../etc/passwd"));
  EXPECT_TRUE(serve::valid_session_id(serve::new_session_id()));
  EXPECT_NE(serve::new_session_id(), serve::new_session_id());
}

}  // namespace
}  // namespace veil::test
