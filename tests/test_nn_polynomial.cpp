// Polynomial evaluation on ciphertexts (veil::nn::evaluate) against plain double
// evaluation of the same polynomial, its depth per degree, the activation
// approximations against the exact functions, and bad input.
#include <numbers>

#include "test_util.hpp"
#include "veil/nn/polynomial.hpp"

namespace veil::test {
namespace {

using nn::Polynomial;

Keyed& K() { return Keyed::preset(14); }

// Measured (N = 2^14, scale 2^40, random Chebyshev coefficients |c_i| <= 1 on
// [-1, 1]): mean 28.2 bits at degree 1 down to 23.6 bits at degree 15. Floor a few bits below.
constexpr double kMeanFloorBits = 20;

std::vector<double> random_chebyshev(int degree, uint64_t seed) {
  auto c = random_reals(degree + 1, seed);
  c.back() = c.back() >= 0 ? 0.5 + c.back() / 2 : -0.5 + c.back() / 2;  // nonzero leading coefficient
  return c;
}

std::vector<double> plain(const Polynomial& p, const std::vector<double>& x) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = p(x[i]);
  return y;
}

TEST(NnPolynomialPlain, ClenshawMatchesPowerBasis) {
  const std::vector<double> pw{0.25, -0.5, 0.0, 1.0};  // x^3 - 0.5 x + 0.25
  for (auto [a, b] : {std::pair{-1.0, 1.0}, std::pair{-3.0, 5.0}}) {
    auto p = Polynomial::from_power(pw, a, b);
    EXPECT_EQ(p.degree(), 3);
    for (double x = a; x <= b; x += (b - a) / 37)
      EXPECT_NEAR(p(x), x * x * x - 0.5 * x + 0.25, 1e-12 * (1 + std::fabs(x * x * x)));
  }
  Polynomial t3({0, 0, 0, 1, 0, 0});  // T_3, trailing zeros dropped
  EXPECT_EQ(t3.degree(), 3);
  EXPECT_NEAR(t3(0.3), 4 * 0.027 - 3 * 0.3, 1e-15);
}

TEST(NnPolynomialPlain, DepthForDegree) {
  EXPECT_EQ(nn::depth_for_degree(0), 0);
  const int want[][2] = {{1, 2}, {2, 3}, {3, 3}, {4, 4}, {7, 4}, {8, 5}, {15, 5}, {16, 6}, {31, 6}, {63, 7}};
  for (auto [d, depth] : want) EXPECT_EQ(nn::depth_for_degree(d), depth) << d;
  EXPECT_EQ(Polynomial(random_chebyshev(7, 1), -8, 8).depth(), nn::depth_for_degree(7) + 1);
  EXPECT_THROW(nn::depth_for_degree(-1), Error);
}

// Consumed depth equals depth_for_degree(d); result matches plain evaluation.
TEST(NnPolynomial, DepthAndPrecisionPerDegree) {
  auto x = random_reals(K().slots(), 11);
  auto ct = K().encrypt(x);
  for (int d : {1, 2, 3, 4, 7, 8, 15}) {
    Polynomial p(random_chebyshev(d, 100 + d));
    auto out = nn::evaluate(*K().eval, ct, p, K().rk);
    EXPECT_EQ(static_cast<int>(ct.level() - out.level()), nn::depth_for_degree(d)) << "degree " << d;
    EXPECT_EQ(out.scale(), ct.scale());
    auto prec = precision(plain(p, x), K().decrypt(out));
    report("chebyshev poly degree " + std::to_string(d), *K().ctx, prec);
    EXPECT_GE(prec.mean_bits, kMeanFloorBits) << "degree " << d;
  }
}

TEST(NnPolynomial, WideIntervalCostsOneLevel) {
  auto x = random_reals(K().slots(), 12, -8, 8);
  auto ct = K().encrypt(x);
  Polynomial p(random_chebyshev(7, 13), -8, 8);
  auto out = nn::evaluate(*K().eval, ct, p, K().rk);
  EXPECT_EQ(static_cast<int>(ct.level() - out.level()), p.depth());
  EXPECT_EQ(p.depth(), nn::depth_for_degree(7) + 1);
  auto prec = precision(plain(p, x), K().decrypt(out));
  report("chebyshev poly degree 7 on [-8, 8]", *K().ctx, prec);
  EXPECT_GE(prec.mean_bits, kMeanFloorBits);
}

TEST(NnPolynomial, PowerBasisAndAsymmetricInterval) {
  auto x = random_reals(K().slots(), 14, -1, 3);
  auto ct = K().encrypt(x);
  auto p = Polynomial::from_power({0.5, -1.0, 0.25, 0.125, -0.0625}, -1, 3);  // degree 4
  auto out = nn::evaluate(*K().eval, ct, p, K().rk);
  std::vector<double> want(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double v = x[i];
    want[i] = 0.5 - v + 0.25 * v * v + 0.125 * v * v * v - 0.0625 * v * v * v * v;
  }
  auto prec = precision(want, K().decrypt(out));
  report("power poly degree 4 on [-1, 3]", *K().ctx, prec);
  EXPECT_GE(prec.mean_bits, kMeanFloorBits - 2);  // values up to ~4
}

TEST(NnPolynomial, ConstantAndSparse) {
  auto x = random_reals(K().slots(), 15);
  auto ct = K().encrypt(x);
  auto c = nn::evaluate(*K().eval, ct, Polynomial({0.75}), K().rk);
  EXPECT_EQ(c.level(), ct.level());
  auto got = K().decrypt(c);
  for (size_t i = 0; i < 64; ++i) EXPECT_NEAR(got[i], 0.75, 1e-6);
  // Only the top coefficient: the recursion meets empty and constant blocks.
  Polynomial t8({0, 0, 0, 0, 0, 0, 0, 0, 1});
  auto out = nn::evaluate(*K().eval, ct, t8, K().rk);
  EXPECT_EQ(static_cast<int>(ct.level() - out.level()), nn::depth_for_degree(8));
  EXPECT_GE(precision(plain(t8, x), K().decrypt(out)).mean_bits, kMeanFloorBits);
  // Odd polynomial (zero even coefficients) of degree 1.
  Polynomial lin({0, -0.5});
  auto l = nn::evaluate(*K().eval, ct, lin, RelinKey{});  // degree 1 needs no relinearization key
  EXPECT_GE(precision(plain(lin, x), K().decrypt(l)).mean_bits, kMeanFloorBits);
}

void check_activation(const char* name, const nn::Approximation& ap, const std::function<double(double)>& f,
                      double documented, uint64_t seed) {
  EXPECT_LE(ap.max_error, documented) << name;
  EXPECT_NEAR(ap.max_error, nn::max_abs_error(ap.poly, f), 1e-15);
  auto x = random_reals(K().slots(), seed, ap.poly.a(), ap.poly.b());
  auto ct = K().encrypt(x);
  auto out = nn::evaluate(*K().eval, ct, ap.poly, K().rk);
  EXPECT_EQ(static_cast<int>(ct.level() - out.level()), ap.poly.depth());
  auto got = K().decrypt(out);
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(got[i] - f(x[i])));
  std::printf("[activation] %-8s degree %d on [%g, %g]: plain max error %.3g, encrypted max error %.3g\n",
              name, ap.poly.degree(), ap.poly.a(), ap.poly.b(), ap.max_error, worst);
  EXPECT_LE(worst, ap.max_error + 1e-5) << name;
  auto prec = precision(plain(ap.poly, x), got);
  report(std::string(name) + " polynomial vs plain", *K().ctx, prec);
  EXPECT_GE(prec.mean_bits, kMeanFloorBits - 3);  // inputs up to 8: y = x / bound keeps |T_i| <= 1
}

