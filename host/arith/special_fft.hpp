// CKKS's canonical embedding restricted to the 5^j orbit (HEAAN's "special FFT")
// over N/2 complex slots, with its per-stage roots precomputed. Encoding runs
// to_coefficients (slots -> coefficients, unnormalized); decoding runs to_slots.
// The cuda backend runs the same butterflies with the same roots (see
// encode_roots), so both give the same doubles.
#pragma once

#include <complex>
#include <cstdint>
#include <vector>

namespace veil::arith {

class SpecialFft {
 public:
  explicit SpecialFft(uint64_t n);  // ring degree N (a power of two >= 4)

  uint64_t slots() const { return slots_; }
  // In place: slot values -> slots * (coefficient i + i coefficient i + N/2), in order:
  // the butterflies leave position k at bit-reversed k, and a final permutation
  // puts it back.
  void to_coefficients(std::complex<double>* v) const;
  // In place: coefficients packed as above (c_i + i c_{i + N/2}) -> slot values.
  void to_slots(std::complex<double>* v) const;

  // to_coefficients' stages run len = slots, slots/2, ..., 2 with h = len/2 butterflies
  // per block; butterfly j of that stage uses encode_roots()[h - 1 + j].
  const std::vector<std::complex<double>>& encode_roots() const { return encode_roots_; }

 private:
  uint64_t slots_;
  std::vector<std::complex<double>> encode_roots_, decode_roots_;  // slots - 1 each
};

}  // namespace veil::arith
