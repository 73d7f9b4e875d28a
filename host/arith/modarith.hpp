// Word-size modular arithmetic for primes q < 2^61 (so 4q < 2^63 leaves room
// for Harvey's lazy reductions). Shoup multiplication by a fixed operand and
// Barrett reduction of 128-bit products.
#pragma once

#include <cstdint>

namespace veil::arith {

using u128 = unsigned __int128;

inline uint64_t mulhi(uint64_t a, uint64_t b) { return static_cast<uint64_t>((u128)a * b >> 64); }

// A prime modulus with its Barrett constant floor(2^128 / q) (as two words).
struct Modulus {
  uint64_t value = 0;
  uint64_t ratio_hi = 0, ratio_lo = 0;  // floor(2^128 / q)

  Modulus() = default;
  explicit Modulus(uint64_t q) : value(q) {
    // floor(2^128 / q) computed by long division of (2^128 - 1) / q, exact for
    // q not a power of two.
    u128 r = ~u128{0} / q;
    ratio_hi = static_cast<uint64_t>(r >> 64);
    ratio_lo = static_cast<uint64_t>(r);
  }

  // x mod q for any 128-bit x.
  uint64_t reduce128(u128 x) const {
    uint64_t xl = static_cast<uint64_t>(x), xh = static_cast<uint64_t>(x >> 64);
    // quotient estimate = floor(x * ratio / 2^128), computed from the top words
    u128 t = (u128)xl * ratio_lo;
    uint64_t carry = static_cast<uint64_t>(t >> 64);
    u128 m1 = (u128)xl * ratio_hi;
    u128 m2 = (u128)xh * ratio_lo;
    u128 mid = (u128)carry + static_cast<uint64_t>(m1) + static_cast<uint64_t>(m2);
    uint64_t q_est = xh * ratio_hi + static_cast<uint64_t>(m1 >> 64) +
                     static_cast<uint64_t>(m2 >> 64) + static_cast<uint64_t>(mid >> 64);
    uint64_t r = xl - q_est * value;
    return r >= value ? r - value : r;
  }
  uint64_t reduce(uint64_t x) const {  // x mod q for any 64-bit x
    uint64_t q_est = mulhi(x, ratio_hi);
    uint64_t r = x - q_est * value;
    return r >= value ? r - value : r;
  }
  uint64_t mul(uint64_t a, uint64_t b) const { return reduce128((u128)a * b); }
};

inline uint64_t add_mod(uint64_t a, uint64_t b, uint64_t q) {
  uint64_t s = a + b;
  return s >= q ? s - q : s;
}
inline uint64_t sub_mod(uint64_t a, uint64_t b, uint64_t q) { return a >= b ? a - b : a + q - b; }
inline uint64_t neg_mod(uint64_t a, uint64_t q) { return a == 0 ? 0 : q - a; }

// Shoup: precompute w' = floor(w * 2^64 / q) once; then a * w mod q costs two
// multiplications. Valid for a < 2^64, w < q.
inline uint64_t shoup_precompute(uint64_t w, uint64_t q) {
  return static_cast<uint64_t>(((u128)w << 64) / q);
}
// Result in [0, 2q).
inline uint64_t mul_shoup_lazy(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q) {
  return a * w - mulhi(a, w_shoup) * q;
}
inline uint64_t mul_shoup(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q) {
  uint64_t r = mul_shoup_lazy(a, w, w_shoup, q);
  return r >= q ? r - q : r;
}

inline uint64_t pow_mod(uint64_t base, uint64_t exp, uint64_t q) {
  Modulus m(q);
  uint64_t result = 1 % q, b = base % q;
  while (exp) {
    if (exp & 1) result = m.mul(result, b);
    b = m.mul(b, b);
    exp >>= 1;
  }
  return result;
}
// Inverse modulo a prime q (a != 0 mod q).
inline uint64_t inv_mod(uint64_t a, uint64_t q) { return pow_mod(a, q - 2, q); }

}  // namespace veil::arith
