// Sums of element-wise products (Backend::multiply_sum): one thread per output word,
// its terms summed in 128 bits and reduced every 32 terms (32 (q - 1)^2 + q < 2^128 for
// q < 2^61), so the canonical result equals the cpu's.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "device_tables.cuh"

namespace veil::cuda {

// Up to this many terms travel in the kernel's parameters (1 KiB): no table upload, so
// no wait for the stream; longer sums take several launches.
constexpr uint32_t kInlineTerms = 64;
struct TermPointers {
  const uint64_t* xs[kInlineTerms];
  const uint64_t* ys[kInlineTerms];
};

// out (map.polys polynomials of map.limbs limbs) (+)= sum over t < terms (<= kInlineTerms)
// of p.xs[t] (the same layout) times p.ys[t] (one polynomial).
void multiply_sum_terms(const DeviceTablesView& tv, const LimbMap& map, uint32_t terms, const TermPointers& p,
                        uint64_t* out, bool accumulate, cudaStream_t stream);

}  // namespace veil::cuda
