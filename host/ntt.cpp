#include "ntt.hpp"

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
}

// Cooley-Tukey, values kept in [0, 4q) between stages (Harvey).
void NttTables::forward(uint64_t* a) const {
  const uint64_t q = q_, two_q = 2 * q_;
  uint64_t t = n_;
  for (uint64_t m = 1; m < n_; m <<= 1) {
    t >>= 1;
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
  for (uint64_t j = 0; j < n_; ++j) {
    uint64_t u = a[j];
    u -= (u >= two_q) ? two_q : 0;
    a[j] = u - ((u >= q) ? q : 0);
  }
}

// Gentleman-Sande, values kept in [0, 2q) between stages.
void NttTables::inverse(uint64_t* a) const {
  const uint64_t q = q_, two_q = 2 * q_;
  uint64_t t = 1;
  for (uint64_t m = n_; m > 1; m >>= 1) {
    const uint64_t h = m >> 1;
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
    t <<= 1;
  }
  for (uint64_t j = 0; j < n_; ++j) a[j] = mul_shoup(a[j], n_inv_, n_inv_shoup_, q);
}

}  // namespace veil::arith
