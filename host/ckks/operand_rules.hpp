// Rules the Evaluator's operations share (evaluator.cpp, combination.cpp): the basis of
// a level and when two scales count as equal (veil/evaluator.hpp: relative difference
// below 2^-40).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "veil/backend.hpp"

namespace veil::ckks {

inline Basis q_basis(uint32_t level) { return Basis{level + 1, false}; }

inline bool scales_equal(double a, double b) { return std::fabs(a - b) <= std::ldexp(std::max(a, b), -40); }

}  // namespace veil::ckks
