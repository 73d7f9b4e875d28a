// Device twins of host/modarith.hpp. Every function performs the same
// integer operations (mod 2^64) in the same order as its host twin, so even
// the results that are not fully reduced (lazy Shoup products, Barrett with
// one correction) are bit-identical to the CPU backend's.
#pragma once

#include <cstdint>

namespace veil::cuda {

// A prime with its Barrett constant floor(2^128 / q) as two words (host: arith::Modulus).
struct DeviceModulus {
  uint64_t value;
  uint64_t ratio_hi, ratio_lo;
};

// 128-bit unsigned value as two words (host: unsigned __int128).
struct U128 {
  uint64_t lo, hi;
};

__device__ __forceinline__ U128 mul_wide(uint64_t a, uint64_t b) { return {a * b, __umul64hi(a, b)}; }

// acc += a * b (mod 2^128), as the host's u128 "+=" does.
__device__ __forceinline__ void mac_wide(U128& acc, uint64_t a, uint64_t b) {
  const uint64_t lo = a * b, hi = __umul64hi(a, b);
  const uint64_t s = acc.lo + lo;
  acc.hi += hi + (s < lo ? 1 : 0);
  acc.lo = s;
}

// Modulus::reduce128: quotient estimate from the top words of x * ratio.
__device__ __forceinline__ uint64_t reduce128(U128 x, const DeviceModulus& m) {
  const uint64_t xl = x.lo, xh = x.hi;
  const uint64_t carry = __umul64hi(xl, m.ratio_lo);
  const uint64_t m1_lo = xl * m.ratio_hi, m1_hi = __umul64hi(xl, m.ratio_hi);
  const uint64_t m2_lo = xh * m.ratio_lo, m2_hi = __umul64hi(xh, m.ratio_lo);
  // mid = carry + m1_lo + m2_lo as a 128-bit sum; only its high word is used.
  const uint64_t s1 = carry + m1_lo;
  uint64_t mid_hi = s1 < carry ? 1 : 0;
  const uint64_t s2 = s1 + m2_lo;
  mid_hi += s2 < s1 ? 1 : 0;
  const uint64_t q_est = xh * m.ratio_hi + m1_hi + m2_hi + mid_hi;
  const uint64_t r = xl - q_est * m.value;
  return r >= m.value ? r - m.value : r;
}

// Modulus::reduce (any 64-bit x).
__device__ __forceinline__ uint64_t reduce64(uint64_t x, const DeviceModulus& m) {
  const uint64_t q_est = __umul64hi(x, m.ratio_hi);
  const uint64_t r = x - q_est * m.value;
  return r >= m.value ? r - m.value : r;
}

// Modulus::mul
__device__ __forceinline__ uint64_t mul_mod(uint64_t a, uint64_t b, const DeviceModulus& m) {
  return reduce128(mul_wide(a, b), m);
}

__device__ __forceinline__ uint64_t add_mod(uint64_t a, uint64_t b, uint64_t q) {
  const uint64_t s = a + b;
  return s >= q ? s - q : s;
}
__device__ __forceinline__ uint64_t sub_mod(uint64_t a, uint64_t b, uint64_t q) {
  return a >= b ? a - b : a + q - b;
}
__device__ __forceinline__ uint64_t neg_mod(uint64_t a, uint64_t q) { return a == 0 ? 0 : q - a; }

// Shoup product, result in [0, 2q).
__device__ __forceinline__ uint64_t mul_shoup_lazy(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q) {
  return a * w - __umul64hi(a, w_shoup) * q;
}
__device__ __forceinline__ uint64_t mul_shoup(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q) {
  const uint64_t r = mul_shoup_lazy(a, w, w_shoup, q);
  return r >= q ? r - q : r;
}

// The canonical residue of a signed integer, as the host's signed_to_rns: x % q in
// (-q, q) (truncating, as C++), plus q when negative (branch-free).
__device__ __forceinline__ uint64_t signed_residue(int64_t x, uint64_t q) {
  const int64_t r = x % static_cast<int64_t>(q);
  return static_cast<uint64_t>(r) + (q & static_cast<uint64_t>(r >> 63));
}

// Bit-reverse the low `bits` bits of x (1 <= bits <= 32).
__device__ __forceinline__ uint32_t bit_reverse(uint32_t x, uint32_t bits) { return __brev(x) >> (32 - bits); }

}  // namespace veil::cuda
