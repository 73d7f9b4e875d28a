// NumPy .npy and CSV arrays (include/veil/tensor_io.hpp). Every length, count and
// dimension is checked against the limits before anything is allocated.
#include "veil/tensor_io.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include "veil/error.hpp"

namespace veil {

namespace {

[[noreturn]] void bad_npy(const std::string& message) { throw Error(ErrorCode::Serialization, ".npy: " + message); }
[[noreturn]] void bad_csv(const std::string& message) { throw Error(ErrorCode::Serialization, "CSV: " + message); }

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicBytes = 6;

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// The header dict: {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } and
// nothing else (numpy's own writer; keys in any order, either quote, spaces anywhere).
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const TensorLimits& limits) : s_(text), limits_(limits) {}

  void parse(std::string& descr, bool& fortran, std::vector<size_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    expect('{');
    for (;;) {
      skip();
      if (peek() == '}') break;
      const std::string key = string_literal("a key");
      expect(':');
      auto once = [&](bool& seen) {
        if (seen) bad_npy("header: key '" + key + "' appears twice");
        seen = true;
      };
      if (key == "descr") {
        once(have_descr);
        descr = string_literal("the dtype ('descr')");
      } else if (key == "fortran_order") {
        once(have_fortran);
        fortran = boolean();
      } else if (key == "shape") {
        once(have_shape);
        shape = tuple();
      } else {
        bad_npy("header: unexpected key '" + key + "' (a .npy header has descr, fortran_order and shape)");
      }
      skip();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') bad_npy("header: expected ',' or '}' at offset " + std::to_string(pos_));
    }
    ++pos_;  // '}'
    for (; pos_ < s_.size(); ++pos_)
      if (s_[pos_] != ' ' && s_[pos_] != '\n' && s_[pos_] != '\r' && s_[pos_] != '\t' && s_[pos_] != '\0')
        bad_npy("header: unexpected text after the dict at offset " + std::to_string(pos_));
    if (!have_descr || !have_fortran || !have_shape)
      bad_npy(std::string("header: missing key '") +
              (!have_descr     ? "descr"
               : !have_fortran ? "fortran_order"
                               : "shape") +
              "'");
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  void expect(char c) {
    skip();
    if (peek() != c)
      bad_npy(std::string("header: expected '") + c + "' at offset " + std::to_string(pos_) +
              " (is this a .npy file written by numpy.save?)");
    ++pos_;
  }
  std::string string_literal(const char* what) {
    skip();
    const char q = peek();
    if (q != '\'' && q != '"')
      bad_npy(std::string("header: expected ") + what + " as a quoted string at offset " + std::to_string(pos_));
    const size_t start = ++pos_;
    while (pos_ < s_.size() && s_[pos_] != q) {
      const unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '\\' || c < 0x20 || c >= 0x7f) bad_npy("header: unexpected character in a string");
      if (pos_ - start > 64) bad_npy("header: string longer than 64 characters");
      ++pos_;
    }
    if (pos_ >= s_.size()) bad_npy("header: unterminated string");
    return std::string(s_.substr(start, pos_++ - start));
  }
  bool boolean() {
    skip();
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    bad_npy("header: fortran_order must be True or False");
  }
  std::vector<size_t> tuple() {
    expect('(');
    std::vector<size_t> dims;
    uint64_t product = 1;
    for (;;) {
      skip();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek())))
        bad_npy("header: the shape must be a tuple of non-negative integers");
      uint64_t d = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        d = d * 10 + static_cast<uint64_t>(peek() - '0');
        if (d > limits_.max_elements)
          bad_npy("header: a dimension exceeds the limit of " + std::to_string(limits_.max_elements) + " elements");
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long
      if (dims.size() == limits_.max_dims)
        bad_npy("header: more than " + std::to_string(limits_.max_dims) + " dimensions");
      dims.push_back(static_cast<size_t>(d));
      // Both factors are <= max_elements (< 2^32 in any sane limit): no overflow before the check.
      if (d != 0 && product > limits_.max_elements / d)
        bad_npy("header: the shape has more than " + std::to_string(limits_.max_elements) + " elements");
      product *= d;
      skip();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ')') bad_npy("header: expected ',' or ')' in the shape");
    }
    ++pos_;
    return dims;
  }

  std::string_view s_;
  const TensorLimits& limits_;
  size_t pos_ = 0;
};

