// Polynomial evaluation on CKKS ciphertexts and ready polynomial approximations
// of activation functions (ReLU, sigmoid, GELU).
//
// Basis: polynomials are stored in the Chebyshev basis on an interval [a, b]:
//   p(x) = sum_{i=0}^{d} c_i T_i(y),   y = (2x - a - b) / (b - a)  in [-1, 1].
// This basis is well conditioned (|T_i(y)| <= 1 on the interval, coefficients of
// smooth functions decay), unlike the power basis whose coefficients grow fast.
// Power-basis coefficients are accepted through Polynomial::from_power (converted
// exactly, up to rounding). Values of x outside [a, b] are allowed but |T_i(y)|
// then grows like (|y| + sqrt(y^2 - 1))^i: results are only meaningful inside.
//
// Depth (levels consumed by evaluate, i.e. x.level() - result.level()):
//   depth_for_degree(d) = ceil(log2(d + 1)) + 1   for d >= 1,  0 for d = 0,
// on [a, b] = [-1, 1]: ceil(log2(d + 1)) for the ciphertext products (optimal)
// plus one for the scalar products (every coefficient is a multiply-by-constant
// followed by a rescale). Any other interval costs one more level for the affine
// map x -> y (Polynomial::depth() gives the total):
//   degree     1   2-3   4-7   8-15   16-31   32-63
//   [-1, 1]    2    3     4     5      6       7
//   other      3    4     5     6      7       8
// The Parameters::preset(14) chain (L = 7) fits degree 31 on any interval.
//
// Scale: the result has exactly the input ciphertext's scale (constants are
// encoded at the scale that makes every term land on the same target scale).
#pragma once

#include <functional>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/evaluator.hpp"
#include "veil/keys.hpp"

namespace veil::nn {

// Levels evaluate() consumes for a degree-d polynomial on [-1, 1] (see above).
// Throws Error(InvalidArgument) for d < 0.
int depth_for_degree(int degree);

class Polynomial {
 public:
  // Chebyshev coefficients c_0..c_d on [a, b]. Trailing zero coefficients are
  // dropped (they do not count towards the degree). Throws Error(InvalidArgument)
  // for an empty list, a non-finite coefficient or bound, or a >= b.
  explicit Polynomial(std::vector<double> chebyshev_coeffs, double a = -1, double b = 1);

  // p(x) = sum p_i x^i (power basis in x itself, not in y), rewritten in the
  // Chebyshev basis on [a, b]. Same errors as the constructor.
  static Polynomial from_power(const std::vector<double>& power_coeffs, double a = -1, double b = 1);

  // Chebyshev interpolation of f at the degree + 1 Chebyshev nodes of [a, b]
  // (near-minimax for smooth f). Throws Error(InvalidArgument) for degree < 0,
  // a bad interval or a non-finite f value.
  static Polynomial interpolate(const std::function<double(double)>& f, int degree, double a, double b);

  int degree() const { return static_cast<int>(coeffs_.size()) - 1; }
  double a() const { return a_; }
  double b() const { return b_; }
  const std::vector<double>& coefficients() const { return coeffs_; }  // Chebyshev, c_0 first
  // True when [a, b] is [-1, 1] exactly (no affine map, no extra level).
  bool unit_interval() const { return a_ == -1.0 && b_ == 1.0; }
  // Levels evaluate() consumes: depth_for_degree(degree()) + (unit_interval() ? 0 : 1), 0 for a constant.
  int depth() const;

  // Plain double evaluation (Clenshaw recurrence).
  double operator()(double x) const;

 private:
  std::vector<double> coeffs_;
  double a_, b_;
};

// Homomorphic p(x) slot-wise, by baby-step/giant-step evaluation in the
// Chebyshev basis: T_1..T_{2^l} by a balanced product tree, giant T_{2^k} by
// repeated squaring (T_2k = 2 T_k^2 - 1), and a recursive split
// p = q * T_{2^k} + r whose every term is brought to one target level and scale.
// Cost: about 2^l + log2(d) + d / 2^l ciphertext products, l = ceil(depth / 2).
// The result is at level x.level() - p.depth() with x's scale. A degree-0
// polynomial returns the constant at x's level and scale (0 * x + c, no level
// consumed; the relinearization key is not used for degree <= 1).
// Errors: ContextMismatch (x empty or from another context than `ev`, or rk from
// another context), LevelMismatch (x.level() < p.depth(); the message says how
// many levels are needed), plus any error of the underlying operations.
Ciphertext evaluate(const Evaluator& ev, const Ciphertext& x, const Polynomial& p, const RelinKey& rk);

// Max |p(x) - f(x)| on `points` evenly spaced points of [p.a(), p.b()] (ends
// included). Throws Error(InvalidArgument) for points < 2.
double max_abs_error(const Polynomial& p, const std::function<double(double)>& f, int points = 20001);

// A ready approximation: the polynomial (interval in poly.a(), poly.b()) and its
// max absolute error against the exact function, measured by max_abs_error on
// 20001 points (plain doubles; CKKS noise comes on top).
struct Approximation {
  Polynomial poly;
  double max_error;
};

// Chebyshev interpolants on [-bound, bound] (bound > 0, finite; 1 <= degree <= 63;
// InvalidArgument otherwise). Max errors at the defaults (see docs/nn_activations.md):
//   relu_approximation(4, 15)     1.26e-1  (the kink at 0: error ~ 0.5 * bound / degree,
//                                           0.255 at degree 7, 0.063 at degree 31)
//   sigmoid_approximation(8, 15)  1.38e-3  (2.96e-2 at degree 7, 3.0e-6 at degree 31)
//   gelu_approximation(4, 15)     2.4e-4   (5.2e-2 at degree 7, 7.6e-11 at degree 31)
// Degree 15 consumes 6 levels (depth_for_degree(15) + 1 for the interval).
Approximation relu_approximation(double bound = 4, int degree = 15);
Approximation sigmoid_approximation(double bound = 8, int degree = 15);
Approximation gelu_approximation(double bound = 4, int degree = 15);

}  // namespace veil::nn
