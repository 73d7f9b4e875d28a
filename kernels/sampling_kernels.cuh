// Counter-based sampling on the device: ChaCha20 keystream computed per block by
// the thread that uses it, turned into samples by the rules the host shares
// (host/arith/sampling_rules.hpp), written straight as residues.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "chacha20.cuh"
#include "device_tables.cuh"

namespace veil::cuda {

// out (every limb of map, coefficient form) = residues of N ternary or centered-binomial
// samples of (key, stream). The key travels as a kernel parameter (not kept after the launch).
void sample_signed_rns(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const ChachaKey& key,
                       uint64_t stream, bool ternary, cudaStream_t cuda_stream);
// out (every limb of map) = residues uniform below each limb's prime, from (key, stream).
void sample_uniform_rns(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const ChachaKey& key,
                        uint64_t stream, cudaStream_t cuda_stream);

}  // namespace veil::cuda
