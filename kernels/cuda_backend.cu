// The `cuda` backend: every Backend primitive on device memory, bit-identical
// to the `cpu` backend (host/cpu_backend.cpp). Buffers are limb-major
// uint64_t[limbs][N] blocks from the backend's stream-ordered memory pool; all work of
// one backend runs in order on its own stream, and the calls that hand data
// to the host (download, upload's source reuse) synchronise that stream.
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../host/backend/cuda_seam.hpp"
#include "../host/arith/modarith.hpp"
#include "../host/arith/ntt.hpp"
#include "../host/arith/primes.hpp"
#include "../host/arith/special_fft.hpp"
#include "basis_conversion_kernels.cuh"
#include "combine_kernels.cuh"
#include "cuda_check.cuh"
#include "cuda_recording.cuh"
#include "device_memory.cuh"
#include "device_tables.cuh"
#include "elementwise_kernels.cuh"
#include "key_switch_kernels.cuh"
#include "multiply_sum_kernels.cuh"
#include "encode_kernels.cuh"
#include "ntt_kernels.cuh"
#include "sampling_kernels.cuh"
#include "veil/error.hpp"

namespace veil::cuda {

namespace {

// The seed's bytes as ChaCha20's little-endian key words.
ChachaKey chacha_key(const Seed& seed) {
  static_assert(sizeof(ChachaKey) == sizeof(Seed));
  ChachaKey key;
  std::memcpy(key.w, seed.data(), sizeof key.w);
  return key;
}

// cudaGetDeviceCount's error, or cudaSuccess when it found devices.
cudaError_t query_device_count(int& count) {
  count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    count = 0;
  }
  return err;
}

// Makes `device` current for the calling thread (a backend may be used from
// threads other than the one that created it).
void use_device(int device) {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device) VEIL_CUDA_CHECK(cudaSetDevice(device));
}

// Work queued on `waiter` from now on starts after the work queued so far on
// `producer` (of device producer_device); neither host thread blocks.
void order_after(cudaStream_t waiter, int waiter_device, cudaStream_t producer, int producer_device) {
  use_device(producer_device);
  cudaEvent_t done = nullptr;
  VEIL_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  VEIL_CUDA_CHECK(cudaEventRecord(done, producer));
  use_device(waiter_device);
  const cudaError_t err = cudaStreamWaitEvent(waiter, done, 0);
  cudaEventDestroy(done);  // released once the recorded work completes
  VEIL_CUDA_CHECK(err);
}

// Constant tables derived from RnsTables, uploaded once per backend.
struct DeviceRns {
  DeviceArray<DeviceModulus> mod;
  DeviceArray<uint64_t> root, root_shoup, inv_root, inv_root_shoup;
  DeviceArray<NttScalars> ntt_scalars;
  // Rescale: [level][i], row stride L + 1.
  DeviceArray<uint64_t> rs_ql_inv, rs_ql_inv_shoup, rs_half;
  // ModUp plans, concatenated; offsets per (level, digit) below.
  DeviceArray<uint64_t> mu_qhat_inv, mu_qhat_inv_shoup, mu_factors, mu_factors_shoup;
  struct PlanOffsets {
    uint32_t first = 0, count = 0, targets = 0;
    size_t qhat_off = 0, row_off = 0;
  };
  std::vector<std::vector<PlanOffsets>> mu_plans;  // [level][digit]
  // Every (digit, target) row of every level: level order, digit order, target order.
  DeviceArray<ModUpRow> mu_rows;
  // A ModDown plan (RnsTables::ModDownPlan) with the Shoup companions.
  struct ModDown {
    DeviceArray<uint64_t> phat_inv, phat_inv_shoup, phat_mod_q, phat_mod_q_shoup;
    DeviceArray<uint64_t> p_mod_q, p_mod_q_shoup, p_inv_mod_q, p_inv_mod_q_shoup;
    DeviceArray<double> p_inv;
  };
  ModDown md;
  std::vector<ModDown> mdr;  // [level]: ModDown and rescale at once (level >= 1)
};

// Uploads a ModDown plan (its rows are q_0 .. q_{rows - 1}).
DeviceRns::ModDown upload_mod_down(const RnsTables& t, const RnsTables::ModDownPlan& plan);

std::vector<uint64_t> shoup_all(const std::vector<uint64_t>& w, const std::vector<uint64_t>& q_of) {
  std::vector<uint64_t> out(w.size());
  for (size_t i = 0; i < w.size(); ++i) out[i] = arith::shoup_precompute(w[i], q_of[i]);
  return out;
}

// The NTT tables of host/ntt.cpp (same psi, same bit-reversed layout), for every prime.
void build_ntt_tables(const RnsTables& t, DeviceRns& d) {
  const size_t n = t.n, primes = t.primes.size();
  std::vector<DeviceModulus> mod(primes);
  std::vector<NttScalars> scalars(primes);
  std::vector<uint64_t> root(primes * n), root_s(primes * n), inv_root(primes * n), inv_root_s(primes * n);
  for (size_t p = 0; p < primes; ++p) {
    const uint64_t q = t.primes[p];
    const arith::Modulus m(q);
    mod[p] = DeviceModulus{m.value, m.ratio_hi, m.ratio_lo};
    const uint64_t psi = arith::minimal_primitive_root(2 * n, q);
    const uint64_t psi_inv = arith::inv_mod(psi, q);
    uint64_t* r = root.data() + p * n;
    uint64_t* ir = inv_root.data() + p * n;
    uint64_t power = 1, inv_power = 1;
    for (uint64_t k = 0; k < n; ++k) {  // root[brev(k)] = psi^k, inv_root[brev(k)] = psi^-k
      const uint32_t rev = arith::bit_reverse(static_cast<uint32_t>(k), t.log_n);
      r[rev] = power;
      ir[rev] = inv_power;
      power = m.mul(power, psi);
      inv_power = m.mul(inv_power, psi_inv);
    }
    for (uint64_t k = 0; k < n; ++k) {
      root_s[p * n + k] = arith::shoup_precompute(r[k], q);
      inv_root_s[p * n + k] = arith::shoup_precompute(ir[k], q);
    }
    NttScalars& s = scalars[p];
    s.n_inv = arith::inv_mod(n % q, q);
    s.n_inv_shoup = arith::shoup_precompute(s.n_inv, q);
    s.last_w_n_inv = m.mul(ir[1], s.n_inv);
    s.last_w_n_inv_shoup = arith::shoup_precompute(s.last_w_n_inv, q);
  }
  d.mod = DeviceArray<DeviceModulus>(mod);
  d.ntt_scalars = DeviceArray<NttScalars>(scalars);
  d.root = DeviceArray<uint64_t>(root);
  d.root_shoup = DeviceArray<uint64_t>(root_s);
  d.inv_root = DeviceArray<uint64_t>(inv_root);
  d.inv_root_shoup = DeviceArray<uint64_t>(inv_root_s);
}

void build_conversion_tables(const RnsTables& t, DeviceRns& d) {
  const uint32_t L = t.max_level, rows = L + 1;
  // Rescale, padded to (L + 1) x (L + 1).
  std::vector<uint64_t> ql_inv(rows * rows, 0), ql_inv_s(rows * rows, 0), half(rows * rows, 0);
  for (uint32_t l = 1; l <= L; ++l) {
    for (uint32_t i = 0; i < l; ++i) {
      const uint64_t qi = t.primes[i];
      ql_inv[l * rows + i] = t.rescale[l].ql_inv_mod_q[i];
      ql_inv_s[l * rows + i] = arith::shoup_precompute(ql_inv[l * rows + i], qi);
      half[l * rows + i] = t.rescale[l].half_ql_mod_q[i];
    }
  }
  d.rs_ql_inv = DeviceArray<uint64_t>(ql_inv);
  d.rs_ql_inv_shoup = DeviceArray<uint64_t>(ql_inv_s);
  d.rs_half = DeviceArray<uint64_t>(half);

  // ModUp: the Shoup companions the CPU computes per call, precomputed once, and
  // one row per (digit, target) with the offset of its factors.
  std::vector<ModUpRow> mu_rows;
  std::vector<uint64_t> qhat, qhat_s, factors, factors_s;
  d.mu_plans.assign(rows, {});
  for (uint32_t l = 0; l <= L; ++l) {
    const Basis qp{l + 1, true};
    for (uint32_t j = 0; j < t.mod_up[l].size(); ++j) {
      const auto& plan = t.mod_up[l][j];
      DeviceRns::PlanOffsets off;
      off.first = plan.first;
      off.count = plan.count;
      off.targets = static_cast<uint32_t>(plan.target_limbs.size());
      off.qhat_off = qhat.size();
      off.row_off = mu_rows.size();
      for (uint32_t i = 0; i < plan.count; ++i) {
        qhat.push_back(plan.qhat_inv[i]);
        qhat_s.push_back(arith::shoup_precompute(plan.qhat_inv[i], t.primes[plan.first + i]));
      }
      for (size_t k = 0; k < plan.target_limbs.size(); ++k) {
        mu_rows.push_back(ModUpRow{j, plan.target_limbs[k], plan.first, plan.count, factors.size()});
        const uint64_t target = t.primes[t.prime_index(qp, plan.target_limbs[k])];
        for (uint32_t i = 0; i < plan.count; ++i) {
          const uint64_t f = plan.qhat_mod_target[k * plan.count + i];
          factors.push_back(f);
          factors_s.push_back(arith::shoup_precompute(f, target));
        }
      }
      d.mu_plans[l].push_back(off);
    }
  }
  d.mu_rows = DeviceArray<ModUpRow>(mu_rows);
  d.mu_qhat_inv = DeviceArray<uint64_t>(qhat);
  d.mu_qhat_inv_shoup = DeviceArray<uint64_t>(qhat_s);
  d.mu_factors = DeviceArray<uint64_t>(factors);
  d.mu_factors_shoup = DeviceArray<uint64_t>(factors_s);

  // ModDown, and ModDown with the rescale at each level (D = q_l P).
  d.md = upload_mod_down(t, t.mod_down);
  d.mdr.resize(L + 1);
  for (uint32_t l = 1; l <= L; ++l) d.mdr[l] = upload_mod_down(t, t.mod_down_rescale[l]);
}

