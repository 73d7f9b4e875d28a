// Element-wise modular arithmetic and automorphisms on limb-major buffers:
// device twins of the CPU backend's loops (same formulas, same results).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "device_tables.cuh"

namespace veil::cuda {

enum class BinaryOp { Add, Sub, Multiply, MultiplyAccumulate };
enum class ScalarOp { Multiply, Add };

// out = x op y (MultiplyAccumulate: out = (x * y + out) mod q) on map.polys polynomials,
// one after another; with broadcast_y, y is one polynomial used for each. out may alias
// x or y.
void elementwise_binary(BinaryOp op, const DeviceTablesView& tv, const LimbMap& map, uint64_t* out,
                        const uint64_t* x, const uint64_t* y, cudaStream_t stream, bool broadcast_y = false);
// d0 = a0 b0, d1 = a0 b1 + a1 b0 (one 128-bit sum, reduced once), d2 = a1 b1; each
// input word read once. Outputs must not alias inputs.
void elementwise_tensor(const DeviceTablesView& tv, const LimbMap& map, uint64_t* d0, uint64_t* d1, uint64_t* d2,
                        const uint64_t* a0, const uint64_t* a1, const uint64_t* b0, const uint64_t* b1,
                        cudaStream_t stream);
void elementwise_negate(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const uint64_t* x,
                        cudaStream_t stream);
// out[limb][c] = in[c] mod q_limb, canonical (in: N small signed integers, |in| < 2^62).
void elementwise_signed_to_rns(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const int64_t* in,
                               cudaStream_t stream);
// out = x * s[limb] (Shoup) or x + s[limb], on map.polys polynomials one after another.
void elementwise_scalar(ScalarOp op, const DeviceTablesView& tv, const LimbMap& map, uint64_t* out,
                        const uint64_t* x, const LimbScalars& s, cudaStream_t stream);
// X -> X^g on bit-reversed NTT slots (map.polys polynomials, contiguous) / on
// coefficients (with the negacyclic sign).
void automorphism_ntt(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const uint64_t* in,
                      uint64_t g, cudaStream_t stream);
void automorphism_coeff(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const uint64_t* in,
                        uint64_t g, cudaStream_t stream);

// Up to kAutomorphismBatch polynomials of one basis (map) in one launch:
// out[p] = (in[p] + add[p])(X^g[p]) on bit-reversed NTT slots, for p < count (add[p]
// null: nothing added; g[p] = 0: no permutation). Outputs must not alias inputs.
constexpr uint32_t kAutomorphismBatch = 32;
struct AutomorphismBatch {
  uint64_t* out[kAutomorphismBatch];
  const uint64_t* in[kAutomorphismBatch];
  const uint64_t* add[kAutomorphismBatch];
  uint64_t g[kAutomorphismBatch];
};
void add_automorphism_batch(const DeviceTablesView& tv, const LimbMap& map, const AutomorphismBatch& batch,
                            uint32_t count, cudaStream_t stream);

// out[h] (+)= sum_{j < count} (in[h][j] + add[h][j])(X^g[j]) for both halves h, on one
// basis (map): the gather form of the permutation, so one thread sums every job's word
// and nothing races. add[h][j] null: nothing added; g[j] = 0: no permutation.
constexpr uint32_t kSumBatch = 16;
struct PermutedSum {
  const uint64_t* in[2][kSumBatch];
  const uint64_t* add[2][kSumBatch];
  uint64_t g[kSumBatch];
  uint64_t* out[2];
};
void permuted_sum(const DeviceTablesView& tv, const LimbMap& map, const PermutedSum& sum, uint32_t count,
                  bool accumulate, cudaStream_t stream);

// out[p] = in[p] * s[limb] on the first map.q_count limbs and 0 on the others, for p <
// count polynomials (inputs over those q_count limbs only): P x over Q_l u P.
constexpr uint32_t kLiftBatch = 32;
struct LiftBatch {
  uint64_t* out[kLiftBatch];
  const uint64_t* in[kLiftBatch];
};
void lift_batch(const DeviceTablesView& tv, const LimbMap& map, const LiftBatch& batch, uint32_t count,
                const LimbScalars& s, cudaStream_t stream);

// Up to kCopyBatch copies in one launch (copy_batch): the pointers and lengths travel
// in the launch's parameters (3 KiB).
constexpr uint32_t kCopyBatch = 128;
struct CopyBatch {
  const uint64_t* src[kCopyBatch];
  uint64_t* dst[kCopyBatch];
  uint64_t words[kCopyBatch];
};
// dst[i][w] = src[i][w] for i < count, w < words[i]; max_words: the largest words[i].
void copy_batch(const CopyBatch& batch, uint32_t count, uint64_t max_words, cudaStream_t stream);

// Grid for a grid-stride loop over `count` items with 256-thread blocks.
inline unsigned grid_for(size_t count) {
  const size_t blocks = (count + 255) / 256;
  const size_t cap = size_t{1} << 20;  // enough blocks to fill any GPU; the loop covers the rest
  return static_cast<unsigned>(blocks < cap ? (blocks ? blocks : 1) : cap);
}
constexpr unsigned kBlockThreads = 256;

}  // namespace veil::cuda
