// Precomputed constants for RNS basis changes (ModUp, ModDown, rescale).
#include "arith/modarith.hpp"
#include "veil/backend.hpp"

namespace veil {

namespace {
// prod_{k != skip} primes[k] mod t, over the listed prime indices.
uint64_t product_mod(const std::vector<uint64_t>& primes, const std::vector<uint32_t>& idx, size_t skip,
                     uint64_t t) {
  arith::Modulus m(t);
  uint64_t acc = 1 % t;
  for (size_t k = 0; k < idx.size(); ++k)
    if (k != skip) acc = m.mul(acc, primes[idx[k]] % t);
  return acc;
}

// Dividing by the product D of the primes `drop` (indices), converting to q_0 ..
// q_{rows - 1}.
RnsTables::ModDownPlan mod_down_plan(const std::vector<uint64_t>& primes, std::vector<uint32_t> drop,
                                     uint32_t rows) {
  RnsTables::ModDownPlan plan;
  for (size_t k = 0; k < drop.size(); ++k) {
    const uint64_t dk = primes[drop[k]];
    plan.phat_inv.push_back(arith::inv_mod(product_mod(primes, drop, k, dk), dk));
    plan.p_inv.push_back(1.0 / static_cast<double>(dk));
  }
  for (uint32_t i = 0; i < rows; ++i) {
    const uint64_t qi = primes[i];
    for (size_t k = 0; k < drop.size(); ++k) plan.phat_mod_q.push_back(product_mod(primes, drop, k, qi));
    const uint64_t d_mod = product_mod(primes, drop, drop.size(), qi);
    plan.p_mod_q.push_back(d_mod);
    plan.p_inv_mod_q.push_back(arith::inv_mod(d_mod, qi));
  }
  plan.drop = std::move(drop);
  return plan;
}
}  // namespace

std::shared_ptr<const RnsTables> RnsTables::build(const Parameters& params) {
  auto t = std::make_shared<RnsTables>();
  t->log_n = params.log_n();
  t->n = params.n();
  t->max_level = params.max_level();
  t->alpha = params.alpha();
  t->primes = params.q();
  t->primes.insert(t->primes.end(), params.p().begin(), params.p().end());
  const uint32_t L = t->max_level, alpha = t->alpha;

  // ModUp: digit j of level l covers Q-limbs [j*alpha, min((j+1)*alpha, l+1)).
  t->mod_up.resize(L + 1);
  for (uint32_t l = 0; l <= L; ++l) {
    const Basis qp{l + 1, true};
    for (uint32_t j = 0; j < t->digits(l); ++j) {
      ModUpPlan plan;
      plan.first = j * alpha;
      plan.count = std::min(alpha, l + 1 - plan.first);
      std::vector<uint32_t> src;
      for (uint32_t i = 0; i < plan.count; ++i) src.push_back(plan.first + i);
      for (uint32_t i = 0; i < plan.count; ++i) {
        uint64_t d = t->primes[src[i]];
        plan.qhat_inv.push_back(arith::inv_mod(product_mod(t->primes, src, i, d), d));
      }
      for (uint32_t limb = 0; limb < t->limbs(qp); ++limb) {
        if (limb >= plan.first && limb < plan.first + plan.count) continue;
        plan.target_limbs.push_back(limb);
        uint64_t target = t->primes[t->prime_index(qp, limb)];
        for (uint32_t i = 0; i < plan.count; ++i)
          plan.qhat_mod_target.push_back(product_mod(t->primes, src, i, target));
      }
      t->mod_up[l].push_back(std::move(plan));
    }
  }

  // ModDown: P -> Q, then multiply by P^-1.
  std::vector<uint32_t> pidx;
  for (uint32_t k = 0; k < alpha; ++k) pidx.push_back(L + 1 + k);
  t->mod_down = mod_down_plan(t->primes, pidx, L + 1);

  // ModDown and rescale at level l at once: divide by D = q_l P (limbs q_l, p_0, ...).
  t->mod_down_rescale.resize(L + 1);
  for (uint32_t l = 1; l <= L; ++l) {
    std::vector<uint32_t> didx{l};
    didx.insert(didx.end(), pidx.begin(), pidx.end());
    t->mod_down_rescale[l] = mod_down_plan(t->primes, std::move(didx), l);
  }

  // Rescale at level l divides by q_l.
  t->rescale.resize(L + 1);
  for (uint32_t l = 1; l <= L; ++l) {
    uint64_t ql = t->primes[l];
    for (uint32_t i = 0; i < l; ++i) {
      uint64_t qi = t->primes[i];
      t->rescale[l].ql_inv_mod_q.push_back(arith::inv_mod(ql % qi, qi));
      t->rescale[l].half_ql_mod_q.push_back((ql >> 1) % qi);
    }
  }
  return t;
}

}  // namespace veil
