// Helpers the model plans share (compiled_model.cpp's layouts and slots_plan.cpp).
#pragma once

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "veil/nn/model.hpp"
#include "veil/nn/polynomial.hpp"

namespace veil::nn::detail {

// p(f * x) as a polynomial in x: the same coefficients on [a / f, b / f] (f > 0).
inline Polynomial scaled_input(const Polynomial& p, double factor) {
  if (factor == 1.0) return p;
  return Polynomial(p.coefficients(), p.a() / factor, p.b() / factor);
}

inline std::string scale_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "2^%.2f", std::log2(s));
  return buf;
}

// A global average pool is folded into the next linear layer when one follows
// (flatten in between changes nothing); otherwise it costs a level of its own.
inline bool pool_folds(const std::vector<Layer>& layers, size_t index) {
  for (size_t i = index + 1; i < layers.size(); ++i) {
    if (layers[i].kind == LayerKind::Flatten) continue;
    return layers[i].kind == LayerKind::Linear;
  }
  return false;
}

}  // namespace veil::nn::detail
