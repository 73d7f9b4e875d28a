// Sequential + CompiledModel: the plain reference against hand-written formulas
// (ConvNet, BatchNorm folding), encrypted runs of models with pooling, polynomial
// activations and batching against Sequential::forward, depth and bad-input errors.
#include <filesystem>
#include <functional>

#include "test_util.hpp"
#include "veil/nn/convnet.hpp"
#include "veil/nn/model.hpp"

namespace veil::test {
namespace {

using nn::CompiledModel;
using nn::CompileOptions;
using nn::Packing;
using nn::Padding;
using nn::Sequential;

// conv 1->2 (3x3) -> batch_norm -> square -> avg_pool2d(2) -> activation (degree 2 on
// [-4, 4], applied to pooled values: the 1/4 moves into its interval) -> flatten -> linear 50->3.
// Depth: 1 + 1 + 4 + 1 = 7.
Sequential pooled_model() {
  Sequential m(12, 12);
  m.conv2d(2, 3, 1, random_reals(18, 201, -0.15, 0.15), random_reals(2, 202, -0.5, 0.5))
      .batch_norm({1.5, 0.7}, {0.1, -0.2}, {0.05, -0.1}, {0.8, 1.3})
      .square()
      .avg_pool2d(2)
      .activation(nn::Polynomial::from_power({0.1, 0.5, 0.05}, -4, 4))
      .flatten()
      .linear(3, random_reals(3 * 50, 203, -0.2, 0.2), random_reals(3, 204));
  return m;
}

// conv 1->3 (5x5, stride 2) -> avg_pool2d(2) -> square (1/16 carried) -> flatten -> linear 27->4.
// Depth 3: fits the ConvNet's N = 8192 chain.
Sequential square_after_pool_model() {
  Sequential m(15, 15);
  m.conv2d(3, 5, 2, random_reals(75, 211, -0.1, 0.1), random_reals(3, 212, -0.3, 0.3))
      .avg_pool2d(2)
      .square()
      .flatten()
      .linear(4, random_reals(4 * 27, 213, -0.3, 0.3), random_reals(4, 214));
  return m;
}

struct Run {
  std::vector<std::vector<double>> got, want;
};

Run run_encrypted(Keyed& k, const Sequential& model, const CompileOptions& opt, size_t images, uint64_t seed) {
  CompiledModel plan(k.ctx, model, opt);
  std::printf("%s", plan.describe().c_str());
  images = std::min(images, plan.batch());
  auto gk = plan.rotation_steps().empty() ? GaloisKeys{} : k.keygen->create_galois_keys(plan.rotation_steps(), false);
  std::vector<std::vector<double>> batch;
  for (size_t i = 0; i < images; ++i) batch.push_back(random_reals(model.height() * model.width(), seed + i, 0, 1));
  std::vector<Ciphertext> in;
  for (const auto& slots : plan.encode(batch)) in.push_back(k.encrypt(slots));
  EXPECT_EQ(in.size(), plan.input_ciphertexts());
  auto out = plan.run(*k.eval, in, k.rk, gk);
  EXPECT_EQ(out.size(), plan.output_ciphertexts());
  std::vector<std::vector<double>> decoded;
  for (const auto& ct : out) {
    EXPECT_EQ(ct.level(), plan.output_level());
    decoded.push_back(k.decrypt(ct));
  }
  Run r;
  r.got = plan.decode(decoded, images);
  for (const auto& img : batch) r.want.push_back(model.forward(img));
  return r;
}

void expect_close(const Run& r, const Context& ctx, const std::string& what, double min_bits) {
  ASSERT_EQ(r.got.size(), r.want.size());
  for (size_t i = 0; i < r.got.size(); ++i) {
    ASSERT_EQ(r.got[i].size(), r.want[i].size());
    auto p = precision(r.want[i], r.got[i]);
    report(what + " image " + std::to_string(i), ctx, p);
    EXPECT_GE(p.worst_bits, min_bits) << "image " << i;
  }
}

TEST(Sequential, ForwardMatchesTheHandWrittenConvNet) {
  namespace fs = std::filesystem;
  const std::string data = (fs::path(__FILE__).parent_path() / "data").string();
  auto w = nn::load_convnet_weights(data + "/convnet_digits.weights");
  auto set = nn::load_convnet_test_set(data, 20);
  auto model = nn::convnet_model(w);
  EXPECT_EQ(model.output_shape().size(), 10u);
  for (size_t k = 0; k < set.size(); ++k) {
    auto a = model.forward(set.images[k]), b = nn::plain_convnet_logits(w, set.images[k]);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12);
  }
}

TEST(Sequential, BatchNormIsFoldedIntoThePreviousLayer) {
  const std::vector<double> gamma{2.0, -0.5}, beta{0.3, 0.1}, mean{0.2, -0.4}, var{0.5, 2.0};
  const double eps = 1e-5;
  auto w = random_reals(2 * 4, 221), b = random_reals(2, 222), img = random_reals(9, 223);
  Sequential plain(3, 3), folded(3, 3);
  plain.conv2d(2, 2, 1, w, b);
  folded.conv2d(2, 2, 1, w, b).batch_norm(gamma, beta, mean, var, eps);
  auto y = plain.forward(img), z = folded.forward(img);
  ASSERT_EQ(y.size(), 8u);
  for (size_t i = 0; i < y.size(); ++i) {
    const size_t c = i / 4;
    EXPECT_NEAR(z[i], gamma[c] * (y[i] - mean[c]) / std::sqrt(var[c] + eps) + beta[c], 1e-12);
  }
  // After a linear layer: per output feature.
  Sequential lin(1, 3), lin_bn(1, 3);
  lin.flatten().linear(2, std::vector<double>(w.begin(), w.begin() + 6), b);
  lin_bn.flatten().linear(2, std::vector<double>(w.begin(), w.begin() + 6), b).batch_norm(gamma, beta, mean, var, eps);
  auto u = lin.forward({0.1, 0.2, 0.3}), v = lin_bn.forward({0.1, 0.2, 0.3});
  for (size_t c = 0; c < 2; ++c)
    EXPECT_NEAR(v[c], gamma[c] * (u[c] - mean[c]) / std::sqrt(var[c] + eps) + beta[c], 1e-12);
}

// y = branch(x) + P(x): the projection's forward is the same conv2d run alone on the skip.
TEST(Sequential, ProjectionShortcutAddsTheConvOfTheSkip) {
  const auto wb = random_reals(3 * 2 * 9, 31, -0.5, 0.5), bb = random_reals(3, 32);
  const auto wp = random_reals(3 * 2, 33, -0.5, 0.5), bp = random_reals(3, 34);
  Sequential block(2, 5, 5);
  block.residual_begin().conv2d(3, 3, 2, Padding::same(1), wb, bb).residual_add(3, 1, 2, Padding{}, wp, bp);
  Sequential branch(2, 5, 5), proj(2, 5, 5);
  branch.conv2d(3, 3, 2, Padding::same(1), wb, bb);
  proj.conv2d(3, 1, 2, wp, bp);
  EXPECT_EQ(block.output_shape().describe(), "3x3x3");
  EXPECT_TRUE(block.layers().back().projects());
  EXPECT_EQ(block.layers().back().describe(), "residual_add(projection 2->3, kernel 1, stride 2)");
  EXPECT_EQ(block.multiply_adds(), branch.multiply_adds() + proj.multiply_adds() + 27);  // + the 3x3x3 adds
  for (uint32_t seed : {35u, 36u}) {
    const auto x = random_reals(50, seed);
    const auto a = branch.forward(x), b = proj.forward(x), y = block.forward(x);
    ASSERT_EQ(y.size(), a.size());
    for (size_t i = 0; i < y.size(); ++i) EXPECT_DOUBLE_EQ(y[i], a[i] + b[i]) << i;
  }
  // The projection must produce the branch's shape, from the skip's channels.
  EXPECT_EQ(error_code_of([&] {
              Sequential(2, 5, 5).residual_begin().conv2d(3, 3, 2, Padding::same(1), wb).residual_add(
                  3, 1, 1, Padding{}, wp);
            }, "projected skip is 3x5x5"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] {
              Sequential(2, 5, 5).residual_begin().conv2d(3, 3, 2, Padding::same(1), wb).residual_add(
                  3, 1, 2, Padding{}, random_reals(9, 1));
            }, "projection weight must hold"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { Sequential(2, 5, 5).residual_add(3, 1, 2, Padding{}, wp); }, "without a residual_begin"),
            ErrorCode::InvalidArgument);
}

