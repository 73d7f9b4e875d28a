// Multi-channel tensors on CKKS ciphertexts, and the convolution that works anywhere
// in a network: C_in -> C_out channels, square kernels, any stride, zero padding.
//
// Layout (SpatialLayout): a C x H x W tensor is split into channel blocks of `block`
// (D, a power of two) logical slots; `blocks` (G, a power of two) channels share one
// ciphertext, so the tensor takes ceil(C / G) ciphertexts. Channel c lives in
// ciphertext c / G, block c mod G; pixel (y, x) sits at logical slot
//   (c mod G) * D + y * ys + x * xs.
// The G * D period repeats over the slots / batch logical slots, and `batch` inputs
// are interleaved as everywhere in veil::nn (physical slot l * batch + b = logical
// slot l of input b). Slots that are no pixel may hold anything ("dirty"): every
// layer reads pixels only. G = 1 is one ciphertext per channel; G > 1 is the
// multiplexed layout of Lee et al. (ICML 2022): fewer ciphertexts, fewer images per
// ciphertext.
//
// Convolution (SpatialConv2d), with tap t = (ky, kx) and offset
//   r_t = (ky - pad_top) * ys + (kx - pad_left) * xs:
// output (oy, ox) is written at (oy * stride) * ys + (ox * stride) * xs of its block
// (the output layout keeps the positions and multiplies ys, xs by the stride), and
// reads input (oy * stride + ky - pad_top, ox * stride + kx - pad_left), which is at
// that slot + r_t. So with channel diagonals j (output block c reads input block
// (c + j) mod G):
//   out_o = sum_j rot(sum_{i,t} rot(x_i, r_t) * P'[o, i, t, j], j * D)
// where P[o, i, t, j] holds weight[co][ci][t] at every output pixel whose input pixel
// lies inside the image (0 at padding and at every other slot, so the output is
// clean) and P' is P rotated right by j * D. Tap rotations are hoisted per input
// ciphertext; there are G - 1 giant rotations per output ciphertext. Costs per run:
// products <= out_cts * in_cts * kernel^2 * G (zero plaintexts are skipped),
// rotations in_cts * (kernel^2 - 1) + out_cts * (G - 1), one level. The plaintexts are
// encoded at scale q_level, so the rescale restores the input scale exactly.
//
// Double hoisting (veil/extended.hpp): the tap rotations stay over Q_level u P, the
// plaintexts are encoded there, and one ModDown per giant rotation and one per output
// (merged with the rescale) replace one per rotation.
//
// Plaintext memory: one plaintext of level + 1 + alpha limbs (Q_level u P) per
// non-zero (o, i, t, j). Up to
// `plaintext_budget` bytes they are encoded once at construction; beyond it apply()
// encodes them as it goes (same result, slower, no memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/evaluator.hpp"
#include "veil/extended.hpp"
#include "veil/keys.hpp"

namespace veil::nn {

struct SpatialLayout {
  size_t channels = 1, height = 1, width = 1;  // the tensor, C x H x W
  size_t block = 1;   // D: logical slots per channel block, a power of two
  size_t blocks = 1;  // G: channel blocks per ciphertext, a power of two
  size_t ys = 1, xs = 1;  // pixel (y, x) at y * ys + x * xs of its block
  size_t batch = 1;       // interleaved inputs, a power of two

  size_t ciphertexts() const { return (channels + blocks - 1) / blocks; }
  size_t period() const { return block * blocks; }
  // Logical slot of (c, y, x) inside ciphertext c / blocks.
  size_t position(size_t c, size_t y, size_t x) const { return (c % blocks) * block + y * ys + x * xs; }
  // The dense layout of a C x H x W input: ys = W, xs = 1.
  static SpatialLayout dense(size_t channels, size_t height, size_t width, size_t block, size_t blocks, size_t batch);
  // Throws Error(InvalidArgument) unless the sizes are >= 1, block, blocks and batch
  // are powers of two, batch * blocks * block <= slots and every pixel fits its block.
  void check(size_t slots) const;
  std::string describe() const;