DeviceRns::ModDown upload_mod_down(const RnsTables& t, const RnsTables::ModDownPlan& plan) {
  const size_t k_count = plan.drop.size(), rows = plan.p_mod_q.size();
  std::vector<uint64_t> d_of(k_count), q_of_rows(rows), q_of_matrix(rows * k_count);
  for (size_t k = 0; k < k_count; ++k) d_of[k] = t.primes[plan.drop[k]];
  for (size_t i = 0; i < rows; ++i) {
    q_of_rows[i] = t.primes[i];
    for (size_t k = 0; k < k_count; ++k) q_of_matrix[i * k_count + k] = t.primes[i];
  }
  DeviceRns::ModDown m;
  m.phat_inv = DeviceArray<uint64_t>(plan.phat_inv);
  m.phat_inv_shoup = DeviceArray<uint64_t>(shoup_all(plan.phat_inv, d_of));
  m.phat_mod_q = DeviceArray<uint64_t>(plan.phat_mod_q);
  m.phat_mod_q_shoup = DeviceArray<uint64_t>(shoup_all(plan.phat_mod_q, q_of_matrix));
  m.p_mod_q = DeviceArray<uint64_t>(plan.p_mod_q);
  m.p_mod_q_shoup = DeviceArray<uint64_t>(shoup_all(plan.p_mod_q, q_of_rows));
  m.p_inv_mod_q = DeviceArray<uint64_t>(plan.p_inv_mod_q);
  m.p_inv_mod_q_shoup = DeviceArray<uint64_t>(shoup_all(plan.p_inv_mod_q, q_of_rows));
  m.p_inv = DeviceArray<double>(plan.p_inv);
  return m;
}

// Owns the backend's stream (created first, destroyed last).
class Stream {
 public:
  Stream() { VEIL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (stream_) {
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// A stream made by CudaBackend::create_stream, and the streams each thread has
// pushed (innermost last), keyed by backend.
class CudaStream final : public BackendStream {
 public:
  explicit CudaStream(const void* owner) : owner_(owner) {}
  cudaStream_t get() const { return stream_.get(); }
  const void* owner() const { return owner_; }

 private:
  const void* owner_;
  Stream stream_;
};

struct PushedStream {
  const void* backend;
  cudaStream_t stream;
};
thread_local std::vector<PushedStream> t_pushed_streams;

class CudaBackend final : public Backend {
 public:
  CudaBackend(std::shared_ptr<const RnsTables> tables, int device);
  ~CudaBackend() override;
  std::string name() const override { return "cuda"; }
  void synchronize() override;
  std::unique_ptr<BackendStream> create_stream() override;
  void push_stream(BackendStream* s) override;
  void pop_stream() override;
  void timer_start() override;
  double timer_stop_ms() override;
  bool begin_recording() override;
  std::unique_ptr<BackendRecording> end_recording() override;
  void replay(BackendRecording& recording) override;

  uint64_t* allocate(size_t words) override;
  void release(uint64_t* ptr, size_t words, bool wipe) noexcept override;
  void upload(uint64_t* dst, const uint64_t* host_src, size_t words) override;
  void download(uint64_t* host_dst, const uint64_t* src, size_t words) override;
  void copy(uint64_t* dst, const uint64_t* src, size_t words) override;
  void copy_many(size_t count, uint64_t* const* dsts, const uint64_t* const* srcs, const size_t* words) override;
  void set_zero(uint64_t* dst, size_t words) override;
  void upload_signed(Basis b, uint64_t* dst, const int64_t* host_coeffs) override;
  void sample_signed(Basis b, uint64_t* dst, SignedDistribution d, const Seed& seed, uint64_t stream_id) override;
  void sample_uniform(Basis b, uint64_t* dst, const Seed& seed, uint64_t stream_id) override;
  void encode_slots(Basis b, uint64_t* dst, const std::complex<double>* values, size_t count, double scale) override;
  bool copy_from(uint64_t* dst, Backend& from, const uint64_t* src, size_t words) override;

  void add(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void sub(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void negate(Basis b, uint64_t* out, const uint64_t* x) override;
  void add_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void sub_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void multiply(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void multiply_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void multiply_scalar_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* s) override;
  void multiply_accumulate(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) override;
  void multiply_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) override;
  void add_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) override;

  void ntt_forward(Basis b, uint64_t* data) override;
  void ntt_inverse(Basis b, uint64_t* data) override;
  void automorphism_ntt(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) override;
  void automorphism_ntt_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* in, uint64_t g) override;
  void automorphism_coeff(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) override;

  void rescale(uint32_t level, const uint64_t* in, uint64_t* out) override;
  void rescale_polys(uint32_t level, uint32_t polys, const uint64_t* in, uint64_t* out) override;
  void rescale_many(uint32_t level, size_t count, const uint64_t* const* ins, uint64_t* const* outs) override;
  void mod_up(uint32_t level, uint32_t digit, uint64_t* out_qp, const uint64_t* coeff,
              const uint64_t* ntt) override;
  void mod_up_all(uint32_t level, uint64_t* out_digits, const uint64_t* coeff, const uint64_t* ntt) override;
  void mod_down(uint32_t level, uint64_t* out_q, uint64_t* in_qp) override;
  void mod_down_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2, const uint64_t* add0,
                     const uint64_t* add1) override;
  void mod_down_pair_automorphism(uint32_t level, uint64_t g, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2,
                                  const uint64_t* add0, const uint64_t* add1) override;
  void tensor(Basis b, uint64_t* d0, uint64_t* d1, uint64_t* d2, const uint64_t* a0, const uint64_t* a1,
              const uint64_t* b0, const uint64_t* b1) override;
  void key_switch_inner_product(uint32_t level, uint32_t num_digits, const uint64_t* digits,
                                const uint64_t* key, uint64_t* out0, uint64_t* out1) override;
  void combine(Basis b, uint32_t polys, const CombineMatrix& m, const uint64_t* const* inputs,
               uint64_t* const* outputs, bool accumulate) override;
  void multiply_sum(Basis b, uint32_t polys, size_t terms, const uint64_t* const* xs, const uint64_t* const* ys,
                    uint64_t* out, bool accumulate) override;
  void key_switch_decompose(uint32_t level, uint64_t* out_digits, const uint64_t* ntt) override;
  void key_switch_apply(uint32_t level, uint32_t num_digits, const uint64_t* decomposed, const uint64_t* ntt,
                        const uint64_t* key, uint64_t* out0, uint64_t* out1) override;
  void key_switch_decompose_many(uint32_t level, size_t count, uint64_t* const* out_digits,
                                 const uint64_t* const* ntts) override;
  void key_switch_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs) override;
  void mod_down_rescale_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2, const uint64_t* add0,
                             const uint64_t* add1) override;
  void key_switch_rescale_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs) override;
  void key_switch_extended_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs) override;
  void key_switch_extended_sum(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs,
                               uint64_t* sum0, uint64_t* sum1, bool accumulate) override;
  void multiply_by_p(uint32_t level, size_t count, uint64_t* const* outs, const uint64_t* const* ins) override;
  void mod_down_many(uint32_t level, size_t count, uint64_t* const* outs, uint64_t* const* ins) override;
  // kMaxBatch, fewer when their top-level decompositions would pass 1 GiB (9 at the
  // 2^16 preset, whose decompositions take 105 MiB each).
  size_t key_switch_batch() const override {
    const RnsTables& t = *tables_;
    const size_t bytes = static_cast<size_t>(t.digits(t.max_level)) * poly_words(Basis{t.max_level + 1, true}) * 8;
    return std::clamp<size_t>((size_t{1} << 30) / bytes, 1, kMaxBatch);
  }

 private:
  LimbMap map(Basis b) const {
    LimbMap m;
    m.limbs = tables_->limbs(b);
    m.q_count = b.q_count;
    m.q_first = 0;
    m.p_first = tables_->max_level + 1;
    return m;
  }
  void check_limbs(Basis b) const {
    require(b.q_count <= tables_->max_level + 1, ErrorCode::InvalidArgument, "cuda backend: basis exceeds Q_L");
  }
  RescaleView rescale_view(uint32_t level) const {
    const size_t off = static_cast<size_t>(level) * (tables_->max_level + 1);
    return RescaleView{rns_.rs_ql_inv.get() + off, rns_.rs_ql_inv_shoup.get() + off, rns_.rs_half.get() + off};
  }
  static ModDownView view_of(const DeviceRns::ModDown& m) {
    return ModDownView{m.phat_inv.get(),    m.phat_inv_shoup.get(),    m.phat_mod_q.get(),
                       m.phat_mod_q_shoup.get(), m.p_mod_q.get(),      m.p_mod_q_shoup.get(),
                       m.p_inv_mod_q.get(), m.p_inv_mod_q_shoup.get(), m.p_inv.get()};
  }
  ModDownView mod_down_view() const { return view_of(rns_.md); }
  // ModDown and rescale at once at `level`: the addends are scaled by q_l^-1.
  ModDownView mod_down_rescale_view(uint32_t level) const {
    ModDownView v = view_of(rns_.mdr[level]);
    const size_t row = static_cast<size_t>(level) * (tables_->max_level + 1);
    v.add_scale = rns_.rs_ql_inv.get() + row;
    v.add_scale_shoup = rns_.rs_ql_inv_shoup.get() + row;
    return v;
  }
  // The calling thread's current stream of this backend.
  cudaStream_t stream() const {
    for (auto it = t_pushed_streams.rbegin(); it != t_pushed_streams.rend(); ++it)
      if (it->backend == this) return it->stream;
    return stream_.get();
  }
  void binary(BinaryOp op, Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y, uint32_t polys = 1);
  struct ModUpLaunch {
    ModUpDigitsView plan;
    LimbMap targets;
  };
  ModUpLaunch mod_up_launch(uint32_t level, uint32_t first_digit, uint32_t digits) const;
  void mod_up_digits(uint32_t level, uint32_t first_digit, uint32_t digits, uint64_t* out, const uint64_t* coeff,
                     const uint64_t* ntt);
  void mod_down_polys(uint32_t level, ModDownPolys mp, uint64_t* in_qp);
  // mod_down_polys dividing by q_l P (Backend::mod_down_rescale_pair): outputs over Q_{level-1}.
  void mod_down_rescale_polys(uint32_t level, ModDownPolys mp, uint64_t* in_qp);
  // What both run: divide by the limbs of d_map, which start at limb `keep`, into the
  // first `keep` Q limbs with plan md (merge: the rescaled form's q_l addend).
  void divide_rounded(uint32_t level, ModDownPolys mp, uint64_t* in_qp, const ModDownView& md, LimbMap d_map,
                      uint32_t keep, bool merge);
  // key_switch_many, or key_switch_rescale_many with `rescale`.
  void key_switch_groups(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs, bool rescale);
  // The jobs (checked: level, digits, buffers, `outputs` named, g) in groups of up to
  // kMaxBatch, fewer when their scratch would pass 512 MiB: per group one inner-product
  // launch into contiguous scratch (job i's halves at 2 i words and (2 i + 1) words,
  // words = one polynomial over Q_l u P), then finish(first job, chunk, scratch, words).
  template <class Finish>
  void inner_product_groups(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs,
                            bool outputs, const char* what, Finish&& finish);
  // The inner products of `count` key switches from their decompositions, split or fused.
  void inner_products(uint32_t level, uint32_t num_digits, uint32_t count, const KeySwitchBatch& batch);
  ModDownPolys pair(uint32_t level, uint64_t* out0, uint64_t* out1, const uint64_t* add0, const uint64_t* add1) const;
  // g^-1 mod 2N (0 for g = 0); Error(InvalidArgument) unless g is 0 or odd and < 2N.
  uint64_t galois_inverse(uint64_t g, const char* what) const;
  // The recording the calling thread is making on this backend, or null.
  CudaRecording* recording_here() const {
    CudaRecording* r = recording_.load(std::memory_order_acquire);
    return r && r->thread() == std::this_thread::get_id() ? r : nullptr;
  }
  // Error(Unsupported) for a call that needs the host while this thread records.
  void refuse_while_recording(const char* call) const;
  void retire(CudaRecording& r) noexcept;

  int device_;
  Stream stream_;
  cudaEvent_t timer_start_event_ = nullptr, timer_stop_event_ = nullptr;
  DevicePool pool_;
  DeviceRns rns_;
  DeviceTablesView view_{};
  std::once_flag encode_roots_once_;
  DeviceArray<ComplexDouble> encode_roots_;  // SpecialFft::encode_roots, uploaded on first encode
  // Recordings: the one being made (by one thread) and every live one, whose memory
  // release() leaves alone. Guarded by recording_mutex_.
  mutable std::mutex recording_mutex_;
  std::atomic<CudaRecording*> recording_{nullptr};  // read without the mutex by allocate()
  std::vector<CudaRecording*> live_recordings_;
  std::atomic<size_t> live_count_{0};  // live_recordings_.size(), for release()'s fast path
  std::vector<std::unique_ptr<CudaRecording>> failed_recordings_;  // kept until the backend goes
  // How key switches run (split_key_switch()): true, the decomposition finishes its
  // digits' NTT and an apply is an inner product; false, every apply finishes them.
  bool split_key_switch_ = false;
};

