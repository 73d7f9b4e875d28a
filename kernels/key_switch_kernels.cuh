// The key-switching inner product on the device (host twin:
// CpuBackend::key_switch_inner_product).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "device_tables.cuh"

namespace veil::cuda {

// out0 = sum_j digits[j] * key[j][0], out1 = sum_j digits[j] * key[j][1] over Q_level u P.
// digits: [num_digits][Q_l u P][N]; key: [dnum][2][Q_L u P][N]. Each sum is
// accumulated exactly in 128 bits and reduced once, as on the CPU.
void key_switch_inner_product(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                              const uint64_t* digits, const uint64_t* key, uint64_t* out0, uint64_t* out1,
                              cudaStream_t stream);

// The same sums from key_switch_decompose's layout: digits whose target limbs have
// had only the forward NTT's first (strided) pass (mod_up_convert_strided); their own
// limbs are read from `ntt`, the decomposed polynomial (Q_l, NTT form). Each block finishes one run of every digit's limb in
// shared memory (the NTT's contiguous pass) and multiplies it into both sums at once,
// so the fully transformed digits are never written. Every sum is reduced mod q after
// each digit: the same canonical words as the 128-bit sum reduced once.
void key_switch_decomposed(const DeviceTablesView& tv, uint32_t level, uint32_t alpha, uint32_t num_digits,
                           const uint64_t* decomposed, const uint64_t* ntt, const uint64_t* key, uint64_t* out0,
                           uint64_t* out1, cudaStream_t stream);

}  // namespace veil::cuda
