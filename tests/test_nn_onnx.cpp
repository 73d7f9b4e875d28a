// ONNX import (veil::nn::import_onnx): torch-exported models against independent
// references (the hand-written ConvNet and its weights file; torch's float64 outputs
// for a model using every mapped operator), an encrypted run of an imported model,
// and hostile or unsupported files built here with the ONNX protobuf classes.
#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include "test_util.hpp"
#include "veil/nn/convnet.hpp"
#include "veil/nn/onnx.hpp"

#ifdef VEIL_TEST_ONNX
#include <onnx/onnx_pb.h>
#endif

namespace veil::test {
namespace {

namespace fs = std::filesystem;
using nn::LayerKind;
using nn::Sequential;

const std::string kData = (fs::path(__FILE__).parent_path() / "data").string();

#ifndef VEIL_TEST_ONNX

TEST(OnnxImport, WithoutOnnxSupportEveryCallIsUnsupported) {
  EXPECT_FALSE(nn::onnx_import_available());
  EXPECT_VEIL_ERROR(nn::import_onnx(kData + "/convnet_digits.onnx"), ErrorCode::Unsupported);
}

#else

std::vector<LayerKind> kinds(const Sequential& m) {
  std::vector<LayerKind> k;
  for (const auto& l : m.layers()) k.push_back(l.kind);
  return k;
}

TEST(OnnxImport, ConvNetEqualsTheHandWrittenModel) {
  ASSERT_TRUE(nn::onnx_import_available());
  const Sequential imported = nn::import_onnx(kData + "/convnet_digits.onnx");
  const Sequential reference = nn::convnet_model(nn::load_convnet_weights(kData + "/convnet_digits.weights"));
  ASSERT_EQ(kinds(imported), kinds(reference));
  ASSERT_EQ(imported.layers().size(), 6u);
  for (size_t i = 0; i < imported.layers().size(); ++i) {
    const auto &a = imported.layers()[i], &b = reference.layers()[i];
    EXPECT_EQ(a.out, b.out) << i;
    EXPECT_EQ(a.kernel, b.kernel) << i;
    EXPECT_EQ(a.stride, b.stride) << i;
    EXPECT_EQ(a.weight, b.weight) << "layer " << i << ": the float32 weights, exactly";
    EXPECT_EQ(a.bias, b.bias) << i;
  }
  const auto set = nn::load_convnet_test_set(kData, 20);
  for (size_t k = 0; k < set.size(); ++k) {
    const auto out = imported.forward(set.images[k]);
    EXPECT_EQ(out, reference.forward(set.images[k])) << "image " << k;
    ASSERT_EQ(out.size(), 10u);  // the expected file prints 9 significant digits
    for (size_t c = 0; c < 10; ++c) EXPECT_NEAR(out[c], set.logits[k][c], 1e-7) << "image " << k;
  }
}

// onnx_ops.onnx (tools/export_onnx.py): Conv (BatchNorm2d fused by torch) -> Mul(x, x) ->
// Pad(0) + AveragePool -> Flatten -> Gemm -> 0.125 x^3 - 0.25 x^2 + 0.5 x + 0.1 written
// with Pow/Mul/Sub/Div/Add -> MatMul + Add -> BatchNormalization.
struct OpsCase {
  std::vector<double> input, output;
};

// The numbers of each line of a test data file, '#' comment lines skipped.
std::vector<std::vector<double>> number_rows(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::string line;
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    std::vector<double> v;
    for (double x; s >> x;) v.push_back(x);
    rows.push_back(v);
  }
  return rows;
}

// Files of (input line, output line) pairs.
std::vector<OpsCase> paired_cases(const std::string& path) {
  const auto rows = number_rows(path);
  std::vector<OpsCase> cases;
  for (size_t i = 0; i + 1 < rows.size(); i += 2) cases.push_back({rows[i], rows[i + 1]});
  return cases;
}

std::vector<OpsCase> ops_cases() { return paired_cases(kData + "/onnx_ops_expected.txt"); }

TEST(OnnxImport, EveryMappedOperatorMatchesTorch) {
  const Sequential m = nn::import_onnx(kData + "/onnx_ops.onnx");
  const std::vector<LayerKind> want = {LayerKind::Conv2d,  LayerKind::Square,     LayerKind::AvgPool2d,
                                       LayerKind::Flatten, LayerKind::Linear,     LayerKind::Activation,
                                       LayerKind::Linear};
  ASSERT_EQ(kinds(m), want);
  EXPECT_EQ(m.layers()[5].poly->degree(), 3);
  const auto cases = ops_cases();
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases) {
    ASSERT_EQ(c.input.size(), 144u);
    const auto out = m.forward(c.input);
    ASSERT_EQ(out.size(), 8u);
    // float32 constants (0.1f in the polynomial) against torch's float64 ones: ~1e-8.
    for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(out[i], c.output[i], 1e-6) << i;
  }
}

TEST(OnnxImport, ImportedModelRunsEncrypted) {
  Keyed& k = Keyed::preset(14);  // L = 7: the model's depth (1 + 1 + 1 + 3 + 1)
  const Sequential m = nn::import_onnx(kData + "/onnx_ops.onnx");
  nn::CompiledModel plan(k.ctx, m);
  ASSERT_EQ(plan.depth(), 7u);
  auto gk = k.keygen->create_galois_keys(plan.rotation_steps(), false);
  const auto cases = ops_cases();
  std::vector<std::vector<double>> images;
  for (const auto& c : cases) images.push_back(c.input);
  std::vector<Ciphertext> in;
  for (const auto& slots : plan.encode(images)) in.push_back(k.encrypt(slots));
  std::vector<std::vector<double>> decoded;
  for (const auto& ct : plan.run(*k.eval, in, k.rk, gk)) decoded.push_back(k.decrypt(ct));
  const auto got = plan.decode(decoded, images.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto p = precision(cases[i].output, got[i]);
    report("onnx_ops.onnx (imported), case " + std::to_string(i), *k.ctx, p);
    EXPECT_GE(p.worst_bits, 14.0) << "case " << i;
  }
}

// ---- hand-built models: unsupported operators, hostile data ----

struct Builder {
  onnx::ModelProto model;
  onnx::GraphProto* g;
  explicit Builder(std::vector<int64_t> input_dims = {1, 1, 8, 8}, int64_t opset = 13) {
    model.set_ir_version(7);
    auto* op = model.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    g = model.mutable_graph();
    auto* in = g->add_input();
    in->set_name("x");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : input_dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  onnx::TensorProto* weight(const std::string& name, std::vector<int64_t> dims, float value = 0.5f) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t d : dims) {
      t->add_dims(d);
      n *= d;
    }
    for (int64_t i = 0; i < n; ++i) t->add_float_data(value + 0.01f * static_cast<float>(i % 7));
    return t;
  }
  onnx::NodeProto* node(const std::string& op, std::vector<std::string> in, const std::string& out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    for (const auto& s : in) n->add_input(s);
    n->add_output(out);
    return n;
  }
  // A constant with the given float values (the reference uses the same floats).
  void tensor(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& values) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
  }
  static void ints(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void text(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  std::string bytes(const std::string& output) {
    g->add_output()->set_name(output);
    std::string s;
    model.SerializeToString(&s);
    return s;
  }
};

// x: 8x8 -> Conv 2x(3x3) -> 6x6 -> (op) -> Flatten -> Gemm 72 -> 3.
std::string conv_then(const std::function<std::string(Builder&, const std::string&)>& middle,
                      std::vector<int64_t> pads = {}) {
  Builder b;
  b.weight("w", {2, 1, 3, 3});
  b.weight("wb", {2});
  auto* conv = b.node("Conv", {"x", "w", "wb"}, "c");
  if (!pads.empty()) Builder::ints(conv, "pads", pads);
  const std::string mid = middle(b, "c");
  b.node("Flatten", {mid}, "f");
  b.weight("fc", {3, 72});
  auto* gemm = b.node("Gemm", {"f", "fc"}, "y");
  auto* a = gemm->add_attribute();
  a->set_name("transB");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(1);
  return b.bytes("y");
}

TEST(OnnxImport, HandBuiltChainImports) {
  const auto m = nn::import_onnx_bytes(conv_then([](Builder& b, const std::string& in) {
    b.node("Mul", {in, in}, "sq");
    return std::string("sq");
  }));
  EXPECT_EQ(kinds(m), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::Square, LayerKind::Flatten,
                                              LayerKind::Linear}));
  // Per-channel Add and Mul right after the conv fold into it: no extra layer.
  const auto folded = nn::import_onnx_bytes(conv_then([](Builder& b, const std::string& in) {
    b.weight("scale", {1, 2, 1, 1}, 2.0f);
    b.weight("shift", {2, 1, 1}, -1.0f);
    b.node("Mul", {in, "scale"}, "m");
    b.node("Add", {"m", "shift"}, "a");
    return std::string("a");
  }));
  EXPECT_EQ(kinds(folded), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::Flatten, LayerKind::Linear}));
}

