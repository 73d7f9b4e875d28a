// Rules the Evaluator's operations share (evaluator.cpp, combination.cpp,
// double_hoisting.cpp): the basis of a level, when two scales count as equal
// (veil/evaluator.hpp: relative difference below 2^-40) and which result scales are refused.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>

#include "veil/backend.hpp"
#include "veil/context.hpp"
#include "veil/error.hpp"

namespace veil::ckks {

inline Basis q_basis(uint32_t level) { return Basis{level + 1, false}; }

inline bool scales_equal(double a, double b) { return std::fabs(a - b) <= std::ldexp(std::max(a, b), -40); }

// ContextMismatch unless an object (its context `of`, whether it is empty) is this
// context's: "<what> is empty or belongs to a different context".
inline void check_owned(const Context& ctx, const ContextPtr& of, bool empty, const char* what) {
  require(!empty && of->id() == ctx.id(), ErrorCode::ContextMismatch,
          std::string(what) + " is empty or belongs to a different context");
}

inline std::string scale_str(double s) {
  std::ostringstream os;
  os << "2^" << std::log2(s);
  return os.str();
}

// The scale of a result, refused when it is not one a ciphertext can carry (finite and
// > 0, as the loaders require): a huge scale times a prime overflows, a tiny one divided
// by a prime underflows.
inline double result_scale(double s, const char* op) {
  require(std::isfinite(s) && s > 0 && std::isnormal(s), ErrorCode::ScaleMismatch,
          std::string(op) + ": the result's scale (" + scale_str(s) +
              ") is not a finite positive number; encode at a scale near the primes' size");
  return s;
}

// The scale of a product, refused when it reaches Q P: the product would not fit the modulus.
inline double product_scale(const Context& ctx, double s, const char* remedy) {
  require(std::isfinite(s) && std::log2(s) < ctx.params().log_qp(), ErrorCode::ScaleMismatch,
          "product scale " + scale_str(s) + " is too large; " + remedy);
  return s;
}

}  // namespace veil::ckks
