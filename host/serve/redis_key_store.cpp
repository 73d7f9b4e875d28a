// The Redis key store (include/veil/serve/key_store.hpp) over hiredis.
#include <hiredis/hiredis.h>

#include "veil/error.hpp"
#include "veil/serve/key_store.hpp"

namespace veil::serve {

struct RedisKeyStore::Connection {
  redisContext* ctx = nullptr;
  ~Connection() {
    if (ctx) redisFree(ctx);
  }
};

namespace {

struct Reply {
  redisReply* r;
  ~Reply() {
    if (r) freeReplyObject(r);
  }
};

}  // namespace

RedisKeyStore::RedisKeyStore(std::string host, int port, std::string prefix)
    : host_(std::move(host)), prefix_(std::move(prefix)), port_(port), conn_(std::make_unique<Connection>()) {
  require(port_ > 0 && port_ < 65536, ErrorCode::InvalidArgument, "redis key store: bad port");
  std::lock_guard lock(mutex_);
  // Connect now, so that a wrong address fails at start-up rather than on the first request.
  conn_->ctx = redisConnect(host_.c_str(), port_);
  require(conn_->ctx && !conn_->ctx->err, ErrorCode::Backend,
          "redis key store: cannot connect to " + describe() +
              (conn_->ctx ? std::string(": ") + conn_->ctx->errstr : std::string()));
}

RedisKeyStore::~RedisKeyStore() = default;

std::string RedisKeyStore::describe() const {
  return "redis://" + host_ + ":" + std::to_string(port_) + "/" + prefix_;
}

namespace {

// Runs one command (argv form: binary-safe), reconnecting once when the connection broke.
redisReply* command(redisContext*& ctx, const std::string& host, int port, const std::vector<std::string>& args,
                    const std::string& where) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) argv.push_back(a.data()), lens.push_back(a.size());
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!ctx || ctx->err) {
      if (ctx) redisFree(ctx);
      ctx = redisConnect(host.c_str(), port);
      if (!ctx || ctx->err) continue;
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (r) {
      if (r->type == REDIS_REPLY_ERROR) {
        const std::string msg(r->str, r->len);
        freeReplyObject(r);
        throw Error(ErrorCode::Backend, "redis key store (" + where + "): " + msg);
      }
      return r;
    }
  }
  throw Error(ErrorCode::Backend, "redis key store: " + where + " is unreachable" +
                                      (ctx ? std::string(" (") + ctx->errstr + ")" : std::string()));
}

}  // namespace

void RedisKeyStore::put(const std::string& id, const std::vector<uint8_t>& value, std::chrono::seconds ttl) {
  require(valid_session_id(id), ErrorCode::InvalidArgument, "key store: malformed session id");
  std::lock_guard lock(mutex_);
  Reply r{command(conn_->ctx, host_, port_,
                  {"SET", prefix_ + id, std::string(value.begin(), value.end()), "EX",
                   std::to_string(std::max<int64_t>(1, ttl.count()))},
                  describe())};
}

std::optional<std::vector<uint8_t>> RedisKeyStore::get(const std::string& id) {
  if (!valid_session_id(id)) return std::nullopt;
  std::lock_guard lock(mutex_);
  Reply r{command(conn_->ctx, host_, port_, {"GET", prefix_ + id}, describe())};
  if (r.r->type != REDIS_REPLY_STRING) return std::nullopt;
  return std::vector<uint8_t>(r.r->str, r.r->str + r.r->len);
}

bool RedisKeyStore::alive(const std::string& id) {
  if (!valid_session_id(id)) return false;
  std::lock_guard lock(mutex_);
  Reply r{command(conn_->ctx, host_, port_, {"EXISTS", prefix_ + id}, describe())};
  return r.r->type == REDIS_REPLY_INTEGER && r.r->integer == 1;
}

bool RedisKeyStore::erase(const std::string& id) {
  if (!valid_session_id(id)) return false;
  std::lock_guard lock(mutex_);
  Reply r{command(conn_->ctx, host_, port_, {"DEL", prefix_ + id}, describe())};
  return r.r->type == REDIS_REPLY_INTEGER && r.r->integer > 0;
}

// SCAN over the prefix (Redis drops expired keys itself).
size_t RedisKeyStore::count() {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  std::string cursor = "0";
  do {
    Reply r{command(conn_->ctx, host_, port_, {"SCAN", cursor, "MATCH", prefix_ + "*", "COUNT", "1000"}, describe())};
    if (r.r->type != REDIS_REPLY_ARRAY || r.r->elements != 2) break;
    cursor.assign(r.r->element[0]->str, r.r->element[0]->len);
    n += r.r->element[1]->elements;
  } while (cursor != "0");
  return n;
}

std::shared_ptr<KeyStore> open_key_store(const std::string& spec) {
  const std::string scheme = "redis://";
  if (spec.rfind(scheme, 0) != 0) return std::make_shared<DirectoryKeyStore>(spec);
  const std::string rest = spec.substr(scheme.size());
  const size_t slash = rest.find('/');
  const std::string addr = rest.substr(0, slash);
  const std::string prefix = slash == std::string::npos || slash + 1 == rest.size() ? "veil:session:"
                                                                                     : rest.substr(slash + 1);
  const size_t colon = addr.rfind(':');
  int port = 6379;
  if (colon != std::string::npos) {
    try {
      port = std::stoi(addr.substr(colon + 1));
    } catch (const std::exception&) {
      throw Error(ErrorCode::InvalidArgument, "key store: bad port in " + spec);
    }
  }
  const std::string host = colon == std::string::npos ? addr : addr.substr(0, colon);
  require(!host.empty(), ErrorCode::InvalidArgument, "key store: no host in " + spec + " (redis://HOST:PORT)");
  return std::make_shared<RedisKeyStore>(host, port, prefix);
}

}  // namespace veil::serve
