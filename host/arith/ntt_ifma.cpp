#include "arith/ntt_ifma.hpp"

// GCC 12 flags the intrinsics' own _mm512_undefined_epi32() pass-through
// (unmasked min) as maybe-uninitialized: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#define VEIL_IFMA __attribute__((target("avx512f,avx512ifma")))

namespace veil::arith::ifma {

bool available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
  return ok;
}

namespace {

// (y * w) mod q, lazily in [0, 2q), for y < 2^52 and w52 = floor(w 2^52 / q).
VEIL_IFMA inline __m512i mul_shoup52(__m512i y, __m512i w, __m512i w52, __m512i neg_q, __m512i mask52) {
  const __m512i zero = _mm512_setzero_si512();
  __m512i quotient = _mm512_madd52hi_epu64(zero, y, w52);
  __m512i product = _mm512_madd52lo_epu64(zero, y, w);
  return _mm512_and_si512(_mm512_madd52lo_epu64(product, quotient, neg_q), mask52);
}

// x >= bound ? x - bound : x, via the unsigned minimum of x and x - bound.
VEIL_IFMA inline __m512i reduce_once(__m512i x, __m512i bound) {
  return _mm512_min_epu64(x, _mm512_sub_epi64(x, bound));
}

// Lane indices for the stages whose butterflies stay inside 8-element groups
// (half-width t = 4, 2, 1). A 16-element block sits in two vectors (lo, hi);
// split gathers the x (and y) halves of its butterflies into one vector each,
// merge puts them back, twiddle spreads group k / t's root to lane k.
struct ShortStageLanes {
  __m512i split_x, split_y, merge_lo, merge_hi, twiddle;
};

VEIL_IFMA ShortStageLanes short_stage_lanes(uint64_t t) {
  alignas(64) long long sx[8], sy[8], ml[8], mh[8], tw[8];
  for (uint64_t k = 0; k < 8; ++k) {
    sx[k] = static_cast<long long>((k / t) * 2 * t + k % t);
    sy[k] = sx[k] + static_cast<long long>(t);
    tw[k] = static_cast<long long>(k / t);
  }
  for (uint64_t e = 0; e < 16; ++e) {
    const uint64_t g = e / (2 * t), r = e % (2 * t);
    const auto lane = static_cast<long long>(r < t ? g * t + r : 8 + g * t + r - t);
    (e < 8 ? ml[e] : mh[e - 8]) = lane;
  }
  return {_mm512_load_si512(sx), _mm512_load_si512(sy), _mm512_load_si512(ml), _mm512_load_si512(mh),
          _mm512_load_si512(tw)};
}

}  // namespace

VEIL_IFMA void forward_last_stages(uint64_t* a, uint64_t n, uint64_t q, const uint64_t* roots,
                                   const uint64_t* roots52) {
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  const __m512i two_q = _mm512_set1_epi64(static_cast<long long>(2 * q));
  const __m512i neg_q = _mm512_set1_epi64(static_cast<long long>(((uint64_t{1} << 52) - q)));
  const __m512i mask52 = _mm512_set1_epi64(static_cast<long long>((uint64_t{1} << 52) - 1));
  const ShortStageLanes lanes[3] = {short_stage_lanes(4), short_stage_lanes(2), short_stage_lanes(1)};
  for (uint64_t s = 0; s < n; s += 16) {
    __m512i lo = _mm512_loadu_si512(a + s), hi = _mm512_loadu_si512(a + s + 8);
    for (uint64_t st = 0; st < 3; ++st) {
      const uint64_t t = uint64_t{4} >> st, m = n / (2 * t), first = m + s / (2 * t);
      const auto used = static_cast<__mmask8>((1u << (8 / t)) - 1);  // roots of this block's groups
      const ShortStageLanes& L = lanes[st];
      const __m512i w = _mm512_permutexvar_epi64(L.twiddle, _mm512_maskz_loadu_epi64(used, roots + first));
      const __m512i w52 = _mm512_permutexvar_epi64(L.twiddle, _mm512_maskz_loadu_epi64(used, roots52 + first));
      const __m512i x = reduce_once(_mm512_permutex2var_epi64(lo, L.split_x, hi), two_q);
      const __m512i v = mul_shoup52(_mm512_permutex2var_epi64(lo, L.split_y, hi), w, w52, neg_q, mask52);
      const __m512i nx = _mm512_add_epi64(x, v);
      const __m512i ny = _mm512_add_epi64(_mm512_sub_epi64(x, v), two_q);
      lo = _mm512_permutex2var_epi64(nx, L.merge_lo, ny);
      hi = _mm512_permutex2var_epi64(nx, L.merge_hi, ny);
    }
    _mm512_storeu_si512(a + s, reduce_once(reduce_once(lo, two_q), vq));
    _mm512_storeu_si512(a + s + 8, reduce_once(reduce_once(hi, two_q), vq));
  }
}

