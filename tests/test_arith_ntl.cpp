// Independent-reference tests for host/ word arithmetic, prime generation, the
// negacyclic NTT and the automorphisms: every result is checked for exact
// equality against NTL's big-integer / polynomial arithmetic.
#include <gtest/gtest.h>

#include <NTL/ZZ.h>
#include <NTL/ZZ_p.h>
#include <NTL/ZZ_pX.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "backend/cpu_backend.hpp"
#include "arith/combine.hpp"
#include "arith/modarith.hpp"
#include "arith/ntt.hpp"
#include "arith/primes.hpp"
#include "arith/sampling_rules.hpp"
#include "veil/backend.hpp"
#include "veil/error.hpp"
#include "veil/params.hpp"

namespace {

using veil::arith::u128;
using NTL::ZZ;
using NTL::ZZ_p;
using NTL::ZZ_pX;

ZZ zz(uint64_t v) { return NTL::conv<ZZ>(static_cast<unsigned long>(v)); }
ZZ zz128(u128 v) {
  ZZ r = zz(static_cast<uint64_t>(v >> 64));
  r <<= 64;
  return r + zz(static_cast<uint64_t>(v));
}
uint64_t u64(const ZZ& v) { return NTL::conv<unsigned long>(v); }
uint64_t u64(const ZZ_p& v) { return u64(NTL::rep(v)); }

u128 rand128(std::mt19937_64& rng) { return (u128)rng() << 64 | rng(); }
uint64_t below(std::mt19937_64& rng, uint64_t bound) {
  return std::uniform_int_distribution<uint64_t>(0, bound - 1)(rng);
}

// Primes of every size the library accepts: NTT-friendly ones (what it uses)
// and arbitrary NTL-chosen ones (so no structure of q is assumed), plus the
// extremes just under the 2^61 bound.
std::vector<uint64_t> test_primes() {
  std::mt19937_64 rng(0x5eed0001);
  std::vector<uint64_t> out;
  for (int bits = 20; bits <= 61; ++bits) {
    out.push_back(veil::arith::generate_ntt_primes(bits, 1024, 1).front());
    uint64_t lo = uint64_t{1} << (bits - 1);
    ZZ p = NTL::NextPrime(zz(lo + below(rng, lo - 4096)), 40);
    out.push_back(u64(p));
  }
  out.push_back((uint64_t{1} << 61) - 1);  // Mersenne prime M61
  out.push_back(u64(NTL::NextPrime(zz((uint64_t{1} << 61) - 200), 40)));  // near the bound
  return out;
}

// Inputs to reduce128: structured edge values plus random ones of every size.
std::vector<u128> reduce_inputs(uint64_t q, std::mt19937_64& rng) {
  const u128 max128 = ~u128{0};
  std::vector<u128> v = {0, 1, q - 1, q, q + 1, 2 * (u128)q - 1, 2 * (u128)q, ~uint64_t{0},
                         (u128)~uint64_t{0} + 1, (u128)(q - 1) * (q - 1), (u128)q * q - 1, (u128)q * q,
                         max128, max128 - 1, max128 / q * q, max128 / q * q - 1, (u128)1 << 127,
                         ((u128)1 << 127) - 1, (u128)q << 64, ((u128)q << 64) - 1, max128 - q};
  for (int i = 0; i < 300; ++i) {
    v.push_back(rand128(rng));
    v.push_back(rand128(rng) >> below(rng, 128));
    v.push_back((u128)below(rng, q) * below(rng, q));
  }
  return v;
}

TEST(NtlArith, ModulusReduceAndMulMatchExactRemainder) {
  std::mt19937_64 rng(0xa11ce);
  for (uint64_t q : test_primes()) {
    SCOPED_TRACE(q);
    const veil::arith::Modulus m(q);
    const ZZ qz = zz(q);
    // The Barrett constant must be exactly floor(2^128 / q).
    ZZ two128 = NTL::power2_ZZ(128);
    ASSERT_EQ(zz128((u128)m.ratio_hi << 64 | m.ratio_lo), two128 / qz);
    for (u128 x : reduce_inputs(q, rng)) {
      const uint64_t expect = static_cast<uint64_t>(x % q);
      ASSERT_EQ(m.reduce128(x), expect) << "x = " << zz128(x);
    }
    // Cross-check the u128 reference itself against NTL on a slice.
    for (int i = 0; i < 50; ++i) {
      u128 x = rand128(rng);
      ASSERT_EQ(m.reduce128(x), u64(zz128(x) % qz));
    }
    std::vector<uint64_t> words = {0, 1, q - 1, q, q + 1, 2 * q, ~uint64_t{0}, ~uint64_t{0} - 1,
                                   uint64_t{1} << 63};
    for (int i = 0; i < 300; ++i) words.push_back(rng());
    for (uint64_t x : words) ASSERT_EQ(m.reduce(x), x % q) << "x = " << x;
    for (int i = 0; i < 300; ++i) {
      const uint64_t a = below(rng, q), b = below(rng, q);
      ASSERT_EQ(m.mul(a, b), u64(NTL::MulMod(zz(a), zz(b), qz)));
      const uint64_t c = rng(), d = rng();  // mul accepts any 64-bit operands
      ASSERT_EQ(m.mul(c, d), u64(NTL::MulMod(zz(c) % qz, zz(d) % qz, qz)));
    }
    for (uint64_t a : {uint64_t{0}, q - 1}) {
      for (uint64_t b : {uint64_t{0}, uint64_t{1}, q - 1}) {
        ASSERT_EQ(m.mul(a, b), u64(NTL::MulMod(zz(a), zz(b), qz)));
      }
    }
  }
}

// A sparse combination's chunk: sum_e w_e x_e[i] (+ out[i]) mod q against NTL's big
// integers, for every prime size (the IFMA path below 2^52, the 128-bit one above) and
// rows longer than either path's reduction step, with the extremes q - 1.
TEST(NtlArith, CombineChunkMatchesExactSums) {
  std::mt19937_64 rng(0xc0b1);
  const size_t chunk = veil::arith::kCombineChunk, inputs = 5;
  const std::vector<uint64_t> primes = test_primes();
  for (size_t index = 0; index < primes.size(); ++index) {
    const uint64_t q = primes[index];
    const veil::arith::Modulus m(q);
    std::vector<std::vector<uint64_t>> x(inputs, std::vector<uint64_t>(chunk));
    for (auto& v : x)
      for (auto& c : v) c = rng() % 4 == 0 ? q - 1 : below(rng, q);
    std::vector<const uint64_t*> ptrs;
    for (const auto& v : x) ptrs.push_back(v.data());
    for (size_t terms : {size_t{0}, size_t{1}, size_t{70}, size_t{4100}}) {
      if (terms == 4100 && index % 8 != 0) continue;  // long rows: every fourth prime size
      std::vector<uint64_t> cols(terms), w(terms);
      for (size_t e = 0; e < terms; ++e) cols[e] = below(rng, inputs), w[e] = e % 5 == 0 ? q - 1 : below(rng, q);
      for (bool accumulate : {false, true}) {
        std::vector<uint64_t> out(chunk);
        for (auto& o : out) o = below(rng, q);
        const std::vector<uint64_t> before = out;
        veil::arith::combine_chunk(m, chunk, 0, terms, cols.data(), w.data(), ptrs.data(), 0, out.data(), accumulate);
        for (size_t i = 0; i < chunk; ++i) {
          ZZ sum = accumulate ? zz(before[i]) : ZZ(0);
          for (size_t e = 0; e < terms; ++e) sum += zz(w[e]) * zz(x[cols[e]][i]);
          ASSERT_EQ(out[i], u64(sum % zz(q))) << "q " << q << ", terms " << terms << ", coefficient " << i;
        }
      }
    }
  }
}

// The samplers' word rules (host and device share them): Lemire's multiply-shift
// gives floor(r q / 2^128) and rejects exactly the words with r q mod 2^128 below
// 2^128 mod q, including crafted words that hit the rejection region.
TEST(NtlArith, UniformFromWordsMatchesExactLemire) {
  std::mt19937_64 rng(0x5a3f);
  const ZZ two128 = NTL::power2_ZZ(128);
  for (uint64_t q : test_primes()) {
    const ZZ zq = zz(q), threshold = two128 % zq;
    ASSERT_EQ(veil::sampling::pow2_128_mod(q), u64(threshold)) << "q " << q;
    std::vector<u128> words = {0, 1, ~u128{0}, (u128)1 << 127, (u128)q << 64};
    for (int i = 0; i < 200; ++i) words.push_back(rand128(rng));
    // r = ceil(k 2^128 / q) with k = -threshold^-1 mod q: r q = k 2^128 + 1, rejected.
    const ZZ k = (zq - NTL::InvMod(threshold, zq)) % zq;
    const ZZ crafted = (k * two128 + zq - 1) / zq;
    words.push_back(static_cast<u128>(u64(crafted >> 64)) << 64 | u64(crafted % NTL::power2_ZZ(64)));
    size_t rejected = 0;
    for (u128 r : words) {
      const ZZ product = zz128(r) * zq;
      uint64_t value = 0;
      const bool accepted = veil::sampling::uniform_from_words(static_cast<uint64_t>(r),
                                                               static_cast<uint64_t>(r >> 64), q, value);
      ASSERT_EQ(value, u64(product >> 128)) << "q " << q;
      ASSERT_EQ(accepted, product % two128 >= threshold) << "q " << q;
      rejected += !accepted;
    }
    EXPECT_GE(rejected, 2u) << "q " << q;  // r = 0 and the crafted word
  }
}

TEST(NtlArith, TernaryAndBinomialFromWords) {
  std::mt19937_64 rng(0x7e4);
  std::vector<uint64_t> words = {0, 1, 2, ~uint64_t{0}, uint64_t{1} << 63, 0x5555555555555555, 0xaaaaaaaaaaaaaaab};
  for (int i = 0; i < 2000; ++i) words.push_back(rng());
  for (uint64_t r : words) {
    int64_t value = 9;
    const bool accepted = veil::sampling::ternary_from_word(r, value);
    const ZZ product = zz(r) * 3;
    EXPECT_EQ(value + 1, static_cast<int64_t>(u64(product >> 64)));
    EXPECT_EQ(accepted, product % NTL::power2_ZZ(64) >= 1);  // 2^64 mod 3 = 1
    int64_t plus = 0, minus = 0;
    for (int b = 0; b < 21; ++b) plus += (r >> b) & 1, minus += (r >> (21 + b)) & 1;
    EXPECT_EQ(veil::sampling::centered_binomial_from_word(r), plus - minus);
  }
}

TEST(NtlArith, AddSubNegMatchNtl) {
  std::mt19937_64 rng(0xadd);
  for (uint64_t q : test_primes()) {
    const ZZ qz = zz(q);
    for (int i = 0; i < 200; ++i) {
      uint64_t a = i == 0 ? q - 1 : below(rng, q), b = i < 2 ? q - 1 : below(rng, q);
      ASSERT_EQ(veil::arith::add_mod(a, b, q), u64(NTL::AddMod(zz(a), zz(b), qz)));
      ASSERT_EQ(veil::arith::sub_mod(a, b, q), u64(NTL::SubMod(zz(a), zz(b), qz)));
      ASSERT_EQ(veil::arith::neg_mod(a, q), u64(NTL::NegateMod(zz(a), qz)));
    }
    ASSERT_EQ(veil::arith::neg_mod(0, q), 0u);
  }
}

TEST(NtlArith, ShoupMulMatchesMulMod) {
  std::mt19937_64 rng(0x5400);
  for (uint64_t q : test_primes()) {
    SCOPED_TRACE(q);
    const ZZ qz = zz(q);
    std::vector<uint64_t> ws = {0, 1, 2, q - 1, q / 2};
    for (int i = 0; i < 30; ++i) ws.push_back(below(rng, q));
    for (uint64_t w : ws) {
      const uint64_t wsh = veil::arith::shoup_precompute(w, q);
      ASSERT_EQ(zz(wsh), (zz(w) << 64) / qz);
      std::vector<uint64_t> as = {0, 1, q - 1, q, 2 * q - 1, 4 * q - 1, ~uint64_t{0}};
      for (int i = 0; i < 40; ++i) as.push_back(i % 2 ? rng() : below(rng, q));
      for (uint64_t a : as) {
        // Shoup is specified for any 64-bit a, not only a < q.
        const uint64_t expect = u64(NTL::MulMod(zz(a) % qz, zz(w), qz));
        ASSERT_EQ(veil::arith::mul_shoup(a, w, wsh, q), expect) << "a = " << a << " w = " << w;
        const uint64_t lazy = veil::arith::mul_shoup_lazy(a, w, wsh, q);
        ASSERT_LT(lazy, 2 * q);
        ASSERT_EQ(lazy % q, expect);
      }
    }
  }
}

TEST(NtlArith, PowModAndInvModMatchNtl) {
  std::mt19937_64 rng(0x9011);
  for (uint64_t q : test_primes()) {
    SCOPED_TRACE(q);
    const ZZ qz = zz(q);
    std::vector<uint64_t> exps = {0, 1, 2, q - 2, q - 1, q, ~uint64_t{0}};
    for (int i = 0; i < 20; ++i) exps.push_back(rng());
    std::vector<uint64_t> bases = {0, 1, q - 1, q, q + 1, ~uint64_t{0}};
    for (int i = 0; i < 10; ++i) bases.push_back(rng());
    for (uint64_t b : bases) {
      for (uint64_t e : exps) {
        // pow_mod reduces the base first; 0^0 = 1 as in NTL.
        ASSERT_EQ(veil::arith::pow_mod(b, e, q), u64(NTL::PowerMod(zz(b) % qz, zz(e), qz)))
            << "b = " << b << " e = " << e;
      }
    }
    for (int i = 0; i < 100; ++i) {
      const uint64_t a = i == 0 ? 1 : i == 1 ? q - 1 : 1 + below(rng, q - 1);
      const uint64_t inv = veil::arith::inv_mod(a, q);
      ASSERT_EQ(inv, u64(NTL::InvMod(zz(a), qz))) << "a = " << a;
    }
  }
  // pow_mod is also used with composite moduli (Miller-Rabin on candidates).
  for (int i = 0; i < 200; ++i) {
    const uint64_t m = (rng() >> (2 + below(rng, 40))) | 3;  // odd, < 2^62
    const uint64_t b = rng(), e = rng();
    ASSERT_EQ(veil::arith::pow_mod(b, e, m), u64(NTL::PowerMod(zz(b) % zz(m), zz(e), zz(m)))) << "m = " << m;
  }
}

// NTL's randomized test with many rounds is an independent oracle.
bool ntl_prime(uint64_t x) { return NTL::ProbPrime(zz(x), 40) != 0; }

TEST(NtlArith, IsPrimeMatchesNtlOnSmallAndRandomNumbers) {
  for (uint64_t x = 0; x < 20000; ++x) ASSERT_EQ(veil::arith::is_prime(x), ntl_prime(x)) << x;
  std::mt19937_64 rng(0x1517e);
  for (int bits = 2; bits <= 64; ++bits) {
    for (int i = 0; i < 60; ++i) {
      uint64_t x = rng() >> (64 - bits);
      x |= uint64_t{1} << (bits - 1);
      if (i % 2) x |= 1;
      ASSERT_EQ(veil::arith::is_prime(x), ntl_prime(x)) << x;
    }
  }
  // Actual primes of every size (random numbers are mostly composite).
  for (int bits = 3; bits <= 64; ++bits) {
    for (int i = 0; i < 5; ++i) {
      uint64_t lo = uint64_t{1} << (bits - 1);
      ZZ p = NTL::NextPrime(zz(lo + (rng() >> (65 - bits))), 40);
      if (NTL::NumBits(p) > 64) continue;
      ASSERT_TRUE(veil::arith::is_prime(u64(p))) << p;
    }
  }
}

TEST(NtlArith, IsPrimeNearWordBoundaries) {
  // Numbers around 2^61, 2^62, 2^63 and 2^64, where word-size Barrett tricks break first.
  for (int top : {32, 61, 62, 63, 64}) {
    const uint64_t base = top == 64 ? 0 : uint64_t{1} << top;
    for (uint64_t k = 1; k <= 1500; ++k) {
      const uint64_t below_x = base - k;  // wraps to 2^64 - k for top = 64
      ASSERT_EQ(veil::arith::is_prime(below_x), ntl_prime(below_x)) << below_x;
      if (top < 64) {
        const uint64_t above_x = base + k;
        ASSERT_EQ(veil::arith::is_prime(above_x), ntl_prime(above_x)) << above_x;
      }
    }
  }
  EXPECT_TRUE(veil::arith::is_prime(18446744073709551557ull));  // largest 64-bit prime, 2^64 - 59
  EXPECT_TRUE(veil::arith::is_prime(9223372036854775783ull));   // largest prime < 2^63
  EXPECT_TRUE(veil::arith::is_prime((uint64_t{1} << 61) - 1));
  // Regression: a prime above 2^63 that a Barrett-based Miller-Rabin called composite.
  EXPECT_TRUE(veil::arith::is_prime(13764485464555911703ull));
}

TEST(NtlArith, IsPrimeRejectsPseudoprimesCarmichaelAndSquares) {
  // Classical Carmichael numbers and strong pseudoprimes to many small bases.
  std::vector<uint64_t> composites = {561, 1105, 1729, 2465, 2821, 6601, 8911, 10585, 15841, 29341, 41041,
                                      46657, 52633, 62745, 63973, 75361, 101101, 115921, 126217, 162401,
                                      172081, 188461, 252601, 278545, 294409, 314821, 334153, 340561,
                                      399001, 410041, 449065, 488881, 512461,
                                      2047, 3277, 4033, 4681, 8321,  // strong pseudoprimes base 2
                                      1373653, 25326001, 3215031751ull, 2152302898747ull,
                                      3474749660383ull, 341550071728321ull, 3825123056546413051ull};
  // Chernick Carmichael numbers (6k+1)(12k+1)(18k+1), up to 2^64.
  for (uint64_t k = 1; k < 240000; ++k) {
    const u128 a = 6 * k + 1, b = 12 * k + 1, c = 18 * k + 1;
    const u128 prod = a * b * c;
    if (prod >> 64) break;
    if (ntl_prime(a) && ntl_prime(b) && ntl_prime(c)) composites.push_back(static_cast<uint64_t>(prod));
  }
  ASSERT_GT(composites.size(), 100u);
  // Squares and products of primes, including ones just under 2^64.
  std::mt19937_64 rng(0x5a5a);
  for (int bits = 3; bits <= 32; ++bits) {
    for (int i = 0; i < 4; ++i) {
      uint64_t p = u64(NTL::NextPrime(zz((uint64_t{1} << (bits - 1)) + (rng() >> (65 - bits))), 40));
      if (p >= (uint64_t{1} << 32)) continue;
      composites.push_back(p * p);
      uint64_t r = u64(NTL::NextPrime(zz(p + 1 + below(rng, 1000)), 40));
      if ((u128)p * r < ((u128)1 << 64)) composites.push_back(p * r);
      // p * (2p - 1) with both prime: the classic strong-pseudoprime shape.
      if (ntl_prime(2 * p - 1) && (u128)p * (2 * p - 1) < ((u128)1 << 64))
        composites.push_back(p * (2 * p - 1));
    }
  }
  composites.push_back(4294967291ull * 4294967291ull);  // largest 32-bit prime squared
  composites.push_back(4294967291ull * 4294967279ull);
  for (uint64_t x : composites) {
    ASSERT_FALSE(ntl_prime(x)) << x;  // guards the list itself
    ASSERT_FALSE(veil::arith::is_prime(x)) << x;
  }
}

TEST(NtlArith, GenerateNttPrimesMatchesNtlEnumeration) {
  for (uint64_t n : {uint64_t{16}, uint64_t{1} << 12, uint64_t{1} << 13, uint64_t{1} << 16}) {
    for (int bits : {20, 25, 30, 40, 50, 55, 60, 61}) {
      SCOPED_TRACE(::testing::Message() << "n = " << n << " bits = " << bits);
      const uint64_t step = 2 * n, lo = uint64_t{1} << (bits - 1), hi = uint64_t{1} << bits;
      // Reference: every q = 1 mod 2n in (2^(bits-1), 2^bits) that NTL calls prime, descending.
      std::vector<uint64_t> expect;
      for (uint64_t c = (hi - 1) / step * step + 1; c > lo && expect.size() < 6; c -= step)
        if (ntl_prime(c)) expect.push_back(c);
      const size_t count = std::min<size_t>(expect.size(), 5);
      if (count == 0) continue;
      std::vector<uint64_t> got = veil::arith::generate_ntt_primes(bits, n, count);
      ASSERT_EQ(got, std::vector<uint64_t>(expect.begin(), expect.begin() + count));
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i] % step, 1u);
        EXPECT_EQ(NTL::NumBits(zz(got[i])), bits);
        if (i) EXPECT_LT(got[i], got[i - 1]);  // strictly descending, hence distinct
      }
      // Excluding the first result shifts the list by one.
      if (expect.size() > count) {
        std::vector<uint64_t> shifted = veil::arith::generate_ntt_primes(bits, n, count, {expect[0]});
        ASSERT_EQ(shifted, std::vector<uint64_t>(expect.begin() + 1, expect.begin() + count + 1));
      }
    }
  }
  // Asking for more primes than exist must throw, as must bit sizes outside [20, 61].
  EXPECT_THROW(veil::arith::generate_ntt_primes(20, uint64_t{1} << 16, 100), veil::Error);
  EXPECT_THROW(veil::arith::generate_ntt_primes(19, 16, 1), veil::Error);
  EXPECT_THROW(veil::arith::generate_ntt_primes(62, 16, 1), veil::Error);
}

