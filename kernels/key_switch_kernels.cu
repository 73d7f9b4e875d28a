// One thread per (limb, coefficient): it streams the digit word and the two
// key words of every digit once (the bytes that must move) and keeps both
// 128-bit sums in registers, so the kernel is bound by memory bandwidth.
// Coalesced: adjacent threads read adjacent coefficients of the same limb.
#include "cuda_check.cuh"
#include "elementwise_kernels.cuh"
#include "key_switch_kernels.cuh"

namespace veil::cuda {
namespace {

__global__ void inner_product_kernel(DeviceTablesView tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                                     const uint64_t* digits, const uint64_t* key, uint64_t* out0, uint64_t* out1) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t limb = blockIdx.y;
  const uint32_t limbs = level + 1 + alpha;
  // Prime index == limb index within the top-level key.
  const uint32_t pi = limb < level + 1 ? limb : tv.max_level + 1 + (limb - (level + 1));
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

}  // namespace

void key_switch_inner_product(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                              const uint64_t* digits, const uint64_t* key, uint64_t* out0, uint64_t* out1,
                              cudaStream_t stream) {
  const dim3 grid(grid_for(size_t{1} << tv.log_n), level + 1 + alpha);
  inner_product_kernel<<<grid, kBlockThreads, 0, stream>>>(tv, level, alpha, num_digits, digits, key, out0, out1);
  check_launch("inner_product_kernel");
}

}  // namespace veil::cuda