TEST(NnActivation, Relu) {
  check_activation(
      "ReLU", nn::relu_approximation(), [](double x) { return std::max(x, 0.0); }, 0.13, 21);
}

TEST(NnActivation, Sigmoid) {
  check_activation(
      "sigmoid", nn::sigmoid_approximation(), [](double x) { return 1 / (1 + std::exp(-x)); }, 1.4e-3, 22);
}

TEST(NnActivation, Gelu) {
  check_activation(
      "GELU", nn::gelu_approximation(),
      [](double x) { return 0.5 * x * (1 + std::erf(x / std::numbers::sqrt2)); }, 2.5e-4, 23);
}

TEST(NnActivationPlain, ErrorShrinksWithDegree) {
  auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  double prev = 1;
  for (int d : {7, 15, 31, 63}) {
    auto ap = nn::sigmoid_approximation(8, d);
    std::printf("[activation] sigmoid degree %d on [-8, 8]: max error %.3g\n", d, ap.max_error);
    EXPECT_LT(ap.max_error, prev);
    prev = ap.max_error;
    EXPECT_NEAR(ap.max_error, nn::max_abs_error(ap.poly, sig), 1e-15);
  }
  for (int d : {7, 15, 31}) {
    std::printf("[activation] ReLU degree %d on [-4, 4]: max error %.3g; GELU: %.3g\n", d,
                nn::relu_approximation(4, d).max_error, nn::gelu_approximation(4, d).max_error);
  }
}

