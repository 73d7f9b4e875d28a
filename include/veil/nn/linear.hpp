// Encrypted vector x plain matrix: y = W x + b (a fully connected layer),
// evaluated with the Halevi-Shoup diagonal method and baby-step/giant-step.
//
// Block size d = the smallest power of two >= max(rows, cols); d <= slots.
//
// Input layout contract (client side): x is zero-padded to length d and the
// d-vector is repeated across all slots, so slot i holds x[i mod d] (0 when
// i mod d >= cols). LinearLayer::layout(x, d, slots) builds exactly this
// vector; encode it with Encoder::encode and encrypt. Rotations then wrap
// inside every d-block.
//
// Output layout: the same contract for y with the same d, i.e. slot i holds
// y[i mod d] for i mod d < rows and 0 (plus CKKS noise) otherwise. It can
// feed another LinearLayer of the same block size d directly.
//
// Scales and levels: the diagonals are encoded at `level` with scale
// q_level (the prime the rescale divides by), so apply() returns y at
// level - 1 with exactly the input scale. The bias is encoded at level - 1
// with the input scale given at construction.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/evaluator.hpp"
#include "veil/keys.hpp"

namespace veil::nn {

class LinearLayer {
 public:
  // weights: rows x cols, row-major (W[r][c] = weights[r * cols + c]); bias:
  // empty (no bias) or `rows` values. 1 <= rows, cols <= slots. level: the level
  // of the input ciphertexts, 1 <= level <= max_level (default -1: top level).
  // scale: the scale of the input ciphertexts (0: the parameters' default).
  // Throws Error(InvalidArgument) for bad sizes or scale, Error(LevelMismatch)
  // for a level outside [1, max_level]. Zero diagonals are skipped.
  LinearLayer(ContextPtr ctx, const std::vector<double>& weights, size_t rows, size_t cols,
              const std::vector<double>& bias = {}, int level = -1, double scale = 0);

  // y = W x + b at level - 1, in the output layout above. x must be in the
  // input layout, belong to this context, have size 2, the construction scale
  // and a level >= the construction level (higher levels are dropped first).
  // gk must hold a key for each of rotation_steps(). Throws Error
  // (ContextMismatch, LevelMismatch, ScaleMismatch, InvalidArgument, MissingKey).
  Ciphertext apply(const Evaluator& eval, const Ciphertext& x, const GaloisKeys& gk) const;

  // Exactly the left-rotation steps apply() uses (ascending, no 0): baby steps
  // 1..n1-1 and giant steps g*n1 that non-zero diagonals need. Pass to
  // KeyGenerator::create_galois_keys(steps, false) when non-empty (an empty
  // list there means "every power of two"; an empty GaloisKeys suffices).
  std::vector<int64_t> rotation_steps() const;
  // Every step a dense layer of this shape may need (a superset of the above).
  static std::vector<int64_t> rotation_steps(size_t rows, size_t cols);

  // Client-side helpers. block_size: d for a shape. layout: x zero-padded to d,
  // repeated over `slots` slots (x.size() <= d; d a power of two dividing slots).
  static size_t block_size(size_t rows, size_t cols);
  static std::vector<double> layout(const std::vector<double>& x, size_t d, size_t slots);
  // layout() for this layer's input: x must have `cols` values.
  std::vector<double> encode_input(const std::vector<double>& x) const;
  // The first `rows` slots of a decoded output (y itself).
  std::vector<double> decode_output(const std::vector<double>& slots) const;

  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  size_t block() const { return d_; }
  size_t baby_steps() const { return n1_; }   // n1
  size_t giant_steps() const { return n2_; }  // n2 = d / n1
  size_t nonzero_diagonals() const;
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }

 private:
  ContextPtr ctx_;
  size_t rows_, cols_, d_, n1_, n2_;
  uint32_t level_;
  double scale_;
  // diag_[g * n1 + b]: diagonal g*n1+b pre-rotated right by g*n1; empty when zero.
  std::vector<Plaintext> diag_;
  Plaintext bias_;  // empty when there is no bias
};

}  // namespace veil::nn