TEST(OnnxImport, UnsupportedGraphsAreRefusedWithTheNodeNamed) {
  // ReLU: refused, or approximated when the caller gives the input bound.
  const std::string relu = conv_then([](Builder& b, const std::string& in) {
    b.node("Relu", {in}, "r");
    return std::string("r");
  });
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(relu); }, "Relu"), ErrorCode::Unsupported);
  nn::OnnxImportOptions approx;
  approx.activation_bound = 4;
  approx.activation_degree = 7;
  EXPECT_EQ(kinds(nn::import_onnx_bytes(relu, approx))[1], LayerKind::Activation);
  // Pads as large as the kernel, conv(x) + Flatten(x) (a projection shortcut that cannot match), an unknown operator.
  EXPECT_EQ(error_code_of([] { nn::import_onnx_bytes(conv_then([](Builder&, const std::string& in) { return in; },
                                                                  {3, 0, 0, 0})); },
                          "node 0 (Conv): pads must be in [0, kernel - 1 = 2]"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([] {
              nn::import_onnx_bytes(conv_then([](Builder& b, const std::string& in) {
                b.node("Flatten", {"x"}, "xf");  // reads the graph input again: conv(x) is a shortcut
                b.node("Add", {in, "xf"}, "s");  // of a block whose branch is Flatten(x)
                return std::string("s");
              }));
            }, "node 2 (Add): model layer 2: residual_add: the block's output is 64 but its projected skip is 2x6x6"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([] {
              nn::import_onnx_bytes(conv_then([](Builder& b, const std::string& in) {
                b.node("Softmax", {in}, "s");
                return std::string("s");
              }));
            }, "Softmax"),
            ErrorCode::Unsupported);
  // A rank-5 input; a model without a layer.
  {
    Builder b({1, 1, 2, 8, 8});
    b.node("Identity", {"x"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "rank 5"), ErrorCode::Unsupported);
  }
  {
    Builder b({1, 3, 8, 8});
    b.node("Identity", {"x"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "no layer"), ErrorCode::Unsupported);
  }
  // An old opset.
  {
    Builder b({1, 1, 8, 8}, 7);
    b.node("Identity", {"x"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "opset"), ErrorCode::Unsupported);
  }
  // Shapes that do not fit: Gemm on the spatial tensor without Flatten (Sequential's check).
  {
    Builder b;
    b.weight("fc", {3, 64});
    b.node("Gemm", {"x", "fc"}, "y");
    EXPECT_VEIL_ERROR(nn::import_onnx_bytes(b.bytes("y")), ErrorCode::InvalidArgument);
  }
}

// ---- multi-channel images, padding, strides, pooling: against a float64 reference ----

// A C x H x W image, channel-major then row-major (ONNX's and Sequential's order).
struct Image {
  size_t c, h, w;
  std::vector<double> v;
};

// ONNX Conv (dilation 1) of one image, written from the operator spec; pads are top,
// left, bottom, right. With `group` g, output channel o reads the x.c / g input
// channels of its group (o / (out / g)), its weight [out][x.c / g][k][k].
Image reference_conv(const Image& x, const std::vector<float>& weight, const std::vector<float>& bias, size_t out,
                     size_t k, size_t stride, std::array<size_t, 4> pad, size_t group = 1) {
  Image y{out, (x.h + pad[0] + pad[2] - k) / stride + 1, (x.w + pad[1] + pad[3] - k) / stride + 1, {}};
  const size_t per_in = x.c / group, per_out = out / group;
  for (size_t o = 0; o < out; ++o)
    for (size_t oy = 0; oy < y.h; ++oy)
      for (size_t ox = 0; ox < y.w; ++ox) {
        double sum = bias[o];
        for (size_t j = 0; j < per_in; ++j)
          for (size_t ky = 0; ky < k; ++ky)
            for (size_t kx = 0; kx < k; ++kx) {
              const size_t i = (o / per_out) * per_in + j;  // the input channel
              const long iy = static_cast<long>(oy * stride + ky) - static_cast<long>(pad[0]);
              const long ix = static_cast<long>(ox * stride + kx) - static_cast<long>(pad[1]);
              if (iy < 0 || ix < 0 || iy >= static_cast<long>(x.h) || ix >= static_cast<long>(x.w)) continue;
              sum += static_cast<double>(weight[((o * per_in + j) * k + ky) * k + kx]) *
                     x.v[(i * x.h + static_cast<size_t>(iy)) * x.w + static_cast<size_t>(ix)];
            }
        y.v.push_back(sum);
      }
  return y;
}

// ONNX AveragePool (floor mode): the mean over the window, divided by k^2 or, when
// count_include_pad is 0, by the pixels of the window inside the image.
Image reference_pool(const Image& x, size_t k, size_t stride, std::array<size_t, 4> pad, bool count_include_pad) {
  Image y{x.c, (x.h + pad[0] + pad[2] - k) / stride + 1, (x.w + pad[1] + pad[3] - k) / stride + 1, {}};
  for (size_t c = 0; c < x.c; ++c)
    for (size_t oy = 0; oy < y.h; ++oy)
      for (size_t ox = 0; ox < y.w; ++ox) {
        double sum = 0, inside = 0;
        for (size_t ky = 0; ky < k; ++ky)
          for (size_t kx = 0; kx < k; ++kx) {
            const long iy = static_cast<long>(oy * stride + ky) - static_cast<long>(pad[0]);
            const long ix = static_cast<long>(ox * stride + kx) - static_cast<long>(pad[1]);
            if (iy < 0 || ix < 0 || iy >= static_cast<long>(x.h) || ix >= static_cast<long>(x.w)) continue;
            sum += x.v[(c * x.h + static_cast<size_t>(iy)) * x.w + static_cast<size_t>(ix)];
            inside += 1;
          }
        y.v.push_back(sum / (count_include_pad ? static_cast<double>(k * k) : inside));
      }
  return y;
}

Image reference_square(Image x) {
  for (double& v : x.v) v *= v;
  return x;
}

Image reference_global_pool(const Image& x) {
  Image y{x.c, 1, 1, std::vector<double>(x.c, 0.0)};
  for (size_t c = 0; c < x.c; ++c) {
    for (size_t i = 0; i < x.h * x.w; ++i) y.v[c] += x.v[c * x.h * x.w + i];
    y.v[c] /= static_cast<double>(x.h * x.w);
  }
  return y;
}

// Gemm with transB = 1: y = W x + b.
std::vector<double> reference_gemm(const std::vector<double>& x, const std::vector<float>& w,
                                   const std::vector<float>& b) {
  std::vector<double> y(b.begin(), b.end());
  for (size_t o = 0; o < y.size(); ++o)
    for (size_t i = 0; i < x.size(); ++i) y[o] += static_cast<double>(w[o * x.size() + i]) * x[i];
  return y;
}

// Weights that are not alike: a fixed pseudo-random sequence in [-0.5, 0.5).
std::vector<float> values(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) - 0.5f;
  }
  return v;
}

Image test_image(size_t c, size_t h, size_t w, uint32_t seed) {
  Image x{c, h, w, {}};
  for (float f : values(c * h * w, seed)) x.v.push_back(2.0 * f);
  return x;
}

void expect_outputs_near(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12 * (1 + std::fabs(want[i]))) << i;
}

onnx::NodeProto* gemm_trans_b(Builder& b, const std::string& in, const std::string& w, const std::string& bias,
                              const std::string& out) {
  auto* n = b.node("Gemm", {in, w, bias}, out);
  Builder::integer(n, "transB", 1);
  return n;
}

// [1, 3, 9, 8] -> Conv 3->4 (k 3, stride 2, SAME_UPPER) -> x*x -> Conv 4->2 (k 3, pads
// 1,0,0,1) -> AveragePool (k 2, stride 1, pads 1,1,0,0, count_include_pad 0) ->
// GlobalAveragePool -> Flatten -> Gemm 2->3.
TEST(OnnxImport, MultiChannelConvPoolChainMatchesTheReference) {
  const auto w1 = values(4 * 3 * 9, 1), b1 = values(4, 2), w2 = values(2 * 4 * 9, 3), b2 = values(2, 4);
  const auto fc = values(3 * 2, 5), fb = values(3, 6);
  Builder b({1, 3, 9, 8});
  b.tensor("w1", {4, 3, 3, 3}, w1);
  b.tensor("b1", {4}, b1);
  b.tensor("w2", {2, 4, 3, 3}, w2);
  b.tensor("b2", {2}, b2);
  b.tensor("fc", {3, 2}, fc);
  b.tensor("fb", {3}, fb);
  auto* c1 = b.node("Conv", {"x", "w1", "b1"}, "c1");
  Builder::ints(c1, "strides", {2, 2});
  Builder::text(c1, "auto_pad", "SAME_UPPER");
  b.node("Mul", {"c1", "c1"}, "sq");
  auto* c2 = b.node("Conv", {"sq", "w2", "b2"}, "c2");
  Builder::ints(c2, "pads", {1, 0, 0, 1});
  Builder::ints(c2, "kernel_shape", {3, 3});
  auto* pool = b.node("AveragePool", {"c2"}, "p");
  Builder::ints(pool, "kernel_shape", {2, 2});
  Builder::ints(pool, "strides", {1, 1});
  Builder::ints(pool, "pads", {1, 1, 0, 0});  // count_include_pad: ONNX's default 0
  b.node("GlobalAveragePool", {"p"}, "g");
  b.node("Flatten", {"g"}, "f");
  gemm_trans_b(b, "f", "fc", "fb", "y");
  const Sequential m = nn::import_onnx_bytes(b.bytes("y"));

  EXPECT_EQ(m.channels(), 3u);
  EXPECT_EQ(m.input_size(), 3u * 9 * 8);
  ASSERT_EQ(kinds(m), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::Square, LayerKind::Conv2d,
                                              LayerKind::AvgPool2d, LayerKind::GlobalAvgPool, LayerKind::Flatten,
                                              LayerKind::Linear}));
  // SAME_UPPER, stride 2: 9 rows -> 5 need 2 pad rows (1 + 1); 8 columns -> 4 need 1 (0 + 1, at the end).
  EXPECT_EQ(m.layers()[0].pad, (nn::Padding{1, 0, 1, 1}));
  EXPECT_EQ(m.layers()[0].in, 3u);
  EXPECT_EQ(m.layers()[2].in, 4u);
  EXPECT_EQ(m.layers()[2].pad, (nn::Padding{1, 0, 0, 1}));
  EXPECT_FALSE(m.layers()[3].count_include_pad);

  for (uint32_t seed : {11u, 12u, 13u}) {
    const Image x = test_image(3, 9, 8, seed);
    Image t = reference_conv(x, w1, b1, 4, 3, 2, {1, 0, 1, 1});
    ASSERT_EQ(t.h * 10 + t.w, 54u);  // 5 x 4
    t = reference_conv(reference_square(t), w2, b2, 2, 3, 1, {1, 0, 0, 1});
    t = reference_global_pool(reference_pool(t, 2, 1, {1, 1, 0, 0}, false));
    expect_outputs_near(m.forward(x.v), reference_gemm(t.v, fc, fb));
  }
}

