// im2col convolution on CKKS ciphertexts (one input channel, square kernel,
// stride, no padding), the layout TenSEAL's conv2d_im2col popularised, arranged
// so that each output channel lands directly in LinearLayer's input layout.
//
// Client layout (encode_input): with W = windows = out_h * out_w, d = the power
// of two >= W and K = the power of two >= kernel^2, slot i holds
//   image[(oy * stride + ky) * width + (ox * stride + kx)]
// where p = (i mod d*K) / d = ky * kernel + kx and w = (i mod d*K) mod d =
// oy * out_w + ox (0 when p >= kernel^2 or w >= W). The d*K block is repeated over
// all slots, so rotations wrap inside every block.
//
// Server (apply): per output channel, one plaintext product (the kernel weights
// spread over the p-blocks, encoded at scale q_level so the rescale restores the
// input scale exactly), then log2(K) rotations-and-sums by d, 2d, ..., d*K/2, then
// the bias. Every d-block then holds the channel's W outputs: slot i carries
// output window i mod d (the bias where i mod d >= W), which is LinearLayer's input
// layout for block size d. One level is consumed.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/evaluator.hpp"
#include "veil/keys.hpp"

namespace veil::nn {

class Conv2dIm2col {
 public:
  // weights: [out_channels][kernel * kernel] (index ky * kernel + kx); bias: empty
  // or out_channels values. level: the input ciphertexts' level (-1: top; >= 1);
  // scale: their scale (0: the default). Throws Error(InvalidArgument) for bad
  // shapes, sizes, non-finite values or a layout larger than the slots;
  // Error(LevelMismatch) for a level outside [1, max_level].
  Conv2dIm2col(ContextPtr ctx, size_t height, size_t width, size_t kernel, size_t stride,
               const std::vector<double>& weights, size_t out_channels,
               const std::vector<double>& bias = {}, int level = -1, double scale = 0);

  size_t out_height() const { return out_h_; }
  size_t out_width() const { return out_w_; }
  size_t windows() const { return out_h_ * out_w_; }
  size_t window_block() const { return d_; }       // d
  size_t position_block() const { return k_block_; }  // K
  size_t out_channels() const { return channels_; }
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }

  // Client side: the slot values for one image (height * width values, row-major).
  std::vector<double> encode_input(const std::vector<double>& image) const;
  // One ciphertext per output channel, at level - 1 with the input scale, in the
  // layout described above. x: this context, size 2, the construction scale, level
  // >= the construction level. gk: keys for rotation_steps(). Throws veil::Error.
  std::vector<Ciphertext> apply(const Evaluator& eval, const Ciphertext& x, const GaloisKeys& gk) const;
  // The rotation steps apply() uses: d, 2d, ..., d*K/2.
  std::vector<int64_t> rotation_steps() const;

 private:
  ContextPtr ctx_;
  size_t height_, width_, kernel_, stride_, out_h_, out_w_, channels_, d_, k_block_;
  uint32_t level_;
  double scale_;
  std::vector<Plaintext> kernels_;  // per output channel
  std::vector<double> bias_;
};

}  // namespace veil::nn
