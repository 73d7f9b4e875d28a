// Encrypted vector x plain matrix (veil::nn::LinearLayer): precision against
// plain double evaluation for several shapes, minimal rotation keys, zero
// diagonal skipping and bad input. N = 2^13 preset (4096 slots, depth 2).
#include <functional>

#include "test_util.hpp"
#include "veil/nn/linear.hpp"

namespace veil::test {
namespace {

using nn::LinearLayer;

// No default Galois keys: every test generates exactly the keys its layer asks for.
Keyed& K() {
  static Keyed k(Parameters::preset(13), 31, false);
  return k;
}

struct Shape {
  size_t rows, cols;
  int level;  // layer level (-1: top); the input is always encrypted at the top level
  bool bias;
};

std::vector<double> plain_apply(const std::vector<double>& w, const std::vector<double>& b, size_t rows,
                                size_t cols, const std::vector<double>& x) {
  std::vector<double> y(rows, 0.0);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) y[r] += w[r * cols + c] * x[c];
    if (!b.empty()) y[r] += b[r];
  }
  return y;
}

class LinearShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(LinearShapes, MatchesPlainEvaluation) {
  const Shape s = GetParam();
  // Weights ~ 1/sqrt(cols) keep |y| ~ 1, as in a trained layer.
  auto w = random_reals(s.rows * s.cols, 1000 + s.rows * 7 + s.cols, -1.0 / std::sqrt(s.cols),
                        1.0 / std::sqrt(s.cols));
  auto b = s.bias ? random_reals(s.rows, 2000 + s.rows) : std::vector<double>{};
  auto x = random_reals(s.cols, 3000 + s.cols);
  LinearLayer layer(K().ctx, w, s.rows, s.cols, b, s.level);

  const size_t d = LinearLayer::block_size(s.rows, s.cols);
  EXPECT_EQ(layer.block(), d);
  EXPECT_EQ(layer.baby_steps() * layer.giant_steps(), d);
  auto steps = layer.rotation_steps();
  EXPECT_LE(steps.size() + 2,
            layer.baby_steps() + layer.giant_steps());            // n1 - 1 baby + n2 - 1 giant at most
  EXPECT_EQ(steps, LinearLayer::rotation_steps(s.rows, s.cols));  // random weights: every diagonal is used

  // create_galois_keys({}) means "every power of two": a layer without rotations needs no keys at all.
  auto gk = steps.empty() ? GaloisKeys{} : K().keygen->create_galois_keys(steps, false);
  ASSERT_EQ(gk.keys.size(), steps.size());
  auto ct = K().encrypt(layer.encode_input(x));
  auto out = layer.apply(*K().eval, ct, gk);
  EXPECT_EQ(out.level(), layer.level() - 1);
  EXPECT_NEAR(out.scale() / ct.scale(), 1.0, 1e-12);

  auto want = plain_apply(w, b, s.rows, s.cols, x);
  auto got = K().decrypt(out);
  auto p = precision(want, layer.decode_output(got));
  report(
      "linear " + std::to_string(s.cols) + "->" + std::to_string(s.rows) + " (d=" + std::to_string(d) + ")",
      *K().ctx, p);
  EXPECT_GE(p.mean_bits, 20.0);
  // The whole slot vector follows the output layout contract (y repeated with period d, zero padded).
  auto pl = precision(LinearLayer::layout(want, d, K().slots()), got);
  report("  ...all slots (layout)", *K().ctx, pl);
  EXPECT_GE(pl.mean_bits, 20.0);
  EXPECT_GE(pl.worst_bits, 14.0);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearShapes,
                         ::testing::Values(Shape{64, 64, -1, true},
                                           Shape{64, 256, -1, true},  // fc1: 256 -> 64
                                           Shape{10, 64, -1, true}, Shape{64, 10, -1, false},
                                           Shape{1, 1, -1, true}, Shape{37, 53, -1, true},
                                           Shape{100, 128, 1, true},  // d = 128: n1 = 16, n2 = 8; lower level
                                           Shape{3, 2, -1, false}),
                         [](const auto& info) {
                           return std::to_string(info.param.cols) + "to" + std::to_string(info.param.rows) +
                                  (info.param.level >= 0 ? "_level" + std::to_string(info.param.level) : "");
                         });

