// Multi-channel convolution anywhere (SpatialConv2d): encrypted results against a
// float64 convolution with zero padding, for odd sizes, strides with padding, one and
// several channels per ciphertext, batching, chains and average pooling; bad input.
#include "test_util.hpp"
#include "veil/nn/spatial.hpp"

namespace veil::test {
namespace {

using nn::Conv2dGeometry;
using nn::SpatialConv2d;
using nn::SpatialLayout;

// y[co][oy][ox] = bias[co] + sum weight[co][ci][ky][kx] * x[ci][iy][ix] (zero outside).
std::vector<double> conv_ref(const std::vector<double>& x, size_t cin, size_t h, size_t w, const Conv2dGeometry& g,
                             const std::function<double(size_t, size_t, size_t, size_t, size_t, size_t)>& weight,
                             const std::vector<double>& bias) {
  const size_t oh = g.out_height(h), ow = g.out_width(w), k = g.kernel;
  std::vector<double> y(g.out_channels * oh * ow);
  for (size_t co = 0; co < g.out_channels; ++co)
    for (size_t oy = 0; oy < oh; ++oy)
      for (size_t ox = 0; ox < ow; ++ox) {
        double v = bias.empty() ? 0.0 : bias[co];
        for (size_t ci = 0; ci < cin; ++ci)
          for (size_t ky = 0; ky < k; ++ky)
            for (size_t kx = 0; kx < k; ++kx) {
              const auto iy = static_cast<int64_t>(oy * g.stride + ky) - static_cast<int64_t>(g.pad_top);
              const auto ix = static_cast<int64_t>(ox * g.stride + kx) - static_cast<int64_t>(g.pad_left);
              if (iy < 0 || ix < 0 || iy >= static_cast<int64_t>(h) || ix >= static_cast<int64_t>(w)) continue;
              v += weight(co, ci, ky, kx, oy, ox) * x[(ci * h + static_cast<size_t>(iy)) * w + static_cast<size_t>(ix)];
            }
        y[(co * oh + oy) * ow + ox] = v;
      }
  return y;
}

std::vector<double> conv_ref(const std::vector<double>& x, size_t cin, size_t h, size_t w, const Conv2dGeometry& g,
                             const std::vector<double>& weights, const std::vector<double>& bias) {
  const size_t k = g.kernel;
  return conv_ref(
      x, cin, h, w, g,
      [&](size_t co, size_t ci, size_t ky, size_t kx, size_t, size_t) {
        return weights[((co * cin + ci) * k + ky) * k + kx];
      },
      bias);
}

std::vector<std::vector<double>> encrypt_run_decrypt(Keyed& k, const SpatialConv2d& conv,
                                                     const std::vector<std::vector<double>>& inputs) {
  const auto slots_in = conv.input_layout().encode(inputs, k.slots());
  std::vector<Ciphertext> cts;
  for (const auto& s : slots_in) cts.push_back(k.encrypt(s));
  const GaloisKeys gk = k.keygen->create_galois_keys(conv.rotation_steps(), false);
  const auto outs = conv.apply(*k.eval, cts, gk);
  EXPECT_EQ(outs.size(), conv.output_layout().ciphertexts());
  std::vector<std::vector<double>> decoded;
  for (const auto& o : outs) {
    EXPECT_EQ(o.level(), cts.front().level() - 1);
    EXPECT_NEAR(o.scale(), cts.front().scale(), cts.front().scale() * 1e-12);
    decoded.push_back(k.decrypt(o));
  }
  return conv.output_layout().decode(decoded, inputs.size());
}

void expect_close(const std::string& what, Keyed& k, const std::vector<double>& want, const std::vector<double>& got,
                  double min_worst_bits = 14) {
  ASSERT_EQ(want.size(), got.size());
  auto p = precision(want, got);
  report(what, *k.ctx, p);
  EXPECT_GE(p.worst_bits, min_worst_bits) << what;
}

struct Case {
  size_t cin, h, w;
  Conv2dGeometry g;
  size_t block, blocks, batch;
};

void check_case(const std::string& name, const Case& c, uint64_t seed, size_t budget = size_t{512} << 20) {
  Keyed& k = Keyed::preset(13);
  const auto weights = random_reals(c.g.out_channels * c.cin * c.g.kernel * c.g.kernel, seed, -0.4, 0.4);
  const auto bias = random_reals(c.g.out_channels, seed + 1, -0.5, 0.5);
  const auto layout = SpatialLayout::dense(c.cin, c.h, c.w, c.block, c.blocks, c.batch);
  SpatialConv2d conv(k.ctx, layout, c.g, weights, bias, {-1, 0, budget});
  EXPECT_EQ(conv.pre_encoded(), budget > 0);
  std::vector<std::vector<double>> inputs;
  for (size_t b = 0; b < c.batch; ++b) inputs.push_back(random_reals(c.cin * c.h * c.w, seed + 10 + b, 0, 1));
  const auto got = encrypt_run_decrypt(k, conv, inputs);
  for (size_t b = 0; b < c.batch; ++b)
    expect_close(name + " input " + std::to_string(b), k, conv_ref(inputs[b], c.cin, c.h, c.w, c.g, weights, bias),
                 got[b]);
}

TEST(NnSpatial, OddSizesSamePaddingOneChannelPerCiphertext) {
  check_case("3x9x7 -> 5, k3 pad 1", {3, 9, 7, {5, 3, 1, 1, 1, 1, 1}, 64, 1, 2}, 101);
}

TEST(NnSpatial, StrideTwoWithAsymmetricPaddingMultiplexed) {
  // Four channels per ciphertext: 6 -> 3 channels over 2 -> 1 ciphertexts, with channel diagonals.
  check_case("6x11x10 -> 3, k3 s2 pads 1,0,1,1", {6, 11, 10, {3, 3, 2, 1, 0, 1, 1}, 128, 4, 1}, 102);
}

TEST(NnSpatial, BatchedAndMultiplexedTogether) {
  check_case("2x5x5 -> 4, k5 s1 pad 2, 2 blocks x batch 4", {2, 5, 5, {4, 5, 1, 2, 2, 2, 2}, 32, 2, 4}, 103);
}

TEST(NnSpatial, EncodingAsItGoesMatchesPreEncoded) {
  Keyed& k = Keyed::preset(13);
  const Conv2dGeometry g{2, 3, 1, 1, 1, 1, 1};
  const auto layout = SpatialLayout::dense(2, 6, 6, 64, 2, 1);
  const auto weights = random_reals(2 * 2 * 9, 7, -0.5, 0.5);
  SpatialConv2d eager(k.ctx, layout, g, weights, {}, {});
  SpatialConv2d lazy(k.ctx, layout, g, weights, {}, {-1, 0, 0});
  EXPECT_TRUE(eager.pre_encoded());
  EXPECT_FALSE(lazy.pre_encoded());
  EXPECT_EQ(eager.products(), lazy.products());
  EXPECT_EQ(eager.rotation_steps(), lazy.rotation_steps());
  const auto ct = k.encrypt(layout.encode({random_reals(72, 8, 0, 1)}, k.slots()).front());
  const GaloisKeys gk = k.keygen->create_galois_keys(eager.rotation_steps(), false);
  const auto a = eager.apply(*k.eval, {ct}, gk), b = lazy.apply(*k.eval, {ct}, gk);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(k.decrypt(a[0]), k.decrypt(b[0]));  // the same plaintexts, so the same ciphertexts
}

TEST(NnSpatial, ChainOfPaddedAndStridedConvolutionsKeepsTheLayout) {
  // The second conv reads the first one's output layout (clean, strided after it).
  Keyed& k = Keyed::preset(13);
  const Conv2dGeometry g1{4, 3, 2, 1, 1, 1, 1}, g2{3, 3, 1, 1, 1, 1, 1};
  const auto w1 = random_reals(4 * 2 * 9, 11, -0.4, 0.4), w2 = random_reals(3 * 4 * 9, 12, -0.4, 0.4);
  const auto b1 = random_reals(4, 13), b2 = random_reals(3, 14);
  const auto in = SpatialLayout::dense(2, 12, 12, 256, 2, 2);
  SpatialConv2d c1(k.ctx, in, g1, w1, b1);
  SpatialConv2d c2(k.ctx, c1.output_layout(), g2, w2, b2, {static_cast<int>(k.ctx->max_level()) - 1, 0});
  EXPECT_EQ(c1.output_layout().ys, 24u);
  EXPECT_EQ(c1.output_layout().xs, 2u);
  std::vector<std::vector<double>> inputs{random_reals(288, 15, 0, 1), random_reals(288, 16, 0, 1)};
  std::vector<Ciphertext> cts;
  for (const auto& s : in.encode(inputs, k.slots())) cts.push_back(k.encrypt(s));
  std::vector<int64_t> steps = c1.rotation_steps();
  for (int64_t s : c2.rotation_steps()) steps.push_back(s);
  const GaloisKeys gk = k.keygen->create_galois_keys(steps, false);
  const auto mid = c1.apply(*k.eval, cts, gk);
  const auto outs = c2.apply(*k.eval, mid, gk);
  std::vector<std::vector<double>> decoded;
  for (const auto& o : outs) decoded.push_back(k.decrypt(o));
  const auto got = c2.output_layout().decode(decoded, 2);
  for (size_t b = 0; b < 2; ++b) {
    const auto h1 = conv_ref(inputs[b], 2, 12, 12, g1, w1, b1);
    expect_close("chain input " + std::to_string(b), k, conv_ref(h1, 4, 6, 6, g2, w2, b2), got[b], 12);
  }
}

TEST(NnSpatial, AveragePoolingWithStrideAndPadding) {
  Keyed& k = Keyed::preset(13);
  const size_t c = 3, h = 7, w = 6;
  const Conv2dGeometry g{c, 3, 2, 1, 1, 1, 1};
  const auto layout = SpatialLayout::dense(c, h, w, 64, 4, 2);
  const std::vector<std::vector<double>> inputs{random_reals(c * h * w, 21, -1, 1), random_reals(c * h * w, 22, -1, 1)};
  for (bool include : {true, false}) {
    const auto pool = SpatialConv2d::average_pool(k.ctx, layout, g, include);
    EXPECT_LE(pool.products(), g.kernel * g.kernel * layout.ciphertexts()) << "depthwise: only diagonal 0";
    const auto got = encrypt_run_decrypt(k, pool, inputs);
    for (size_t b = 0; b < inputs.size(); ++b) {
      const auto want = conv_ref(
          inputs[b], c, h, w, g,
          [&](size_t co, size_t ci, size_t, size_t, size_t oy, size_t ox) {
            if (co != ci) return 0.0;
            if (include) return 1.0 / 9.0;
            auto count = [](size_t o, size_t side) {
              const int64_t lo = static_cast<int64_t>(o * 2) - 1;
              return static_cast<double>(std::min<int64_t>(lo + 3, static_cast<int64_t>(side)) - std::max<int64_t>(lo, 0));
            };
            return 1.0 / (count(oy, h) * count(ox, w));
          },
          {});
      expect_close(std::string("avg pool ") + (include ? "count_include_pad" : "exclude pad"), k, want, got[b]);
    }
  }
}

TEST(NnSpatial, LayoutEncodeDecodeRoundTrip) {
  const auto layout = SpatialLayout::dense(5, 3, 4, 16, 2, 4);
  EXPECT_EQ(layout.ciphertexts(), 3u);
  std::vector<std::vector<double>> xs{random_reals(60, 1), random_reals(60, 2), random_reals(60, 3)};
  const auto slots = layout.encode(xs, 256);
  ASSERT_EQ(slots.size(), 3u);
  EXPECT_EQ(layout.decode(slots, 3), xs);
  // The 2 * 16 period repeats over the 64 logical slots of each input.
  EXPECT_EQ(slots[1][(layout.position(3, 2, 1) + 32) * 4 + 2], xs[2][(3 * 3 + 2) * 4 + 1]);
}

TEST(NnSpatial, BadInputIsRefusedWithClearErrors) {
  Keyed& k = Keyed::preset(13);
  const auto layout = SpatialLayout::dense(2, 6, 6, 64, 1, 1);
  const auto w = random_reals(3 * 2 * 9, 1);
  EXPECT_EQ(error_code_of([&] { SpatialConv2d(k.ctx, layout, {3, 3, 1, 0, 0, 0, 0}, random_reals(3 * 9, 1)); },
                          "out * in * kernel^2 = 54"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { SpatialConv2d(k.ctx, layout, {3, 3, 1, 3, 0, 0, 0}, w); }, "smaller than the kernel"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { SpatialConv2d(k.ctx, layout, {3, 9, 1, 1, 1, 1, 1}, random_reals(3 * 2 * 81, 1)); },
                          "larger than the padded"),
            ErrorCode::InvalidArgument);
  auto bad = w;
  bad[5] = std::nan("");
  EXPECT_EQ(error_code_of([&] { SpatialConv2d(k.ctx, layout, {3, 3, 1, 0, 0, 0, 0}, bad); }, "non-finite"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { SpatialConv2d(k.ctx, SpatialLayout::dense(2, 9, 9, 64, 1, 1), {3, 3, 1, 0, 0, 0, 0}, w); },
                          "does not fit a block"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { SpatialConv2d(k.ctx, layout, {3, 3, 1, 0, 0, 0, 0}, w, {}, {0, 0}); }),
            ErrorCode::LevelMismatch);
  SpatialConv2d conv(k.ctx, layout, {3, 3, 1, 1, 1, 1, 1}, w);
  const GaloisKeys gk = k.keygen->create_galois_keys(conv.rotation_steps(), false);
  const auto ct = k.encrypt(layout.encode({random_reals(72, 2)}, k.slots()).front());
  EXPECT_EQ(error_code_of([&] { conv.apply(*k.eval, {ct}, gk); }, "1 input ciphertexts, the layer takes 2"),
            ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { conv.apply(*k.eval, {ct, ct}, GaloisKeys{}); }), ErrorCode::MissingKey);
  EXPECT_EQ(error_code_of([&] { layout.encode({random_reals(71, 2)}, k.slots()); }, "must hold 72 values"),
            ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace veil::test
