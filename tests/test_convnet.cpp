// The encrypted digits ConvNet (veil::nn::EncryptedConvNet) end to end: the file loaders
// against the float64 reference, encrypted inference at log_n 13 on a few test images
// (same class as the plaintext model, small logit error), the whole 400-image set batched
// 64 per ciphertext, and bad input.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include <unistd.h>

#include "test_util.hpp"
#include "veil/nn/convnet.hpp"

namespace veil::test {
namespace {

namespace fs = std::filesystem;
using nn::EncryptedConvNet;

const std::string kData = (fs::path(__FILE__).parent_path() / "data").string();
const std::string kWeights = kData + "/convnet_digits.weights";

const nn::ConvNetWeights& weights() {
  static const nn::ConvNetWeights w = nn::load_convnet_weights(kWeights);
  return w;
}

TEST(ConvNet, LoadersMatchTheReferenceLogits) {
  const auto& w = weights();
  EXPECT_EQ(w.conv_weight.size(), 4u * 49);
  EXPECT_EQ(w.fc1_weight.size(), 64u * 256);
  EXPECT_EQ(w.fc2_bias.size(), 10u);
  auto set = nn::load_convnet_test_set(kData);
  ASSERT_EQ(set.size(), 400u);
  size_t correct = 0;
  double worst = 0;
  for (size_t k = 0; k < set.size(); ++k) {
    auto logits = nn::plain_convnet_logits(w, set.images[k]);
    for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - set.logits[k][i]));
    EXPECT_EQ(nn::argmax(logits), set.predicted[k]) << "image " << k;
    correct += set.predicted[k] == set.labels[k];
  }
  // %.9g printing of float64 logits up to 49: the reference is exact to ~1e-7.
  EXPECT_LT(worst, 1e-6);
  EXPECT_EQ(correct, 392u);  // 98.00% (docs/convnet.md)
  EXPECT_EQ(nn::load_convnet_test_set(kData, 5).size(), 5u);
}

TEST(ConvNet, EncryptedInferenceMatchesPlaintext) {
  const size_t images = 6;
  auto set = nn::load_convnet_test_set(kData, images);
  auto ctx = Context::create(nn::convnet_parameters(13));
  EncryptedConvNet net(ctx, weights());
  EXPECT_EQ(net.input_level(), ctx->max_level());
  KeyGenerator keygen(ctx, RandomSource::insecure_deterministic(41));
  auto pk = keygen.create_public_key();
  auto rk = keygen.create_relin_key();
  auto steps = net.rotation_steps();
  ASSERT_FALSE(steps.empty());
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  auto gk = keygen.create_galois_keys(steps, false);  // minimal keys: infer must need nothing else
  Encoder encoder(ctx);
  Encryptor encryptor(ctx, pk, RandomSource::insecure_deterministic(42));
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator eval(ctx);

  std::vector<double> want, got;
  for (size_t k = 0; k < images; ++k) {
    auto ct = encryptor.encrypt(encoder.encode(net.encode_input(set.images[k])));
    auto out = net.infer(eval, ct, rk, gk);
    EXPECT_EQ(out.level(), net.output_level());
    auto logits = net.decode_logits(encoder.decode(decryptor.decrypt(out)));
    ASSERT_EQ(logits.size(), 10u);
    EXPECT_EQ(nn::argmax(logits), set.predicted[k]) << "image " << k;
    want.insert(want.end(), set.logits[k].begin(), set.logits[k].end());
    got.insert(got.end(), logits.begin(), logits.end());
  }
  auto p = precision(want, got);
  report("convnet logits (" + std::to_string(images) + " images)", *ctx, p);
  // Measured: worst ~0.003 (8.4 bits) on 400 images; 0.03 leaves a 10x margin and stays
  // 4x below the smallest top-1/top-2 gap of the test set (0.12).
  EXPECT_GE(p.worst_bits, -std::log2(0.03));
}

