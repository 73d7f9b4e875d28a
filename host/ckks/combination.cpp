// CombinationMatrix (veil/combination.hpp) and the Evaluator's combine / combine_into.
#include "veil/combination.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "arith/rns_convert.hpp"
#include "ckks/operand_rules.hpp"
#include "veil/error.hpp"
#include "veil/evaluator.hpp"

namespace veil {

using ckks::q_basis;
using ckks::scales_equal;

CombinationMatrix::CombinationMatrix(ContextPtr ctx, size_t columns, const std::vector<std::vector<Entry>>& rows,
                                     uint32_t level, double weight_scale)
    : ctx_(std::move(ctx)), rows_(rows.size()), columns_(columns), level_(level), weight_scale_(weight_scale) {
  require(ctx_ != nullptr, ErrorCode::ContextMismatch, "combination: null context");
  require(level <= ctx_->max_level(), ErrorCode::InvalidArgument,
          "combination: level " + std::to_string(level) + " is above the parameters' " +
              std::to_string(ctx_->max_level()));
  require(std::isfinite(weight_scale) && weight_scale >= 1, ErrorCode::InvalidArgument,
          "combination: the weight scale must be finite and >= 1");
  require(columns <= std::numeric_limits<uint32_t>::max(), ErrorCode::InvalidArgument,
          "combination: more than 2^32 columns");
  const Basis b = q_basis(level);
  const size_t limbs = level + 1;
  std::vector<uint64_t> row_start{0}, cols;
  std::vector<std::vector<uint64_t>> residues(limbs);
  std::vector<uint64_t> r(limbs);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (const Entry& e : rows[i]) {
      require(e.column < columns, ErrorCode::InvalidArgument,
              "combination: row " + std::to_string(i) + " names column " + std::to_string(e.column) + " of " +
                  std::to_string(columns));
      const double v = std::nearbyint(e.weight * weight_scale);
      require(std::isfinite(v) && std::fabs(v) < 0x1p100, ErrorCode::InvalidArgument,
              "combination: row " + std::to_string(i) + " has a weight that is not finite or too large");
      if (v == 0) continue;
      rns::round_to_rns(v, ctx_->tables(), b, r.data());
      cols.push_back(e.column);
      for (size_t l = 0; l < limbs; ++l) residues[l].push_back(r[l]);
    }
    row_start.push_back(cols.size());
  }
  entries_ = cols.size();
  require(entries_ <= std::numeric_limits<uint32_t>::max(), ErrorCode::InvalidArgument,
          "combination: more than 2^32 entries");
  std::vector<uint64_t> words = std::move(row_start);
  words.insert(words.end(), cols.begin(), cols.end());
  for (const auto& l : residues) words.insert(words.end(), l.begin(), l.end());
  data_ = Buffer(ctx_->backend_ptr(), words.size(), false, false);
  data_.from_host(words.data(), words.size());
}

CombineMatrix CombinationMatrix::view() const {
  const uint64_t* base = data_.data();
  return CombineMatrix{rows_, entries_, columns_, level_ + 1, base, base + rows_ + 1, base + rows_ + 1 + entries_};
}

