// ONNX import (veil::nn::import_onnx): torch-exported models against independent
// references (the hand-written ConvNet and its weights file; torch's float64 outputs
// for a model using every mapped operator), an encrypted run of an imported model,
// and hostile or unsupported files built here with the ONNX protobuf classes.
#include <filesystem>
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

std::vector<OpsCase> ops_cases() {
  std::ifstream in(kData + "/onnx_ops_expected.txt");
  std::vector<OpsCase> cases;
  std::string line;
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    std::vector<double> v;
    for (double x; s >> x;) v.push_back(x);
    rows.push_back(v);
  }
  for (size_t i = 0; i + 1 < rows.size(); i += 2) cases.push_back({rows[i], rows[i + 1]});
  return cases;
}

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
  static void ints(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
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
  // Padding, a branch (x + conv(x) would need the old tensor), an unknown operator.
  EXPECT_EQ(error_code_of([] { nn::import_onnx_bytes(conv_then([](Builder&, const std::string& in) { return in; },
                                                                  {1, 1, 1, 1})); },
                          "padding"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([] {
              nn::import_onnx_bytes(conv_then([](Builder& b, const std::string& in) {
                b.node("Flatten", {"x"}, "xf");  // reads the graph input again: a second branch
                b.node("Add", {in, "xf"}, "s");
                return std::string("s");
              }));
            }, "branches"),
            ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([] {
              nn::import_onnx_bytes(conv_then([](Builder& b, const std::string& in) {
                b.node("Softmax", {in}, "s");
                return std::string("s");
              }));
            }, "Softmax"),
            ErrorCode::Unsupported);
  // Three input channels; a rank-3 input.
  {
    Builder b({1, 3, 8, 8});
    b.node("Identity", {"x"}, "y");
    EXPECT_EQ(error_code_of([&] { nn::import_onnx_bytes(b.bytes("y")); }, "channels"), ErrorCode::Unsupported);
  }
  {
    Builder b({1, 8, 8});
    b.node("Identity", {"x"}, "y");
    EXPECT_VEIL_ERROR(nn::import_onnx_bytes(b.bytes("y")), ErrorCode::Unsupported);
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
