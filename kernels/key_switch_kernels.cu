// The key-switching inner product, three ways. inner_product_kernel: one thread per
// (limb, coefficient) streams the digit word and the two key words of every digit
// once (the bytes that must move) and keeps both 128-bit sums in registers, so it is
// bound by memory bandwidth; adjacent threads read adjacent coefficients.
// decomposed_kernel: the same sums from key_switch_decompose's half-transformed
// digits, finishing their NTT in shared memory first (sums in registers too).
// finished_kernel: inner_product_kernel's loop over fully transformed decompositions,
// reading the digits' own limbs from the decomposed polynomial.
#include "cuda_check.cuh"
#include "elementwise_kernels.cuh"
#include "key_switch_kernels.cuh"
#include "ntt_passes.cuh"

namespace veil::cuda {
namespace {

__global__ void inner_product_kernel(DeviceTablesView tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                                     const uint64_t* digits, const uint64_t* key, uint64_t* out0, uint64_t* out1) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t limb = blockIdx.y;
  const uint32_t limbs = level + 1 + alpha;
  const uint32_t pi = qp_prime_index(tv.max_level, level, limb);  // also the key's limb
  const DeviceModulus m = tv.mod[pi];
  const size_t key_poly = static_cast<size_t>(tv.max_level + 1 + alpha) * n;
  const size_t digit_words = static_cast<size_t>(limbs) * n;
  const uint64_t* d_base = digits + static_cast<size_t>(limb) * n;
  const uint64_t* k_base = key + static_cast<size_t>(pi) * n;
  for (size_t c = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < n;
       c += static_cast<size_t>(blockDim.x) * gridDim.x) {
    U128 acc0{0, 0}, acc1{0, 0};
    for (uint32_t j = 0; j < num_digits; ++j) {
      const uint64_t d = d_base[j * digit_words + c];
      const uint64_t* k0 = k_base + 2 * j * key_poly;
      mac_wide(acc0, d, k0[c]);
      mac_wide(acc1, d, k0[key_poly + c]);
    }
    out0[static_cast<size_t>(limb) * n + c] = reduce128(acc0, m);
    out1[static_cast<size_t>(limb) * n + c] = reduce128(acc1, m);
  }
}

__global__ void finished_kernel(DeviceTablesView tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                                KeySwitchBatch batch) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t limb = blockIdx.y, item = blockIdx.z;
  const uint32_t limbs = level + 1 + alpha;
  const uint32_t pi = qp_prime_index(tv.max_level, level, limb);
  const DeviceModulus m = tv.mod[pi];
  const size_t key_poly = static_cast<size_t>(tv.max_level + 1 + alpha) * n;
  const size_t digit_words = static_cast<size_t>(limbs) * n;
  const uint64_t* d_base = batch.decomposed[item] + static_cast<size_t>(limb) * n;
  const uint64_t* own_limb = batch.ntt[item] + static_cast<size_t>(limb) * n;  // read only where limb < level + 1
  const uint64_t* k_base = batch.key[item] + static_cast<size_t>(pi) * n;
  // The digit whose own limbs hold `limb`, if any (block-uniform).
  const uint32_t own_digit = limb < level + 1 ? limb / alpha : num_digits;
  for (size_t c = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < n;
       c += static_cast<size_t>(blockDim.x) * gridDim.x) {
    U128 acc0{0, 0}, acc1{0, 0};
    for (uint32_t j = 0; j < num_digits; ++j) {
      const uint64_t d = j == own_digit ? own_limb[c] : d_base[j * digit_words + c];
      const uint64_t* k0 = k_base + 2 * j * key_poly;
      mac_wide(acc0, d, k0[c]);
      mac_wide(acc1, d, k0[key_poly + c]);
    }
    batch.out0[item][static_cast<size_t>(limb) * n + c] = reduce128(acc0, m);
    batch.out1[item][static_cast<size_t>(limb) * n + c] = reduce128(acc1, m);
  }
}

// Block (run of C words, limb, key switch of the batch). For each digit: finish the
// run (contiguous NTT pass, left in shared memory) unless the limb is one of the
// digit's own, then add its products with both key words into 128-bit sums that each thread keeps in
// registers for its own kPerThread elements (e = threadIdx.x + k * kThreads, the
// same elements for every digit), reduced once at the end as the inner product and
// the cpu do: the per-digit Barrett reductions and the shared accumulators are gone.
constexpr uint32_t kPerThread = kTile / kThreads;