// [2, 6, 5] (rank 3: C x H x W) -> Conv 2->3 (k 3, stride 2, SAME_LOWER) -> Pad 1 on each
// side of H and W -> AveragePool (k 3, stride 2, count_include_pad 0: the Pad's zeros
// still count) -> Flatten (axis 0) -> Gemm 12->2.
TEST(OnnxImport, RankThreeInputSameLowerAndAFoldedPad) {
  const auto w1 = values(3 * 2 * 9, 21), b1 = values(3, 22), fc = values(2 * 12, 23), fb = values(2, 24);
  Builder b({2, 6, 5});
  b.tensor("w1", {3, 2, 3, 3}, w1);
  b.tensor("b1", {3}, b1);
  b.tensor("fc", {2, 12}, fc);
  b.tensor("fb", {2}, fb);
  auto* c1 = b.node("Conv", {"x", "w1", "b1"}, "c1");
  Builder::ints(c1, "strides", {2, 2});
  Builder::text(c1, "auto_pad", "SAME_LOWER");
  auto pads = b.g->add_initializer();
  pads->set_name("pads");
  pads->set_data_type(onnx::TensorProto::INT64);
  pads->add_dims(6);
  for (int64_t p : {0, 1, 1, 0, 1, 1}) pads->add_int64_data(p);  // [C, H, W] begins, then ends
  b.node("Pad", {"c1", "pads"}, "padded");
  auto* pool = b.node("AveragePool", {"padded"}, "p");
  Builder::ints(pool, "kernel_shape", {3, 3});
  Builder::ints(pool, "strides", {2, 2});
  auto* flat = b.node("Flatten", {"p"}, "f");
  Builder::integer(flat, "axis", 0);
  gemm_trans_b(b, "f", "fc", "fb", "y");
  const Sequential m = nn::import_onnx_bytes(b.bytes("y"));

  EXPECT_EQ(m.channels(), 2u);
  EXPECT_EQ(m.height(), 6u);
  EXPECT_EQ(m.width(), 5u);
  ASSERT_EQ(kinds(m), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::AvgPool2d, LayerKind::Flatten,
                                              LayerKind::Linear}));
  // SAME_LOWER, stride 2: 6 rows -> 3 need 1 pad row, at the beginning; 5 columns -> 3 need 2.
  EXPECT_EQ(m.layers()[0].pad, (nn::Padding{1, 1, 0, 1}));
  EXPECT_EQ(m.layers()[1].pad, nn::Padding::same(1));
  EXPECT_TRUE(m.layers()[1].count_include_pad);

  for (uint32_t seed : {31u, 32u}) {
    const Image x = test_image(2, 6, 5, seed);
    const Image c = reference_conv(x, w1, b1, 3, 3, 2, {1, 1, 0, 1});
    const Image p = reference_pool(c, 3, 2, {1, 1, 1, 1}, true);
    ASSERT_EQ(p.v.size(), 12u);
    expect_outputs_near(m.forward(x.v), reference_gemm(p.v, fc, fb));
  }
}

// AveragePool with stride != kernel and pads, both count_include_pad values, on 2 channels.
TEST(OnnxImport, AveragePoolStridesPadsAndCountIncludePad) {
  for (int64_t include : {0, 1}) {
    const auto fc = values(3 * 2 * 4 * 3, 41), fb = values(3, 42);
    Builder b({1, 2, 7, 5});
    b.tensor("fc", {3, 24}, fc);
    b.tensor("fb", {3}, fb);
    auto* pool = b.node("AveragePool", {"x"}, "p");
    Builder::ints(pool, "kernel_shape", {3, 3});
    Builder::ints(pool, "strides", {2, 2});
    Builder::ints(pool, "pads", {1, 2, 2, 1});
    Builder::integer(pool, "count_include_pad", include);
    b.node("Flatten", {"p"}, "f");
    gemm_trans_b(b, "f", "fc", "fb", "y");
    const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
    ASSERT_EQ(m.layers()[0].kind, LayerKind::AvgPool2d);
    EXPECT_EQ(m.layers()[0].stride, 2u);
    EXPECT_EQ(m.layers()[0].pad, (nn::Padding{1, 2, 2, 1}));
    EXPECT_EQ(m.layers()[0].count_include_pad, include == 1);
    const Image x = test_image(2, 7, 5, 43);
    const Image p = reference_pool(x, 3, 2, {1, 2, 2, 1}, include == 1);  // 2 x 4 x 3
    ASSERT_EQ(p.v.size(), 24u);
    expect_outputs_near(m.forward(x.v), reference_gemm(p.v, fc, fb));
  }
}

// A non-zero Pad folds into the Conv that reads it (its own pads add up).
TEST(OnnxImport, PadFoldsIntoTheNextConv) {
  const auto w = values(2 * 1 * 9, 51), bias = values(2, 52);
  Builder b({1, 1, 5, 5});
  b.tensor("w", {2, 1, 3, 3}, w);
  b.tensor("wb", {2}, bias);
  auto* pad = b.node("Pad", {"x"}, "padded");
  Builder::ints(pad, "pads", {0, 0, 1, 0, 0, 0, 0, 1});  // opset < 11 style: the attribute
  auto* conv = b.node("Conv", {"padded", "w", "wb"}, "y");
  Builder::ints(conv, "pads", {0, 1, 1, 0});
  const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
  ASSERT_EQ(m.layers().size(), 1u);
  EXPECT_EQ(m.layers()[0].pad, (nn::Padding{1, 1, 1, 1}));
  const Image x = test_image(1, 5, 5, 53);
  expect_outputs_near(m.forward(x.v), reference_conv(x, w, bias, 2, 3, 1, {1, 1, 1, 1}).v);
}

// ---- grouped convolutions ----

// [1, C_in, 7, 6] -> Conv C_in -> C_out (group g, k 3, stride 2, pads 1) -> x*x ->
// Flatten -> Gemm: depthwise (g = C_in = C_out), a depthwise multiplier of 2, and
// group 2 of 4 -> 4 channels.
TEST(OnnxImport, GroupedAndDepthwiseConvsMatchTheReference) {
  struct Case {
    size_t in, out, group;
  };
  for (const Case c : {Case{3, 3, 3}, Case{3, 6, 3}, Case{4, 4, 2}}) {
    SCOPED_TRACE("C_in " + std::to_string(c.in) + ", C_out " + std::to_string(c.out) + ", group " +
                 std::to_string(c.group));
    const size_t per_in = c.in / c.group, features = c.out * 4 * 3;
    const auto w = values(c.out * per_in * 9, 101), bias = values(c.out, 102);
    const auto fc = values(2 * features, 103), fb = values(2, 104);
    Builder b({1, static_cast<int64_t>(c.in), 7, 6});
    b.tensor("w", {static_cast<int64_t>(c.out), static_cast<int64_t>(per_in), 3, 3}, w);
    b.tensor("wb", {static_cast<int64_t>(c.out)}, bias);
    b.tensor("fc", {2, static_cast<int64_t>(features)}, fc);
    b.tensor("fb", {2}, fb);
    auto* conv = b.node("Conv", {"x", "w", "wb"}, "c");
    Builder::integer(conv, "group", static_cast<int64_t>(c.group));
    Builder::ints(conv, "strides", {2, 2});
    Builder::ints(conv, "pads", {1, 1, 1, 1});
    b.node("Mul", {"c", "c"}, "sq");
    b.node("Flatten", {"sq"}, "f");
    gemm_trans_b(b, "f", "fc", "fb", "y");
    const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
    ASSERT_EQ(kinds(m), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::Square, LayerKind::Flatten,
                                                LayerKind::Linear}));
    // The dense weight: the group's block holds ONNX's weights, every other block zeros.
    const auto& dense = m.layers()[0].weight;
    ASSERT_EQ(m.layers()[0].in, c.in);
    ASSERT_EQ(dense.size(), c.out * c.in * 9);
    for (size_t o = 0; o < c.out; ++o)
      for (size_t i = 0; i < c.in; ++i)
        for (size_t t = 0; t < 9; ++t) {
          const bool in_group = i / per_in == o / (c.out / c.group);
          const double want = in_group ? static_cast<double>(w[(o * per_in + i % per_in) * 9 + t]) : 0.0;
          EXPECT_EQ(dense[(o * c.in + i) * 9 + t], want) << o << " " << i << " " << t;
        }
    for (uint32_t seed : {105u, 106u}) {
      const Image x = test_image(c.in, 7, 6, seed);
      const Image t = reference_square(reference_conv(x, w, bias, c.out, 3, 2, {1, 1, 1, 1}, c.group));
      ASSERT_EQ(t.v.size(), features);
      expect_outputs_near(m.forward(x.v), reference_gemm(t.v, fc, fb));
    }
  }
}

