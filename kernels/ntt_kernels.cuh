// Negacyclic NTT on the device, every limb of every polynomial of a LimbMap in
// one pair of launches. Same transform as host/ntt.cpp: forward takes natural-order
// coefficients (< 4q) to bit-reversed evaluations, inverse undoes it with 1/N;
// both outputs are fully reduced to [0, q), so they equal the CPU's word for word.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "device_tables.cuh"

namespace veil::cuda {

// Supported sizes: 2^11 <= N <= 2^17 (Veil's parameters use 2^12 .. 2^16).
constexpr uint32_t kNttMinLogN = 11, kNttMaxLogN = 17;

void ntt_forward(const DeviceTablesView& tv, const LimbMap& map, uint64_t* data, cudaStream_t stream);
void ntt_inverse(const DeviceTablesView& tv, const LimbMap& map, uint64_t* data, cudaStream_t stream);

}  // namespace veil::cuda