struct Dtype {
  const char* descr;
  size_t bytes;
  double (*load)(const uint8_t*);
};

const Dtype kDtypes[] = {
    {"<f8", 8, [](const uint8_t* p) { return std::bit_cast<double>(le(p, 8)); }},
    {"<f4", 4,
     [](const uint8_t* p) { return static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(le(p, 4)))); }},
    {"<i8", 8, [](const uint8_t* p) { return static_cast<double>(static_cast<int64_t>(le(p, 8))); }},
    {"<i4", 4,
     [](const uint8_t* p) { return static_cast<double>(static_cast<int32_t>(static_cast<uint32_t>(le(p, 4)))); }},
    {"|u1", 1, [](const uint8_t* p) { return static_cast<double>(*p); }},
    {"<u1", 1, [](const uint8_t* p) { return static_cast<double>(*p); }},
};

std::string lower_extension(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string ext = path.substr(dot);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

std::string read_whole_file(const std::string& path, uint64_t max_bytes, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw Error(ErrorCode::InvalidArgument, std::string("cannot read ") + what + " " + path + ": not a regular file");
  std::ifstream f(path, std::ios::binary);
  if (!f.good())
    throw Error(ErrorCode::InvalidArgument,
                std::string("cannot read ") + what + " " + path + ": " + std::strerror(errno));
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0) throw Error(ErrorCode::InvalidArgument, std::string("cannot read ") + what + " " + path);
  if (static_cast<uint64_t>(size) > max_bytes)
    throw Error(ErrorCode::Serialization, path + ": " + std::to_string(size) + " bytes, more than the limit of " +
                                              std::to_string(max_bytes) + " for a " + what);
  f.seekg(0);
  std::string bytes(static_cast<size_t>(size), '\0');
  f.read(bytes.data(), size);
  if (!f.good() && size > 0) throw Error(ErrorCode::InvalidArgument, std::string("cannot read ") + what + " " + path);
  return bytes;
}

void write_whole_file(const std::string& path, std::string_view bytes) {
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f.good()) throw Error(ErrorCode::InvalidArgument, "cannot write " + path + ": " + std::strerror(errno));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f.good()) {
      std::remove(tmp.c_str());
      throw Error(ErrorCode::InvalidArgument, "cannot write " + path);
    }
  }
  ::chmod(tmp.c_str(), 0644);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(ErrorCode::InvalidArgument, "cannot write " + path + ": " + why);
  }
}

