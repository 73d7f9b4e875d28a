// A small feed-forward model description (Sequential) and its encrypted execution
// plan (CompiledModel): the server runs a list of layers on ciphertexts with every
// layout, level and scale fixed when the plan is compiled.
//
// Supported layers (input: one-channel height x width images):
//   conv2d(out, kernel, stride)   first layer only (one input channel, im2col), no padding
//   batch_norm(...)               folded into the conv2d / linear right before it (no cost)
//   square()                      x^2 per slot: one ct x ct product, one level
//   activation(poly)              any Polynomial (nn/polynomial.hpp): poly.depth() levels
//   avg_pool2d(k)                 kernel k, stride k, floor mode: rotations and adds, no level
//   flatten()                     a layout change only, PyTorch order (channel, y, x)
//   linear(out, W, b)             diagonal method, one level; W is [out][in] row-major
//
// Layouts (what the ciphertexts hold between layers): SIMD batching interleaves
// `batch` images with stride batch (physical slot l * batch + b = logical slot l of
// image b). A spatial tensor is one ciphertext per channel, pixel (y, x) at logical
// position y * ys + x * xs of a power-of-two block repeated over the logical slots
// (ys = out_w, xs = 1 after the conv; avg_pool2d multiplies both by k and leaves
// the pooled sums in place, so positions between them hold partial sums that later
// layers ignore). flatten() only renames positions; linear() gathers them through
// its weights (one LinearLayer with one input per channel: no packing level).
// Constant factors (the 1/k^2 of pooling) are not multiplied in: they are carried
// and folded into the next linear layer's weights, or squared by square(), or
// absorbed into a polynomial's input interval, so pooling costs no level.
//
// Input packings (when the first layer is conv2d):
//   Packing::Taps    kernel^2 input ciphertexts (Conv2dTaps), slots / d images per
//                    run where d = power of two >= conv windows: 64 images at
//                    N = 8192 for the 28x28 / 7x7 / stride-3 ConvNet, 128 at 16384.
//   Packing::Im2col  one input ciphertext (Conv2dIm2col), slots / (d * K) images
//                    (K = power of two >= kernel^2): 1 at N = 8192, 2 at 16384.
// A model that starts with flatten() takes one ciphertext holding the pixels in
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

namespace veil::nn {

enum class LayerKind { Conv2d, Square, Activation, AvgPool2d, Flatten, Linear };

// One layer of a Sequential; weights are doubles, row-major.
struct Layer {
  explicit Layer(LayerKind k) : kind(k) {}
  LayerKind kind;
  size_t out = 0;     // conv2d: output channels; linear: output features
  size_t in = 0;      // linear: input features
  size_t kernel = 0;  // conv2d, avg_pool2d
  size_t stride = 0;  // conv2d (avg_pool2d: = kernel)
  std::vector<double> weight, bias;  // conv2d: [out][kernel^2]; linear: [out][in]
  std::optional<Polynomial> poly;    // activation
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

  // Each builder checks its arguments against the current shape and throws
  // Error(InvalidArgument) with the layer's index and the reason (sizes, finite
  // values, a conv2d that is not first, a linear on a spatial tensor without
  // flatten(), a pool larger than the image, batch_norm not after conv2d/linear).
  Sequential& conv2d(size_t out_channels, size_t kernel, size_t stride, std::vector<double> weight,
                     std::vector<double> bias = {});
  // y = gamma * (x - mean) / sqrt(var + eps) + beta per channel (conv2d) or feature
  // (linear), folded into that layer's weights and bias. var + eps must be > 0.
  Sequential& batch_norm(const std::vector<double>& gamma, const std::vector<double>& beta,
                         const std::vector<double>& mean, const std::vector<double>& var, double eps = 1e-5);
  Sequential& square();
  Sequential& activation(const Polynomial& p);
  Sequential& avg_pool2d(size_t kernel);
  Sequential& flatten();
  Sequential& linear(size_t out_features, std::vector<double> weight, std::vector<double> bias = {});

  const std::vector<Layer>& layers() const { return layers_; }
  size_t height() const { return height_; }
  size_t width() const { return width_; }
  TensorShape output_shape() const { return shape_; }

  // Plain float64 evaluation of one image (height * width values, row-major); the
  // output in flatten order. Throws InvalidArgument for a wrong image size.
  std::vector<double> forward(const std::vector<double>& image) const;

 private:
  [[noreturn]] void fail(const std::string& msg) const;
  size_t height_, width_;
  TensorShape shape_;
  std::vector<Layer> layers_;
};

enum class Packing { Taps, Im2col };

struct CompileOptions {
  Packing packing = Packing::Taps;
  size_t batch = 0;   // images per run: 0 = as many as fit, else a power of two that fits
  int level = -1;     // level of the input ciphertexts (-1: top)
  double scale = 0;   // scale of the input ciphertexts (0: the parameters' default)
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

  // Client side: the slot values of the input ciphertexts for 1..batch() images
  // (height * width values each); encode each at input_level() / input_scale().
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