// The whole labelled test set (400 images) encrypted, 64 images per run (Packing::Taps at
// N = 8192): the same class as the float64 model on >= 99% of the images, and the max
// logit error reported in bits.
TEST(ConvNet, BatchedInferenceOnTheWholeTestSet) {
  auto set = nn::load_convnet_test_set(kData);
  ASSERT_GE(set.size(), 200u);
  auto ctx = Context::create(nn::convnet_parameters(13));
  nn::CompiledModel model(ctx, nn::convnet_model(weights()));
  ASSERT_EQ(model.batch(), 64u);
  ASSERT_EQ(model.input_ciphertexts(), 49u);
  KeyGenerator keygen(ctx, RandomSource::insecure_deterministic(51));
  auto pk = keygen.create_public_key();
  auto rk = keygen.create_relin_key();
  auto gk = keygen.create_galois_keys(model.rotation_steps(), false);
  Encoder encoder(ctx);
  Encryptor encryptor(ctx, pk, RandomSource::insecure_deterministic(52));
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator eval(ctx);

  size_t agree = 0, correct = 0;
  std::vector<double> want, got;
  for (size_t first = 0; first < set.size(); first += model.batch()) {
    const size_t count = std::min(model.batch(), set.size() - first);
    std::vector<std::vector<double>> images(set.images.begin() + static_cast<std::ptrdiff_t>(first),
                                            set.images.begin() + static_cast<std::ptrdiff_t>(first + count));
    std::vector<Ciphertext> in;
    for (const auto& slots : model.encode(images)) in.push_back(encryptor.encrypt(encoder.encode(slots)));
    std::vector<std::vector<double>> decoded;
    for (const auto& ct : model.run(eval, in, rk, gk)) decoded.push_back(encoder.decode(decryptor.decrypt(ct)));
    auto logits = model.decode(decoded, count);
    for (size_t j = 0; j < count; ++j) {
      const int cls = nn::argmax(logits[j]);
      agree += cls == set.predicted[first + j];
      correct += cls == set.labels[first + j];
      want.insert(want.end(), set.logits[first + j].begin(), set.logits[first + j].end());
      got.insert(got.end(), logits[j].begin(), logits[j].end());
    }
  }
  auto p = precision(want, got);
  report("convnet logits, all " + std::to_string(set.size()) + " images, 64 per ciphertext", *ctx, p);
  std::printf("[convnet] %zu images: agreement %.2f%%, accuracy %.2f%%\n", set.size(),
              100.0 * static_cast<double>(agree) / static_cast<double>(set.size()),
              100.0 * static_cast<double>(correct) / static_cast<double>(set.size()));
  EXPECT_GE(static_cast<double>(agree), 0.99 * static_cast<double>(set.size()));
  EXPECT_GE(p.worst_bits, -std::log2(0.03));  // as above: 4x below the smallest logit gap
}

TEST(ConvNet, TooLittleDepthIsRejected) {
  auto ctx = Context::create(Parameters::preset(13));  // L = 2 < 5
  try {
    EncryptedConvNet net(ctx, weights());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::LevelMismatch);
    EXPECT_NE(std::string(e.what()).find("5 levels"), std::string::npos) << e.what();
  }
  EXPECT_EQ(error_code_of([] { nn::convnet_parameters(12); }), ErrorCode::InvalidArgument);
  auto w = weights();
  w.fc1_bias.pop_back();
  auto ok = Context::create(nn::convnet_parameters(13));
  EXPECT_EQ(error_code_of([&] { EncryptedConvNet net(ok, w); }), ErrorCode::InvalidArgument);
}

// Writes the weights file with `edit` applied to its text and expects InvalidArgument.
void expect_malformed(const std::string& name, const std::function<void(std::string&)>& edit) {
  std::ifstream in(kWeights);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  edit(text);
  const fs::path path = fs::temp_directory_path() / ("veil_convnet_bad_" + std::to_string(::getpid()) + "_" + name + ".weights");
  std::ofstream(path) << text;
  try {
    nn::load_convnet_weights(path.string());
    ADD_FAILURE() << name << ": no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << name;
    std::printf("  %s: %s\n", name.c_str(), e.what());
  }
  fs::remove(path);
}

void replace_first(std::string& s, const std::string& from, const std::string& to) {
  auto pos = s.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  s.replace(pos, from.size(), to);
}

TEST(ConvNet, MalformedWeightsAreRejected) {
  EXPECT_EQ(error_code_of([] { nn::load_convnet_weights(kData + "/no_such_file"); }), ErrorCode::InvalidArgument);
  expect_malformed("name", [](std::string& s) { replace_first(s, "fc1.bias 1 64", "fc1.biaz 1 64"); });
  expect_malformed("shape", [](std::string& s) { replace_first(s, "fc2.weight 10 64", "fc2.weight 10 63"); });
  expect_malformed("header", [](std::string& s) { replace_first(s, "conv.bias 1 4", "conv.bias 1"); });
  expect_malformed("number", [](std::string& s) { replace_first(s, "0.118606277", "0.1186x06277"); });
  expect_malformed("nan", [](std::string& s) { replace_first(s, "0.118606277", "nan"); });
  expect_malformed("overflow", [](std::string& s) { replace_first(s, "0.118606277", "1e50"); });
  expect_malformed("short_row", [](std::string& s) { replace_first(s, "0.118606277 ", ""); });
  expect_malformed("truncated", [](std::string& s) { s.resize(s.size() / 2); });
  expect_malformed("trailing", [](std::string& s) { s += "extra 1 1\n0\n"; });
  expect_malformed("empty", [](std::string& s) { s.clear(); });
}

TEST(ConvNet, MissingTestDataIsRejected) {
  EXPECT_EQ(error_code_of([] { nn::load_convnet_test_set("/nonexistent_veil_dir"); }), ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace veil::test
