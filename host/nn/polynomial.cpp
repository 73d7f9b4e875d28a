#include <cmath>
#include <map>
#include <numbers>
#include <string>

#include "veil/error.hpp"
#include "veil/nn/polynomial.hpp"

namespace veil::nn {

namespace {

void check_interval(double a, double b) {
  require(std::isfinite(a) && std::isfinite(b) && a < b, ErrorCode::InvalidArgument,
          "polynomial interval [a, b] needs finite a < b");
}

int ceil_log2(int v) {  // v >= 1
  int k = 0;
  while ((1 << k) < v) ++k;
  return k;
}

// Evaluation state: the Chebyshev powers computed so far and how to land any
// term on a chosen (level, scale).
class ChebyshevEvaluator {
 public:
  ChebyshevEvaluator(const Evaluator& ev, const RelinKey& rk, Ciphertext t1, int log_baby)
      : ev_(ev), rk_(rk), baby_(1 << log_baby) {
    powers_.emplace(1, std::move(t1));
  }

  // T_i of the mapped input. Depth of T_i relative to T_1: ceil(log2 i).
  const Ciphertext& power(int i) {
    auto it = powers_.find(i);
    if (it != powers_.end()) return it->second;
    int m = 1;
    while (2 * m < i) m *= 2;  // m = largest power of two below i, n = i - m in (0, m]
    const int n = i - m;
    Ciphertext prod = ev_.relinearize_rescale(ev_.multiply_no_relin(power(m), power(n)), rk_);
    prod = ev_.multiply_integer(prod, 2);
    if (n == m) {
      prod = ev_.add_scalar(prod, -1.0);  // T_2m = 2 T_m^2 - 1
    } else {
      // T_{m+n} = 2 T_m T_n - T_{m-n}; m - n < m so T_{m-n} sits at least one level
      // higher: multiplying it by 1 at a matched scale aligns it exactly.
      prod = ev_.sub(prod, land(power(m - n), 1.0, prod.level(), prod.scale()));
    }
    return powers_.emplace(i, std::move(prod)).first->second;
  }

  // c * ct at exactly (level, scale): one multiply by a constant encoded at
  // scale * q_{level+1} / ct.scale, then one rescale. Needs ct.level() > level.
  Ciphertext land(const Ciphertext& ct, double c, uint32_t level, double scale) const {
    const Ciphertext src = ev_.mod_switch_to(ct, level + 1);
    const double q = static_cast<double>(ev_.context()->params().q()[level + 1]);
    Ciphertext out =
        ev_.rescale(ev_.multiply_constant(src, c, scale * q / src.scale()));
    out.set_scale(scale);  // removes the last-ulp drift of the double scale product
    return out;
  }

  // sum c_i T_i at exactly (level, scale).
  Ciphertext eval(const std::vector<double>& c, uint32_t level, double scale) {
    const int deg = static_cast<int>(c.size()) - 1;
    if (deg < baby_) {
      Ciphertext acc;
      for (int i = 1; i <= deg; ++i) {
        if (c[i] == 0.0) continue;
        Ciphertext term = land(power(i), c[i], level, scale);
        acc = acc.empty() ? std::move(term) : ev_.add(acc, term);
      }
      if (acc.empty()) acc = land(power(1), 0.0, level, scale);  // constant block: still a ciphertext
      if (c[0] != 0.0) acc = ev_.add_scalar(acc, c[0]);
      acc.set_scale(scale);
      return acc;
    }
    int g = baby_;
    while (2 * g <= deg) g *= 2;  // g <= deg < 2g
    // p = q T_g + r with T_g T_j = (T_{g+j} + T_{g-j}) / 2.
    std::vector<double> q(c.begin() + g, c.end()), r(c.begin(), c.begin() + g);
    for (int j = 1; j <= deg - g; ++j) {
      q[j] = 2 * c[g + j];
      r[g - j] -= c[g + j];
    }
    while (r.size() > 1 && r.back() == 0.0) r.pop_back();
    const Ciphertext tg = ev_.mod_switch_to(power(g), level + 1);
    const double qp = static_cast<double>(ev_.context()->params().q()[level + 1]);
    Ciphertext high = ev_.relinearize_rescale(ev_.multiply_no_relin(eval(q, level + 1, scale * qp / tg.scale()), tg), rk_);
    high.set_scale(scale);
    if (r.size() == 1) return r[0] == 0.0 ? high : ev_.add_scalar(high, r[0]);  // constant remainder
    Ciphertext out = ev_.add(high, eval(r, level, scale));
    out.set_scale(scale);
    return out;
  }

