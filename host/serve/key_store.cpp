// The directory key store and session ids (include/veil/serve/key_store.hpp).
#include "veil/serve/key_store.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "veil/error.hpp"

namespace veil::serve {

namespace fs = std::filesystem;

namespace {

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Reads a whole entry: expiry, then value. nullopt when unreadable or malformed.
std::optional<std::pair<int64_t, std::vector<uint8_t>>> read_entry(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  uint8_t head[8];
  if (!f.read(reinterpret_cast<char*>(head), 8)) return std::nullopt;
  int64_t expiry = 0;
  for (int i = 0; i < 8; ++i) expiry |= static_cast<int64_t>(head[i]) << (8 * i);
  std::vector<uint8_t> value((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return std::make_pair(expiry, std::move(value));
}

}  // namespace

bool valid_session_id(const std::string& id) {
  if (id.size() != 64) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string new_session_id() {
  require(sodium_init() >= 0, ErrorCode::Backend, "libsodium failed to initialise");
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  return std::string(hex, 64);
}

DirectoryKeyStore::DirectoryKeyStore(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  require(!ec && fs::is_directory(dir_), ErrorCode::InvalidArgument, "key store: cannot create directory " + dir_);
  ::chmod(dir_.c_str(), 0700);
}

std::string DirectoryKeyStore::path(const std::string& id) const {
  require(valid_session_id(id), ErrorCode::InvalidArgument, "key store: malformed session id");
  return dir_ + "/" + id + ".keys";
}

void DirectoryKeyStore::put(const std::string& id, const std::vector<uint8_t>& value, std::chrono::seconds ttl) {
  sweep();
  const std::string final_path = path(id), tmp = final_path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  require(fd >= 0, ErrorCode::Backend, "key store: cannot write " + tmp);
  uint8_t head[8];
  const int64_t expiry = now_unix() + ttl.count();
  for (int i = 0; i < 8; ++i) head[i] = static_cast<uint8_t>(expiry >> (8 * i));
  bool ok = ::write(fd, head, 8) == 8;
  size_t done = 0;
  while (ok && done < value.size()) {
    const ssize_t n = ::write(fd, value.data() + done, value.size() - done);
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), final_path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(ErrorCode::Backend, "key store: cannot write " + final_path);
  }
}

std::optional<std::vector<uint8_t>> DirectoryKeyStore::get(const std::string& id) {
  if (!valid_session_id(id)) return std::nullopt;
  auto entry = read_entry(path(id));
  if (!entry) return std::nullopt;
  if (entry->first <= now_unix()) {
    std::remove(path(id).c_str());
    return std::nullopt;
  }
  return std::move(entry->second);
}

bool DirectoryKeyStore::alive(const std::string& id) {
  if (!valid_session_id(id)) return false;
  std::ifstream f(path(id), std::ios::binary);
  uint8_t head[8];
  if (!f.read(reinterpret_cast<char*>(head), 8)) return false;
  int64_t expiry = 0;
  for (int i = 0; i < 8; ++i) expiry |= static_cast<int64_t>(head[i]) << (8 * i);
  return expiry > now_unix();
}

bool DirectoryKeyStore::erase(const std::string& id) {
  if (!valid_session_id(id)) return false;
  return std::remove(path(id).c_str()) == 0;
}

size_t DirectoryKeyStore::count() {
  sweep();
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.path().extension() == ".keys") ++n;
  return n;
}

// Removes expired entries (reads only their 8-byte heads).
void DirectoryKeyStore::sweep() {
  std::lock_guard lock(sweep_mutex_);
  const int64_t now = now_unix();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != ".keys") continue;
    std::ifstream f(e.path(), std::ios::binary);
    uint8_t head[8];
    if (!f.read(reinterpret_cast<char*>(head), 8)) continue;
    int64_t expiry = 0;
    for (int i = 0; i < 8; ++i) expiry |= static_cast<int64_t>(head[i]) << (8 * i);
    if (expiry <= now) fs::remove(e.path(), ec);
  }
}

}  // namespace veil::serve
