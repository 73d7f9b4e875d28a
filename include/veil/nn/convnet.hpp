// The encrypted ConvNet of docs/convnet.md (TenSEAL MNIST tutorial shape, trained on
// scikit-learn digits upsampled to 28x28), as a Sequential (nn/model.hpp):
//
//   conv 1->4, 7x7, stride 3                  28x28 -> 4 ciphertexts, 64 windows each (d = 64)
//   square each channel (ct x ct + rescale)
//   flatten (layout only), fc1 256->64        one LinearLayer with 4 input ciphertexts: 4 x 7
//                                             hoisted baby rotations + 7 giant ones
//   square
//   fc2 64->10 (LinearLayer, d = 64)           logits in slots 0..9
//
// Depth: 5 levels (conv 1, square 1, fc1 1, square 1, fc2 1), whatever the ring.
// Images per ciphertext (CompiledModel): Packing::Im2col puts one image's 64 x 64 im2col
// block in 4096 slots: 1 image at N = 8192, 2 at N = 16384; Packing::Taps (49 input
// ciphertexts, one per kernel tap) puts 64 windows per image: 64 images at N = 8192,
// 128 at N = 16384, for the same number of rotations per run.
//
// Parameters (convnet_parameters):
//   log_n 13 (the TenSEAL tutorial ring, 4096 slots = exactly one 64 x 64 im2col
//            block): q = {38, 27 x 5} bits, P = {44}, scale 2^27, log2(QP) < 217
//            <= 218 (128-bit). q_0 = 38 bits holds logits up to 49 at scale ~2^27
//            (2^32.6 < q_0 / 2); fc2 runs at level 1 (q_0 q_1 ~ 2^65) where its
//            products reach |value| ~ 10^2..10^3 at scale ~2^54 (< 2^63): no wrap-around.
//            P exceeds every one-prime digit by >= 6 bits.
//   log_n 14: Parameters::preset(14) (q = {50, 40 x 7}, P = {54, 54}, scale 2^40):
//            12 more bits of logit precision, about 3.5x slower.
// Measured on all 400 test images against the float64 reference logits (veil-convnet,
// 2 CPU cores, public-key encryption, minimal Galois keys):
//   log_n  agreement   accuracy   max |logit error|   infer / image
//   13     100.00%     98.00%     4.5e-3 (7.8 bits)   ~0.19-0.23 s
//   14     100.00%     98.00%     1.1e-6 (19.8 bits)  ~0.77 s
// The smallest top-1/top-2 logit gap on the test set is 0.12, so log_n 13 is enough for
// the same classes as the plaintext model; it is the default.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/evaluator.hpp"
#include "veil/keys.hpp"
#include "veil/nn/model.hpp"
#include "veil/params.hpp"

namespace veil::nn {

// The model's fixed shape (docs/convnet.md).
struct ConvNetShape {
  static constexpr size_t image = 28, kernel = 7, stride = 3, channels = 4;
  static constexpr size_t windows = 64;                    // 8 x 8 conv outputs per channel
  static constexpr size_t flat = channels * windows;       // 256, fc1 input
  static constexpr size_t hidden = 64, classes = 10;
};

// float32 weights (converted exactly to double), row-major as in the file.
struct ConvNetWeights {
  std::vector<double> conv_weight;  // [4][49], [c][ky * 7 + kx]
  std::vector<double> conv_bias;    // [4]
  std::vector<double> fc1_weight;   // [64][256], [j][c * 64 + oy * 8 + ox]
  std::vector<double> fc1_bias;     // [64]
  std::vector<double> fc2_weight;   // [10][64]
  std::vector<double> fc2_bias;     // [10]
};

// Parses tests/data/convnet_digits.weights ('#' comment lines, "name rows cols" headers,
// values read with strtof). Throws Error(InvalidArgument) naming the line for a missing
// file, a wrong tensor name or shape, a malformed or non-finite value, or trailing data.
ConvNetWeights load_convnet_weights(const std::string& path);

// The test set of tests/data: images as u8 / 255 (784 values each), labels, and the
// float64 reference logits and predicted classes.
struct ConvNetTestSet {
  std::vector<std::vector<double>> images;
  std::vector<int> labels;
  std::vector<std::vector<double>> logits;
  std::vector<int> predicted;
  size_t size() const { return images.size(); }
};

// Reads digits_test_28x28.u8, digits_test_labels.u8 and convnet_digits_expected.txt from
// `dir`, the first min(max_images, count) images. Throws Error(InvalidArgument) for missing,
// truncated or inconsistent files.
ConvNetTestSet load_convnet_test_set(const std::string& dir, size_t max_images = SIZE_MAX);

// The model as a Sequential (conv2d, square, flatten, linear, square, linear). Throws
// Error(InvalidArgument) for weights of the wrong size.
Sequential convnet_model(const ConvNetWeights& w);

// Plain float64 evaluation of the model, written out independently of Sequential (the
// formulas of docs/convnet.md).
std::vector<double> plain_convnet_logits(const ConvNetWeights& w, const std::vector<double>& image);

// Index of the largest value (the first one on ties). Throws InvalidArgument when empty.
int argmax(const std::vector<double>& v);

// 128-bit parameters for the ConvNet: log_n 13 (default, see above) or 14 (preset(14)).
// Throws Error(InvalidArgument) for any other log_n.
Parameters convnet_parameters(uint32_t log_n = 13);

// One image per ciphertext (Packing::Im2col, batch 1): the TenSEAL tutorial's setting.
// For throughput use CompiledModel(ctx, convnet_model(w)) (Packing::Taps, batched).
class EncryptedConvNet {
 public:
  // Levels consumed by infer(): conv, square, fc1, square, fc2.
  static constexpr uint32_t kDepth = 5;
  static constexpr uint32_t required_depth() { return kDepth; }

  // Builds every layer for input ciphertexts at the top level with the default scale.
  // Throws Error(LevelMismatch) when max_level < required_depth(), Error(InvalidArgument)
  // for weights of the wrong size or a ring whose slots cannot hold the im2col layout.
  EncryptedConvNet(ContextPtr ctx, const ConvNetWeights& weights);

  // Client side: the slot values to encode (default scale, top level) and encrypt.
  std::vector<double> encode_input(const std::vector<double>& image) const;
  // Server side: the logits ciphertext at level max_level - required_depth(). x: one
  // image encrypted from encode_input at the top level and default scale; rk and gk
  // (keys for rotation_steps()) of this context. Throws veil::Error.
  Ciphertext infer(const Evaluator& eval, const Ciphertext& x, const RelinKey& rk,
                   const GaloisKeys& gk) const;
  // Client side: the 10 logits from the decoded output slots.
  std::vector<double> decode_logits(const std::vector<double>& slots) const;

  // Every rotation step infer() uses (ascending, unique): pass to
  // KeyGenerator::create_galois_keys(steps, false) for minimal keys.
  std::vector<int64_t> rotation_steps() const { return model_.rotation_steps(); }
  uint32_t input_level() const { return model_.input_level(); }
  uint32_t output_level() const { return model_.output_level(); }
  const CompiledModel& model() const { return model_; }

 private:
  CompiledModel model_;
};

}  // namespace veil::nn
