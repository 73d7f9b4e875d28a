// pack_vectors (include/veil/nn/pack.hpp): masks at scale q_level, one rescale.
#include "veil/nn/pack.hpp"

#include <bit>
#include <cmath>
#include <string>

#include "veil/encoder.hpp"
#include "veil/error.hpp"

namespace veil::nn {

Ciphertext pack_vectors(const Evaluator& eval, const std::vector<Ciphertext>& cts, size_t d, size_t batch) {
  require(!cts.empty(), ErrorCode::InvalidArgument, "pack_vectors: no ciphertexts");
  const ContextPtr& ctx = eval.context();
  for (const auto& ct : cts)
    require(!ct.empty() && ct.context()->id() == ctx->id(), ErrorCode::ContextMismatch,
            "pack_vectors: a ciphertext is empty or belongs to another context than the evaluator");
  const size_t slots = ctx->params().slots();
  require(std::has_single_bit(d) && std::has_single_bit(batch) && d * batch <= slots, ErrorCode::InvalidArgument,
          "pack_vectors: d and batch must be powers of two with d * batch <= slots");
  const size_t span = d * std::bit_ceil(cts.size());
  require(span * batch <= slots, ErrorCode::InvalidArgument,
          "pack_vectors: " + std::to_string(cts.size()) + " blocks of " + std::to_string(d) + " need " +
              std::to_string(span * batch) + " slots, the parameters have " + std::to_string(slots));
  const uint32_t level = cts.front().level();
  const double scale = cts.front().scale();
  require(level >= 1, ErrorCode::LevelMismatch, "pack_vectors: needs level >= 1 (one rescale)");
  for (const auto& ct : cts)
    require(ct.level() == level && ct.size() == 2 &&
                std::fabs(ct.scale() - scale) <= std::ldexp(std::max(ct.scale(), scale), -40),
            ErrorCode::InvalidArgument, "pack_vectors: inputs must share level and scale and have size 2");

  const Encoder encoder(ctx);
  const double mask_scale = static_cast<double>(ctx->tables().primes[level]);
  Ciphertext sum;
  std::vector<double> mask(slots);
  for (size_t c = 0; c < cts.size(); ++c) {
    for (size_t i = 0; i < slots; ++i) mask[i] = ((i / batch) % span) / d == c ? 1.0 : 0.0;
    Ciphertext part = eval.multiply_plain(cts[c], encoder.encode(mask, mask_scale, static_cast<int>(level)));
    sum = c == 0 ? std::move(part) : eval.add(sum, part);
  }
  Ciphertext out = eval.rescale(sum);
  out.set_scale(scale);  // q_level / q_level: exactly the input scale
  return out;
}

}  // namespace veil::nn
