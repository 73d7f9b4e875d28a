// A small feed-forward model description (Sequential) and its encrypted execution
// plan (CompiledModel): the server runs a list of layers on ciphertexts with every
// layout, level and scale fixed when the plan is compiled.
//
// Supported layers (input: C x H x W tensors, C >= 1):
//   conv2d(out, kernel, stride, pad)  anywhere on a spatial tensor: C_in -> C_out channels,
//                                     zero padding (each pad < kernel); one level
//   batch_norm(...)               folded into the conv2d / linear right before it (no cost)
//   square()                      x^2 per slot: one ct x ct product, one level
//   activation(poly)              any Polynomial (nn/polynomial.hpp): poly.depth() levels
//   avg_pool2d(k, stride, pad)    without padding: rotations and adds, no level; with
//                                 padding: a depthwise SpatialConv2d, one level
//   global_avg_pool()             the mean of each channel: folded into the next linear
//                                 (no level), else one level
//   affine(scale, shift)          y = scale[c] * x + shift[c] per channel (spatial) or
//                                 feature (flat): BatchNorm or per-channel constants
//                                 where no conv2d / linear precedes; one level
//   flatten()                     a layout change only, PyTorch order (channel, y, x)
//   residual_begin() ... residual_add()
//                                 y = branch(x) + x for the layers between them (a
//                                 residual block; blocks nest), or + conv(x) with a
//                                 projection (residual_add(out, kernel, stride, pad, W),
//                                 one level on the skip path). The join costs no level
//                                 of the plan's depth: the skip path, at a higher level,
//                                 is multiplied by a constant that matches its scale
//                                 and carried factor to the branch's, then rescaled.
//   linear(out, W, b)             diagonal method, one level; W is [out][in] row-major
//
// Layouts (what the ciphertexts hold between layers): SIMD batching interleaves
// `batch` images with stride batch (physical slot l * batch + b = logical slot l of
// image b). A spatial tensor is a SpatialLayout (nn/spatial.hpp): channel blocks of D
// slots, G channels per ciphertext, pixel (y, x) at y * ys + x * xs of its block.
// Strided convolutions and pooling multiply ys and xs by the stride and leave the
// positions between them holding values that later layers ignore. flatten() only
// renames positions; linear() gathers them through its weights (one LinearLayer with
// one input per ciphertext: no packing level). Constant factors (the 1/k^2 of pooling
// without padding, the 1/(H W) of a folded global pool) are not multiplied in: they are
// carried and folded into the next linear layer's weights, or squared by square(), or
// absorbed into a polynomial's input interval, so they cost no level.
//
// Input packings:
//   Packing::Taps    when the first layer is a one-channel conv2d without padding:
//                    kernel^2 input ciphertexts (Conv2dTaps), slots / d images per
//                    run where d = power of two >= conv windows: 64 images at
//                    N = 8192 for the 28x28 / 7x7 / stride-3 ConvNet, 128 at 16384.
//                    Otherwise the spatial packing below.
//   Packing::Im2col  the same condition: one input ciphertext (Conv2dIm2col),
//                    slots / (d * K) images (K = power of two >= kernel^2).
//   Packing::Spatial the C x H x W input in SpatialLayout::dense (ys = W): ceil(C / G)
//                    input ciphertexts; every conv2d is a SpatialConv2d. D is the
//                    smallest power of two that holds every layer's pixels; G is
//                    CompileOptions::channel_blocks, or, when the batch is "as many as
//                    fit", the smallest (from 1: the fastest per image, docs/models.md)
//                    whose largest layer's weights fit plaintext_budget, or, with an
//                    explicit batch, as many as the slots it leaves allow.
//   Packing::Slots   one input per slot, every feature of every layer in a ciphertext of
//                    its own (CryptoNets' layout): input_size() input ciphertexts and
//                    slots() inputs per run (batch: 0 = slots, or a power of two below).
//                    Linear layers are integer combinations of ciphertexts
//                    (veil/combination.hpp): no rotation, no Galois key, weights the
//                    same in every slot; a large layer feeds the next one a slice of
//                    features at a time, so the tensor between them never exists
//                    whole. It costs the same per run for 1 input or slots() of them:
//                    the packing for throughput (docs/models.md). Any model, with or
//                    without a first flatten().
// A model that starts with flatten() takes one ciphertext holding the values in
// LinearLayer's (batched) layout; the packing option is then ignored.
//
// Levels: the plan starts at CompileOptions::level (default: top) and each layer
// consumes its depth; a model deeper than that throws Error(LevelMismatch) naming
// the depth of every layer. Scales: linear and conv keep their input scale, the
// polynomial too; square maps s to s^2 / q_level (the rescale prime), computed with
// the same double operations as the Evaluator, so no run-time scale adjustment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/evaluator.hpp"
#include "veil/keys.hpp"
#include "veil/nn/polynomial.hpp"
#include "veil/nn/spatial.hpp"

