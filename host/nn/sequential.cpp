// Sequential: the plain model description, its argument checks, BatchNorm folding
// and the float64 reference evaluation the encrypted plan is tested against.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "veil/error.hpp"
#include "veil/nn/model.hpp"

namespace veil::nn {

namespace {

// Channels and features of any layer: keeps every size product far from overflow.
constexpr size_t kMaxFeatures = size_t{1} << 20;

bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

std::string TensorShape::describe() const {
  if (flat) return std::to_string(channels);
  return std::to_string(channels) + "x" + std::to_string(height) + "x" + std::to_string(width);
}

std::string Layer::describe() const {
  switch (kind) {
    case LayerKind::Conv2d:
      return "conv2d(1->" + std::to_string(out) + ", kernel " + std::to_string(kernel) + ", stride " +
             std::to_string(stride) + ")";
    case LayerKind::Square: return "square";
    case LayerKind::Activation: return "activation(degree " + std::to_string(poly->degree()) + ")";
    case LayerKind::AvgPool2d: return "avg_pool2d(" + std::to_string(kernel) + ")";
    case LayerKind::Flatten: return "flatten";
    case LayerKind::Linear: return "linear(" + std::to_string(in) + "->" + std::to_string(out) + ")";
  }
  return "?";
}

Sequential::Sequential(size_t height, size_t width) : height_(height), width_(width) {
  require(height >= 1 && width >= 1, ErrorCode::InvalidArgument, "model: the input needs height, width >= 1");
  require(height <= kMaxFeatures && width <= kMaxFeatures && height * width <= (size_t{1} << 28),
          ErrorCode::InvalidArgument, "model: the input is larger than 2^28 values");
  shape_ = TensorShape{1, height, width, false};
}

void Sequential::fail(const std::string& msg) const {
  throw Error(ErrorCode::InvalidArgument, "model layer " + std::to_string(layers_.size()) + ": " + msg);
}

Sequential& Sequential::conv2d(size_t out_channels, size_t kernel, size_t stride, std::vector<double> weight,
                               std::vector<double> bias) {
  if (!layers_.empty()) fail("conv2d is supported as the first layer only (one input channel, im2col)");
  if (out_channels < 1 || kernel < 1 || stride < 1) fail("conv2d needs out_channels, kernel, stride >= 1");
  if (out_channels > kMaxFeatures) fail("conv2d: at most " + std::to_string(kMaxFeatures) + " channels");
  if (kernel > height_ || kernel > width_) fail("conv2d kernel larger than the image");
  if (weight.size() != out_channels * kernel * kernel) fail("conv2d weight must hold out_channels * kernel^2 values");
  if (!bias.empty() && bias.size() != out_channels) fail("conv2d bias must be empty or hold out_channels values");
  if (!all_finite(weight) || !all_finite(bias)) fail("conv2d weights must be finite");
  Layer l(LayerKind::Conv2d);
  l.out = out_channels;
  l.kernel = kernel;
  l.stride = stride;
  l.weight = std::move(weight);
  l.bias = bias.empty() ? std::vector<double>(out_channels, 0.0) : std::move(bias);
  layers_.push_back(std::move(l));
  shape_ = TensorShape{out_channels, (height_ - kernel) / stride + 1, (width_ - kernel) / stride + 1, false};
  return *this;
}

Sequential& Sequential::batch_norm(const std::vector<double>& gamma, const std::vector<double>& beta,
                                   const std::vector<double>& mean, const std::vector<double>& var, double eps) {
  if (layers_.empty() || (layers_.back().kind != LayerKind::Conv2d && layers_.back().kind != LayerKind::Linear))
    fail("batch_norm must directly follow conv2d or linear (it is folded into that layer)");
  Layer& prev = layers_.back();
  const size_t n = prev.out;
  if (gamma.size() != n || beta.size() != n || mean.size() != n || var.size() != n)
    fail("batch_norm needs " + std::to_string(n) + " values in gamma, beta, mean and var");
  if (!all_finite(gamma) || !all_finite(beta) || !all_finite(mean) || !all_finite(var) || !std::isfinite(eps))
    fail("batch_norm parameters must be finite");
  const size_t per = prev.weight.size() / n;  // weights per output channel / feature
  for (size_t c = 0; c < n; ++c) {
    if (!(var[c] + eps > 0)) fail("batch_norm var + eps must be > 0");
    const double g = gamma[c] / std::sqrt(var[c] + eps);
    for (size_t i = 0; i < per; ++i) prev.weight[c * per + i] *= g;
    prev.bias[c] = (prev.bias[c] - mean[c]) * g + beta[c];
  }
  return *this;
}

Sequential& Sequential::square() {
  layers_.push_back(Layer(LayerKind::Square));
  return *this;
}

Sequential& Sequential::activation(const Polynomial& p) {
  Layer l(LayerKind::Activation);
  l.poly = p;
  layers_.push_back(std::move(l));
  return *this;
}

Sequential& Sequential::avg_pool2d(size_t kernel) {
  if (shape_.flat) fail("avg_pool2d needs a spatial tensor (before flatten)");
  if (kernel < 1 || kernel > shape_.height || kernel > shape_.width)
    fail("avg_pool2d kernel must be in [1, min(height, width)] = [1, " +
         std::to_string(std::min(shape_.height, shape_.width)) + "]");
  Layer l(LayerKind::AvgPool2d);
  l.kernel = l.stride = kernel;
  layers_.push_back(std::move(l));
  shape_ = TensorShape{shape_.channels, shape_.height / kernel, shape_.width / kernel, false};
  return *this;
}

Sequential& Sequential::flatten() {
  layers_.push_back(Layer(LayerKind::Flatten));
  shape_ = TensorShape{shape_.size(), 1, 1, true};
  return *this;
}

Sequential& Sequential::linear(size_t out_features, std::vector<double> weight, std::vector<double> bias) {
  if (!shape_.flat) fail("linear needs a flat input: call flatten() first");
  const size_t in = shape_.size();
  if (out_features < 1) fail("linear needs out_features >= 1");
  if (out_features > kMaxFeatures || in > kMaxFeatures)
    fail("linear: at most " + std::to_string(kMaxFeatures) + " input and output features");
  if (weight.size() != out_features * in)  // cannot wrap: both factors are at most 2^20
    fail("linear weight must hold out_features * " + std::to_string(in) + " values, got " +
         std::to_string(weight.size()));
  if (!bias.empty() && bias.size() != out_features) fail("linear bias must be empty or hold out_features values");
  if (!all_finite(weight) || !all_finite(bias)) fail("linear weights must be finite");
  Layer l(LayerKind::Linear);
  l.out = out_features;
  l.in = in;
  l.weight = std::move(weight);
  l.bias = bias.empty() ? std::vector<double>(out_features, 0.0) : std::move(bias);
  layers_.push_back(std::move(l));
  shape_ = TensorShape{out_features, 1, 1, true};
  return *this;
}

std::vector<double> Sequential::forward(const std::vector<double>& image) const {
  require(image.size() == height_ * width_, ErrorCode::InvalidArgument,
          "model: the image must hold " + std::to_string(height_ * width_) + " values, got " +
              std::to_string(image.size()));
  std::vector<double> x = image;
  size_t ch = 1, h = height_, w = width_;
  for (const Layer& l : layers_) {
    switch (l.kind) {
      case LayerKind::Conv2d: {
        const size_t oh = (h - l.kernel) / l.stride + 1, ow = (w - l.kernel) / l.stride + 1;
        std::vector<double> y(l.out * oh * ow);
        for (size_t c = 0; c < l.out; ++c)
          for (size_t oy = 0; oy < oh; ++oy)
            for (size_t ox = 0; ox < ow; ++ox) {
              double v = l.bias[c];
              for (size_t ky = 0; ky < l.kernel; ++ky)
                for (size_t kx = 0; kx < l.kernel; ++kx)
                  v += l.weight[(c * l.kernel + ky) * l.kernel + kx] *
                       x[(oy * l.stride + ky) * w + ox * l.stride + kx];
              y[(c * oh + oy) * ow + ox] = v;
            }
        x = std::move(y);
        ch = l.out, h = oh, w = ow;
        break;
      }
      case LayerKind::Square:
        for (double& v : x) v *= v;
        break;
      case LayerKind::Activation:
        for (double& v : x) v = (*l.poly)(v);
        break;
      case LayerKind::AvgPool2d: {
        const size_t k = l.kernel, oh = h / k, ow = w / k;
        std::vector<double> y(ch * oh * ow, 0.0);
        for (size_t c = 0; c < ch; ++c)
          for (size_t oy = 0; oy < oh; ++oy)
            for (size_t ox = 0; ox < ow; ++ox) {
              double s = 0;
              for (size_t dy = 0; dy < k; ++dy)
                for (size_t dx = 0; dx < k; ++dx) s += x[(c * h + oy * k + dy) * w + ox * k + dx];
              y[(c * oh + oy) * ow + ox] = s / static_cast<double>(k * k);
            }
        x = std::move(y);
        h = oh, w = ow;
        break;
      }
      case LayerKind::Flatten:
        ch = x.size(), h = w = 1;  // (channel, y, x) order is already the storage order
        break;
      case LayerKind::Linear: {
        std::vector<double> y(l.out);
        for (size_t r = 0; r < l.out; ++r) {
          double v = l.bias[r];
          for (size_t c = 0; c < l.in; ++c) v += l.weight[r * l.in + c] * x[c];
          y[r] = v;
        }
        x = std::move(y);
        ch = l.out;
        break;
      }
    }
  }
  return x;
}

}  // namespace veil::nn
