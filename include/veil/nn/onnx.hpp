// ONNX import: an ONNX model file (e.g. from torch.onnx.export) becomes the
// nn::Sequential it describes, ready for CompiledModel (docs/models.md, "ONNX").
//
// The graph must be one chain from its single input to its single output, plus
// residual blocks: an Add (or a Sum of two) of the chain's current tensor and an
// earlier tensor of the chain (the skip, carried unchanged) becomes residual_begin()
// where the skip was the chain's tensor and residual_add() at the Add; blocks nest.
// A projection shortcut (the Add of the block's output and Conv(x), or
// BatchNormalization(Conv(x)), of the tensor x the block starts from) becomes
// residual_add(projection) with the BatchNorm folded in. Other branches (longer skip
// paths, two diverging paths, crossing skips) are refused naming the node. Operators (default domain, opset 9..21):
//   Conv                 any input channels, square kernel, equal strides, dilation 1,
//                        pads or auto_pad (NOTSET, VALID, SAME_UPPER, SAME_LOWER), each
//                        pad < kernel (-> conv2d, anywhere on an image). group g > 1 (g
//                        dividing C_in and C_out; depthwise: g = C_in) becomes the dense
//                        [C_out][C_in][k][k] weight with zeros outside each group's block
//                        (at most 2^26 values), which the encrypted conv skips
//   Gemm                 alpha, beta, transB 0 or 1, transA 0 or 1 (-> linear; batch 1)
//   MatMul               x times a constant [in][out] matrix (-> linear); a following
//                        Add of a per-feature constant becomes its bias
//   BatchNormalization   inference mode: folded into the conv2d / linear right before it;
//                        anywhere else (the input, after a pool) -> affine(scale, shift)
//                        with scale = gamma / sqrt(var + eps), shift = beta - mean * scale
//                        (inputs with a batch dimension: [batch, C, H, W] or [batch, F])
//   AveragePool          kernel k x k, equal strides, pads or auto_pad as for Conv,
//                        count_include_pad (ONNX's default 0), floor mode (ceil_mode 0)
//                        (-> avg_pool2d)
//   GlobalAveragePool    (-> global_avg_pool: C x 1 x 1)
//   Flatten (axis 1; axis 0 for a [C, H, W] input), Reshape to (batch, features) (-> flatten)
//   Add, Sub, Mul, Div, Pow, Neg (and Sum of two) on the data and scalar constants,
//     or on two tensors between the same two layers: collected into one
//     polynomial of the tensor they start from, e.g. x*x -> square(), 0.1*x^3 + x -> an
//     activation(Polynomial) in the power basis on [-1, 1]; a degree-1 polynomial right
//     after a conv2d / linear is folded into its weights instead. Per-channel (per-feature)
//     constants of Add/Sub/Mul/Div ([C, 1, 1] / [1, C, 1, 1], [F] / [1, F]) are folded
//     into the conv2d / linear right before them; anywhere else they become one
//     affine(scale, shift) layer together with the BatchNorms, Negs, scalar constants
//     and degree-1 polynomials around them (x * a + b: one layer). Scalars alone stay a
//     polynomial (x * 2 + 1 on the input: a degree-1 activation).
//   Pad                  all-zero pads: a no-op; otherwise constant zero padding of height
//                        and width only, folded into the Conv / AveragePool it directly
//                        feeds (an AveragePool then counts the Pad's zeros)
//   Identity, Dropout (inference), Constant: no-ops / values.
//   Relu, Sigmoid: only when OnnxImportOptions::activation_bound > 0, replaced by the
//     Chebyshev approximations relu_approximation / sigmoid_approximation on
//     [-bound, bound] (the caller must know the pre-activation range; docs/nn_activations.md).
// The input is [batch, C, H, W] or [C, H, W] (images of C >= 1 channels; the batch
// dimension may be symbolic) or [batch, F] (vectors). Weights may be
// float32, float64, in raw_data or the typed fields; external data is refused.
//
// Errors (veil::Error): Serialization for a file that cannot be read or parsed, an
// oversized file or tensor, or tensor data whose size does not match its shape;
// Unsupported for an operator, attribute or graph shape outside the list above (the
// message names the node and why); InvalidArgument for shapes that do not fit (a
// Conv weight's channels against its input, a kernel larger than the padded image:
// Sequential's checks, the message names the node and the layer); Unsupported for
// every call when Veil was built without ONNX (onnx_import_available() is false).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "veil/nn/model.hpp"

namespace veil::nn {

struct OnnxImportOptions {
  size_t max_file_bytes = size_t{256} << 20;  // larger files are refused (Serialization)
  size_t max_nodes = 100000;                  // more nodes are refused (Unsupported)
  // > 0: Relu and Sigmoid become Chebyshev approximations on [-bound, bound] of degree
  // activation_degree (1..63). 0: they are refused with Error(Unsupported).
  double activation_bound = 0;
  int activation_degree = 15;
};

// True when this build can read ONNX files (built with libonnx / protobuf).
bool onnx_import_available();

// Reads an ONNX file / an in-memory model.
Sequential import_onnx(const std::string& path, const OnnxImportOptions& options = {});
Sequential import_onnx_bytes(std::string_view bytes, const OnnxImportOptions& options = {});

}  // namespace veil::nn
