// Where a model server keeps its sessions' evaluation keys, so that several server
// processes can serve the same sessions: an interface, and the embedded default, a
// local directory. Entries expire (TTL); an expired entry reads as absent.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace veil::serve {

class KeyStore {
 public:
  virtual ~KeyStore() = default;
  // Stores `value` under `id` (64 hex characters) for `ttl`. Errors: Error(Backend)
  // when the store cannot be written.
  virtual void put(const std::string& id, const std::vector<uint8_t>& value, std::chrono::seconds ttl) = 0;
  // The value, or nullopt when absent or expired.
  virtual std::optional<std::vector<uint8_t>> get(const std::string& id) = 0;
  // True when the entry exists and has not expired (cheap: what a server asks before
  // using keys it cached, so a session deleted through another server is gone here too).
  virtual bool alive(const std::string& id) = 0;
  // True when something was removed.
  virtual bool erase(const std::string& id) = 0;
  // Live (unexpired) entries.
  virtual size_t count() = 0;
  virtual std::string describe() const = 0;
};

// One file per entry in `dir` (created 0700; files 0600, written whole then renamed):
// 8 bytes of expiry (unix seconds, little-endian), then the value. Expired files are
// removed when read and by put()'s sweep.
class DirectoryKeyStore final : public KeyStore {
 public:
  explicit DirectoryKeyStore(std::string dir);
  void put(const std::string& id, const std::vector<uint8_t>& value, std::chrono::seconds ttl) override;
  std::optional<std::vector<uint8_t>> get(const std::string& id) override;
  bool alive(const std::string& id) override;
  bool erase(const std::string& id) override;
  size_t count() override;
  std::string describe() const override { return "directory " + dir_; }

 private:
  std::string path(const std::string& id) const;
  void sweep();
  std::string dir_;
  std::mutex sweep_mutex_;
};

// Redis (hiredis), so that several servers behind a load balancer share sessions:
// each entry is one key "<prefix><id>" holding the value, with Redis's own expiry
// (SET ... EX ttl). One connection, serialized by a mutex, reconnected after a
// failure. Errors: Error(Backend) naming the server when Redis cannot be reached or
// answers with an error.
class RedisKeyStore final : public KeyStore {
 public:
  RedisKeyStore(std::string host, int port, std::string prefix = "veil:session:");
  ~RedisKeyStore() override;
  void put(const std::string& id, const std::vector<uint8_t>& value, std::chrono::seconds ttl) override;
  std::optional<std::vector<uint8_t>> get(const std::string& id) override;
  bool alive(const std::string& id) override;
  bool erase(const std::string& id) override;
  size_t count() override;
  std::string describe() const override;

 private:
  struct Connection;
  std::string host_, prefix_;
  int port_;
  std::mutex mutex_;
  std::unique_ptr<Connection> conn_;
};

// A store from a command-line spec: "redis://HOST:PORT[/PREFIX]" or a directory path.
std::shared_ptr<KeyStore> open_key_store(const std::string& spec);

// True for exactly 64 lowercase hexadecimal characters (what new_session_id makes).
bool valid_session_id(const std::string& id);
// 32 bytes from the OS CSPRNG (libsodium), hex.
std::string new_session_id();

}  // namespace veil::serve