namespace veil::nn {

enum class LayerKind {
  Conv2d, Square, Activation, AvgPool2d, Flatten, Linear, GlobalAvgPool, ResidualBegin, ResidualAdd, Affine
};

// Zero padding of a conv2d or avg_pool2d, in pixels on each side (each < kernel).
struct Padding {
  size_t top = 0, left = 0, bottom = 0, right = 0;
  static Padding same(size_t p) { return {p, p, p, p}; }
  bool none() const { return top == 0 && left == 0 && bottom == 0 && right == 0; }
  bool operator==(const Padding&) const = default;
};

// One layer of a Sequential; weights are doubles, row-major.
struct Layer {
  explicit Layer(LayerKind k) : kind(k) {}
  LayerKind kind;
  size_t out = 0;     // conv2d: output channels; linear: output features
  size_t in = 0;      // conv2d: input channels; linear: input features
  size_t kernel = 0;  // conv2d, avg_pool2d
  size_t stride = 0;  // conv2d, avg_pool2d
  Padding pad;        // conv2d, avg_pool2d
  bool count_include_pad = true;     // avg_pool2d with padding: divide by kernel^2 (else by the pixels inside)
  std::vector<double> weight, bias;  // conv2d: [out][in][kernel][kernel]; linear: [out][in]; affine: scale, shift
  std::optional<Polynomial> poly;    // activation
  // residual_add with a projection: the conv2d on the skip path (out, in, kernel,
  // stride, pad, weight, bias as for conv2d).
  bool projects() const { return kind == LayerKind::ResidualAdd && !weight.empty(); }
  // The convolution's geometry (conv2d, avg_pool2d).
  Conv2dGeometry geometry() const {
    return {out, kernel, stride, pad.top, pad.left, pad.bottom, pad.right};
  }
  std::string describe() const;
};

// A tensor shape: channels x height x width, or a flat vector of `height` = 1,
// `width` = 1 and `channels` = features when flat.
struct TensorShape {
  size_t channels = 1, height = 1, width = 1;
  bool flat = false;
  size_t size() const { return channels * height * width; }
  std::string describe() const;
};

class Sequential {
 public:
  // Input: one-channel images of height x width (>= 1). Throws InvalidArgument.
  Sequential(size_t height, size_t width);
  // Input: channels x height x width tensors (each >= 1; at most 2^28 values).
  Sequential(size_t channels, size_t height, size_t width);

  // Each builder checks its arguments against the current shape and throws
  // Error(InvalidArgument) with the layer's index and the reason (sizes, finite
  // values, a conv2d after flatten(), a linear on a spatial tensor without
  // flatten(), a kernel larger than the padded image, a pad >= the kernel,
  // batch_norm not after conv2d/linear).
  // weight: [out][in][kernel][kernel] with in = the current channels; no padding.
  Sequential& conv2d(size_t out_channels, size_t kernel, size_t stride, std::vector<double> weight,
                     std::vector<double> bias = {});
  Sequential& conv2d(size_t out_channels, size_t kernel, size_t stride, const Padding& pad,
                     std::vector<double> weight, std::vector<double> bias = {});
  // y = gamma * (x - mean) / sqrt(var + eps) + beta per channel (conv2d) or feature
  // (linear), folded into that layer's weights and bias. var + eps must be > 0.
  Sequential& batch_norm(const std::vector<double>& gamma, const std::vector<double>& beta,
                         const std::vector<double>& mean, const std::vector<double>& var, double eps = 1e-5);
  // y = scale[i] * x + shift[i] per channel of a spatial tensor or feature of a flat
  // one (scale.size() = shift.size() = channels or features). Right after a conv2d or
  // linear use batch_norm-style folding instead: Sequential does it when asked through
  // batch_norm; affine() is the layer for anywhere else (the input, after pooling).
  Sequential& affine(std::vector<double> scale, std::vector<double> shift);
  Sequential& square();
  Sequential& activation(const Polynomial& p);
  // Kernel k, stride k, no padding (floor mode).
  Sequential& avg_pool2d(size_t kernel);
  // Any stride and padding (floor mode); count_include_pad as in PyTorch / ONNX.
  Sequential& avg_pool2d(size_t kernel, size_t stride, const Padding& pad, bool count_include_pad = true);
  // The mean over each channel's pixels: a C x 1 x 1 tensor.
  Sequential& global_avg_pool();
  // A residual block: residual_add() adds the tensor residual_begin() saw to the
  // current one, which must have the same shape (else InvalidArgument, as is an add
  // without a begin). Blocks nest; every begin needs its add before the model is used.
  Sequential& residual_begin();
  Sequential& residual_add();
  // A projection shortcut: y = branch(x) + conv(x), the conv2d (arguments as for
  // conv2d(), on the shape residual_begin() saw) matching the skip to the branch's
  // shape, as ResNet's downsampling blocks do (a 1x1, stride-2 conv; a BatchNorm on the
  // skip is folded into its weights by the caller). Costs one level on the skip path,
  // which has spare levels when the branch holds a conv and an activation: none of the
  // plan's depth.
  Sequential& residual_add(size_t out_channels, size_t kernel, size_t stride, const Padding& pad,
                           std::vector<double> weight, std::vector<double> bias = {});
  size_t open_residuals() const { return skips_.size(); }
  // The shape the innermost open residual_begin() saw (InvalidArgument when none is open).
  TensorShape residual_input_shape() const;
  Sequential& flatten();
  Sequential& linear(size_t out_features, std::vector<double> weight, std::vector<double> bias = {});

