// Negacyclic NTT over Z_q[X]/(X^N + 1) with Harvey's lazy butterflies and
// precomputed Shoup twiddles. Forward: natural-order coefficients to
// evaluations at psi^(2 brev(i) + 1) in bit-reversed order (i = output index);
// inverse undoes it exactly (including the 1/N factor).
#pragma once

#include <cstdint>
#include <vector>

#include "arith/modarith.hpp"

namespace veil::arith {

class NttTables {
 public:
  NttTables(uint64_t q, uint32_t log_n);
  uint64_t modulus() const { return q_; }
  uint32_t log_n() const { return log_n_; }
  uint64_t psi() const { return psi_; }  // the primitive 2N-th root used

  void forward(uint64_t* a) const;  // input < 4q (lazy inputs are fine), output < q
  void inverse(uint64_t* a) const;  // input < q, output < q
  // Whether forward/inverse use the AVX-512 IFMA stages (q < 2^50 and CPU support).
  bool uses_ifma() const { return use_ifma_; }
  // Forces the portable path (tests compare the two).
  void set_use_ifma(bool on);

 private:
  uint64_t q_;
  uint32_t log_n_;
  uint64_t n_;
  uint64_t psi_;
  std::vector<uint64_t> root_, root_shoup_;          // psi^brev(i)
  std::vector<uint64_t> inv_root_, inv_root_shoup_;  // psi^-(brev(i)) arranged for GS
  uint64_t n_inv_, n_inv_shoup_;
  uint64_t last_w_n_inv_, last_w_n_inv_shoup_;  // inverse twiddle of the last stage times 1/N
  // IFMA: floor(w 2^52 / q) companions, used when q < 2^50.
  std::vector<uint64_t> root52_, inv_root52_;
  uint64_t n_inv52_ = 0;
  bool use_ifma_ = false;
  void forward_stage(uint64_t* a, uint64_t m) const;
  void inverse_stage(uint64_t* a, uint64_t m) const;
  void forward_stage_pair(uint64_t* a, uint64_t m, bool reduce_output) const;
  void inverse_stage_pair(uint64_t* a, uint64_t m) const;
};

// Bit-reverse the low `bits` bits of x.
inline uint32_t bit_reverse(uint32_t x, uint32_t bits) {
  uint32_t r = 0;
  for (uint32_t i = 0; i < bits; ++i) {
    r = (r << 1) | (x & 1);
    x >>= 1;
  }
  return r;
}

}  // namespace veil::arith
