// Real CNNs through Sequential + CompiledModel: multi-channel inputs, padded and
// strided convolutions anywhere, pooling with stride and padding, global average
// pooling (folded and not), with one or several channels per ciphertext and batching;
// encrypted outputs against Sequential::forward (float64), reported in bits.
#include "test_util.hpp"
#include "veil/nn/compile.hpp"
#include "veil/nn/convnet.hpp"
#include "veil/nn/model.hpp"

namespace veil::test {
namespace {

using nn::CompiledModel;
using nn::CompileOptions;
using nn::Packing;
using nn::Padding;
using nn::Sequential;

// N = 8192, five levels of 2^27 (the ConvNet's chain): every model here has depth <= 5.
Keyed& keyed() {
  static Keyed k(nn::convnet_parameters(13), 311, false);
  return k;
}

// 1x12x12 -> conv 4 (3x3, pad 1) -> square -> pool 2 -> conv 6 (3x3, pad 1) -> square
// -> pool 2 -> flatten -> linear 54 -> 5: LeNet's shape, small. Depth 5.
Sequential lenet_like() {
  Sequential m(1, 12, 12);
  m.conv2d(4, 3, 1, Padding::same(1), random_reals(4 * 9, 401, -0.3, 0.3), random_reals(4, 402, -0.2, 0.2))
      .square()
      .avg_pool2d(2)
      .conv2d(6, 3, 1, Padding::same(1), random_reals(6 * 4 * 9, 403, -0.3, 0.3), random_reals(6, 404, -0.2, 0.2))
      .square()
      .avg_pool2d(2)
      .flatten()
      .linear(5, random_reals(5 * 54, 405, -0.3, 0.3), random_reals(5, 406));
  return m;
}

// 3x8x8 -> conv 4 (3x3, stride 2, pad 1) -> square -> avg pool 3 (stride 1, pad 1,
// padding excluded) -> global average pool -> flatten -> linear 4 -> 3. Depth 4.
Sequential rgb_cnn() {
  Sequential m(3, 8, 8);
  m.conv2d(4, 3, 2, Padding::same(1), random_reals(4 * 3 * 9, 411, -0.4, 0.4), random_reals(4, 412, -0.2, 0.2))
      .square()
      .avg_pool2d(3, 1, Padding::same(1), false)
      .global_avg_pool()
      .flatten()
      .linear(3, random_reals(12, 413, -0.5, 0.5), random_reals(3, 414));
  return m;
}

struct Outcome {
  size_t images = 0;
  double worst_bits = 1e9;
  std::string plan;  // describe()
};

// Compiles `model` for k's context, runs `images` random inputs encrypted and compares
// every output with Sequential::forward; returns the worst precision.
Outcome run_and_compare(Keyed& k, const Sequential& model, const CompileOptions& opt, const std::string& what,
                        double min_bits, size_t images = 4) {
  CompiledModel plan(k.ctx, model, opt);
  std::printf("%s", plan.describe().c_str());
  EXPECT_EQ(plan.depth(), nn::model_depth(model)) << what;
  images = std::min(images, plan.batch());
  const GaloisKeys gk = plan.rotation_steps().empty() ? GaloisKeys{}
                                                      : k.keygen->create_galois_keys(plan.rotation_steps(), false);
  std::vector<std::vector<double>> inputs;
  for (size_t i = 0; i < images; ++i) inputs.push_back(random_reals(model.input_size(), 500 + i, 0, 1));
  std::vector<Ciphertext> in;
  for (const auto& slots : plan.encode(inputs)) in.push_back(k.encrypt(slots));
  EXPECT_EQ(in.size(), plan.input_ciphertexts());
  const auto out = plan.run(*k.eval, in, k.rk, gk);
  std::vector<std::vector<double>> decoded;
  for (const auto& ct : out) decoded.push_back(k.decrypt(ct));
  const auto got = plan.decode(decoded, images);
  Outcome o{images, 1e9, plan.describe()};
  for (size_t i = 0; i < images; ++i) {
    const auto want = model.forward(inputs[i]);
    EXPECT_EQ(got[i].size(), want.size()) << what;
    if (got[i].size() != want.size()) return o;
    const auto p = precision(want, got[i]);
    report(what + " input " + std::to_string(i), *k.ctx, p);
    EXPECT_GE(p.worst_bits, min_bits) << what << " input " << i;
    o.worst_bits = std::min(o.worst_bits, p.worst_bits);
  }
  return o;
}

Outcome run_and_compare(const Sequential& model, const CompileOptions& opt, const std::string& what,
                        double min_bits, size_t images = 4) {
  return run_and_compare(keyed(), model, opt, what, min_bits, images);
}

TEST(NnCnn, LeNetShapeOneChannelPerCiphertextBatched) {
  CompiledModel plan(keyed().ctx, lenet_like());
  EXPECT_EQ(plan.packing(), Packing::Spatial);  // a padded first conv cannot use taps
  EXPECT_EQ(plan.batch(), 16u);                 // 4096 slots / blocks of 256: one channel per ciphertext
  EXPECT_EQ(plan.input_ciphertexts(), 1u);
  const auto o = run_and_compare(lenet_like(), {}, "lenet-like G=1", 12);
  EXPECT_EQ(o.images, 4u);
}

TEST(NnCnn, LeNetShapeFourChannelsPerCiphertext) {
  CompileOptions opt;
  opt.channel_blocks = 4;
  CompiledModel plan(keyed().ctx, lenet_like(), opt);
  EXPECT_EQ(plan.batch(), 4u);
  run_and_compare(lenet_like(), opt, "lenet-like G=4", 12);
}

TEST(NnCnn, OneImagePerRunFillsTheSlotsWithChannels) {
  CompileOptions opt;
  opt.batch = 1;
  CompiledModel plan(keyed().ctx, lenet_like(), opt);
  EXPECT_NE(plan.describe().find("8 channel(s) of 256 slots"), std::string::npos) << plan.describe();
  run_and_compare(lenet_like(), opt, "lenet-like batch 1", 12, 1);
}

TEST(NnCnn, ThreeChannelsStridedPaddedPoolAndGlobalPoolFolded) {
  CompiledModel plan(keyed().ctx, rgb_cnn());
  EXPECT_EQ(plan.depth(), 4u);  // the global pool folds into the linear layer
  run_and_compare(rgb_cnn(), {}, "rgb cnn", 12);
  CompileOptions opt;
  opt.channel_blocks = 2;
  run_and_compare(rgb_cnn(), opt, "rgb cnn G=2", 12);
}

TEST(NnCnn, GlobalPoolAsTheLastLayerCostsOneLevel) {
  Sequential m(2, 6, 6);
  m.conv2d(3, 3, 1, Padding::same(1), random_reals(3 * 2 * 9, 421, -0.4, 0.4)).square().global_avg_pool();
  EXPECT_EQ(nn::model_depth(m), 3u);
  run_and_compare(m, {}, "global pool last", 12);
}

TEST(NnCnn, TapsFirstLayerThenPaddedConvolution) {
  Sequential m(1, 10, 10);
  m.conv2d(2, 3, 1, random_reals(18, 431, -0.4, 0.4), random_reals(2, 432, -0.2, 0.2))
      .square()
      .conv2d(3, 3, 1, Padding::same(1), random_reals(3 * 2 * 9, 433, -0.3, 0.3))
      .flatten()
      .linear(4, random_reals(4 * 3 * 64, 434, -0.1, 0.1));
  CompiledModel plan(keyed().ctx, m);
  EXPECT_EQ(plan.packing(), Packing::Taps);
  EXPECT_EQ(plan.input_ciphertexts(), 9u);
  run_and_compare(m, {}, "taps then padded conv", 12);
}

TEST(NnCnn, ElementwiseFirstLayerUsesTheSpatialPacking) {
  Sequential m(2, 4, 4);
  m.square().flatten().linear(3, random_reals(3 * 32, 441, -0.3, 0.3));
  run_and_compare(m, {}, "square first", 12);
}

// 2x8x8 -> conv 4 (3x3, pad 1) -> x^2 -> [conv 4 (3x3, pad 1) -> x^2 -> conv 4 (1x1)] + skip
// -> pool 2, then (in the test) [x^2] + skip -> flatten -> linear 64 -> 3.
// Depth 7 on the main path (3 conv, 3 squares, linear): the skips spend spare levels.
Sequential residual_cnn() {
  Sequential m(2, 8, 8);
  m.conv2d(4, 3, 1, Padding::same(1), random_reals(4 * 2 * 9, 461, -0.4, 0.4), random_reals(4, 462, -0.2, 0.2))
      .square()
      .residual_begin()
      .conv2d(4, 3, 1, Padding::same(1), random_reals(4 * 4 * 9, 463, -0.3, 0.3), random_reals(4, 464, -0.2, 0.2))
      .square()
      .conv2d(4, 1, 1, random_reals(16, 465, -0.5, 0.5))
      .residual_add()
      .avg_pool2d(2);
  return m;
}

TEST(NnCnn, ResidualBlocksJoinAtTheBranchLevelAndScale) {
  static Keyed k(Parameters::preset(14), 471, false);  // 7 levels of 2^40
  Sequential m = residual_cnn();
  m.residual_begin().square().residual_add().flatten().linear(3, random_reals(3 * 64, 466, -0.2, 0.2));
  EXPECT_EQ(nn::model_depth(m), 7u);
  for (size_t blocks : {size_t{0}, size_t{4}}) {
    CompileOptions opt;
    opt.channel_blocks = blocks;
    const auto o = run_and_compare(k, m, opt, "residual cnn G=" + std::to_string(blocks), 16, 2);
    EXPECT_NE(o.plan.find("no level of the plan"), std::string::npos);
  }
}

// ResNet's downsampling block: [conv 3x3 stride 2 -> square -> conv 3x3] + a 1x1
// stride-2 projection of the skip (4 -> 6 channels, 8x8 -> 4x4), then a plain block.
Sequential projection_cnn() {
  Sequential m(2, 8, 8);
  m.conv2d(4, 3, 1, Padding::same(1), random_reals(4 * 2 * 9, 481, -0.4, 0.4), random_reals(4, 482, -0.2, 0.2))
      .square()
      .residual_begin()
      .conv2d(6, 3, 2, Padding::same(1), random_reals(6 * 4 * 9, 483, -0.3, 0.3), random_reals(6, 484, -0.2, 0.2))
      .square()
      .conv2d(6, 3, 1, Padding::same(1), random_reals(6 * 6 * 9, 485, -0.3, 0.3))
      .residual_add(6, 1, 2, Padding{}, random_reals(6 * 4, 486, -0.5, 0.5), random_reals(6, 487, -0.2, 0.2))
      .global_avg_pool()
      .flatten()
      .linear(3, random_reals(3 * 6, 488, -0.5, 0.5));
  return m;
}

TEST(NnCnn, ProjectionShortcutsRunOnTheSkipsSpareLevels) {
  static Keyed k(Parameters::preset(14), 489, false);  // 7 levels of 2^40
  const Sequential m = projection_cnn();
  // The projection costs no level of the plan: conv, square, conv, square, conv, linear.
  EXPECT_EQ(nn::model_depth(m), 6u);
  for (size_t blocks : {size_t{0}, size_t{4}}) {
    CompileOptions opt;
    opt.channel_blocks = blocks;
    const auto o = run_and_compare(k, m, opt, "projection cnn G=" + std::to_string(blocks), 16, 2);
    EXPECT_NE(o.plan.find("the projection: "), std::string::npos) << o.plan;
    EXPECT_NE(o.plan.find("no level of the plan"), std::string::npos) << o.plan;
  }
  // A branch that spends no level leaves the projection none.
  Sequential flat_branch(2, 4, 4);
  flat_branch.residual_begin().avg_pool2d(2).residual_add(2, 1, 2, Padding{}, random_reals(4, 490));
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, flat_branch); }, "projection needs a level"),
            ErrorCode::Unsupported);
}