__global__ void __launch_bounds__(kThreads) decomposed_kernel(DeviceTablesView tv, uint32_t level, uint32_t alpha,
                                                              uint32_t num_digits, uint32_t log_rows,
                                                              KeySwitchBatch batch) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y, item = blockIdx.z;
  const uint64_t* digits = batch.decomposed[item];
  const uint64_t* ntt = batch.ntt[item];
  const uint64_t* key = batch.key[item];
  uint64_t* out0 = batch.out0[item];
  uint64_t* out1 = batch.out1[item];
  const uint32_t log_n = tv.log_n, log_c = log_n - log_rows, len = 1u << log_c;
  const size_t n = size_t{1} << log_n;
  const size_t c0 = static_cast<size_t>(blockIdx.x) << log_c;
  const uint32_t limbs = level + 1 + alpha;
  const uint32_t pi = qp_prime_index(tv.max_level, level, limb);
  const size_t key_poly = static_cast<size_t>(tv.max_level + 1 + alpha) * n;
  const size_t digit_words = static_cast<size_t>(limbs) * n;
  const Pass p = make_pass(tv, pi, true, 0, c0);
  U128 acc0[kPerThread], acc1[kPerThread];
#pragma unroll
  for (uint32_t k = 0; k < kPerThread; ++k) acc0[k] = acc1[k] = U128{0, 0};
  for (uint32_t j = 0; j < num_digits; ++j) {
    const uint64_t* d = digits + j * digit_words + static_cast<size_t>(limb) * n + c0;
    const uint64_t* k0 = key + 2 * j * key_poly + static_cast<size_t>(pi) * n + c0;
    const uint64_t* k1 = k0 + key_poly;
    const bool own = digit_limbs(j, alpha, level + 1).contains(limb);  // block-uniform
    if (!own) {
      run_pass<true, true>(
          sh, p, log_c, log_c, [=](uint32_t e) { return d[e]; }, [](uint32_t, uint64_t) {});
    }
    const uint64_t* own_limb = ntt + static_cast<size_t>(limb) * n + c0;  // exact: the input's own limb
#pragma unroll
    for (uint32_t k = 0; k < kPerThread; ++k) {
      const uint32_t e = threadIdx.x + k * kThreads;
      if (e < len) {
        const uint64_t v = own ? own_limb[e] : reduce_4q(sh[slot(e)], p.q, p.two_q);
        mac_wide(acc0[k], v, k0[e]);
        mac_wide(acc1[k], v, k1[e]);
      }
    }
    if (!own) __syncthreads();  // the next digit's pass overwrites sh
  }
  const DeviceModulus m = tv.mod[pi];
#pragma unroll
  for (uint32_t k = 0; k < kPerThread; ++k) {
    const uint32_t e = threadIdx.x + k * kThreads;
    if (e < len) {
      out0[static_cast<size_t>(limb) * n + c0 + e] = reduce128(acc0[k], m);
      out1[static_cast<size_t>(limb) * n + c0 + e] = reduce128(acc1[k], m);
    }
  }
}

}  // namespace

void key_switch_decomposed(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                           uint32_t count, const KeySwitchBatch& batch, cudaStream_t stream) {
  if (count == 0) return;
  const uint32_t log_rows = log_rows_for(tv.log_n);
  const dim3 grid(1u << log_rows, level + 1 + alpha, count);
  decomposed_kernel<<<grid, kThreads, 0, stream>>>(tv, level, alpha, num_digits, log_rows, batch);
  check_launch("key_switch_decomposed");
}

void key_switch_finished(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                         uint32_t count, const KeySwitchBatch& batch, cudaStream_t stream) {
  if (count == 0) return;
  const dim3 grid(grid_for(size_t{1} << tv.log_n), level + 1 + alpha, count);
  finished_kernel<<<grid, kBlockThreads, 0, stream>>>(tv, level, alpha, num_digits, batch);
  check_launch("key_switch_finished");
}

void key_switch_inner_product(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                              const uint64_t* digits, const uint64_t* key, uint64_t* out0, uint64_t* out1,
                              cudaStream_t stream) {
  const dim3 grid(grid_for(size_t{1} << tv.log_n), level + 1 + alpha);
  inner_product_kernel<<<grid, kBlockThreads, 0, stream>>>(tv, level, alpha, num_digits, digits, key, out0, out1);
  check_launch("inner_product_kernel");
}

}  // namespace veil::cuda
