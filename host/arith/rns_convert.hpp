// Conversions between real numbers and RNS residues on the host: rounding a
// (possibly huge) double into every limb, and CRT-composing residues back to a
// centered value as a double.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/backend.hpp"

namespace veil::rns {

// round(v) mod q for every limb of b into out[limb]. |v| < 2^120, finite.
void round_to_rns(double v, const RnsTables& t, Basis b, uint64_t* out, size_t stride = 1);

// Signed integers (any int64; n coefficients) to canonical residues on basis b,
// limb-major (out: limbs x t.n words). Constant time in the values (secrets pass here).
void signed_to_rns(const int64_t* in, size_t n, const RnsTables& t, Basis b, uint64_t* out);

// Composes residues of the first `limbs` Q primes into the centered integer
// in (-Q/2, Q/2], returned as a double.
class CrtComposer {
 public:
  CrtComposer(const RnsTables& t, uint32_t limbs);
  // residues[i * stride] is the residue mod q_i.
  double compose(const uint64_t* residues, size_t stride) const;

 private:
  uint32_t k_;
  std::vector<uint64_t> primes_, qhat_inv_;   // (Q/q_i)^-1 mod q_i
  std::vector<uint64_t> qhat_;                // [i][k words] Q/q_i
  std::vector<uint64_t> q_, half_q_;          // Q and floor(Q/2), k + 1 words
};

}  // namespace veil::rns
