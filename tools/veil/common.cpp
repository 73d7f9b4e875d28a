// Shared helpers of the `veil` program (common.hpp).
#include "common.hpp"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace veil::cli {

void bad_input(const std::string& message) { throw CliError(kBadInput, message); }

bool Verbosity::progress() const { return !quiet && (verbose || ::isatty(STDERR_FILENO)); }

void add_verbosity(CLI::App& sub, Verbosity& v) {
  auto* verbose = sub.add_flag("-v,--verbose", v.verbose, "Progress lines on stderr even when it is not a terminal");
  auto* quiet = sub.add_flag("-q,--quiet", v.quiet, "No progress lines (warnings and errors still go to stderr)");
  verbose->excludes(quiet);
}

void add_footer(CLI::App& sub) { sub.footer(kExitFooter); }

void warn(const std::string& message) { std::fprintf(stderr, "veil: warning: %s\n", message.c_str()); }

void progress(const Verbosity& v, const std::string& message) {
  if (v.progress()) std::fprintf(stderr, "%s\n", message.c_str());
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Bytes read_file(const std::string& path, const std::string& what, const std::string& hint, uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) bad_input(what + " " + path + " is not a regular file");
  std::ifstream f(path, std::ios::binary);
  if (!f.good()) {
    const int err = errno;
    std::string msg = "cannot read " + what + " " + path + ": " + std::strerror(err);
    if (err == ENOENT && !hint.empty()) msg += "; " + hint;
    bad_input(msg);
  }
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0) bad_input("cannot read " + what + " " + path + " (not a regular file?)");
  if (static_cast<uint64_t>(size) > max_bytes)
    bad_input(what + " " + path + " is " + std::to_string(size) + " bytes, more than the limit of " +
              std::to_string(max_bytes));
  f.seekg(0);
  Bytes bytes(static_cast<size_t>(size));
  f.read(reinterpret_cast<char*>(bytes.data()), size);
  if (!f.good() && size > 0) bad_input("cannot read " + what + " " + path);
  return bytes;
}

namespace {

void write_all(int fd, ByteView bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw CliError(kBadInput, "cannot write " + path + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

}  // namespace

AtomicFile::AtomicFile(std::string path, unsigned mode)
    : path_(std::move(path)), tmp_(path_ + ".tmp" + std::to_string(::getpid())), mode_(mode) {
  fd_ = ::open(tmp_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd_ < 0) bad_input("cannot write " + path_ + ": " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(ByteView bytes) {
  write_all(fd_, bytes, path_);
  written_ += bytes.size();
}

void AtomicFile::commit() {
  const int fd = fd_;
  fd_ = -1;
  if (::fchmod(fd, mode_) != 0 || ::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp_.c_str());
    bad_input("cannot write " + path_ + ": " + why);
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp_.c_str());
    bad_input("cannot write " + path_ + ": " + why);
  }
}

void write_file_atomic(const std::string& path, const std::vector<ByteView>& parts, unsigned mode) {
  AtomicFile f(path, mode);
  for (const ByteView& part : parts) f.write(part);
  f.commit();
}

void write_text_atomic(const std::string& path, const std::string& text, unsigned mode) {
  write_file_atomic(path, {ByteView(reinterpret_cast<const uint8_t*>(text.data()), text.size())}, mode);
}

void write_file_exclusive(const std::string& path, ByteView bytes, bool force) {
  if (force && ::unlink(path.c_str()) != 0 && errno != ENOENT)
    bad_input("cannot replace " + path + ": " + std::strerror(errno));
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST)
      bad_input(path +
                " exists; pass --force to replace it (queries encrypted under the old key can then no "
                "longer be decrypted)");
    bad_input("cannot create " + path + ": " + std::strerror(errno));
  }
  try {
    write_all(fd, bytes, path);
    if (::fsync(fd) != 0 || ::close(fd) != 0)
      throw CliError(kBadInput, "cannot write " + path + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
}

void make_private_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return;
  if (errno != EEXIST) bad_input("cannot create the key directory " + dir + ": " + std::strerror(errno));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) bad_input(dir + " exists and is not a directory");
  if (st.st_mode & 0077) {
    char mode[16];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    warn("the key directory " + dir + " is accessible to other users (mode " + mode + "); consider chmod 700 " + dir);
  }
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string file_stem(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.find_last_of('.');
  if (dot != std::string::npos && dot > 0) base.resize(dot);
  return base;
}

std::vector<ByteView> split_blobs(const Bytes& file, const std::string& path) {
  try {
    return veil::split_blobs(file, SIZE_MAX);
  } catch (const Error& e) {
    bad_input(path + ": " + e.what());
  }
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::optional<JsonObject> read_sidecar(const std::string& path) {
  if (!file_exists(path)) return std::nullopt;
  const Bytes bytes = read_file(path, "sidecar", "", 1 << 20);
  const std::string s(bytes.begin(), bytes.end());
  size_t i = 0;
  auto fail = [&](const std::string& why) -> void {
    bad_input(path + ": not a Veil sidecar (" + why + " at byte " + std::to_string(i) + ")");
  };
  auto skip = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  auto string = [&] {
    std::string out;
    if (s[i] != '"') fail("expected a string");
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\') {
        if (++i >= s.size()) break;
        const char e = s[i];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;  // \" \\ \/; \u is not written by veil
      } else {
        out += s[i];
      }
    }
    if (i >= s.size()) fail("unterminated string");
    ++i;
    return out;
  };
  JsonObject o;
  skip();
  if (i >= s.size() || s[i] != '{') fail("expected '{'");
  ++i;
  skip();
  if (i < s.size() && s[i] == '}') {
    ++i;
  } else {
    for (;;) {
      skip();
      if (i >= s.size()) fail("truncated");
      const std::string key = string();
      skip();
      if (i >= s.size() || s[i] != ':') fail("expected ':'");
      ++i;
      skip();
      if (i >= s.size()) fail("truncated");
      if (s[i] == '"') {
        o[key] = string();
      } else {
        const size_t start = i;
        while (i < s.size() &&
               (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == '-' || s[i] == '+'))
          ++i;
        if (i == start) fail("expected a value");
        o[key] = s.substr(start, i - start);
      }
      skip();
      if (i < s.size() && s[i] == ',') {
        ++i;
        continue;
      }
      if (i < s.size() && s[i] == '}') {
        ++i;
        break;
      }
      fail("expected ',' or '}'");
    }
  }
  skip();
  if (i != s.size()) fail("trailing text");
  return o;
}