TEST(Sequential, RejectsLayersInTheWrongPlace) {
  auto bad = ErrorCode::InvalidArgument;
  std::vector<double> w9(9, 0.1);
  EXPECT_EQ(error_code_of([&] { Sequential(0, 3); }), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).flatten().conv2d(1, 3, 1, w9); }, "before flatten"), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 3, 1, w9).linear(2, std::vector<double>(18)); }, "flatten"), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 3, 1, w9).square().batch_norm({1}, {0}, {0}, {1}); }, "folded"),
            bad);
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 3, 1, w9).batch_norm({1}, {0}, {0}, {-1}, 0); }), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 3, 1, w9).batch_norm({1, 2}, {0}, {0}, {1}); }), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 3, 1, w9).avg_pool2d(4); }, "avg_pool2d"), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 3, 1, w9).flatten().avg_pool2d(1); }), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 6, 1, std::vector<double>(36)); }), bad);  // kernel > image
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 3, 1, {0.1}); }), bad);                    // weight size
  EXPECT_EQ(error_code_of([&] { Sequential(5, 5).conv2d(1, 3, 1, {w9.begin(), w9.end() - 1}); }), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(2, 2).flatten().linear(1, {1, 2, 3}); }), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(2, 2).flatten().linear(1, {1, 2, 3, NAN}); }), bad);
  EXPECT_EQ(error_code_of([&] { Sequential(2, 2).forward({1, 2, 3}); }), bad);
}

