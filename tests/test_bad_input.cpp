// Every public entry point rejects bad input with veil::Error (one test per
// case): mismatched contexts, wrong levels, mismatched scales, missing keys,
// insecure parameters, malformed values.
#include "test_util.hpp"

namespace veil::test {
namespace {

Keyed& A() { return Keyed::preset(13); }
// Same parameters, different context and keys.
Keyed& B() {
  static Keyed other(Parameters::preset(13), 1234, false);
  return other;
}

TEST(BadInput, CiphertextsFromDifferentContexts) {
  auto a = A().encrypt({0.5}), b = B().encrypt({0.5});
  EXPECT_VEIL_ERROR(A().eval->add(a, b), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(A().eval->multiply(a, b, A().rk), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(A().eval->negate(b), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(A().decryptor->decrypt(b), ErrorCode::ContextMismatch);
}

TEST(BadInput, PlaintextFromDifferentContext) {
  auto a = A().encrypt({0.5});
  auto p = B().encoder->encode(std::vector<double>{0.5});
  EXPECT_VEIL_ERROR(A().eval->add_plain(a, p), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(A().eval->multiply_plain(a, p), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(A().pk_encryptor->encrypt(p), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(A().encoder->decode(p), ErrorCode::ContextMismatch);
}

TEST(BadInput, KeysFromDifferentContext) {
  auto a = A().encrypt({0.5});
  EXPECT_VEIL_ERROR(A().eval->multiply(a, a, B().rk), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(Encryptor(A().ctx, B().pk), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(Decryptor(A().ctx, B().keygen->secret_key()), ErrorCode::ContextMismatch);
  GaloisKeys foreign = B().keygen->create_galois_keys({1}, false);
  EXPECT_VEIL_ERROR(A().eval->rotate(a, 1, foreign), ErrorCode::ContextMismatch);
}

TEST(BadInput, EmptyObjects) {
  Ciphertext empty;
  EXPECT_VEIL_ERROR(A().eval->negate(empty), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(A().eval->rescale(empty), ErrorCode::ContextMismatch);
  auto a = A().encrypt({0.5});
  RelinKey none;
  EXPECT_VEIL_ERROR(A().eval->relinearize(A().eval->multiply_no_relin(a, a), none), ErrorCode::MissingKey);
}

TEST(BadInput, RescaleAtLevelZero) {
  auto a = A().eval->mod_switch_to(A().encrypt({0.5}), 0);
  EXPECT_VEIL_ERROR(A().eval->rescale(a), ErrorCode::LevelMismatch);
}

TEST(BadInput, ModSwitchUpward) {
  auto a = A().eval->mod_switch_to(A().encrypt({0.5}), 0);
  EXPECT_VEIL_ERROR(A().eval->mod_switch_to(a, 1), ErrorCode::LevelMismatch);
}

TEST(BadInput, EncodeAboveTopLevel) {
  EXPECT_VEIL_ERROR(A().encoder->encode(std::vector<double>{1.0}, 0, 99), ErrorCode::LevelMismatch);
  EXPECT_VEIL_ERROR(A().pk_encryptor->encrypt_zero(99, 1024.0), ErrorCode::LevelMismatch);
}

TEST(BadInput, MismatchedScalesInAdd) {
  auto a = A().encrypt({0.5});
  auto b = A().pk_encryptor->encrypt(A().encoder->encode(std::vector<double>{0.5}, std::pow(2.0, 33.5)));
  EXPECT_VEIL_ERROR(A().eval->add(a, b), ErrorCode::ScaleMismatch);  // ratio not an integer
  auto p = A().encoder->encode(std::vector<double>{0.5}, std::ldexp(1.0, 35));
  EXPECT_VEIL_ERROR(A().eval->add_plain(a, p), ErrorCode::ScaleMismatch);
}

TEST(BadInput, IntegerScaleRatioIsMatchedAutomatically) {
  auto a = A().encrypt({0.5});
  auto b = A().pk_encryptor->encrypt(A().encoder->encode(std::vector<double>{0.25}, std::ldexp(1.0, 38)));
  auto sum = A().eval->add(a, b);  // scale ratio 4: b is multiplied by 4 exactly
  EXPECT_DOUBLE_EQ(sum.scale(), a.scale());
  EXPECT_NEAR(A().decrypt(sum)[0], 0.75, 1e-6);
}

TEST(BadInput, ProductScaleTooLarge) {
  auto a = A().encrypt({0.5});
  auto sq = A().eval->multiply(a, a, A().rk);            // 2^80 (no rescale)
  auto sq2 = A().eval->multiply(sq, sq, A().rk);          // 2^160 is still < log QP
  EXPECT_VEIL_ERROR(A().eval->multiply(sq2, sq2, A().rk), ErrorCode::ScaleMismatch);  // 2^320 > 190
}

// Scales a ciphertext cannot carry are refused where they arise (found by fuzzing:
// they used to serialize and then fail to load).
TEST(BadInput, ScalesOverflowingOrVanishingAreRefused) {
  Plaintext huge = A().encoder->encode(std::vector<double>{0.0}, 0x1p1000);
  Ciphertext h = A().pk_encryptor->encrypt(huge);
  EXPECT_VEIL_ERROR(A().eval->multiply_scalar(h, 2.0), ErrorCode::ScaleMismatch);  // 2^1000 x q: inf
  Ciphertext t = A().encrypt({0.5});
  t.set_scale(0x1p-1000);  // 2^-1000 / q is no normal double
  EXPECT_VEIL_ERROR(A().eval->rescale(t), ErrorCode::ScaleMismatch);
}

TEST(BadInput, MissingGaloisKey) {
  auto a = A().encrypt({0.5});
  GaloisKeys none;
  EXPECT_VEIL_ERROR(A().eval->rotate(a, 3, none), ErrorCode::MissingKey);
  EXPECT_VEIL_ERROR(A().eval->conjugate(a, none), ErrorCode::MissingKey);
  GaloisKeys only_one = A().keygen->create_galois_keys({1}, false);
  EXPECT_VEIL_ERROR(A().eval->rotate_hoisted(a, {1, 2}, only_one), ErrorCode::MissingKey);
}

TEST(BadInput, RotateOrMultiplyUnrelinearized) {
  auto a = A().encrypt({0.5});
  auto three = A().eval->multiply_no_relin(a, a);
  EXPECT_VEIL_ERROR(A().eval->rotate(three, 1, A().gk), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(A().eval->multiply_no_relin(three, a), ErrorCode::InvalidArgument);
}

TEST(BadInput, TooManyOrNonFiniteValues) {
  std::vector<double> too_many(A().slots() + 1, 0.0);
  EXPECT_VEIL_ERROR(A().encoder->encode(too_many), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(A().encoder->encode(std::vector<double>{NAN}), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(A().encoder->encode(std::vector<double>{INFINITY}), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(A().encoder->encode(std::vector<double>{1e200}), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(A().eval->add_scalar(A().encrypt({0.5}), NAN), ErrorCode::InvalidArgument);
}

TEST(BadInput, InsecureParametersRefused) {
  ParameterSpec spec;
  spec.log_n = 13;
  spec.q_bits = {60, 40, 40, 40};
  spec.p_bits = {60};  // 240 > 218 bits
  EXPECT_VEIL_ERROR(Parameters::create(spec), ErrorCode::InsecureParameters);
  spec.security = Security::InsecureTestingOnly;  // explicit opt-in works (and warns)
  EXPECT_NO_THROW(Parameters::create(spec));
}

TEST(BadInput, InvalidParameterShapes) {
  ParameterSpec spec;
  spec.log_n = 11;
  spec.q_bits = {30};
  spec.p_bits = {30};
  EXPECT_VEIL_ERROR(Parameters::create(spec), ErrorCode::InvalidArgument);  // N too small
  spec.log_n = 13;
  spec.q_bits = {};
  EXPECT_VEIL_ERROR(Parameters::create(spec), ErrorCode::InvalidArgument);  // no primes
  spec.q_bits = {70};
  EXPECT_VEIL_ERROR(Parameters::create(spec), ErrorCode::InvalidArgument);  // prime too large
  spec.q_bits = {40};
  spec.p_bits = {};
  EXPECT_VEIL_ERROR(Parameters::create(spec), ErrorCode::InvalidArgument);  // no special prime
}

TEST(BadInput, FromPrimesValidatesEveryModulus) {
  auto good = Parameters::preset(13);
  auto q = good.q();
  EXPECT_VEIL_ERROR(Parameters::from_primes(13, {uint64_t{16385} * 16385}, good.p(), good.default_scale(),
                                            Security::HEStandard128),
                    ErrorCode::InvalidArgument);  // 1 mod 2N but composite
  EXPECT_VEIL_ERROR(Parameters::from_primes(13, {q[0], q[0]}, good.p(), good.default_scale(), Security::HEStandard128),
                    ErrorCode::InvalidArgument);  // duplicate
  // The same primes with N = 2^12 exceed that ring's 109-bit bound.
  EXPECT_VEIL_ERROR(Parameters::from_primes(12, q, good.p(), good.default_scale(), Security::HEStandard128),
                    ErrorCode::InsecureParameters);
  EXPECT_VEIL_ERROR(Parameters::from_primes(13, q, good.p(), 0.5, Security::HEStandard128),
                    ErrorCode::InvalidArgument);  // scale below 2
}

TEST(BadInput, CudaBackendUnavailableIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present; this checks the no-device path";
  EXPECT_VEIL_ERROR(Context::create(Parameters::preset(13), BackendKind::Cuda), ErrorCode::Unsupported);
  EXPECT_EQ(Context::create(Parameters::preset(13), BackendKind::Auto)->backend().name(), "cpu");
}

TEST(BadInput, GaloisElementChecks) {
  EXPECT_VEIL_ERROR(A().keygen->create_galois_key(2), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(A().keygen->create_galois_key(1), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(A().keygen->create_galois_key(4 * A().ctx->n() + 1), ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace veil::test