// Split key switching by default, at every N the backend supports. The fused inner
// product (decomposed_kernel: each block finishes one run of every digit, one digit
// after the other) took 3.3-6.3x the plain inner product on the first H200 run (2^13:
// 40 against 8 us, 20 blocks; 2^16: 421 against 129 us, 128 registers per thread).
// Split, the digits' second NTT pass runs once per decomposition, a block per run of
// every digit, and hoisted rotations reuse it; it moves more bytes, so a GPU run must
// confirm it at 2^16 (docs/benchmarks.md, "Split key switching").
// VEIL_CUDA_KEY_SWITCH=split|fused|auto overrides the choice (to measure both);
// anything else is an error.
constexpr uint32_t kSplitKeySwitchMaxLogN = kNttMaxLogN;

bool split_key_switch(uint32_t log_n) {
  const char* v = std::getenv("VEIL_CUDA_KEY_SWITCH");
  const std::string mode = v ? v : "auto";
  if (mode == "auto") return log_n <= kSplitKeySwitchMaxLogN;
  require(mode == "split" || mode == "fused", ErrorCode::InvalidArgument,
          "VEIL_CUDA_KEY_SWITCH must be auto, split or fused, not '" + mode + "'");
  return mode == "split";
}

// Released memory kept reserved for reuse: at most a quarter of the device's memory.
size_t pool_limit() {
  size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
    cudaGetLastError();
    total = size_t{1} << 32;
  }
  return total / 4;
}

CudaBackend::CudaBackend(std::shared_ptr<const RnsTables> tables, int device)
    : Backend(std::move(tables)), device_((use_device(device), device)), pool_(device, pool_limit()) {
  const RnsTables& t = *tables_;
  require(t.log_n >= kNttMinLogN && t.log_n <= kNttMaxLogN, ErrorCode::Unsupported,
          "cuda backend: N must be 2^11 .. 2^17");
  require(t.primes.size() <= kMaxLimbs, ErrorCode::Unsupported,
          "cuda backend: at most " + std::to_string(kMaxLimbs) + " primes (Q u P)");
  require(t.alpha >= 1, ErrorCode::Unsupported, "cuda backend: needs at least one special prime");
  for (uint64_t q : t.primes)
    require(q < (uint64_t{1} << 61), ErrorCode::InvalidArgument, "cuda backend: primes must be below 2^61");
  build_ntt_tables(t, rns_);
  build_conversion_tables(t, rns_);
  // The table copies came from pageable memory: make sure they have landed
  // before any kernel on the (non-blocking) stream reads them.
  VEIL_CUDA_CHECK(cudaDeviceSynchronize());
  view_.mod = rns_.mod.get();
  view_.root = rns_.root.get();
  view_.root_shoup = rns_.root_shoup.get();
  view_.inv_root = rns_.inv_root.get();
  view_.inv_root_shoup = rns_.inv_root_shoup.get();
  view_.ntt_scalars = rns_.ntt_scalars.get();
  view_.log_n = t.log_n;
  view_.max_level = t.max_level;
  split_key_switch_ = split_key_switch(t.log_n);
}

CudaBackend::~CudaBackend() {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device_) cudaSetDevice(device_);
  cudaStreamSynchronize(stream());
  if (timer_start_event_) cudaEventDestroy(timer_start_event_);
  if (timer_stop_event_) cudaEventDestroy(timer_stop_event_);
  std::vector<std::unique_ptr<CudaRecording>> failed;
  {
    std::lock_guard<std::mutex> lock(recording_mutex_);
    failed.swap(failed_recordings_);
  }
  failed.clear();
  pool_.trim(stream());
}

// ---- memory ----

uint64_t* CudaBackend::allocate(size_t words) {
  if (words == 0) return nullptr;
  use_device(device_);
  if (CudaRecording* r = recording_here()) return static_cast<uint64_t*>(r->arena().allocate(words * sizeof(uint64_t)));
  return static_cast<uint64_t*>(pool_.allocate(words * sizeof(uint64_t), stream()));
}