TEST(CompiledModel, PoolingAndActivationWithTapsPacking) {
  Keyed& k = Keyed::preset(14);  // L = 7: exactly the model's depth
  auto r = run_encrypted(k, pooled_model(), CompileOptions{Packing::Taps, 0, -1, 0}, 5, 231);
  expect_close(r, *k.ctx, "model conv-bn-square-pool-poly-linear (taps)", 20.0);
  CompiledModel plan(k.ctx, pooled_model());
  EXPECT_EQ(plan.depth(), 7u);
  EXPECT_EQ(plan.input_ciphertexts(), 9u);  // 3x3 taps
  EXPECT_EQ(plan.batch(), 8192u / 128);     // 100 windows -> d = 128
}

TEST(CompiledModel, PoolingAndActivationWithIm2colPacking) {
  Keyed& k = Keyed::preset(14);
  auto r = run_encrypted(k, pooled_model(), CompileOptions{Packing::Im2col, 0, -1, 0}, 3, 241);
  expect_close(r, *k.ctx, "model conv-bn-square-pool-poly-linear (im2col)", 20.0);
  EXPECT_EQ(CompiledModel(k.ctx, pooled_model(), {Packing::Im2col, 0, -1, 0}).batch(), 8192u / (128 * 16));
}

TEST(CompiledModel, PoolFactorCarriedThroughSquareIntoLinear) {
  static Keyed k(nn::convnet_parameters(13), 251, false);
  for (Packing p : {Packing::Taps, Packing::Im2col}) {
    auto r = run_encrypted(k, square_after_pool_model(), CompileOptions{p, 0, -1, 0}, 4, 252);
    expect_close(r, *k.ctx, std::string("model conv-pool-square-linear (") + (p == Packing::Taps ? "taps" : "im2col") + ")",
                 12.0);  // scale 2^27: Lattigo's floor log2(scale) - (logN + 2) = 12 bits
  }
}

