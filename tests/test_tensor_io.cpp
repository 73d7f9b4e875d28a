// NumPy .npy and CSV arrays (include/veil/tensor_io.hpp): round trips for every dtype
// Veil reads, hostile and truncated headers, and CSV errors that name the line.
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "test_util.hpp"
#include "veil/tensor_io.hpp"

namespace veil::test {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// A .npy file by hand: magic, version, header (padded to 64 bytes with '\n'), data.
Bytes npy(const std::string& header, const Bytes& data, int major = 1, bool pad = true) {
  std::string h = header;
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (pad) {
    while ((6 + 2 + len_bytes + h.size() + 1) % 64 != 0) h += ' ';
    h += '\n';
  }
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  for (size_t i = 0; i < len_bytes; ++i) out.push_back(static_cast<uint8_t>(h.size() >> (8 * i)));
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string dict(const std::string& descr, const std::string& shape, const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

template <class T>
Bytes le_bytes(const std::vector<T>& values) {
  Bytes out;
  for (T v : values) {
    uint64_t bits = 0;
    if constexpr (sizeof(T) == 8) bits = std::bit_cast<uint64_t>(v);
    if constexpr (sizeof(T) == 4) bits = std::bit_cast<uint32_t>(v);
    if constexpr (sizeof(T) == 1) bits = std::bit_cast<uint8_t>(v);
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  }
  return out;
}

// The Serialization error of parsing `bytes`, whose message must contain `text`.
void expect_bad_npy(const Bytes& bytes, const std::string& text, const TensorLimits& limits = {}) {
  EXPECT_EQ(error_code_of([&] { parse_npy(bytes, limits); }, text), ErrorCode::Serialization) << text;
}
void expect_bad_csv(const std::string& csv, const std::string& text, const TensorLimits& limits = {}) {
  EXPECT_EQ(error_code_of([&] { parse_csv(csv, limits); }, text), ErrorCode::Serialization) << text;
}

Tensor tensor(std::vector<size_t> shape, std::vector<double> data) { return Tensor{std::move(shape), std::move(data)}; }

TEST(TensorIo, Float64RoundTripsEveryRank) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const std::vector<Tensor> cases = {
      tensor({}, {3.5}),
      tensor({0}, {}),
      tensor({5}, {1, -2, 0.1, -0.0, 1e300}),
      tensor({2, 3}, {1, 2, 3, 4, 5, nan}),
      tensor({2, 0}, {}),
      tensor({2, 3, 4}, random_reals(24, 7)),
      tensor({1, 1, 2, 2}, {inf, -inf, 5e-324, 1.0 / 3}),
  };
  for (const Tensor& t : cases) {
    const Bytes b = format_npy(t);
    ASSERT_GE(b.size(), 10u);
    EXPECT_EQ(b[6], 1) << "version 1.0 for small headers";
    const size_t header_len = b[8] | (size_t{b[9]} << 8);
    EXPECT_EQ((10 + header_len) % 64, 0u) << "data aligned to 64 bytes as numpy writes it";
    EXPECT_EQ(b[10 + header_len - 1], '\n');
    const Tensor back = parse_npy(b);
    EXPECT_EQ(back.shape, t.shape) << t.shape_string();
    ASSERT_EQ(back.data.size(), t.data.size());
    for (size_t i = 0; i < t.data.size(); ++i)
      EXPECT_EQ(std::bit_cast<uint64_t>(back.data[i]), std::bit_cast<uint64_t>(t.data[i])) << i;
  }
  // numpy's exact header text for a 2-D and a 1-D array.
  const Bytes b = format_npy(tensor({2, 3}, {1, 2, 3, 4, 5, 6}));
  EXPECT_NE(std::string(b.begin(), b.end()).find("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"),
            std::string::npos);
  const Bytes c = format_npy(tensor({3}, {1, 2, 3}));
  EXPECT_NE(std::string(c.begin(), c.end()).find("'shape': (3,), }"), std::string::npos);
  EXPECT_VEIL_ERROR(format_npy(tensor({2, 2}, {1, 2, 3})), ErrorCode::InvalidArgument);
}

TEST(TensorIo, ReadsEveryDtype) {
  const std::vector<double> want = {0, 1, -7, 100, 3};
  auto check = [&](const std::string& descr, const Bytes& data, std::vector<double> expect) {
    const Tensor t = parse_npy(npy(dict(descr, "(5,)"), data));
    EXPECT_EQ(t.shape, (std::vector<size_t>{5})) << descr;
    EXPECT_EQ(t.data, expect) << descr;
  };
  check("<f8", le_bytes<double>({0, 1, -7, 100, 3}), want);
  check("<f4", le_bytes<float>({0, 1, -7, 100, 3}), want);
  check("<i8", le_bytes<int64_t>({0, 1, -7, 100, 3}), want);
  check("<i4", le_bytes<int32_t>({0, 1, -7, 100, 3}), want);
  check("|u1", le_bytes<uint8_t>({0, 1, 249, 100, 3}), {0, 1, 249, 100, 3});
  check("<u1", le_bytes<uint8_t>({0, 255, 2, 100, 3}), {0, 255, 2, 100, 3});
  // float32 values keep their float32 rounding.
  const Tensor f = parse_npy(npy(dict("<f4", "(1,)"), le_bytes<float>({0.1f})));
  EXPECT_EQ(f.data[0], static_cast<double>(0.1f));
  // Extreme integers.
  const Tensor i = parse_npy(npy(dict("<i8", "(2,)"), le_bytes<int64_t>({INT64_MIN, -1})));
  EXPECT_EQ(i.data[0], -9223372036854775808.0);
  EXPECT_EQ(i.data[1], -1.0);
}

TEST(TensorIo, AcceptsHeaderVariantsNumpyWrites) {
  const Bytes data = le_bytes<double>({1, 2, 3, 4, 5, 6});
  // Version 2.0 (4-byte header length).
  EXPECT_EQ(parse_npy(npy(dict("<f8", "(2, 3)"), data, 2)).shape, (std::vector<size_t>{2, 3}));
  // Keys in another order, double quotes, no trailing comma, Python 2 longs, no padding.
  const Tensor t =
      parse_npy(npy("{\"shape\": (2L, 3L), \"fortran_order\": False, \"descr\": \"<f8\"}", data, 1, false));
  EXPECT_EQ(t.shape, (std::vector<size_t>{2, 3}));
  EXPECT_EQ(t.data, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  // A scalar, and Fortran order where it makes no difference (one non-trivial dimension).
  EXPECT_EQ(parse_npy(npy(dict("<f8", "()"), le_bytes<double>({4}))).data, std::vector<double>{4});
  EXPECT_EQ(parse_npy(npy(dict("<f8", "(1, 6)", "True"), data)).data.size(), 6u);
}

TEST(TensorIo, RejectsHostileNpyHeaders) {
  const Bytes data = le_bytes<double>({1, 2, 3, 4, 5, 6});
  const Bytes good = npy(dict("<f8", "(2, 3)"), data);
  ASSERT_NO_THROW(parse_npy(good));

  Bytes bad_magic = good;
  bad_magic[1] = 'X';
  expect_bad_npy(bad_magic, "not a NumPy .npy file");
  expect_bad_npy({}, "not a NumPy .npy file");
  expect_bad_npy(Bytes(good.begin(), good.begin() + 6), "truncated before the version");
  expect_bad_npy(Bytes(good.begin(), good.begin() + 9), "truncated before the header length");
  expect_bad_npy(Bytes(good.begin(), good.begin() + 40), "truncated header");
  expect_bad_npy(npy(dict("<f8", "(2, 3)"), data, 3), "unsupported format version 3.0");
  Bytes minor = good;
  minor[7] = 1;
  expect_bad_npy(minor, "unsupported format version 1.1");
  TensorLimits small;
  small.max_header_bytes = 32;
  expect_bad_npy(good, "exceeds the limit", small);

  // Shapes: huge, overflowing, negative, too many dimensions, not a tuple.
  expect_bad_npy(npy(dict("<f8", "(1099511627776,)"), data), "exceeds the limit");
  expect_bad_npy(npy(dict("<f8", "(4294967296, 4294967296)"), data), "exceeds the limit");
  expect_bad_npy(npy(dict("<f8", "(65536, 65536)"), data), "more than 268435456 elements");
  expect_bad_npy(npy(dict("<f8", "(99999999999999999999999999,)"), data), "exceeds the limit");
  expect_bad_npy(npy(dict("<f8", "(-6,)"), data), "non-negative integers");
  expect_bad_npy(npy(dict("<f8", "(1, 1, 1, 1, 1, 1, 1, 1, 6)"), data), "more than 8 dimensions");
  expect_bad_npy(npy(dict("<f8", "[2, 3]"), data), "expected '('");
  expect_bad_npy(npy(dict("<f8", "(2 3)"), data), "expected ',' or ')'");

  // Data: truncated, trailing bytes.
  expect_bad_npy(Bytes(good.begin(), good.end() - 1), "truncated data");
  expect_bad_npy(npy(dict("<f8", "(2, 4)"), data), "truncated data");
  Bytes trailing = good;
  trailing.push_back(0);
  expect_bad_npy(trailing, "unexpected bytes after the data");

  // Order and dtypes.
  expect_bad_npy(npy(dict("<f8", "(2, 3)", "True"), data), "Fortran-order arrays are not supported");
  expect_bad_npy(npy(dict(">f8", "(2, 3)"), data), "dtype '>f8' is not supported");
  expect_bad_npy(npy(dict("<c16", "(3,)"), data), "dtype '<c16' is not supported");
  expect_bad_npy(npy(dict("|O", "(6,)"), data), "is not supported");
  expect_bad_npy(npy("{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (6,), }", data), "as a quoted string");

  // The dict itself.
  expect_bad_npy(npy("{'descr': '<f8', 'shape': (2, 3), }", data), "missing key 'fortran_order'");
  expect_bad_npy(npy("{'fortran_order': False, 'shape': (2, 3), }", data), "missing key 'descr'");
  expect_bad_npy(npy("{'descr': '<f8', 'fortran_order': False, }", data), "missing key 'shape'");
  expect_bad_npy(npy("{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", data),
                 "appears twice");
  expect_bad_npy(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", data), "unexpected key 'x'");
  expect_bad_npy(npy("{'descr': '<f8', 'fortran_order': 0, 'shape': (2, 3), }", data), "True or False");
  expect_bad_npy(npy("{'descr': '<f8, 'fortran_order': False, 'shape': (2, 3), }", data), "expected ',' or '}'");
  expect_bad_npy(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), } junk", data), "after the dict");
  expect_bad_npy(npy("(2, 3)", data), "expected '{'");
  expect_bad_npy(npy("{'descr': '<f\\x38', 'fortran_order': False, 'shape': (2, 3), }", data), "unexpected character");
  expect_bad_npy(npy("{'descr", data, 1, false), "unterminated string");
}

TEST(TensorIo, NpyAndCsvFiles) {
  const fs::path dir = fs::temp_directory_path() / ("veil_tensor_io_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const Tensor t = tensor({3, 4}, random_reals(12, 3, -100, 100));
  for (const char* name : {"a.npy", "b.csv", "C.NPY"}) {
    const std::string path = (dir / name).string();
    write_tensor(path, t);
    EXPECT_EQ((fs::status(path).permissions() & fs::perms::all),
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
    const Tensor back = read_tensor(path);
    EXPECT_EQ(back.shape, t.shape) << name;
    EXPECT_EQ(back.data, t.data) << name << ": shortest round-trip text in CSV";
  }
  EXPECT_VEIL_ERROR(write_tensor((dir / "x.txt").string(), t), ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { read_tensor((dir / "x.json").string()); }, "use a .npy or .csv file"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { read_npy((dir / "missing.npy").string()); }, "missing.npy"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { write_npy((dir / "no" / "such" / "dir.npy").string(), t); }, "cannot write"),
            ErrorCode::InvalidArgument);
  fs::create_directories(dir / "d.npy");
  EXPECT_EQ(error_code_of([&] { read_npy((dir / "d.npy").string()); }, "not a regular file"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { read_csv(dir.string()); }, "not a regular file"), ErrorCode::InvalidArgument);
  // A truncated file names its path.
  {
    const Bytes b = format_npy(t);
    std::ofstream f(dir / "cut.npy", std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size() - 5));
  }
  EXPECT_EQ(error_code_of([&] { read_npy((dir / "cut.npy").string()); }, "cut.npy: .npy: truncated data"),
            ErrorCode::Serialization);
  EXPECT_VEIL_ERROR(format_csv(tensor({2, 2, 1}, {1, 2, 3, 4})), ErrorCode::InvalidArgument);
  EXPECT_EQ(format_csv(tensor({3}, {1, 0.5, -2})), "1,0.5,-2\n");
  fs::remove_all(dir);
}

TEST(TensorIo, ParsesCsv) {
  Tensor t = parse_csv("1,2,3\n4,5,6\n");
  EXPECT_EQ(t.shape, (std::vector<size_t>{2, 3}));
  EXPECT_EQ(t.data, (std::vector<double>{1, 2, 3, 4, 5, 6}));
  // CRLF, blank lines, a BOM, spaces, signs, exponents, no final newline.
  t = parse_csv("\xEF\xBB\xBF 1 , +2.5,-3e-2\r\n\r\n  \n0.125,\t1E3 ,-0\r\n7,8,9");
  EXPECT_EQ(t.shape, (std::vector<size_t>{3, 3}));
  EXPECT_EQ(t.data, (std::vector<double>{1, 2.5, -0.03, 0.125, 1000, -0.0, 7, 8, 9}));
  EXPECT_EQ(parse_csv("42").shape, (std::vector<size_t>{1, 1}));
}

TEST(TensorIo, CsvErrorsNameTheLine) {
  expect_bad_csv("x,y,z\n1,2,3\n",
                 "line 1, value 1 \"x\" is not a number (CSV files hold numbers only, without a header row)");
  expect_bad_csv("1,2,3\n4,5\n", "line 2 has 2 values, line 1 has 3");
  expect_bad_csv("1,2,3\n\n4,5,6,7\n", "line 3 has 4 values");
  expect_bad_csv("1,,3\n", "line 1, value 2 is empty");
  expect_bad_csv("1,2,\n", "line 1, value 3 is empty");
  expect_bad_csv("1;2;3\n", "line 1, value 1 \"1;2;3\" is not a number");
  expect_bad_csv("1,2\n3,0x10\n", "line 2, value 2 \"0x10\" is not a number");
  expect_bad_csv("1,2\n3,4 5\n", "line 2, value 2");
  expect_bad_csv("1,\"2\"\n", "is not a number");
  expect_bad_csv("1e999\n", "out of the range of a double");
  expect_bad_csv("", "no numbers");
  expect_bad_csv("\n \n", "no numbers");
  TensorLimits small;
  small.max_elements = 5;
  expect_bad_csv("1,2,3\n4,5,6\n", "more than 5 values (line 2)", small);
  small.max_csv_line_bytes = 4;
  expect_bad_csv("1,2\n1,2,3\n", "line 2 is longer than 4 bytes", small);
}

}  // namespace
}  // namespace veil::test
