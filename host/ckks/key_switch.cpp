#include "ckks/key_switch.hpp"

#include "ckks/operand_rules.hpp"
#include "veil/error.hpp"

namespace veil::keyswitch {

Decomposition decompose(const Context& ctx, const uint64_t* poly, uint32_t level) {
  return std::move(decompose_many(ctx, {poly}, level).front());
}

std::vector<Decomposition> decompose_many(const Context& ctx, const std::vector<const uint64_t*>& polys,
                                          uint32_t level) {
  const Basis qp{level + 1, true};
  std::vector<Decomposition> decs(polys.size());
  std::vector<uint64_t*> outs(polys.size());
  for (size_t i = 0; i < polys.size(); ++i) {
    decs[i].input = polys[i];
    decs[i].level = level;
    decs[i].count = ctx.tables().digits(level);
    decs[i].digits = ctx.allocate_scratch(qp, decs[i].count);
    outs[i] = decs[i].digits.data();
  }
  ctx.backend().key_switch_decompose_many(level, polys.size(), outs.data(), polys.data());
  return decs;
}

namespace {

// The backend's jobs of `jobs`, checked: keys of this context, decompositions of one level.
std::vector<KeySwitchJob> backend_jobs(const Context& ctx, const std::vector<Job>& jobs) {
  const uint32_t level = jobs.front().dec->level;
  std::vector<KeySwitchJob> be_jobs(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Job& j = jobs[i];
    require(j.key && !j.key->empty() && j.key->context()->id() == ctx.id(), ErrorCode::ContextMismatch,
            "switching key belongs to a different context");
    require(j.dec->level == level, ErrorCode::InvalidArgument, "apply_many: decompositions of different levels");
    be_jobs[i] = KeySwitchJob{j.dec->digits.data(), j.dec->input, j.key->data(), j.g, j.out0, j.out1, j.add0, j.add1};
  }
  return be_jobs;
}

}  // namespace

void apply_many(const Context& ctx, const std::vector<Job>& jobs, bool rescale) {
  if (jobs.empty()) return;
  const uint32_t level = jobs.front().dec->level;
  const auto be_jobs = backend_jobs(ctx, jobs);
  if (rescale)
    ctx.backend().key_switch_rescale_many(level, jobs.front().dec->count, be_jobs.size(), be_jobs.data());
  else
    ctx.backend().key_switch_many(level, jobs.front().dec->count, be_jobs.size(), be_jobs.data());
}

void apply_extended_many(const Context& ctx, const std::vector<Job>& jobs) {
  if (jobs.empty()) return;
  const auto be_jobs = backend_jobs(ctx, jobs);
  ctx.backend().key_switch_extended_many(jobs.front().dec->level, jobs.front().dec->count, be_jobs.size(),
                                         be_jobs.data());
}

void apply_extended_sum(const Context& ctx, const std::vector<Job>& jobs, uint64_t* sum0, uint64_t* sum1,
                        bool accumulate) {
  if (jobs.empty()) return;
  const auto be_jobs = backend_jobs(ctx, jobs);
  ctx.backend().key_switch_extended_sum(jobs.front().dec->level, jobs.front().dec->count, be_jobs.size(),
                                        be_jobs.data(), sum0, sum1, accumulate);
}

uint64_t rotation_element(const Context& ctx, int64_t step) {
  const auto slots = static_cast<int64_t>(ctx.params().slots());
  const int64_t s = ((step % slots) + slots) % slots;
  return s == 0 ? 0 : galois_element_for_step(ctx, s);
}

HoistedRotations plan_hoisted_rotations(const Context& ctx, const std::vector<const Ciphertext*>& xs,
                                        const std::vector<std::vector<int64_t>>& steps, const GaloisKeys& gk,
                                        const char* what) {
  require(xs.size() == steps.size(), ErrorCode::InvalidArgument,
          std::string(what) + ": " + std::to_string(xs.size()) + " ciphertexts but " + std::to_string(steps.size()) +
              " lists of steps");
  HoistedRotations plan;
  plan.elements.resize(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    ckks::check_owned(ctx, xs[i]->context(), xs[i]->empty(), "ciphertext");
    require(xs[i]->size() == 2, ErrorCode::InvalidArgument, "relinearize before rotating");
    bool rotates = false;
    for (int64_t step : steps[i]) {
      const uint64_t g = rotation_element(ctx, step);
      if (g) galois_key(ctx, gk, g);
      plan.elements[i].push_back(g);
      rotates = rotates || g != 0;
    }
    if (rotates) plan.by_level[xs[i]->level()].push_back(i);
  }
  return plan;
}

void rotate_hoisted_batches(const Context& ctx, const GaloisKeys& gk, const HoistedRotations& plan,
                            const std::vector<const uint64_t*>& c1,
                            const std::function<RotationTarget(size_t, size_t)>& target, bool extended) {
  for_each_batch(ctx, plan.by_level, [&](uint32_t level, std::span<const size_t> idx) {
    std::vector<const uint64_t*> polys;
    for (size_t i : idx) polys.push_back(c1[i]);
    const auto decs = decompose_many(ctx, polys, level);
    std::vector<Job> jobs;
    for (size_t d = 0; d < idx.size(); ++d) {
      const size_t i = idx[d];
      for (size_t k = 0; k < plan.elements[i].size(); ++k) {
        const uint64_t g = plan.elements[i][k];
        if (!g) continue;
        const RotationTarget t = target(i, k);
        jobs.push_back({&decs[d], &galois_key(ctx, gk, g), g, t.out0, t.out1, t.add0, nullptr});
      }
    }
    if (extended) apply_extended_many(ctx, jobs);
    else apply_many(ctx, jobs);
  });
}

const SwitchingKey& galois_key(const Context& ctx, const GaloisKeys& gk, uint64_t g) {
  auto it = gk.keys.find(g);
  require(it != gk.keys.end(), ErrorCode::MissingKey, "no Galois key for element " + std::to_string(g));
  require(it->second.context()->id() == ctx.id(), ErrorCode::ContextMismatch,
          "Galois key belongs to a different context");
  return it->second;
}

void apply_automorphism(const Context& ctx, const Decomposition& dec, const SwitchingKey& key, uint64_t g,
                        uint64_t* out0, uint64_t* out1, const uint64_t* add0, const uint64_t* add1) {
  apply_many(ctx, {Job{&dec, &key, g, out0, out1, add0, add1}});
}

}  // namespace veil::keyswitch