void CudaBackend::release(uint64_t* ptr, size_t words, bool wipe) noexcept {
  if (!ptr) return;
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device_) cudaSetDevice(device_);
  const size_t bytes = words * sizeof(uint64_t);
  if (recording_.load(std::memory_order_acquire) || live_count_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(recording_mutex_);
    if (CudaRecording* r = recording_here()) {
      if (!r->arena().owns(ptr)) {  // from before: a recorded kernel may read it at every replay
        r->deferred().push_back({ptr, words, wipe});
        return;
      }
      if (wipe) cudaMemsetAsync(ptr, 0, bytes, stream());  // captured: each replay wipes it after its last use
      r->arena().release(ptr, bytes);  // reused later in the same recording (one stream, in order)
      return;
    }
    for (CudaRecording* live : live_recordings_)
      if (live->arena().owns(ptr)) {  // the recording's memory, freed with it
        if (wipe) cudaMemsetAsync(ptr, 0, bytes, stream());
        return;
      }
  }
  if (wipe) {
    // Secret material is zeroed (stream-ordered after its last use) before the
    // block can be handed out again; if that cannot be queued, do it synchronously.
    if (cudaMemsetAsync(ptr, 0, bytes, stream()) != cudaSuccess) {
      cudaGetLastError();
      cudaStreamSynchronize(stream());
      cudaMemset(ptr, 0, bytes);
      cudaDeviceSynchronize();
    }
  }
  pool_.release(ptr, stream());
}

void CudaBackend::upload(uint64_t* dst, const uint64_t* src, size_t words) {
  if (!words) return;
  refuse_while_recording("upload");
  use_device(device_);
  VEIL_CUDA_CHECK(cudaMemcpyAsync(dst, src, words * sizeof(uint64_t), cudaMemcpyHostToDevice, stream()));
  // The caller may free or reuse the host buffer as soon as we return.
  VEIL_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void CudaBackend::download(uint64_t* dst, const uint64_t* src, size_t words) {
  if (!words) return;
  refuse_while_recording("download");
  use_device(device_);
  VEIL_CUDA_CHECK(cudaMemcpyAsync(dst, src, words * sizeof(uint64_t), cudaMemcpyDeviceToHost, stream()));
  VEIL_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

// N words travel instead of limbs x N; the staging copy of the (secret) values is
// wiped stream-ordered after the conversion has read it.
void CudaBackend::upload_signed(Basis b, uint64_t* dst, const int64_t* host_coeffs) {
  refuse_while_recording("upload_signed (encoding a plaintext)");
  check_limbs(b);
  use_device(device_);
  const size_t n = tables_->n;
  uint64_t* staging = allocate(n);
  VEIL_CUDA_CHECK(cudaMemcpyAsync(staging, host_coeffs, n * sizeof(int64_t), cudaMemcpyHostToDevice, stream()));
  elementwise_signed_to_rns(view_, map(b), dst, reinterpret_cast<const int64_t*>(staging), stream());
  release(staging, n, /*wipe=*/true);
  // The caller may free or reuse (wipe) the host buffer as soon as we return.
  VEIL_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

// The samples are drawn on the device: nothing but the seed crosses the bus.
void CudaBackend::sample_signed(Basis b, uint64_t* dst, SignedDistribution d, const Seed& seed,
                                uint64_t stream_id) {
  refuse_while_recording("sample_signed (a replay would repeat the randomness)");
  check_limbs(b);
  use_device(device_);
  sample_signed_rns(view_, map(b), dst, chacha_key(seed), stream_id, d == SignedDistribution::Ternary, stream());
}

void CudaBackend::sample_uniform(Basis b, uint64_t* dst, const Seed& seed, uint64_t stream_id) {
  refuse_while_recording("sample_uniform (a replay would repeat the randomness)");
  check_limbs(b);
  use_device(device_);
  sample_uniform_rns(view_, map(b), dst, chacha_key(seed), stream_id, stream());
}

static_assert(sizeof(ComplexDouble) == sizeof(std::complex<double>), "slot values are copied as they lie");

// Slot values travel (16 bytes per slot, as many bytes as N int64 coefficients) and
// the FFT, rounding and residues run on the device. Values that could give a
// coefficient of 2^62 or more (sum of |value| * scale / slots as the bound), and bad
// input, take the host path, which also reports the errors.
void CudaBackend::encode_slots(Basis b, uint64_t* dst, const std::complex<double>* values, size_t count,
                               double scale) {
  refuse_while_recording("encode_slots (encoding a plaintext)");
  const arith::SpecialFft& fft = special_fft();
  const uint64_t slots = fft.slots();
  bool device_path = count <= slots;
  double total = 0;
  for (size_t i = 0; i < count && device_path; ++i) {
    device_path = std::isfinite(values[i].real()) && std::isfinite(values[i].imag());
    total += std::fabs(values[i].real()) + std::fabs(values[i].imag());
  }
  if (!device_path || !(total / static_cast<double>(slots) * scale < 0x1p62)) {
    Backend::encode_slots(b, dst, values, count, scale);
    return;
  }
  check_limbs(b);
  use_device(device_);
  std::call_once(encode_roots_once_, [&] {
    const auto& roots = fft.encode_roots();
    encode_roots_.assign(reinterpret_cast<const ComplexDouble*>(roots.data()), roots.size());
  });
  Scratch buf(*this, 2 * slots, /*wipe=*/true);  // the client's values
  auto* v = reinterpret_cast<ComplexDouble*>(buf.get());
  if (count)
    VEIL_CUDA_CHECK(cudaMemcpyAsync(v, values, count * sizeof(ComplexDouble), cudaMemcpyHostToDevice, stream()));
  if (count < slots)
    VEIL_CUDA_CHECK(cudaMemsetAsync(v + count, 0, (slots - count) * sizeof(ComplexDouble), stream()));
  special_fft_encode(v, encode_roots_.get(), slots, stream());
  encode_round_to_rns(view_, map(b), dst, v, 1.0 / static_cast<double>(slots), scale, stream());
  // The caller may free or reuse the host values as soon as we return.
  VEIL_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void CudaBackend::copy(uint64_t* dst, const uint64_t* src, size_t words) {
  if (!words || dst == src) return;
  use_device(device_);
  const size_t bytes = words * sizeof(uint64_t);
  if (dst < src + words && src < dst + words) {  // overlapping (memmove on the CPU): go through scratch
    Scratch tmp(*this, words);
    VEIL_CUDA_CHECK(cudaMemcpyAsync(tmp.get(), src, bytes, cudaMemcpyDeviceToDevice, stream()));
    VEIL_CUDA_CHECK(cudaMemcpyAsync(dst, tmp.get(), bytes, cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  VEIL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
}

void CudaBackend::copy_many(size_t count, uint64_t* const* dsts, const uint64_t* const* srcs, const size_t* words) {
  use_device(device_);
  for (size_t first = 0; first < count; first += kCopyBatch) {
    const uint32_t n = static_cast<uint32_t>(std::min<size_t>(count - first, kCopyBatch));
    CopyBatch batch{};
    uint64_t max_words = 0;
    for (uint32_t i = 0; i < n; ++i) {
      batch.src[i] = srcs[first + i];
      batch.dst[i] = dsts[first + i];
      batch.words[i] = words[first + i];
      max_words = std::max<uint64_t>(max_words, words[first + i]);
    }
    copy_batch(batch, n, max_words, stream());
  }
}

// Stream-to-stream ordering both ways: the copy (on this backend's stream) waits for
// the work issued on `from`, and `from`'s later work (which may reuse src) waits for
// the copy.
bool CudaBackend::copy_from(uint64_t* dst, Backend& from, const uint64_t* src, size_t words) {
  auto* other = dynamic_cast<CudaBackend*>(&from);
  if (!other) return false;
  if (other != this) refuse_while_recording("copy_from another backend");
  if (!words) return true;
  if (other == this) {
    copy(dst, src, words);
    return true;
  }
  const size_t bytes = words * sizeof(uint64_t);
  order_after(stream(), device_, other->stream(), other->device_);  // src is ready
  if (other->device_ == device_)
    VEIL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
  else
    VEIL_CUDA_CHECK(cudaMemcpyPeerAsync(dst, device_, src, other->device_, bytes, stream()));
  order_after(other->stream(), other->device_, stream(), device_);  // src may be reused after the copy
  return true;
}

void CudaBackend::set_zero(uint64_t* dst, size_t words) {
  if (!words) return;
  use_device(device_);
  VEIL_CUDA_CHECK(cudaMemsetAsync(dst, 0, words * sizeof(uint64_t), stream()));
}

// ---- element-wise ----

void CudaBackend::binary(BinaryOp op, Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y, uint32_t polys) {
  check_limbs(b);
  use_device(device_);
  LimbMap m = map(b);
  m.polys = polys;
  elementwise_binary(op, view_, m, out, x, y, stream());
}

void CudaBackend::add_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  binary(BinaryOp::Add, b, out, x, y, polys);
}
void CudaBackend::sub_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  binary(BinaryOp::Sub, b, out, x, y, polys);
}

void CudaBackend::add(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  binary(BinaryOp::Add, b, out, x, y);
}
void CudaBackend::sub(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  binary(BinaryOp::Sub, b, out, x, y);
}
void CudaBackend::multiply(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  binary(BinaryOp::Multiply, b, out, x, y);
}
void CudaBackend::multiply_accumulate(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  binary(BinaryOp::MultiplyAccumulate, b, out, x, y);
}

// The matrix is already on the device. Up to kInlineCombinePointers input and output
// pointers travel in the launch's parameters; larger tables with the call (one small
// copy, which waits for the stream unless recording).
void CudaBackend::combine(Basis b, uint32_t polys, const CombineMatrix& m, const uint64_t* const* inputs,
                          uint64_t* const* outputs, bool accumulate) {
  check_limbs(b);
  if (m.rows == 0) return;
  require(tables_->limbs(b) <= m.limbs, ErrorCode::InvalidArgument, "combine: the matrix has fewer limbs than the basis");
  use_device(device_);
  LimbMap lm = map(b);
  lm.polys = polys;
  const size_t words = m.columns + m.rows;
  if (words <= kInlineCombinePointers) {
    CombinePointers p{};
    p.columns = static_cast<uint32_t>(m.columns);
    for (size_t i = 0; i < m.columns; ++i) p.ptr[i] = const_cast<uint64_t*>(inputs[i]);  // only read
    for (size_t r = 0; r < m.rows; ++r) p.ptr[m.columns + r] = outputs[r];
    combine_rows_inline(view_, lm, m.rows, m.row_start, m.cols, m.weights, m.entries, p, accumulate, stream());
    return;
  }
  std::vector<uint64_t> table(words);
  for (size_t i = 0; i < m.columns; ++i) table[i] = reinterpret_cast<uintptr_t>(inputs[i]);
  for (size_t r = 0; r < m.rows; ++r) table[m.columns + r] = reinterpret_cast<uintptr_t>(outputs[r]);
  Scratch scratch(*this, words);
  if (CudaRecording* r = recording_here()) {
    // Recorded: the table stays in pinned memory the replays copy from.
    uint64_t* staged = r->pinned_words(words);
    std::copy(table.begin(), table.end(), staged);
    VEIL_CUDA_CHECK(cudaMemcpyAsync(scratch.get(), staged, words * sizeof(uint64_t), cudaMemcpyHostToDevice, stream()));
  } else {
    upload(scratch.get(), table.data(), words);
  }
  combine_rows(view_, lm, m.rows, m.row_start, m.cols, m.weights, m.entries,
               reinterpret_cast<const uint64_t* const*>(scratch.get()),
               reinterpret_cast<uint64_t* const*>(scratch.get() + m.columns), accumulate, stream());
}

// The terms' pointers travel in the launch's parameters, kInlineTerms at a time.
void CudaBackend::multiply_sum(Basis b, uint32_t polys, size_t terms, const uint64_t* const* xs,
                               const uint64_t* const* ys, uint64_t* out, bool accumulate) {
  check_limbs(b);
  use_device(device_);
  LimbMap lm = map(b);
  lm.polys = polys;
  size_t t = 0;
  do {
    const uint32_t count = static_cast<uint32_t>(std::min<size_t>(terms - t, kInlineTerms));
    TermPointers p{};
    for (uint32_t k = 0; k < count; ++k) p.xs[k] = xs[t + k], p.ys[k] = ys[t + k];
    multiply_sum_terms(view_, lm, count, p, out, accumulate || t > 0, stream());
    t += count;
  } while (t < terms);
}

void CudaBackend::tensor(Basis b, uint64_t* d0, uint64_t* d1, uint64_t* d2, const uint64_t* a0, const uint64_t* a1,
                         const uint64_t* b0, const uint64_t* b1) {
  check_limbs(b);
  use_device(device_);
  elementwise_tensor(view_, map(b), d0, d1, d2, a0, a1, b0, b1, stream());
}

void CudaBackend::negate(Basis b, uint64_t* out, const uint64_t* x) {
  check_limbs(b);
  use_device(device_);
  elementwise_negate(view_, map(b), out, x, stream());
}

void CudaBackend::multiply_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  check_limbs(b);
  use_device(device_);
  LimbMap m = map(b);
  m.polys = polys;
  elementwise_binary(BinaryOp::Multiply, view_, m, out, x, y, stream(), /*broadcast_y=*/true);
}

void CudaBackend::multiply_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) {
  multiply_scalar_polys(b, 1, out, x, s);
}

void CudaBackend::multiply_scalar_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* s) {
  check_limbs(b);
  use_device(device_);
  LimbMap m = map(b);
  m.polys = polys;
  LimbScalars sc{};
  for (uint32_t limb = 0; limb < m.limbs; ++limb) {
    const uint64_t q = tables_->primes[m.prime(limb)];
    sc.w[limb] = s[limb];
    sc.w_shoup[limb] = arith::shoup_precompute(s[limb], q);
  }
  elementwise_scalar(ScalarOp::Multiply, view_, m, out, x, sc, stream());
}

void CudaBackend::add_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) {
  check_limbs(b);
  use_device(device_);
  const LimbMap m = map(b);
  LimbScalars sc{};
  for (uint32_t limb = 0; limb < m.limbs; ++limb) sc.w[limb] = s[limb];
  elementwise_scalar(ScalarOp::Add, view_, m, out, x, sc, stream());
}

// ---- transforms ----

void CudaBackend::ntt_forward(Basis b, uint64_t* data) {
  check_limbs(b);
  use_device(device_);
  cuda::ntt_forward(view_, map(b), data, stream());
}

void CudaBackend::ntt_inverse(Basis b, uint64_t* data) {
  check_limbs(b);
  use_device(device_);
  cuda::ntt_inverse(view_, map(b), data, stream());
}

void CudaBackend::automorphism_ntt(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) {
  require((g & 1) && g < 2 * tables_->n, ErrorCode::InvalidArgument, "Galois element must be odd and < 2N");
  check_limbs(b);
  use_device(device_);
  cuda::automorphism_ntt(view_, map(b), out, in, g, stream());
}

void CudaBackend::automorphism_ntt_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* in, uint64_t g) {
  require((g & 1) && g < 2 * tables_->n, ErrorCode::InvalidArgument, "Galois element must be odd and < 2N");
  check_limbs(b);
  use_device(device_);
  LimbMap m = map(b);
  m.polys = polys;
  cuda::automorphism_ntt(view_, m, out, in, g, stream());
}

