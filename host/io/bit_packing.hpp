// Packing of w-bit values into a little-endian bit stream (value i occupies
// bits [i*w, (i+1)*w), bit 0 = least significant bit of byte 0), padded with
// zero bits to a whole byte. Serialization stores each RNS limb this way with
// w = bit width of (q - 1): a 27-bit prime then costs 27 bits a coefficient
// instead of 64.
//
// Both directions move 64 bits at a time through a shift register rather than
// bit by bit. Control flow depends only on (n, w), never on the values, so
// secret coefficients go through the same path as public ones.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace veil::io {

inline size_t packed_bytes(size_t n, unsigned w) { return (n * w + 7) / 8; }

namespace detail {

inline void store_le(uint8_t* dst, uint64_t v, size_t bytes) {
  if (bytes == 8 && std::endian::native == std::endian::little) {
    std::memcpy(dst, &v, 8);
    return;
  }
  for (size_t i = 0; i < bytes; ++i) dst[i] = static_cast<uint8_t>(v >> (8 * i));
}

inline uint64_t load_le(const uint8_t* src, size_t bytes) {
  uint64_t v = 0;
  if (bytes == 8 && std::endian::native == std::endian::little) {
    std::memcpy(&v, src, 8);
    return v;
  }
  for (size_t i = 0; i < bytes; ++i) v |= uint64_t{src[i]} << (8 * i);
  return v;
}

}  // namespace detail

// Writes n values of w bits (1 <= w <= 64) to packed_bytes(n, w) bytes at dst.
// Every value must be < 2^w.
inline void pack_bits(const uint64_t* src, size_t n, unsigned w, uint8_t* dst) {
  uint64_t acc = 0;   // pending bits, lowest first
  unsigned fill = 0;  // number of pending bits, always < 64
  for (size_t i = 0; i < n; ++i) {
    const uint64_t v = src[i];
    acc |= v << fill;
    if (fill + w >= 64) {
      detail::store_le(dst, acc, 8);
      dst += 8;
      acc = fill == 0 ? 0 : v >> (64 - fill);  // the high bits of v that did not fit
      fill = fill + w - 64;
    } else {
      fill += w;
    }
  }
  detail::store_le(dst, acc, (fill + 7) / 8);
}

// Reads n values of w bits (1 <= w <= 64) from packed_bytes(n, w) bytes at src.
// Returns false when a padding bit after the last value is set, so that every
// value sequence has exactly one encoding.
inline bool unpack_bits(const uint8_t* src, size_t n, unsigned w, uint64_t* dst) {
  const uint64_t mask = w == 64 ? ~uint64_t{0} : (uint64_t{1} << w) - 1;
  size_t left = packed_bytes(n, w);  // bytes not yet loaded
  uint64_t acc = 0;                  // loaded bits not yet consumed, lowest first
  unsigned have = 0;                 // number of such bits, <= 64
  for (size_t i = 0; i < n; ++i) {
    if (have >= w) {
      dst[i] = acc & mask;
      acc = w == 64 ? 0 : acc >> w;
      have -= w;
    } else {
      // Refill: the low (w - have) bits of the next word complete this value.
      const size_t k = left < 8 ? left : 8;
      const uint64_t next = detail::load_le(src, k);
      src += k;
      left -= k;
      const unsigned used = w - have;  // in [1, 64]
      dst[i] = (acc | (next << have)) & mask;
      acc = used == 64 ? 0 : next >> used;
      have = static_cast<unsigned>(8 * k) - used;
    }
  }
  // What remains (fewer than 8 bits, in the last byte) is padding.
  return acc == 0;
}

}  // namespace veil::io
