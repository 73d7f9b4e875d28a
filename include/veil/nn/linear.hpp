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
//
// SIMD batching (LinearOptions::batch = B, a power of two): B inputs share
// one ciphertext, interleaved: physical slot l * B + b holds logical slot l of
// input b, for l < slots / B. Every statement above then holds for the logical
// slots of each input, with slots / B in place of slots; the rotations are B
// times longer and the cost is that of one input.
//
// Several input ciphertexts (LinearOptions::inputs = G): the cols columns are
// split into G equal parts of cols / G; input ciphertext g holds part g in the
// layout above (block d = power of two >= max(rows, cols / G)). The baby steps
// of every input are multiplied by their diagonals and summed before the giant
// rotations, so G inputs cost G * (n1 - 1) hoisted baby rotations but only
// n2 - 1 giant ones (not G * (n2 - 1)). Used for a flattened multi-channel
// tensor (one ciphertext per channel) without packing it first.
//
// Double hoisting (veil/extended.hpp): the baby rotations stay over Q_l u P (no
// ModDown), the diagonals are encoded over Q_l u P, and a ModDown is paid once per
// giant step and once for the result (merged with the rescale), instead of once per
// rotation and per giant step.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/evaluator.hpp"
#include "veil/extended.hpp"
#include "veil/keys.hpp"

namespace veil::nn {

struct LinearOptions {
  int level = -1;     // input level, 1..max_level (-1: top)
  double scale = 0;   // input scale (0: the parameters' default)
  size_t batch = 1;   // inputs interleaved per ciphertext: a power of two, batch * d <= slots
  size_t inputs = 1;  // input ciphertexts; must divide cols
};

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
  // The general form (batching, several inputs); the same errors, plus
  // InvalidArgument for a batch that is not a power of two or leaves fewer
  // than d logical slots, and for inputs that do not divide cols.
  LinearLayer(ContextPtr ctx, const std::vector<double>& weights, size_t rows, size_t cols,
              const std::vector<double>& bias, const LinearOptions& options);

  // y = W x + b at level - 1, in the output layout above. x must be in the
  // input layout, belong to this context, have size 2, the construction scale
  // and a level >= the construction level (higher levels are dropped first).
  // gk must hold a key for each of rotation_steps(). Throws Error
  // (ContextMismatch, LevelMismatch, ScaleMismatch, InvalidArgument, MissingKey).
  Ciphertext apply(const Evaluator& eval, const Ciphertext& x, const GaloisKeys& gk) const;
  // The same for inputs() ciphertexts (part g of the columns in xs[g]); every
  // one is checked like x above. Throws InvalidArgument for a wrong count.
  Ciphertext apply(const Evaluator& eval, const std::vector<Ciphertext>& xs, const GaloisKeys& gk) const;

  // Exactly the left-rotation steps apply() uses (ascending, no 0): baby steps
  // 1..n1-1 and giant steps g*n1 that non-zero diagonals need, times batch(). Pass to
  // KeyGenerator::create_galois_keys(steps, false) when non-empty (an empty
  // list there means "every power of two"; an empty GaloisKeys suffices).
  std::vector<int64_t> rotation_steps() const;
  // Every step a dense layer of this shape may need (a superset of the above).
  static std::vector<int64_t> rotation_steps(size_t rows, size_t cols);

  // Client-side helpers. block_size: d for a shape. layout: x zero-padded to d,
  // repeated over `slots` slots (x.size() <= d; d a power of two dividing slots).
  static size_t block_size(size_t rows, size_t cols);
  static std::vector<double> layout(const std::vector<double>& x, size_t d, size_t slots);
  // The batched layout: xs[b] (at most `batch` vectors of <= d values) laid out
  // with layout(xs[b], d, slots / batch) and interleaved with stride `batch`
  // (missing inputs are zero).
  static std::vector<double> layout(const std::vector<std::vector<double>>& xs, size_t d, size_t slots,
                                    size_t batch);
  // layout() for this layer's input: x must have `cols` values (batch 1, one input).
  std::vector<double> encode_input(const std::vector<double>& x) const;
  // Up to batch() inputs of `cols` values: one slot vector per input ciphertext.
  std::vector<std::vector<double>> encode_inputs(const std::vector<std::vector<double>>& xs) const;
  // The first `rows` slots of a decoded output (y itself; batch 1).
  std::vector<double> decode_output(const std::vector<double>& slots) const;
  // y of each of the first `count` (<= batch()) inputs from a decoded output.
  std::vector<std::vector<double>> decode_outputs(const std::vector<double>& slots, size_t count) const;

  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  size_t block() const { return d_; }
  size_t batch() const { return batch_; }
  size_t inputs() const { return inputs_; }
  size_t baby_steps() const { return n1_; }   // n1
  size_t giant_steps() const { return n2_; }  // n2 = d / n1
  size_t nonzero_diagonals() const;
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }

 private:
  ContextPtr ctx_;
  size_t rows_, cols_, d_, n1_, n2_, batch_ = 1, inputs_ = 1;
  uint32_t level_;
  double scale_;
  // diag_[in * d + g * n1 + b]: diagonal g*n1+b of input part `in`, pre-rotated
  // right by g*n1, over Q_level u P; empty when zero.
  std::vector<ExtendedPlaintext> diag_;
  Plaintext bias_;  // empty when there is no bias
};

}  // namespace veil::nn