void CudaBackend::automorphism_coeff(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) {
  require((g & 1) && g < 2 * tables_->n, ErrorCode::InvalidArgument, "Galois element must be odd and < 2N");
  check_limbs(b);
  use_device(device_);
  cuda::automorphism_coeff(view_, map(b), out, in, g, stream());
}

// ---- RNS basis changes ----

void CudaBackend::rescale(uint32_t level, const uint64_t* in, uint64_t* out) { rescale_polys(level, 1, in, out); }

// Four launches for all the polynomials: the dropped limbs' INTT (out of place), then
// the forward NTT whose passes compute the rounding input and the final step.
void CudaBackend::rescale_polys(uint32_t level, uint32_t polys, const uint64_t* in, uint64_t* out) {
  require(polys >= 1, ErrorCode::InvalidArgument, "rescale_polys: no polynomials");
  const size_t n = tables_->n;
  std::vector<const uint64_t*> ins(polys);
  std::vector<uint64_t*> outs(polys);
  for (uint32_t z = 0; z < polys; ++z) {
    ins[z] = in + z * (level + 1) * n;
    outs[z] = out + z * level * n;
  }
  rescale_many(level, polys, ins.data(), outs.data());
}

// The same four launches for up to 32 polynomials at a time, each with its own buffers.
void CudaBackend::rescale_many(uint32_t level, size_t count, const uint64_t* const* ins, uint64_t* const* outs) {
  require(level >= 1 && level <= tables_->max_level, ErrorCode::LevelMismatch, "rescale needs level >= 1");
  use_device(device_);
  const size_t stride = (level + 1) * tables_->n;
  for (size_t first = 0; first < count; first += kMaxModDownPolys) {
    RescalePolys rp;
    rp.polys = static_cast<uint32_t>(std::min<size_t>(kMaxModDownPolys, count - first));
    for (uint32_t z = 0; z < rp.polys; ++z) {
      rp.in[z] = ins[first + z];
      rp.out[z] = outs[first + z];
    }
    Scratch scratch(*this, rp.polys * stride);
    rescale_ntt(view_, level, rescale_view(level), rp, scratch.get(), stream());
  }
}

void CudaBackend::mod_up(uint32_t level, uint32_t digit, uint64_t* out_qp, const uint64_t* coeff,
                         const uint64_t* ntt) {
  require(level <= tables_->max_level && digit < tables_->digits(level), ErrorCode::InvalidArgument,
          "mod_up: bad level/digit");
  mod_up_digits(level, digit, 1, out_qp, coeff, ntt);
}

void CudaBackend::mod_up_all(uint32_t level, uint64_t* out_digits, const uint64_t* coeff, const uint64_t* ntt) {
  require(level <= tables_->max_level, ErrorCode::InvalidArgument, "mod_up_all: bad level");
  mod_up_digits(level, 0, tables_->digits(level), out_digits, coeff, ntt);
}

