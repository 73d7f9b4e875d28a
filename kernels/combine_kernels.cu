// Backend::combine on the device (see combine_kernels.cuh).
#include "combine_kernels.cuh"
#include "cuda_check.cuh"
#include "device_arith.cuh"
#include "elementwise_kernels.cuh"

namespace veil::cuda {
namespace {

constexpr uint32_t kTermsPerReduction = 32;

// Where the kernel finds the input and output pointers: device tables, or the launch's
// parameters.
struct TablePointers {
  const uint64_t* const* inputs;
  uint64_t* const* outputs;
  __device__ const uint64_t* input(size_t c) const { return inputs[c]; }
  __device__ uint64_t* output(size_t r) const { return outputs[r]; }
};
struct ParameterPointers {
  CombinePointers p;
  __device__ const uint64_t* input(size_t c) const { return p.ptr[c]; }
  __device__ uint64_t* output(size_t r) const { return p.ptr[p.columns + r]; }
};

// x over the words of one output (grid-stride), y over the rows (grid-stride).
template <class Pointers>
__global__ void combine_kernel(DeviceTablesView tv, LimbMap map, size_t rows, const uint64_t* row_start,
                               const uint64_t* cols, const uint64_t* weights, size_t entries, Pointers ptrs,
                               bool accumulate, size_t total) {
  for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const size_t begin = row_start[r], end = row_start[r + 1];
    uint64_t* out = ptrs.output(r);
    for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += static_cast<size_t>(blockDim.x) * gridDim.x) {
      const uint32_t limb = static_cast<uint32_t>((i >> tv.log_n) % map.limbs);
      const DeviceModulus m = tv.mod[map.prime(limb)];
      const uint64_t* w = weights + limb * entries;
      U128 acc{accumulate ? out[i] : 0, 0};
      uint32_t pending = 0;
      for (size_t e = begin; e < end; ++e) {
        mac_wide(acc, ptrs.input(cols[e])[i], w[e]);
        if (++pending == kTermsPerReduction) {
          acc = U128{reduce128(acc, m), 0};
          pending = 0;
        }
      }
      out[i] = reduce128(acc, m);
    }
  }
}

template <class Pointers>
void launch_combine(const DeviceTablesView& tv, const LimbMap& map, size_t rows, const uint64_t* row_start,
                    const uint64_t* cols, const uint64_t* weights, size_t entries, const Pointers& ptrs,
                    bool accumulate, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(map.polys) * map.limbs << tv.log_n;
  if (total == 0 || rows == 0) return;
  const dim3 grid(grid_for(total), static_cast<unsigned>(rows < 65535 ? rows : 65535));
  combine_kernel<Pointers><<<grid, kBlockThreads, 0, stream>>>(tv, map, rows, row_start, cols, weights, entries,
                                                               ptrs, accumulate, total);
  check_launch("combine_kernel");
}

}  // namespace

void combine_rows(const DeviceTablesView& tv, const LimbMap& map, size_t rows, const uint64_t* row_start,
                  const uint64_t* cols, const uint64_t* weights, size_t entries, const uint64_t* const* inputs,
                  uint64_t* const* outputs, bool accumulate, cudaStream_t stream) {
  launch_combine(tv, map, rows, row_start, cols, weights, entries, TablePointers{inputs, outputs}, accumulate, stream);
}

void combine_rows_inline(const DeviceTablesView& tv, const LimbMap& map, size_t rows, const uint64_t* row_start,
                         const uint64_t* cols, const uint64_t* weights, size_t entries, const CombinePointers& p,
                         bool accumulate, cudaStream_t stream) {
  launch_combine(tv, map, rows, row_start, cols, weights, entries, ParameterPointers{p}, accumulate, stream);
}

}  // namespace veil::cuda
