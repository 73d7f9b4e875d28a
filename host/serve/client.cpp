// The query client (include/veil/serve/client.hpp). The model's input and output
// layouts come from a skeleton of its layers (shapes without values, as the server
// describes them): CompiledModel's encode/decode depend on the shapes only.
#include "veil/serve/client.hpp"

#include <fcntl.h>
#include <httplib.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "veil/context.hpp"
#include "veil/encoder.hpp"
#include "veil/encryptor.hpp"
#include "veil/error.hpp"
#include "veil/keygen.hpp"
#include "veil/nn/model.hpp"
#include "veil/serialization.hpp"

namespace veil::serve {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

[[noreturn]] void bad_description(const std::string& what) {
  throw Error(ErrorCode::Serialization, "the server's model description is malformed: " + what);
}

Bytes from_base64(const std::string& s) {
  Bytes out(s.size());
  size_t len = 0;
  if (sodium_base642bin(out.data(), out.size(), s.data(), s.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    bad_description("parameters are not base64");
  out.resize(len);
  return out;
}

// The layers with placeholder values: ones everywhere, so no diagonal or coefficient
// vanishes (a polynomial keeps its degree, hence its depth).
nn::Sequential skeleton(const json& d) {
  const size_t h = d.at("input").at("height"), w = d.at("input").at("width");
  const size_t channels = d.at("input").value("channels", size_t{1});
  nn::Sequential m(channels, h, w);
  auto padding = [](const json& l) {
    const auto p = l.value("pads", std::vector<size_t>{0, 0, 0, 0});
    if (p.size() != 4) bad_description("pads must hold 4 values");
    return nn::Padding{p[0], p[1], p[2], p[3]};
  };
  for (const json& l : d.at("layers")) {
    const std::string kind = l.at("kind");
    if (kind == "conv2d") {
      const size_t out = l.at("out"), k = l.at("kernel"), stride = l.at("stride"), in = m.output_shape().channels;
      if (out == 0 || k == 0 || k > 64 || out > (size_t{1} << 20) || in * k * k > (size_t{1} << 28) / out)
        bad_description("conv2d layer size");
      m.conv2d(out, k, stride, padding(l), std::vector<double>(out * in * k * k, 1.0), std::vector<double>(out, 0.0));
    } else if (kind == "square") {
      m.square();
    } else if (kind == "activation") {
      const int degree = l.at("degree");
      if (degree < 0 || degree > 63) bad_description("activation degree");
      m.activation(nn::Polynomial(std::vector<double>(static_cast<size_t>(degree) + 1, 1.0), l.at("a"), l.at("b")));
    } else if (kind == "avg_pool2d") {
      const size_t k = l.at("kernel");
      m.avg_pool2d(k, l.value("stride", k), padding(l), l.value("count_include_pad", true));
    } else if (kind == "global_avg_pool") {
      m.global_avg_pool();
    } else if (kind == "residual_begin") {
      m.residual_begin();
    } else if (kind == "residual_add") {
      m.residual_add();
    } else if (kind == "affine") {
      const nn::TensorShape s = m.output_shape();
      const size_t n = s.flat ? s.size() : s.channels;
      m.affine(std::vector<double>(n, 1.0), std::vector<double>(n, 0.0));
    } else if (kind == "flatten") {
      m.flatten();
    } else if (kind == "linear") {
      const size_t out = l.at("out"), in = m.output_shape().size();
      if (out == 0 || in > (size_t{1} << 28) / out) bad_description("linear layer size");
      m.linear(out, std::vector<double>(out * in, 1.0));
    } else {
      bad_description("unknown layer kind \"" + kind + "\" (a newer server? update veil)");
    }
  }
  return m;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Written whole; `secret` files are created 0600 and never replaced.
void write_file(const fs::path& p, const Bytes& data, bool secret) {
  const fs::path tmp = p.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_CREAT | O_WRONLY | O_TRUNC, secret ? 0600 : 0644);
  require(fd >= 0, ErrorCode::InvalidArgument, "cannot write " + tmp.string());
  size_t done = 0;
  bool ok = true;
  while (ok && done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = (::close(fd) == 0) && ok;
  require(ok && std::rename(tmp.c_str(), p.c_str()) == 0, ErrorCode::InvalidArgument, "cannot write " + p.string());
}

fs::path default_cache() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "veil";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "veil";
  return fs::temp_directory_path() / "veil-cache";
}

std::string safe_segment(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  return s;
}

// "http://host:port/" -> "http://host:port" (httplib takes scheme, host and port only).
std::string base_url(std::string url) {
  while (url.size() > 8 && url.back() == '/') url.pop_back();
  return url;
}

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct QueryClient::Impl {
  std::string url, model;
  QueryOptions opt;
  std::unique_ptr<httplib::Client> http;
  json desc;
  ContextPtr ctx;
  std::unique_ptr<nn::CompiledModel> plan;
  std::optional<nn::InputFeaturizer> featurizer;
  std::optional<KeyGenerator> keygen;
  std::optional<Encoder> encoder;
  std::optional<Encryptor> encryptor;
  std::optional<Decryptor> decryptor;
  fs::path dir;
  std::string session;

  void say(const std::string& line) const {
    if (opt.progress) opt.progress(line);
  }

  // The server's JSON error message, or what went wrong on the way.
  [[noreturn]] void refused(const httplib::Result& r, const std::string& what) const {
    if (!r) throw Error(ErrorCode::Backend, what + ": cannot reach " + url + " (" + httplib::to_string(r.error()) + ")");
    std::string message = r->body;
    const json j = json::parse(r->body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) message = j["error"];
    throw Error(r->status == 404 && what == "model" ? ErrorCode::InvalidArgument : ErrorCode::Backend,
                what + ": the server answered " + std::to_string(r->status) + ": " + message);
  }

  void load_keys() {
    const Parameters& p = ctx->params();
    char fp[17];
    std::snprintf(fp, sizeof fp, "%016llx", static_cast<unsigned long long>(p.fingerprint()));
    dir = (opt.cache_dir.empty() ? default_cache() : fs::path(opt.cache_dir)) / safe_segment(url) /
          (safe_segment(model) + "-" + fp);
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
    const fs::path sk = dir / "secret.key";
    if (fs::exists(sk)) {
      const std::string b = read_file(sk);
      keygen.emplace(ctx, deserialize_secret_key(ctx, ByteView(reinterpret_cast<const uint8_t*>(b.data()), b.size())),
                     RandomSource::os());
    } else {
      say("generating keys (N = " + std::to_string(p.n()) + ")");
      keygen.emplace(ctx);
      write_file(sk, serialize_secret_key(keygen->secret_key()), true);
    }
    if (!fs::exists(dir / "evaluation.keys")) {
      const auto steps = desc.at("rotation_steps").get<std::vector<int64_t>>();
      Bytes body = serialize(keygen->create_relin_key());
      const Bytes gk = serialize(keygen->create_galois_keys(steps, false));
      body.insert(body.end(), gk.begin(), gk.end());
      write_file(dir / "evaluation.keys", body, false);
    }
    encoder.emplace(ctx);
    encryptor.emplace(ctx, keygen->secret_key());
    decryptor.emplace(ctx, keygen->secret_key());
    const json s = json::parse(read_file(dir / "session.json"), nullptr, false);
    if (s.is_object() && s.value("expires", int64_t{0}) > now_unix() + 60) session = s.value("session", "");
  }

  void open_session() {
    say("opening a session (uploading the evaluation keys once)");
    auto r = http->Post(("/v1/sessions?model=" + model).c_str(), read_file(dir / "evaluation.keys"),
                        "application/octet-stream");
    if (!r || r->status != 201) refused(r, "session");
    const json j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j.contains("session")) bad_description("session reply");
    session = j["session"];
    write_file(dir / "session.json",
               [&] {
                 const std::string s = json{{"session", session}, {"expires", now_unix() + j.value("expires_in", 0)}}.dump();
                 return Bytes(s.begin(), s.end());
               }(),
               true);
  }
};

std::string only_model(const std::string& url_in, const QueryOptions& options) {
  const std::string url = base_url(url_in);
  require(url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0, ErrorCode::InvalidArgument,
          "the server address must start with http:// or https://, got \"" + url + "\"");
  httplib::Client http(url);
  require(http.is_valid(), ErrorCode::InvalidArgument, "not a server address: " + url);
  http.set_connection_timeout(10);
  if (!options.ca_cert.empty()) http.set_ca_cert_path(options.ca_cert);
  auto r = http.Get("/v1/models");
  if (!r) throw Error(ErrorCode::Backend, "cannot reach " + url + " (" + httplib::to_string(r.error()) + ")");
  const json all = json::parse(r->body, nullptr, false);
  require(r->status == 200 && all.is_array(), ErrorCode::Backend, url + " is not a veil server (GET /v1/models)");
  std::string names;
  for (const auto& m : all) names += (names.empty() ? "" : ", ") + m.value("name", std::string("?"));
  require(all.size() == 1, ErrorCode::InvalidArgument,
          url + " serves " + std::to_string(all.size()) + " models (" + names + "): choose one with --model");
  return all[0].value("name", std::string());
}

QueryClient::QueryClient(const std::string& url_in, const std::string& model, QueryOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  const std::string url = base_url(url_in);
  c.url = url;
  c.model = model;
  c.opt = std::move(options);
  require(url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0, ErrorCode::InvalidArgument,
          "the server address must start with http:// or https://, got \"" + url + "\"");
  c.http = std::make_unique<httplib::Client>(url);
  require(c.http->is_valid(), ErrorCode::InvalidArgument, "not a server address: " + url);
  c.http->set_connection_timeout(10);
  c.http->set_read_timeout(c.opt.timeout.count());
  c.http->set_write_timeout(c.opt.timeout.count());
  if (!c.opt.ca_cert.empty()) c.http->set_ca_cert_path(c.opt.ca_cert);
  auto r = c.http->Get(("/v1/models/" + model).c_str());
  if (!r || r->status != 200) c.refused(r, "model");
  try {
    c.desc = json::parse(r->body);
    const Parameters params = deserialize_parameters(from_base64(c.desc.at("parameters").at("blob")));
    // A server must not talk its clients into weak parameters.
    require(params.security() == Security::HEStandard128, ErrorCode::InvalidArgument,
            "the server offers parameters below the 128-bit bound: refused");
    c.ctx = Context::create(params, BackendKind::Cpu);
    nn::CompileOptions o;
    o.packing = nn::parse_packing(c.desc.at("packing"));
    o.channel_blocks = c.desc.at("options").value("channel_blocks", size_t{0});
    o.plaintext_budget = 0;  // the client needs the layouts, not the weights
    o.batch = c.desc.at("batch");
    o.level = c.desc.at("options").at("level");
    o.scale = c.desc.at("options").at("scale");
    c.plan = std::make_unique<nn::CompiledModel>(c.ctx, skeleton(c.desc), o);
    require(c.plan->input_ciphertexts() == c.desc.at("input_ciphertexts").get<size_t>() &&
                c.plan->input_level() == c.desc.at("input_level").get<uint32_t>(),
            ErrorCode::Serialization, "the model's layout does not match its description");
    if (c.desc.contains("featurizer")) {
      const json& j = c.desc.at("featurizer");
      nn::InputFeaturizer f;
      f.name = j.at("name").get<std::string>();
      f.version = j.at("version").get<uint32_t>();
      f.cap = j.at("cap").get<double>();
      f.cells = j.at("cells").get<std::vector<uint32_t>>();
      f.property = j.value("property", std::string{});
      // The model file's own checks: a server cannot hand out a layout that writes
      // outside the input.
      try {
        const json& in = c.desc.at("input");
        nn::check_featurizer(f, in.value("channels", size_t{1}) * in.at("height").get<size_t>() * in.at("width").get<size_t>());
      } catch (const Error& e) {
        throw Error(ErrorCode::Serialization, std::string("the model's description: ") + e.what());
      }
      c.featurizer = std::move(f);
    }
  } catch (const json::exception& e) {
    bad_description(e.what());
  }
  c.load_keys();
}

QueryClient::~QueryClient() = default;

size_t QueryClient::batch() const { return impl_->plan->batch(); }
size_t QueryClient::input_size() const {
  return input_channels() * impl_->desc["input"]["height"].get<size_t>() * impl_->desc["input"]["width"].get<size_t>();
}
size_t QueryClient::input_channels() const { return impl_->desc["input"].value("channels", size_t{1}); }
size_t QueryClient::input_height() const { return impl_->desc["input"]["height"]; }
size_t QueryClient::input_width() const { return impl_->desc["input"]["width"]; }
size_t QueryClient::output_size() const { return impl_->plan->output_size(); }
double QueryClient::input_min() const { return impl_->desc["input_range"][0]; }
double QueryClient::input_max() const { return impl_->desc["input_range"][1]; }
const std::optional<nn::InputFeaturizer>& QueryClient::featurizer() const { return impl_->featurizer; }
std::string QueryClient::key_dir() const { return impl_->dir.string(); }

std::vector<std::vector<double>> QueryClient::infer(const std::vector<std::vector<double>>& inputs) {
  Impl& c = *impl_;
  for (size_t i = 0; i < inputs.size(); ++i) {
    require(inputs[i].size() == input_size(), ErrorCode::InvalidArgument,
            "input " + std::to_string(i) + " holds " + std::to_string(inputs[i].size()) + " values, the model takes " +
                std::to_string(input_size()));
    for (double v : inputs[i])
      require(std::isfinite(v), ErrorCode::InvalidArgument, "input " + std::to_string(i) + " is not finite");
  }
  std::vector<std::vector<double>> out;
  const nn::CompiledModel& plan = *c.plan;
  for (size_t first = 0; first < inputs.size(); first += plan.batch()) {
    const size_t count = std::min(plan.batch(), inputs.size() - first);
    c.say("batch " + std::to_string(first / plan.batch() + 1) + " of " +
          std::to_string((inputs.size() + plan.batch() - 1) / plan.batch()));
    const std::vector<std::vector<double>> batch(inputs.begin() + static_cast<std::ptrdiff_t>(first),
                                                 inputs.begin() + static_cast<std::ptrdiff_t>(first + count));
    std::string body;
    for (const auto& slots : plan.encode(batch)) {
      const Bytes b = serialize(c.encryptor->encrypt(
          c.encoder->encode(slots, plan.input_scale(), static_cast<int>(plan.input_level()))));
      body.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    if (c.session.empty()) c.open_session();
    auto r = c.http->Post(("/v1/sessions/" + c.session + "/infer").c_str(), body, "application/octet-stream");
    if (r && r->status == 404) {  // the server forgot the session (expiry, restart): once more
      c.open_session();
      r = c.http->Post(("/v1/sessions/" + c.session + "/infer").c_str(), body, "application/octet-stream");
    }
    if (!r || r->status != 200) c.refused(r, "inference");
    const auto blobs = split_blobs(ByteView(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size()),
                                   plan.output_ciphertexts());
    std::vector<std::vector<double>> decoded;
    for (const auto& b : blobs) decoded.push_back(c.encoder->decode(c.decryptor->decrypt(deserialize_ciphertext(c.ctx, b))));
    for (auto& y : plan.decode(decoded, count)) out.push_back(std::move(y));
  }
  return out;
}

void QueryClient::close() {
  Impl& c = *impl_;
  if (c.session.empty()) return;
  c.http->Delete(("/v1/sessions/" + c.session).c_str());
  c.session.clear();
  std::error_code ec;
  fs::remove(c.dir / "session.json", ec);
}

}  // namespace veil::serve