TEST(NtlArith, MinimalPrimitiveRootIsTheSmallestPrimitive2NthRoot) {
  for (uint64_t n : {uint64_t{16}, uint64_t{64}, uint64_t{1024}}) {
    for (int bits : {30, 50, 61}) {
      const uint64_t q = veil::arith::generate_ntt_primes(bits, n, 1).front();
      const ZZ qz = zz(q);
      const uint64_t psi = veil::arith::minimal_primitive_root(2 * n, q);
      ASSERT_EQ(NTL::PowerMod(zz(psi), zz(n), qz), qz - 1);  // order exactly 2n
      // All primitive 2n-th roots are the odd powers of any one of them.
      ZZ smallest = qz, cur = zz(psi);
      const ZZ sq = NTL::MulMod(zz(psi), zz(psi), qz);
      for (uint64_t k = 0; k < n; ++k) {
        if (cur < smallest) smallest = cur;
        cur = NTL::MulMod(cur, sq, qz);
      }
      ASSERT_EQ(zz(psi), smallest);
    }
  }
}

// ---------------------------------------------------------------- NTT

ZZ_pX to_poly(const std::vector<uint64_t>& a) {
  ZZ_pX p;
  p.SetLength(static_cast<long>(a.size()));
  for (size_t i = 0; i < a.size(); ++i) p[static_cast<long>(i)] = NTL::conv<ZZ_p>(zz(a[i]));
  p.normalize();
  return p;
}

