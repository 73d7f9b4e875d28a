#include "ckks/sampling.hpp"

#include <bit>

namespace veil::sampling {

void uniform(Prng& prng, const RnsTables& t, Basis b, uint64_t* out) {
  const uint32_t limbs = t.limbs(b);
  uint64_t buf[256];
  size_t pos = 256;
  for (uint32_t limb = 0; limb < limbs; ++limb) {
    const uint64_t q = t.primes[t.prime_index(b, limb)];
    const uint64_t mask = (uint64_t{1} << std::bit_width(q)) - 1;
    uint64_t* dst = out + static_cast<size_t>(limb) * t.n;
    for (size_t i = 0; i < t.n;) {
      if (pos == 256) {
        prng.fill(buf, sizeof buf);
        pos = 0;
      }
      uint64_t v = buf[pos++] & mask;
      if (v < q) dst[i++] = v;  // rejection keeps the distribution exactly uniform
    }
  }
  sodium_memzero(buf, sizeof buf);
}

void ternary(Prng& prng, int64_t* out, size_t n) {
  uint8_t buf[512];
  size_t pos = sizeof buf;
  for (size_t i = 0; i < n;) {
    if (pos == sizeof buf) {
      prng.fill(buf, sizeof buf);
      pos = 0;
    }
    uint8_t v = buf[pos++];
    if (v < 255) out[i++] = static_cast<int64_t>(v % 3) - 1;  // 255 = 3 * 85
  }
  sodium_memzero(buf, sizeof buf);
}

void centered_binomial(Prng& prng, int64_t* out, size_t n) {
  constexpr uint64_t mask21 = (uint64_t{1} << 21) - 1;
  for (size_t i = 0; i < n; ++i) {
    uint64_t r = prng.next_u64();
    out[i] = static_cast<int64_t>(std::popcount(r & mask21)) -
             static_cast<int64_t>(std::popcount((r >> 21) & mask21));
  }
}

}  // namespace veil::sampling
