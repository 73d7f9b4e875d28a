#include "veil/nn/conv.hpp"

#include <bit>
#include <cmath>

#include "veil/encoder.hpp"
#include "nn_checks.hpp"
#include "veil/error.hpp"

namespace veil::nn {

Conv2dIm2col::Conv2dIm2col(ContextPtr ctx, size_t height, size_t width, size_t kernel, size_t stride,
                           const std::vector<double>& weights, size_t out_channels,
                           const std::vector<double>& bias, int level, double scale)
    : ctx_(std::move(ctx)), height_(height), width_(width), kernel_(kernel), stride_(stride),
      channels_(out_channels), bias_(bias) {
  require(ctx_ != nullptr, ErrorCode::InvalidArgument, "null context");
  require(kernel >= 1 && stride >= 1 && height >= kernel && width >= kernel, ErrorCode::InvalidArgument,
          "conv: need 1 <= kernel <= height, width and stride >= 1");
  require(out_channels >= 1 && weights.size() == out_channels * kernel * kernel, ErrorCode::InvalidArgument,
          "conv: weights must hold out_channels * kernel^2 values");
  require(bias.empty() || bias.size() == out_channels, ErrorCode::InvalidArgument,
          "conv: bias must be empty or hold out_channels values");
  for (double v : weights) require(std::isfinite(v), ErrorCode::InvalidArgument, "conv: non-finite weight");
  for (double v : bias) require(std::isfinite(v), ErrorCode::InvalidArgument, "conv: non-finite bias");
  out_h_ = (height - kernel) / stride + 1;
  out_w_ = (width - kernel) / stride + 1;
  d_ = std::bit_ceil(windows());
  k_block_ = std::bit_ceil(kernel * kernel);
  const size_t slots = ctx_->params().slots();
  require(d_ * k_block_ <= slots, ErrorCode::InvalidArgument,
          "conv: the im2col layout needs " + std::to_string(d_ * k_block_) + " slots, the parameters have " +
              std::to_string(slots));
  const int top = static_cast<int>(ctx_->max_level());
  level_ = static_cast<uint32_t>(level < 0 ? top : level);
  require(level_ >= 1 && static_cast<int>(level_) <= top, ErrorCode::LevelMismatch,
          "conv: needs an input level in [1, " + std::to_string(top) + "]");
  scale_ = scale == 0 ? ctx_->params().default_scale() : scale;
  require(std::isfinite(scale_) && scale_ >= 1, ErrorCode::InvalidArgument, "conv: bad scale");

  // Kernel c spread over the p-blocks; encoded at q_level so the rescale restores the scale.
  Encoder encoder(ctx_);
  const double pt_scale = static_cast<double>(ctx_->tables().primes[level_]);
  const size_t span = d_ * k_block_, taps = kernel * kernel;
  for (size_t c = 0; c < channels_; ++c) {
    std::vector<double> slot_values(slots, 0.0);
    for (size_t i = 0; i < slots; ++i) {
      const size_t p = (i % span) / d_, w = (i % span) % d_;
      if (p < taps && w < windows()) slot_values[i] = weights[c * taps + p];
    }
    kernels_.push_back(encoder.encode(slot_values, pt_scale, static_cast<int>(level_)));
  }
}

std::vector<double> Conv2dIm2col::encode_input(const std::vector<double>& image) const {
  require(image.size() == height_ * width_, ErrorCode::InvalidArgument,
          "conv: the image must hold height * width values");
  const size_t slots = ctx_->params().slots(), span = d_ * k_block_, taps = kernel_ * kernel_;
  std::vector<double> out(slots, 0.0);
  for (size_t i = 0; i < slots; ++i) {
    const size_t p = (i % span) / d_, w = (i % span) % d_;
    if (p >= taps || w >= windows()) continue;
    const size_t ky = p / kernel_, kx = p % kernel_, oy = w / out_w_, ox = w % out_w_;
    out[i] = image[(oy * stride_ + ky) * width_ + (ox * stride_ + kx)];
  }
  return out;
}

std::vector<int64_t> Conv2dIm2col::rotation_steps() const {
  std::vector<int64_t> steps;
  for (size_t step = d_; step < d_ * k_block_; step <<= 1) steps.push_back(static_cast<int64_t>(step));
  return steps;
}

std::vector<Ciphertext> Conv2dIm2col::apply(const Evaluator& eval, const Ciphertext& x_in,
                                            const GaloisKeys& gk) const {
  detail::check_layer_input("conv", *ctx_, eval, x_in, level_, scale_, gk, rotation_steps());
  const Ciphertext x = eval.mod_switch_to(x_in, level_);
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

}  // namespace veil::nn
