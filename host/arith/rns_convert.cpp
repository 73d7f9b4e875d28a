#include "arith/rns_convert.hpp"

#include <algorithm>
#include <cmath>

#include "arith/modarith.hpp"
#include "veil/error.hpp"

namespace veil::rns {

using arith::u128;

void round_to_rns(double v, const RnsTables& t, Basis b, uint64_t* out, size_t stride) {
  require(std::isfinite(v) && std::fabs(v) < 0x1p120, ErrorCode::InvalidArgument,
          "value times scale must be finite and below 2^120 in magnitude");
  const double r = std::nearbyint(v);
  const uint32_t limbs = t.limbs(b);
  const bool negative = r < 0;
  const double mag = std::fabs(r);
  if (mag < 0x1p63) {
    const uint64_t m = static_cast<uint64_t>(mag);
    for (uint32_t limb = 0; limb < limbs; ++limb) {
      const uint64_t q = t.primes[t.prime_index(b, limb)];
      uint64_t x = m % q;
      out[limb * stride] = (negative && x) ? q - x : x;
    }
    return;
  }
  // mag = mantissa * 2^shift exactly, mantissa < 2^53.
  int exp = 0;
  const double frac = std::frexp(mag, &exp);
  const uint64_t mantissa = static_cast<uint64_t>(std::ldexp(frac, 53));
  const int shift = exp - 53;
  for (uint32_t limb = 0; limb < limbs; ++limb) {
    const uint64_t q = t.primes[t.prime_index(b, limb)];
    arith::Modulus m(q);
    uint64_t x = m.mul(mantissa % q, arith::pow_mod(2, static_cast<uint64_t>(shift), q));
    out[limb * stride] = (negative && x) ? q - x : x;
  }
}

void signed_to_rns(const int64_t* in, size_t n, const RnsTables& t, Basis b, uint64_t* out) {
  const uint32_t limbs = t.limbs(b);
  for (uint32_t limb = 0; limb < limbs; ++limb) {
    const arith::Modulus m(t.primes[t.prime_index(b, limb)]);
    const uint64_t q = m.value;
    uint64_t* dst = out + static_cast<size_t>(limb) * t.n;
    for (size_t i = 0; i < n; ++i) {
      // Branch-free on the (secret) sign, and Barrett instead of a division (whose
      // time depends on the operand): |x| mod q, then q - r when x < 0 and r != 0.
      const uint64_t sign = static_cast<uint64_t>(in[i] >> 63);  // all ones if negative
      const uint64_t mag = (static_cast<uint64_t>(in[i]) ^ sign) - sign;
      const uint64_t r = m.reduce(mag);
      const uint64_t flip = sign & (0 - static_cast<uint64_t>(r != 0));
      dst[i] = r ^ ((r ^ (q - r)) & flip);
    }
  }
}

namespace {
// out[0..k) = a[0..k) * w (+ carry into out[k]); a has k words, out has k+1.
void mul_word(const uint64_t* a, uint32_t k, uint64_t w, uint64_t* out) {
  uint64_t carry = 0;
  for (uint32_t i = 0; i < k; ++i) {
    u128 p = (u128)a[i] * w + carry;
    out[i] = static_cast<uint64_t>(p);
    carry = static_cast<uint64_t>(p >> 64);
  }
  out[k] = carry;
}
bool geq(const uint64_t* a, const uint64_t* b, uint32_t words) {
  for (int i = static_cast<int>(words) - 1; i >= 0; --i)
    if (a[i] != b[i]) return a[i] > b[i];
  return true;
}
void sub_in_place(uint64_t* a, const uint64_t* b, uint32_t words) {
  uint64_t borrow = 0;
  for (uint32_t i = 0; i < words; ++i) {
    u128 d = (u128)a[i] - b[i] - borrow;
    a[i] = static_cast<uint64_t>(d);
    borrow = (d >> 64) ? 1 : 0;
  }
}
double to_double(const uint64_t* a, uint32_t words) {
  double r = 0;
  for (int i = static_cast<int>(words) - 1; i >= 0; --i) r = r * 0x1p64 + static_cast<double>(a[i]);
  return r;
}
}  // namespace

CrtComposer::CrtComposer(const RnsTables& t, uint32_t limbs) : k_(limbs) {
  require(limbs >= 1 && limbs <= t.max_level + 1, ErrorCode::InvalidArgument, "CrtComposer: bad limb count");
  primes_.assign(t.primes.begin(), t.primes.begin() + limbs);
  const uint32_t w = k_ + 1;
  q_.assign(w, 0);
  q_[0] = 1;
  std::vector<uint64_t> tmp(w + 1);
  for (uint32_t i = 0; i < k_; ++i) {
    mul_word(q_.data(), w, primes_[i], tmp.data());
    std::copy(tmp.begin(), tmp.begin() + w, q_.begin());
  }
  half_q_.assign(w, 0);
  for (uint32_t i = 0; i < w; ++i) half_q_[i] = (q_[i] >> 1) | (i + 1 < w ? q_[i + 1] << 63 : 0);
  qhat_.assign(static_cast<size_t>(k_) * w, 0);
  for (uint32_t i = 0; i < k_; ++i) {
    uint64_t* qh = qhat_.data() + static_cast<size_t>(i) * w;
    qh[0] = 1;
    arith::Modulus mi(primes_[i]);
    uint64_t qhat_mod = 1;
    for (uint32_t j = 0; j < k_; ++j) {
      if (j == i) continue;
      mul_word(qh, w, primes_[j], tmp.data());
      std::copy(tmp.begin(), tmp.begin() + w, qh);
      qhat_mod = mi.mul(qhat_mod, primes_[j] % primes_[i]);
    }
    qhat_inv_.push_back(arith::inv_mod(qhat_mod, primes_[i]));
  }
}

double CrtComposer::compose(const uint64_t* residues, size_t stride) const {
  const uint32_t w = k_ + 1;  // k_ <= 64, so fixed-size scratch suffices
  uint64_t acc[68] = {0}, term[68], qx[68], neg[68];
  for (uint32_t i = 0; i < k_; ++i) {
    const uint64_t y = arith::Modulus(primes_[i]).mul(residues[i * stride], qhat_inv_[i]);
    mul_word(qhat_.data() + static_cast<size_t>(i) * w, w, y, term);
    uint64_t carry = 0;
    for (uint32_t j = 0; j <= w; ++j) {
      u128 s = (u128)acc[j] + term[j] + carry;
      acc[j] = static_cast<uint64_t>(s);
      carry = static_cast<uint64_t>(s >> 64);
    }
  }
  // acc < k * Q: subtract Q until below it.
  std::copy(q_.begin(), q_.end(), qx);
  qx[w] = 0;
  while (geq(acc, qx, w + 1)) sub_in_place(acc, qx, w + 1);
  // Centered: values above floor(Q/2) stand for acc - Q.
  if (geq(acc, half_q_.data(), w) && !std::equal(acc, acc + w, half_q_.begin())) {
    std::copy(qx, qx + w + 1, neg);
    sub_in_place(neg, acc, w + 1);
    return -to_double(neg, w + 1);
  }
  return to_double(acc, w + 1);
}

}  // namespace veil::rns
