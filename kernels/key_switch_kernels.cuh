// The key-switching inner product on the device (host twin:
// CpuBackend::key_switch_inner_product).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "basis_conversion_kernels.cuh"  // kMaxBatch
#include "device_tables.cuh"

namespace veil::cuda {

// out0 = sum_j digits[j] * key[j][0], out1 = sum_j digits[j] * key[j][1] over Q_level u P.
// digits: [num_digits][Q_l u P][N]; key: [dnum][2][Q_L u P][N]. Each sum is
// accumulated exactly in 128 bits and reduced once, as on the CPU.
void key_switch_inner_product(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                              const uint64_t* digits, const uint64_t* key, uint64_t* out0, uint64_t* out1,
                              cudaStream_t stream);

// The key switches of one key_switch_decomposed launch (blockIdx.z): switch i reads
// decomposed[i] (key_switch_decompose's layout: digits whose target limbs have had
// only the forward NTT's first pass, mod_up_convert_strided), the decomposed
// polynomial ntt[i] (Q_l, NTT form: the digits' own limbs are read from it) and key[i];
// it writes out0[i] and out1[i] (Q_l u P each).
struct KeySwitchBatch {
  const uint64_t* decomposed[kMaxBatch];
  const uint64_t* ntt[kMaxBatch];
  const uint64_t* key[kMaxBatch];
  uint64_t* out0[kMaxBatch];
  uint64_t* out1[kMaxBatch];
};

// The inner products of `count` (<= kMaxBatch) key switches. Each block finishes one
// run of every digit's limb in shared memory (the NTT's contiguous pass) and
// multiplies it into both sums at once, so the fully transformed digits are never
// written; the sums are exact in 128 bits and reduced once, as on the CPU.
void key_switch_decomposed(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                           uint32_t count, const KeySwitchBatch& batch, cudaStream_t stream);

// The same sums when the decompositions' target limbs are fully transformed
// (mod_up_convert_strided with finish): one thread per (coefficient, limb, key switch)
// streams the digit words (own limbs from batch.ntt) and both key words, as
// key_switch_inner_product does.
void key_switch_finished(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                         uint32_t count, const KeySwitchBatch& batch, cudaStream_t stream);

}  // namespace veil::cuda
