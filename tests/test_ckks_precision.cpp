// CKKS correctness, measured as precision in bits against plain double
// evaluation on random inputs in [-1, 1] at scale 2^40 (N = 2^14 preset).
// Floors: Lattigo's rule for fresh and linear operations, minus a documented
// allowance per rescale / key switch (docs/precision.md).
#include "test_util.hpp"

namespace veil::test {
namespace {

constexpr uint32_t kLogN = 14;
// Each rescale adds rounding noise ~ ||s|| ~ sqrt(N): allow 4 bits per rescale.
constexpr double kRescaleAllowance = 4.0;

Keyed& K() { return Keyed::preset(kLogN); }
double floor_bits() { return lattigo_floor(*K().ctx, K().ctx->params().default_scale()); }

TEST(CkksPrecision, FreshRoundTripPublicKey) {
  auto x = random_reals(K().slots(), 1);
  auto p = precision(x, K().decrypt(K().encrypt(x, true)));
  report("fresh (public key)", *K().ctx, p);
  EXPECT_GE(p.mean_bits, floor_bits());
}

TEST(CkksPrecision, FreshRoundTripSecretKey) {
  auto x = random_reals(K().slots(), 2);
  auto p = precision(x, K().decrypt(K().encrypt(x, false)));
  report("fresh (secret key)", *K().ctx, p);
  EXPECT_GE(p.mean_bits, floor_bits());
}

TEST(CkksPrecision, ShortVectorIsZeroPadded) {
  std::vector<double> x{0.25, -0.5, 0.75};
  auto out = K().decrypt(K().encrypt(x));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(out[i], x[i], 1e-6);
  for (size_t i = x.size(); i < 64; ++i) EXPECT_NEAR(out[i], 0.0, 1e-6);
}

TEST(CkksPrecision, AddSubNegate) {
  auto x = random_reals(K().slots(), 3), y = random_reals(K().slots(), 4);
  auto cx = K().encrypt(x), cy = K().encrypt(y);
  std::vector<double> sum(x.size()), diff(x.size()), neg(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    sum[i] = x[i] + y[i];
    diff[i] = x[i] - y[i];
    neg[i] = -x[i];
  }
  auto p_add = precision(sum, K().decrypt(K().eval->add(cx, cy)));
  auto p_sub = precision(diff, K().decrypt(K().eval->sub(cx, cy)));
  auto p_neg = precision(neg, K().decrypt(K().eval->negate(cx)));
  report("add ct+ct", *K().ctx, p_add);
  EXPECT_GE(p_add.mean_bits, floor_bits());
  EXPECT_GE(p_sub.mean_bits, floor_bits());
  EXPECT_GE(p_neg.mean_bits, floor_bits());
}

TEST(CkksPrecision, AddPlainAndScalar) {
  auto x = random_reals(K().slots(), 5), y = random_reals(K().slots(), 6);
  auto cx = K().encrypt(x);
  std::vector<double> sum(x.size()), diff(x.size()), plus_c(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    sum[i] = x[i] + y[i];
    diff[i] = x[i] - y[i];
    plus_c[i] = x[i] + 0.3125;
  }
  auto py = K().encoder->encode(y);
  auto p_add = precision(sum, K().decrypt(K().eval->add_plain(cx, py)));
  auto p_sub = precision(diff, K().decrypt(K().eval->sub_plain(cx, py)));
  auto p_sc = precision(plus_c, K().decrypt(K().eval->add_scalar(cx, 0.3125)));
  report("add ct+pt", *K().ctx, p_add);
  report("add ct+scalar", *K().ctx, p_sc);
  EXPECT_GE(p_add.mean_bits, floor_bits());
  EXPECT_GE(p_sub.mean_bits, floor_bits());
  EXPECT_GE(p_sc.mean_bits, floor_bits());
}

TEST(CkksPrecision, MultiplyRelinRescale) {
  auto x = random_reals(K().slots(), 7), y = random_reals(K().slots(), 8);
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = x[i] * y[i];
  auto prod = K().eval->rescale(K().eval->multiply(K().encrypt(x), K().encrypt(y), K().rk));
  EXPECT_EQ(prod.level(), K().ctx->max_level() - 1);
  EXPECT_NEAR(std::log2(prod.scale()), 40.0, 0.01);
  auto p = precision(want, K().decrypt(prod));
  report("ct*ct + relin + rescale", *K().ctx, p);
  EXPECT_GE(p.mean_bits, floor_bits() - kRescaleAllowance + 4);  // measured ~29 bits
}

TEST(CkksPrecision, MultiplyPlainAndScalar) {
  auto x = random_reals(K().slots(), 9), y = random_reals(K().slots(), 10);
  std::vector<double> want(x.size()), want_c(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    want[i] = x[i] * y[i];
    want_c[i] = x[i] * -0.7;
  }
  auto cx = K().encrypt(x);
  auto prod = K().eval->rescale(K().eval->multiply_plain(cx, K().encoder->encode(y)));
  auto p = precision(want, K().decrypt(prod));
  report("ct*pt + rescale", *K().ctx, p);
  EXPECT_GE(p.mean_bits, floor_bits());
  auto scaled = K().eval->rescale(K().eval->multiply_scalar(cx, -0.7));
  EXPECT_DOUBLE_EQ(scaled.scale(), cx.scale());  // scalar encoded at q_level: scale restored exactly
  auto pc = precision(want_c, K().decrypt(scaled));
  report("ct*scalar + rescale", *K().ctx, pc);
  EXPECT_GE(pc.mean_bits, floor_bits());
  auto tripled = K().eval->multiply_integer(cx, -3);
  std::vector<double> want3(x.size());
  for (size_t i = 0; i < x.size(); ++i) want3[i] = -3 * x[i];
  EXPECT_GE(precision(want3, K().decrypt(tripled)).mean_bits, floor_bits() - 2);
}

TEST(CkksPrecision, DepthFiveChain) {
  auto x = random_reals(K().slots(), 11);
  std::vector<double> want = x;
  auto acc = K().encrypt(x);
  for (int d = 0; d < 5; ++d) {
    auto y = random_reals(K().slots(), 100 + d);
    for (size_t i = 0; i < want.size(); ++i) want[i] *= y[i];
    acc = K().eval->rescale(K().eval->multiply(acc, K().encrypt(y), K().rk));
  }
  EXPECT_EQ(acc.level(), K().ctx->max_level() - 5);
  auto p = precision(want, K().decrypt(acc));
  report("depth-5 ct*ct chain", *K().ctx, p);
  EXPECT_GE(p.mean_bits, floor_bits() - kRescaleAllowance);
}

TEST(CkksPrecision, SquareMatchesMultiply) {
  auto x = random_reals(K().slots(), 12);
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = x[i] * x[i];
  auto p = precision(want, K().decrypt(K().eval->rescale(K().eval->square(K().encrypt(x), K().rk))));
  EXPECT_GE(p.mean_bits, floor_bits());
}

std::vector<double> rotated(const std::vector<double>& x, int64_t step) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<double> out(x.size());
  for (int64_t i = 0; i < n; ++i) out[i] = x[static_cast<size_t>((((i + step) % n) + n) % n)];
  return out;
}

TEST(CkksPrecision, RotateEveryPowerOfTwo) {
  auto x = random_reals(K().slots(), 13);
  auto cx = K().encrypt(x);
  double worst_mean = 1e9;
  for (int64_t step = 1; step < static_cast<int64_t>(K().slots()); step <<= 1) {
    for (int64_t s : {step, -step}) {
      auto p = precision(rotated(x, s), K().decrypt(K().eval->rotate(cx, s, K().gk)));
      worst_mean = std::min(worst_mean, p.mean_bits);
      EXPECT_GE(p.mean_bits, floor_bits()) << "step " << s;
    }
  }
  report("rotate (every power of two, lowest)", *K().ctx, {worst_mean, worst_mean});
}

TEST(CkksPrecision, RotateRandomStepsByComposition) {
  auto x = random_reals(K().slots(), 14);
  auto cx = K().encrypt(x);
  std::mt19937_64 rng(15);
  for (int i = 0; i < 4; ++i) {
    int64_t s = static_cast<int64_t>(rng() % K().slots()) - static_cast<int64_t>(K().slots() / 2);
    auto p = precision(rotated(x, s), K().decrypt(K().eval->rotate(cx, s, K().gk)));
    report("rotate random step " + std::to_string(s), *K().ctx, p);
    // Composition costs one key switch per non-zero signed digit.
    EXPECT_GE(p.mean_bits, floor_bits() - 2) << "step " << s;
  }
}

TEST(CkksPrecision, RotateByAlmostAllSlotsComposesCorrectly) {
  // slots - 1 has the signed-digit form 2^logslots - 1: the top digit is a full turn.
  auto x = random_reals(K().slots(), 21);
  const int64_t step = static_cast<int64_t>(K().slots()) - 1;
  auto p = precision(rotated(x, step), K().decrypt(K().eval->rotate(K().encrypt(x), step, K().gk)));
  EXPECT_GE(p.mean_bits, floor_bits() - 2);
}

TEST(CkksPrecision, ConjugateComplex) {
  auto re = random_reals(K().slots(), 16), im = random_reals(K().slots(), 17);
  std::vector<std::complex<double>> z(re.size()), want(re.size());
  for (size_t i = 0; i < z.size(); ++i) {
    z[i] = {re[i], im[i]};
    want[i] = std::conj(z[i]);
  }
  auto ct = K().pk_encryptor->encrypt(K().encoder->encode(std::span<const std::complex<double>>(z)));
  auto got = K().encoder->decode_complex(K().decryptor->decrypt(K().eval->conjugate(ct, K().gk)));
  auto p = precision(want, got);
  report("conjugate (complex)", *K().ctx, p);
  EXPECT_GE(p.mean_bits, floor_bits());
}

TEST(CkksPrecision, HoistedRotationsEqualPlainRotationsBitForBit) {
  auto x = random_reals(K().slots(), 18);
  auto cx = K().eval->rescale(K().eval->multiply(K().encrypt(x), K().encrypt(x), K().rk));  // not fresh
  std::vector<int64_t> steps{1, 2, 4, -1, -8, 0};
  auto hoisted = K().eval->rotate_hoisted(cx, steps, K().gk);
  ASSERT_EQ(hoisted.size(), steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    auto plain = K().eval->rotate(cx, steps[i], K().gk);
    ASSERT_EQ(plain.level(), hoisted[i].level());
    for (uint32_t k = 0; k < 2; ++k) {
      auto words = plain.poly_words();
      std::vector<uint64_t> a(plain.poly(k), plain.poly(k) + words), b(hoisted[i].poly(k), hoisted[i].poly(k) + words);
      EXPECT_EQ(a, b) << "step " << steps[i] << " poly " << k;
    }
  }
}

namespace {
void expect_same_words(const Ciphertext& want, const Ciphertext& got, const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  ASSERT_EQ(want.level(), got.level()) << what;
  EXPECT_EQ(want.scale(), got.scale()) << what;
  for (uint32_t k = 0; k < want.size(); ++k) {
    const auto words = want.poly_words();
    EXPECT_EQ(std::vector<uint64_t>(want.poly(k), want.poly(k) + words),
              std::vector<uint64_t>(got.poly(k), got.poly(k) + words))
        << what << ", poly " << k;
  }
}
}  // namespace

// Independent rotations in one batch: ciphertexts at two levels, steps with their own
// key, a composed step (3 = 4 - 1) and the identity; each result is rotate()'s.
TEST(CkksPrecision, RotateManyEqualsRotateBitForBit) {
  auto x = random_reals(K().slots(), 22), y = random_reals(K().slots(), 23);
  auto cx = K().encrypt(x);
  auto cy = K().eval->rescale(K().eval->multiply(K().encrypt(y), K().encrypt(x), K().rk));  // one level lower
  const std::vector<const Ciphertext*> xs{&cx, &cy, &cx, &cy, &cx, &cy};
  const std::vector<int64_t> steps{1, 1, -8, 3, 0, 64};
  auto many = K().eval->rotate_many(xs, steps, K().gk);
  ASSERT_EQ(many.size(), steps.size());
  for (size_t i = 0; i < steps.size(); ++i)
    expect_same_words(K().eval->rotate(*xs[i], steps[i], K().gk), many[i], "step " + std::to_string(steps[i]));
  auto p = precision(rotated(x, -8), K().decrypt(many[2]));
  EXPECT_GE(p.mean_bits, floor_bits()) << "rotate_many by -8";
  EXPECT_VEIL_ERROR(K().eval->rotate_many(xs, {1, 2}, K().gk), ErrorCode::InvalidArgument);
}

// Hoisted rotations of several ciphertexts (two levels) in one batch, with an input
// whose only step is the identity: each result is rotate()'s.
TEST(CkksPrecision, RotateHoistedManyEqualsRotateBitForBit) {
  auto x = random_reals(K().slots(), 26);
  auto cx = K().encrypt(x);
  auto cy = K().eval->rescale(K().eval->multiply(cx, cx, K().rk));
  const std::vector<const Ciphertext*> xs{&cx, &cy, &cx};
  const std::vector<std::vector<int64_t>> steps{{1, -8, 0, 2}, {2, 64}, {0}};
  auto many = K().eval->rotate_hoisted_many(xs, steps, K().gk);
  ASSERT_EQ(many.size(), xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    ASSERT_EQ(many[i].size(), steps[i].size());
    for (size_t k = 0; k < steps[i].size(); ++k)
      expect_same_words(K().eval->rotate(*xs[i], steps[i][k], K().gk), many[i][k],
                        "input " + std::to_string(i) + ", step " + std::to_string(steps[i][k]));
  }
  EXPECT_VEIL_ERROR(K().eval->rotate_hoisted_many(xs, {{1}}, K().gk), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(K().eval->rotate_hoisted_many({&cx}, {{3}}, K().gk), ErrorCode::MissingKey);
}

// Several relinearizations in one batch, at two levels, with a size-2 ciphertext passed
// through: each result is relinearize()'s.
TEST(CkksPrecision, RelinearizeManyEqualsRelinearizeBitForBit) {
  auto x = random_reals(K().slots(), 24), y = random_reals(K().slots(), 25);
  auto cx = K().encrypt(x), cy = K().encrypt(y);
  auto low = K().eval->rescale(K().eval->multiply(cx, cy, K().rk));
  std::vector<Ciphertext> as{K().eval->multiply_no_relin(cx, cy), K().eval->multiply_no_relin(low, low), cx,
                             K().eval->multiply_no_relin(cy, cy)};
  auto many = K().eval->relinearize_many(as, K().rk);
  ASSERT_EQ(many.size(), as.size());
  for (size_t i = 0; i < as.size(); ++i)
    expect_same_words(K().eval->relinearize(as[i], K().rk), many[i], "ciphertext " + std::to_string(i));
  std::vector<double> xy(x.size());
  for (size_t i = 0; i < x.size(); ++i) xy[i] = x[i] * y[i];
  EXPECT_GE(precision(xy, K().decrypt(K().eval->rescale(many[0]))).mean_bits, floor_bits() - 2);
}

// Relinearization's ModDown and the rescale in one step: the level and scale of the two
// calls, at least their precision (one rounding fewer), and a batch equals the single
// calls word for word (two levels, a size-2 ciphertext rescaled only).
TEST(CkksPrecision, RelinearizeRescaleIsTheTwoStepsInOne) {
  auto x = random_reals(K().slots(), 28), y = random_reals(K().slots(), 29);
  auto cx = K().encrypt(x), cy = K().encrypt(y);
  const auto xy3 = K().eval->multiply_no_relin(cx, cy);
  const auto merged = K().eval->relinearize_rescale(xy3, K().rk);
  const auto two_steps = K().eval->rescale(K().eval->relinearize(xy3, K().rk));
  EXPECT_EQ(merged.level(), two_steps.level());
  EXPECT_EQ(merged.size(), 2u);
  EXPECT_DOUBLE_EQ(merged.scale(), two_steps.scale());
  std::vector<double> xy(x.size());
  for (size_t i = 0; i < x.size(); ++i) xy[i] = x[i] * y[i];
  const Precision p_merged = precision(xy, K().decrypt(merged)), p_two = precision(xy, K().decrypt(two_steps));
  report("relinearize_rescale (one ModDown by q_l P)", *K().ctx, p_merged);
  EXPECT_GE(p_merged.mean_bits, floor_bits() - 2);
  EXPECT_GE(p_merged.mean_bits, p_two.mean_bits - 0.5);

  auto low = K().eval->relinearize_rescale(K().eval->multiply_no_relin(cx, cx), K().rk);
  const std::vector<Ciphertext> as{xy3, K().eval->multiply_no_relin(low, low), cx, K().eval->multiply_no_relin(cy, cy)};
  auto many = K().eval->relinearize_rescale_many(as, K().rk);
  ASSERT_EQ(many.size(), as.size());
  for (size_t i = 0; i < as.size(); ++i)
    expect_same_words(K().eval->relinearize_rescale(as[i], K().rk), many[i], "ciphertext " + std::to_string(i));
  expect_same_words(K().eval->rescale(cx), many[2], "a size-2 ciphertext is rescaled only");
  auto bottom = K().eval->multiply_no_relin(K().eval->mod_switch_to(cx, 0), K().eval->mod_switch_to(cy, 0));
  EXPECT_VEIL_ERROR(K().eval->relinearize_rescale(bottom, K().rk), ErrorCode::LevelMismatch);
}

// Rescales of ciphertexts of two levels and sizes in one batch: each is rescale()'s.
TEST(CkksPrecision, RescaleManyEqualsRescaleBitForBit) {
  auto x = random_reals(K().slots(), 27);
  auto cx = K().encrypt(x);
  auto sq = K().eval->multiply_no_relin(cx, cx);                 // size 3, top level
  auto low = K().eval->rescale(K().eval->multiply(cx, cx, K().rk));  // size 2, one level down
  const std::vector<Ciphertext> as{cx, sq, low, cx};
  auto many = K().eval->rescale_many(as);
  ASSERT_EQ(many.size(), as.size());
  for (size_t i = 0; i < as.size(); ++i)
    expect_same_words(K().eval->rescale(as[i]), many[i], "ciphertext " + std::to_string(i));
  auto bottom = K().eval->mod_switch_to(cx, 0);
  EXPECT_VEIL_ERROR(K().eval->rescale_many(std::vector<Ciphertext>{cx, bottom}), ErrorCode::LevelMismatch);
}

TEST(CkksPrecision, EncodeDecodeAtEveryLevel) {
  auto x = random_reals(K().slots(), 19);
  for (uint32_t level = 0; level <= K().ctx->max_level(); ++level) {
    auto pt = K().encoder->encode(x, 0, static_cast<int>(level));
    EXPECT_EQ(pt.level(), level);
    EXPECT_GE(precision(x, K().encoder->decode(pt)).mean_bits, 30.0) << "level " << level;
  }
}

TEST(CkksPrecision, FloodedDecryptionHidesNoiseButKeepsValue) {
  auto x = random_reals(K().slots(), 20);
  auto ct = K().encrypt(x);
  auto rs = RandomSource::insecure_deterministic(99);
  auto flooded = K().encoder->decode(K().decryptor->decrypt_flooded(ct, 20, rs));
  auto plain = K().decrypt(ct);
  auto p = precision(x, flooded);
  // 2^20 noise at scale 2^40 leaves ~ 40 - 20 - logN/2 bits.
  EXPECT_GE(p.mean_bits, 10.0);
  EXPECT_LT(p.mean_bits, precision(x, plain).mean_bits);
}

}  // namespace
}  // namespace veil::test