void append_double(std::string& out, double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

size_t Tensor::elements() const {
  size_t n = 1;
  for (size_t d : shape) n *= d;
  return n;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor parse_npy(std::span<const uint8_t> bytes, const TensorLimits& limits) {
  if (bytes.size() < kNpyMagicBytes || std::memcmp(bytes.data(), kNpyMagic, kNpyMagicBytes) != 0)
    bad_npy("not a NumPy .npy file (the file does not start with \\x93NUMPY)");
  if (bytes.size() < kNpyMagicBytes + 2) bad_npy("truncated before the version");
  const unsigned major = bytes[6], minor = bytes[7];
  if ((major != 1 && major != 2) || minor != 0)
    bad_npy("unsupported format version " + std::to_string(major) + "." + std::to_string(minor) +
            " (Veil reads 1.0 and 2.0)");
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kNpyMagicBytes + 2 + len_bytes;
  if (bytes.size() < prefix) bad_npy("truncated before the header length");
  const uint64_t header_len = le(bytes.data() + 8, static_cast<int>(len_bytes));
  if (header_len > limits.max_header_bytes)
    bad_npy("header of " + std::to_string(header_len) + " bytes exceeds the limit of " +
            std::to_string(limits.max_header_bytes));
  if (header_len > bytes.size() - prefix)
    bad_npy("truncated header: " + std::to_string(header_len) + " bytes announced, " +
            std::to_string(bytes.size() - prefix) + " in the file");
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + prefix), header_len);
  std::string descr;
  bool fortran = false;
  Tensor t;
  HeaderParser(header, limits).parse(descr, fortran, t.shape);
  const Dtype* dtype = nullptr;
  for (const Dtype& d : kDtypes)
    if (descr == d.descr) dtype = &d;
  if (!dtype)
    bad_npy("dtype '" + descr +
            "' is not supported (Veil reads <f8, <f4, <i8, <i4 and |u1: convert with a.astype('<f8'))");
  uint64_t count = 1;
  for (size_t d : t.shape) count *= d;  // bounded by the parser
  // An array with a 0 or 1 dimension only is the same in either order.
  size_t big_dims = 0;
  for (size_t d : t.shape) big_dims += d > 1;
  if (fortran && big_dims > 1)
    bad_npy("Fortran-order arrays are not supported: save numpy.ascontiguousarray(a) instead");
  const uint64_t data_bytes = count * dtype->bytes;
  const uint64_t have = bytes.size() - prefix - header_len;
  if (have < data_bytes)
    bad_npy("truncated data: the shape " + t.shape_string() + " of " + descr + " needs " + std::to_string(data_bytes) +
            " bytes, the file has " + std::to_string(have));
  if (have > data_bytes)
    bad_npy(std::to_string(have - data_bytes) + " unexpected bytes after the data of shape " + t.shape_string());
  const uint8_t* p = bytes.data() + prefix + header_len;
  t.data.resize(count);
  for (uint64_t i = 0; i < count; ++i) t.data[i] = dtype->load(p + i * dtype->bytes);
  return t;
}

std::vector<uint8_t> format_npy(const Tensor& t) {
  require(t.data.size() == t.elements(), ErrorCode::InvalidArgument,
          "tensor: " + std::to_string(t.data.size()) + " values for the shape " + t.shape_string());
  std::string dims;
  for (size_t d : t.shape) dims += std::to_string(d) + ", ";
  if (t.shape.size() == 1) dims.pop_back();              // "(3,)"
  if (t.shape.size() > 1) dims.resize(dims.size() - 2);  // "(2, 3)"
  std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Header (with its final newline) padded with spaces so the data starts on a multiple
  // of 64 bytes; version 2.0 (a 4-byte length) only when the header needs it.
  size_t len_bytes = 2;
  auto padded_total = [&] { return (kNpyMagicBytes + 2 + len_bytes + dict.size() + 1 + 63) / 64 * 64; };
  if (padded_total() - kNpyMagicBytes - 2 - len_bytes > 0xffff) len_bytes = 4;
  const size_t total = padded_total();
  dict.append(total - (kNpyMagicBytes + 2 + len_bytes + dict.size() + 1), ' ');
  dict += '\n';
  std::vector<uint8_t> out(kNpyMagic, kNpyMagic + kNpyMagicBytes);
  out.push_back(len_bytes == 2 ? 1 : 2);
  out.push_back(0);
  for (size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<uint8_t>(dict.size() >> (8 * i)));
  out.insert(out.end(), dict.begin(), dict.end());
  out.reserve(out.size() + t.data.size() * 8);
  for (double v : t.data) {
    const uint64_t bits = std::bit_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  }
  return out;
}

