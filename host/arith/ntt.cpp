#include "arith/ntt.hpp"

#include "arith/ntt_ifma.hpp"
#include "arith/primes.hpp"
#include "veil/error.hpp"

namespace veil::arith {

NttTables::NttTables(uint64_t q, uint32_t log_n) : q_(q), log_n_(log_n), n_(uint64_t{1} << log_n) {
  require(q < (uint64_t{1} << 61), ErrorCode::InvalidArgument, "NTT prime must be below 2^61");
  require(log_n >= 2 && log_n <= 17, ErrorCode::InvalidArgument, "NTT size must be 2^2 .. 2^17");
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

namespace {
// Harvey forward butterfly: x, y in [0, 4q) -> x + wy, x - wy in [0, 4q).
inline void ct_butterfly(uint64_t& x, uint64_t& y, uint64_t w, uint64_t ws, uint64_t q, uint64_t two_q) {
  uint64_t u = x - ((x >= two_q) ? two_q : 0);
  uint64_t v = mul_shoup_lazy(y, w, ws, q);
  x = u + v;
  y = u - v + two_q;
}
// Harvey inverse butterfly: x, y in [0, 2q) -> x + y, (x - y) w in [0, 2q).
inline void gs_butterfly(uint64_t& x, uint64_t& y, uint64_t w, uint64_t ws, uint64_t q, uint64_t two_q) {
  uint64_t s = x + y;
  uint64_t d = x - y + two_q;
  x = s - ((s >= two_q) ? two_q : 0);
  y = mul_shoup_lazy(d, w, ws, q);
}
inline uint64_t reduce_4q(uint64_t x, uint64_t q, uint64_t two_q) {
  x -= (x >= two_q) ? two_q : 0;
  return x - ((x >= q) ? q : 0);
}
}  // namespace

// One Cooley-Tukey stage (m groups, half-width t = n / 2m), values in [0, 4q) (Harvey).
void NttTables::forward_stage(uint64_t* a, uint64_t m) const {
  const uint64_t q = q_, two_q = 2 * q_, t = n_ / (2 * m);
  for (uint64_t i = 0; i < m; ++i) {
    const uint64_t w = root_[m + i], ws = root_shoup_[m + i];
    uint64_t* x = a + 2 * i * t;
    uint64_t* y = x + t;
    for (uint64_t j = 0; j < t; ++j) ct_butterfly(x[j], y[j], w, ws, q, two_q);
  }
}

// One Gentleman-Sande stage (m/2 groups, half-width t = n / m), values in [0, 2q).
void NttTables::inverse_stage(uint64_t* a, uint64_t m) const {
  const uint64_t q = q_, two_q = 2 * q_, h = m >> 1, t = n_ / m;
  for (uint64_t i = 0; i < h; ++i) {
    const uint64_t w = inv_root_[h + i], ws = inv_root_shoup_[h + i];
    uint64_t* x = a + 2 * i * t;
    uint64_t* y = x + t;
    for (uint64_t j = 0; j < t; ++j) gs_butterfly(x[j], y[j], w, ws, q, two_q);
  }
}

// Stages m and 2m fused (radix 4): each element is loaded and stored once for
// two stages, halving the memory traffic. Needs t = n / 2m >= 2.
void NttTables::forward_stage_pair(uint64_t* a, uint64_t m, bool reduce_output) const {
  const uint64_t q = q_, two_q = 2 * q_, t = n_ / (2 * m), h = t / 2;
  for (uint64_t i = 0; i < m; ++i) {
    const uint64_t w1 = root_[m + i], w1s = root_shoup_[m + i];
    const uint64_t w2 = root_[2 * m + 2 * i], w2s = root_shoup_[2 * m + 2 * i];
    const uint64_t w3 = root_[2 * m + 2 * i + 1], w3s = root_shoup_[2 * m + 2 * i + 1];
    uint64_t* p0 = a + 2 * i * t;
    uint64_t *p1 = p0 + h, *p2 = p0 + t, *p3 = p0 + t + h;
    for (uint64_t j = 0; j < h; ++j) {
      uint64_t x0 = p0[j], x1 = p1[j], x2 = p2[j], x3 = p3[j];
      ct_butterfly(x0, x2, w1, w1s, q, two_q);
      ct_butterfly(x1, x3, w1, w1s, q, two_q);
      ct_butterfly(x0, x1, w2, w2s, q, two_q);
      ct_butterfly(x2, x3, w3, w3s, q, two_q);
      if (reduce_output) {  // last pass: [0, 4q) -> [0, q)
        x0 = reduce_4q(x0, q, two_q), x1 = reduce_4q(x1, q, two_q);
        x2 = reduce_4q(x2, q, two_q), x3 = reduce_4q(x3, q, two_q);
      }
      p0[j] = x0, p1[j] = x1, p2[j] = x2, p3[j] = x3;
    }
  }
}

// Inverse stages m and m/2 fused (radix 4). Needs m >= 4.
void NttTables::inverse_stage_pair(uint64_t* a, uint64_t m) const {
  const uint64_t q = q_, two_q = 2 * q_, h = m >> 1, t = n_ / m;
  for (uint64_t i = 0; i < h / 2; ++i) {
    const uint64_t w1 = inv_root_[h + 2 * i], w1s = inv_root_shoup_[h + 2 * i];
    const uint64_t w2 = inv_root_[h + 2 * i + 1], w2s = inv_root_shoup_[h + 2 * i + 1];
    const uint64_t w3 = inv_root_[h / 2 + i], w3s = inv_root_shoup_[h / 2 + i];
    uint64_t* p0 = a + 4 * i * t;
    uint64_t *p1 = p0 + t, *p2 = p0 + 2 * t, *p3 = p0 + 3 * t;
    for (uint64_t j = 0; j < t; ++j) {
      uint64_t x0 = p0[j], x1 = p1[j], x2 = p2[j], x3 = p3[j];
      gs_butterfly(x0, x1, w1, w1s, q, two_q);
      gs_butterfly(x2, x3, w2, w2s, q, two_q);
      gs_butterfly(x0, x2, w3, w3s, q, two_q);
      gs_butterfly(x1, x3, w3, w3s, q, two_q);
      p0[j] = x0, p1[j] = x1, p2[j] = x2, p3[j] = x3;
    }
  }
}

void NttTables::forward(uint64_t* a) const {
  if (use_ifma_) {
    // Whole-vector stages while the half-width is >= 8 lanes, then the last three
    // in registers with lane permutes (which also reduce to [0, q)).
    ifma::forward_stages(a, n_, q_, root_.data(), root52_.data(), 1, n_ / 8);
    ifma::forward_last_stages(a, n_, q_, root_.data(), root52_.data());
    return;
  }
  // Odd log n: one radix-2 stage first (long, cache-friendly loops), then pairs.
  uint64_t m = 1;
  if ((log_n_ & 1) != 0) {
    forward_stage(a, 1);
    m = 2;
  }
  for (; 4 * m < n_; m <<= 2) forward_stage_pair(a, m, false);
  forward_stage_pair(a, m, true);  // the last pair (t = 2) also reduces to [0, q)
}

void NttTables::inverse(uint64_t* a) const {
  if (use_ifma_) {
    ifma::inverse_first_stages(a, n_, q_, inv_root_.data(), inv_root52_.data());
    ifma::inverse_stages(a, n_, q_, inv_root_.data(), inv_root52_.data(), n_ / 8, 1);
    ifma::multiply_reduce(a, n_, q_, n_inv_, n_inv52_);
    return;
  }
  uint64_t m = n_;
  for (; m >= 8; m >>= 2) inverse_stage_pair(a, m);  // stages m and m/2, both before the last
  if (m == 4) inverse_stage(a, m);
  // Last stage with 1/N folded in: x' = (u + v) / N, y' = (u - v) w / N.
  const uint64_t q = q_, two_q = 2 * q_, half = n_ >> 1;
  for (uint64_t j = 0; j < half; ++j) {
    const uint64_t u = a[j], v = a[j + half];
    a[j] = mul_shoup(u + v, n_inv_, n_inv_shoup_, q);
    a[j + half] = mul_shoup(u - v + two_q, last_w_n_inv_, last_w_n_inv_shoup_, q);
  }
}

}  // namespace veil::arith