// ---- BatchNormalization and per-channel constants away from a Conv / Gemm: affine() ----

// A 3x3 Conv with fixed weights and pads (1 on every side unless given): its node and its reference.
struct Conv3 {
  size_t in, out;
  std::vector<float> w, bias;
  Conv3(size_t in_channels, size_t out_channels, uint32_t seed)
      : in(in_channels), out(out_channels), w(values(out * in * 9, seed)), bias(values(out, seed + 1000)) {}
  void add(Builder& b, const std::string& x, const std::string& y, std::array<size_t, 4> pad = {1, 1, 1, 1}) const {
    b.tensor(y + ".w", {static_cast<int64_t>(out), static_cast<int64_t>(in), 3, 3}, w);
    b.tensor(y + ".b", {static_cast<int64_t>(out)}, bias);
    Builder::ints(b.node("Conv", {x, y + ".w", y + ".b"}, y), "pads", std::vector<int64_t>(pad.begin(), pad.end()));
  }
  Image operator()(const Image& x, std::array<size_t, 4> pad = {1, 1, 1, 1}) const {
    return reference_conv(x, w, bias, out, 3, 1, pad);
  }
};

// ONNX BatchNormalization (inference) with its own constants, channel (feature) c of
// x scaled as scale[c] * (x - mean[c]) / sqrt(var[c] + epsilon) + B[c].
struct BatchNorm {
  std::vector<float> scale, bias, mean, var;
  float epsilon = 1e-3f;
  BatchNorm(size_t channels, uint32_t seed)
      : scale(values(channels, seed)), bias(values(channels, seed + 1)), mean(values(channels, seed + 2)),
        var(values(channels, seed + 3)) {
    for (float& s : scale) s += 1.0f;
    for (float& v : var) v = 0.25f + std::fabs(v);
  }
  void add(Builder& b, const std::string& x, const std::string& y) const {
    const std::vector<int64_t> dims = {static_cast<int64_t>(scale.size())};
    b.tensor(y + ".scale", dims, scale);
    b.tensor(y + ".B", dims, bias);
    b.tensor(y + ".mean", dims, mean);
    b.tensor(y + ".var", dims, var);
    auto* n = b.node("BatchNormalization", {x, y + ".scale", y + ".B", y + ".mean", y + ".var"}, y);
    auto* a = n->add_attribute();
    a->set_name("epsilon");
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(epsilon);
  }
  Image operator()(Image x) const {
    const size_t per = x.v.size() / scale.size();
    for (size_t i = 0; i < x.v.size(); ++i) {
      const size_t c = i / per;
      x.v[i] = static_cast<double>(scale[c]) * (x.v[i] - static_cast<double>(mean[c])) /
                   std::sqrt(static_cast<double>(var[c]) + static_cast<double>(epsilon)) +
               static_cast<double>(bias[c]);
    }
    return x;
  }
};

// y = a[c] (op) x[c] or x[c] (op) a[c] per channel (feature), as ONNX broadcasts a [C, 1, 1] constant.
Image reference_per_channel(Image x, const std::vector<float>& a, char op, bool const_first = false) {
  const size_t per = x.v.size() / a.size();
  for (size_t i = 0; i < x.v.size(); ++i) {
    const double c = a[i / per];
    double& v = x.v[i];
    if (op == '*') v *= c;
    else if (op == '+') v += c;
    else if (op == '-') v = const_first ? c - v : v - c;
    else v /= c;
  }
  return x;
}

// [1, 3, 6, 6] -> BatchNormalization -> Conv 3->2 (k 3, pads 1) -> Flatten -> Gemm 72->3;
// and on vectors, [1, 5] -> BatchNormalization -> Gemm 5->2.
TEST(OnnxImport, BatchNormOnTheInputIsAnAffineLayer) {
  const BatchNorm bn(3, 111);
  const Conv3 conv(3, 2, 112);
  const auto fc = values(3 * 72, 113), fb = values(3, 114);
  Builder b({1, 3, 6, 6});
  bn.add(b, "x", "n");
  conv.add(b, "n", "c");
  b.node("Flatten", {"c"}, "f");
  b.tensor("fc", {3, 72}, fc);
  b.tensor("fb", {3}, fb);
  gemm_trans_b(b, "f", "fc", "fb", "y");
  const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
  ASSERT_EQ(kinds(m), (std::vector<LayerKind>{LayerKind::Affine, LayerKind::Conv2d, LayerKind::Flatten,
                                              LayerKind::Linear}));
  EXPECT_EQ(m.layers()[0].weight.size(), 3u);
  for (uint32_t seed : {115u, 116u}) {
    const Image x = test_image(3, 6, 6, seed);
    expect_outputs_near(m.forward(x.v), reference_gemm(conv(bn(x)).v, fc, fb));
  }

  const BatchNorm per_feature(5, 117);
  const auto fc2 = values(2 * 5, 118), fb2 = values(2, 119);
  Builder v({1, 5});
  per_feature.add(v, "x", "n");
  v.tensor("fc", {2, 5}, fc2);
  v.tensor("fb", {2}, fb2);
  gemm_trans_b(v, "n", "fc", "fb", "y");
  const Sequential flat = nn::import_onnx_bytes(v.bytes("y"));
  ASSERT_EQ(kinds(flat), (std::vector<LayerKind>{LayerKind::Flatten, LayerKind::Affine, LayerKind::Linear}));
  const Image x = test_image(5, 1, 1, 120);
  expect_outputs_near(flat.forward(x.v), reference_gemm(per_feature(x).v, fc2, fb2));
}

// [1, 2, 8, 8] -> Conv 2->3 (k 3) -> AveragePool 2 -> BatchNormalization -> Mul by a
// [3, 1, 1] constant (joins the BatchNorm: one affine layer) -> x*x -> Flatten -> Gemm 27->2.
TEST(OnnxImport, BatchNormAfterAPoolIsAnAffineLayer) {
  const Conv3 conv(2, 3, 121);
  const BatchNorm bn(3, 122);
  const std::vector<float> gain = {2.0f, -0.5f, 1.25f};
  const auto fc = values(2 * 27, 123), fb = values(2, 124);
  Builder b({1, 2, 8, 8});
  conv.add(b, "x", "c", {});
  auto* pool = b.node("AveragePool", {"c"}, "p");
  Builder::ints(pool, "kernel_shape", {2, 2});
  Builder::ints(pool, "strides", {2, 2});
  bn.add(b, "p", "n");
  b.tensor("gain", {3, 1, 1}, gain);
  b.node("Mul", {"n", "gain"}, "g");
  b.node("Mul", {"g", "g"}, "sq");
  b.node("Flatten", {"sq"}, "f");
  b.tensor("fc", {2, 27}, fc);
  b.tensor("fb", {2}, fb);
  gemm_trans_b(b, "f", "fc", "fb", "y");
  const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
  ASSERT_EQ(kinds(m), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::AvgPool2d, LayerKind::Affine,
                                              LayerKind::Square, LayerKind::Flatten, LayerKind::Linear}));
  for (uint32_t seed : {125u, 126u}) {
    const Image x = test_image(2, 8, 8, seed);
    const Image p = reference_pool(conv(x, {}), 2, 2, {0, 0, 0, 0}, true);
    const Image t = reference_square(reference_per_channel(bn(p), gain, '*'));
    expect_outputs_near(m.forward(x.v), reference_gemm(t.v, fc, fb));
  }
}

// Per-channel constants after a pool: Mul [1, 3, 1, 1], Add [3, 1, 1], then a scalar Sub
// and a Neg: one affine layer. After a GlobalAveragePool and Flatten, per-feature Div [3]
// and Sub from a [1, 3] constant: another, on the flat tensor.
TEST(OnnxImport, PerChannelConstantsAfterAPoolMakeOneAffineLayer) {
  const Conv3 conv(2, 3, 131);
  const std::vector<float> mul = {1.5f, -2.0f, 0.75f}, add = {0.25f, -0.125f, 1.0f};
  const std::vector<float> div = {4.0f, -0.5f, 2.0f}, from = {1.0f, 2.0f, -3.0f};
  const auto fc = values(2 * 3, 132), fb = values(2, 133);
  Builder b({1, 2, 8, 8});
  conv.add(b, "x", "c", {});
  auto* pool = b.node("AveragePool", {"c"}, "p");
  Builder::ints(pool, "kernel_shape", {2, 2});
  Builder::ints(pool, "strides", {2, 2});
  b.tensor("mul", {1, 3, 1, 1}, mul);
  b.tensor("add", {3, 1, 1}, add);
  b.tensor("quarter", {}, {0.25f});
  b.node("Mul", {"mul", "p"}, "m");  // the constant first
  b.node("Add", {"m", "add"}, "a");
  b.node("Sub", {"a", "quarter"}, "s");
  b.node("Neg", {"s"}, "n");
  b.node("Mul", {"n", "n"}, "sq");
  b.node("GlobalAveragePool", {"sq"}, "gp");
  b.node("Flatten", {"gp"}, "f");
  b.tensor("div", {3}, div);
  b.tensor("from", {1, 3}, from);
  b.node("Div", {"f", "div"}, "d");
  b.node("Sub", {"from", "d"}, "r");
  b.tensor("fc", {2, 3}, fc);
  b.tensor("fb", {2}, fb);
  gemm_trans_b(b, "r", "fc", "fb", "y");
  const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
  using K = LayerKind;
  ASSERT_EQ(kinds(m), (std::vector<LayerKind>{K::Conv2d, K::AvgPool2d, K::Affine, K::Square, K::GlobalAvgPool,
                                              K::Flatten, K::Affine, K::Linear}));
  for (uint32_t seed : {134u, 135u}) {
    const Image x = test_image(2, 8, 8, seed);
    Image t = reference_pool(conv(x, {}), 2, 2, {0, 0, 0, 0}, true);
    t = reference_per_channel(reference_per_channel(t, mul, '*'), add, '+');
    for (double& v : t.v) v = -(v - 0.25);
    t = reference_global_pool(reference_square(t));
    t = reference_per_channel(reference_per_channel(t, div, '/'), from, '-', true);
    expect_outputs_near(m.forward(x.v), reference_gemm(t.v, fc, fb));
  }
}

