// RecordedComputation on the cpu backend (nothing to record: run() calls the
// computation) and its input checks, which are the same on every backend; and
// Evaluator::multiply_constant, the plaintext-free constant product recorded
// computations use. The cuda side: test_cuda_recording.cpp.
#include "test_util.hpp"
#include "veil/recorded_computation.hpp"

namespace veil::test {
namespace {

template <class F>
void expect_error(ErrorCode code, const std::string& fragment, F&& f) {
  try {
    f();
    ADD_FAILURE() << "no error thrown (expected one mentioning \"" << fragment << "\")";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(RecordedComputation, CpuRunsTheComputationAndChecksTheShape) {
  Keyed& k = Keyed::preset(13);
  const auto f = [&](const std::vector<Ciphertext>& in) {
    return std::vector<Ciphertext>{k.eval->rescale(k.eval->multiply(in[0], in[1], k.rk))};
  };
  const std::vector<Ciphertext> a = {k.encrypt(random_reals(k.slots(), 1)), k.encrypt(random_reals(k.slots(), 2))};
  const std::vector<Ciphertext> b = {k.encrypt(random_reals(k.slots(), 3)), k.encrypt(random_reals(k.slots(), 4))};
  RecordedComputation rec(f, a);
  EXPECT_FALSE(rec.replayed());
  EXPECT_EQ(rec.operations(), 0u);
  const auto out = rec.run(b);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(words_of(out[0]), words_of(f(b)[0]));
  const auto x = k.decrypt(b[0]), y = k.decrypt(b[1]), z = k.decrypt(out[0]);
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(z[i], x[i] * y[i], 1e-4) << i;

  expect_error(ErrorCode::InvalidArgument, "1 input ciphertext(s), recorded with 2", [&] { rec.run({b[0]}); });
  expect_error(ErrorCode::LevelMismatch, "input 1 is at level",
               [&] { rec.run({b[0], k.eval->mod_switch_to(b[1], b[1].level() - 1)}); });
  Ciphertext rescaled = b[1];
  rescaled.set_scale(b[1].scale() * 2);
  expect_error(ErrorCode::ScaleMismatch, "input 1 has scale", [&] { rec.run({b[0], rescaled}); });
  const Ciphertext product = k.eval->multiply_no_relin(b[0], b[1]);
  expect_error(ErrorCode::InvalidArgument, "polynomials", [&] { rec.run({b[0], product}); });
  expect_error(ErrorCode::InvalidArgument, "input 0 is empty", [&] { rec.run({Ciphertext(), b[1]}); });
  Keyed other(Parameters::preset(13), 9, false);
  expect_error(ErrorCode::ContextMismatch, "another context",
               [&] { rec.run({b[0], other.encrypt(random_reals(k.slots(), 5))}); });
}

TEST(RecordedComputation, BadConstructionIsRefused) {
  Keyed& k = Keyed::preset(13);
  const auto id = [](const std::vector<Ciphertext>& in) { return in; };
  expect_error(ErrorCode::InvalidArgument, "needs a ciphertext", [&] { RecordedComputation(id, {}); });
  expect_error(ErrorCode::InvalidArgument, "no computation", [&] {
    RecordedComputation(RecordedComputation::Function(), {k.encrypt({1.0})});
  });
  Keyed other(Parameters::preset(13), 9, false);
  expect_error(ErrorCode::ContextMismatch, "different contexts",
               [&] { RecordedComputation(id, {k.encrypt({1.0}), other.encrypt({1.0})}); });
  // What the computation throws comes through.
  const auto throws = [](const std::vector<Ciphertext>&) -> std::vector<Ciphertext> {
    throw Error(ErrorCode::MissingKey, "no key for this");
  };
  expect_error(ErrorCode::MissingKey, "no key for this", [&] { RecordedComputation(throws, {k.encrypt({1.0})}); });
}

// The words of multiply_plain by encode_constant, for constants of both signs, an
// exact half (rounding to even), and scales past 2^63 (round_to_rns's exact path).
TEST(RecordedComputation, MultiplyConstantEqualsAnEncodedConstant) {
  Keyed& k = Keyed::preset(13);
  const Ciphertext a = k.encrypt(random_reals(k.slots(), 6));
  for (const auto& [c, scale] : std::vector<std::pair<double, double>>{
           {0.75, 0x1p30}, {-1.25, 0x1p40}, {2.5, 1.0}, {-3.5, 1.0}, {1.0 / 3, 0x1p70}, {0.0, 0x1p20}}) {
    const Ciphertext direct = k.eval->multiply_constant(a, c, scale);
    const Ciphertext encoded =
        k.eval->multiply_plain(a, k.encoder->encode_constant(c, scale, static_cast<int>(a.level())));
    EXPECT_EQ(direct.scale(), encoded.scale()) << c;
    EXPECT_EQ(direct.level(), encoded.level()) << c;
    EXPECT_EQ(words_of(direct), words_of(encoded)) << "c = " << c << ", scale = " << scale;
  }
  expect_error(ErrorCode::InvalidArgument, "below 2^120", [&] { k.eval->multiply_constant(a, 1.0, 0x1p125); });
  expect_error(ErrorCode::ScaleMismatch, "too large", [&] { k.eval->multiply_constant(a, 1e-100, 0x1p400); });
}

}  // namespace
}  // namespace veil::test