// The ModUp plan of digits [first_digit, first_digit + digits) of a level (a level's
// digits are consecutive) and the LimbMap of their target limbs: one polynomial over
// Q_l u P per digit, each digit's own limbs skipped.
CudaBackend::ModUpLaunch CudaBackend::mod_up_launch(uint32_t level, uint32_t first_digit, uint32_t digits) const {
  const RnsTables& t = *tables_;
  const auto& plans = rns_.mu_plans[level];
  const DeviceRns::PlanOffsets& first = plans[first_digit];
  ModUpLaunch m;
  m.plan.first_digit = first_digit;
  m.plan.alpha = t.alpha;
  m.plan.first_limb = first.first;
  for (uint32_t j = first_digit; j < first_digit + digits; ++j) {
    m.plan.limbs += plans[j].count;
    m.plan.rows += plans[j].targets;
  }
  m.plan.row = rns_.mu_rows.get() + first.row_off;
  m.plan.qhat_inv = rns_.mu_qhat_inv.get() + first.qhat_off;
  m.plan.qhat_inv_shoup = rns_.mu_qhat_inv_shoup.get() + first.qhat_off;
  m.plan.factors = rns_.mu_factors.get();
  m.plan.factors_shoup = rns_.mu_factors_shoup.get();
  m.targets = map(Basis{level + 1, true});
  m.targets.polys = digits;
  m.targets.poly_stride = t.limbs(Basis{level + 1, true}) * t.n;  // words of one Q_l u P polynomial
  m.targets.skip_digit = t.alpha;
  m.targets.first_digit = first_digit;
  return m;
}

// Four launches however many digits: own limbs, scale, and the forward NTT's two
// passes over every digit's target limbs, the first computing the conversion.
void CudaBackend::mod_up_digits(uint32_t level, uint32_t first_digit, uint32_t digits, uint64_t* out,
                                const uint64_t* coeff, const uint64_t* ntt) {
  use_device(device_);
  const ModUpLaunch m = mod_up_launch(level, first_digit, digits);
  mod_up_own(view_, m.plan, m.targets.poly_stride, ntt, out, stream());
  Scratch y(*this, m.plan.limbs * tables_->n);
  mod_up_scale(view_, m.plan, coeff, y.get(), stream());
  mod_up_convert_ntt(view_, level, m.plan, m.targets, y.get(), out, stream());
}

// Three launches: the inverse NTT of ntt with the scaling in its last pass, then the
// forward NTT's first pass computing the conversion. The own limbs are not copied
// (key_switch_apply reads them from ntt) and the second pass is key_switch_apply's,
// or, split (split_key_switch_), a fourth launch here.
void CudaBackend::key_switch_decompose(uint32_t level, uint64_t* out_digits, const uint64_t* ntt) {
  key_switch_decompose_many(level, 1, &out_digits, &ntt);
}

// The same three launches for up to kMaxBatch inputs at a time.
void CudaBackend::key_switch_decompose_many(uint32_t level, size_t count, uint64_t* const* out_digits,
                                            const uint64_t* const* ntts) {
  require(level <= tables_->max_level, ErrorCode::InvalidArgument, "key_switch_decompose: bad level");
  use_device(device_);
  const ModUpLaunch m = mod_up_launch(level, 0, tables_->digits(level));
  for (size_t first = 0; first < count; first += kMaxBatch) {
    const auto chunk = static_cast<uint32_t>(std::min<size_t>(kMaxBatch, count - first));
    Scratch y(*this, static_cast<size_t>(chunk) * m.plan.limbs * tables_->n);
    mod_up_scale_from_ntt(view_, m.plan, chunk, ntts + first, y.get(), stream());
    mod_up_convert_strided(view_, level, m.plan, m.targets, chunk, y.get(), out_digits + first, split_key_switch_,
                           stream());
  }
}

void CudaBackend::key_switch_apply(uint32_t level, uint32_t num_digits, const uint64_t* decomposed,
                                   const uint64_t* ntt, const uint64_t* key, uint64_t* out0, uint64_t* out1) {
  const RnsTables& t = *tables_;
  require(level <= t.max_level && num_digits >= 1 && num_digits <= t.digits(level), ErrorCode::InvalidArgument,
          "key_switch_apply: bad level/digits");
  require(ntt != nullptr, ErrorCode::InvalidArgument, "key_switch_apply: the decomposed polynomial is needed");
  use_device(device_);
  KeySwitchBatch batch{};
  batch.decomposed[0] = decomposed;
  batch.ntt[0] = ntt;
  batch.key[0] = key;
  batch.out0[0] = out0;
  batch.out1[0] = out1;
  inner_products(level, num_digits, 1, batch);
}

void CudaBackend::inner_products(uint32_t level, uint32_t num_digits, uint32_t count, const KeySwitchBatch& batch) {
  if (split_key_switch_) cuda::key_switch_finished(view_, level, tables_->alpha, num_digits, count, batch, stream());
  else cuda::key_switch_decomposed(view_, level, tables_->alpha, num_digits, count, batch, stream());
}

// Groups of kMaxBatch jobs (fewer when their scratch would pass 512 MiB): one
// inner-product launch into contiguous scratch, then one ModDown launch sequence for
// both halves of every job, each with its own output, addend and permutation.
void CudaBackend::key_switch_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs) {
  key_switch_groups(level, num_digits, count, jobs, false);
}

void CudaBackend::key_switch_rescale_many(uint32_t level, uint32_t num_digits, size_t count,
                                          const KeySwitchJob* jobs) {
  require(level >= 1, ErrorCode::LevelMismatch, "key_switch_rescale_many needs level >= 1");
  for (size_t i = 0; i < count; ++i)
    require(jobs[i].g == 0, ErrorCode::InvalidArgument,
            "key_switch_rescale_many: rotations are not rescaled here (g != 0)");
  key_switch_groups(level, num_digits, count, jobs, true);
}

template <class Finish>
void CudaBackend::inner_product_groups(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs,
                                       bool outputs, const char* what, Finish&& finish) {
  const RnsTables& t = *tables_;
  require(level <= t.max_level && num_digits >= 1 && num_digits <= t.digits(level), ErrorCode::InvalidArgument,
          std::string(what) + ": bad level/digits");
  for (size_t i = 0; i < count; ++i) {  // every job checked before any work
    const KeySwitchJob& j = jobs[i];
    require(j.decomposed && j.ntt && j.key && (!outputs || (j.out0 && j.out1)), ErrorCode::InvalidArgument,
            std::string(what) + ": a job without its buffers");
    galois_inverse(j.g, what);  // checks g
  }
  if (count == 0) return;
  use_device(device_);
  const size_t words = poly_words(Basis{level + 1, true});
  const size_t budget_words = (size_t{512} << 20) / sizeof(uint64_t);
  const size_t group = std::clamp<size_t>(budget_words / (2 * words), 1, kMaxBatch);
  for (size_t first = 0; first < count; first += group) {
    const auto chunk = static_cast<uint32_t>(std::min(group, count - first));
    Scratch acc(*this, 2 * chunk * words);
    KeySwitchBatch batch{};
    for (uint32_t i = 0; i < chunk; ++i) {
      const KeySwitchJob& j = jobs[first + i];
      batch.decomposed[i] = j.decomposed;
      batch.ntt[i] = j.ntt;
      batch.key[i] = j.key;
      batch.out0[i] = acc.get() + 2 * i * words;
      batch.out1[i] = batch.out0[i] + words;
    }
    inner_products(level, num_digits, chunk, batch);
    finish(first, chunk, acc.get(), words);
  }
}

// Per group: the inner products, then one ModDown launch sequence for both halves of
// every job (its inputs in_stride words apart), each with its own output, addend and
// permutation.
void CudaBackend::key_switch_groups(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs,
                                    bool rescale) {
  inner_product_groups(level, num_digits, count, jobs, true, "key_switch_many",
                       [&](size_t first, uint32_t chunk, uint64_t* acc, size_t words) {
                         ModDownPolys mp;
                         mp.polys = 2 * chunk;
                         mp.in_stride = words;
                         for (uint32_t i = 0; i < chunk; ++i) {
                           const KeySwitchJob& j = jobs[first + i];
                           mp.out[2 * i] = j.out0;
                           mp.out[2 * i + 1] = j.out1;
                           mp.add[2 * i] = j.add0;
                           mp.add[2 * i + 1] = j.add1;
                           mp.g_inv[2 * i] = mp.g_inv[2 * i + 1] = galois_inverse(j.g, "key_switch_many");
                         }
                         if (rescale) mod_down_rescale_polys(level, mp, acc);
                         else mod_down_polys(level, mp, acc);
                       });
}