TEST(CompiledModel, VectorInputModel) {
  static Keyed k(nn::convnet_parameters(13), 261, false);
  Sequential m(8, 8);
  m.flatten()
      .linear(32, random_reals(32 * 64, 262, -0.15, 0.15), random_reals(32, 263))
      .square()
      .linear(5, random_reals(5 * 32, 264, -0.2, 0.2), random_reals(5, 265));
  CompiledModel plan(k.ctx, m);
  EXPECT_EQ(plan.batch(), 4096u / 64);
  EXPECT_EQ(plan.input_ciphertexts(), 1u);
  auto r = run_encrypted(k, m, {}, 7, 266);
  expect_close(r, *k.ctx, "model flatten-linear-square-linear", 12.0);
}

TEST(CompiledModel, TooDeepModelNamesTheLayers) {
  auto ctx = Context::create(nn::convnet_parameters(13));  // L = 5 < 7
  EXPECT_EQ(error_code_of([&] { CompiledModel(ctx, pooled_model()); }, "needs 7 levels"), ErrorCode::LevelMismatch);
  EXPECT_EQ(error_code_of([&] { CompiledModel(ctx, square_after_pool_model(), {Packing::Taps, 0, 2, 0}); }, "needs 3 levels"),
            ErrorCode::LevelMismatch);
}

TEST(CompiledModel, BadInput) {
  static Keyed k(nn::convnet_parameters(13), 271, false);
  auto model = square_after_pool_model();
  auto bad = ErrorCode::InvalidArgument;
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, Sequential(4, 4)); }), bad);                          // no layers
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, model, {Packing::Taps, 3, -1, 0}); }, "batch"), bad);
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, model, {Packing::Taps, 1024, -1, 0}); }, "batch"), bad);
  EXPECT_EQ(error_code_of([&] { CompiledModel(nullptr, model); }), bad);
  CompiledModel plan(k.ctx, model, {Packing::Taps, 4, -1, 0});
  EXPECT_EQ(error_code_of([&] { plan.encode({}); }), bad);
  EXPECT_EQ(error_code_of([&] { plan.encode(std::vector<std::vector<double>>(5, std::vector<double>(225))); }), bad);
  EXPECT_EQ(error_code_of([&] { plan.encode({std::vector<double>(224)}); }), bad);
  auto slots = plan.encode({std::vector<double>(225, 0.5)});
  std::vector<Ciphertext> in;
  for (const auto& s : slots) in.push_back(k.encrypt(s));
  auto gk = k.keygen->create_galois_keys(plan.rotation_steps(), false);
  EXPECT_EQ(error_code_of([&] { plan.run(*k.eval, {in.begin(), in.end() - 1}, k.rk, gk); }), bad);
  EXPECT_EQ(error_code_of([&] { plan.run(*k.eval, in, k.rk, GaloisKeys{}); }), ErrorCode::MissingKey);
  auto low = in;
  low[3] = k.eval->mod_switch_to(low[3], 1);
  EXPECT_EQ(error_code_of([&] { plan.run(*k.eval, low, k.rk, gk); }), ErrorCode::LevelMismatch);
  auto other = Context::create(nn::convnet_parameters(13));
  auto foreign = in;
  foreign[0] = Ciphertext(other, 2, other->max_level(), in[0].scale());
  EXPECT_EQ(error_code_of([&] { plan.run(*k.eval, foreign, k.rk, gk); }), ErrorCode::ContextMismatch);
  auto out = plan.run(*k.eval, in, k.rk, gk);
  std::vector<std::vector<double>> decoded;
  for (const auto& ct : out) decoded.push_back(k.decrypt(ct));
  EXPECT_EQ(error_code_of([&] { plan.decode(decoded, 5); }), bad);
  EXPECT_EQ(error_code_of([&] { plan.decode({}, 1); }), bad);
  EXPECT_EQ(plan.decode(decoded, 1).front().size(), 4u);
}

}  // namespace
}  // namespace veil::test