// a * b mod (X^n + 1), folded by hand so NTL's product is the only reference.
std::vector<uint64_t> ntl_negacyclic_product(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b,
                                             uint64_t q) {
  NTL::ZZ_pPush push(zz(q));
  const long n = static_cast<long>(a.size());
  ZZ_pX c = to_poly(a) * to_poly(b);
  std::vector<uint64_t> out(a.size());
  for (long i = 0; i < n; ++i) out[i] = u64(NTL::coeff(c, i) - NTL::coeff(c, i + n));
  return out;
}

std::vector<uint64_t> random_poly(std::mt19937_64& rng, size_t n, uint64_t q) {
  std::vector<uint64_t> a(n);
  for (auto& v : a) v = below(rng, q);
  return a;
}

TEST(NtlNtt, RoundTripAndNegacyclicProductMatchNtl) {
  std::mt19937_64 rng(0x0417);
  for (uint32_t log_n : {4u, 10u, 12u, 13u}) {
    const uint64_t n = uint64_t{1} << log_n;
    for (int bits : {30, 50, 60, 61}) {
      for (uint64_t q : veil::arith::generate_ntt_primes(bits, n, 2)) {
        SCOPED_TRACE(::testing::Message() << "log_n = " << log_n << " q = " << q);
        const veil::arith::NttTables ntt(q, log_n);
        ASSERT_EQ(ntt.modulus(), q);
        ASSERT_EQ(ntt.log_n(), log_n);
        ASSERT_EQ(NTL::PowerMod(zz(ntt.psi()), zz(n), zz(q)), zz(q - 1));  // primitive 2N-th root

        std::vector<std::vector<uint64_t>> inputs = {std::vector<uint64_t>(n, 0),
                                                     std::vector<uint64_t>(n, q - 1),
                                                     random_poly(rng, n, q), random_poly(rng, n, q)};
        inputs[0][0] = 1;
        for (const auto& a : inputs) {
          std::vector<uint64_t> t = a;
          ntt.forward(t.data());
          for (uint64_t v : t) ASSERT_LT(v, q);
          ntt.inverse(t.data());
          ASSERT_EQ(t, a);
          // inverse then forward is the identity too (any vector is a valid NTT image)
          t = a;
          ntt.inverse(t.data());
          for (uint64_t v : t) ASSERT_LT(v, q);
          ntt.forward(t.data());
          ASSERT_EQ(t, a);
        }

        const auto a = random_poly(rng, n, q), b = random_poly(rng, n, q);
        std::vector<uint64_t> fa = a, fb = b;
        ntt.forward(fa.data());
        ntt.forward(fb.data());
        const veil::arith::Modulus m(q);
        for (size_t i = 0; i < n; ++i) fa[i] = m.mul(fa[i], fb[i]);
        ntt.inverse(fa.data());
        ASSERT_EQ(fa, ntl_negacyclic_product(a, b, q));
        // An all-(q-1) operand hits the largest lazy intermediate values.
        const std::vector<uint64_t> top(n, q - 1);
        std::vector<uint64_t> ft = top;
        fb = b;
        ntt.forward(ft.data());
        ntt.forward(fb.data());
        for (size_t i = 0; i < n; ++i) ft[i] = m.mul(ft[i], fb[i]);
        ntt.inverse(ft.data());
        ASSERT_EQ(ft, ntl_negacyclic_product(top, b, q));
      }
    }
  }
}