// Per group: the inner products, then one launch adding every job's addends and
// applying its permutation into its outputs.
void CudaBackend::key_switch_extended_many(uint32_t level, uint32_t num_digits, size_t count,
                                           const KeySwitchJob* jobs) {
  static_assert(2 * kMaxBatch <= kAutomorphismBatch, "a group's halves must fit one permutation launch");
  const LimbMap qp = map(Basis{level + 1, true});
  inner_product_groups(level, num_digits, count, jobs, true, "key_switch_extended_many",
                       [&](size_t first, uint32_t chunk, uint64_t* acc, size_t words) {
                         AutomorphismBatch perm{};
                         for (uint32_t i = 0; i < chunk; ++i) {
                           const KeySwitchJob& j = jobs[first + i];
                           for (uint32_t h = 0; h < 2; ++h) {
                             perm.in[2 * i + h] = acc + (2 * i + h) * words;
                             perm.out[2 * i + h] = h ? j.out1 : j.out0;
                             perm.add[2 * i + h] = h ? j.add1 : j.add0;
                             perm.g[2 * i + h] = j.g;
                           }
                         }
                         cuda::add_automorphism_batch(view_, qp, perm, 2 * chunk, stream());
                       });
}

// Per group: the inner products, then one launch gathering every job's permuted words
// (and addends) into the sums.
void CudaBackend::key_switch_extended_sum(uint32_t level, uint32_t num_digits, size_t count,
                                          const KeySwitchJob* jobs, uint64_t* sum0, uint64_t* sum1,
                                          bool accumulate) {
  static_assert(kMaxBatch <= kSumBatch, "a group must fit one gathering launch");
  require(sum0 && sum1, ErrorCode::InvalidArgument, "key_switch_extended_sum: no sums");
  require(level <= tables_->max_level && num_digits >= 1 && num_digits <= tables_->digits(level),
          ErrorCode::InvalidArgument, "key_switch_extended_sum: bad level/digits");
  const Basis qp{level + 1, true};
  if (count == 0 && !accumulate) {
    set_zero(sum0, poly_words(qp));
    set_zero(sum1, poly_words(qp));
  }
  inner_product_groups(level, num_digits, count, jobs, false, "key_switch_extended_sum",
                       [&](size_t first, uint32_t chunk, uint64_t* acc, size_t words) {
                         PermutedSum sum{};
                         sum.out[0] = sum0;
                         sum.out[1] = sum1;
                         for (uint32_t i = 0; i < chunk; ++i) {
                           const KeySwitchJob& j = jobs[first + i];
                           for (uint32_t h = 0; h < 2; ++h) {
                             sum.in[h][i] = acc + (2 * i + h) * words;
                             sum.add[h][i] = h ? j.add1 : j.add0;
                           }
                           sum.g[i] = j.g;
                         }
                         cuda::permuted_sum(view_, map(qp), sum, chunk, accumulate || first > 0, stream());
                       });
}

void CudaBackend::multiply_by_p(uint32_t level, size_t count, uint64_t* const* outs, const uint64_t* const* ins) {
  require(level <= tables_->max_level, ErrorCode::InvalidArgument, "multiply_by_p: bad level");
  use_device(device_);
  const Basis qp{level + 1, true};
  LimbScalars sc{};
  for (uint32_t limb = 0; limb <= level; ++limb) {
    sc.w[limb] = tables_->mod_down.p_mod_q[limb];
    sc.w_shoup[limb] = arith::shoup_precompute(sc.w[limb], tables_->primes[limb]);
  }
  for (size_t first = 0; first < count; first += kLiftBatch) {
    const auto chunk = static_cast<uint32_t>(std::min<size_t>(kLiftBatch, count - first));
    LiftBatch batch{};
    for (uint32_t i = 0; i < chunk; ++i) {
      batch.out[i] = outs[first + i];
      batch.in[i] = ins[first + i];
    }
    cuda::lift_batch(view_, map(qp), batch, chunk, sc, stream());
  }
}

// Up to kMaxModDownPolys inputs gathered into contiguous scratch (one copy launch), then
// one ModDown launch sequence for all of them.
void CudaBackend::mod_down_many(uint32_t level, size_t count, uint64_t* const* outs, uint64_t* const* ins) {
  require(level <= tables_->max_level, ErrorCode::InvalidArgument, "mod_down: bad level");
  if (count == 1) {  // no gathering copy
    mod_down(level, outs[0], ins[0]);
    return;
  }
  const size_t words = poly_words(Basis{level + 1, true});
  for (size_t first = 0; first < count; first += kMaxModDownPolys) {
    const auto chunk = static_cast<uint32_t>(std::min<size_t>(kMaxModDownPolys, count - first));
    Scratch in(*this, chunk * words);
    std::vector<uint64_t*> dsts(chunk);
    std::vector<size_t> lengths(chunk, words);
    ModDownPolys mp;
    mp.polys = chunk;
    mp.in_stride = words;
    for (uint32_t i = 0; i < chunk; ++i) {
      dsts[i] = in.get() + i * words;
      mp.out[i] = outs[first + i];
    }
    copy_many(chunk, dsts.data(), ins + first, lengths.data());
    mod_down_polys(level, mp, in.get());
  }
}

void CudaBackend::mod_down(uint32_t level, uint64_t* out_q, uint64_t* in_qp) {
  ModDownPolys mp;
  mp.out[0] = out_q;
  mod_down_polys(level, mp, in_qp);
}

// Both halves of a key-switch result (in_qp2: [2][Q_l u P][N]) and their addends.
ModDownPolys CudaBackend::pair(uint32_t level, uint64_t* out0, uint64_t* out1, const uint64_t* add0,
                               const uint64_t* add1) const {
  ModDownPolys mp;
  mp.polys = 2;
  mp.in_stride = tables_->limbs(Basis{level + 1, true}) * tables_->n;
  mp.out[0] = out0;
  mp.out[1] = out1;
  mp.add[0] = add0;
  mp.add[1] = add1;
  return mp;
}

void CudaBackend::mod_down_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2,
                                const uint64_t* add0, const uint64_t* add1) {
  mod_down_polys(level, pair(level, out0, out1, add0, add1), in_qp2);
}

uint64_t CudaBackend::galois_inverse(uint64_t g, const char* what) const {
  if (g == 0) return 0;
  const uint64_t two_n = 2 * tables_->n;
  require(g % 2 == 1 && g < two_n, ErrorCode::InvalidArgument, std::string(what) + ": g must be odd and < 2N");
  // g^-1 mod 2N = g^(N - 1): the odd residues mod 2N form a group of order N.
  uint64_t g_inv = 1, base = g;
  for (uint64_t e = tables_->n - 1; e != 0; e >>= 1, base = base * base % two_n)
    if (e & 1) g_inv = g_inv * base % two_n;
  return g_inv;
}

// The permutation rides on the ModDown's last pass: its stores go to the permuted slots.
void CudaBackend::mod_down_pair_automorphism(uint32_t level, uint64_t g, uint64_t* out0, uint64_t* out1,
                                             uint64_t* in_qp2, const uint64_t* add0, const uint64_t* add1) {
  require(g != 0, ErrorCode::InvalidArgument, "mod_down_pair_automorphism: g must be odd and < 2N");
  ModDownPolys mp = pair(level, out0, out1, add0, add1);
  mp.g_inv[0] = mp.g_inv[1] = galois_inverse(g, "mod_down_pair_automorphism");
  mod_down_polys(level, mp, in_qp2);
}

// ModDown of mp.polys polynomials in one launch sequence.
void CudaBackend::mod_down_polys(uint32_t level, ModDownPolys mp, uint64_t* in_qp) {
  const RnsTables& t = *tables_;
  require(level <= t.max_level, ErrorCode::InvalidArgument, "mod_down: bad level");
  LimbMap p_map;  // the P limbs
  p_map.limbs = t.alpha;
  p_map.q_count = 0;
  p_map.p_first = t.max_level + 1;
  divide_rounded(level, mp, in_qp, mod_down_view(), p_map, level + 1, false);
}

void CudaBackend::mod_down_rescale_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2,
                                        const uint64_t* add0, const uint64_t* add1) {
  mod_down_rescale_polys(level, pair(level, out0, out1, add0, add1), in_qp2);
}

// D = q_l P: its limbs (q_l, then P) are contiguous in Q_l u P. The q_l limb takes the
// addend's P multiple in the inverse NTT's first pass; the rest as mod_down_polys, with
// the merged tables and outputs over Q_{level-1}.
void CudaBackend::mod_down_rescale_polys(uint32_t level, ModDownPolys mp, uint64_t* in_qp) {
  const RnsTables& t = *tables_;
  require(level >= 1 && level <= t.max_level, ErrorCode::LevelMismatch, "mod_down_rescale needs level >= 1");
  LimbMap d_map;  // q_l, then the P limbs
  d_map.limbs = t.alpha + 1;
  d_map.q_count = 1;
  d_map.q_first = level;
  d_map.p_first = t.max_level + 1;
  divide_rounded(level, mp, in_qp, mod_down_rescale_view(level), d_map, level, true);
}

