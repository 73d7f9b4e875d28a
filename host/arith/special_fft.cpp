#include "arith/special_fft.hpp"

#include <bit>
#include <numbers>

#include "veil/error.hpp"

namespace veil::arith {

using cd = std::complex<double>;

namespace {
void bit_reverse_permute(cd* v, uint64_t n) {
  for (uint64_t i = 1, j = 0; i < n; ++i) {
    uint64_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(v[i], v[j]);
  }
}

// (x + iy) w as std::complex computes it for finite values ((ac - bd) + (ad + bc)i,
// no FMA: the build turns contraction off), without its NaN-recovery branch.
inline cd complex_product(double x, double y, cd w) {
  return cd(x * w.real() - y * w.imag(), x * w.imag() + y * w.real());
}
}  // namespace

SpecialFft::SpecialFft(uint64_t n) : slots_(n / 2) {
  require(n >= 4 && std::has_single_bit(n), ErrorCode::InvalidArgument, "SpecialFft: N must be a power of two >= 4");
  const uint64_t m = 2 * n;
  std::vector<uint64_t> rot_group(slots_);  // 5^j mod 2N
  for (uint64_t j = 0, g = 1; j < slots_; ++j, g = (g * 5) % m) rot_group[j] = g;
  std::vector<cd> roots(m + 1);  // exp(2 pi i k / 2N)
  for (uint64_t k = 0; k <= m; ++k) {
    // Computed in long double, one by one, so no error accumulates.
    const long double angle = 2.0L * std::numbers::pi_v<long double> * static_cast<long double>(k) / m;
    roots[k] = cd(static_cast<double>(std::cos(angle)), static_cast<double>(std::sin(angle)));
  }
  encode_roots_.resize(slots_ - 1);
  decode_roots_.resize(slots_ - 1);
  for (uint64_t len = 2; len <= slots_; len <<= 1) {
    const uint64_t lenh = len >> 1, lenq = len << 2, gap = m / lenq;
    for (uint64_t j = 0; j < lenh; ++j) {
      const uint64_t r = rot_group[j] & (lenq - 1);
      encode_roots_[lenh - 1 + j] = roots[(lenq - r) * gap];
      decode_roots_[lenh - 1 + j] = roots[r * gap];
    }
  }
}

void SpecialFft::to_coefficients(cd* v) const {
  for (uint64_t len = slots_; len >= 2; len >>= 1) {
    const uint64_t lenh = len >> 1;
    const cd* w = encode_roots_.data() + lenh - 1;
    for (uint64_t i = 0; i < slots_; i += len) {
      for (uint64_t j = 0; j < lenh; ++j) {
        cd& a = v[i + j];
        cd& b = v[i + j + lenh];
        const double dr = a.real() - b.real(), di = a.imag() - b.imag();
        a = cd(a.real() + b.real(), a.imag() + b.imag());
        b = complex_product(dr, di, w[j]);
      }
    }
  }
  bit_reverse_permute(v, slots_);
}

void SpecialFft::to_slots(cd* v) const {
  bit_reverse_permute(v, slots_);
  for (uint64_t len = 2; len <= slots_; len <<= 1) {
    const uint64_t lenh = len >> 1;
    const cd* w = decode_roots_.data() + lenh - 1;
    for (uint64_t i = 0; i < slots_; i += len) {
      for (uint64_t j = 0; j < lenh; ++j) {
        cd& a = v[i + j];
        cd& b = v[i + j + lenh];
        const cd t = complex_product(b.real(), b.imag(), w[j]);
        b = cd(a.real() - t.real(), a.imag() - t.imag());
        a = cd(a.real() + t.real(), a.imag() + t.imag());
      }
    }
  }
}

}  // namespace veil::arith