namespace {

// The inputs' common size and scale, after the checks combine and combine_into share;
// `lowered` receives copies of the inputs above the matrix's level.
void check_inputs(const Context& ctx, std::span<const Ciphertext> inputs, const CombinationMatrix& m,
                  const Evaluator& eval, std::vector<Ciphertext>& lowered, std::vector<const Ciphertext*>& use) {
  require(!m.empty() && m.context()->id() == ctx.id(), ErrorCode::ContextMismatch,
          "combine: the matrix is empty or belongs to another context");
  require(inputs.size() == m.columns(), ErrorCode::InvalidArgument,
          "combine: " + std::to_string(inputs.size()) + " ciphertexts for a matrix of " +
              std::to_string(m.columns()) + " columns");
  require(!inputs.empty(), ErrorCode::InvalidArgument, "combine: no input ciphertexts");
  lowered.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Ciphertext& c = inputs[i];
    require(!c.empty() && c.context()->id() == ctx.id(), ErrorCode::ContextMismatch,
            "combine: input " + std::to_string(i) + " is empty or belongs to another context");
    require(c.size() == inputs[0].size(), ErrorCode::InvalidArgument, "combine: inputs of different sizes");
    require(scales_equal(c.scale(), inputs[0].scale()), ErrorCode::ScaleMismatch,
            "combine: inputs of different scales");
    require(c.level() >= m.level(), ErrorCode::LevelMismatch,
            "combine: input " + std::to_string(i) + " is at level " + std::to_string(c.level()) +
                ", below the matrix's " + std::to_string(m.level()));
    if (c.level() == m.level()) {
      use.push_back(&c);
    } else {
      lowered.push_back(eval.mod_switch_to(c, m.level()));
      use.push_back(&lowered.back());
    }
  }
}

void run_combine(const Context& ctx, const std::vector<const Ciphertext*>& use, std::span<Ciphertext> outputs,
                 const CombinationMatrix& m, bool accumulate) {
  std::vector<const uint64_t*> in(use.size());
  for (size_t i = 0; i < use.size(); ++i) in[i] = use[i]->poly(0);
  std::vector<uint64_t*> out(outputs.size());
  for (size_t r = 0; r < outputs.size(); ++r) out[r] = outputs[r].poly(0);
  ctx.backend().combine(q_basis(m.level()), use.front()->size(), m.view(), in.data(), out.data(), accumulate);
}

}  // namespace

std::vector<Ciphertext> Evaluator::combine(std::span<const Ciphertext> inputs, const CombinationMatrix& m) const {
  std::vector<Ciphertext> lowered;
  std::vector<const Ciphertext*> use;
  check_inputs(*ctx_, inputs, m, *this, lowered, use);
  const double scale = use.front()->scale() * m.weight_scale();
  require(std::isfinite(scale) && std::log2(scale) < ctx_->params().log_qp(), ErrorCode::ScaleMismatch,
          "combine: the result's scale is too large; rescale the inputs first");
  std::vector<Ciphertext> outputs;
  outputs.reserve(m.rows());
  for (size_t r = 0; r < m.rows(); ++r) outputs.emplace_back(ctx_, use.front()->size(), m.level(), scale, false);
  run_combine(*ctx_, use, outputs, m, false);
  return outputs;
}

void Evaluator::combine_into(std::span<Ciphertext> outputs, std::span<const Ciphertext> inputs,
                             const CombinationMatrix& m) const {
  std::vector<Ciphertext> lowered;
  std::vector<const Ciphertext*> use;
  check_inputs(*ctx_, inputs, m, *this, lowered, use);
  require(outputs.size() == m.rows(), ErrorCode::InvalidArgument,
          "combine_into: " + std::to_string(outputs.size()) + " outputs for a matrix of " +
              std::to_string(m.rows()) + " rows");
  const double scale = use.front()->scale() * m.weight_scale();
  for (size_t r = 0; r < outputs.size(); ++r) {
    const Ciphertext& o = outputs[r];
    require(!o.empty() && o.context()->id() == ctx_->id(), ErrorCode::ContextMismatch,
            "combine_into: output " + std::to_string(r) + " is empty or belongs to another context");
    require(o.size() == use.front()->size() && o.level() == m.level(), ErrorCode::InvalidArgument,
            "combine_into: output " + std::to_string(r) + " has another size or level than the sums");
    require(scales_equal(o.scale(), scale), ErrorCode::ScaleMismatch,
            "combine_into: output " + std::to_string(r) + " has another scale than the sums");
    outputs[r].set_c1_seed(std::nullopt);
  }
  run_combine(*ctx_, use, outputs, m, true);
}

}  // namespace veil
