// Arrays of numbers in files: the inputs a client encrypts and the outputs it
// decrypts. Two formats:
//
//   NumPy .npy  (numpy.save): format version 1.0 or 2.0, C order only. Read: dtypes
//               <f8, <f4, <i8, <i4 and |u1 (also written <u1), converted to double.
//               Written: <f8 (float64), version 1.0 (2.0 only for a header that needs it).
//   CSV         one row of comma-separated numbers per line (one input per row), the
//               same count on every line; blank lines are skipped; no header row, no
//               quoting. Read as a [rows, columns] tensor; written with the shortest
//               text that reads back to the same double.
//
// Reading validates everything before allocating: the magic, the version, the header
// (a small Python-literal dict parsed strictly, bounded length), the dtype, the shape
// (at most TensorLimits::max_dims dimensions, each and their product bounded, no
// overflow) and the data's exact length. Any mismatch throws Error(Serialization)
// whose message says what is wrong (and, for CSV, names the line); a file that cannot
// be opened, read or written throws Error(InvalidArgument) naming the path. Values are
// not checked for finiteness: callers that need finite values check them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace veil {

// A dense row-major (C order) array of doubles. shape {} is a scalar (one value).
struct Tensor {
  std::vector<size_t> shape;
  std::vector<double> data;

  // Product of the shape (1 for a scalar).
  size_t elements() const;
  // "[64, 28, 28]"
  std::string shape_string() const;
};

struct TensorLimits {
  uint64_t max_elements = uint64_t{1} << 28;  // 2 GiB of doubles
  size_t max_dims = 8;
  uint64_t max_header_bytes = 1 << 16;  // the .npy header dict (numpy writes < 200)
  uint64_t max_csv_line_bytes = 64 << 20;
};

// .npy bytes <-> Tensor.
Tensor parse_npy(std::span<const uint8_t> bytes, const TensorLimits& limits = {});
std::vector<uint8_t> format_npy(const Tensor& t);  // <f8, C order

// CSV text <-> Tensor. format_csv writes a scalar or 1-D tensor as one row, a 2-D
// tensor one row per first index; higher ranks throw InvalidArgument.
Tensor parse_csv(std::string_view text, const TensorLimits& limits = {});
std::string format_csv(const Tensor& t);

// Files. write_* writes a temporary file next to `path` and renames it (mode 0644).
Tensor read_npy(const std::string& path, const TensorLimits& limits = {});
void write_npy(const std::string& path, const Tensor& t);
Tensor read_csv(const std::string& path, const TensorLimits& limits = {});
void write_csv(const std::string& path, const Tensor& t);

// By the extension (case-insensitive): ".npy" or ".csv"; anything else throws
// InvalidArgument naming the formats.
Tensor read_tensor(const std::string& path, const TensorLimits& limits = {});
void write_tensor(const std::string& path, const Tensor& t);

}  // namespace veil
