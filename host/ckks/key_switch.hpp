// Hybrid key switching (Han-Ki / Kim et al. RNS variant), split in two so a
// decomposition can be shared by many keys (hoisting):
//   decompose: INTT, then ModUp each of the ceil((l+1)/alpha) digits to Q_l u P;
//   apply:     inner product with the key's digits, then ModDown by P (and any
//              addends, e.g. relinearization's c0 and c1).
#pragma once

#include <algorithm>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "veil/backend.hpp"
#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/keys.hpp"

namespace veil::keyswitch {

struct Decomposition {
  Buffer digits;  // [count][Q_l u P][N], in Backend::key_switch_decompose's layout
  const uint64_t* input = nullptr;  // the polynomial decomposed (read again by apply)
  uint32_t level = 0;
  uint32_t count = 0;
};

// poly: a level-`level` polynomial over Q_l in NTT form; it must stay unchanged and
// alive while the decomposition is applied. decompose_many of one polynomial.
Decomposition decompose(const Context& ctx, const uint64_t* poly, uint32_t level);
// (out0, out1) over Q_l, NTT form, with out0 + out1 s ~ poly * s' for the key from s' to s,
// plus add0 / add1 (over Q_l, NTT form; null: nothing), added in the same pass, then
// X -> X^g on both results (a rotation's last step, in the same pass on cuda). The
// outputs must not alias the addends. apply_many of one job.
void apply_automorphism(const Context& ctx, const Decomposition& dec, const SwitchingKey& key, uint64_t g,
                        uint64_t* out0, uint64_t* out1, const uint64_t* add0 = nullptr,
                        const uint64_t* add1 = nullptr);

// decompose for several polynomials of one level (one launch sequence on cuda).
std::vector<Decomposition> decompose_many(const Context& ctx, const std::vector<const uint64_t*>& polys,
                                          uint32_t level);

// One key switch of apply_many: apply_automorphism of `dec` with `key` into out0 / out1,
// plus the addends (g = 0: no permutation, as relinearization needs).
struct Job {
  const Decomposition* dec = nullptr;
  const SwitchingKey* key = nullptr;
  uint64_t g = 0;
  uint64_t* out0 = nullptr;
  uint64_t* out1 = nullptr;
  const uint64_t* add0 = nullptr;
  const uint64_t* add1 = nullptr;
};
// Every job, in as few launches as the backend allows (Backend::key_switch_many): the
// same words as one apply_automorphism each. Decompositions of one level; an
// output must not alias another job's inputs, addends or outputs.
// rescale: the outputs are over Q_{l-1}, each divided by q_l together with the
// ModDown's P (Backend::key_switch_rescale_many; every g must be 0).
void apply_many(const Context& ctx, const std::vector<Job>& jobs, bool rescale = false);
// apply_many's jobs with results kept over Q_l u P, no ModDown (Backend::
// key_switch_extended_many: the addends are over Q_l u P too).
void apply_extended_many(const Context& ctx, const std::vector<Job>& jobs);
// Their results summed into (sum0, sum1) over Q_l u P (Backend::key_switch_extended_sum;
// the jobs' outputs unused).
void apply_extended_sum(const Context& ctx, const std::vector<Job>& jobs, uint64_t* sum0, uint64_t* sum1,
                        bool accumulate);

// The key of Galois element g: MissingKey when gk has none, ContextMismatch when it
// belongs to another context.
const SwitchingKey& galois_key(const Context& ctx, const GaloisKeys& gk, uint64_t g);

// The Galois element of a left rotation by `step` slots (0: none, the identity).
uint64_t rotation_element(const Context& ctx, int64_t step);

// Hoisted rotations of inputs xs by steps[i]: elements[i][k] the Galois element of
// steps[i][k] (0: the identity), by_level the inputs with a real rotation, per level.
struct HoistedRotations {
  std::vector<std::vector<uint64_t>> elements;
  std::map<uint32_t, std::vector<size_t>> by_level;
};
// Checks everything before any work: the counts (InvalidArgument, naming `what`), each
// input this context's (ContextMismatch) and of size 2 (InvalidArgument), each nonzero
// step's key (MissingKey).
HoistedRotations plan_hoisted_rotations(const Context& ctx, const std::vector<const Ciphertext*>& xs,
                                        const std::vector<std::vector<int64_t>>& steps, const GaloisKeys& gk,
                                        const char* what);

// Runs a plan: per level, in for_each_batch's runs, one decomposition of each input's
// c1[i] and a job per nonzero element, writing where target(i, k) says (its add0: the
// c0 addend), all run by apply_many, or by apply_extended_many when `extended`.
struct RotationTarget {
  uint64_t* out0;
  uint64_t* out1;
  const uint64_t* add0;
};
void rotate_hoisted_batches(const Context& ctx, const GaloisKeys& gk, const HoistedRotations& plan,
                            const std::vector<const uint64_t*>& c1,
                            const std::function<RotationTarget(size_t, size_t)>& target, bool extended);

// Calls f(level, inputs) for each level's inputs in runs of the backend's
// key_switch_batch(): each run is one batch of key switches.
template <class F>
void for_each_batch(const Context& ctx, const std::map<uint32_t, std::vector<size_t>>& by_level, F&& f) {
  const size_t batch = ctx.backend().key_switch_batch();
  for (const auto& [level, idx] : by_level)
    for (size_t first = 0; first < idx.size(); first += batch)
      f(level, std::span<const size_t>(idx).subspan(first, std::min(batch, idx.size() - first)));
}

}  // namespace veil::keyswitch
