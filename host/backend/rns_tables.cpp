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
  for (uint32_t k = 0; k < alpha; ++k) {
    uint64_t pk = t->primes[pidx[k]];
    t->mod_down.phat_inv.push_back(arith::inv_mod(product_mod(t->primes, pidx, k, pk), pk));
    t->mod_down.p_inv.push_back(1.0 / static_cast<double>(pk));
  }
  for (uint32_t i = 0; i <= L; ++i) {
    uint64_t qi = t->primes[i];
    for (uint32_t k = 0; k < alpha; ++k) t->mod_down.phat_mod_q.push_back(product_mod(t->primes, pidx, k, qi));
    const uint64_t p_mod = product_mod(t->primes, pidx, alpha, qi);
    t->mod_down.p_mod_q.push_back(p_mod);
    t->mod_down.p_inv_mod_q.push_back(arith::inv_mod(p_mod, qi));
  }

  // ModDown and rescale at level l at once: divide by D = q_l P (limbs q_l, p_0, ...).
  t->mod_down_rescale.resize(L + 1);
  for (uint32_t l = 1; l <= L; ++l) {
    ModDownPlan& plan = t->mod_down_rescale[l];
    std::vector<uint32_t> didx{l};
    didx.insert(didx.end(), pidx.begin(), pidx.end());
    for (size_t k = 0; k < didx.size(); ++k) {
      const uint64_t dk = t->primes[didx[k]];
      plan.phat_inv.push_back(arith::inv_mod(product_mod(t->primes, didx, k, dk), dk));
      plan.p_inv.push_back(1.0 / static_cast<double>(dk));
    }
    for (uint32_t i = 0; i < l; ++i) {
      const uint64_t qi = t->primes[i];
      for (size_t k = 0; k < didx.size(); ++k) plan.phat_mod_q.push_back(product_mod(t->primes, didx, k, qi));
      const uint64_t d_mod = product_mod(t->primes, didx, didx.size(), qi);
      plan.p_mod_q.push_back(d_mod);
      plan.p_inv_mod_q.push_back(arith::inv_mod(d_mod, qi));
    }
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