TEST(NtlNtt, ForwardOutputIsEvaluationAtOddPowersInBitReversedOrder) {
  std::mt19937_64 rng(0xe7a1);
  for (uint32_t log_n : {4u, 10u}) {
    const uint64_t n = uint64_t{1} << log_n;
    for (int bits : {30, 61}) {
      const uint64_t q = veil::arith::generate_ntt_primes(bits, n, 1).front();
      const veil::arith::NttTables ntt(q, log_n);
      NTL::ZZ_pPush push(zz(q));
      const auto a = random_poly(rng, n, q);
      std::vector<uint64_t> t = a;
      ntt.forward(t.data());
      const ZZ_pX pa = to_poly(a);
      const ZZ_p psi = NTL::conv<ZZ_p>(zz(ntt.psi()));
      // All slots for N = 16; a spread sample (ends included) for N = 1024.
      std::vector<uint64_t> slots;
      for (uint64_t i = 0; i < n; i += n <= 16 ? 1 : 13) slots.push_back(i);
      slots.push_back(n - 1);
      for (uint64_t i : slots) {
        const long e = 2 * static_cast<long>(veil::arith::bit_reverse(static_cast<uint32_t>(i), log_n)) + 1;
        ASSERT_EQ(t[i], u64(NTL::eval(pa, NTL::power(psi, e)))) << "slot " << i;
      }
    }
  }
}

