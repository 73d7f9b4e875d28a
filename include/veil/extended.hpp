// Objects of double hoisting (Bossuat, Mouchet, Troncoso-Pastoriza and Hubaux,
// "Efficient Bootstrapping for Approximate Homomorphic Encryption with Non-Sparse Keys",
// Eurocrypt 2021): polynomials over the extended basis Q_level u P, in NTT form.
//
// A key switch ends with a ModDown (divide by P with rounding: P's inverse NTTs, a basis
// conversion and an NTT of every Q limb), the dearest part of a hoisted rotation. In a
// baby-step/giant-step sum  sum_g rot( sum_b p_{g,b} * rot(x, b), g n1 )  the baby-step
// rotations can stay over Q_l u P (scaled by P), be multiplied by plaintexts encoded
// over Q_l u P and summed there, so one ModDown per giant step and one for the result
// replace one per rotation (Evaluator::rotate_hoisted_extended, multiply_sum_extended,
// rotate_sum_extended).
#pragma once

#include <cstdint>

#include "veil/backend.hpp"
#include "veil/context.hpp"

namespace veil {

// An encoded message over Q_level u P (Encoder::encode_extended): one polynomial, NTT
// form; the limbs over Q_level are those Encoder::encode gives.
class ExtendedPlaintext {
 public:
  ExtendedPlaintext() = default;
  ExtendedPlaintext(ContextPtr ctx, uint32_t level, double scale);

  const ContextPtr& context() const { return ctx_; }
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }
  Basis basis() const { return Basis{level_ + 1, true}; }
  uint64_t* data() { return buf_.data(); }
  const uint64_t* data() const { return buf_.data(); }
  bool empty() const { return !ctx_; }

 private:
  ContextPtr ctx_;
  Buffer buf_;
  uint32_t level_ = 0;
  double scale_ = 1;
};

// (c0, c1) over Q_level u P, NTT form, with c0 + c1 s = P m + e: what a key switch
// holds before its ModDown. `scale` is m's scale (the factor P is implied), so the
// ModDown of an extended ciphertext is a Ciphertext of the same scale and level.
class ExtendedCiphertext {
 public:
  ExtendedCiphertext() = default;
  // Zero-filled; with zero = false the contents are unspecified (outputs written in full).
  ExtendedCiphertext(ContextPtr ctx, uint32_t level, double scale, bool zero = true);

  const ContextPtr& context() const { return ctx_; }
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }
  void set_scale(double scale) { scale_ = scale; }
  Basis basis() const { return Basis{level_ + 1, true}; }
  size_t poly_words() const;
  uint64_t* poly(uint32_t i) { return buf_.data() + i * poly_words(); }
  const uint64_t* poly(uint32_t i) const { return buf_.data() + i * poly_words(); }
  bool empty() const { return !ctx_; }

 private:
  ContextPtr ctx_;
  Buffer buf_;
  uint32_t level_ = 0;
  double scale_ = 1;
};

}  // namespace veil
