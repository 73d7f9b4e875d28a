// im2col convolution: encrypted result equals a plain double convolution in
// every slot of LinearLayer's layout; bad input is rejected.
#include "test_util.hpp"
#include "veil/nn/conv.hpp"

namespace veil::test {
namespace {

std::vector<double> plain_conv(const std::vector<double>& image, size_t width, size_t kernel, size_t stride,
                               size_t out_h, size_t out_w, const std::vector<double>& weights, size_t c,
                               double bias) {
  std::vector<double> out(out_h * out_w);
  for (size_t oy = 0; oy < out_h; ++oy)
    for (size_t ox = 0; ox < out_w; ++ox) {
      double sum = bias;
      for (size_t ky = 0; ky < kernel; ++ky)
        for (size_t kx = 0; kx < kernel; ++kx)
          sum += weights[c * kernel * kernel + ky * kernel + kx] *
                 image[(oy * stride + ky) * width + (ox * stride + kx)];
      out[oy * out_w + ox] = sum;
    }
  return out;
}

void check_conv(Keyed& k, size_t height, size_t width, size_t kernel, size_t stride, size_t channels) {
  auto image = random_reals(height * width, 51, 0, 1);
  auto weights = random_reals(channels * kernel * kernel, 52, -0.3, 0.3);
  auto bias = random_reals(channels, 53);
  nn::Conv2dIm2col conv(k.ctx, height, width, kernel, stride, weights, channels, bias);
  GaloisKeys gk = k.keygen->create_galois_keys(conv.rotation_steps(), false);
  auto ct = k.pk_encryptor->encrypt(k.encoder->encode(conv.encode_input(image)));
  auto outs = conv.apply(*k.eval, ct, gk);
  ASSERT_EQ(outs.size(), channels);
  const size_t d = conv.window_block();
  for (size_t c = 0; c < channels; ++c) {
    EXPECT_EQ(outs[c].level(), ct.level() - 1);
    EXPECT_DOUBLE_EQ(outs[c].scale(), ct.scale());
    auto want = plain_conv(image, width, kernel, stride, conv.out_height(), conv.out_width(), weights, c, bias[c]);
    auto got = k.decrypt(outs[c]);
    std::vector<double> expect(got.size()), have(got.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const size_t w = i % d;
      expect[i] = w < conv.windows() ? want[w] : bias[c];  // padded windows carry the bias
      have[i] = got[i];
    }
    auto p = precision(expect, have);
    report("conv " + std::to_string(height) + "x" + std::to_string(width) + " k" + std::to_string(kernel) +
               " s" + std::to_string(stride) + " channel " + std::to_string(c),
           *k.ctx, p);
    EXPECT_GE(p.mean_bits, 20.0);
    EXPECT_GE(p.worst_bits, 14.0);
  }
}

TEST(NnConv, ConvNetShape28x28Kernel7Stride3) { check_conv(Keyed::preset(13), 28, 28, 7, 3, 4); }

TEST(NnConv, OddShapeWithPaddedWindows) { check_conv(Keyed::preset(13), 11, 9, 3, 2, 2); }

TEST(NnConv, RotationStepsArePowersOfTwoTimesTheWindowBlock) {
  Keyed& k = Keyed::preset(13);
  nn::Conv2dIm2col conv(k.ctx, 28, 28, 7, 3, std::vector<double>(4 * 49, 0.1), 4);
  EXPECT_EQ(conv.windows(), 64u);
  EXPECT_EQ(conv.window_block(), 64u);
  EXPECT_EQ(conv.position_block(), 64u);
  EXPECT_EQ(conv.rotation_steps(), (std::vector<int64_t>{64, 128, 256, 512, 1024, 2048}));
}

TEST(NnConv, Im2colBatchInterleavesImages) {
  // 11x9 images, kernel 3, stride 2: 20 windows (d = 32), K = 16: 512 slots per image,
  // so a 4096-slot ring takes 8; run 5 of them.
  Keyed& k = Keyed::preset(13);
  const size_t h = 11, w = 9, kern = 3, stride = 2, channels = 2;
  auto weights = random_reals(channels * kern * kern, 91, -0.3, 0.3);
  auto bias = random_reals(channels, 92);
  nn::Conv2dIm2col conv(k.ctx, h, w, kern, stride, weights, channels, bias, -1, 0, /*batch=*/0);
  ASSERT_EQ(conv.batch(), 8u);
  std::vector<std::vector<double>> images;
  for (size_t i = 0; i < 5; ++i) images.push_back(random_reals(h * w, 93 + i, 0, 1));
  GaloisKeys gk = k.keygen->create_galois_keys(conv.rotation_steps(), false);
  auto outs = conv.apply(*k.eval, k.encrypt(conv.encode_inputs(images)), gk);
  for (size_t c = 0; c < channels; ++c) {
    auto got = k.decrypt(outs[c]);
    for (size_t i = 0; i < images.size(); ++i) {
      auto want = plain_conv(images[i], w, kern, stride, conv.out_height(), conv.out_width(), weights, c, bias[c]);
      std::vector<double> have(want.size());
      for (size_t j = 0; j < want.size(); ++j) have[j] = got[j * conv.batch() + i];  // logical slot j of image i
      auto p = precision(want, have);
      EXPECT_GE(p.mean_bits, 20.0) << "channel " << c << " image " << i;
    }
  }
}

// The taps layer sums every channel in one combine call; the words must be those of
// the plain definition: a plaintext-scalar product per tap, summed, rescaled. A zero
// weight and an all-zero channel are included, and one tap arrives a level higher.
TEST(NnConv, TapsSumsAreTheScalarProductsWordForWord) {
  Keyed& k = Keyed::preset(13);
  auto weights = random_reals(3 * 9, 111, -0.3, 0.3);
  weights[4] = 0.0;
  for (size_t p = 0; p < 9; ++p) weights[2 * 9 + p] = 0.0;  // channel 2: all zero
  const uint32_t level = k.ctx->max_level() - 1;
  nn::Conv2dTaps conv(k.ctx, 8, 8, 3, 1, weights, 3, {}, static_cast<int>(level));
  std::vector<std::vector<double>> images{random_reals(64, 112, 0, 1)};
  std::vector<Ciphertext> cts;
  for (const auto& s : conv.encode_inputs(images)) cts.push_back(k.eval->mod_switch_to(k.encrypt(s), level));
  cts[5] = k.encrypt(conv.encode_inputs(images)[5]);  // above the layer's level
  const auto outs = conv.apply(*k.eval, cts);
  ASSERT_EQ(outs.size(), 3u);
  for (size_t c = 0; c < 3; ++c) {
    Ciphertext acc;
    for (size_t p = 0; p < 9; ++p) {
      const double w = weights[c * 9 + p];
      if (w == 0.0) continue;
      const Ciphertext x = cts[p].level() == level ? cts[p] : k.eval->mod_switch_to(cts[p], level);
      Ciphertext term = k.eval->multiply_scalar(x, w);
      acc = acc.empty() ? std::move(term) : k.eval->add(acc, term);
    }
    if (acc.empty()) acc = k.eval->multiply_scalar(cts[0], 0.0);
    const Ciphertext want = k.eval->rescale(acc);
    ASSERT_EQ(outs[c].level(), want.level());
    EXPECT_EQ(outs[c].scale(), cts[0].scale());
    const std::vector<uint64_t> got(outs[c].poly(0), outs[c].poly(0) + 2 * outs[c].poly_words());
    const std::vector<uint64_t> ref(want.poly(0), want.poly(0) + 2 * want.poly_words());
    EXPECT_EQ(got, ref) << "channel " << c;
  }
}

TEST(NnConv, TapsLayoutNeedsNoRotation) {
  // The ConvNet shape: 49 tap ciphertexts, 64 windows, 4096 / 64 = 64 images per run.
  Keyed& k = Keyed::preset(13);
  auto weights = random_reals(4 * 49, 101, -0.3, 0.3);
  auto bias = random_reals(4, 102);
  nn::Conv2dTaps conv(k.ctx, 28, 28, 7, 3, weights, 4, bias);
  ASSERT_EQ(conv.batch(), 64u);
  ASSERT_EQ(conv.taps(), 49u);
  std::vector<std::vector<double>> images;
  for (size_t i = 0; i < 3; ++i) images.push_back(random_reals(784, 103 + i, 0, 1));
  std::vector<Ciphertext> cts;
  for (const auto& s : conv.encode_inputs(images)) cts.push_back(k.encrypt(s));
  auto outs = conv.apply(*k.eval, cts);
  ASSERT_EQ(outs.size(), 4u);
  for (size_t c = 0; c < 4; ++c) {
    EXPECT_EQ(outs[c].level(), cts[0].level() - 1);
    EXPECT_DOUBLE_EQ(outs[c].scale(), cts[0].scale());
    auto got = k.decrypt(outs[c]);
    for (size_t i = 0; i < images.size(); ++i) {
      auto want = plain_conv(images[i], 28, 7, 3, 8, 8, weights, c, bias[c]);
      std::vector<double> have(64);
      for (size_t j = 0; j < 64; ++j) have[j] = got[j * 64 + i];
      auto p = precision(want, have);
      report("conv taps 28x28 k7 s3 channel " + std::to_string(c) + " image " + std::to_string(i), *k.ctx, p);
      EXPECT_GE(p.mean_bits, 20.0);
    }
  }
  cts.pop_back();
  EXPECT_THROW(conv.apply(*k.eval, cts), Error);  // one tap missing
  EXPECT_THROW(nn::Conv2dTaps(k.ctx, 28, 28, 7, 3, weights, 4, bias, -1, 0, 128), Error);  // batch too large
  EXPECT_THROW(nn::Conv2dTaps(k.ctx, 28, 28, 7, 3, weights, 4, bias, -1, 0, 3), Error);    // not a power of two
  EXPECT_THROW(conv.encode_inputs(std::vector<std::vector<double>>(65, std::vector<double>(784))), Error);
}

TEST(NnConv, BadInput) {
  Keyed& k = Keyed::preset(13);
  std::vector<double> w(49, 0.1);
  EXPECT_THROW(nn::Conv2dIm2col(k.ctx, 28, 28, 7, 3, w, 2), Error);            // weights size
  EXPECT_THROW(nn::Conv2dIm2col(k.ctx, 5, 5, 7, 1, w, 1), Error);             // kernel > image
  EXPECT_THROW(nn::Conv2dIm2col(k.ctx, 28, 28, 7, 0, w, 1), Error);           // stride 0
  EXPECT_THROW(nn::Conv2dIm2col(k.ctx, 28, 28, 7, 3, w, 1, {1, 2}), Error);   // bias size
  EXPECT_THROW(nn::Conv2dIm2col(k.ctx, 28, 28, 7, 3, w, 1, {}, 0), Error);    // level 0
  EXPECT_THROW(nn::Conv2dIm2col(k.ctx, 200, 200, 7, 1, w, 1), Error);         // layout > slots
  nn::Conv2dIm2col conv(k.ctx, 28, 28, 7, 3, w, 1);
  EXPECT_THROW(conv.encode_input(std::vector<double>(10)), Error);
  auto ct = k.encrypt(conv.encode_input(std::vector<double>(784, 0.5)));
  GaloisKeys none;
  EXPECT_THROW(conv.apply(*k.eval, ct, none), Error);  // missing keys
  auto low = k.eval->mod_switch_to(ct, 0);
  GaloisKeys gk = k.keygen->create_galois_keys(conv.rotation_steps(), false);
  EXPECT_THROW(conv.apply(*k.eval, low, gk), Error);   // level too low
}

}  // namespace
}  // namespace veil::test
