// Little-endian byte writer and bounds-checked reader for serialization.
// The reader throws Error(Serialization) instead of ever reading past its end.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "io/bit_packing.hpp"
#include "veil/error.hpp"

namespace veil::io {

// Writes into a vector sized up front, so secret data is never left behind
// in memory freed by a reallocation. Writing past the size is an internal error.
class Writer {
 public:
  explicit Writer(size_t size) : out_(size) {}

  void u8(uint8_t v) { put_le(v, 1); }
  void u16(uint16_t v) { put_le(v, 2); }
  void u32(uint32_t v) { put_le(v, 4); }
  void u64(uint64_t v) { put_le(v, 8); }
  void f64(double v) { u64(std::bit_cast<uint64_t>(v)); }
  void bytes(const uint8_t* p, size_t n) {
    if (n) std::memcpy(reserve(n), p, n);
  }
  // n values of w bits each, bit-packed (bit_packing.hpp); every value < 2^w.
  void packed(const uint64_t* p, size_t n, unsigned w) { pack_bits(p, n, w, reserve(packed_bytes(n, w))); }
  size_t size() const { return pos_; }  // bytes written so far
  std::vector<uint8_t>& buffer() { return out_; }

 private:
  uint8_t* reserve(size_t n) {
    if (n > out_.size() - pos_)
      throw Error(ErrorCode::Backend, "serialization: writer overflow (internal error)");
    uint8_t* p = out_.data() + pos_;
    pos_ += n;
    return p;
  }
  void put_le(uint64_t v, int n) {
    uint8_t* p = reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
  }
  std::vector<uint8_t> out_;
  size_t pos_ = 0;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}

  uint8_t u8() { return static_cast<uint8_t>(get_le(1)); }
  uint16_t u16() { return static_cast<uint16_t>(get_le(2)); }
  uint32_t u32() { return static_cast<uint32_t>(get_le(4)); }
  uint64_t u64() { return get_le(8); }
  double f64() { return std::bit_cast<double>(u64()); }
  // A view of the next n bytes (checked).
  std::span<const uint8_t> bytes(size_t n) {
    need(n);
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }

 private:
  void need(size_t n) const {
    if (n > remaining()) throw Error(ErrorCode::Serialization, "blob is truncated: payload ends early");
  }
  uint64_t get_le(int n) {
    need(static_cast<size_t>(n));
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{in_[pos_ + i]} << (8 * i);
    pos_ += static_cast<size_t>(n);
    return v;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

}  // namespace veil::io
