// Homomorphic operations on ciphertexts (server side; no secret key).
//
// Levels: binary operations bring the higher-level operand down to the
// lower level automatically (dropping primes; the scale is unchanged).
// Scales: operands of add/sub must have equal scales (relative difference
// below 2^-40). If one scale is an integer multiple r of the other (r up to
// 2^20), the smaller-scale operand is multiplied by r exactly; otherwise the
// call throws Error(ScaleMismatch).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/combination.hpp"
#include "veil/extended.hpp"
#include "veil/keys.hpp"

namespace veil {

class Evaluator {
 public:
  explicit Evaluator(ContextPtr ctx);

  Ciphertext add(const Ciphertext& a, const Ciphertext& b) const;
  Ciphertext sub(const Ciphertext& a, const Ciphertext& b) const;
  Ciphertext negate(const Ciphertext& a) const;
  Ciphertext add_plain(const Ciphertext& a, const Plaintext& p) const;
  Ciphertext sub_plain(const Ciphertext& a, const Plaintext& p) const;
  // Adds the real constant c to every slot (encoded at a's scale).
  Ciphertext add_scalar(const Ciphertext& a, double c) const;

  // Tensor product without relinearization: size 2 x size 2 -> size 3.
  Ciphertext multiply_no_relin(const Ciphertext& a, const Ciphertext& b) const;
  // Multiply then relinearize (result scale = a.scale * b.scale; rescale after).
  Ciphertext multiply(const Ciphertext& a, const Ciphertext& b, const RelinKey& rk) const;
  Ciphertext square(const Ciphertext& a, const RelinKey& rk) const;
  Ciphertext relinearize(const Ciphertext& a, const RelinKey& rk) const;
  // relinearize of each ciphertext, word for word, the size-3 ones of one level
  // key-switched together (one launch sequence on cuda).
  std::vector<Ciphertext> relinearize_many(std::span<const Ciphertext> as, const RelinKey& rk) const;
  // rescale(relinearize(a)) in one step: the key switch's ModDown divides by q_level
  // with P (Backend::mod_down_rescale_pair), which saves an NTT of every limb and one
  // rounding. Level - 1, scale / q_level; not the words of the two calls (one rounding
  // fewer). Size-2 inputs are just rescaled. LevelMismatch at level 0.
  Ciphertext relinearize_rescale(const Ciphertext& a, const RelinKey& rk) const;
  // relinearize_rescale of each ciphertext, word for word, in batches as relinearize_many.
  std::vector<Ciphertext> relinearize_rescale_many(std::span<const Ciphertext> as, const RelinKey& rk) const;
  Ciphertext multiply_plain(const Ciphertext& a, const Plaintext& p) const;
  // Multiplies every slot by the real constant c, encoded at scale q_level (the
  // prime the next rescale divides by), so rescale() restores a's scale exactly.
  Ciphertext multiply_scalar(const Ciphertext& a, double c) const;
  // Multiplies every slot by the real constant c encoded at `scale` (result scale
  // a.scale * scale): the words of multiply_plain(a, Encoder::encode_constant(c, scale,
  // a.level())) without making the plaintext (nothing leaves the host per call, so it
  // can be recorded). Error(InvalidArgument) when c * scale is not finite or reaches
  // 2^120, ScaleMismatch when the product scale is too large.
  Ciphertext multiply_constant(const Ciphertext& a, double c, double scale) const;
  // Multiplies by an integer; no scale change, no level consumed.
  Ciphertext multiply_integer(const Ciphertext& a, int64_t k) const;

  // Divides by the last prime q_level with rounding: level - 1, scale / q_level.
  Ciphertext rescale(const Ciphertext& a) const;
  // rescale of each ciphertext, word for word, those of one level in one batch (one
  // launch sequence on cuda).
  std::vector<Ciphertext> rescale_many(std::span<const Ciphertext> as) const;
  // Drops primes down to `level` (no scale change).
  Ciphertext mod_switch_to(const Ciphertext& a, uint32_t level) const;
  Plaintext mod_switch_to(const Plaintext& p, uint32_t level) const;