TEST(LinearLayer, ChainsTwoLayersOfTheSameBlockSize) {
  // 64 -> 48 -> 64: the first output is already the second input's layout.
  const size_t n = 64, h = 48;
  auto w1 = random_reals(h * n, 41, -0.125, 0.125), w2 = random_reals(n * h, 42, -0.14, 0.14);
  auto b1 = random_reals(h, 43), x = random_reals(n, 44);
  LinearLayer l1(K().ctx, w1, h, n, b1, 2), l2(K().ctx, w2, n, h, {}, 1);
  ASSERT_EQ(l1.block(), l2.block());
  auto gk = K().keygen->create_galois_keys(LinearLayer::rotation_steps(n, n), false);
  auto out = l2.apply(*K().eval, l1.apply(*K().eval, K().encrypt(l1.encode_input(x)), gk), gk);
  EXPECT_EQ(out.level(), 0u);
  auto want = plain_apply(w2, {}, n, h, plain_apply(w1, b1, h, n, x));
  auto p = precision(want, l2.decode_output(K().decrypt(out)));
  report("linear 64->48->64 (two layers)", *K().ctx, p);
  EXPECT_GE(p.mean_bits, 18.0);
}

TEST(LinearLayer, SkipsZeroDiagonalsAndTheirKeys) {
  // 0.5 I + 0.25 * (shift by 3): diagonals 0 and 3 only -> one baby step, no giant step.
  const size_t n = 64;
  std::vector<double> w(n * n, 0.0);
  for (size_t r = 0; r < n; ++r) {
    w[r * n + r] = 0.5;
    w[r * n + (r + 3) % n] = 0.25;
  }
  LinearLayer layer(K().ctx, w, n, n);
  EXPECT_EQ(layer.nonzero_diagonals(), 2u);
  EXPECT_EQ(layer.rotation_steps(), std::vector<int64_t>{3});
  auto x = random_reals(n, 51);
  auto out =
      layer.apply(*K().eval, K().encrypt(layer.encode_input(x)), K().keygen->create_galois_keys({3}, false));
  auto p = precision(plain_apply(w, {}, n, n, x), layer.decode_output(K().decrypt(out)));
  EXPECT_GE(p.mean_bits, 20.0);

  // Diagonal matrix: no rotation at all, an empty GaloisKeys is enough.
  std::vector<double> diag(n * n, 0.0);
  for (size_t r = 0; r < n; ++r) diag[r * n + r] = 0.5 + 0.001 * static_cast<double>(r);
  LinearLayer scale_only(K().ctx, diag, n, n);
  EXPECT_TRUE(scale_only.rotation_steps().empty());
  auto y = scale_only.apply(*K().eval, K().encrypt(scale_only.encode_input(x)), GaloisKeys{});
  EXPECT_GE(precision(plain_apply(diag, {}, n, n, x), scale_only.decode_output(K().decrypt(y))).mean_bits,
            20.0);

  // All-zero weights: the output is the bias.
  LinearLayer zero(K().ctx, std::vector<double>(6, 0.0), 2, 3, {0.5, -0.25});
  EXPECT_EQ(zero.nonzero_diagonals(), 0u);
  auto z =
      zero.decode_output(K().decrypt(zero.apply(*K().eval, K().encrypt(zero.encode_input({1, 2, 3})), {})));
  EXPECT_NEAR(z[0], 0.5, 1e-6);
  EXPECT_NEAR(z[1], -0.25, 1e-6);
}

TEST(LinearLayer, LayoutHelper) {
  auto v = LinearLayer::layout({1, 2, 3}, 4, 16);
  ASSERT_EQ(v.size(), 16u);
  for (size_t i = 0; i < 16; ++i) EXPECT_EQ(v[i], (i % 4) < 3 ? static_cast<double>(i % 4 + 1) : 0.0);
  EXPECT_EQ(LinearLayer::block_size(37, 53), 64u);
  EXPECT_EQ(LinearLayer::block_size(1, 1), 1u);
  EXPECT_EQ(LinearLayer::rotation_steps(64, 256),
            (std::vector<int64_t>{1,  2,  3,  4,  5,  6,  7,   8,   9,   10,  11,  12,  13,  14,  15,
                                  16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240}));
}