  const std::vector<Layer>& layers() const { return layers_; }
  size_t channels() const { return channels_; }
  size_t height() const { return height_; }
  size_t width() const { return width_; }
  size_t input_size() const { return channels_ * height_ * width_; }
  TensorShape output_shape() const { return shape_; }

  // Plain float64 evaluation of one input (input_size() values, channel-major, then
  // row-major); the output in flatten order. Throws InvalidArgument for a wrong size.
  std::vector<double> forward(const std::vector<double>& image) const;
  // Multiply-adds of one forward() (saturating at 2^62): what a plain evaluation costs.
  uint64_t multiply_adds() const;

 private:
  [[noreturn]] void fail(const std::string& msg) const;
  Layer make_conv(const TensorShape& in, size_t out_channels, size_t kernel, size_t stride, const Padding& pad,
                  std::vector<double> weight, std::vector<double> bias, const std::string& what) const;
  Sequential& join(Layer l, const TensorShape& skip);
  Sequential& add_pool(Layer l);
  size_t channels_ = 1, height_, width_;
  std::vector<TensorShape> skips_;  // shapes at the open residual_begin()s
  TensorShape shape_;
  std::vector<Layer> layers_;
};

enum class Packing { Taps, Im2col, Spatial, Slots };

// "taps", "im2col", "spatial", "slots"; parse_packing throws InvalidArgument for another name.
std::string packing_name(Packing p);
Packing parse_packing(const std::string& name);

struct CompileOptions {
  Packing packing = Packing::Taps;
  size_t batch = 0;   // images per run: 0 = as many as fit, else a power of two that fits
  int level = -1;     // level of the input ciphertexts (-1: top)
  double scale = 0;   // scale of the input ciphertexts (0: the parameters' default)
  size_t channel_blocks = 0;  // spatial layouts: channels per ciphertext (power of two; 0: automatic)
  // Bytes of pre-encoded weights per spatial convolution; beyond it they are encoded
  // per run (SpatialConvOptions::plaintext_budget). 0: encode per run (a client that
  // needs the layouts only).
  size_t plaintext_budget = size_t{512} << 20;
};

class CompiledModel {
 public:
  // Fixes layouts, levels and scales and encodes every weight. Throws
  // Error(LevelMismatch) when the model is deeper than the input level,
  // Error(InvalidArgument) for an empty model, a batch that does not fit or a
  // layout larger than the slots.
  CompiledModel(ContextPtr ctx, const Sequential& model, const CompileOptions& options = {});
  ~CompiledModel();
  CompiledModel(CompiledModel&&) noexcept;
  CompiledModel& operator=(CompiledModel&&) noexcept;

  size_t batch() const;               // images per run
  size_t input_ciphertexts() const;   // ciphertexts the client sends per run
  size_t output_ciphertexts() const;  // ciphertexts run() returns
  size_t output_size() const;         // values per image in decode()
  uint32_t depth() const;             // levels consumed
  uint32_t input_level() const;
  uint32_t output_level() const;
  double input_scale() const;
  // Every rotation step run() uses (ascending, unique): KeyGenerator::create_galois_keys(steps, false).
  std::vector<int64_t> rotation_steps() const;
  // The plan, one line per layer: layout, level and scale in and out, rotations.
  std::string describe() const;
  // The packing the plan uses (Taps and Im2col fall back to Spatial when the first
  // layer is not a one-channel conv2d without padding).
  Packing packing() const;
  // Channels per ciphertext of the spatial layouts (the resolved channel_blocks; 1
  // for the other packings). A client rebuilding the plan passes it explicitly.
  size_t channel_blocks() const;

  // Client side: the slot values of the input ciphertexts for 1..batch() inputs
  // (input_size() values each); encode each at input_level() / input_scale().
  std::vector<std::vector<double>> encode(const std::vector<std::vector<double>>& images) const;
  // Server side: inputs as produced from encode() (same count, this context, the
  // plan's level or higher and scale); rk and gk of this context (gk with every
  // rotation_steps() key). Throws veil::Error (ContextMismatch, LevelMismatch,
  // ScaleMismatch, MissingKey, InvalidArgument).
  std::vector<Ciphertext> run(const Evaluator& eval, const std::vector<Ciphertext>& inputs, const RelinKey& rk,
                              const GaloisKeys& gk) const;
  // Client side: the output of each of the first `images` images (output_size()
  // values, flatten order) from the decoded output ciphertexts (one slot vector each).
  std::vector<std::vector<double>> decode(const std::vector<std::vector<double>>& outputs, size_t images) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace veil::nn
