// Object::to(context): ciphertexts, plaintexts and keys copied into another
// context of the same parameters (here two cpu contexts; the cpu <-> cuda
// round trip is in test_cuda_backend.cpp). The copy must be word for word, keep
// level/scale/seeds, compute the same results there, and refuse other parameters.
#include "test_util.hpp"

namespace veil::test {
namespace {

Parameters small_params() {
  ParameterSpec spec;
  spec.log_n = 13;
  spec.q_bits = {50, 40, 40};
  spec.p_bits = {60};
  return Parameters::create(spec);
}

TEST(Transfer, CiphertextsAndKeysComputeTheSameInAnotherContext) {
  const Parameters params = small_params();
  Keyed a(params, 31, true, BackendKind::Cpu, {1, 3});
  const ContextPtr b = Context::create(params, BackendKind::Cpu);
  ASSERT_NE(a.ctx->id(), b->id());

  const auto x = random_reals(a.slots(), 1), y = random_reals(a.slots(), 2);
  const Ciphertext xa = a.encrypt(x), ya = a.encrypt(y, false);
  ASSERT_TRUE(ya.c1_seed().has_value());

  const Ciphertext xb = xa.to(b), yb = ya.to(b);
  EXPECT_EQ(xb.context()->id(), b->id());
  EXPECT_EQ(xb.level(), xa.level());
  EXPECT_EQ(xb.scale(), xa.scale());
  EXPECT_EQ(xb.size(), xa.size());
  EXPECT_EQ(yb.c1_seed(), ya.c1_seed());
  EXPECT_EQ(words_of(xb), words_of(xa));

  // The server side, in context b, with transferred evaluation keys.
  const RelinKey rk = a.rk.to(b);
  const GaloisKeys gk = a.gk.to(b);
  ASSERT_EQ(gk.keys.size(), a.gk.keys.size());
  Evaluator eval_b(b);
  const Ciphertext prod_b = eval_b.rescale(eval_b.multiply(xb, yb, rk));
  const Ciphertext rot_b = eval_b.rotate(prod_b, 3, gk);
  const Ciphertext rot_a = a.eval->rotate(a.eval->rescale(a.eval->multiply(xa, ya, a.rk)), 3, a.gk);
  EXPECT_EQ(words_of(rot_b), words_of(rot_a));

  // Back to the client's context, and a transferred secret key decrypts in b too.
  const Ciphertext back = rot_b.to(a.ctx);
  EXPECT_EQ(words_of(back), words_of(rot_a));
  const auto got = a.decrypt(back);
  const SecretKey sk_b = a.keygen->secret_key().to(b);
  Decryptor dec_b(b, sk_b);
  Encoder enc_b(b);
  EXPECT_EQ(enc_b.decode(dec_b.decrypt(rot_b)), got);
  std::vector<double> want(a.slots());
  for (size_t i = 0; i < want.size(); ++i) want[i] = x[(i + 3) % want.size()] * y[(i + 3) % want.size()];
  EXPECT_GE(precision(want, got).mean_bits, 20.0);

  // Public key and plaintexts travel too.
  Encryptor enc_pk_b(b, a.pk.to(b), RandomSource::insecure_deterministic(5));
  const Plaintext pa = a.encoder->encode(x);
  const Plaintext pb = pa.to(b);
  EXPECT_EQ(pb.level(), pa.level());
  EXPECT_EQ(pb.scale(), pa.scale());
  const auto round_trip = enc_b.decode(dec_b.decrypt(enc_pk_b.encrypt(pb)));
  EXPECT_GE(precision(x, round_trip).mean_bits, 20.0);
}

TEST(Transfer, SameContextIsADeepCopy) {
  Keyed a(small_params(), 32, false);
  Ciphertext x = a.encrypt(random_reals(a.slots(), 3));
  const Ciphertext copy = x.to(a.ctx);
  const auto before = words_of(copy);
  x = a.eval->negate(x);
  EXPECT_EQ(words_of(copy), before);
  EXPECT_NE(words_of(x), before);
}

TEST(Transfer, RefusesOtherParametersAndEmptyObjects) {
  Keyed a(small_params(), 33, false);
  ParameterSpec spec;  // same N, one prime fewer
  spec.log_n = 13;
  spec.q_bits = {50, 40};
  spec.p_bits = {60};
  const ContextPtr other = Context::create(Parameters::create(spec));
  const Ciphertext x = a.encrypt(random_reals(a.slots(), 4));
  EXPECT_VEIL_ERROR(x.to(other), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(a.rk.to(other), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(a.pk.to(other), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(a.keygen->secret_key().to(other), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(a.encoder->encode(std::vector<double>{1.0}).to(other), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(x.to(nullptr), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(Ciphertext().to(a.ctx), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(SwitchingKey().to(a.ctx), ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace veil::test
