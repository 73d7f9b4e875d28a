// Input checks shared by the encrypted layers (conv, linear): the same rules and
// the same messages everywhere, so every layer rejects bad input alike.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "veil/error.hpp"
#include "veil/evaluator.hpp"
#include "veil/keys.hpp"

namespace veil::nn::detail {

// x must belong to ctx (as must the evaluator), have size 2, a level >= `level`
// and the layer's scale; gk must hold every step. Throws veil::Error.
inline void check_layer_input(const std::string& layer, const Context& ctx, const Evaluator& eval,
                              const Ciphertext& x, uint32_t level, double scale, const GaloisKeys& gk,
                              const std::vector<int64_t>& steps) {
  require(eval.context() && eval.context()->id() == ctx.id(), ErrorCode::ContextMismatch,
          layer + ": the evaluator belongs to a different context");
  require(!x.empty() && x.context()->id() == ctx.id(), ErrorCode::ContextMismatch,
          layer + ": the ciphertext is empty or belongs to a different context");
  require(x.size() == 2, ErrorCode::InvalidArgument, layer + ": relinearize the input first");
  require(x.level() >= level, ErrorCode::LevelMismatch,
          layer + ": input at level " + std::to_string(x.level()) + ", the layer was built for level " +
              std::to_string(level));
  require(std::fabs(x.scale() - scale) <= std::ldexp(std::max(x.scale(), scale), -40), ErrorCode::ScaleMismatch,
          layer + ": the input scale differs from the layer's scale");
  for (int64_t s : steps)  // fail before any work, naming the step
    require(gk.has(galois_element_for_step(ctx, s)), ErrorCode::MissingKey,
            layer + ": no Galois key for rotation step " + std::to_string(s));
}

}  // namespace veil::nn::detail