// The dropped limbs (d_map, starting at limb `keep` of Q_l u P) to coefficients, y_k =
// x_k (D/d_k)^-1 mod d_k in place (merge: the q_l limb first takes the addends' P
// multiple); then the conversion to the first `keep` Q limbs, its NTT and the final
// (x - conv) D^-1 (+ the addends) in one forward transform.
void CudaBackend::divide_rounded(uint32_t level, ModDownPolys mp, uint64_t* in_qp, const ModDownView& md,
                                 LimbMap d_map, uint32_t keep, bool merge) {
  const RnsTables& t = *tables_;
  use_device(device_);
  const size_t n = t.n;
  uint64_t* d_part = in_qp + keep * n;
  d_map.polys = mp.polys;
  d_map.poly_stride = mp.in_stride;
  if (merge) {
    const uint64_t ql = t.primes[level], pm = t.mod_down.p_mod_q[level];
    mod_down_rescale_to_coeff(view_, md, mp, d_map, level, pm, arith::shoup_precompute(pm, ql), d_part, stream());
  } else {
    mod_down_p_to_coeff(view_, md, mp, d_map, d_part, stream());
  }
  mp.conv_stride = keep * n;
  Scratch conv(*this, mp.polys * mp.conv_stride);  // [polys][keep][N]
  LimbMap conv_map = map(Basis{keep, false});
  conv_map.polys = mp.polys;
  conv_map.poly_stride = mp.conv_stride;
  mod_down_convert_finish(view_, md, mp, conv_map, d_map.limbs, in_qp, d_part, conv.get(), stream());
}

void CudaBackend::key_switch_inner_product(uint32_t level, uint32_t num_digits, const uint64_t* digits,
                                           const uint64_t* key, uint64_t* out0, uint64_t* out1) {
  const RnsTables& t = *tables_;
  require(level <= t.max_level && num_digits >= 1 && num_digits <= t.digits(t.max_level),
          ErrorCode::InvalidArgument, "key_switch_inner_product: bad level/digits");
  use_device(device_);
  cuda::key_switch_inner_product(view_, level, t.alpha, num_digits, digits, key, out0, out1, stream());
}

// ---- synchronisation and timing ----

void CudaBackend::synchronize() {
  refuse_while_recording("synchronize");
  use_device(device_);
  VEIL_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

std::unique_ptr<BackendStream> CudaBackend::create_stream() {
  refuse_while_recording("create_stream");
  use_device(device_);
  auto s = std::make_unique<CudaStream>(this);
  order_after(s->get(), device_, stream(), device_);  // starts after the caller's work so far
  return s;
}

void CudaBackend::push_stream(BackendStream* s) {
  auto* cs = dynamic_cast<CudaStream*>(s);
  require(cs != nullptr && cs->owner() == this, ErrorCode::InvalidArgument,
          "push_stream: not a stream of this cuda backend");
  refuse_while_recording("push_stream");
  t_pushed_streams.push_back({this, cs->get()});
}

void CudaBackend::pop_stream() {
  for (auto it = t_pushed_streams.rbegin(); it != t_pushed_streams.rend(); ++it) {
    if (it->backend == this) {
      t_pushed_streams.erase(std::next(it).base());
      return;
    }
  }
  throw Error(ErrorCode::InvalidArgument, "pop_stream: this thread pushed no stream of this backend");
}

// ---- recordings: stream capture into a CUDA graph ----

void CudaBackend::refuse_while_recording(const char* call) const {
  require(recording_here() == nullptr, ErrorCode::Unsupported,
          std::string("cuda backend: ") + call +
              " while recording (recorded calls must not need the host: prepare plaintexts and keys before, read "
              "results after)");
}

// Relaxed capture mode: the arena's cudaMalloc and the pinned staging of combine's
// tables are allowed during the capture (neither is part of the graph).
bool CudaBackend::begin_recording() {
  use_device(device_);
  // Made before the lock is taken, so that on an error it is dropped after the unlock.
  auto r = std::make_unique<CudaRecording>(this, stream(), [this](CudaRecording& done) { retire(done); });
  std::lock_guard<std::mutex> lock(recording_mutex_);
  require(recording_.load() == nullptr, ErrorCode::InvalidArgument,
          "begin_recording: this cuda backend is already recording (one recording at a time)");
  VEIL_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
  recording_.store(r.release(), std::memory_order_release);
  return true;
}

std::unique_ptr<BackendRecording> CudaBackend::end_recording() {
  std::unique_ptr<CudaRecording> r;
  {
    std::lock_guard<std::mutex> lock(recording_mutex_);
    require(recording_here() != nullptr, ErrorCode::InvalidArgument,
            "end_recording: this thread is not recording on this cuda backend");
    r.reset(recording_.exchange(nullptr));
    live_recordings_.push_back(r.get());
    live_count_.store(live_recordings_.size(), std::memory_order_release);
  }
  use_device(device_);
  cudaGraph_t graph = nullptr;
  const cudaError_t err = cudaStreamEndCapture(r->stream(), &graph);
  try {
    if (err != cudaSuccess) {
      cudaGetLastError();
      if (graph) cudaGraphDestroy(graph);
      throw Error(ErrorCode::Backend, std::string("end_recording: the capture failed: ") + cudaGetErrorString(err));
    }
    r->instantiate(graph);
  } catch (...) {
    // Objects made while recording still point into its memory: it stays (and stays
    // live, so their release leaves it alone) until the backend goes.
    std::lock_guard<std::mutex> lock(recording_mutex_);
    failed_recordings_.push_back(std::move(r));
    throw;
  }
  return r;
}

void CudaBackend::replay(BackendRecording& recording) {
  auto* r = dynamic_cast<CudaRecording*>(&recording);
  require(r != nullptr && r->owner() == this, ErrorCode::InvalidArgument,
          "replay: not a recording of this cuda backend");
  refuse_while_recording("replay");
  use_device(device_);
  r->launch(stream());
}

// A recording's end: no replay may still run on its memory, then the blocks released
// while recording go back to the pool (its arena is freed by its destructor).
void CudaBackend::retire(CudaRecording& r) noexcept {
  use_device(device_);
  r.wait_for_replays();
  std::vector<CudaRecording::DeferredRelease> deferred;
  {
    std::lock_guard<std::mutex> lock(recording_mutex_);
    live_recordings_.erase(std::remove(live_recordings_.begin(), live_recordings_.end(), &r), live_recordings_.end());
    live_count_.store(live_recordings_.size(), std::memory_order_release);
    deferred.swap(r.deferred());
  }
  for (const auto& d : deferred) release(d.ptr, d.words, d.wipe);
}

// VEIL_CUDA_PROFILE_TIMED=1: the timed regions are the profiler's ranges, so
// `ncu --profile-from-start off` sees only the kernels of timed operations (not the
// set-up of contexts and keys); bench/README and tools/gpu/run_checks.sh use it.
bool profile_timed_regions() {
  static const bool on = [] {
    const char* v = std::getenv("VEIL_CUDA_PROFILE_TIMED");
    return v != nullptr && v[0] == '1';
  }();
  return on;
}

void CudaBackend::timer_start() {
  refuse_while_recording("timer_start");
  use_device(device_);
  if (!timer_start_event_) {
    VEIL_CUDA_CHECK(cudaEventCreate(&timer_start_event_));
    VEIL_CUDA_CHECK(cudaEventCreate(&timer_stop_event_));
  }
  if (profile_timed_regions()) cudaProfilerStart();
  VEIL_CUDA_CHECK(cudaEventRecord(timer_start_event_, stream()));
}

double CudaBackend::timer_stop_ms() {
  refuse_while_recording("timer_stop_ms");
  require(timer_start_event_ != nullptr, ErrorCode::InvalidArgument, "cuda timer_stop_ms without timer_start");
  use_device(device_);
  VEIL_CUDA_CHECK(cudaEventRecord(timer_stop_event_, stream()));
  VEIL_CUDA_CHECK(cudaEventSynchronize(timer_stop_event_));
  if (profile_timed_regions()) cudaProfilerStop();
  float ms = 0;
  VEIL_CUDA_CHECK(cudaEventElapsedTime(&ms, timer_start_event_, timer_stop_event_));
  return static_cast<double>(ms);
}

}  // namespace

double peak_bandwidth_gbs(int device) {
  int clock_khz = 0, bus_bits = 0;
  if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
}

int device_count() {
  int count = 0;
  query_device_count(count);
  return count;
}

std::string device_description(int device) {
  cudaDeviceProp prop{};
  cudaError_t err = cudaGetDeviceProperties(&prop, device);
  if (err != cudaSuccess)
    throw Error(ErrorCode::Backend, std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(err));
  return std::string(prop.name) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB, sm_" +
         std::to_string(prop.major) + std::to_string(prop.minor) + ", peak " +
         std::to_string(static_cast<long>(peak_bandwidth_gbs(device))) + " GB/s";
}

std::shared_ptr<Backend> make_backend(std::shared_ptr<const RnsTables> tables, int device) {
  require(tables != nullptr, ErrorCode::InvalidArgument, "cuda::make_backend: no tables");
  int count = 0;
  const cudaError_t err = query_device_count(count);
  if (count == 0)
    throw Error(ErrorCode::Unsupported,
                std::string("cuda backend: no CUDA device is present (cudaGetDeviceCount: ") +
                    (err == cudaSuccess ? "0 devices" : cudaGetErrorString(err)) + ")");
  require(device >= 0 && device < count, ErrorCode::InvalidArgument,
          "cuda backend: device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
              " present)");
  return std::make_shared<CudaBackend>(std::move(tables), device);
}

}  // namespace veil::cuda
