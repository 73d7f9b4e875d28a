// Shared pieces of the `veil` command-line program: exit codes, errors that carry
// one, file I/O (whole files, atomic writes, the exclusive 0600 secret-key write),
// concatenated blobs, the small JSON sidecars, and loading a model file and keys with
// messages that say what to run.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "veil/nn/model_file.hpp"
#include "veil/tensor_io.hpp"
#include "veil/veil.hpp"

namespace veil::cli {

// Exit codes (also in `veil --help`).
enum Exit : int { kOk = 0, kUsage = 2, kBadInput = 3, kInternal = 4 };

inline constexpr const char* kExitFooter =
    "Exit status: 0 success; 2 usage error (unknown option, missing or malformed argument); "
    "3 bad input (a file that is missing, unreadable or invalid, keys or queries of another model, "
    "a model or option Veil cannot handle); 4 internal or backend error (e.g. CUDA).";

// An error the program reports itself: its message is printed as "veil CMD: message".
class CliError : public std::runtime_error {
 public:
  CliError(int exit_code, const std::string& message) : std::runtime_error(message), code_(exit_code) {}
  int exit_code() const { return code_; }

 private:
  int code_;
};
[[noreturn]] void bad_input(const std::string& message);  // CliError(kBadInput)

// Options every subcommand has: progress on stderr when it is a terminal or with
// --verbose, never with --quiet.
struct Verbosity {
  bool verbose = false, quiet = false;
  bool progress() const;
};
void add_verbosity(CLI::App& sub, Verbosity& v);
// The exit-code footer on a subcommand's --help.
void add_footer(CLI::App& sub);

// One line on stderr ("veil: ..."), e.g. a warning; always printed.
void warn(const std::string& message);
// One progress line on stderr when v.progress().
void progress(const Verbosity& v, const std::string& message);

// ---- files ----
bool file_exists(const std::string& path);
// The whole file; missing or unreadable: bad_input naming `what` and `hint`.
Bytes read_file(const std::string& path, const std::string& what, const std::string& hint = "",
                uint64_t max_bytes = uint64_t{64} << 30);
// Written to a temporary name next to `path`, then renamed; `mode` (0644 by default).
void write_file_atomic(const std::string& path, const std::vector<ByteView>& parts, unsigned mode = 0644);
void write_text_atomic(const std::string& path, const std::string& text, unsigned mode = 0644);
// The same, streamed: parts are written as they come; the file appears under `path`
// only at commit() (a destroyed, uncommitted file is removed).
class AtomicFile {
 public:
  explicit AtomicFile(std::string path, unsigned mode = 0644);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(ByteView bytes);
  void commit();
  uint64_t bytes_written() const { return written_; }

 private:
  std::string path_, tmp_;
  unsigned mode_;
  int fd_ = -1;
  uint64_t written_ = 0;
};
// open(O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0600): never replaces a file, never
// follows a link, never readable by others, not even for a moment. `force` removes an
// existing file first.
void write_file_exclusive(const std::string& path, ByteView bytes, bool force);
// Makes `dir` (mode 0700) when it does not exist; an existing directory is kept.
void make_private_dir(const std::string& dir);
std::string join_path(const std::string& dir, const std::string& name);
// "models/digits.veil" -> "digits"
std::string file_stem(const std::string& path);

// Veil blobs back to back (docs/serialization.md: each header holds its payload
// length): the views into `file`, checked for the magic and for fitting in the file;
// the content is validated by the deserialize_* calls.
std::vector<ByteView> split_blobs(const Bytes& file, const std::string& path);

// ---- JSON sidecars: one flat object of strings and numbers ----
using JsonObject = std::map<std::string, std::string>;  // value: the literal text (string unquoted)
std::string json_string(const std::string& s);          // quoted and escaped
// Parses {"k": "v", "n": 3, ...}; returns nullopt when the file does not exist;
// bad_input when it is malformed.
std::optional<JsonObject> read_sidecar(const std::string& path);
// A non-negative integer field, or bad_input.
uint64_t json_uint(const JsonObject& o, const std::string& key, const std::string& path);

// ---- models and keys ----
nn::ModelFile load_model(const std::string& path);
// Checks that a key blob's parameter fingerprint is the model's before it is parsed,
// so keys of another model get a message that says so.
void check_fingerprint(ByteView blob, const Parameters& params, const std::string& path, const std::string& hint);
// KEYDIR/name, read and fingerprint-checked; missing: "run `veil keygen ...` first"
// (server: "the client makes it with `veil keygen ...`").
Bytes read_key(const std::string& keydir, const std::string& name, const std::string& model_path,
               const Parameters& params, bool server = false);

// KEYDIR/secret.key as read_key checks it, warning when others can read it; the file's
// bytes are wiped once the key is loaded.
SecretKey load_secret_key(const std::string& keydir, const std::string& model_path, const ContextPtr& ctx);

BackendKind parse_backend(const std::string& name);

// "0,1" -> {0, 1}; bad_input / CLI validation error when malformed.
std::pair<double, double> parse_range(const std::string& text);

// The inputs in an [N, H, W], [N, 1, H, W], [N, H*W] or [H*W] array; bad_input naming
// `path` and the accepted shapes otherwise.
std::vector<std::vector<double>> images_of(const Tensor& t, size_t c, size_t h, size_t w, const std::string& path);
// Writes one row per input: to `output` (.npy, .csv or .json, or "-" for lines on
// stdout; empty: nothing), and with `argmax` one class per line on stdout.
void write_outputs(const std::vector<std::vector<double>>& rows, size_t outputs, const std::string& output, bool argmax,
                   const std::string& model_name);
std::string output_extension(const std::string& path);  // ".npy", lowercase; "" when none

std::string format_bytes(uint64_t bytes);
std::string format_double(double v, const char* fmt = "%g");

}  // namespace veil::cli
