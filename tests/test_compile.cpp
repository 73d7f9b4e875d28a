// The model compiler with automatic parameters (nn::compile_model): the digits
// ConvNet, and a property test over random layer stacks whose promise is checked
// by an independent encrypted run on fresh inputs and fresh keys.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "test_util.hpp"
#include "veil/nn/compile.hpp"
#include "veil/nn/convnet.hpp"

namespace veil::test {
namespace {

const std::string kWeights =
    (std::filesystem::path(__FILE__).parent_path() / "data" / "convnet_digits.weights").string();

using nn::ModelFile;
using nn::Sequential;

// -log2(max |error| / max(1, max |y|)) of one encrypted run on fresh random inputs
// in the file's range, with fresh keys: independent of the compiler's own dry run.
double measure_again(const ModelFile& m, uint64_t seed) {
  auto ctx = Context::create(m.params, BackendKind::Cpu);
  nn::CompiledModel plan(ctx, m.model, m.options);
  KeyGenerator keygen(ctx);
  const auto rk = keygen.create_relin_key();
  const auto gk = keygen.create_galois_keys(plan.rotation_steps(), false);
  Encoder encoder(ctx);
  Encryptor encryptor(ctx, keygen.create_public_key());
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator eval(ctx);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(m.input_min, m.input_max);
  std::vector<std::vector<double>> images(plan.batch(), std::vector<double>(m.model.height() * m.model.width()));
  for (auto& img : images)
    for (auto& v : img) v = dist(rng);
  std::vector<Ciphertext> in;
  for (const auto& slots : plan.encode(images))
    in.push_back(encryptor.encrypt(encoder.encode(slots, plan.input_scale(), static_cast<int>(plan.input_level()))));
  std::vector<std::vector<double>> decoded;
  for (const auto& ct : plan.run(eval, in, rk, gk)) decoded.push_back(encoder.decode(decryptor.decrypt(ct)));
  const auto got = plan.decode(decoded, images.size());
  double err = 0, ref = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const auto want = m.model.forward(images[i]);
    for (size_t f = 0; f < want.size(); ++f) {
      err = std::max(err, std::fabs(got[i][f] - want[f]));
      ref = std::max(ref, std::fabs(want[f]));
    }
  }
  return -std::log2(std::max(err, 1e-300) / std::max(1.0, ref));
}

void expect_sound(const ModelFile& m, const Sequential& model, double bits) {
  EXPECT_LE(m.params.log_qp(), he_standard_max_log_qp(m.params.log_n()));
  EXPECT_EQ(m.params.security(), Security::HEStandard128);
  EXPECT_GE(m.params.max_level(), nn::model_depth(model));
  EXPECT_GE(m.measured_bits, bits + 1);
  EXPECT_EQ(m.promised_bits, bits);
  EXPECT_GE(m.options.batch, 1u);
  // The file round-trips to the same plan.
  const ModelFile back = nn::deserialize_model(nn::serialize_model(m));
  EXPECT_EQ(back.params.fingerprint(), m.params.fingerprint());
  EXPECT_EQ(nn::serialize_model(back), nn::serialize_model(m));
}

TEST(Compile, DigitsConvNetGetsTheSmallestRingAndKeepsItsPromise) {
  const Sequential model = nn::convnet_model(nn::load_convnet_weights(kWeights));
  nn::AutoCompileOptions o;
  o.precision_bits = 12;
  std::vector<std::string> lines;
  o.progress = [&](const std::string& l) { lines.push_back(l); };
  const ModelFile m = nn::compile_model(model, "digits", o);
  expect_sound(m, model, 12);
  EXPECT_EQ(m.params.log_n(), 13u);  // depth 5 and 64 images fit 2^13
  EXPECT_EQ(nn::model_depth(model), 5u);
  EXPECT_GE(lines.size(), 2u);
  EXPECT_GE(measure_again(m, 99), 12.0);
  const std::string text = nn::explain(m);
  EXPECT_NE(text.find("N = 8192"), std::string::npos) << text;
  EXPECT_NE(text.find("measured"), std::string::npos) << text;
  const auto cost = nn::query_cost(m);
  EXPECT_GT(cost.upload_bytes, 0u);
  EXPECT_GT(cost.galois_keys, 0u);
}

TEST(Compile, AHigherPromiseCostsMoreBitsNeverSecurity) {
  const Sequential model = nn::convnet_model(nn::load_convnet_weights(kWeights));
  nn::AutoCompileOptions o;
  o.precision_bits = 20;
  const ModelFile m = nn::compile_model(model, "digits20", o);
  expect_sound(m, model, 20);
  EXPECT_GE(measure_again(m, 7), 20.0);
}

// A random stack over a small image: conv or not, squares and polynomials, pooling,
// linear layers of random widths.
Sequential random_model(std::mt19937_64& rng) {
  auto uni = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  auto pick = [&](size_t lo, size_t hi) { return std::uniform_int_distribution<size_t>(lo, hi)(rng); };
  auto weights = [&](size_t count, double scale) {
    std::vector<double> w(count);
    for (auto& x : w) x = uni(-scale, scale);
    return w;
  };
  const size_t side = pick(6, 10);
  Sequential m(side, side);
  if (rng() % 2) {
    const size_t ch = pick(1, 3), k = pick(2, 3), stride = pick(1, 2);
    m.conv2d(ch, k, stride, weights(ch * k * k, 0.5), weights(ch, 0.1));
    if (rng() % 2) m.square();
    if (rng() % 2 && m.output_shape().height >= 2) m.avg_pool2d(2);
  }
  m.flatten();
  const size_t layers = pick(1, 3);
  for (size_t i = 0; i < layers; ++i) {
    const size_t in = m.output_shape().size(), out = pick(2, 12);
    m.linear(out, weights(out * in, 1.0 / std::sqrt(static_cast<double>(in))), weights(out, 0.1));
    if (i + 1 < layers) {
      if (rng() % 2) m.square();
      else m.activation(nn::Polynomial::from_power({0.1, 0.5, 0.2}, -4, 4));
    }
  }
  return m;
}

TEST(Compile, RandomStacksStayWithinTheBoundAndKeepTheirPromise) {
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 5; ++trial) {
    const Sequential model = random_model(rng);
    nn::AutoCompileOptions o;
    o.precision_bits = static_cast<double>(8 + 2 * (rng() % 3));
    o.input_min = -1;
    o.seed = rng();
    const ModelFile m = nn::compile_model(model, "random" + std::to_string(trial), o);
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + m.params.describe());
    expect_sound(m, model, o.precision_bits);
    EXPECT_GE(measure_again(m, rng()), o.precision_bits);
  }
}

TEST(Compile, BadRequestsAreRefusedClearly) {
  Sequential m(4, 4);
  m.flatten().linear(2, std::vector<double>(32, 0.1));
  nn::AutoCompileOptions o;
  EXPECT_THROW(nn::compile_model(m, "bad name", o), Error);
  EXPECT_THROW(nn::compile_model(m, "", o), Error);
  o.precision_bits = 100;
  EXPECT_THROW(nn::compile_model(m, "m", o), Error);
  o.precision_bits = 12;
  o.input_min = 2, o.input_max = 1;
  EXPECT_THROW(nn::compile_model(m, "m", o), Error);
  // 40 bits through five levels cannot fit N = 2^13's 218 bits: refused with advice,
  // never with insecure parameters.
  m.square().linear(2, std::vector<double>(4, 0.1)).square().linear(2, std::vector<double>(4, 0.1)).square();
  nn::AutoCompileOptions greedy;
  greedy.precision_bits = 40;
  greedy.max_log_n = 13;
  try {
    nn::compile_model(m, "m", greedy);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported);
    EXPECT_NE(std::string(e.what()).find("precision"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace veil::test
