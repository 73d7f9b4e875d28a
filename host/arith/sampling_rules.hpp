// Counter-based sampling: where each sample's random words sit in the ChaCha20
// keystream and how the words become a sample. Shared by the host samplers
// (host/arith/sampling.cpp, keystream from libsodium) and the cuda kernels
// (kernels/sampling_kernels.cu, keystream computed on the device), so both give
// the same sample for the same (seed, stream) bit for bit.
//
// Keystream: ChaCha20 (RFC 8439, IETF: 32-bit block counter, 96-bit nonce) keyed
// by the 32-byte seed; the nonce is the 64-bit stream id (little-endian) followed
// by a 32-bit domain: 0 for the words every sample uses, 1 for the rare
// replacement of a rejected word. Word w is keystream bytes [8w, 8w + 8) read
// little-endian, so block k holds words 8k .. 8k + 7. Sample i of a signed
// polynomial uses word i; residue i of limb j of a uniform polynomial uses words
// 2(jN + i) (low) and 2(jN + i) + 1 (high). Each sample depends only on its own
// words, so any number of threads can draw any part of a polynomial.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define VEIL_SAMPLING_FN __host__ __device__ __forceinline__
#else
#define VEIL_SAMPLING_FN inline
#endif

namespace veil::sampling {

inline constexpr uint32_t kWordsPerBlock = 8;     // 64-byte ChaCha20 blocks, 8-byte words
inline constexpr uint32_t kPrimaryDomain = 0;     // nonce word 2 for every sample's words
inline constexpr uint32_t kReplacementDomain = 1;  // nonce word 2 for a rejected word's replacement
inline constexpr uint32_t kCbdBits = 21;          // centered binomial k: sigma = sqrt(21/2) ~ 3.24

VEIL_SAMPLING_FN uint64_t mul_hi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

VEIL_SAMPLING_FN int popcount64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __popcll(x);
#else
  return __builtin_popcountll(x);
#endif
}

// Centered binomial with k = 21 from one word: popcount of 21 bits minus popcount
// of the next 21, in [-21, 21]. Constant time; every word is accepted.
VEIL_SAMPLING_FN int64_t centered_binomial_from_word(uint64_t r) {
  constexpr uint64_t mask = (uint64_t{1} << kCbdBits) - 1;
  return static_cast<int64_t>(popcount64(r & mask)) - static_cast<int64_t>(popcount64((r >> kCbdBits) & mask));
}

// Uniform ternary from one word by Lemire's multiply-shift: r * 3 = hi * 2^64 + lo,
// value hi - 1. The split is exactly uniform once the words with lo < 2^64 mod 3 = 1
// are rejected, i.e. lo == 0 (r == 0, probability 2^-64). A rejected word's
// replacement word (replacement domain, same index) is used as it comes: the
// remaining bias is below 2^-126 per sample.
VEIL_SAMPLING_FN bool ternary_from_word(uint64_t r, int64_t& value) {
  value = static_cast<int64_t>(mul_hi64(r, 3)) - 1;
  return r * 3 != 0;
}

// 2^128 mod q by doubling (only the rare rejection test needs it).
VEIL_SAMPLING_FN uint64_t pow2_128_mod(uint64_t q) {
  uint64_t x = 1 % q;
  for (int i = 0; i < 128; ++i) x = (x >= q - x) ? x - (q - x) : x + x;
  return x;
}

// A residue uniform in [0, q) from a 128-bit word r = hi * 2^64 + lo, by Lemire's
// multiply-shift: r * q = v * 2^128 + low with v = floor(r q / 2^128) < q. Exactly
// uniform once words with low < 2^128 mod q are rejected (probability < q / 2^128
// < 2^-66 for q < 2^62); a rejected word's replacement is used as it comes.
VEIL_SAMPLING_FN bool uniform_from_words(uint64_t lo, uint64_t hi, uint64_t q, uint64_t& value) {
  // lo * q = a1 * 2^64 + a0; hi * q = b1 * 2^64 + b0; r q = b1 2^128 + (b0 + a1) 2^64 + a0.
  const uint64_t a0 = lo * q, a1 = mul_hi64(lo, q);
  const uint64_t b0 = hi * q, b1 = mul_hi64(hi, q);
  const uint64_t mid = b0 + a1;
  value = b1 + (mid < b0 ? 1 : 0);
  // low = mid * 2^64 + a0 is below 2^128 mod q (< 2^64) only when mid == 0.
  return !(mid == 0 && a0 < pow2_128_mod(q));
}

}  // namespace veil::sampling

#undef VEIL_SAMPLING_FN
