// Sequential: the plain model description, its argument checks, BatchNorm folding
// and the float64 reference evaluation the encrypted plan is tested against.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <sstream>
#include <string>

#include "veil/error.hpp"
#include "veil/nn/model.hpp"

namespace veil::nn {

namespace {

// Channels and features of any layer: keeps every size product far from overflow.
constexpr size_t kMaxFeatures = size_t{1} << 20;
constexpr size_t kMaxKernel = 64;

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

namespace {

std::string pad_text(const Padding& p) {
  if (p.none()) return "";
  if (p == Padding::same(p.top)) return ", pad " + std::to_string(p.top);
  return ", pads " + std::to_string(p.top) + "," + std::to_string(p.left) + "," + std::to_string(p.bottom) + "," +
         std::to_string(p.right);
}

}  // namespace

std::string Layer::describe() const {
  switch (kind) {
    case LayerKind::Conv2d:
      return "conv2d(" + std::to_string(in) + "->" + std::to_string(out) + ", kernel " + std::to_string(kernel) +
             ", stride " + std::to_string(stride) + pad_text(pad) + ")";
    case LayerKind::Square: return "square";
    case LayerKind::Activation: return "activation(degree " + std::to_string(poly->degree()) + ")";
    case LayerKind::AvgPool2d:
      if (stride == kernel && pad.none()) return "avg_pool2d(" + std::to_string(kernel) + ")";
      return "avg_pool2d(" + std::to_string(kernel) + ", stride " + std::to_string(stride) + pad_text(pad) +
             (pad.none() || count_include_pad ? "" : ", exclude pad") + ")";
    case LayerKind::GlobalAvgPool: return "global_avg_pool";
    case LayerKind::ResidualBegin: return "residual_begin";
    case LayerKind::ResidualAdd:
      if (!projects()) return "residual_add";
      return "residual_add(projection " + std::to_string(in) + "->" + std::to_string(out) + ", kernel " +
             std::to_string(kernel) + ", stride " + std::to_string(stride) + pad_text(pad) + ")";
    case LayerKind::Affine: return "affine(" + std::to_string(weight.size()) + ")";
    case LayerKind::Flatten: return "flatten";
    case LayerKind::Linear: return "linear(" + std::to_string(in) + "->" + std::to_string(out) + ")";
  }
  return "?";
}

Sequential::Sequential(size_t height, size_t width) : Sequential(1, height, width) {}

Sequential::Sequential(size_t channels, size_t height, size_t width)
    : channels_(channels), height_(height), width_(width) {
  require(channels >= 1 && height >= 1 && width >= 1, ErrorCode::InvalidArgument,
          "model: the input needs channels, height, width >= 1");
  require(channels <= kMaxFeatures && height <= kMaxFeatures && width <= kMaxFeatures &&
              height * width <= (size_t{1} << 28) && channels * height * width <= (size_t{1} << 28),
          ErrorCode::InvalidArgument, "model: the input is larger than 2^28 values");
  shape_ = TensorShape{channels, height, width, false};
}

void Sequential::fail(const std::string& msg) const {
  throw Error(ErrorCode::InvalidArgument, "model layer " + std::to_string(layers_.size()) + ": " + msg);
}

Sequential& Sequential::conv2d(size_t out_channels, size_t kernel, size_t stride, std::vector<double> weight,
                               std::vector<double> bias) {
  return conv2d(out_channels, kernel, stride, Padding{}, std::move(weight), std::move(bias));
}

// Checks a window (kernel, stride, pads) against the current spatial shape.
static void check_window(const TensorShape& s, size_t kernel, size_t stride, const Padding& p,
                         const std::function<void(const std::string&)>& fail, const std::string& what) {
  if (s.flat) fail(what + " needs a spatial tensor (before flatten)");
  if (kernel < 1 || kernel > kMaxKernel || stride < 1 || stride > kMaxFeatures)
    fail(what + " needs kernel in [1, " + std::to_string(kMaxKernel) + "] and stride >= 1");
  if (p.top >= kernel || p.left >= kernel || p.bottom >= kernel || p.right >= kernel)
    fail(what + ": every pad must be smaller than the kernel (" + std::to_string(kernel) + ")");
  if (kernel > s.height + p.top + p.bottom || kernel > s.width + p.left + p.right)
    fail(what + " kernel " + std::to_string(kernel) + " is larger than the padded " + std::to_string(s.height) + "x" +
         std::to_string(s.width) + " input");
}

// A conv2d layer on a tensor of shape `in`, its arguments checked; `what` names it in errors.
Layer Sequential::make_conv(const TensorShape& in_shape, size_t out_channels, size_t kernel, size_t stride,
                            const Padding& pad, std::vector<double> weight, std::vector<double> bias,
                            const std::string& what) const {
  auto f = [this](const std::string& m) { fail(m); };
  check_window(in_shape, kernel, stride, pad, f, what);
  if (out_channels < 1) fail(what + " needs out_channels >= 1");
  if (out_channels > kMaxFeatures) fail(what + ": at most " + std::to_string(kMaxFeatures) + " channels");
  const size_t in = in_shape.channels;
  if (weight.size() != out_channels * in * kernel * kernel)  // < 2^52: no wrap
    fail(what + " weight must hold out * in * kernel^2 = " + std::to_string(out_channels * in * kernel * kernel) +
         " values, got " + std::to_string(weight.size()));
  if (!bias.empty() && bias.size() != out_channels) fail(what + " bias must be empty or hold out_channels values");
  if (!all_finite(weight) || !all_finite(bias)) fail(what + " weights must be finite");
  Layer l(LayerKind::Conv2d);
  l.out = out_channels;
  l.in = in;
  l.kernel = kernel;
  l.stride = stride;
  l.pad = pad;
  l.weight = std::move(weight);
  l.bias = bias.empty() ? std::vector<double>(out_channels, 0.0) : std::move(bias);
  return l;
}

Sequential& Sequential::conv2d(size_t out_channels, size_t kernel, size_t stride, const Padding& pad,
                               std::vector<double> weight, std::vector<double> bias) {
  Layer l = make_conv(shape_, out_channels, kernel, stride, pad, std::move(weight), std::move(bias), "conv2d");
  const Conv2dGeometry g = l.geometry();
  shape_ = TensorShape{out_channels, g.out_height(shape_.height), g.out_width(shape_.width), false};
  layers_.push_back(std::move(l));
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

Sequential& Sequential::affine(std::vector<double> scale, std::vector<double> shift) {
  const size_t n = shape_.flat ? shape_.size() : shape_.channels;
  if (scale.size() != n || shift.size() != n)
    fail("affine needs " + std::to_string(n) + " scales and shifts (one per " + (shape_.flat ? "feature" : "channel") +
         "), got " + std::to_string(scale.size()) + " and " + std::to_string(shift.size()));
  if (!all_finite(scale) || !all_finite(shift)) fail("affine values must be finite");
  Layer l(LayerKind::Affine);
  l.out = l.in = n;
  l.weight = std::move(scale);
  l.bias = std::move(shift);
  layers_.push_back(std::move(l));
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

Sequential& Sequential::avg_pool2d(size_t kernel) { return avg_pool2d(kernel, kernel, Padding{}, true); }

Sequential& Sequential::avg_pool2d(size_t kernel, size_t stride, const Padding& pad, bool count_include_pad) {
  auto f = [this](const std::string& m) { fail(m); };
  check_window(shape_, kernel, stride, pad, f, "avg_pool2d");
  Layer l(LayerKind::AvgPool2d);
  l.out = l.in = shape_.channels;
  l.kernel = kernel;
  l.stride = stride;
  l.pad = pad;
  l.count_include_pad = count_include_pad || pad.none();
  const Conv2dGeometry g = l.geometry();
  shape_ = TensorShape{shape_.channels, g.out_height(shape_.height), g.out_width(shape_.width), false};
  layers_.push_back(std::move(l));
  return *this;
}

Sequential& Sequential::global_avg_pool() {
  if (shape_.flat) fail("global_avg_pool needs a spatial tensor (before flatten)");
  Layer l(LayerKind::GlobalAvgPool);
  l.out = l.in = shape_.channels;
  layers_.push_back(std::move(l));
  shape_ = TensorShape{shape_.channels, 1, 1, false};
  return *this;
}

Sequential& Sequential::residual_begin() {
  if (skips_.size() >= 64) fail("residual blocks nest at most 64 deep");
  skips_.push_back(shape_);
  layers_.push_back(Layer(LayerKind::ResidualBegin));
  return *this;
}

Sequential& Sequential::residual_add() { return join(Layer(LayerKind::ResidualAdd), skips_.empty() ? shape_ : skips_.back()); }

Sequential& Sequential::residual_add(size_t out_channels, size_t kernel, size_t stride, const Padding& pad,
                                     std::vector<double> weight, std::vector<double> bias) {
  if (skips_.empty()) fail("residual_add without a residual_begin");
  Layer conv = make_conv(skips_.back(), out_channels, kernel, stride, pad, std::move(weight), std::move(bias),
                         "residual_add's projection");
  Layer l(LayerKind::ResidualAdd);
  l.out = conv.out, l.in = conv.in, l.kernel = conv.kernel, l.stride = conv.stride, l.pad = conv.pad;
  l.weight = std::move(conv.weight), l.bias = std::move(conv.bias);
  const Conv2dGeometry g = l.geometry();
  const TensorShape& s = skips_.back();
  return join(std::move(l), TensorShape{out_channels, g.out_height(s.height), g.out_width(s.width), false});
}

TensorShape Sequential::residual_input_shape() const {
  if (skips_.empty()) fail("no residual block is open");
  return skips_.back();
}

// Closes the innermost block: `skip` is what its skip path delivers to the add.
Sequential& Sequential::join(Layer l, const TensorShape& skip) {
  if (skips_.empty()) fail("residual_add without a residual_begin");
  const TensorShape& s = skip;
  if (s.channels != shape_.channels || s.height != shape_.height || s.width != shape_.width || s.flat != shape_.flat)
    fail("residual_add: the block's output is " + shape_.describe() + " but its " +
         (l.projects() ? "projected skip is " : "input was ") + s.describe() + " (the shapes must match)");
  skips_.pop_back();
  layers_.push_back(std::move(l));
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

namespace {

// y[co][oy][ox] = bias[co] + sum weight(co, ci, t, oy, ox) * x[ci][iy][ix], zero padding.
template <class WeightFn>
std::vector<double> window_sum(const std::vector<double>& x, size_t cin, size_t h, size_t w, const Conv2dGeometry& g,
                               const std::vector<double>& bias, WeightFn weight) {
  const size_t oh = g.out_height(h), ow = g.out_width(w), k = g.kernel;
  std::vector<double> y(g.out_channels * oh * ow);
  for (size_t co = 0; co < g.out_channels; ++co)
    for (size_t oy = 0; oy < oh; ++oy)
      for (size_t ox = 0; ox < ow; ++ox) {
        double v = bias.empty() ? 0.0 : bias[co];
        for (size_t ky = 0; ky < k; ++ky) {
          const auto iy = static_cast<int64_t>(oy * g.stride + ky) - static_cast<int64_t>(g.pad_top);
          if (iy < 0 || iy >= static_cast<int64_t>(h)) continue;
          for (size_t kx = 0; kx < k; ++kx) {
            const auto ix = static_cast<int64_t>(ox * g.stride + kx) - static_cast<int64_t>(g.pad_left);
            if (ix < 0 || ix >= static_cast<int64_t>(w)) continue;
            const size_t at = static_cast<size_t>(iy) * w + static_cast<size_t>(ix);
            weight(co, ky * k + kx, oy, ox, [&](size_t ci, double wt) { v += wt * x[ci * h * w + at]; });
          }
        }
        y[(co * oh + oy) * ow + ox] = v;
      }
  (void)cin;
  return y;
}

// A conv2d (or a residual_add's projection) on an l.in x h x w tensor.
std::vector<double> conv_forward(const Layer& l, const std::vector<double>& x, size_t h, size_t w) {
  const size_t kk = l.kernel * l.kernel;
  return window_sum(x, l.in, h, w, l.geometry(), l.bias, [&](size_t co, size_t t, size_t, size_t, auto&& add) {
    for (size_t ci = 0; ci < l.in; ++ci) add(ci, l.weight[(co * l.in + ci) * kk + t]);
  });
}

// Pixels of an avg_pool2d window inside the image, along one axis.
double inside(size_t o, size_t stride, size_t pad, size_t k, size_t side) {
  const int64_t lo = static_cast<int64_t>(o * stride) - static_cast<int64_t>(pad);
  return static_cast<double>(std::min<int64_t>(lo + static_cast<int64_t>(k), static_cast<int64_t>(side)) -
                             std::max<int64_t>(lo, 0));
}

}  // namespace

uint64_t Sequential::multiply_adds() const {
  constexpr uint64_t cap = uint64_t{1} << 62;
  auto mul = [&](uint64_t a, uint64_t b) { return a != 0 && b > cap / a ? cap : a * b; };
  uint64_t total = 0;
  size_t ch = channels_, h = height_, w = width_;
  std::vector<std::array<size_t, 3>> saved;  // (channels, height, width) at the open residual_begin()s
  for (const Layer& l : layers_) {
    uint64_t n = mul(ch, mul(h, w));  // elementwise layers and pooling sums
    switch (l.kind) {
      case LayerKind::Conv2d:
      case LayerKind::AvgPool2d: {
        const Conv2dGeometry g = l.geometry();
        const size_t oh = g.out_height(h), ow = g.out_width(w);
        const uint64_t per = mul(l.kernel * l.kernel, l.kind == LayerKind::Conv2d ? l.in : 1);
        n = mul(mul(l.out, mul(oh, ow)), per);
        ch = l.out, h = oh, w = ow;
        break;
      }
      case LayerKind::Activation: n = mul(n, l.poly->degree()); break;
      case LayerKind::GlobalAvgPool: h = w = 1; break;
      case LayerKind::Flatten: ch = ch * h * w, h = w = 1; break;
      case LayerKind::Linear: n = mul(l.out, l.in), ch = l.out, h = w = 1; break;
      case LayerKind::ResidualAdd:
        if (l.projects()) {
          const auto [sc, sh, sw] = saved.back();
          const Conv2dGeometry g = l.geometry();
          n = std::min(cap, n + mul(mul(l.out, mul(g.out_height(sh), g.out_width(sw))), mul(l.kernel * l.kernel, sc)));
        }
        if (!saved.empty()) saved.pop_back();
        break;
      case LayerKind::Square:
      case LayerKind::Affine: break;
      case LayerKind::ResidualBegin: n = 0, saved.push_back({ch, h, w}); break;
    }
    total = std::min(cap, total + n);
  }
  return total;
}

std::vector<double> Sequential::forward(const std::vector<double>& image) const {
  require(image.size() == input_size(), ErrorCode::InvalidArgument,
          "model: the input must hold " + std::to_string(input_size()) + " values (" + std::to_string(channels_) +
              "x" + std::to_string(height_) + "x" + std::to_string(width_) + "), got " + std::to_string(image.size()));
  require(skips_.empty(), ErrorCode::InvalidArgument, "model: a residual_begin has no residual_add");
  std::vector<double> x = image;
  size_t ch = channels_, h = height_, w = width_;
  struct Saved {
    std::vector<double> x;
    size_t ch, h, w;
  };
  std::vector<Saved> saved;
  for (const Layer& l : layers_) {
    switch (l.kind) {
      case LayerKind::ResidualBegin: saved.push_back({x, ch, h, w}); break;
      case LayerKind::Affine: {
        const size_t per = x.size() / l.weight.size();  // pixels per channel (1 when flat)
        for (size_t i = 0; i < x.size(); ++i) x[i] = l.weight[i / per] * x[i] + l.bias[i / per];
        break;
      }
      case LayerKind::ResidualAdd: {
        const Saved& s = saved.back();
        const std::vector<double> skip = l.projects() ? conv_forward(l, s.x, s.h, s.w) : s.x;
        for (size_t i = 0; i < x.size(); ++i) x[i] += skip[i];
        saved.pop_back();
        break;
      }
      case LayerKind::Conv2d: {
        const Conv2dGeometry g = l.geometry();
        x = conv_forward(l, x, h, w);
        ch = l.out, h = g.out_height(h), w = g.out_width(w);
        break;
      }
      case LayerKind::Square:
        for (double& v : x) v *= v;
        break;
      case LayerKind::Activation:
        for (double& v : x) v = (*l.poly)(v);
        break;
      case LayerKind::AvgPool2d: {
        const Conv2dGeometry g = l.geometry();
        const double full = static_cast<double>(l.kernel * l.kernel);
        x = window_sum(x, ch, h, w, g, {}, [&](size_t co, size_t, size_t oy, size_t ox, auto&& add) {
          const double n = l.count_include_pad ? full
                                               : inside(oy, l.stride, l.pad.top, l.kernel, h) *
                                                     inside(ox, l.stride, l.pad.left, l.kernel, w);
          add(co, 1.0 / n);
        });
        h = g.out_height(h), w = g.out_width(w);
        break;
      }
      case LayerKind::GlobalAvgPool: {
        std::vector<double> y(ch, 0.0);
        for (size_t c = 0; c < ch; ++c) {
          for (size_t i = 0; i < h * w; ++i) y[c] += x[c * h * w + i];
          y[c] /= static_cast<double>(h * w);
        }
        x = std::move(y);
        h = w = 1;
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