 private:
  const Evaluator& ev_;
  const RelinKey& rk_;
  int baby_;
  std::map<int, Ciphertext> powers_;
};

}  // namespace

int depth_for_degree(int degree) {
  require(degree >= 0, ErrorCode::InvalidArgument, "polynomial degree must be >= 0");
  return degree == 0 ? 0 : ceil_log2(degree + 1) + 1;
}

Polynomial::Polynomial(std::vector<double> chebyshev_coeffs, double a, double b)
    : coeffs_(std::move(chebyshev_coeffs)), a_(a), b_(b) {
  require(!coeffs_.empty(), ErrorCode::InvalidArgument, "polynomial needs at least one coefficient");
  for (size_t i = 0; i < coeffs_.size(); ++i) {
    require(std::isfinite(coeffs_[i]), ErrorCode::InvalidArgument,
            "polynomial coefficient " + std::to_string(i) + " is not finite");
  }
  check_interval(a, b);
  while (coeffs_.size() > 1 && coeffs_.back() == 0.0) coeffs_.pop_back();
}

Polynomial Polynomial::from_power(const std::vector<double>& power_coeffs, double a, double b) {
  require(!power_coeffs.empty(), ErrorCode::InvalidArgument, "polynomial needs at least one coefficient");
  for (double v : power_coeffs)
    require(std::isfinite(v), ErrorCode::InvalidArgument, "coefficient is not finite");
  check_interval(a, b);
  // Interpolation at deg + 1 nodes reproduces a degree-deg polynomial exactly.
  auto f = [&](double x) {
    double acc = 0;
    for (size_t i = power_coeffs.size(); i-- > 0;) acc = acc * x + power_coeffs[i];
    return acc;
  };
  return interpolate(f, static_cast<int>(power_coeffs.size()) - 1, a, b);
}

Polynomial Polynomial::interpolate(const std::function<double(double)>& f, int degree, double a, double b) {
  require(degree >= 0, ErrorCode::InvalidArgument, "interpolation degree must be >= 0");
  check_interval(a, b);
  const int n = degree + 1;
  std::vector<double> fy(n);
  for (int k = 0; k < n; ++k) {
    const double y = std::cos(std::numbers::pi * (k + 0.5) / n);
    fy[k] = f(0.5 * (b - a) * y + 0.5 * (a + b));
    require(std::isfinite(fy[k]), ErrorCode::InvalidArgument,
            "interpolated function is not finite on [a, b]");
  }
  std::vector<double> c(n);
  for (int j = 0; j < n; ++j) {
    double s = 0;
    for (int k = 0; k < n; ++k) s += fy[k] * std::cos(std::numbers::pi * j * (k + 0.5) / n);
    c[j] = (j == 0 ? 1.0 : 2.0) * s / n;
  }
  return Polynomial(std::move(c), a, b);
}

int Polynomial::depth() const {
  return degree() == 0 ? 0 : depth_for_degree(degree()) + (unit_interval() ? 0 : 1);
}

double Polynomial::operator()(double x) const {
  const double y = (2 * x - a_ - b_) / (b_ - a_);
  double b1 = 0, b2 = 0;
  for (size_t i = coeffs_.size(); i-- > 1;) {
    const double t = 2 * y * b1 - b2 + coeffs_[i];
    b2 = b1;
    b1 = t;
  }
  return y * b1 - b2 + coeffs_[0];
}

Ciphertext evaluate(const Evaluator& ev, const Ciphertext& x, const Polynomial& p, const RelinKey& rk) {
  require(!x.empty() && x.context()->id() == ev.context()->id(), ErrorCode::ContextMismatch,
          "polynomial evaluation: ciphertext is empty or belongs to a different context");
  const int d = p.degree();
  if (d == 0) return ev.add_scalar(ev.multiply_integer(x, 0), p.coefficients()[0]);
  require(d == 1 || (!rk.key.empty() && rk.key.context()->id() == ev.context()->id()),
          ErrorCode::ContextMismatch,
          "polynomial evaluation: relinearization key is empty or from another context");
  const int need = p.depth();
  require(static_cast<int>(x.level()) >= need, ErrorCode::LevelMismatch,
          "polynomial evaluation of degree " + std::to_string(d) + " needs " + std::to_string(need) +
              " levels but the ciphertext is at level " + std::to_string(x.level()));
  // T_1 = y = alpha x + beta; multiply_scalar + rescale keeps x's scale exactly.
  Ciphertext t1 = x;
  if (!p.unit_interval()) {
    const double alpha = 2 / (p.b() - p.a()), beta = -(p.a() + p.b()) / (p.b() - p.a());
    t1 = ev.rescale(ev.multiply_scalar(x, alpha));
    t1.set_scale(x.scale());
    if (beta != 0.0) t1 = ev.add_scalar(t1, beta);
  }
  const int prod_depth = ceil_log2(d + 1);
  ChebyshevEvaluator ce(ev, rk, t1, std::max(1, (prod_depth + 1) / 2));
  return ce.eval(p.coefficients(), t1.level() - static_cast<uint32_t>(prod_depth + 1), x.scale());
}

double max_abs_error(const Polynomial& p, const std::function<double(double)>& f, int points) {
  require(points >= 2, ErrorCode::InvalidArgument, "max_abs_error needs at least 2 points");
  double worst = 0;
  for (int i = 0; i < points; ++i) {
    const double x = p.a() + (p.b() - p.a()) * i / (points - 1);
    worst = std::max(worst, std::fabs(p(x) - f(x)));
  }
  return worst;
}

namespace {

Approximation approximate(const std::function<double(double)>& f, double bound, int degree,
                          const char* what) {
  require(std::isfinite(bound) && bound > 0, ErrorCode::InvalidArgument,
          std::string(what) + " approximation: bound must be finite and > 0");
  require(degree >= 1 && degree <= 63, ErrorCode::InvalidArgument,
          std::string(what) + " approximation: degree must be in [1, 63]");
  Polynomial p = Polynomial::interpolate(f, degree, -bound, bound);
  const double err = max_abs_error(p, f);
  return {std::move(p), err};
}

}  // namespace

Approximation relu_approximation(double bound, int degree) {
  return approximate([](double x) { return x > 0 ? x : 0.0; }, bound, degree, "ReLU");
}

Approximation sigmoid_approximation(double bound, int degree) {
  return approximate([](double x) { return 1 / (1 + std::exp(-x)); }, bound, degree, "sigmoid");
}

Approximation gelu_approximation(double bound, int degree) {
  // Exact GELU: x * Phi(x).
  return approximate([](double x) { return 0.5 * x * (1 + std::erf(x / std::numbers::sqrt2)); }, bound,
                     degree, "GELU");
}

}  // namespace veil::nn