TEST(NnCnn, AffineLayersOnTheInputAfterPoolingAndOnFeatures) {
  // BatchNorm on the input, per-channel constants after a pool (1/4 carried into the
  // scales), per-feature constants on a flat tensor: one level each.
  Sequential m(2, 6, 6);
  m.affine({2.0, -0.5}, {-1.0, 0.25})
      .conv2d(3, 3, 1, Padding::same(1), random_reals(3 * 2 * 9, 481, -0.3, 0.3))
      .avg_pool2d(2)
      .affine({1.5, -1.0, 0.5}, {0.1, 0.2, -0.3})
      .flatten()
      .affine(random_reals(27, 482, -1, 1), random_reals(27, 483, -0.5, 0.5))
      .linear(4, random_reals(4 * 27, 484, -0.3, 0.3));
  EXPECT_EQ(nn::model_depth(m), 5u);
  run_and_compare(m, {}, "affine layers", 12);
  CompileOptions opt;
  opt.channel_blocks = 2;
  run_and_compare(m, opt, "affine layers G=2", 12);
  EXPECT_EQ(error_code_of([] { Sequential(2, 4, 4).affine({1.0}, {0.0, 0.0}); }, "needs 2 scales"),
            ErrorCode::InvalidArgument);
}

TEST(NnCnn, SparseFeaturesAreGatheredBeforeAWideLinearLayer) {
  // LeNet-5's 28x28 geometry with few channels: after two poolings the 100 features sit
  // 4 slots apart in 1024-slot blocks; the linear layer 100 -> 120 would need up to
  // 4096 diagonals, gathered first it needs about 100 + 128 (one more level).
  static Keyed k(Parameters::preset(14), 491, false);
  Sequential m(1, 28, 28);
  m.conv2d(2, 5, 1, Padding::same(2), random_reals(2 * 25, 491, -0.2, 0.2))
      .square()
      .avg_pool2d(2)
      .conv2d(4, 5, 1, random_reals(4 * 2 * 25, 492, -0.2, 0.2))
      .square()
      .avg_pool2d(2)
      .flatten()
      .linear(120, random_reals(120 * 100, 493, -0.2, 0.2), random_reals(120, 494, -0.1, 0.1));
  EXPECT_EQ(nn::model_depth(m), 6u);  // 4 + the gather + the linear layer
  EXPECT_NE(run_and_compare(k, m, {}, "gathered lenet-28", 16, 2).plan.find("gathered first"), std::string::npos);
}

