// Views of the constant tables the CUDA backend uploads once (primes, Barrett
// constants, NTT twiddles), passed to kernels by value, and the map from a
// buffer's limbs to prime indices.
#pragma once

#include <cstddef>
#include <cstdint>

#include "device_arith.cuh"

namespace veil::cuda {

// Largest prime count (Q u P) a backend accepts: per-limb scalars travel as
// kernel arguments (2 x 8 x 128 bytes, well inside the 4 KiB parameter space).
constexpr uint32_t kMaxLimbs = 128;

// The last inverse NTT stage with 1/N folded in (host: NttTables::inverse).
struct NttScalars {
  uint64_t n_inv, n_inv_shoup;
  uint64_t last_w_n_inv, last_w_n_inv_shoup;
};

struct DeviceTablesView {
  const DeviceModulus* mod;       // [prime index]
  const uint64_t* root;           // [prime][n]: psi^brev(i) (host: NttTables::root_)
  const uint64_t* root_shoup;     // [prime][n]
  const uint64_t* inv_root;       // [prime][n]: psi^-brev(i)
  const uint64_t* inv_root_shoup; // [prime][n]
  const NttScalars* ntt_scalars;  // [prime index]
  uint32_t log_n;
  uint32_t max_level;             // L: special prime k has index L + 1 + k
};

// The own limbs of ModUp digit `digit` of a level with q_count Q limbs (host:
// RnsTables' ModUp plans): [digit alpha, min((digit + 1) alpha, q_count)).
struct DigitLimbs {
  uint32_t first, end;
  __host__ __device__ bool contains(uint32_t limb) const { return limb >= first && limb < end; }
  __host__ __device__ uint32_t count() const { return end - first; }
};
__host__ __device__ inline DigitLimbs digit_limbs(uint32_t digit, uint32_t alpha, uint32_t q_count) {
  const uint32_t first = digit * alpha;
  return DigitLimbs{first, first + alpha < q_count ? first + alpha : q_count};
}

// Prime index of limb `limb` of Q_level u P (host: RnsTables::prime_index); it is
// also the limb's index in a top-level key.
__host__ __device__ inline uint32_t qp_prime_index(uint32_t max_level, uint32_t level, uint32_t limb) {
  return limb < level + 1 ? limb : max_level + 1 + (limb - (level + 1));
}

// Limbs [0, q_count) use primes q_first + limb, the others p_first + (limb -
// q_count). A backend Basis b is {limbs(b), b.q_count, 0, L + 1}. NTT launches
// cover `polys` polynomials of `limbs` limbs, poly_stride words apart (blockIdx.z),
// and, with skip_digit = alpha, leave the limbs [j alpha, min((j + 1) alpha, q_count))
// of polynomial z untouched, j = first_digit + z (the own limbs of ModUp digit j,
// copied rather than converted); with digit_period = d != 0, j = first_digit + z mod d
// (several decompositions in one launch, d digits each).
struct LimbMap {
  uint32_t limbs = 0;
  uint32_t q_count = 0;
  uint32_t q_first = 0;
  uint32_t p_first = 0;
  uint32_t polys = 1;
  uint32_t skip_digit = 0, first_digit = 0, digit_period = 0;
  size_t poly_stride = 0;

  __host__ __device__ uint32_t prime(uint32_t limb) const {
    return limb < q_count ? q_first + limb : p_first + (limb - q_count);
  }
  __host__ __device__ bool skipped(uint32_t limb, uint32_t poly) const {
    const uint32_t digit = first_digit + (digit_period != 0 ? poly % digit_period : poly);
    return skip_digit != 0 && digit_limbs(digit, skip_digit, q_count).contains(limb);
  }
};

// Per-limb scalars (and their Shoup companions) for one launch.
struct LimbScalars {
  uint64_t w[kMaxLimbs];
  uint64_t w_shoup[kMaxLimbs];
};

}  // namespace veil::cuda