  // Rotates slots left by `step` (negative: right). Uses the step's own key
  // when present, otherwise composes power-of-two keys; MissingKey if neither.
  Ciphertext rotate(const Ciphertext& a, int64_t step, const GaloisKeys& gk) const;
  // Rotations of one ciphertext by several steps sharing one decomposition
  // (hoisting). Every step needs its own key. Results equal rotate() bit for bit.
  std::vector<Ciphertext> rotate_hoisted(const Ciphertext& a, const std::vector<int64_t>& steps,
                                         const GaloisKeys& gk) const;
  // rotate_hoisted of several ciphertexts: result[i][k] = rotate(*xs[i], steps[i][k]),
  // word for word; every rotation of one level in one batch of key switches (one
  // launch sequence on cuda). InvalidArgument when the counts differ.
  std::vector<std::vector<Ciphertext>> rotate_hoisted_many(const std::vector<const Ciphertext*>& xs,
                                                           const std::vector<std::vector<int64_t>>& steps,
                                                           const GaloisKeys& gk) const;
  // Independent rotations: result i = rotate(*xs[i], steps[i]), word for word. The
  // ones whose step has its own key are key-switched together, per level (one launch
  // sequence on cuda instead of one per rotation); the others as rotate() does them.
  // InvalidArgument when the counts differ.
  std::vector<Ciphertext> rotate_many(const std::vector<const Ciphertext*>& xs, const std::vector<int64_t>& steps,
                                      const GaloisKeys& gk) const;
  Ciphertext conjugate(const Ciphertext& a, const GaloisKeys& gk) const;
  // Applies X -> X^g with its key (advanced use).
  Ciphertext apply_galois(const Ciphertext& a, uint64_t galois_elt, const GaloisKeys& gk) const;

  // Integer linear combinations (veil/combination.hpp): output r = sum over row r's
  // entries of round(w * m.weight_scale()) * inputs[column]. inputs: m.columns()
  // ciphertexts of this context, one size, level m.level() (higher ones are brought
  // down), one scale s (relative difference below 2^-40). The outputs have the inputs'
  // size, level m.level() and scale s * m.weight_scale(). combine_into adds the sums
  // to `outputs` (m.rows() ciphertexts of that size, level and scale), so a large
  // matrix can be applied a slice of columns at a time. Throws ContextMismatch,
  // LevelMismatch (an input below the matrix's level), ScaleMismatch, InvalidArgument
  // (counts, sizes).
  std::vector<Ciphertext> combine(std::span<const Ciphertext> inputs, const CombinationMatrix& m) const;
  void combine_into(std::span<Ciphertext> outputs, std::span<const Ciphertext> inputs,
                    const CombinationMatrix& m) const;

  // ---- double hoisting (veil/extended.hpp) ----
  // A baby-step/giant-step sum  sum_g rot( sum_t p_t * rot(x_{i_t}, b_t), G_g ):
  //   auto babies = rotate_hoisted_extended(xs, steps, gk);        // no ModDown
  //   multiply_sum_extended(parts[g], terms of giant step g, ...);  // over Q_l u P
  //   Ciphertext y = rotate_sum_extended(parts, giant steps, gk);  // one ModDown each
  // rotate_hoisted_many's rotations kept over Q_l u P: result[i][k] is P times
  // rotate(*xs[i], steps[i][k]) before its ModDown (the ModDown of it gives rotate()'s
  // words but for a rounding tie, of probability ~2^-50 per coefficient); a step of 0
  // gives P * xs[i] exactly. One decomposition per input, every rotation of a level
  // one batch. Each nonzero step needs its own key (MissingKey); inputs of size 2
  // (InvalidArgument); InvalidArgument when the counts differ.
  std::vector<std::vector<ExtendedCiphertext>> rotate_hoisted_extended(
      const std::vector<const Ciphertext*>& xs, const std::vector<std::vector<int64_t>>& steps,
      const GaloisKeys& gk) const;
  // out = sum_t xs[t] * ps[t] over Q_l u P (accumulate: out += that sum), one pass.
  // Every term of one level and one product scale xs[t].scale * ps[t].scale (relative
  // difference below 2^-40; ScaleMismatch otherwise), plaintexts of their ciphertext's
  // level (LevelMismatch); out takes that level and scale (accumulate: it must have
  // them). InvalidArgument when the counts differ or are 0, or when out is a term.
  void multiply_sum_extended(ExtendedCiphertext& out, std::span<const ExtendedCiphertext* const> xs,
                             std::span<const ExtendedPlaintext* const> ps, bool accumulate) const;
  // sum_i rotate(ModDown(parts[i]), steps[i]), then rescaled when `rescale` (level - 1,
  // scale / q_level; LevelMismatch at level 0). A rotated part costs a ModDown of its c1
  // and a key switch kept over Q_l u P; the sum one ModDown (merged with the rescale).
  // Within a rounding of each ModDown of the two-step result (not its words). Parts of
  // one level and scale (LevelMismatch, ScaleMismatch), nonzero steps with their own
  // keys (MissingKey). The parts are used as scratch: their contents are unspecified
  // afterwards.
  Ciphertext rotate_sum_extended(std::span<ExtendedCiphertext> parts, const std::vector<int64_t>& steps,
                                 const GaloisKeys& gk, bool rescale = true) const;

  const ContextPtr& context() const { return ctx_; }

 private:
  ContextPtr ctx_;
};

}  // namespace veil
