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
//
// Batching (batch = B, a power of two, B * d * K <= slots): B images interleaved,
// physical slot l * B + b holding logical slot l of image b; all of the above holds
// per image on the slots / B logical slots, and rotations are B times longer.
// With d * K = 4096 for the 28x28 / 7x7 / stride-3 ConvNet this fits 1 image at
// N = 8192 and 2 at N = 16384; Conv2dTaps below fits far more.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/combination.hpp"
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
  // batch: images per ciphertext (a power of two; 0: as many as fit).
  Conv2dIm2col(ContextPtr ctx, size_t height, size_t width, size_t kernel, size_t stride,
               const std::vector<double>& weights, size_t out_channels,
               const std::vector<double>& bias = {}, int level = -1, double scale = 0, size_t batch = 1);

  size_t out_height() const { return out_h_; }
  size_t out_width() const { return out_w_; }
  size_t windows() const { return out_h_ * out_w_; }
  size_t window_block() const { return d_; }       // d
  size_t position_block() const { return k_block_; }  // K
  size_t out_channels() const { return channels_; }
  size_t batch() const { return batch_; }
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }

  // Client side: the slot values for one image (height * width values, row-major).
  std::vector<double> encode_input(const std::vector<double>& image) const;
  // The slot values for up to batch() images (missing ones are zero).
  std::vector<double> encode_inputs(const std::vector<std::vector<double>>& images) const;
  // One ciphertext per output channel, at level - 1 with the input scale, in the
  // layout described above. x: this context, size 2, the construction scale, level
  // >= the construction level. gk: keys for rotation_steps(). Throws veil::Error.
  std::vector<Ciphertext> apply(const Evaluator& eval, const Ciphertext& x, const GaloisKeys& gk) const;
  // The rotation steps apply() uses: d, 2d, ..., d*K/2 (times batch()).
  std::vector<int64_t> rotation_steps() const;

 private:
  ContextPtr ctx_;
  size_t height_, width_, kernel_, stride_, out_h_, out_w_, channels_, d_, k_block_, batch_;
  uint32_t level_;
  double scale_;
  std::vector<Plaintext> kernels_;  // per output channel
  std::vector<double> bias_;
};

// Convolution for many images at once, with no rotation at all: the client sends
// one ciphertext per kernel tap p = ky * kernel + kx; in tap ciphertext p, logical
// slot w (< d, the power of two >= windows) holds pixel
//   image[(oy * stride + ky) * width + (ox * stride + kx)],  w = oy * out_w + ox,
// (0 for w >= windows), the d-block repeated over the slots / batch logical slots,
// and the batch images interleaved with stride `batch` as in Conv2dIm2col. Output
// channel c is sum_p weight[c][p] * tap_p + bias[c]: kernel^2 scalar products, one
// rescale, in exactly LinearLayer's (batched) input layout with block d.
// Images per ciphertext: slots / d (64 at N = 8192 and 128 at N = 16384 for the
// 28x28 ConvNet, whose d is 64) against 1 and 2 for the im2col layout; the price
// is kernel^2 input ciphertexts per batch instead of one per image.
class Conv2dTaps {
 public:
  // Same arguments and errors as Conv2dIm2col; batch 0 means slots / d.
  Conv2dTaps(ContextPtr ctx, size_t height, size_t width, size_t kernel, size_t stride,
             const std::vector<double>& weights, size_t out_channels, const std::vector<double>& bias = {},
             int level = -1, double scale = 0, size_t batch = 0);

  size_t out_height() const { return out_h_; }
  size_t out_width() const { return out_w_; }
  size_t windows() const { return out_h_ * out_w_; }
  size_t window_block() const { return d_; }
  size_t taps() const { return kernel_ * kernel_; }
  size_t out_channels() const { return channels_; }
  size_t batch() const { return batch_; }
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }

  // Client side: taps() slot vectors for up to batch() images (height * width values each).
  std::vector<std::vector<double>> encode_inputs(const std::vector<std::vector<double>>& images) const;
  // One ciphertext per output channel at level - 1 with the input scale. xs: taps()
  // ciphertexts of this context, size 2, the construction scale, level >= the
  // construction level. Throws veil::Error.
  std::vector<Ciphertext> apply(const Evaluator& eval, const std::vector<Ciphertext>& xs) const;

 private:
  ContextPtr ctx_;
  size_t height_, width_, kernel_, stride_, out_h_, out_w_, channels_, d_, batch_;
  uint32_t level_;
  double scale_;
  std::vector<double> weights_, bias_;
  CombinationMatrix sums_;  // row c: channel c's weights over the taps
};

}  // namespace veil::nn
