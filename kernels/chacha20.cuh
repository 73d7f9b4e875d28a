// ChaCha20 block function (RFC 8439) on the device, for the counter-based
// samplers: block `counter` of the keystream keyed by `key`, with the 96-bit nonce
// (stream low, stream high, domain) that host/arith/sampling_rules.hpp lays out.
// Matches libsodium's crypto_stream_chacha20_ietf word for word (checked by the
// cpu-vs-cuda sampling tests).
#pragma once

#include <cstdint>

namespace veil::cuda {

// The 32-byte seed as eight little-endian words.
struct ChachaKey {
  uint32_t w[8];
};

__device__ __forceinline__ uint32_t rotl32(uint32_t v, int c) { return (v << c) | (v >> (32 - c)); }

#define VEIL_CHACHA_QUARTER(a, b, c, d) \
  a += b;                              \
  d = rotl32(d ^ a, 16);               \
  c += d;                              \
  b = rotl32(b ^ c, 12);               \
  a += b;                              \
  d = rotl32(d ^ a, 8);                \
  c += d;                              \
  b = rotl32(b ^ c, 7)

// out[k] = keystream word 8 counter + k (bytes 8k .. 8k + 7 of the block, little-endian).
__device__ __forceinline__ void chacha20_block(const ChachaKey& key, uint32_t counter, uint64_t stream,
                                               uint32_t domain, uint64_t out[8]) {
  const uint32_t in[16] = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u,  // "expand 32-byte k"
                           key.w[0],    key.w[1],    key.w[2],    key.w[3],
                           key.w[4],    key.w[5],    key.w[6],    key.w[7],
                           counter,     static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32), domain};
  uint32_t x[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) x[i] = in[i];
#pragma unroll
  for (int round = 0; round < 10; ++round) {  // 20 rounds: column then diagonal
    VEIL_CHACHA_QUARTER(x[0], x[4], x[8], x[12]);
    VEIL_CHACHA_QUARTER(x[1], x[5], x[9], x[13]);
    VEIL_CHACHA_QUARTER(x[2], x[6], x[10], x[14]);
    VEIL_CHACHA_QUARTER(x[3], x[7], x[11], x[15]);
    VEIL_CHACHA_QUARTER(x[0], x[5], x[10], x[15]);
    VEIL_CHACHA_QUARTER(x[1], x[6], x[11], x[12]);
    VEIL_CHACHA_QUARTER(x[2], x[7], x[8], x[13]);
    VEIL_CHACHA_QUARTER(x[3], x[4], x[9], x[14]);
  }
#pragma unroll
  for (int k = 0; k < 8; ++k)
    out[k] = static_cast<uint64_t>(x[2 * k] + in[2 * k]) | static_cast<uint64_t>(x[2 * k + 1] + in[2 * k + 1]) << 32;
}

#undef VEIL_CHACHA_QUARTER

}  // namespace veil::cuda