uint64_t json_uint(const JsonObject& o, const std::string& key, const std::string& path) {
  const auto it = o.find(key);
  if (it == o.end()) bad_input(path + ": missing \"" + key + "\"");
  uint64_t v = 0;
  const auto r = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (r.ec != std::errc() || r.ptr != it->second.data() + it->second.size())
    bad_input(path + ": \"" + key + "\" must be a non-negative integer, got " + it->second);
  return v;
}

nn::ModelFile load_model(const std::string& path) {
  const Bytes bytes = read_file(path, "model file", "compile one with `veil compile MODEL.onnx -o " + path + "`");
  try {
    return nn::deserialize_model(bytes);
  } catch (const Error& e) {
    bad_input(path + " is not a valid Veil model file (" + e.what() + ")");
  }
}

void check_fingerprint(ByteView blob, const Parameters& params, const std::string& path, const std::string& hint) {
  if (blob.size() < 24 || std::memcmp(blob.data(), "VEIL", 4) != 0) bad_input(path + " is not a Veil file (bad magic)");
  uint64_t fp = 0;
  for (int i = 0; i < 8; ++i) fp |= uint64_t{blob[8 + i]} << (8 * i);
  if (fp != params.fingerprint()) bad_input(path + " belongs to other CKKS parameters than the model's; " + hint);
}

Bytes read_key(const std::string& keydir, const std::string& name, const std::string& model_path,
               const Parameters& params, bool server) {
  const std::string path = join_path(keydir, name);
  const std::string hint = server ? "the client makes it with `veil keygen " + model_path +
                                        " -o KEYDIR` and sends KEYDIR/relin.key and KEYDIR/galois.key"
                                  : "run `veil keygen " + model_path + " -o " + keydir + "` first";
  Bytes b = read_file(path, "key", hint);
  check_fingerprint(b, params, path, "the keys were made for another model: " + hint);
  return b;
}

BackendKind parse_backend(const std::string& name) {
  if (name == "cpu") return BackendKind::Cpu;
  if (name == "cuda") return BackendKind::Cuda;
  return BackendKind::Auto;
}

std::pair<double, double> parse_range(const std::string& text) {
  const size_t comma = text.find(',');
  auto num = [&](std::string_view v, double& out) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    const auto r = std::from_chars(v.data(), v.data() + v.size(), out);
    return r.ec == std::errc() && r.ptr == v.data() + v.size() && std::isfinite(out);
  };
  double lo = 0, hi = 0;
  if (comma == std::string::npos || !num(std::string_view(text).substr(0, comma), lo) ||
      !num(std::string_view(text).substr(comma + 1), hi) || lo > hi)
    throw CLI::ValidationError("--input-range", "expected LO,HI with finite LO <= HI (e.g. 0,1), got \"" + text + "\"");
  return {lo, hi};
}

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= 1000000)
    std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(bytes) / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.1f kB", static_cast<double>(bytes) / 1e3);
  return buf;
}