Tensor parse_csv(std::string_view text, const TensorLimits& limits) {
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
  Tensor t;
  size_t columns = 0, rows = 0, first_row_line = 0;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.size() > limits.max_csv_line_bytes)
      bad_csv("line " + std::to_string(line_no) + " is longer than " + std::to_string(limits.max_csv_line_bytes) +
              " bytes");
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank
    size_t count = 0, field_start = 0;
    for (;;) {
      size_t comma = line.find(',', field_start);
      std::string_view field =
          line.substr(field_start, comma == std::string_view::npos ? std::string_view::npos : comma - field_start);
      const size_t a = field.find_first_not_of(" \t");
      const size_t b = field.find_last_not_of(" \t");
      field = a == std::string_view::npos ? std::string_view() : field.substr(a, b - a + 1);
      ++count;
      const std::string where = "line " + std::to_string(line_no) + ", value " + std::to_string(count);
      if (field.empty()) bad_csv(where + " is empty");
      std::string_view digits = field;
      if (digits.front() == '+') digits.remove_prefix(1);
      double v = 0;
      const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      if (r.ec == std::errc::result_out_of_range)
        bad_csv(where + " \"" + std::string(field.substr(0, 40)) + "\" is out of the range of a double");
      if (r.ec != std::errc() || r.ptr != digits.data() + digits.size())
        bad_csv(where + " \"" + std::string(field.substr(0, 40)) + "\" is not a number" +
                (rows == 0 ? " (CSV files hold numbers only, without a header row)" : ""));
      if (t.data.size() >= limits.max_elements)
        bad_csv("more than " + std::to_string(limits.max_elements) + " values (line " + std::to_string(line_no) + ")");
      t.data.push_back(v);
      if (comma == std::string_view::npos) break;
      field_start = comma + 1;
    }
    if (rows == 0) {
      columns = count;
      first_row_line = line_no;
    } else if (count != columns) {
      bad_csv("line " + std::to_string(line_no) + " has " + std::to_string(count) + " values, line " +
              std::to_string(first_row_line) + " has " + std::to_string(columns) + " (one input per row)");
    }
    ++rows;
  }
  if (rows == 0) bad_csv("no numbers (the file is empty or has blank lines only)");
  t.shape = {rows, columns};
  return t;
}

std::string format_csv(const Tensor& t) {
  require(t.data.size() == t.elements(), ErrorCode::InvalidArgument,
          "tensor: " + std::to_string(t.data.size()) + " values for the shape " + t.shape_string());
  require(t.shape.size() <= 2, ErrorCode::InvalidArgument,
          "CSV holds 1-D or 2-D arrays (one row per input), not " + t.shape_string());
  const size_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
  const size_t cols = t.shape.size() == 2 ? t.shape[1] : t.data.size();
  std::string out;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      if (c) out += ',';
      append_double(out, t.data[r * cols + c]);
    }
    out += '\n';
  }
  return out;
}

Tensor read_npy(const std::string& path, const TensorLimits& limits) {
  const uint64_t max_bytes = 12 + limits.max_header_bytes + limits.max_elements * 8;
  const std::string bytes = read_whole_file(path, max_bytes, ".npy file");
  try {
    return parse_npy({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, limits);
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
}

void write_npy(const std::string& path, const Tensor& t) {
  const auto bytes = format_npy(t);
  write_whole_file(path, {reinterpret_cast<const char*>(bytes.data()), bytes.size()});
}

Tensor read_csv(const std::string& path, const TensorLimits& limits) {
  // A value takes at most a few dozen characters; allow generous spacing.
  const uint64_t max_bytes = std::min<uint64_t>(limits.max_elements, uint64_t{1} << 40) * 64 + (1 << 20);
  const std::string text = read_whole_file(path, max_bytes, "CSV file");
  try {
    return parse_csv(text, limits);
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
}

void write_csv(const std::string& path, const Tensor& t) { write_whole_file(path, format_csv(t)); }

Tensor read_tensor(const std::string& path, const TensorLimits& limits) {
  const std::string ext = lower_extension(path);
  if (ext == ".npy") return read_npy(path, limits);
  if (ext == ".csv") return read_csv(path, limits);
  throw Error(ErrorCode::InvalidArgument, path + ": unknown array format \"" + ext + "\" (use a .npy or .csv file)");
}

void write_tensor(const std::string& path, const Tensor& t) {
  const std::string ext = lower_extension(path);
  if (ext == ".npy") return write_npy(path, t);
  if (ext == ".csv") return write_csv(path, t);
  throw Error(ErrorCode::InvalidArgument, path + ": unknown array format \"" + ext + "\" (use a .npy or .csv file)");
}

}  // namespace veil
