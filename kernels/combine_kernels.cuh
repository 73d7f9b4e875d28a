// Sparse integer linear combinations of polynomials (Backend::combine): one thread per
// (output row, word), the row's terms summed in 128 bits and reduced every 32 terms
// (32 (q - 1)^2 + q < 2^128 for q < 2^61), so the canonical result equals the cpu's.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "device_tables.cuh"

namespace veil::cuda {

// inputs / outputs: device arrays of device pointers; each polynomial set holds
// map.polys polynomials of map.limbs limbs (poly_stride = limbs * N words apart).
void combine_rows(const DeviceTablesView& tv, const LimbMap& map, size_t rows, const uint64_t* row_start,
                  const uint64_t* cols, const uint64_t* weights, size_t entries, const uint64_t* const* inputs,
                  uint64_t* const* outputs, bool accumulate, cudaStream_t stream);

// Up to this many input and output pointers together travel in the kernel's
// parameters (3.4 KiB of the 4 KiB a launch may pass): no table to upload, so no
// wait for the stream. ptr[0 .. columns) are the inputs, then the rows' outputs.
constexpr uint32_t kInlineCombinePointers = 432;
struct CombinePointers {
  uint64_t* ptr[kInlineCombinePointers];
  uint32_t columns;
};
void combine_rows_inline(const DeviceTablesView& tv, const LimbMap& map, size_t rows, const uint64_t* row_start,
                         const uint64_t* cols, const uint64_t* weights, size_t entries, const CombinePointers& p,
                         bool accumulate, cudaStream_t stream);

}  // namespace veil::cuda
