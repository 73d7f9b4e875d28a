#include "sampling.hpp"

#include <bit>

#include "modarith.hpp"

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

void signed_to_rns(const int64_t* in, size_t n, const RnsTables& t, Basis b, uint64_t* out) {
  const uint32_t limbs = t.limbs(b);
  for (uint32_t limb = 0; limb < limbs; ++limb) {
    const arith::Modulus m(t.primes[t.prime_index(b, limb)]);
    const uint64_t q = m.value;
    uint64_t* dst = out + static_cast<size_t>(limb) * t.n;
    for (size_t i = 0; i < n; ++i) {
      // Branch-free on the (secret) sign, and Barrett instead of a division (whose
      // time depends on the operand): |x| mod q, then q - r when x < 0 and r != 0.
      const uint64_t sign = static_cast<uint64_t>(in[i] >> 63);  // all ones if negative
      const uint64_t mag = (static_cast<uint64_t>(in[i]) ^ sign) - sign;
      const uint64_t r = m.reduce(mag);
      const uint64_t flip = sign & (0 - static_cast<uint64_t>(r != 0));
      dst[i] = r ^ ((r ^ (q - r)) & flip);
    }
  }
}

}  // namespace veil::sampling