template <class F>
void expect_code(F&& f, ErrorCode code) {
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
  }
}

TEST(NnPolynomialBadInput, Rejected) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_code([] { Polynomial p(std::vector<double>{}); }, ErrorCode::InvalidArgument);
  expect_code([&] { Polynomial p({1.0, nan}); }, ErrorCode::InvalidArgument);
  expect_code(
      [] {
        Polynomial p({1.0, std::numeric_limits<double>::infinity()});
      },
      ErrorCode::InvalidArgument);
  expect_code([] { Polynomial p({1.0, 2.0}, 1, 1); }, ErrorCode::InvalidArgument);
  expect_code([] { Polynomial p({1.0, 2.0}, 2, -2); }, ErrorCode::InvalidArgument);
  expect_code([&] { Polynomial p({1.0, 2.0}, nan, 1); }, ErrorCode::InvalidArgument);
  expect_code([] { Polynomial::from_power({}, -1, 1); }, ErrorCode::InvalidArgument);
  expect_code([] { Polynomial::interpolate([](double) { return 1.0; }, -1, -1, 1); },
              ErrorCode::InvalidArgument);
  expect_code([&] { Polynomial::interpolate([nan](double) { return nan; }, 2, -1, 1); },
              ErrorCode::InvalidArgument);
  expect_code([] { nn::relu_approximation(0); }, ErrorCode::InvalidArgument);
  expect_code([] { nn::sigmoid_approximation(8, 0); }, ErrorCode::InvalidArgument);
  expect_code([] { nn::gelu_approximation(4, 64); }, ErrorCode::InvalidArgument);

  auto ct = K().encrypt(random_reals(16, 31));
  Polynomial p7(random_chebyshev(7, 32));
  // Level too low: degree 7 needs 4 levels.
  auto low = K().eval->mod_switch_to(ct, 3);
  try {
    nn::evaluate(*K().eval, low, p7, K().rk);
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::LevelMismatch);
    EXPECT_NE(std::string(e.what()).find("needs 4 levels"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(nn::evaluate(*K().eval, K().eval->mod_switch_to(ct, 4), p7, K().rk));
  // Other context, empty ciphertext, missing relinearization key.
  auto other = Context::create(Parameters::preset(14));
  Ciphertext foreign(other, 2, other->max_level(), ct.scale());
  expect_code([&] { nn::evaluate(*K().eval, foreign, p7, K().rk); }, ErrorCode::ContextMismatch);
  expect_code([&] { nn::evaluate(*K().eval, Ciphertext{}, p7, K().rk); }, ErrorCode::ContextMismatch);
  expect_code([&] { nn::evaluate(*K().eval, ct, p7, RelinKey{}); }, ErrorCode::ContextMismatch);
}

}  // namespace
}  // namespace veil::test