VEIL_IFMA void inverse_first_stages(uint64_t* a, uint64_t n, uint64_t q, const uint64_t* roots,
                                    const uint64_t* roots52) {
  const __m512i two_q = _mm512_set1_epi64(static_cast<long long>(2 * q));
  const __m512i neg_q = _mm512_set1_epi64(static_cast<long long>(((uint64_t{1} << 52) - q)));
  const __m512i mask52 = _mm512_set1_epi64(static_cast<long long>((uint64_t{1} << 52) - 1));
  const ShortStageLanes lanes[3] = {short_stage_lanes(1), short_stage_lanes(2), short_stage_lanes(4)};
  for (uint64_t s = 0; s < n; s += 16) {
    __m512i lo = _mm512_loadu_si512(a + s), hi = _mm512_loadu_si512(a + s + 8);
    for (uint64_t st = 0; st < 3; ++st) {
      const uint64_t t = uint64_t{1} << st, h = n / (2 * t), first = h + s / (2 * t);
      const auto used = static_cast<__mmask8>((1u << (8 / t)) - 1);
      const ShortStageLanes& L = lanes[st];
      const __m512i w = _mm512_permutexvar_epi64(L.twiddle, _mm512_maskz_loadu_epi64(used, roots + first));
      const __m512i w52 = _mm512_permutexvar_epi64(L.twiddle, _mm512_maskz_loadu_epi64(used, roots52 + first));
      const __m512i x = _mm512_permutex2var_epi64(lo, L.split_x, hi);
      const __m512i y = _mm512_permutex2var_epi64(lo, L.split_y, hi);
      const __m512i nx = reduce_once(_mm512_add_epi64(x, y), two_q);
      const __m512i diff = _mm512_add_epi64(_mm512_sub_epi64(x, y), two_q);  // < 4q < 2^52
      const __m512i ny = mul_shoup52(diff, w, w52, neg_q, mask52);
      lo = _mm512_permutex2var_epi64(nx, L.merge_lo, ny);
      hi = _mm512_permutex2var_epi64(nx, L.merge_hi, ny);
    }
    _mm512_storeu_si512(a + s, lo);
    _mm512_storeu_si512(a + s + 8, hi);
  }
}

VEIL_IFMA void forward_stages(uint64_t* a, uint64_t n, uint64_t q, const uint64_t* roots,
                              const uint64_t* roots52, uint64_t m_begin, uint64_t m_end) {
  const __m512i two_q = _mm512_set1_epi64(static_cast<long long>(2 * q));
  const __m512i neg_q = _mm512_set1_epi64(static_cast<long long>(((uint64_t{1} << 52) - q)));
  const __m512i mask52 = _mm512_set1_epi64(static_cast<long long>((uint64_t{1} << 52) - 1));
  for (uint64_t m = m_begin; m < m_end; m <<= 1) {
    const uint64_t t = n / (2 * m);
    for (uint64_t i = 0; i < m; ++i) {
      const __m512i w = _mm512_set1_epi64(static_cast<long long>(roots[m + i]));
      const __m512i w52 = _mm512_set1_epi64(static_cast<long long>(roots52[m + i]));
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (uint64_t j = 0; j < t; j += 8) {
        __m512i vx = reduce_once(_mm512_loadu_si512(x + j), two_q);
        __m512i vt = mul_shoup52(_mm512_loadu_si512(y + j), w, w52, neg_q, mask52);
        _mm512_storeu_si512(x + j, _mm512_add_epi64(vx, vt));
        _mm512_storeu_si512(y + j, _mm512_add_epi64(_mm512_sub_epi64(vx, vt), two_q));
      }
    }
  }
}

VEIL_IFMA void inverse_stages(uint64_t* a, uint64_t n, uint64_t q, const uint64_t* roots,
                              const uint64_t* roots52, uint64_t m_begin, uint64_t m_end) {
  const __m512i two_q = _mm512_set1_epi64(static_cast<long long>(2 * q));
  const __m512i neg_q = _mm512_set1_epi64(static_cast<long long>(((uint64_t{1} << 52) - q)));
  const __m512i mask52 = _mm512_set1_epi64(static_cast<long long>((uint64_t{1} << 52) - 1));
  for (uint64_t m = m_begin; m > m_end; m >>= 1) {
    const uint64_t h = m >> 1, t = n / m;
    for (uint64_t i = 0; i < h; ++i) {
      const __m512i w = _mm512_set1_epi64(static_cast<long long>(roots[h + i]));
      const __m512i w52 = _mm512_set1_epi64(static_cast<long long>(roots52[h + i]));
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (uint64_t j = 0; j < t; j += 8) {
        __m512i vx = _mm512_loadu_si512(x + j), vy = _mm512_loadu_si512(y + j);
        _mm512_storeu_si512(x + j, reduce_once(_mm512_add_epi64(vx, vy), two_q));
        __m512i diff = _mm512_add_epi64(_mm512_sub_epi64(vx, vy), two_q);  // < 4q < 2^52
        _mm512_storeu_si512(y + j, mul_shoup52(diff, w, w52, neg_q, mask52));
      }
    }
  }
}

VEIL_IFMA void multiply_reduce(uint64_t* a, uint64_t n, uint64_t q, uint64_t w, uint64_t w52) {
  const __m512i vq = _mm512_set1_epi64(static_cast<long long>(q));
  const __m512i neg_q = _mm512_set1_epi64(static_cast<long long>(((uint64_t{1} << 52) - q)));
  const __m512i mask52 = _mm512_set1_epi64(static_cast<long long>((uint64_t{1} << 52) - 1));
  const __m512i vw = _mm512_set1_epi64(static_cast<long long>(w));
  const __m512i vw52 = _mm512_set1_epi64(static_cast<long long>(w52));
  for (uint64_t j = 0; j < n; j += 8) {
    __m512i v = mul_shoup52(_mm512_loadu_si512(a + j), vw, vw52, neg_q, mask52);
    _mm512_storeu_si512(a + j, reduce_once(v, vq));
  }
}

}  // namespace veil::arith::ifma