TEST(LinearLayer, BatchedInputsInterleaveAndShareTheRotations) {
  // 4 inputs of a 24 -> 20 layer in one ciphertext; the rotations are 4x longer.
  const size_t rows = 20, cols = 24, batch = 4;
  auto w = random_reals(rows * cols, 71, -0.2, 0.2);
  auto b = random_reals(rows, 72);
  LinearLayer one(K().ctx, w, rows, cols, b);
  LinearLayer layer(K().ctx, w, rows, cols, b, nn::LinearOptions{-1, 0, batch, 1});
  EXPECT_EQ(layer.batch(), batch);
  std::vector<int64_t> scaled;
  for (int64_t s : one.rotation_steps()) scaled.push_back(s * static_cast<int64_t>(batch));
  EXPECT_EQ(layer.rotation_steps(), scaled);
  std::vector<std::vector<double>> xs;
  for (size_t i = 0; i < 3; ++i) xs.push_back(random_reals(cols, 73 + i));  // 3 of 4: the last lane stays 0
  auto slots = layer.encode_inputs(xs);
  ASSERT_EQ(slots.size(), 1u);
  auto gk = K().keygen->create_galois_keys(layer.rotation_steps(), false);
  auto out = layer.apply(*K().eval, K().encrypt(slots[0]), gk);
  auto got = layer.decode_outputs(K().decrypt(out), 3);
  ASSERT_EQ(got.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    auto p = precision(plain_apply(w, b, rows, cols, xs[i]), got[i]);
    report("linear 24->20 batch 4, input " + std::to_string(i), *K().ctx, p);
    EXPECT_GE(p.mean_bits, 20.0);
  }
}

TEST(LinearLayer, SeveralInputCiphertextsShareTheGiantSteps) {
  // 3 x 40 = 120 columns in three ciphertexts (one "channel" each), batch 2.
  const size_t rows = 30, parts = 3, part = 40, cols = parts * part, batch = 2;
  auto w = random_reals(rows * cols, 81, -0.1, 0.1);
  auto b = random_reals(rows, 82);
  LinearLayer layer(K().ctx, w, rows, cols, b, nn::LinearOptions{-1, 0, batch, parts});
  EXPECT_EQ(layer.inputs(), parts);
  EXPECT_EQ(layer.block(), 64u);
  // Baby steps 1..7 and giant steps 8..56 (times the batch): one set for all inputs.
  EXPECT_EQ(layer.rotation_steps().size(), 7u + 7u);
  std::vector<std::vector<double>> xs{random_reals(cols, 83), random_reals(cols, 84)};
  auto slots = layer.encode_inputs(xs);
  ASSERT_EQ(slots.size(), parts);
  std::vector<Ciphertext> cts;
  for (const auto& s : slots) cts.push_back(K().encrypt(s));
  auto gk = K().keygen->create_galois_keys(layer.rotation_steps(), false);
  auto got = layer.decode_outputs(K().decrypt(layer.apply(*K().eval, cts, gk)), 2);
  for (size_t i = 0; i < 2; ++i) {
    auto p = precision(plain_apply(w, b, rows, cols, xs[i]), got[i]);
    report("linear 3x40->30 (3 inputs, batch 2), input " + std::to_string(i), *K().ctx, p);
    EXPECT_GE(p.mean_bits, 19.0);
  }
  cts.pop_back();
  EXPECT_THROW(layer.apply(*K().eval, cts, gk), Error);  // one input ciphertext missing
}

void expect_error(ErrorCode code, const std::function<void()>& f) { EXPECT_EQ(error_code_of(f), code); }