TEST(NnCnn, DepthwiseConvolutionSkipsTheZeroChannelPairs) {
  // A depthwise 3x3 conv (ONNX group = C, expanded to dense weights with zeros): only
  // the diagonal channel pairs cost products.
  const size_t c = 4;
  std::vector<double> w(c * c * 9, 0.0);
  const auto taps = random_reals(c * 9, 501, -0.5, 0.5);
  for (size_t i = 0; i < c; ++i)
    for (size_t t = 0; t < 9; ++t) w[(i * c + i) * 9 + t] = taps[i * 9 + t];
  Sequential m(c, 8, 8);
  m.conv2d(c, 3, 1, Padding::same(1), w, random_reals(c, 502, -0.1, 0.1)).flatten().linear(3, random_reals(3 * 256, 503, -0.1, 0.1));
  CompileOptions opt;
  opt.channel_blocks = 4;
  CompiledModel plan(keyed().ctx, m, opt);
  EXPECT_NE(plan.describe().find(" 9 products"), std::string::npos) << plan.describe();  // not 4 x 4 x 9
  run_and_compare(m, opt, "depthwise conv G=4", 12);
}

TEST(NnCnn, BadModelsGetClearErrors) {
  Keyed& k = keyed();
  auto w = random_reals(2, 451);
  Sequential after_pool(2, 4, 4);
  after_pool.global_avg_pool().conv2d(1, 1, 1, w);
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, after_pool); }, "after global_avg_pool"), ErrorCode::Unsupported);
  CompileOptions opt;
  opt.channel_blocks = 3;
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, lenet_like(), opt); }, "channel_blocks"),
            ErrorCode::InvalidArgument);
  opt.channel_blocks = 32;  // 32 x 256 > 4096 slots
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, lenet_like(), opt); }, "channel_blocks"),
            ErrorCode::InvalidArgument);
  CompiledModel plan(k.ctx, lenet_like());
  EXPECT_EQ(error_code_of([&] { plan.encode({random_reals(143, 1)}); }, "must hold 144 values"),
            ErrorCode::InvalidArgument);
  // Residual blocks: an open begin, an add without one, a shape change, a moved layout.
  EXPECT_EQ(error_code_of([&] { Sequential(1, 4, 4).residual_add(); }, "without a residual_begin"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { Sequential(1, 4, 4).residual_begin().avg_pool2d(2).residual_add(); }, "must match"),
            ErrorCode::InvalidArgument);
  Sequential open(1, 4, 4);
  open.residual_begin().square();
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, open); }, "no residual_add"), ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { open.forward(random_reals(16, 1)); }, "no residual_add"), ErrorCode::InvalidArgument);
  Sequential moved(1, 4, 4);  // a padded stride-1 pool inside a block keeps the layout
  moved.residual_begin().avg_pool2d(3, 1, Padding::same(1)).residual_add().flatten().linear(1, random_reals(16, 2));
  CompiledModel ok(k.ctx, moved);  // a padded stride-1 pool keeps the layout: accepted
  EXPECT_EQ(ok.depth(), 2u);
  // Sequential's own checks name the layer.
  EXPECT_EQ(error_code_of([&] { Sequential(3, 8, 8).conv2d(2, 3, 1, random_reals(2 * 1 * 9, 1)); }, "= 54"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { Sequential(1, 4, 4).conv2d(2, 3, 1, Padding::same(3), random_reals(18, 1)); },
                          "smaller than the kernel"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { Sequential(1, 4, 4).conv2d(2, 7, 1, Padding::same(1), random_reals(98, 1)); },
                          "larger than the padded"),
            ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace veil::test

namespace veil::test {
namespace {

// Packing::Slots: the same models, one input per slot, every layer an integer
// combination of ciphertexts; no rotation key; slots() inputs per run.
TEST(NnCnnSlots, EveryLayerKindOneInputPerSlot) {
  CompileOptions opt;
  opt.packing = Packing::Slots;
  Sequential affine(2, 6, 6);
  affine.affine({2.0, -0.5}, {-1.0, 0.25})
      .conv2d(3, 3, 1, Padding::same(1), random_reals(3 * 2 * 9, 481, -0.3, 0.3))
      .avg_pool2d(2)
      .affine({1.5, -1.0, 0.5}, {0.1, 0.2, -0.3})
      .flatten()
      .linear(4, random_reals(4 * 27, 484, -0.3, 0.3));
  for (const auto& [name, model] : {std::pair{"lenet-like", lenet_like()}, std::pair{"rgb cnn", rgb_cnn()},
                                    std::pair{"affine", affine}}) {
    const CompiledModel plan(keyed().ctx, model, opt);
    EXPECT_EQ(plan.packing(), Packing::Slots);
    EXPECT_EQ(plan.batch(), keyed().slots());
    EXPECT_EQ(plan.input_ciphertexts(), model.input_size());
    EXPECT_TRUE(plan.rotation_steps().empty());
    run_and_compare(model, opt, std::string("slots ") + name, 12, 40);
  }
  static Keyed k(Parameters::preset(14), 495, false);
  const auto o = run_and_compare(k, projection_cnn(), opt, "slots projection cnn", 16, 8);
  EXPECT_NE(o.plan.find("the projection: "), std::string::npos) << o.plan;
}

// A wide layer streams into the next: 588 convolution outputs made 128 at a time,
// squared and summed into the 300-wide linear layer, which, being that group's tail,
// is not sliced again (its 300 outputs are made whole); the same words when the
// weights are encoded per run.
TEST(NnCnnSlots, WideLayersStreamIntoTheNextAndPerRunWeightsGiveTheSameWords) {
  Sequential m(1, 16, 16);
  m.conv2d(3, 3, 1, random_reals(27, 521, -0.4, 0.4), random_reals(3, 522, -0.2, 0.2))
      .square()
      .flatten()
      .linear(300, random_reals(300 * 588, 523, -0.1, 0.1), random_reals(300, 524))
      .square()
      .linear(4, random_reals(4 * 300, 526, -0.1, 0.1));
  CompileOptions opt;
  opt.packing = Packing::Slots;
  const auto o = run_and_compare(m, opt, "slots streamed", 12, 64);
  EXPECT_NE(o.plan.find("fed 128 features at a time"), std::string::npos) << o.plan;
  Keyed& k = keyed();
  const CompiledModel built(k.ctx, m, opt);
  opt.plaintext_budget = 0;
  const CompiledModel per_run(k.ctx, m, opt);
  EXPECT_NE(per_run.describe().find("encoded per run"), std::string::npos);
  std::vector<Ciphertext> in;
  for (const auto& slots : built.encode({random_reals(256, 525, 0, 1)})) in.push_back(k.encrypt(slots));
  const auto a = built.run(*k.eval, in, k.rk, {}), b = per_run.run(*k.eval, in, k.rk, {});
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    std::vector<uint64_t> wa(a[i].size() * a[i].poly_words()), wb(wa.size());
    k.ctx->backend().download(wa.data(), a[i].poly(0), wa.size());
    k.ctx->backend().download(wb.data(), b[i].poly(0), wb.size());
    EXPECT_EQ(wa, wb) << "output " << i;
  }
}

TEST(NnCnnSlots, BadUseGetsClearErrors) {
  Keyed& k = keyed();
  CompileOptions opt;
  opt.packing = Packing::Slots;
  opt.batch = 3;
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, lenet_like(), opt); }, "power of two"),
            ErrorCode::InvalidArgument);
  opt.batch = 16;
  const CompiledModel plan(k.ctx, lenet_like(), opt);
  EXPECT_EQ(plan.batch(), 16u);
  EXPECT_EQ(error_code_of([&] { plan.encode(std::vector<std::vector<double>>(17, std::vector<double>(144))); }),
            ErrorCode::InvalidArgument);
  std::vector<Ciphertext> too_few{k.encrypt(random_reals(8, 1))};
  EXPECT_EQ(error_code_of([&] { plan.run(*k.eval, too_few, k.rk, {}); }, "input ciphertexts"),
            ErrorCode::InvalidArgument);
  Sequential deep(1, 4, 4);
  deep.flatten();
  for (int i = 0; i < 6; ++i) deep.linear(16, random_reals(256, 530 + i)).square();
  opt.batch = 0;
  EXPECT_EQ(error_code_of([&] { CompiledModel(k.ctx, deep, opt); }, "levels"), ErrorCode::LevelMismatch);
  EXPECT_EQ(nn::parse_packing("slots"), Packing::Slots);
  EXPECT_EQ(nn::packing_name(Packing::Slots), "slots");
}

}  // namespace
}  // namespace veil::test
