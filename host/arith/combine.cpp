#include "arith/combine.hpp"

#include <algorithm>

#include "arith/ntt_ifma.hpp"

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // the intrinsics' own pass-through (see ntt_ifma.cpp)
#include <immintrin.h>

#define VEIL_IFMA __attribute__((target("avx512f,avx512ifma")))

namespace veil::arith {

namespace {

// Terms summed before a reduction in the IFMA path: each 52-bit half is < 2^52, so
// 4095 of them fit a 64-bit lane.
constexpr size_t kIfmaTerms = 4095;

// 32 coefficients in four vectors, low and high 52-bit halves of each product summed
// apart: sum = hi * 2^52 + lo.
VEIL_IFMA void combine_ifma(const Modulus& m, size_t e_begin, size_t e_end, const uint64_t* cols,
                            const uint64_t* w, const uint64_t* const* inputs, size_t offset, uint64_t* acc) {
  for (size_t start = e_begin; start < e_end; start += kIfmaTerms) {
    const size_t stop = std::min(e_end, start + kIfmaTerms);
    __m512i lo[4], hi[4];
    for (int k = 0; k < 4; ++k) lo[k] = hi[k] = _mm512_setzero_si512();
    for (size_t e = start; e < stop; ++e) {
      const uint64_t* x = inputs[cols[e]] + offset;
      const __m512i wv = _mm512_set1_epi64(static_cast<long long>(w[e]));
      for (int k = 0; k < 4; ++k) {
        const __m512i xv = _mm512_loadu_si512(x + 8 * k);
        lo[k] = _mm512_madd52lo_epu64(lo[k], xv, wv);
        hi[k] = _mm512_madd52hi_epu64(hi[k], xv, wv);
      }
    }
    alignas(64) uint64_t l[32], h[32];
    for (int k = 0; k < 4; ++k) {
      _mm512_store_si512(l + 8 * k, lo[k]);
      _mm512_store_si512(h + 8 * k, hi[k]);
    }
    for (size_t i = 0; i < 32; ++i) acc[i] = add_mod(acc[i], m.reduce128(((u128)h[i] << 52) + l[i]), m.value);
  }
}

// Any count and prime: 128-bit sums, reduced before they could overflow.
void combine_scalar(const Modulus& m, size_t count, size_t e_begin, size_t e_end, const uint64_t* cols,
                    const uint64_t* w, const uint64_t* const* inputs, size_t offset, uint64_t* acc) {
  const uint64_t q = m.value;
  const u128 square = (u128)(q - 1) * (q - 1);
  const size_t terms = static_cast<size_t>(std::min<u128>((~u128{0} - q) / square, 1u << 20));
  u128 sum[kCombineChunk];
  for (size_t start = e_begin; start < e_end; start += terms) {
    const size_t stop = std::min(e_end, start + terms);
    for (size_t i = 0; i < count; ++i) sum[i] = acc[i];
    for (size_t e = start; e < stop; ++e) {
      const uint64_t* x = inputs[cols[e]] + offset;
      const uint64_t we = w[e];
      for (size_t i = 0; i < count; ++i) sum[i] += (u128)x[i] * we;
    }
    for (size_t i = 0; i < count; ++i) acc[i] = m.reduce128(sum[i]);
  }
}

}  // namespace

void combine_chunk(const Modulus& m, size_t count, size_t e_begin, size_t e_end, const uint64_t* cols,
                   const uint64_t* w, const uint64_t* const* inputs, size_t offset, uint64_t* out, bool accumulate) {
  uint64_t acc[kCombineChunk];
  for (size_t i = 0; i < count; ++i) acc[i] = accumulate ? out[i] : 0;
  if (count == kCombineChunk && m.value < (uint64_t{1} << 52) && ifma::available())
    combine_ifma(m, e_begin, e_end, cols, w, inputs, offset, acc);
  else
    combine_scalar(m, count, e_begin, e_end, cols, w, inputs, offset, acc);
  for (size_t i = 0; i < count; ++i) out[i] = acc[i];
}

}  // namespace veil::arith