// Scalars alone on the input stay a polynomial (x * 2 + 1: a degree-1 activation, as
// before affine layers); a per-channel constant after them joins them in one affine layer.
TEST(OnnxImport, ScalarsOnTheInputStayAPolynomialUntilAPerChannelConstant) {
  const Conv3 conv(2, 2, 141);
  for (bool per_channel : {false, true}) {
    const std::vector<float> shift = {0.5f, -1.5f};
    Builder b({1, 2, 5, 5});
    b.tensor("two", {}, {2.0f});
    b.tensor("one", {}, {1.0f});
    b.tensor("shift", {2, 1, 1}, shift);
    b.node("Mul", {"x", "two"}, "m");
    b.node("Add", {"m", "one"}, "a");
    if (per_channel) b.node("Add", {"a", "shift"}, "s");
    conv.add(b, per_channel ? "s" : "a", "y");
    const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
    ASSERT_EQ(kinds(m), (std::vector<LayerKind>{per_channel ? LayerKind::Affine : LayerKind::Activation,
                                                LayerKind::Conv2d}));
    if (!per_channel) EXPECT_EQ(m.layers()[0].poly->degree(), 1);
    Image x = test_image(2, 5, 5, 142);
    Image t = x;
    for (double& v : t.v) v = v * 2 + 1;
    if (per_channel) t = reference_per_channel(t, shift, '+');
    const auto got = m.forward(x.v), want = conv(t).v;
    ASSERT_EQ(got.size(), want.size());
    // The degree-1 activation goes through Chebyshev interpolation: equal to rounding.
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
  }
}

TEST(OnnxImport, GroupedConvAndAffineRefusalsNameTheNode) {
  // A Conv named "conv" on [1, C, 6, 6] with weight [out, per_in, 3, 3] and `group`.
  auto grouped = [](int64_t channels, int64_t out, int64_t per_in, int64_t group) {
    Builder b({1, channels, 6, 6});
    b.weight("w", {out, per_in, 3, 3});
    auto* n = b.node("Conv", {"x", "w"}, "y");
    n->set_name("conv");
    Builder::integer(n, "group", group);
    return b.bytes("y");
  };
  const std::string at = "node 0 (Conv 'conv'): ";
  ASSERT_NO_THROW(nn::import_onnx_bytes(grouped(4, 4, 2, 2)));
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(grouped(3, 2, 1, 2)); },
                          at + "group 2 must divide the input channels (3) and the output channels (2)"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(grouped(4, 3, 2, 2)); },
                          at + "group 2 must divide the input channels (4) and the output channels (3)"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(grouped(4, 4, 2, 0)); }, at + "group must be >= 1, got 0"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(grouped(4, 4, 1, 2)); },
                          at + "the weight has 1 input channels per group, the data has 4 (2 per group)"),
            ErrorCode::InvalidArgument);
  // A depthwise conv over 2^14 channels: 2^14 weights in the file, 2^28 once dense.
  {
    Builder b({1, 1 << 14, 1, 1});
    b.weight("w", {1 << 14, 1, 1, 1});
    Builder::integer(b.node("Conv", {"x", "w"}, "y"), "group", 1 << 14);
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); },
                            "node 0 (Conv): the grouped convolution's dense weight would hold 16384 x 16384 x 1 "
                            "values, over the limit of 2^26"),
              ErrorCode::Unsupported);
  }

  // BatchNormalization on the input: var + epsilon <= 0, too few values, a [C, H, W] input.
  auto input_bn = [](std::vector<int64_t> input, size_t channels, float var) {
    Builder b(input);
    BatchNorm bn(channels, 151);
    bn.var[0] = var;
    bn.add(b, "x", "n");
    b.g->mutable_node(0)->set_name("bn");
    b.node("Mul", {"n", "n"}, "y");
    return b.bytes("y");
  };
  ASSERT_NO_THROW(nn::import_onnx_bytes(input_bn({1, 2, 4, 4}, 2, 1.0f)));
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(input_bn({1, 2, 4, 4}, 2, -1.0f)); },
                          "node 0 (BatchNormalization 'bn'): var + epsilon must be finite and > 0 (channel 0)"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(input_bn({1, 3, 4, 4}, 2, 1.0f)); },
                          "node 0 (BatchNormalization 'bn'): scale, B, mean and var need 3 values (one per channel), "
                          "got 2"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(input_bn({2, 4, 4}, 2, 1.0f)); },
                          "node 0 (BatchNormalization 'bn'): BatchNormalization of a [C, H, W] tensor"),
            ErrorCode::Unsupported);

  // Per-channel constants away from a layer: a division by zero, a constant by the data,
  // a shape that is not per channel.
  auto per_channel = [](const std::string& op, std::vector<int64_t> dims, std::vector<float> v, bool const_first) {
    Builder b({1, 2, 4, 4});
    b.tensor("k", dims, v);
    b.node(op, const_first ? std::vector<std::string>{"k", "x"} : std::vector<std::string>{"x", "k"}, "y");
    b.g->mutable_node(0)->set_name("op");
    return b.bytes("y");
  };
  ASSERT_NO_THROW(nn::import_onnx_bytes(per_channel("Div", {2, 1, 1}, {2, 4}, false)));
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(per_channel("Div", {2, 1, 1}, {2, 0}, false)); },
                          "node 0 (Div 'op'): division by a tensor or by zero"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(per_channel("Div", {2, 1, 1}, {2, 4}, true)); },
                          "node 0 (Div 'op'): division by a tensor or by zero"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(per_channel("Mul", {2, 1, 4}, std::vector<float>(8, 1), false)); },
                          "node 0 (Mul 'op'): constant of shape not broadcast per channel"),
            ErrorCode::Unsupported);
}

// ---- residual blocks: an Add of the chain and an earlier tensor of it ----

Image reference_add(Image a, const Image& b) {
  for (size_t i = 0; i < a.v.size(); ++i) a.v[i] += b.v[i];
  return a;
}

// A 3x3 Conv with pads 1 (same size) and fixed weights: its node and its reference.
struct SameConv {
  size_t in, out;
  std::vector<float> w, bias;
  SameConv(size_t in_channels, size_t out_channels, uint32_t seed)
      : in(in_channels), out(out_channels), w(values(out * in * 9, seed)), bias(values(out, seed + 1000)) {}
  void add(Builder& b, const std::string& x, const std::string& y) const {
    b.tensor(y + ".w", {static_cast<int64_t>(out), static_cast<int64_t>(in), 3, 3}, w);
    b.tensor(y + ".b", {static_cast<int64_t>(out)}, bias);
    Builder::ints(b.node("Conv", {x, y + ".w", y + ".b"}, y), "pads", {1, 1, 1, 1});
  }
  Image operator()(const Image& x) const { return reference_conv(x, w, bias, out, 3, 1, {1, 1, 1, 1}); }
};

// [1, 2, 6, 6] -> Conv -> x*x -> [Conv -> x*x -> Conv] + skip -> GlobalAveragePool ->
// Flatten -> Gemm 3->4, with the Add's inputs in both orders.
TEST(OnnxImport, ResidualBlockMatchesTheReference) {
  const SameConv stem(2, 3, 61), conv_a(3, 3, 62), conv_b(3, 3, 63);
  const auto fc = values(4 * 3, 64), fb = values(4, 65);
  for (bool skip_first : {false, true}) {
    Builder b({1, 2, 6, 6});
    stem.add(b, "x", "s");
    b.node("Mul", {"s", "s"}, "sq");  // the skip: a polynomial, made a layer before the block
    conv_a.add(b, "sq", "a");
    b.node("Mul", {"a", "a"}, "a2");
    conv_b.add(b, "a2", "c");
    b.node("Add", skip_first ? std::vector<std::string>{"sq", "c"} : std::vector<std::string>{"c", "sq"}, "r");
    b.node("GlobalAveragePool", {"r"}, "g");
    b.node("Flatten", {"g"}, "f");
    b.tensor("fc", {4, 3}, fc);
    b.tensor("fb", {4}, fb);
    gemm_trans_b(b, "f", "fc", "fb", "y");
    const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
    ASSERT_EQ(kinds(m), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::Square, LayerKind::ResidualBegin,
                                                LayerKind::Conv2d, LayerKind::Square, LayerKind::Conv2d,
                                                LayerKind::ResidualAdd, LayerKind::GlobalAvgPool,
                                                LayerKind::Flatten, LayerKind::Linear}))
        << "skip first: " << skip_first;
    for (uint32_t seed : {66u, 67u}) {
      const Image x = test_image(2, 6, 6, seed);
      const Image t = reference_square(stem(x));
      const Image r = reference_add(conv_b(reference_square(conv_a(t))), t);
      expect_outputs_near(m.forward(x.v), reference_gemm(reference_global_pool(r).v, fc, fb));
    }
  }
}

