// Double hoisting (veil/extended.hpp): rotations kept over Q_l u P give rotate()'s words
// after their ModDown, baby-step/giant-step sums match float64 evaluation and the
// classic path, and bad operands are refused.
#include "test_util.hpp"

namespace veil::test {
namespace {

// Two key-switching digits at the top level (alpha 2, 4 Q primes), so the extended key
// switches run a real multi-digit decomposition (log QP 270 <= 438 at N = 2^14).
Parameters two_digit_params() {
  ParameterSpec spec;
  spec.log_n = 14;
  spec.q_bits = {50, 40, 40, 40};
  spec.p_bits = {50, 50};
  return Parameters::create(spec);
}

// The ModDown of an extended ciphertext, without rescale: rotate_sum_extended of one
// unrotated part.
Ciphertext mod_down(const Evaluator& eval, ExtendedCiphertext x) {
  return eval.rotate_sum_extended(std::span<ExtendedCiphertext>(&x, 1), {0}, GaloisKeys{}, /*rescale=*/false);
}

TEST(DoubleHoisting, ExtendedRotationsModDownToRotateWords) {
  Keyed k(two_digit_params(), 41, true, BackendKind::Cpu, {1, 5, -3});
  const auto x = k.encrypt(random_reals(k.slots(), 42));
  const auto low = k.eval->mod_switch_to(x, 2);  // below the top: fewer digits
  // Inputs of two levels in one call; with step 0 (its c0 is the rotations' addend) and
  // without it (a scratch P c0).
  for (const std::vector<int64_t>& steps : {std::vector<int64_t>{0, 1, 5, -3}, std::vector<int64_t>{1, 5, -3}}) {
    const auto extended = k.eval->rotate_hoisted_extended({&x, &low}, {steps, steps}, k.gk);
    ASSERT_EQ(extended.size(), 2u);
    for (size_t in = 0; in < 2; ++in) {
      const Ciphertext& ct = in == 0 ? x : low;
      const auto classic = k.eval->rotate_hoisted(ct, steps, k.gk);
      ASSERT_EQ(extended[in].size(), steps.size());
      for (size_t i = 0; i < steps.size(); ++i) {
        EXPECT_EQ(extended[in][i].level(), ct.level());
        EXPECT_EQ(extended[in][i].scale(), ct.scale());
        EXPECT_EQ(words_of(mod_down(*k.eval, extended[in][i])), words_of(classic[i]))
            << "step " << steps[i] << " at level " << ct.level();
      }
    }
  }
}

// A rotated part: a ModDown of its c1, a key switch kept over Q_l u P and the final
// ModDown. For P x exactly (c1's ModDown exact) that is rotate()'s words; for an extended
// rotation (c1's ModDown rounds) rotate()'s values within the roundings.
TEST(DoubleHoisting, RotatedPartsDecryptAsRotations) {
  Keyed k(two_digit_params(), 51, true, BackendKind::Cpu, {1, 5, -3});
  const auto x = k.encrypt(random_reals(k.slots(), 52));
  const Ciphertext x1 = k.eval->rotate(x, 1, k.gk);
  for (const int64_t step : {5, -3}) {
    auto px = k.eval->rotate_hoisted_extended({&x}, {{0, 1}}, k.gk);  // P x, P rot(x, 1)
    const Ciphertext y = k.eval->rotate_sum_extended(std::span(px[0]).first(1), {step}, k.gk, /*rescale=*/false);
    EXPECT_EQ(y.level(), x.level());
    EXPECT_EQ(y.scale(), x.scale());
    EXPECT_EQ(words_of(y), words_of(k.eval->rotate(x, step, k.gk))) << "step " << step;

    const Ciphertext z = k.eval->rotate_sum_extended(std::span(px[0]).subspan(1), {step}, k.gk, false);
    const Ciphertext classic = k.eval->rotate(x1, step, k.gk);
    EXPECT_NE(words_of(z), words_of(classic));  // one rounding fewer
    const auto want = k.decrypt(classic), got = k.decrypt(z);
    double worst = 0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(want[i] - got[i]));
    EXPECT_LT(worst, std::ldexp(1.0, -30)) << "step " << step;  // values of size 1, noise ~2^-20: roundings only
  }
}

// y = sum_g rot( sum_b p_{g,b} * rot(x, b), 4 g ) for b < 4, g < 4: a 16-diagonal
// baby-step/giant-step sum, through the extended path and through the classic one.
TEST(DoubleHoisting, BabyStepGiantStepSumMatchesFloat64AndTheClassicPath) {
  Keyed k(two_digit_params(), 43, true, BackendKind::Cpu, {1, 2, 3, 4, 8, 12});
  const size_t slots = k.slots();
  const auto xv = random_reals(slots, 44);
  const auto x = k.encrypt(xv);
  const uint32_t level = x.level();
  const double q = static_cast<double>(k.ctx->tables().primes[level]);
  std::vector<std::vector<std::vector<double>>> p(4, std::vector<std::vector<double>>(4));
  for (size_t g = 0; g < 4; ++g)
    for (size_t b = 0; b < 4; ++b) p[g][b] = random_reals(slots, 100 + 4 * g + b);

  std::vector<double> want(slots, 0.0);
  for (size_t g = 0; g < 4; ++g)
    for (size_t b = 0; b < 4; ++b)
      for (size_t s = 0; s < slots; ++s) {  // rot(v, r)[s] = v[s + r]
        const size_t t = (s + 4 * g) % slots;
        want[s] += p[g][b][t] * xv[(t + b) % slots];
      }

  // Extended: one decomposition, no ModDown per rotation.
  const auto babies = k.eval->rotate_hoisted_extended({&x}, {{0, 1, 2, 3}}, k.gk);
  std::vector<ExtendedPlaintext> plains;
  for (size_t g = 0; g < 4; ++g)
    for (size_t b = 0; b < 4; ++b) plains.push_back(k.encoder->encode_extended(p[g][b], q, static_cast<int>(level)));
  std::vector<ExtendedCiphertext> parts(4);
  for (size_t g = 0; g < 4; ++g) {
    const ExtendedCiphertext* xs[4] = {&babies[0][0], &babies[0][1], &babies[0][2], &babies[0][3]};
    const ExtendedPlaintext* ps[4] = {&plains[4 * g], &plains[4 * g + 1], &plains[4 * g + 2], &plains[4 * g + 3]};
    k.eval->multiply_sum_extended(parts[g], std::span(xs, 2), std::span(ps, 2), false);
    k.eval->multiply_sum_extended(parts[g], std::span(xs + 2, 2), std::span(ps + 2, 2), true);  // accumulate
  }
  const Ciphertext y = k.eval->rotate_sum_extended(parts, {0, 4, 8, 12}, k.gk);
  EXPECT_EQ(y.level(), level - 1);
  EXPECT_NEAR(y.scale(), x.scale(), x.scale() * 1e-12);

  // Classic: hoisted rotations, products over Q, rotations, a sum and a rescale.
  const auto rotated = k.eval->rotate_hoisted(x, {1, 2, 3}, k.gk);
  Ciphertext sum;
  for (size_t g = 0; g < 4; ++g) {
    Ciphertext inner;
    for (size_t b = 0; b < 4; ++b) {
      const Ciphertext& xb = b == 0 ? x : rotated[b - 1];
      auto term = k.eval->multiply_plain(xb, k.encoder->encode(p[g][b], q, static_cast<int>(level)));
      inner = inner.empty() ? term : k.eval->add(inner, term);
    }
    if (g) inner = k.eval->rotate(inner, static_cast<int64_t>(4 * g), k.gk);
    sum = sum.empty() ? inner : k.eval->add(sum, inner);
  }
  const Ciphertext classic = k.eval->rescale(sum);

  const auto p_ext = precision(want, k.decrypt(y));
  const auto p_classic = precision(want, k.decrypt(classic));
  report("double-hoisted BSGS (16 diagonals)", *k.ctx, p_ext);
  report("classic BSGS (16 diagonals)", *k.ctx, p_classic);
  EXPECT_GE(p_ext.mean_bits, lattigo_floor(*k.ctx, x.scale()) - 4);  // 16 products of |p| <= 1: 4 bits of range
  EXPECT_GE(p_ext.mean_bits, p_classic.mean_bits - 0.5);              // no worse than the classic path
}

TEST(DoubleHoisting, BadOperandsAreRefused) {
  Keyed k(two_digit_params(), 45, true, BackendKind::Cpu, {1});
  const auto x = k.encrypt(random_reals(k.slots(), 46));
  const auto low = k.eval->mod_switch_to(x, 1);
  EXPECT_VEIL_ERROR(k.eval->rotate_hoisted_extended({&x}, {{7}}, k.gk), ErrorCode::MissingKey);
  EXPECT_VEIL_ERROR(k.eval->rotate_hoisted_extended({&x}, {}, k.gk), ErrorCode::InvalidArgument);
  const auto size3 = k.eval->multiply_no_relin(x, x);
  EXPECT_VEIL_ERROR(k.eval->rotate_hoisted_extended({&size3}, {{1}}, k.gk), ErrorCode::InvalidArgument);

  auto top = k.eval->rotate_hoisted_extended({&x, &low}, {{0, 1}, {0}}, k.gk);
  const auto pt = k.encoder->encode_extended(random_reals(k.slots(), 47), 0, static_cast<int>(x.level()));
  const auto pt_low = k.encoder->encode_extended(random_reals(k.slots(), 48), 0, 1);
  ExtendedCiphertext out;
  const ExtendedCiphertext* xs[2] = {&top[0][0], &top[1][0]};
  const ExtendedPlaintext* ps[2] = {&pt, &pt_low};
  EXPECT_VEIL_ERROR(k.eval->multiply_sum_extended(out, std::span(xs, 2), std::span(ps, 2), false),
                    ErrorCode::LevelMismatch);
  EXPECT_VEIL_ERROR(k.eval->multiply_sum_extended(out, std::span(xs, 1), std::span(ps, 2), false),
                    ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(k.eval->multiply_sum_extended(out, std::span(xs, 1), std::span(ps, 1), true),
                    ErrorCode::ContextMismatch);  // nothing to accumulate into
  ExtendedCiphertext self = top[0][0];
  const ExtendedCiphertext* own[1] = {&self};
  EXPECT_VEIL_ERROR(k.eval->multiply_sum_extended(self, std::span(own, 1), std::span(ps, 1), false),
                    ErrorCode::InvalidArgument);  // the output is a term
  EXPECT_VEIL_ERROR(k.eval->multiply_sum_extended(self, std::span(own, 1), std::span(ps, 1), true),
                    ErrorCode::InvalidArgument);
  ExtendedCiphertext scaled = top[0][1];
  scaled.set_scale(scaled.scale() * 2);
  const ExtendedCiphertext* mixed[2] = {&top[0][0], &scaled};
  const ExtendedPlaintext* same[2] = {&pt, &pt};
  EXPECT_VEIL_ERROR(k.eval->multiply_sum_extended(out, std::span(mixed, 2), std::span(same, 2), false),
                    ErrorCode::ScaleMismatch);

  std::vector<ExtendedCiphertext> levels{top[0][0], top[1][0]};
  EXPECT_VEIL_ERROR(k.eval->rotate_sum_extended(levels, {0, 0}, k.gk), ErrorCode::LevelMismatch);
  std::vector<ExtendedCiphertext> one{top[0][0]};
  EXPECT_VEIL_ERROR(k.eval->rotate_sum_extended(one, {3}, k.gk), ErrorCode::MissingKey);
  EXPECT_VEIL_ERROR(k.eval->rotate_sum_extended(one, {0, 1}, k.gk), ErrorCode::InvalidArgument);
  const auto level0 = k.eval->mod_switch_to(x, 0);
  auto bottom = k.eval->rotate_hoisted_extended({&level0}, {{0}}, k.gk);
  EXPECT_VEIL_ERROR(k.eval->rotate_sum_extended(bottom[0], {0}, k.gk, true), ErrorCode::LevelMismatch);

  const auto other = Context::create(two_digit_params(), BackendKind::Cpu);
  const auto foreign = Encoder(other).encode_extended(random_reals(k.slots(), 49), 0, static_cast<int>(x.level()));
  const ExtendedPlaintext* fp[1] = {&foreign};
  EXPECT_VEIL_ERROR(k.eval->multiply_sum_extended(out, std::span(xs, 1), std::span(fp, 1), false),
                    ErrorCode::ContextMismatch);
}

}  // namespace
}  // namespace veil::test