  // Client side: up to `batch` tensors (C * H * W values each, channel-major) as one
  // slot vector per ciphertext (`slots` values). Throws InvalidArgument.
  std::vector<std::vector<double>> encode(const std::vector<std::vector<double>>& tensors, size_t slots) const;
  // The first `count` tensors from the decoded slot vectors of every ciphertext.
  std::vector<std::vector<double>> decode(const std::vector<std::vector<double>>& decoded, size_t count) const;
};

struct Conv2dGeometry {
  size_t out_channels = 1, kernel = 1, stride = 1;
  size_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  size_t out_height(size_t h) const { return (h + pad_top + pad_bottom - kernel) / stride + 1; }
  size_t out_width(size_t w) const { return (w + pad_left + pad_right - kernel) / stride + 1; }
};

struct SpatialConvOptions {
  int level = -1;      // input level, 1..max_level (-1: top)
  double scale = 0;    // input scale (0: the parameters' default)
  size_t plaintext_budget = size_t{512} << 20;  // bytes of pre-encoded plaintexts
};

class SpatialConv2d {
 public:
  // weights: [out][in][kernel][kernel] (PyTorch / ONNX order); bias: empty or `out`
  // values. Throws Error(InvalidArgument) for bad sizes, non-finite values, a kernel
  // larger than the padded input, pads >= kernel, or an output that does not fit
  // the input's block; LevelMismatch for a level outside [1, max_level].
  SpatialConv2d(ContextPtr ctx, const SpatialLayout& in, const Conv2dGeometry& geometry,
                const std::vector<double>& weights, const std::vector<double>& bias = {},
                const SpatialConvOptions& options = {});
  // Average pooling (kernel, stride, pads) as a depthwise convolution: each output is
  // the mean of its window, over the whole window (count_include_pad) or over the
  // pixels inside the image only. One level, kernel^2 products per ciphertext.
  static SpatialConv2d average_pool(ContextPtr ctx, const SpatialLayout& in, const Conv2dGeometry& geometry,
                                    bool count_include_pad, const SpatialConvOptions& options = {});

  const SpatialLayout& input_layout() const { return in_; }
  const SpatialLayout& output_layout() const { return out_; }
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }
  // The left-rotation steps apply() uses (ascending, unique, physical).
  std::vector<int64_t> rotation_steps() const;
  size_t products() const { return terms_.size(); }          // plaintext products per run
  size_t plaintext_bytes() const { return plaintext_bytes_; }  // of all plaintexts, pre-encoded or not
  bool pre_encoded() const { return pre_encoded_; }

  // One ciphertext per output ciphertext of the output layout, at level - 1 with the
  // input scale. xs: input_layout().ciphertexts() ciphertexts of this context, size
  // 2, the construction scale, level >= the construction level. Throws veil::Error.
  std::vector<Ciphertext> apply(const Evaluator& eval, const std::vector<Ciphertext>& xs, const GaloisKeys& gk) const;

 private:
  // weight(co, ci, tap, oy, ox): the factor on input (ci, tap) of output (co, oy, ox).
  using WeightFn = std::function<double(size_t, size_t, size_t, size_t, size_t)>;
  SpatialConv2d(ContextPtr ctx, const SpatialLayout& in, const Conv2dGeometry& g, const WeightFn& weight,
                const std::vector<double>& bias, const SpatialConvOptions& options, const std::string& what);
  std::vector<double> slot_values(size_t o, size_t i, size_t t, size_t j) const;
  ExtendedPlaintext encode_term(size_t index) const;

  struct Term { size_t o, i, t, j; };
  ContextPtr ctx_;
  SpatialLayout in_, out_;
  Conv2dGeometry geo_;
  WeightFn weight_;
  uint32_t level_ = 0;
  double scale_ = 0;
  std::vector<int64_t> offsets_;  // r_t per tap (logical, signed)
  std::vector<Term> terms_;       // non-zero (o, i, t, j), sorted by o, then j
  std::vector<ExtendedPlaintext> plain_;  // per term when pre-encoded
  std::vector<Plaintext> bias_;   // per output ciphertext (empty: no bias)
  size_t plaintext_bytes_ = 0;
  bool pre_encoded_ = false;
  std::string what_;
};

}  // namespace veil::nn
