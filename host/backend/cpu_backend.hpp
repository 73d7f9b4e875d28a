// The reference CPU backend: portable C++, OpenMP over limbs.
#pragma once

#include <map>
#include <mutex>
#include <vector>

#include "arith/modarith.hpp"
#include "arith/ntt.hpp"
#include "veil/backend.hpp"

namespace veil {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(std::shared_ptr<const RnsTables> tables);
  ~CpuBackend() override;
  std::string name() const override { return "cpu"; }

  uint64_t* allocate(size_t words) override;
  void release(uint64_t* ptr, size_t words, bool wipe) noexcept override;
  void upload(uint64_t* dst, const uint64_t* host_src, size_t words) override;
  void download(uint64_t* host_dst, const uint64_t* src, size_t words) override;
  void copy(uint64_t* dst, const uint64_t* src, size_t words) override;
  void set_zero(uint64_t* dst, size_t words) override;
  void upload_signed(Basis b, uint64_t* dst, const int64_t* host_coeffs) override;
  void sample_uniform(Basis b, uint64_t* dst, const Seed& seed, uint64_t stream) override;

  void add(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void sub(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void negate(Basis b, uint64_t* out, const uint64_t* x) override;
  void multiply(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void multiply_accumulate(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void multiply_sum(Basis b, uint32_t polys, size_t terms, const uint64_t* const* xs, const uint64_t* const* ys,
                    uint64_t* out, bool accumulate) override;
  void multiply_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) override;
  void add_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) override;

  void ntt_forward(Basis b, uint64_t* data) override;
  void ntt_inverse(Basis b, uint64_t* data) override;
  void automorphism_ntt(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) override;
  void automorphism_coeff(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) override;

  void rescale(uint32_t level, const uint64_t* in, uint64_t* out) override;
  void mod_up(uint32_t level, uint32_t digit, uint64_t* out_qp, const uint64_t* coeff,
              const uint64_t* ntt) override;
  void mod_down(uint32_t level, uint64_t* out_q, uint64_t* in_qp) override;
  void mod_down_rescale_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2, const uint64_t* add0,
                             const uint64_t* add1) override;
  void key_switch_inner_product(uint32_t level, uint32_t num_digits, const uint64_t* digits,
                                const uint64_t* key, uint64_t* out0, uint64_t* out1) override;
  void combine(Basis b, uint32_t polys, const CombineMatrix& m, const uint64_t* const* inputs,
               uint64_t* const* outputs, bool accumulate) override;

  const arith::NttTables& ntt_table(uint32_t prime_index) const { return ntt_[prime_index]; }

 private:
  const std::vector<uint32_t>& ntt_permutation(uint64_t g);
  // out[i] = round(x / D) mod q_i for i < keep (NTT form), D the product of plan.drop's
  // primes, whose limbs are at `dropped` (NTT form, used as scratch): mod_down's
  // arithmetic for any dropped basis (RnsTables::ModDownPlan). With add,
  // out[i] += add[i] * add_scale[i] mod q_i.
  void divide_rounded(const RnsTables::ModDownPlan& plan, uint64_t* dropped, uint32_t keep, const uint64_t* x,
                      uint64_t* out, const uint64_t* add, const uint64_t* add_scale);
  std::vector<arith::Modulus> mod_;        // per prime index
  std::vector<arith::NttTables> ntt_;      // per prime index
  // Released blocks are kept for reuse (by size), so steady-state operations
  // neither call the allocator nor take fresh-page faults.
  std::mutex pool_mutex_;
  std::map<size_t, std::vector<uint64_t*>> pool_;
  size_t pooled_bytes_ = 0;
  std::mutex perm_mutex_;
  std::map<uint64_t, std::vector<uint32_t>> perm_cache_;
};

}  // namespace veil
