// im2col convolution (Conv2dIm2col: one ciphertext per image group, rotations and
// sums) and the tap-major batched convolution (Conv2dTaps: one ciphertext per
// kernel tap, no rotation). Both emit LinearLayer's block layout per channel.
#include "veil/nn/conv.hpp"

#include <bit>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>

#include "veil/encoder.hpp"
#include "nn/checks.hpp"
#include "veil/error.hpp"

namespace veil::nn {

namespace {

// Checks shared by both layouts; returns (out_h, out_w).
std::pair<size_t, size_t> check_conv_shape(const ContextPtr& ctx, size_t height, size_t width, size_t kernel,
                                           size_t stride, const std::vector<double>& weights, size_t channels,
                                           const std::vector<double>& bias) {
  require(ctx != nullptr, ErrorCode::InvalidArgument, "conv: null context");
  require(kernel >= 1 && stride >= 1 && height >= kernel && width >= kernel, ErrorCode::InvalidArgument,
          "conv: need 1 <= kernel <= height, width and stride >= 1");
  require(channels >= 1 && weights.size() == channels * kernel * kernel, ErrorCode::InvalidArgument,
          "conv: weights must hold out_channels * kernel^2 values");
  require(bias.empty() || bias.size() == channels, ErrorCode::InvalidArgument,
          "conv: bias must be empty or hold out_channels values");
  for (double v : weights) require(std::isfinite(v), ErrorCode::InvalidArgument, "conv: non-finite weight");
  for (double v : bias) require(std::isfinite(v), ErrorCode::InvalidArgument, "conv: non-finite bias");
  return {(height - kernel) / stride + 1, (width - kernel) / stride + 1};
}

uint32_t checked_level(const Context& ctx, int level) {
  const int top = static_cast<int>(ctx.max_level());
  const int l = level < 0 ? top : level;
  require(l >= 1 && l <= top, ErrorCode::LevelMismatch, "conv: needs an input level in [1, " + std::to_string(top) + "]");
  return static_cast<uint32_t>(l);
}

double checked_scale(const Context& ctx, double scale) {
  const double s = scale == 0 ? ctx.params().default_scale() : scale;
  require(std::isfinite(s) && s >= 1, ErrorCode::InvalidArgument, "conv: bad scale");
  return s;
}

// batch 0: as many as fit; else a power of two with batch * span <= slots.
size_t checked_batch(size_t batch, size_t span, size_t slots) {
  require(span <= slots, ErrorCode::InvalidArgument,
          "conv: the layout needs " + std::to_string(span) + " slots, the parameters have " + std::to_string(slots));
  if (batch == 0) return slots / span;
  require(std::has_single_bit(batch) && batch * span <= slots, ErrorCode::InvalidArgument,
          "conv: batch " + std::to_string(batch) + " must be a power of two with batch * " + std::to_string(span) +
              " <= " + std::to_string(slots) + " slots");
  return batch;
}

}  // namespace

Conv2dIm2col::Conv2dIm2col(ContextPtr ctx, size_t height, size_t width, size_t kernel, size_t stride,
                           const std::vector<double>& weights, size_t out_channels,
                           const std::vector<double>& bias, int level, double scale, size_t batch)
    : ctx_(std::move(ctx)), height_(height), width_(width), kernel_(kernel), stride_(stride),
      channels_(out_channels), bias_(bias) {
  std::tie(out_h_, out_w_) = check_conv_shape(ctx_, height, width, kernel, stride, weights, out_channels, bias);
  d_ = std::bit_ceil(windows());
  k_block_ = std::bit_ceil(kernel * kernel);
  const size_t slots = ctx_->params().slots();
  batch_ = checked_batch(batch, d_ * k_block_, slots);
  level_ = checked_level(*ctx_, level);
  scale_ = checked_scale(*ctx_, scale);

  // Kernel c spread over the p-blocks; encoded at q_level so the rescale restores the scale.
  Encoder encoder(ctx_);
  const double pt_scale = static_cast<double>(ctx_->tables().primes[level_]);
  const size_t span = d_ * k_block_, taps = kernel * kernel;
  for (size_t c = 0; c < channels_; ++c) {
    std::vector<double> slot_values(slots, 0.0);
    for (size_t i = 0; i < slots; ++i) {
      const size_t l = i / batch_, p = (l % span) / d_, w = (l % span) % d_;
      if (p < taps && w < windows()) slot_values[i] = weights[c * taps + p];
    }
    kernels_.push_back(encoder.encode(slot_values, pt_scale, static_cast<int>(level_)));
  }
}

std::vector<double> Conv2dIm2col::encode_input(const std::vector<double>& image) const {
  return encode_inputs({image});
}

std::vector<double> Conv2dIm2col::encode_inputs(const std::vector<std::vector<double>>& images) const {
  require(!images.empty() && images.size() <= batch_, ErrorCode::InvalidArgument,
          "conv: " + std::to_string(images.size()) + " images for a batch of " + std::to_string(batch_));
  const size_t slots = ctx_->params().slots(), span = d_ * k_block_, taps = kernel_ * kernel_;
  std::vector<double> out(slots, 0.0);
  for (size_t b = 0; b < images.size(); ++b) {
    const auto& image = images[b];
    require(image.size() == height_ * width_, ErrorCode::InvalidArgument,
            "conv: the image must hold height * width values");
    for (size_t l = 0; l < slots / batch_; ++l) {
      const size_t p = (l % span) / d_, w = (l % span) % d_;
      if (p >= taps || w >= windows()) continue;
      const size_t ky = p / kernel_, kx = p % kernel_, oy = w / out_w_, ox = w % out_w_;
      out[l * batch_ + b] = image[(oy * stride_ + ky) * width_ + (ox * stride_ + kx)];
    }
  }
  return out;
}

std::vector<int64_t> Conv2dIm2col::rotation_steps() const {
  std::vector<int64_t> steps;
  for (size_t step = d_; step < d_ * k_block_; step <<= 1) steps.push_back(static_cast<int64_t>(step * batch_));
  return steps;
}

std::vector<Ciphertext> Conv2dIm2col::apply(const Evaluator& eval, const Ciphertext& x_in,
                                            const GaloisKeys& gk) const {
  detail::check_layer_input("conv", *ctx_, eval, x_in, level_, scale_, gk, rotation_steps());
  Ciphertext x_low;  // only when the input is above the layer's level
  if (x_in.level() != level_) x_low = eval.mod_switch_to(x_in, level_);
  const Ciphertext& x = x_low.empty() ? x_in : x_low;
  std::vector<Ciphertext> out;
  out.reserve(channels_);
  for (size_t c = 0; c < channels_; ++c) {
    Ciphertext acc = eval.rescale(eval.multiply_plain(x, kernels_[c]));
    acc.set_scale(x.scale());  // q_level / q_level: exactly the input scale
    for (int64_t step : rotation_steps()) acc = eval.add(acc, eval.rotate(acc, step, gk));
    if (!bias_.empty()) acc = eval.add_scalar(acc, bias_[c]);
    out.push_back(std::move(acc));
  }
  return out;
}

Conv2dTaps::Conv2dTaps(ContextPtr ctx, size_t height, size_t width, size_t kernel, size_t stride,
                       const std::vector<double>& weights, size_t out_channels, const std::vector<double>& bias,
                       int level, double scale, size_t batch)
    : ctx_(std::move(ctx)), height_(height), width_(width), kernel_(kernel), stride_(stride),
      channels_(out_channels), weights_(weights), bias_(bias) {
  std::tie(out_h_, out_w_) = check_conv_shape(ctx_, height, width, kernel, stride, weights, out_channels, bias);
  d_ = std::bit_ceil(windows());
  batch_ = checked_batch(batch, d_, ctx_->params().slots());
  level_ = checked_level(*ctx_, level);
  scale_ = checked_scale(*ctx_, scale);
  // Every channel's sum over the taps is one row: apply() combines all of them in one
  // backend call, each weight w applied as round(w * q_level), as multiply_scalar would.
  std::vector<std::vector<CombinationMatrix::Entry>> rows(channels_);
  for (size_t c = 0; c < channels_; ++c)
    for (size_t p = 0; p < taps(); ++p)
      if (weights_[c * taps() + p] != 0.0) rows[c].push_back({static_cast<uint32_t>(p), weights_[c * taps() + p]});
  sums_ = CombinationMatrix(ctx_, taps(), rows, level_, static_cast<double>(ctx_->tables().primes[level_]));
}

std::vector<std::vector<double>> Conv2dTaps::encode_inputs(const std::vector<std::vector<double>>& images) const {
  require(!images.empty() && images.size() <= batch_, ErrorCode::InvalidArgument,
          "conv: " + std::to_string(images.size()) + " images for a batch of " + std::to_string(batch_));
  const size_t slots = ctx_->params().slots();
  std::vector<std::vector<double>> out(taps(), std::vector<double>(slots, 0.0));
  for (size_t b = 0; b < images.size(); ++b) {
    require(images[b].size() == height_ * width_, ErrorCode::InvalidArgument,
            "conv: the image must hold height * width values");
    for (size_t p = 0; p < taps(); ++p) {
      const size_t ky = p / kernel_, kx = p % kernel_;
      for (size_t l = 0; l < slots / batch_; ++l) {
        const size_t w = l % d_;
        if (w >= windows()) continue;
        const size_t oy = w / out_w_, ox = w % out_w_;
        out[p][l * batch_ + b] = images[b][(oy * stride_ + ky) * width_ + (ox * stride_ + kx)];
      }
    }
  }
  return out;
}

std::vector<Ciphertext> Conv2dTaps::apply(const Evaluator& eval, const std::vector<Ciphertext>& xs) const {
  require(xs.size() == taps(), ErrorCode::InvalidArgument,
          "conv: " + std::to_string(xs.size()) + " tap ciphertexts, the layer takes " + std::to_string(taps()));
  for (const auto& x : xs) detail::check_layer_input("conv", *ctx_, eval, x, level_, scale_, GaloisKeys{}, {});
  // Taps above the layer's level are brought down to it by combine; scale s * q_level,
  // rescaled once below.
  std::vector<Ciphertext> out = eval.rescale_many(eval.combine(xs, sums_));  // every channel in one batch
  for (size_t c = 0; c < channels_; ++c) {
    out[c].set_scale(xs[0].scale());  // q_level / q_level: exactly the input scale
    if (!bias_.empty()) out[c] = eval.add_scalar(out[c], bias_[c]);
  }
  return out;
}

}  // namespace veil::nn