// [1, 2, 5, 5], two channels throughout:
//   r1 = x + (conv1 x)^2                      the graph input as the skip
//   r2 = Sum(conv2 r1, r1)                    a second block right after the first
//   r4 = conv5(0.5 conv4(c3) + c3) + r2       with c3 = conv3 r2: nested blocks, the 0.5
//                                             folded into conv4 inside the inner one
//   r6 = conv7(conv6 r4 + r4) + r4            two nested blocks that start at one tensor
//   -> Flatten -> Gemm 50->3
TEST(OnnxImport, SequentialAndNestedResidualBlocksMatchTheReference) {
  std::vector<SameConv> conv;
  for (uint32_t i = 0; i < 7; ++i) conv.emplace_back(2, 2, 71 + i);
  const auto fc = values(3 * 50, 79), fb = values(3, 80);
  Builder b({1, 2, 5, 5});
  conv[0].add(b, "x", "c1");
  b.node("Mul", {"c1", "c1"}, "a");
  b.node("Add", {"x", "a"}, "r1");
  conv[1].add(b, "r1", "c2");
  b.node("Sum", {"c2", "r1"}, "r2");
  conv[2].add(b, "r2", "c3");
  conv[3].add(b, "c3", "c4");
  b.tensor("half", {}, {0.5f});
  b.node("Mul", {"c4", "half"}, "h");
  b.node("Add", {"h", "c3"}, "r3");
  conv[4].add(b, "r3", "c5");
  b.node("Add", {"c5", "r2"}, "r4");
  conv[5].add(b, "r4", "c6");
  b.node("Add", {"c6", "r4"}, "r5");
  conv[6].add(b, "r5", "c7");
  b.node("Add", {"c7", "r4"}, "r6");
  b.node("Flatten", {"r6"}, "f");
  b.tensor("fc", {3, 50}, fc);
  b.tensor("fb", {3}, fb);
  gemm_trans_b(b, "f", "fc", "fb", "y");
  const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
  using K = LayerKind;
  const K begin = K::ResidualBegin, add = K::ResidualAdd, conv2d = K::Conv2d;
  EXPECT_EQ(kinds(m), (std::vector<LayerKind>{begin,  conv2d, K::Square, add,    begin, conv2d, add,  begin,
                                              conv2d, begin,  conv2d,    add,    conv2d, add,   begin, begin,
                                              conv2d, add,    conv2d,    add,    K::Flatten, K::Linear}));
  EXPECT_EQ(m.open_residuals(), 0u);
  for (uint32_t seed : {81u, 82u}) {
    const Image x = test_image(2, 5, 5, seed);
    const Image r1 = reference_add(x, reference_square(conv[0](x)));
    const Image r2 = reference_add(conv[1](r1), r1);
    const Image c3 = conv[2](r2);
    Image h = conv[3](c3);
    for (double& v : h.v) v *= 0.5f;
    const Image r4 = reference_add(conv[4](reference_add(h, c3)), r2);
    const Image r6 = reference_add(conv[6](reference_add(conv[5](r4), r4)), r4);
    expect_outputs_near(m.forward(x.v), reference_gemm(r6.v, fc, fb));
  }
}

// Gemm with transA = 1 reads the data as a column: Reshape (-1, 1), then A^T B.
TEST(OnnxImport, GemmTransAReadsAColumn) {
  const auto w = values(6 * 3, 141), bias = values(3, 142);
  auto graph = [&](bool reshape_column, int64_t trans_a) {
    Builder b({1, 6});
    b.tensor("shape", {2}, {reshape_column ? -1.0f : 1.0f, reshape_column ? 1.0f : 6.0f});
    b.node("Reshape", {"x", "shape"}, "col");
    b.tensor("w", {6, 3}, w);
    b.tensor("b", {3}, bias);
    Builder::integer(b.node("Gemm", {"col", "w", "b"}, "y"), "transA", trans_a);
    return b.bytes("y");
  };
  const Sequential m = nn::import_onnx_bytes(graph(true, 1));
  const auto x = values(6, 143);
  std::vector<double> xd(x.begin(), x.end()), want(3);
  for (size_t o = 0; o < 3; ++o) {
    want[o] = bias[o];
    for (size_t i = 0; i < 6; ++i) want[o] += static_cast<double>(w[i * 3 + o]) * xd[i];
  }
  expect_outputs_near(m.forward(xd), want);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(graph(false, 1)); }, "transA = 1 needs the data as a column"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(graph(true, 0)); }, "needs transA = 1 to read it"),
            ErrorCode::Unsupported);
}

// A downsampling block with a projection shortcut: [1, 2, 6, 6] -> Conv 2->3 -> x*x ->
// [Conv 3->4 stride 2 -> x*x -> Conv 4->4] + Conv 3->4 1x1 stride 2 (-> BatchNorm) ->
// GlobalAveragePool -> Flatten -> Gemm 4->2, the shortcut before or after the branch in
// node order, and the Add's inputs in both orders.
TEST(OnnxImport, ProjectionShortcutMatchesTheReference) {
  const SameConv stem(2, 3, 121), conv_b(4, 4, 123);
  const auto wa = values(4 * 3 * 9, 122), ba = values(4, 124), wp = values(4 * 3, 125), bp = values(4, 126);
  const BatchNorm bn(4, 127);
  const auto fc = values(2 * 4, 128), fb = values(2, 129);
  for (int variant = 0; variant < 8; ++variant) {
    const bool proj_first = variant & 1, with_bn = variant & 2, proj_left = variant & 4;
    Builder b({1, 2, 6, 6});
    stem.add(b, "x", "s");
    b.node("Mul", {"s", "s"}, "t");
    auto shortcut = [&] {
      b.tensor("wp", {4, 3, 1, 1}, wp);
      b.tensor("bp", {4}, bp);
      Builder::ints(b.node("Conv", {"t", "wp", "bp"}, with_bn ? "p0" : "p"), "strides", {2, 2});
      if (with_bn) bn.add(b, "p0", "p");
    };
    if (proj_first) shortcut();
    b.tensor("wa", {4, 3, 3, 3}, wa);
    b.tensor("ba", {4}, ba);
    auto* ca = b.node("Conv", {"t", "wa", "ba"}, "a");
    Builder::ints(ca, "strides", {2, 2});
    Builder::ints(ca, "pads", {1, 1, 1, 1});
    b.node("Mul", {"a", "a"}, "a2");
    conv_b.add(b, "a2", "c");
    if (!proj_first) shortcut();
    b.node("Add", proj_left ? std::vector<std::string>{"p", "c"} : std::vector<std::string>{"c", "p"}, "r");
    b.node("GlobalAveragePool", {"r"}, "g");
    b.node("Flatten", {"g"}, "f");
    b.tensor("fc", {2, 4}, fc);
    b.tensor("fb", {2}, fb);
    gemm_trans_b(b, "f", "fc", "fb", "y");
    const Sequential m = nn::import_onnx_bytes(b.bytes("y"));
    ASSERT_EQ(kinds(m), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::Square, LayerKind::ResidualBegin,
                                                LayerKind::Conv2d, LayerKind::Square, LayerKind::Conv2d,
                                                LayerKind::ResidualAdd, LayerKind::GlobalAvgPool,
                                                LayerKind::Flatten, LayerKind::Linear}))
        << "variant " << variant;
    EXPECT_TRUE(m.layers()[6].projects());
    for (uint32_t seed : {130u, 131u}) {
      const Image x = test_image(2, 6, 6, seed);
      const Image t = reference_square(stem(x));
      Image p = reference_conv(t, wp, bp, 4, 1, 2, {0, 0, 0, 0});
      if (with_bn) p = bn(p);
      const Image r = reference_add(conv_b(reference_square(reference_conv(t, wa, ba, 4, 3, 2, {1, 1, 1, 1}))), p);
      expect_outputs_near(m.forward(x.v), reference_gemm(reference_global_pool(r).v, fc, fb));
    }
  }
}