std::string format_double(double v, const char* fmt) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}


// The inputs of an [N, C, H, W], [N, H, W] (C = 1), [N, C*H*W] or [C*H*W] array.
std::vector<std::vector<double>> images_of(const Tensor& t, size_t c, size_t h, size_t w, const std::string& path) {
  const size_t pixels = c * h * w;
  const auto& s = t.shape;
  size_t count = 0;
  const std::string chw = std::to_string(c) + ", " + std::to_string(h) + ", " + std::to_string(w);
  if (s.size() == 1 && s[0] == pixels)
    count = 1;
  else if (s.size() == 2 && s[1] == pixels)
    count = s[0];
  else if (s.size() == 3 && c == 1 && s[1] == h && s[2] == w)
    count = s[0];
  else if (s.size() == 4 && s[1] == c && s[2] == h && s[3] == w)
    count = s[0];
  else
    bad_input(path + ": an array of shape " + t.shape_string() + " does not hold " + std::to_string(c) + "x" +
              std::to_string(h) + "x" + std::to_string(w) + " inputs; the model takes [N, " + chw + "], " +
              (c == 1 ? "[N, " + std::to_string(h) + ", " + std::to_string(w) + "], " : std::string()) + "[N, " +
              std::to_string(pixels) + "] or [" + std::to_string(pixels) + "] (CSV: one input of " +
              std::to_string(pixels) + " values per line, channel by channel)");
  if (count == 0) bad_input(path + ": no inputs (shape " + t.shape_string() + ")");
  std::vector<std::vector<double>> images(count);
  for (size_t i = 0; i < count; ++i) images[i].assign(t.data.begin() + i * pixels, t.data.begin() + (i + 1) * pixels);
  return images;
}


namespace {
std::string shortest(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string extension(const std::string& path) {
  const size_t dot = path.find_last_of('.'), slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string e = path.substr(dot);
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

size_t argmax_of(const std::vector<double>& row) {
  size_t best = 0;
  for (size_t k = 1; k < row.size(); ++k)
    if (row[k] > row[best]) best = k;
  return best;
}

}  // namespace

std::string output_extension(const std::string& path) { return extension(path); }

void write_outputs(const std::vector<std::vector<double>>& rows, size_t outputs, const std::string& output, bool argmax,
                   const std::string& model_name) {
  const std::string ext = extension(output);
  if (output == "-") {
    for (const auto& row : rows) {
      std::string line;
      for (size_t k = 0; k < row.size(); ++k) line += (k ? " " : "") + shortest(row[k]);
      std::printf("%s\n", line.c_str());
    }
  } else if (ext == ".json") {
    std::string s =
        "{\"model\": " + json_string(model_name) + ", \"inputs\": " + std::to_string(rows.size()) + ",\n \"outputs\": [";
    for (size_t i = 0; i < rows.size(); ++i) {
      s += i ? ",\n  [" : "\n  [";
      for (size_t k = 0; k < rows[i].size(); ++k) s += (k ? ", " : "") + shortest(rows[i][k]);
      s += "]";
    }
    s += "]";
    if (argmax) {
      s += ",\n \"argmax\": [";
      for (size_t i = 0; i < rows.size(); ++i) s += (i ? ", " : "") + std::to_string(argmax_of(rows[i]));
      s += "]";
    }
    write_text_atomic(output, s + "}\n");
  } else if (!output.empty()) {
    Tensor t;
    t.shape = {rows.size(), outputs};
    for (const auto& row : rows) t.data.insert(t.data.end(), row.begin(), row.end());
    write_tensor(output, t);
  }
  if (argmax)
    for (const auto& row : rows) std::printf("%zu\n", argmax_of(row));
  std::fflush(stdout);
}


namespace {
void warn_if_exposed(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077))
    warn(path + " is readable by other users; chmod 600 " + path);
}
}  // namespace

SecretKey load_secret_key(const std::string& keydir, const std::string& model_path, const ContextPtr& ctx) {
  Bytes bytes = read_key(keydir, "secret.key", model_path, ctx->params());
  warn_if_exposed(join_path(keydir, "secret.key"));
  SecretKey sk;
  try {
    sk = deserialize_secret_key(ctx, bytes);
  } catch (...) {
    explicit_bzero(bytes.data(), bytes.size());
    throw;
  }
  explicit_bzero(bytes.data(), bytes.size());  // the key's only copy is now the object's
  return sk;
}

}  // namespace veil::cli
