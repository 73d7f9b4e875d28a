// Double hoisting (veil/extended.hpp): rotations kept over Q_l u P, plaintext products
// there, and one ModDown per giant step (Bossuat et al., Eurocrypt 2021; Lattigo's
// linear transformations work the same way).
//
// Why it is exact where it matters: ModDown(x + P c) = c + ModDown(x) for any c over
// Q_l (the P limbs of P c are zero, so the rounding residue [x]_P is unchanged), and
// X -> X^g commutes with ModDown, so keeping the rotation's addend as P c0 over Q_l u P
// and permuting before the ModDown gives rotate()'s result once divided by P.
#include <algorithm>
#include <map>
#include <string>

#include "ckks/key_switch.hpp"
#include "ckks/operand_rules.hpp"
#include "veil/error.hpp"
#include "veil/evaluator.hpp"

namespace veil {

using ckks::product_scale;
using ckks::result_scale;
using ckks::scales_equal;

using ckks::check_owned;
using keyswitch::rotation_element;

std::vector<std::vector<ExtendedCiphertext>> Evaluator::rotate_hoisted_extended(
    const std::vector<const Ciphertext*>& xs, const std::vector<std::vector<int64_t>>& steps,
    const GaloisKeys& gk) const {
  const auto plan = keyswitch::plan_hoisted_rotations(*ctx_, xs, steps, gk, "rotate_hoisted_extended");
  const auto& elements = plan.elements;
  // Step 0 is P x itself; its c0 (or a scratch P c0) is every rotation's addend. All the
  // products by P of the call in one multiply_by_p per level.
  std::vector<std::vector<ExtendedCiphertext>> out(xs.size());
  std::vector<Buffer> scratch_c0(xs.size());
  std::vector<const uint64_t*> addend(xs.size(), nullptr);
  std::map<uint32_t, std::pair<std::vector<uint64_t*>, std::vector<const uint64_t*>>> lifts;  // per level
  for (size_t i = 0; i < xs.size(); ++i) {
    const uint32_t level = xs[i]->level();
    auto& [to, from] = lifts[level];
    out[i].reserve(steps[i].size());  // the pointers taken below stay valid
    for (size_t k = 0; k < steps[i].size(); ++k) {
      out[i].emplace_back(ctx_, level, xs[i]->scale(), false);
      if (elements[i][k] != 0) continue;
      for (uint32_t c = 0; c < 2; ++c) {
        to.push_back(out[i][k].poly(c));
        from.push_back(xs[i]->poly(c));
      }
      if (!addend[i]) addend[i] = out[i][k].poly(0);
    }
    const bool rotates = std::any_of(elements[i].begin(), elements[i].end(), [](uint64_t g) { return g != 0; });
    if (rotates && !addend[i]) {
      scratch_c0[i] = ctx_->allocate_scratch(Basis{level + 1, true});
      to.push_back(scratch_c0[i].data());
      from.push_back(xs[i]->poly(0));
      addend[i] = scratch_c0[i].data();
    }
  }
  for (auto& [level, lift] : lifts)
    ctx_->backend().multiply_by_p(level, lift.first.size(), lift.first.data(), lift.second.data());

  std::vector<const uint64_t*> c1;
  for (const Ciphertext* x : xs) c1.push_back(x->poly(1));
  keyswitch::rotate_hoisted_batches(
      *ctx_, gk, plan, c1,
      [&](size_t i, size_t k) { return keyswitch::RotationTarget{out[i][k].poly(0), out[i][k].poly(1), addend[i]}; },
      /*extended=*/true);
  return out;
}

void Evaluator::multiply_sum_extended(ExtendedCiphertext& out, std::span<const ExtendedCiphertext* const> xs,
                                      std::span<const ExtendedPlaintext* const> ps, bool accumulate) const {
  require(!xs.empty() && xs.size() == ps.size(), ErrorCode::InvalidArgument,
          "multiply_sum_extended: " + std::to_string(xs.size()) + " ciphertexts and " + std::to_string(ps.size()) +
              " plaintexts (the counts must be equal and nonzero)");
  const uint32_t level = xs[0]->level();
  const double scale = xs[0]->scale() * ps[0]->scale();
  std::vector<const uint64_t*> xw(xs.size()), pw(ps.size());
  for (size_t t = 0; t < xs.size(); ++t) {
    check_owned(*ctx_, xs[t]->context(), xs[t]->empty(), "extended ciphertext");
    check_owned(*ctx_, ps[t]->context(), ps[t]->empty(), "extended plaintext");
    require(xs[t]->level() == level && ps[t]->level() == level, ErrorCode::LevelMismatch,
            "multiply_sum_extended: every term must be of level " + std::to_string(level));
    require(scales_equal(xs[t]->scale() * ps[t]->scale(), scale), ErrorCode::ScaleMismatch,
            "multiply_sum_extended: the terms' product scales differ");
    require(xs[t] != &out, ErrorCode::InvalidArgument, "multiply_sum_extended: the output is also a term");
    xw[t] = xs[t]->poly(0);
    pw[t] = ps[t]->data();
  }
  if (accumulate) {
    check_owned(*ctx_, out.context(), out.empty(), "the accumulator");
    require(out.level() == level, ErrorCode::LevelMismatch, "multiply_sum_extended: accumulator of another level");
    require(scales_equal(out.scale(), scale), ErrorCode::ScaleMismatch,
            "multiply_sum_extended: the accumulator's scale is not the products'");
  } else {
    out = ExtendedCiphertext(ctx_, level, product_scale(*ctx_, scale, "encode the plaintexts at a smaller scale"),
                             false);
  }
  ctx_->backend().multiply_sum(out.basis(), 2, xs.size(), xw.data(), pw.data(), out.poly(0), accumulate);
}

Ciphertext Evaluator::rotate_sum_extended(std::span<ExtendedCiphertext> parts, const std::vector<int64_t>& steps,
                                          const GaloisKeys& gk, bool rescale) const {
  require(!parts.empty() && parts.size() == steps.size(), ErrorCode::InvalidArgument,
          "rotate_sum_extended: " + std::to_string(parts.size()) + " parts and " + std::to_string(steps.size()) +
              " steps (the counts must be equal and nonzero)");
  const uint32_t level = parts[0].level();
  const double scale = parts[0].scale();
  std::vector<uint64_t> elements(parts.size());
  std::map<uint32_t, std::vector<size_t>> rotated;  // one level: for_each_batch's runs
  for (size_t i = 0; i < parts.size(); ++i) {
    check_owned(*ctx_, parts[i].context(), parts[i].empty(), "extended ciphertext");
    require(parts[i].level() == level, ErrorCode::LevelMismatch, "rotate_sum_extended: parts of different levels");
    require(scales_equal(parts[i].scale(), scale), ErrorCode::ScaleMismatch,
            "rotate_sum_extended: parts of different scales");
    elements[i] = rotation_element(*ctx_, steps[i]);
    if (elements[i]) {
      keyswitch::galois_key(*ctx_, gk, elements[i]);
      rotated[level].push_back(i);
    }
  }
  require(!rescale || level >= 1, ErrorCode::LevelMismatch, "cannot rescale at level 0: the modulus chain is exhausted");
  const double out_scale =
      rescale ? result_scale(scale / static_cast<double>(ctx_->tables().primes[level]), "rescale") : scale;

  Backend& be = ctx_->backend();
  const Basis qp{level + 1, true};
  ExtendedCiphertext acc;  // the first unrotated part, when there is one
  for (size_t i = 0; i < parts.size(); ++i) {
    if (elements[i] != 0) continue;
    if (acc.empty()) acc = std::move(parts[i]);
    else be.add_polys(qp, 2, acc.poly(0), acc.poly(0), parts[i].poly(0));
  }
  // The rotated parts: the ModDown of each c1 alone (the parts' c1 are its scratch),
  // decomposed and key-switched over Q_l u P with the part's c0 as the addend, every
  // result summed into acc.
  keyswitch::for_each_batch(*ctx_, rotated, [&](uint32_t, std::span<const size_t> idx) {
    std::vector<Buffer> c1(idx.size());
    std::vector<uint64_t*> c1_out(idx.size()), c1_in(idx.size());
    for (size_t d = 0; d < idx.size(); ++d) {
      c1[d] = ctx_->allocate_scratch(Basis{level + 1, false});
      c1_out[d] = c1[d].data();
      c1_in[d] = parts[idx[d]].poly(1);
    }
    be.mod_down_many(level, idx.size(), c1_out.data(), c1_in.data());
    const auto decs =
        keyswitch::decompose_many(*ctx_, std::vector<const uint64_t*>(c1_out.begin(), c1_out.end()), level);
    std::vector<keyswitch::Job> jobs;
    for (size_t d = 0; d < idx.size(); ++d) {
      const size_t i = idx[d];
      jobs.push_back({&decs[d], &keyswitch::galois_key(*ctx_, gk, elements[i]), elements[i], nullptr, nullptr,
                      parts[i].poly(0), nullptr});
    }
    const bool accumulate = !acc.empty();
    if (!accumulate) acc = ExtendedCiphertext(ctx_, level, scale, false);
    keyswitch::apply_extended_sum(*ctx_, jobs, acc.poly(0), acc.poly(1), accumulate);
  });

  Ciphertext out(ctx_, 2, rescale ? level - 1 : level, out_scale, false);
  if (rescale) be.mod_down_rescale_pair(level, out.poly(0), out.poly(1), acc.poly(0), nullptr, nullptr);
  else be.mod_down_pair(level, out.poly(0), out.poly(1), acc.poly(0), nullptr, nullptr);
  return out;
}

}  // namespace veil
