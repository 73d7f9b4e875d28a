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