// ---------------------------------------------------------------- automorphisms

TEST(NtlAutomorphism, CoeffAndNttMatchNtlComposition) {
  veil::ParameterSpec spec;
  spec.log_n = 12;
  spec.q_bits = {50, 61};
  spec.p_bits = {30};
  spec.security = veil::Security::InsecureTestingOnly;
  const auto params = veil::Parameters::create(spec);
  auto tables = veil::RnsTables::build(params);
  auto backend = veil::make_backend(veil::BackendKind::Cpu, tables);
  const uint64_t n = params.n(), two_n = 2 * n;
  const veil::Basis basis{2, true};  // q_0, q_1, p_0
  const uint32_t limbs = tables->limbs(basis);

  std::mt19937_64 rng(0xa070);
  std::vector<uint64_t> a(limbs * n);
  for (uint32_t l = 0; l < limbs; ++l)
    for (uint64_t c = 0; c < n; ++c) a[l * n + c] = below(rng, tables->primes[tables->prime_index(basis, l)]);
  std::vector<uint64_t> a_ntt = a;
  backend->ntt_forward(basis, a_ntt.data());

  std::vector<uint64_t> gs = {1, two_n - 1};
  uint64_t g5 = 1;
  for (int k = 1; k <= 40; ++k) {
    g5 = g5 * 5 % two_n;
    gs.push_back(g5);
  }
  gs.push_back(g5 * (two_n - 1) % two_n);  // a conjugated rotation
  for (int i = 0; i < 5; ++i) gs.push_back(below(rng, two_n) | 1);

  std::vector<uint64_t> out(limbs * n), out_ntt(limbs * n), expect_ntt(limbs * n);
  for (size_t gi = 0; gi < gs.size(); ++gi) {
    const uint64_t g = gs[gi];
    SCOPED_TRACE(g);
    backend->automorphism_coeff(basis, out.data(), a.data(), g);
    for (uint32_t l = 0; l < limbs; ++l) {
      const uint64_t q = tables->primes[tables->prime_index(basis, l)];
      NTL::ZZ_pPush push(zz(q));
      const ZZ_pX pa = to_poly(std::vector<uint64_t>(a.begin() + l * n, a.begin() + (l + 1) * n));
      const ZZ_pX pb = to_poly(std::vector<uint64_t>(out.begin() + l * n, out.begin() + (l + 1) * n));
      // b = a(X^g) mod X^N + 1 iff b(r) = a(r^g) at every root r of X^N + 1; check a few roots.
      const ZZ_p psi = NTL::conv<ZZ_p>(zz(veil::arith::minimal_primitive_root(two_n, q)));
      for (int k = 0; k < 6; ++k) {
        const ZZ_p r = NTL::power(psi, static_cast<long>(below(rng, two_n) | 1));
        ASSERT_EQ(NTL::eval(pb, r), NTL::eval(pa, NTL::power(r, static_cast<long>(g)))) << "limb " << l;
      }
      // Full NTL reference by modular composition; costly at N = 4096, so only for a few g.
      if (l == limbs - 1 - gi % limbs && (gi < 3 || gi == 20)) {
        ZZ_pX f;
        NTL::SetCoeff(f, static_cast<long>(n));
        NTL::SetCoeff(f, 0);
        const NTL::ZZ_pXModulus fm(f);
        const ZZ_pX ref = NTL::CompMod(pa, NTL::PowerXMod(static_cast<long>(g), fm), fm);
        for (uint64_t c = 0; c < n; ++c)
          ASSERT_EQ(out[l * n + c], u64(NTL::coeff(ref, static_cast<long>(c))))
              << "limb " << l << " coeff " << c;
      }
    }
    // NTT-domain automorphism must commute with the transform.
    expect_ntt = out;
    backend->ntt_forward(basis, expect_ntt.data());
    backend->automorphism_ntt(basis, out_ntt.data(), a_ntt.data(), g);
    ASSERT_EQ(out_ntt, expect_ntt);
  }
  // Even or out-of-range Galois elements are rejected.
  EXPECT_THROW(backend->automorphism_coeff(basis, out.data(), a.data(), 4), veil::Error);
  EXPECT_THROW(backend->automorphism_ntt(basis, out.data(), a_ntt.data(), two_n + 1), veil::Error);
}

}  // namespace
