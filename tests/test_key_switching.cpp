// Hybrid key switching with dnum in {1, 2, 3, L+1}: relinearization and
// rotation decrypt correctly, at the top level and below it.
#include "test_util.hpp"

namespace veil::test {
namespace {

// N = 2^15 fits every dnum securely with Q = {50, 40 x 5} (250 bits) and
// 50-bit special primes (P is at least 10 bits above every digit).
Parameters params_for_dnum(int dnum) {
  ParameterSpec spec;
  spec.log_n = 15;
  spec.q_bits = {50, 40, 40, 40, 40, 40};
  spec.with_dnum(dnum, dnum == 6 ? 60 : 50);
  return Parameters::create(spec);
}

class KeySwitchDnum : public ::testing::TestWithParam<int> {};

TEST_P(KeySwitchDnum, RelinearizeAndRotateDecryptCorrectly) {
  const int dnum = GetParam();
  Keyed k(params_for_dnum(dnum), 31, /*galois=*/false);
  ASSERT_EQ(static_cast<int>(k.ctx->params().dnum()), dnum);
  GaloisKeys gk = k.keygen->create_galois_keys({3}, false);
  const double floor = lattigo_floor(*k.ctx, k.ctx->params().default_scale());
  auto x = random_reals(k.slots(), 32), y = random_reals(k.slots(), 33);
  std::vector<double> prod(x.size()), rot(x.size());
  for (size_t i = 0; i < x.size(); ++i) prod[i] = x[i] * y[i];
  for (size_t i = 0; i < x.size(); ++i) rot[i] = prod[(i + 3) % x.size()];

  auto ct = k.eval->rescale(k.eval->multiply(k.encrypt(x), k.encrypt(y), k.rk));  // top-level key switch
  auto p_mul = precision(prod, k.decrypt(ct));
  auto ct_rot = k.eval->rotate(ct, 3, gk);  // one level down: fewer digits
  auto p_rot = precision(rot, k.decrypt(ct_rot));
  auto low = k.eval->mod_switch_to(ct, 1);  // lowest level with a multiplication left
  auto p_low = precision(rot, k.decrypt(k.eval->rotate(low, 3, gk)));
  report("dnum=" + std::to_string(dnum) + " mul+relin+rescale", *k.ctx, p_mul);
  report("dnum=" + std::to_string(dnum) + " rotate", *k.ctx, p_rot);
  EXPECT_GE(p_mul.mean_bits, floor);
  EXPECT_GE(p_rot.mean_bits, floor);
  EXPECT_GE(p_low.mean_bits, floor);
}

INSTANTIATE_TEST_SUITE_P(Dnum, KeySwitchDnum, ::testing::Values(1, 2, 3, 6),
                         [](const auto& info) { return "dnum" + std::to_string(info.param); });

TEST(KeySwitch, ComposedKeysMatchDirectKeyValues) {
  // Rotation by 5 with its own key and composed from 4 + 1 decrypt to the same values.
  Keyed& k = Keyed::preset(13);
  auto x = random_reals(k.slots(), 34);
  auto ct = k.encrypt(x);
  GaloisKeys direct = k.keygen->create_galois_keys({5}, false);
  auto a = k.decrypt(k.eval->rotate(ct, 5, direct));
  auto b = k.decrypt(k.eval->rotate(ct, 5, k.gk));
  for (size_t i = 0; i < 64; ++i) EXPECT_NEAR(a[i], b[i], 1e-5);
  EXPECT_NEAR(a[0], x[5], 1e-5);
}

}  // namespace
}  // namespace veil::test
