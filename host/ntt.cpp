#include "ntt.hpp"

#include "ntt_ifma.hpp"
#include "primes.hpp"
#include "veil/error.hpp"

namespace veil::arith {

NttTables::NttTables(uint64_t q, uint32_t log_n) : q_(q), log_n_(log_n), n_(uint64_t{1} << log_n) {
  require(q < (uint64_t{1} << 61), ErrorCode::InvalidArgument, "NTT prime must be below 2^61");
  psi_ = minimal_primitive_root(2 * n_, q);
  const uint64_t psi_inv = inv_mod(psi_, q);
  Modulus m(q);
  root_.resize(n_);
  inv_root_.resize(n_);
  root_shoup_.resize(n_);
  inv_root_shoup_.resize(n_);
  uint64_t power = 1, inv_power = 1;
  // root_[brev(k)] = psi^k, inv_root_[brev(k)] = psi^-k
  for (uint64_t k = 0; k < n_; ++k) {
    uint32_t r = bit_reverse(static_cast<uint32_t>(k), log_n);
    root_[r] = power;
    inv_root_[r] = inv_power;
    power = m.mul(power, psi_);
    inv_power = m.mul(inv_power, psi_inv);
  }
  for (uint64_t k = 0; k < n_; ++k) {
    root_shoup_[k] = shoup_precompute(root_[k], q);
    inv_root_shoup_[k] = shoup_precompute(inv_root_[k], q);
  }
  n_inv_ = inv_mod(n_ % q, q);
  n_inv_shoup_ = shoup_precompute(n_inv_, q);
  last_w_n_inv_ = m.mul(inv_root_[1], n_inv_);
  last_w_n_inv_shoup_ = shoup_precompute(last_w_n_inv_, q);
  if (q < (uint64_t{1} << 50) && n_ >= 16) {
    auto shoup52 = [q](uint64_t w) { return static_cast<uint64_t>(((u128)w << 52) / q); };
    root52_.resize(n_);
    inv_root52_.resize(n_);
    for (uint64_t k = 0; k < n_; ++k) {
      root52_[k] = shoup52(root_[k]);
      inv_root52_[k] = shoup52(inv_root_[k]);
    }
    n_inv52_ = shoup52(n_inv_);
    use_ifma_ = ifma::available();
  }
}

void NttTables::set_use_ifma(bool on) { use_ifma_ = on && !root52_.empty() && ifma::available(); }

// One Cooley-Tukey stage (m groups, half-width t = n / 2m), values in [0, 4q) (Harvey).
void NttTables::forward_stage(uint64_t* a, uint64_t m) const {
  const uint64_t q = q_, two_q = 2 * q_, t = n_ / (2 * m);
  for (uint64_t i = 0; i < m; ++i) {
    const uint64_t w = root_[m + i], ws = root_shoup_[m + i];
    uint64_t* x = a + 2 * i * t;
    uint64_t* y = x + t;
    for (uint64_t j = 0; j < t; ++j) {
      uint64_t u = x[j];
      u -= (u >= two_q) ? two_q : 0;
      uint64_t v = mul_shoup_lazy(y[j], w, ws, q);
      x[j] = u + v;
      y[j] = u - v + two_q;
    }
  }
}

// One Gentleman-Sande stage (m/2 groups, half-width t = n / m), values in [0, 2q).
void NttTables::inverse_stage(uint64_t* a, uint64_t m) const {
  const uint64_t q = q_, two_q = 2 * q_, h = m >> 1, t = n_ / m;
  for (uint64_t i = 0; i < h; ++i) {
    const uint64_t w = inv_root_[h + i], ws = inv_root_shoup_[h + i];
    uint64_t* x = a + 2 * i * t;
    uint64_t* y = x + t;
    for (uint64_t j = 0; j < t; ++j) {
      uint64_t u = x[j], v = y[j];
      uint64_t s = u + v;
      x[j] = s - ((s >= two_q) ? two_q : 0);
      y[j] = mul_shoup_lazy(u - v + two_q, w, ws, q);
    }
  }
}

void NttTables::forward(uint64_t* a) const {
  if (use_ifma_) {
    // Vector stages while the half-width is >= 8 lanes, scalar for the last three.
    ifma::forward_stages(a, n_, q_, root_.data(), root52_.data(), 1, n_ / 8);
    for (uint64_t m = n_ / 8; m < n_; m <<= 1) forward_stage(a, m);
    ifma::reduce_from_4q(a, n_, q_);
    return;
  }
  for (uint64_t m = 1; m < n_; m <<= 1) forward_stage(a, m);
  const uint64_t q = q_, two_q = 2 * q_;
  for (uint64_t j = 0; j < n_; ++j) {
    uint64_t u = a[j];
    u -= (u >= two_q) ? two_q : 0;
    a[j] = u - ((u >= q) ? q : 0);
  }
}

void NttTables::inverse(uint64_t* a) const {
  if (use_ifma_) {
    for (uint64_t m = n_; m > n_ / 8; m >>= 1) inverse_stage(a, m);
    ifma::inverse_stages(a, n_, q_, inv_root_.data(), inv_root52_.data(), n_ / 8, 1);
    ifma::multiply_reduce(a, n_, q_, n_inv_, n_inv52_);
    return;
  }
  for (uint64_t m = n_; m > 2; m >>= 1) inverse_stage(a, m);
  // Last stage with 1/N folded in: x' = (u + v) / N, y' = (u - v) w / N.
  const uint64_t q = q_, two_q = 2 * q_, half = n_ >> 1;
  for (uint64_t j = 0; j < half; ++j) {
    const uint64_t u = a[j], v = a[j + half];
    a[j] = mul_shoup(u + v, n_inv_, n_inv_shoup_, q);
    a[j + half] = mul_shoup(u - v + two_q, last_w_n_inv_, last_w_n_inv_shoup_, q);
  }
}

}  // namespace veil::arith