TEST(OnnxImport, UnsupportedResidualGraphsAreRefusedWithTheNodeNamed) {
  const SameConv main(2, 2, 91), proj(2, 2, 92), third(2, 2, 93);
  // A skip path of two layers (a Conv, then x*x: not a projection shortcut), before or
  // after the main path in node order.
  for (bool proj_first : {false, true}) {
    Builder b({1, 2, 6, 6});
    if (proj_first) {
      proj.add(b, "x", "p0");
      b.node("Mul", {"p0", "p0"}, "p");
    }
    main.add(b, "x", "m");
    b.node("Mul", {"m", "m"}, "sq");
    if (!proj_first) {
      proj.add(b, "x", "p0");
      b.node("Mul", {"p0", "p0"}, "p");
    }
    b.node("Add", {"sq", "p"}, "y")->set_name("join");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); },
                            "(Add 'join'): inputs 'sq' and 'p' come from two branches"),
              ErrorCode::Unsupported)
        << "projection first: " << proj_first;
  }
  // Crossing skips: a + b + ... where b's block opened inside a's.
  {
    Builder b({1, 2, 6, 6});
    main.add(b, "x", "a");
    proj.add(b, "a", "b");
    third.add(b, "b", "c");
    b.node("Add", {"c", "a"}, "j1")->set_name("j1");
    b.node("Add", {"j1", "b"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); },
                            "node 3 (Add 'j1'): the skip input 'a' is not the innermost open residual block's "
                            "(that is 'b')"),
              ErrorCode::Unsupported);
  }
  // A block whose branch changes the shape (a stride-2 Conv): Sequential's check, the node named.
  {
    Builder b({1, 2, 6, 6});
    main.add(b, "x", "a");
    b.tensor("w", {2, 2, 3, 3}, proj.w);
    Builder::ints(b.node("Conv", {"a", "w"}, "s"), "strides", {2, 2});
    b.node("Add", {"s", "a"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 2 (Add): "),
              ErrorCode::InvalidArgument);
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "the shapes must match"),
              ErrorCode::InvalidArgument);
  }
  // A skip into anything but an Add; a Sum of three.
  {
    Builder b({1, 2, 6, 6});
    main.add(b, "x", "a");
    b.node("Mul", {"a", "x"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 1 (Mul): input 'x'"),
              ErrorCode::Unsupported);
  }
  {
    Builder b({1, 2, 6, 6});
    main.add(b, "x", "a");
    b.node("Sum", {"a", "a", "a"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 1 (Sum): Sum of 3 inputs"),
              ErrorCode::Unsupported);
  }
  // Adds within one stretch of the chain stay polynomials: x^2 + x, Sum(x, x) = 2x (folded).
  const auto poly = nn::import_onnx_bytes(conv_then([](Builder& b, const std::string& in) {
    b.node("Mul", {in, in}, "sq");
    b.node("Add", {"sq", in}, "p");
    return std::string("p");
  }));
  EXPECT_EQ(kinds(poly), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::Activation, LayerKind::Flatten,
                                                 LayerKind::Linear}));
  const auto twice = nn::import_onnx_bytes(conv_then([](Builder& b, const std::string& in) {
    b.node("Sum", {in, in}, "p");
    return std::string("p");
  }));
  EXPECT_EQ(kinds(twice), (std::vector<LayerKind>{LayerKind::Conv2d, LayerKind::Flatten, LayerKind::Linear}));
}

// ---- torch-exported CNNs (tools/export_cnn_onnx.py) ----

void expect_relative(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-9 * std::max(1.0, std::fabs(want[i]))) << what << ", output " << i;
}

// LeNet-5 (x*x activations) trained on the digits upsampled to 16x16, against torch's
// float64 logits of the 400 test images.
TEST(OnnxImport, LeNetDigitsMatchesTorch) {
  const Sequential m = nn::import_onnx(kData + "/lenet_digits.onnx");
  using K = LayerKind;
  ASSERT_EQ(kinds(m), (std::vector<LayerKind>{K::Conv2d, K::Square, K::AvgPool2d, K::Conv2d, K::Square,
                                              K::AvgPool2d, K::Flatten, K::Linear}));
  EXPECT_EQ(m.input_size(), 256u);
  const auto& l = m.layers();
  EXPECT_EQ(l[0].out, 6u);
  EXPECT_EQ(l[0].kernel, 5u);
  EXPECT_EQ(l[0].pad, nn::Padding::same(2));
  EXPECT_EQ(l[2].kernel, 2u);
  EXPECT_EQ(l[2].stride, 2u);
  EXPECT_EQ(l[3].in, 6u);
  EXPECT_EQ(l[3].out, 16u);
  EXPECT_TRUE(l[3].pad.none());
  EXPECT_EQ(l[7].in, 64u);
  EXPECT_EQ(l[7].out, 10u);

  const auto rows = number_rows(kData + "/lenet_digits_expected.txt");  // index label predicted logits
  ASSERT_EQ(rows.size(), 400u);
  std::ifstream f(kData + "/digits_test_16x16.u8", std::ios::binary);
  std::vector<unsigned char> pixels(400 * 256);
  ASSERT_TRUE(f.read(reinterpret_cast<char*>(pixels.data()), static_cast<std::streamsize>(pixels.size())));
  size_t correct = 0;
  for (size_t k = 0; k < rows.size(); ++k) {
    ASSERT_EQ(rows[k].size(), 13u);
    std::vector<double> image(256);
    for (size_t i = 0; i < 256; ++i) image[i] = pixels[k * 256 + i] / 255.0;
    const auto out = m.forward(image);
    expect_relative(out, std::vector<double>(rows[k].begin() + 3, rows[k].end()), "image " + std::to_string(k));
    const auto predicted = static_cast<double>(std::max_element(out.begin(), out.end()) - out.begin());
    EXPECT_EQ(predicted, rows[k][2]) << "image " << k;
    correct += predicted == rows[k][1];
  }
  EXPECT_GE(correct, 360u) << "90% of the test images";
}

// A 3x32x32 net with one residual block and random weights, against torch's float64 outputs.
TEST(OnnxImport, RgbResNetMatchesTorch) {
  const Sequential m = nn::import_onnx(kData + "/rgb_resnet.onnx");
  using K = LayerKind;
  ASSERT_EQ(kinds(m), (std::vector<LayerKind>{K::Conv2d, K::Square, K::ResidualBegin, K::Conv2d, K::Square,
                                              K::Conv2d, K::ResidualAdd, K::GlobalAvgPool, K::Flatten,
                                              K::Linear}));
  EXPECT_EQ(m.channels(), 3u);
  EXPECT_EQ(m.height(), 32u);
  EXPECT_EQ(m.width(), 32u);
  for (size_t i : {0u, 3u, 5u}) {
    EXPECT_EQ(m.layers()[i].out, 8u) << i;
    EXPECT_EQ(m.layers()[i].kernel, 3u) << i;
    EXPECT_EQ(m.layers()[i].pad, nn::Padding::same(1)) << i;
  }
  EXPECT_EQ(m.layers()[9].in, 8u);
  EXPECT_EQ(m.layers()[9].out, 10u);
  const auto cases = paired_cases(kData + "/rgb_resnet_expected.txt");
  ASSERT_EQ(cases.size(), 4u);
  for (size_t k = 0; k < cases.size(); ++k) {
    ASSERT_EQ(cases[k].input.size(), 3u * 32 * 32);
    expect_relative(m.forward(cases[k].input), cases[k].output, "case " + std::to_string(k));
  }
}

// ResNet's downsampling block from torch (the BatchNorms folded into the convs by the
// export): the 1x1 stride-2 shortcut becomes residual_add's projection.
TEST(OnnxImport, RgbResNetDownsamplingBlockMatchesTorch) {
  const Sequential m = nn::import_onnx(kData + "/rgb_resnet_down.onnx");
  using K = LayerKind;
  ASSERT_EQ(kinds(m), (std::vector<LayerKind>{K::Conv2d, K::Square, K::ResidualBegin, K::Conv2d, K::Square,
                                              K::Conv2d, K::ResidualAdd, K::GlobalAvgPool, K::Flatten,
                                              K::Linear}));
  const nn::Layer& shortcut = m.layers()[6];
  ASSERT_TRUE(shortcut.projects());
  EXPECT_EQ(shortcut.in, 4u);
  EXPECT_EQ(shortcut.out, 8u);
  EXPECT_EQ(shortcut.kernel, 1u);
  EXPECT_EQ(shortcut.stride, 2u);
  EXPECT_EQ(m.layers()[3].stride, 2u);
  const auto cases = paired_cases(kData + "/rgb_resnet_down_expected.txt");
  ASSERT_EQ(cases.size(), 3u);
  for (size_t k = 0; k < cases.size(); ++k) {
    ASSERT_EQ(cases[k].input.size(), 3u * 16 * 16);
    expect_relative(m.forward(cases[k].input), cases[k].output, "case " + std::to_string(k));
  }
}

