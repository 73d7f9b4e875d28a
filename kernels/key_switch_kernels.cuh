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

}  // namespace veil::cuda
