// Untrusted input: HTTP requests to the model server, driven through
// ModelServer::respond (the routes' own code, without sockets). The first byte picks
// the request: keys for a new session, an inference on a live session, an inference or
// a delete on a session id from the data, a model name from the data, or any method,
// target and body ("METHOD\nTARGET\nBODY"). A 5xx other than 503 is a finding: every bad
// request must get a 4xx and leave the server serving.
#include <unistd.h>

#include <filesystem>

#include "fuzz_fixture.hpp"
#include "veil/serve/server.hpp"

namespace {

struct Http {
  std::unique_ptr<veil::serve::ModelServer> server;
  std::string session;

  Http() {
    const auto& f = veil::fuzz::fixture();
    veil::nn::Sequential m(2, 2);
    m.flatten().linear(2, std::vector<double>(8, 0.25));
    veil::nn::CompileOptions o;
    o.batch = 2;
    const std::string dir = "/tmp/veil-fuzz-http-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    server = std::make_unique<veil::serve::ModelServer>(
        std::vector<veil::nn::ModelFile>{{"tiny", m, f.params, o, 0, 1, 8, 9, 1, "fuzz"}},
        std::make_shared<veil::serve::DirectoryKeyStore>(dir));
    veil::nn::CompiledModel plan(f.ctx, m, o);
    const veil::Bytes rk = veil::serialize(f.rk);
    veil::KeyGenerator kg(f.ctx, f.keygen.secret_key(), veil::RandomSource::insecure_deterministic(3));
    const veil::Bytes gk = veil::serialize(kg.create_galois_keys(plan.rotation_steps(), false));
    std::string body(rk.begin(), rk.end());
    body.append(gk.begin(), gk.end());
    const auto a = server->respond("POST", "/v1/sessions?model=tiny", body);
    if (a.status != 201) veil::fuzz::finding("the fuzz fixture cannot open a session");
    session = a.body.substr(a.body.find("\"session\":\"") + 11, 64);
  }
};

Http& http() {
  static Http h;
  return h;
}

void fuzz_one(veil::ByteView in) {
  if (in.empty()) return;
  Http& h = http();
  const std::string data(reinterpret_cast<const char*>(in.data()) + 1, in.size() - 1);
  veil::serve::ModelServer::Answer a;
  switch (in[0] % 6) {
    case 0: a = h.server->respond("POST", "/v1/sessions?model=tiny", data); break;
    case 1: a = h.server->respond("POST", "/v1/sessions/" + h.session + "/infer", data); break;
    case 2: a = h.server->respond("POST", "/v1/sessions/" + data.substr(0, 64) + "/infer", data.substr(std::min<size_t>(64, data.size()))); break;
    case 3: a = h.server->respond("GET", "/v1/models/" + data, ""); break;
    case 4: a = h.server->respond("DELETE", "/v1/sessions/" + data, ""); break;
    default: {
      const size_t m = data.find('\n'), t = m == std::string::npos ? m : data.find('\n', m + 1);
      if (t == std::string::npos) return;
      a = h.server->respond(data.substr(0, m), data.substr(m + 1, t - m - 1), data.substr(t + 1));
    }
  }
  if (!(a.status >= 200 && (a.status < 500 || a.status == 503))) {
    std::fprintf(stderr, "request kind %d: HTTP %d %s\n", in[0] % 6, a.status, a.body.substr(0, 300).c_str());
    veil::fuzz::finding("the server answered a 5xx");
  }
}

}  // namespace
VEIL_FUZZ_TARGET(fuzz_one)
