// One thread per ChaCha20 block: 8 signed samples (written to every limb) or 4
// uniform residues of one limb. A rejected word (probability < 2^-64) takes the
// same-index word of the replacement domain, as the host sampler does.
#include "../host/arith/sampling_rules.hpp"
#include "cuda_check.cuh"
#include "device_arith.cuh"
#include "elementwise_kernels.cuh"
#include "sampling_kernels.cuh"

namespace veil::cuda {
namespace {

__global__ void sample_signed_kernel(DeviceTablesView tv, LimbMap map, uint64_t* out, ChachaKey key,
                                     uint64_t stream, bool ternary, size_t blocks) {
  const size_t n = size_t{1} << tv.log_n;
  for (size_t blk = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; blk < blocks;
       blk += static_cast<size_t>(blockDim.x) * gridDim.x) {
    uint64_t w[8];
    chacha20_block(key, static_cast<uint32_t>(blk), stream, sampling::kPrimaryDomain, w);
    int64_t v[8];
    unsigned rejected = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      if (ternary) rejected |= sampling::ternary_from_word(w[k], v[k]) ? 0u : 1u << k;
      else v[k] = sampling::centered_binomial_from_word(w[k]);
    }
    if (rejected) {
      chacha20_block(key, static_cast<uint32_t>(blk), stream, sampling::kReplacementDomain, w);
      for (int k = 0; k < 8; ++k)
        if (rejected >> k & 1) sampling::ternary_from_word(w[k], v[k]);
    }
    for (uint32_t limb = 0; limb < map.limbs; ++limb) {
      const uint64_t q = tv.mod[map.prime(limb)].value;
      uint64_t* dst = out + limb * n + 8 * blk;
#pragma unroll
      for (int k = 0; k < 8; ++k) dst[k] = signed_residue(v[k], q);
    }
  }
}

// Block g holds words 8g .. 8g + 7: residues 4g .. 4g + 3 of the limb-major array.
__global__ void sample_uniform_kernel(DeviceTablesView tv, LimbMap map, uint64_t* out, ChachaKey key,
                                      uint64_t stream, size_t blocks) {
  for (size_t g = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < blocks;
       g += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const uint64_t q = tv.mod[map.prime(static_cast<uint32_t>((4 * g) >> tv.log_n))].value;
    uint64_t w[8], r[4];
    chacha20_block(key, static_cast<uint32_t>(g), stream, sampling::kPrimaryDomain, w);
    unsigned rejected = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) rejected |= sampling::uniform_from_words(w[2 * k], w[2 * k + 1], q, r[k]) ? 0u : 1u << k;
    if (rejected) {
      chacha20_block(key, static_cast<uint32_t>(g), stream, sampling::kReplacementDomain, w);
      for (int k = 0; k < 4; ++k)
        if (rejected >> k & 1) sampling::uniform_from_words(w[2 * k], w[2 * k + 1], q, r[k]);
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) out[4 * g + k] = r[k];
  }
}

}  // namespace

void sample_signed_rns(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const ChachaKey& key,
                       uint64_t stream, bool ternary, cudaStream_t cuda_stream) {
  const size_t blocks = (size_t{1} << tv.log_n) / sampling::kWordsPerBlock;
  if (map.limbs == 0) return;
  sample_signed_kernel<<<grid_for(blocks), kBlockThreads, 0, cuda_stream>>>(tv, map, out, key, stream, ternary,
                                                                            blocks);
  check_launch("sample_signed_kernel");
}

void sample_uniform_rns(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const ChachaKey& key,
                        uint64_t stream, cudaStream_t cuda_stream) {
  const size_t blocks = (static_cast<size_t>(map.limbs) << tv.log_n) / 4;
  if (blocks == 0) return;
  sample_uniform_kernel<<<grid_for(blocks), kBlockThreads, 0, cuda_stream>>>(tv, map, out, key, stream, blocks);
  check_launch("sample_uniform_kernel");
}

}  // namespace veil::cuda