TEST(LinearLayer, BadConstruction) {
  auto ctx = K().ctx;
  const size_t slots = K().slots();
  std::vector<double> w6(6, 0.1);
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, w6, 2, 4); });             // weights size
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, w6, 2, 3, {1, 2, 3}); });  // bias size
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, {}, 0, 3); });
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, {}, 3, 0); });
  expect_error(ErrorCode::InvalidArgument,
               [&] { LinearLayer(ctx, std::vector<double>(slots + 1), slots + 1, 1); });
  expect_error(ErrorCode::InvalidArgument,
               [&] { LinearLayer(ctx, std::vector<double>(slots + 1), 1, slots + 1); });
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(nullptr, w6, 2, 3); });
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, {0.1, NAN, 0, 0, 0, 0}, 2, 3); });
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, w6, 2, 3, {}, -1, -5.0); });  // scale
  expect_error(ErrorCode::LevelMismatch, [&] { LinearLayer(ctx, w6, 2, 3, {}, 0); });  // no level to rescale
  expect_error(ErrorCode::LevelMismatch, [&] { LinearLayer(ctx, w6, 2, 3, {}, 3); });  // above max_level
  // Batch not a power of two, too large for the block, inputs not dividing cols.
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, w6, 2, 3, {}, nn::LinearOptions{-1, 0, 3, 1}); });
  expect_error(ErrorCode::InvalidArgument,
               [&] { LinearLayer(ctx, w6, 2, 3, {}, nn::LinearOptions{-1, 0, slots, 1}); });
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, w6, 2, 3, {}, nn::LinearOptions{-1, 0, 1, 2}); });
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer(ctx, w6, 2, 3, {}, nn::LinearOptions{-1, 0, 1, 0}); });
  LinearLayer batched(ctx, w6, 2, 3, {}, nn::LinearOptions{-1, 0, 4, 1});
  expect_error(ErrorCode::InvalidArgument, [&] { batched.encode_input({1, 2, 3}); });  // batch > 1
  expect_error(ErrorCode::InvalidArgument,
               [&] { batched.encode_inputs(std::vector<std::vector<double>>(5, {1, 2, 3})); });  // > batch
  expect_error(ErrorCode::InvalidArgument, [&] { batched.decode_outputs(std::vector<double>(slots), 5); });
  LinearLayer layer(ctx, w6, 2, 3);
  expect_error(ErrorCode::InvalidArgument, [&] { layer.encode_input({1, 2}); });
  expect_error(ErrorCode::InvalidArgument, [&] { layer.decode_output({1}); });
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer::layout({1, 2, 3}, 2, 16); });  // does not fit d
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer::layout({1}, 3, 16); });  // d not a power of two
  expect_error(ErrorCode::InvalidArgument, [&] { LinearLayer::layout({1}, 32, 16); });  // d > slots
}

TEST(LinearLayer, BadApply) {
  auto ctx = K().ctx;
  auto w = random_reals(16 * 16, 61);
  LinearLayer layer(ctx, w, 16, 16, {}, 1);
  auto gk = K().keygen->create_galois_keys(layer.rotation_steps(), false);
  auto ct = K().encrypt(layer.encode_input(random_reals(16, 62)));

  // Missing keys: none at all, and all but one.
  expect_error(ErrorCode::MissingKey, [&] { layer.apply(*K().eval, ct, GaloisKeys{}); });
  auto partial = gk;
  partial.keys.erase(partial.keys.begin());
  expect_error(ErrorCode::MissingKey, [&] { layer.apply(*K().eval, ct, partial); });

  // Ciphertext and evaluator from another context with the same parameters.
  auto other = Context::create(Parameters::preset(13));
  Ciphertext foreign(other, 2, ctx->max_level(), ct.scale());
  expect_error(ErrorCode::ContextMismatch, [&] { layer.apply(*K().eval, foreign, gk); });
  expect_error(ErrorCode::ContextMismatch, [&] { layer.apply(*K().eval, Ciphertext{}, gk); });
  Evaluator other_eval(other);
  expect_error(ErrorCode::ContextMismatch, [&] { layer.apply(other_eval, ct, gk); });

  // Input below the layer's level, at another scale, or not relinearized.
  auto low = K().eval->mod_switch_to(ct, 0);
  expect_error(ErrorCode::LevelMismatch, [&] { layer.apply(*K().eval, low, gk); });
  auto rescaled = ct;
  rescaled.set_scale(ct.scale() * 2);
  expect_error(ErrorCode::ScaleMismatch, [&] { layer.apply(*K().eval, rescaled, gk); });
  auto cube = K().eval->multiply_no_relin(ct, ct);
  expect_error(ErrorCode::InvalidArgument, [&] { layer.apply(*K().eval, cube, gk); });

  // Still works after all that.
  auto y = layer.apply(*K().eval, ct, gk);
  EXPECT_EQ(y.level(), 0u);
}

}  // namespace
}  // namespace veil::test