// Each refusal is a veil::Error that names the node.
TEST(OnnxImport, UnsupportedWindowsAreRefusedWithTheNodeNamed) {
  // One Conv (weight [2, in, k, k]) named "conv" on a [1, 3, 6, 6] input, spoiled by `edit`.
  auto conv = [](const std::function<void(onnx::NodeProto*)>& edit, int64_t in = 3, int64_t k = 3,
                 std::vector<int64_t> input = {1, 3, 6, 6}) {
    Builder b(input);
    b.weight("w", {2, in, k, k});
    auto* n = b.node("Conv", {"x", "w"}, "y");
    n->set_name("conv");
    edit(n);
    return b.bytes("y");
  };
  auto none = [](onnx::NodeProto*) {};
  ASSERT_NO_THROW(nn::import_onnx_bytes(conv(none)));
  const std::string at = "node 0 (Conv 'conv'): ";
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(conv([](auto* n) { Builder::integer(n, "group", 3); })); },
                          at + "group 3 must divide the input channels (3) and the output channels (2)"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(conv([](auto* n) { Builder::ints(n, "dilations", {2, 2}); })); },
                          at + "dilations must be 1, got 2"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(conv([](auto* n) { Builder::ints(n, "strides", {1, 2}); })); },
                          at + "strides must be 2 equal values"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] {
              nn::import_onnx_bytes(conv([](auto* n) {
                Builder::ints(n, "pads", {1, 1, 1, 1});
                Builder::text(n, "auto_pad", "SAME_UPPER");
              }));
            }, at + "pads given together with auto_pad"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(conv([](auto* n) { Builder::text(n, "auto_pad", "FULL"); })); },
                          at + "auto_pad 'FULL'"),
            ErrorCode::Unsupported);
  // The weight reads 2 channels, the input has 3.
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(conv(none, 2)); },
                          at + "the weight has 2 input channels, the data has 3"),
            ErrorCode::InvalidArgument);
  // A 5x5 kernel on a 3x3 image padded by 1 above only: 4 rows.
  EXPECT_EQ(error_code_of([&] {
              nn::import_onnx_bytes(conv([](auto* n) { Builder::ints(n, "pads", {1, 1, 0, 1}); }, 1, 5,
                                         {1, 1, 3, 3}));
            }, at),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(conv(none, 1, 5, {1, 1, 3, 3})); }, "larger than the padded"),
            ErrorCode::InvalidArgument);

  // AveragePool: ceil_mode 1; a Pad before a pool whose own pads are excluded from the count.
  {
    Builder b({1, 2, 6, 6});
    auto* n = b.node("AveragePool", {"x"}, "y");
    n->set_name("pool");
    Builder::ints(n, "kernel_shape", {2, 2});
    Builder::integer(n, "ceil_mode", 1);
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 0 (AveragePool 'pool'): ceil_mode 1"),
              ErrorCode::Unsupported);
  }
  {
    Builder b({1, 2, 6, 6});
    auto* pad = b.node("Pad", {"x"}, "padded");
    Builder::ints(pad, "pads", {0, 0, 1, 1, 0, 0, 1, 1});
    auto* n = b.node("AveragePool", {"padded"}, "y");
    Builder::ints(n, "kernel_shape", {3, 3});
    Builder::ints(n, "pads", {1, 1, 0, 0});
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 1 (AveragePool): a Pad before"),
              ErrorCode::Unsupported);
  }
  // Pad: into anything but a Conv / AveragePool, a non-zero value, the channels, a Pad
  // plus pads reaching the kernel.
  {
    Builder b({1, 2, 6, 6});
    auto* pad = b.node("Pad", {"x"}, "padded");
    Builder::ints(pad, "pads", {0, 0, 1, 1, 0, 0, 1, 1});
    b.node("Mul", {"padded", "padded"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 1 (Mul): input 'padded'"),
              ErrorCode::Unsupported);
  }
  auto padded_conv = [](std::vector<int64_t> pads, float value) {
    Builder b({1, 1, 6, 6});
    b.weight("w", {2, 1, 3, 3});
    auto* pad = b.node("Pad", {"x"}, "padded");
    Builder::ints(pad, "pads", pads);
    auto* v = pad->add_attribute();
    v->set_name("value");
    v->set_type(onnx::AttributeProto::FLOAT);
    v->set_f(value);
    auto* conv = b.node("Conv", {"padded", "w"}, "y");
    Builder::ints(conv, "pads", {1, 1, 1, 1});
    return b.bytes("y");
  };
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(padded_conv({0, 0, 1, 0, 0, 0, 0, 0}, 0.5f)); },
                          "node 0 (Pad): the pad value must be 0"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(padded_conv({0, 1, 0, 0, 0, 0, 0, 0}, 0)); },
                          "node 0 (Pad): only the height and width"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(padded_conv({0, 0, -1, 0, 0, 0, 0, 0}, 0)); },
                          "node 0 (Pad): pads must be in [0, 2^20] (no cropping)"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(padded_conv({0, 0, 2, 0, 0, 0, 0, 0}, 0)); },
                          "node 1 (Conv): the padding (3, 1, 1, 1 with the Pad before it)"),
            ErrorCode::Unsupported);
  ASSERT_NO_THROW(nn::import_onnx_bytes(padded_conv({0, 0, 1, 0, 0, 0, 0, 0}, 0)));

  // Flatten of a [C, H, W] input with axis 1 would give C rows; of [1, C, H, W] with axis 0, one row
  // of the whole batch.
  {
    Builder b({2, 4, 4});
    b.node("Flatten", {"x"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 0 (Flatten): axis must be 0"),
              ErrorCode::Unsupported);
  }
  {
    Builder b({1, 2, 4, 4});
    Builder::integer(b.node("Flatten", {"x"}, "y"), "axis", 0);
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 0 (Flatten): axis must be 1"),
              ErrorCode::Unsupported);
  }
  // GlobalAveragePool of a flat vector.
  {
    Builder b({1, 8});
    b.node("GlobalAveragePool", {"x"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "node 0 (GlobalAveragePool)"),
              ErrorCode::InvalidArgument);
  }
}

// The fuzzer's reproducers (tests/data/fuzz/, found with libFuzzer + clang UBSan at
// 33286bd): each must end in a clear veil::Error, without undefined behaviour or a
// large allocation.
TEST(OnnxImport, FuzzerFindingsGiveClearErrors) {
  // Pad with pads = 1e30 (float): no float -> int64 conversion out of range.
  EXPECT_EQ(error_code_of([&] { nn::import_onnx(kData + "/fuzz/pad_huge_float.onnx"); }, "pads must be integers"),
            ErrorCode::Unsupported);
  // Flatten of 2^20 x 2^20, MatMul with an empty matrix: out * in used to wrap.
  const ErrorCode linear = error_code_of([&] { nn::import_onnx(kData + "/fuzz/linear_size_overflow.onnx"); });
  EXPECT_TRUE(linear == ErrorCode::Unsupported || linear == ErrorCode::InvalidArgument ||
              linear == ErrorCode::Serialization);
  // The same through Gemm + Add: refused before ~2.7 GB are allocated.
  const ErrorCode gemm = error_code_of([&] { nn::import_onnx(kData + "/fuzz/gemm_size_overflow_3gb.onnx"); });
  EXPECT_TRUE(gemm == ErrorCode::Unsupported || gemm == ErrorCode::InvalidArgument || gemm == ErrorCode::Serialization);
}

TEST(OnnxImport, HostileFilesGiveSerializationErrors) {
  const std::string good = conv_then([](Builder& b, const std::string& in) {
    b.node("Mul", {in, in}, "sq");
    return std::string("sq");
  });
  ASSERT_NO_THROW(nn::import_onnx_bytes(good));
  // Truncations (protobuf either fails to parse or yields a graph missing parts).
  for (size_t cut : {size_t{3}, good.size() / 3, good.size() / 2, good.size() - 5}) {
    const ErrorCode code = error_code_of([&] { nn::import_onnx_bytes(good.substr(0, cut)); });
    EXPECT_TRUE(code == ErrorCode::Serialization || code == ErrorCode::Unsupported) << "cut at " << cut;
  }
  EXPECT_VEIL_ERROR(nn::import_onnx_bytes(std::string(200, '\xff')), ErrorCode::Serialization);
  EXPECT_VEIL_ERROR(nn::import_onnx("/nonexistent/model.onnx"), ErrorCode::Serialization);
  nn::OnnxImportOptions small;
  small.max_file_bytes = 100;
  EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(good, small); }, "limit"), ErrorCode::Serialization);
  EXPECT_EQ(error_code_of([&] { nn::import_onnx(kData + "/convnet_digits.onnx", small); }, "limit"),
            ErrorCode::Serialization);

  // Tensor data that does not match its shape, a huge shape, external data, a bad type.
  auto with_weight = [](const std::function<void(onnx::TensorProto*)>& spoil) {
    Builder b;
    auto* w = b.weight("w", {2, 1, 3, 3});
    spoil(w);
    b.node("Conv", {"x", "w"}, "y");
    return b.bytes("y");
  };
  EXPECT_VEIL_ERROR(nn::import_onnx_bytes(with_weight([](onnx::TensorProto* w) { w->add_float_data(1); })),
                    ErrorCode::Serialization);
  EXPECT_VEIL_ERROR(nn::import_onnx_bytes(with_weight([](onnx::TensorProto* w) {
                      w->clear_float_data();
                      w->set_raw_data(std::string(17, '\0'));
                    })),
                    ErrorCode::Serialization);
  EXPECT_VEIL_ERROR(nn::import_onnx_bytes(with_weight([](onnx::TensorProto* w) {
                      w->set_dims(0, int64_t{1} << 40);
                    })),
                    ErrorCode::Serialization);
  EXPECT_VEIL_ERROR(nn::import_onnx_bytes(with_weight([](onnx::TensorProto* w) { w->set_dims(0, -2); })),
                    ErrorCode::Serialization);
  EXPECT_VEIL_ERROR(nn::import_onnx_bytes(with_weight([](onnx::TensorProto* w) {
                      w->set_data_location(onnx::TensorProto::EXTERNAL);
                    })),
                    ErrorCode::Unsupported);
  EXPECT_VEIL_ERROR(nn::import_onnx_bytes(with_weight([](onnx::TensorProto* w) {
                      w->set_data_type(onnx::TensorProto::STRING);
                    })),
                    ErrorCode::Unsupported);
  EXPECT_VEIL_ERROR(nn::import_onnx_bytes(with_weight([](onnx::TensorProto* w) {
                      w->set_float_data(0, std::numeric_limits<float>::quiet_NaN());
                    })),
                    ErrorCode::InvalidArgument);
}

#endif  // VEIL_TEST_ONNX

}  // namespace
}  // namespace veil::test
