#include "veil/evaluator.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "ckks/key_switch.hpp"
#include "ckks/operand_rules.hpp"
#include "arith/rns_convert.hpp"
#include "veil/error.hpp"

namespace veil {

using ckks::q_basis;
using ckks::product_scale;
using ckks::result_scale;
using ckks::scale_str;
using ckks::scales_equal;

namespace {


}  // namespace

Evaluator::Evaluator(ContextPtr ctx) : ctx_(std::move(ctx)) {
  require(ctx_ != nullptr, ErrorCode::InvalidArgument, "null context");
}

// ---- checks shared by every operation ----
#define VEIL_CHECK_CT(ct) ckks::check_owned(*ctx_, (ct).context(), (ct).empty(), "ciphertext")
#define VEIL_CHECK_PT(pt) ckks::check_owned(*ctx_, (pt).context(), (pt).empty(), "plaintext")

Ciphertext Evaluator::mod_switch_to(const Ciphertext& a, uint32_t level) const {
  VEIL_CHECK_CT(a);
  require(level <= a.level(), ErrorCode::LevelMismatch,
          "cannot mod-switch up: level " + std::to_string(a.level()) + " -> " + std::to_string(level));
  if (level == a.level()) return a;
  Ciphertext out(ctx_, a.size(), level, a.scale(), false);
  for (uint32_t i = 0; i < a.size(); ++i) ctx_->backend().copy(out.poly(i), a.poly(i), out.poly_words());
  return out;
}

Plaintext Evaluator::mod_switch_to(const Plaintext& p, uint32_t level) const {
  VEIL_CHECK_PT(p);
  require(level <= p.level(), ErrorCode::LevelMismatch, "cannot mod-switch a plaintext up");
  if (level == p.level()) return p;
  Plaintext out(ctx_, level, p.scale());
  ctx_->backend().copy(out.data(), p.data(), ctx_->words(q_basis(level)));
  return out;
}

// Brings a and b to a common level and scale (see the header's rules).
static void match_operands(const Evaluator& ev, Ciphertext& a, Ciphertext& b) {
  const uint32_t level = std::min(a.level(), b.level());
  if (a.level() != level) a = ev.mod_switch_to(a, level);
  if (b.level() != level) b = ev.mod_switch_to(b, level);
  if (scales_equal(a.scale(), b.scale())) return;
  Ciphertext& lo = a.scale() < b.scale() ? a : b;
  const Ciphertext& hi = a.scale() < b.scale() ? b : a;
  const double ratio = hi.scale() / lo.scale();
  const double r = std::nearbyint(ratio);
  require(r >= 2 && r <= 0x1p20 && scales_equal(lo.scale() * r, hi.scale()), ErrorCode::ScaleMismatch,
          "scales cannot be matched: " + scale_str(a.scale()) + " vs " + scale_str(b.scale()) +
              " (rescale one operand or re-encode at the other's scale)");
  lo = ev.multiply_integer(lo, static_cast<int64_t>(r));
  lo.set_scale(hi.scale());
}

static Ciphertext add_or_sub(const Evaluator& ev, const Ciphertext& a_in, const Ciphertext& b_in, bool subtract) {
  // Copy the operands only when their levels or scales must be adjusted.
  const bool aligned = a_in.level() == b_in.level() && scales_equal(a_in.scale(), b_in.scale());
  Ciphertext a_adj, b_adj;
  if (!aligned) {
    a_adj = a_in;
    b_adj = b_in;
    match_operands(ev, a_adj, b_adj);
  }
  const Ciphertext& a = aligned ? a_in : a_adj;
  const Ciphertext& b = aligned ? b_in : b_adj;
  const auto& ctx = *a.context();
  const Basis bs = q_basis(a.level());
  const uint32_t size = std::max(a.size(), b.size());
  Ciphertext out(a.context(), size, a.level(), a.scale(), false);
  if (a.size() == b.size()) {  // every polynomial in one call
    if (subtract) ctx.backend().sub_polys(bs, size, out.poly(0), a.poly(0), b.poly(0));
    else ctx.backend().add_polys(bs, size, out.poly(0), a.poly(0), b.poly(0));
    return out;
  }
  for (uint32_t i = 0; i < size; ++i) {
    if (i < a.size() && i < b.size()) {
      if (subtract) ctx.backend().sub(bs, out.poly(i), a.poly(i), b.poly(i));
      else ctx.backend().add(bs, out.poly(i), a.poly(i), b.poly(i));
    } else if (i < a.size()) {
      ctx.backend().copy(out.poly(i), a.poly(i), out.poly_words());
    } else if (subtract) {
      ctx.backend().negate(bs, out.poly(i), b.poly(i));
    } else {
      ctx.backend().copy(out.poly(i), b.poly(i), out.poly_words());
    }
  }
  return out;
}

Ciphertext Evaluator::add(const Ciphertext& a, const Ciphertext& b) const {
  VEIL_CHECK_CT(a);
  VEIL_CHECK_CT(b);
  return add_or_sub(*this, a, b, false);
}

Ciphertext Evaluator::sub(const Ciphertext& a, const Ciphertext& b) const {
  VEIL_CHECK_CT(a);
  VEIL_CHECK_CT(b);
  return add_or_sub(*this, a, b, true);
}

Ciphertext Evaluator::negate(const Ciphertext& a) const {
  VEIL_CHECK_CT(a);
  Ciphertext out(ctx_, a.size(), a.level(), a.scale(), false);
  for (uint32_t i = 0; i < a.size(); ++i) ctx_->backend().negate(q_basis(a.level()), out.poly(i), a.poly(i));
  return out;
}

static Ciphertext add_plain_impl(const Evaluator& ev, const Ciphertext& a_in, const Plaintext& p_in, bool subtract) {
  const uint32_t level = std::min(a_in.level(), p_in.level());
  Ciphertext out = ev.mod_switch_to(a_in, level);
  require(scales_equal(out.scale(), p_in.scale()), ErrorCode::ScaleMismatch,
          "plaintext scale " + scale_str(p_in.scale()) + " differs from ciphertext scale " + scale_str(out.scale()));
  const auto& ctx = *out.context();
  // The plaintext's first level+1 limbs are its value at this level.
  if (subtract) ctx.backend().sub(q_basis(level), out.poly(0), out.poly(0), p_in.data());
  else ctx.backend().add(q_basis(level), out.poly(0), out.poly(0), p_in.data());
  return out;
}

Ciphertext Evaluator::add_plain(const Ciphertext& a, const Plaintext& p) const {
  VEIL_CHECK_CT(a);
  VEIL_CHECK_PT(p);
  return add_plain_impl(*this, a, p, false);
}

Ciphertext Evaluator::sub_plain(const Ciphertext& a, const Plaintext& p) const {
  VEIL_CHECK_CT(a);
  VEIL_CHECK_PT(p);
  return add_plain_impl(*this, a, p, true);
}

Ciphertext Evaluator::add_scalar(const Ciphertext& a, double c) const {
  VEIL_CHECK_CT(a);
  const Basis b = q_basis(a.level());
  std::vector<uint64_t> s(a.limbs());
  rns::round_to_rns(c * a.scale(), ctx_->tables(), b, s.data());
  Ciphertext out = a;
  out.set_c1_seed(std::nullopt);
  ctx_->backend().add_scalar(b, out.poly(0), a.poly(0), s.data());
  return out;
}

Ciphertext Evaluator::multiply_no_relin(const Ciphertext& a_in, const Ciphertext& b_in) const {
  VEIL_CHECK_CT(a_in);
  VEIL_CHECK_CT(b_in);
  require(a_in.size() == 2 && b_in.size() == 2, ErrorCode::InvalidArgument,
          "multiply needs size-2 ciphertexts (relinearize first)");
  const uint32_t level = std::min(a_in.level(), b_in.level());
  // Copy only the operand that must drop levels.
  Ciphertext a_low, b_low;
  if (a_in.level() != level) a_low = mod_switch_to(a_in, level);
  if (b_in.level() != level) b_low = mod_switch_to(b_in, level);
  const Ciphertext& a = a_low.empty() ? a_in : a_low;
  const Ciphertext& b = b_low.empty() ? b_in : b_low;
  const double scale = product_scale(*ctx_, a.scale() * b.scale(), "rescale the operands first");
  Backend& be = ctx_->backend();
  const Basis bs = q_basis(level);
  Ciphertext out(ctx_, 3, level, scale, false);
  be.tensor(bs, out.poly(0), out.poly(1), out.poly(2), a.poly(0), a.poly(1), b.poly(0), b.poly(1));
  return out;
}

Ciphertext Evaluator::relinearize(const Ciphertext& a, const RelinKey& rk) const {
  return std::move(relinearize_many(std::span<const Ciphertext>(&a, 1), rk).front());
}

namespace {

// Relinearizes the size-3 ciphertexts of by_level into out, in batches; rescale: in the
// key switch's ModDown (outputs one level down, scale / q_l).
void switch_c2(const ContextPtr& ctx, std::span<const Ciphertext> as,
               const std::map<uint32_t, std::vector<size_t>>& by_level, const RelinKey& rk, bool rescale,
               std::vector<Ciphertext>& out) {
  require(!rk.key.empty(), ErrorCode::MissingKey, "relinearization key is empty");
  require(rk.key.context()->id() == ctx->id(), ErrorCode::ContextMismatch,
          "relinearization key belongs to a different context");
  keyswitch::for_each_batch(*ctx, by_level, [&](uint32_t level, std::span<const size_t> idx) {
    std::vector<const uint64_t*> c2;
    for (size_t i : idx) c2.push_back(as[i].poly(2));
    const auto decs = keyswitch::decompose_many(*ctx, c2, level);
    const double ql = static_cast<double>(ctx->tables().primes[level]);
    std::vector<keyswitch::Job> jobs;
    for (size_t k = 0; k < idx.size(); ++k) {
      const Ciphertext& a = as[idx[k]];
      Ciphertext& o = out[idx[k]] = rescale ? Ciphertext(ctx, 2, level - 1, result_scale(a.scale() / ql, "rescale"), false)
                                            : Ciphertext(ctx, 2, level, a.scale(), false);
      jobs.push_back({&decs[k], &rk.key, 0, o.poly(0), o.poly(1), a.poly(0), a.poly(1)});
    }
    keyswitch::apply_many(*ctx, jobs, rescale);
  });
}

}  // namespace

std::vector<Ciphertext> Evaluator::relinearize_many(std::span<const Ciphertext> as, const RelinKey& rk) const {
  for (const Ciphertext& a : as) VEIL_CHECK_CT(a);
  std::vector<Ciphertext> out(as.size());
  std::map<uint32_t, std::vector<size_t>> by_level;  // the size-3 ones
  for (size_t i = 0; i < as.size(); ++i) {
    if (as[i].size() == 2)
      out[i] = as[i];
    else
      by_level[as[i].level()].push_back(i);
  }
  switch_c2(ctx_, as, by_level, rk, false, out);
  return out;
}

Ciphertext Evaluator::relinearize_rescale(const Ciphertext& a, const RelinKey& rk) const {
  return std::move(relinearize_rescale_many(std::span<const Ciphertext>(&a, 1), rk).front());
}

std::vector<Ciphertext> Evaluator::relinearize_rescale_many(std::span<const Ciphertext> as,
                                                            const RelinKey& rk) const {
  for (const Ciphertext& a : as) {
    VEIL_CHECK_CT(a);
    require(a.level() >= 1, ErrorCode::LevelMismatch, "cannot rescale at level 0: the modulus chain is exhausted");
  }
  std::vector<Ciphertext> out(as.size());
  std::map<uint32_t, std::vector<size_t>> by_level;  // the size-3 ones
  std::vector<size_t> pairs;                          // the size-2 ones: rescaled only
  for (size_t i = 0; i < as.size(); ++i) (as[i].size() == 2 ? pairs : by_level[as[i].level()]).push_back(i);
  switch_c2(ctx_, as, by_level, rk, true, out);
  if (!pairs.empty()) {
    std::vector<Ciphertext> two;
    for (size_t i : pairs) two.push_back(as[i]);
    auto rescaled = rescale_many(two);
    for (size_t k = 0; k < pairs.size(); ++k) out[pairs[k]] = std::move(rescaled[k]);
  }
  return out;
}

Ciphertext Evaluator::multiply(const Ciphertext& a, const Ciphertext& b, const RelinKey& rk) const {
  return relinearize(multiply_no_relin(a, b), rk);
}

Ciphertext Evaluator::square(const Ciphertext& a, const RelinKey& rk) const { return multiply(a, a, rk); }

Ciphertext Evaluator::multiply_plain(const Ciphertext& a_in, const Plaintext& p) const {
  VEIL_CHECK_CT(a_in);
  VEIL_CHECK_PT(p);
  const uint32_t level = std::min(a_in.level(), p.level());
  Ciphertext out = mod_switch_to(a_in, level);
  out.set_c1_seed(std::nullopt);
  const double scale = product_scale(*ctx_, out.scale() * p.scale(), "rescale first");
  ctx_->backend().multiply_polys(q_basis(level), out.size(), out.poly(0), out.poly(0), p.data());
  out.set_scale(scale);
  return out;
}

Ciphertext Evaluator::multiply_scalar(const Ciphertext& a, double c) const {
  VEIL_CHECK_CT(a);
  const double factor = static_cast<double>(ctx_->tables().primes[a.level()]);
  const Basis b = q_basis(a.level());
  std::vector<uint64_t> s(a.limbs());
  rns::round_to_rns(c * factor, ctx_->tables(), b, s.data());
  Ciphertext out(ctx_, a.size(), a.level(), result_scale(a.scale() * factor, "multiply_scalar"), false);
  ctx_->backend().multiply_scalar_polys(b, a.size(), out.poly(0), a.poly(0), s.data());
  return out;
}

// A constant polynomial's NTT is the constant at every point: multiplying by it is a
// scalar multiplication by the same rounded residues encode_constant makes.
Ciphertext Evaluator::multiply_constant(const Ciphertext& a, double c, double scale) const {
  VEIL_CHECK_CT(a);
  const Basis b = q_basis(a.level());
  std::vector<uint64_t> s(a.limbs());
  rns::round_to_rns(c * scale, ctx_->tables(), b, s.data());
  Ciphertext out(ctx_, a.size(), a.level(), product_scale(*ctx_, a.scale() * scale, "rescale first"), false);
  ctx_->backend().multiply_scalar_polys(b, a.size(), out.poly(0), a.poly(0), s.data());
  return out;
}

Ciphertext Evaluator::multiply_integer(const Ciphertext& a, int64_t k) const {
  VEIL_CHECK_CT(a);
  const Basis b = q_basis(a.level());
  std::vector<uint64_t> s(a.limbs());
  for (uint32_t i = 0; i < a.limbs(); ++i) {  // exact for every int64
    const int64_t q = static_cast<int64_t>(ctx_->tables().primes[i]);
    const int64_t r = k % q;
    s[i] = static_cast<uint64_t>(r < 0 ? r + q : r);
  }
  Ciphertext out(ctx_, a.size(), a.level(), a.scale(), false);
  ctx_->backend().multiply_scalar_polys(b, a.size(), out.poly(0), a.poly(0), s.data());
  return out;
}

Ciphertext Evaluator::rescale(const Ciphertext& a) const {
  return std::move(rescale_many(std::span<const Ciphertext>(&a, 1)).front());
}

std::vector<Ciphertext> Evaluator::rescale_many(std::span<const Ciphertext> as) const {
  std::vector<Ciphertext> out(as.size());
  std::map<uint32_t, std::vector<size_t>> by_level;
  for (size_t i = 0; i < as.size(); ++i) {
    const Ciphertext& a = as[i];
    VEIL_CHECK_CT(a);
    require(a.level() >= 1, ErrorCode::LevelMismatch, "cannot rescale at level 0: the modulus chain is exhausted");
    out[i] = Ciphertext(ctx_, a.size(), a.level() - 1,
                        result_scale(a.scale() / static_cast<double>(ctx_->tables().primes[a.level()]), "rescale"),
                        false);
    by_level[a.level()].push_back(i);
  }
  for (const auto& [level, idx] : by_level) {
    std::vector<const uint64_t*> ins;
    std::vector<uint64_t*> outs;
    for (size_t i : idx)
      for (uint32_t k = 0; k < as[i].size(); ++k) {
        ins.push_back(as[i].poly(k));
        outs.push_back(out[i].poly(k));
      }
    ctx_->backend().rescale_many(level, ins.size(), ins.data(), outs.data());
  }
  return out;
}

// ---- rotations ----
// Rotation key-switches c1 first (key from s to sigma^-1(s)) and permutes the
// result, so a shared decomposition of c1 serves every rotation (hoisting).
static Ciphertext rotate_from_decomposition(const Context& ctx, const Ciphertext& a,
                                            const keyswitch::Decomposition& dec, uint64_t g,
                                            const SwitchingKey& key) {
  Ciphertext out(a.context(), 2, a.level(), a.scale(), false);
  keyswitch::apply_automorphism(ctx, dec, key, g, out.poly(0), out.poly(1), a.poly(0), nullptr);
  return out;
}

Ciphertext Evaluator::apply_galois(const Ciphertext& a, uint64_t g, const GaloisKeys& gk) const {
  VEIL_CHECK_CT(a);
  require(a.size() == 2, ErrorCode::InvalidArgument, "relinearize before rotating");
  const SwitchingKey& key = keyswitch::galois_key(*ctx_, gk, g);
  auto dec = keyswitch::decompose(*ctx_, a.poly(1), a.level());
  return rotate_from_decomposition(*ctx_, a, dec, g, key);
}

Ciphertext Evaluator::rotate(const Ciphertext& a, int64_t step, const GaloisKeys& gk) const {
  VEIL_CHECK_CT(a);
  const int64_t slots = static_cast<int64_t>(ctx_->params().slots());
  int64_t s = step % slots;
  if (s < 0) s += slots;
  if (s == 0) return a;
  uint64_t g = galois_element_for_step(*ctx_, s);
  if (gk.has(g)) return apply_galois(a, g, gk);
  // Compose from power-of-two keys: try the signed-digit (NAF) form, then
  // plain binary left, then binary right.
  auto have = [&](int64_t st) { return gk.has(galois_element_for_step(*ctx_, st)); };
  std::vector<std::vector<int64_t>> plans;
  {
    std::vector<int64_t> naf;
    int64_t x = s;
    for (int64_t bit = 1; x != 0; bit <<= 1) {
      if (x & 1) {
        int64_t d = 2 - (x & 3);  // +1 or -1
        if (bit < slots) naf.push_back(d * bit);  // a rotation by all the slots is the identity
        x -= d;
      }
      x >>= 1;
    }
    plans.push_back(naf);
    std::vector<int64_t> left, right;
    for (int64_t bit = 1; bit < slots; bit <<= 1) {
      if (s & bit) left.push_back(bit);
      if ((slots - s) & bit) right.push_back(-bit);
    }
    plans.push_back(left);
    plans.push_back(right);
  }
  for (const auto& plan : plans) {
    bool ok = true;
    for (int64_t st : plan) ok = ok && have(st);
    if (!ok) continue;
    Ciphertext out = a;
    for (int64_t st : plan) out = apply_galois(out, galois_element_for_step(*ctx_, st), gk);
    return out;
  }
  throw Error(ErrorCode::MissingKey, "no Galois key for rotation by " + std::to_string(step) +
                                         " and no power-of-two keys to compose it from");
}

std::vector<Ciphertext> Evaluator::rotate_hoisted(const Ciphertext& a, const std::vector<int64_t>& steps,
                                                  const GaloisKeys& gk) const {
  return std::move(rotate_hoisted_many({&a}, {steps}, gk).front());
}

std::vector<std::vector<Ciphertext>> Evaluator::rotate_hoisted_many(const std::vector<const Ciphertext*>& xs,
                                                                    const std::vector<std::vector<int64_t>>& steps,
                                                                    const GaloisKeys& gk) const {
  const auto plan = keyswitch::plan_hoisted_rotations(*ctx_, xs, steps, gk, "rotate_hoisted_many");
  const auto& elements = plan.elements;
  std::vector<std::vector<Ciphertext>> out(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    out[i].resize(steps[i].size());
    for (size_t k = 0; k < steps[i].size(); ++k) {
      if (elements[i][k])
        out[i][k] = Ciphertext(ctx_, 2, xs[i]->level(), xs[i]->scale(), false);  // moved in: no copy
      else
        out[i][k] = *xs[i];
    }
  }
  // One decomposition per input, each run's rotations one batch.
  std::vector<const uint64_t*> c1;
  for (const Ciphertext* x : xs) c1.push_back(x->poly(1));
  keyswitch::rotate_hoisted_batches(
      *ctx_, gk, plan, c1,
      [&](size_t i, size_t k) { return keyswitch::RotationTarget{out[i][k].poly(0), out[i][k].poly(1), xs[i]->poly(0)}; },
      /*extended=*/false);
  return out;
}

std::vector<Ciphertext> Evaluator::rotate_many(const std::vector<const Ciphertext*>& xs,
                                               const std::vector<int64_t>& steps, const GaloisKeys& gk) const {
  require(xs.size() == steps.size(), ErrorCode::InvalidArgument,
          "rotate_many: " + std::to_string(xs.size()) + " ciphertexts but " + std::to_string(steps.size()) +
              " steps");
  std::vector<Ciphertext> out(xs.size());
  std::vector<size_t> keyed;  // the ones with their own key: hoisted rotations of one step each, one batch
  std::vector<const Ciphertext*> keyed_xs;
  std::vector<std::vector<int64_t>> keyed_steps;
  for (size_t i = 0; i < xs.size(); ++i) {
    VEIL_CHECK_CT(*xs[i]);
    const uint64_t g = keyswitch::rotation_element(*ctx_, steps[i]);
    if (g != 0 && xs[i]->size() == 2 && gk.has(g)) {
      keyed.push_back(i);
      keyed_xs.push_back(xs[i]);
      keyed_steps.push_back({steps[i]});
    } else {
      out[i] = rotate(*xs[i], steps[i], gk);  // the identity, a composed rotation, or its error
    }
  }
  auto rotated = rotate_hoisted_many(keyed_xs, keyed_steps, gk);
  for (size_t k = 0; k < keyed.size(); ++k) out[keyed[k]] = std::move(rotated[k].front());
  return out;
}

Ciphertext Evaluator::conjugate(const Ciphertext& a, const GaloisKeys& gk) const {
  return apply_galois(a, galois_element_conjugate(*ctx_), gk);
}

}  // namespace veil
