// Backend::multiply_sum on the device (see multiply_sum_kernels.cuh).
#include "cuda_check.cuh"
#include "device_arith.cuh"
#include "elementwise_kernels.cuh"
#include "multiply_sum_kernels.cuh"

namespace veil::cuda {
namespace {

constexpr uint32_t kTermsPerReduction = 32;

// i runs over polys x limbs x N words; ys are single polynomials, indexed without the poly.
__global__ void multiply_sum_kernel(DeviceTablesView tv, LimbMap map, uint32_t terms, TermPointers p, uint64_t* out,
                                    bool accumulate, size_t total) {
  const size_t poly_words = static_cast<size_t>(map.limbs) << tv.log_n;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const size_t k = i % poly_words;
    const DeviceModulus m = tv.mod[map.prime(static_cast<uint32_t>(k >> tv.log_n))];
    U128 acc{accumulate ? out[i] : 0, 0};
    uint32_t pending = 0;
    for (uint32_t t = 0; t < terms; ++t) {
      mac_wide(acc, p.xs[t][i], p.ys[t][k]);
      if (++pending == kTermsPerReduction && t + 1 < terms) {
        acc = U128{reduce128(acc, m), 0};
        pending = 0;
      }
    }
    out[i] = reduce128(acc, m);
  }
}

}  // namespace

void multiply_sum_terms(const DeviceTablesView& tv, const LimbMap& map, uint32_t terms, const TermPointers& p,
                        uint64_t* out, bool accumulate, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(map.polys) * map.limbs << tv.log_n;
  if (total == 0) return;
  multiply_sum_kernel<<<grid_for(total), kBlockThreads, 0, stream>>>(tv, map, terms, p, out, accumulate, total);
  check_launch("multiply_sum_kernel");
}

}  // namespace veil::cuda
