// Parameter presets, the HE Standard bound, and the randomness sources.
#include <cmath>
#include <random>
#include <set>

#include "arith/sampling.hpp"
#include "arith/sampling_rules.hpp"
#include "test_util.hpp"

namespace veil::test {
namespace {

TEST(Params, HeStandardTable) {
  EXPECT_EQ(he_standard_max_log_qp(13), 218);
  EXPECT_EQ(he_standard_max_log_qp(14), 438);
  EXPECT_EQ(he_standard_max_log_qp(15), 881);
  EXPECT_EQ(he_standard_max_log_qp(16), 1772);
  EXPECT_EQ(he_standard_max_log_qp(17), 0);
}

TEST(Params, PresetsAreSecureAndWellFormed) {
  for (uint32_t log_n = 13; log_n <= 16; ++log_n) {
    auto p = Parameters::preset(log_n);
    EXPECT_EQ(p.log_n(), log_n);
    EXPECT_EQ(p.security(), Security::HEStandard128);
    EXPECT_LE(p.log_qp(), he_standard_max_log_qp(log_n));
    EXPECT_GE(p.max_level(), 2u);
    // P exceeds every key-switching digit (noise control).
    double p_bits = 0;
    for (uint64_t v : p.p()) p_bits += std::log2(static_cast<double>(v));
    for (uint32_t j = 0; j < p.dnum(); ++j) {
      double digit = 0;
      for (uint32_t i = j * p.alpha(); i < std::min((j + 1) * p.alpha(), p.max_level() + 1); ++i)
        digit += std::log2(static_cast<double>(p.q()[i]));
      EXPECT_GT(p_bits, digit + 9) << "log_n " << log_n << " digit " << j;
    }
  }
}

// Fewer digits mean fewer basis conversions and NTTs per key switch and smaller keys:
// with one digit fewer (alpha' = ceil((L+1) / (dnum-1)) primes each), a P 10 bits above
// the largest digit must not fit under the bound, or the preset wastes work.
TEST(Params, PresetsUseTheFewestDigitsTheBoundAllows) {
  for (uint32_t log_n = 13; log_n <= 16; ++log_n) {
    const auto p = Parameters::preset(log_n);
    ASSERT_GE(p.dnum(), 2u) << "log_n " << log_n;
    const uint32_t limbs = p.max_level() + 1, fewer = p.dnum() - 1;
    const uint32_t alpha = (limbs + fewer - 1) / fewer;
    double q_bits = 0, largest_digit = 0;
    for (uint64_t v : p.q()) q_bits += std::log2(static_cast<double>(v));
    for (uint32_t first = 0; first < limbs; first += alpha) {
      double digit = 0;
      for (uint32_t i = first; i < std::min(first + alpha, limbs); ++i) digit += std::log2(static_cast<double>(p.q()[i]));
      largest_digit = std::max(largest_digit, digit);
    }
    EXPECT_GT(q_bits + largest_digit + 10, he_standard_max_log_qp(log_n))
        << "log_n " << log_n << ": dnum " << fewer << " would fit";
  }
}

TEST(Params, FingerprintIdentifiesParameters) {
  EXPECT_EQ(Parameters::preset(13).fingerprint(), Parameters::preset(13).fingerprint());
  EXPECT_NE(Parameters::preset(13).fingerprint(), Parameters::preset(14).fingerprint());
  ParameterSpec spec;
  spec.log_n = 13;
  spec.q_bits = {50, 40, 40};
  spec.p_bits = {60};
  spec.default_scale = std::ldexp(1.0, 35);
  EXPECT_NE(Parameters::create(spec).fingerprint(), Parameters::preset(13).fingerprint());
}

TEST(Params, WithDnumSetsSpecialPrimeCount) {
  ParameterSpec spec;
  spec.log_n = 15;
  spec.q_bits = {50, 40, 40, 40, 40, 40, 40};
  EXPECT_EQ(Parameters::create(spec.with_dnum(1, 50)).alpha(), 7u);
  EXPECT_EQ(Parameters::create(spec.with_dnum(3, 50)).dnum(), 3u);
  EXPECT_EQ(Parameters::create(spec.with_dnum(7, 60)).alpha(), 1u);
  EXPECT_THROW(spec.with_dnum(8, 60), Error);
}

TEST(Random, DeterministicSourceIsReproducible) {
  auto a = RandomSource::insecure_deterministic(5), b = RandomSource::insecure_deterministic(5);
  auto c = RandomSource::insecure_deterministic(6);
  EXPECT_TRUE(a.is_deterministic());
  auto s1 = a.next_seed(), s2 = b.next_seed(), s3 = c.next_seed();
  EXPECT_EQ(s1, s2);
  EXPECT_NE(s1, s3);
  EXPECT_NE(a.next_seed(), s1);  // successive seeds differ
}

TEST(Random, OsSourceGivesFreshSeeds) {
  auto a = RandomSource::os(), b = RandomSource::os();
  EXPECT_FALSE(a.is_deterministic());
  EXPECT_NE(a.next_seed(), b.next_seed());
}

TEST(Random, SameSeedSameKeysAndCiphertexts) {
  Keyed k1(Parameters::preset(13), 77, false), k2(Parameters::preset(13), 77, false);
  auto x = random_reals(16, 1);
  auto c1 = k1.encrypt(x), c2 = k2.encrypt(x);
  std::vector<uint64_t> a(c1.poly(0), c1.poly(0) + c1.poly_words()), b(c2.poly(0), c2.poly(0) + c2.poly_words());
  EXPECT_EQ(a, b);
}

Seed seed_of(uint8_t first) {
  Seed seed{};
  seed[0] = first;
  return seed;
}

// The keystream layout: RFC 8439 section 2.3.2's block (key 00..1f, nonce
// 00 00 00 09 00 00 00 4a 00 00 00 00, counter 1) is block 1 of stream
// 0x4a00000009000000 in the primary domain, read as little-endian words.
TEST(Random, KeystreamWordsFollowRfc8439) {
  Seed key;
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  uint64_t words[16];
  sampling::keystream_words(key, 0x4a00000009000000, sampling::kPrimaryDomain, 0, 2, words);
  const uint64_t want[8] = {0x15593bd1e4e7f110, 0xc47120a31fdd0f50, 0x0368c033c7f4d1c7, 0x4e6cd4c39aaa2204,
                            0x09aa9f07466482d2, 0xa2028bd905d7c214, 0xb94e16ded19c12b5, 0x4e3c50a2e883d0cb};
  for (int k = 0; k < 8; ++k) EXPECT_EQ(words[8 + k], want[k]) << "word " << k;
  uint64_t replacement[8];
  sampling::keystream_words(key, 0x4a00000009000000, sampling::kReplacementDomain, 1, 1, replacement);
  EXPECT_NE(replacement[0], want[0]);  // the other domain is another stream
}

TEST(Random, TernaryAndBinomialDistributions) {
  const size_t n = 1 << 16;
  std::vector<int64_t> t(n), e(n);
  sampling::sample_signed(seed_of(9), 0, SignedDistribution::Ternary, t.data(), n);
  sampling::sample_signed(seed_of(9), 1, SignedDistribution::CenteredBinomial, e.data(), n);
  size_t counts[3] = {0, 0, 0};
  for (int64_t v : t) {
    ASSERT_GE(v, -1);
    ASSERT_LE(v, 1);
    counts[v + 1]++;
  }
  for (size_t c : counts) EXPECT_NEAR(static_cast<double>(c) / n, 1.0 / 3, 0.01);
  double mean = 0, var = 0;
  for (int64_t v : e) {
    ASSERT_LE(std::abs(v), 21);
    mean += static_cast<double>(v);
  }
  mean /= n;
  for (int64_t v : e) var += (v - mean) * (v - mean);
  var /= n;
  EXPECT_NEAR(mean, 0.0, 0.05);
  EXPECT_NEAR(std::sqrt(var), 3.24, 0.05);  // sigma = sqrt(21 / 2)
}

// Counter-based: sample i depends only on (seed, stream, i), so a shorter draw is a
// prefix of a longer one, and another stream or seed gives other samples.
TEST(Random, SignedSamplesDependOnlyOnTheirPosition) {
  for (auto d : {SignedDistribution::Ternary, SignedDistribution::CenteredBinomial}) {
    std::vector<int64_t> longer(4096), shorter(520), other_stream(4096), other_seed(4096);
    sampling::sample_signed(seed_of(1), 5, d, longer.data(), longer.size());
    sampling::sample_signed(seed_of(1), 5, d, shorter.data(), shorter.size());
    sampling::sample_signed(seed_of(1), 6, d, other_stream.data(), other_stream.size());
    sampling::sample_signed(seed_of(2), 5, d, other_seed.data(), other_seed.size());
    EXPECT_TRUE(std::equal(shorter.begin(), shorter.end(), longer.begin()));
    EXPECT_NE(longer, other_stream);
    EXPECT_NE(longer, other_seed);
    // The words themselves: sample i is the rule applied to keystream word i.
    std::vector<uint64_t> words(4096);
    sampling::keystream_words(seed_of(1), 5, sampling::kPrimaryDomain, 0, 4096 / 8, words.data());
    for (size_t i = 0; i < words.size(); ++i) {
      int64_t want = 0;
      if (d == SignedDistribution::CenteredBinomial) want = sampling::centered_binomial_from_word(words[i]);
      else ASSERT_TRUE(sampling::ternary_from_word(words[i], want));
      ASSERT_EQ(longer[i], want) << "sample " << i;
    }
  }
}

TEST(Random, UniformResiduesBelowEachPrime) {
  auto ctx = Keyed::preset(13).ctx;
  const auto& t = ctx->tables();
  const Basis qp{t.max_level + 1, true};
  std::vector<uint64_t> out(ctx->words(qp));
  sampling::sample_uniform(seed_of(0), 0, t, qp, out.data());
  for (uint32_t limb = 0; limb < t.limbs(qp); ++limb) {
    const uint64_t q = t.primes[t.prime_index(qp, limb)];
    double mean = 0;
    for (size_t i = 0; i < t.n; ++i) {
      ASSERT_LT(out[limb * t.n + i], q);
      mean += static_cast<double>(out[limb * t.n + i]) / static_cast<double>(q);
    }
    EXPECT_NEAR(mean / t.n, 0.5, 0.02);
  }
  // Residue (limb j, i) comes from words 2(jN + i) and 2(jN + i) + 1 only: Q_1's
  // expansion is the first two limbs of Q_L u P's.
  std::vector<uint64_t> q1(ctx->words(Basis{2, false}));
  sampling::sample_uniform(seed_of(0), 0, t, Basis{2, false}, q1.data());
  EXPECT_TRUE(std::equal(q1.begin(), q1.end(), out.begin()));
}

// The Backend's samplers: the cpu backend (straight into its memory) and the
// Backend defaults (drawn on the host, uploaded) give the same words, and the
// signed ones are the residues of sample_signed's integers.
TEST(Random, BackendSamplersMatchTheHostSamplers) {
  auto ctx = Keyed::preset(13).ctx;
  const auto& t = ctx->tables();
  Backend& be = ctx->backend();
  const Basis qp{t.max_level + 1, true};
  Buffer direct = ctx->allocate(qp), staged = ctx->allocate(qp);
  be.sample_uniform(qp, direct.data(), seed_of(3), 7);
  be.Backend::sample_uniform(qp, staged.data(), seed_of(3), 7);
  std::vector<uint64_t> host(ctx->words(qp));
  sampling::sample_uniform(seed_of(3), 7, t, qp, host.data());
  EXPECT_EQ(direct.to_host(), host);
  EXPECT_EQ(staged.to_host(), host);
  std::vector<int64_t> values(t.n);
  sampling::sample_signed(seed_of(3), 7, SignedDistribution::CenteredBinomial, values.data(), t.n);
  Buffer signed_buf = ctx->allocate(qp), want = ctx->allocate(qp);
  be.sample_signed(qp, signed_buf.data(), SignedDistribution::CenteredBinomial, seed_of(3), 7);
  be.upload_signed(qp, want.data(), values.data());
  EXPECT_EQ(signed_buf.to_host(), want.to_host());
}

// upload_signed: the cpu override (straight into dst) and the Backend default (host
// conversion + upload) both give x mod q in [0, q), checked against 128-bit arithmetic.
TEST(Random, UploadSignedGivesCanonicalResidues) {
  auto ctx = Keyed::preset(13).ctx;
  const auto& t = ctx->tables();
  Backend& be = ctx->backend();
  std::vector<int64_t> small(t.n);
  std::mt19937_64 rng(7);
  for (auto& v : small) v = static_cast<int64_t>(rng() % 43) - 21;
  small[0] = (int64_t{1} << 62) - 1;
  small[1] = -small[0];
  small[2] = -1;
  for (Basis b : {Basis{t.max_level + 1, true}, Basis{2, false}}) {
    Buffer direct = ctx->allocate(b), staged = ctx->allocate(b);
    be.upload_signed(b, direct.data(), small.data());
    be.Backend::upload_signed(b, staged.data(), small.data());
    const auto d = direct.to_host(), s = staged.to_host();
    ASSERT_EQ(d, s);
    for (uint32_t limb = 0; limb < t.limbs(b); ++limb) {
      const __int128 q = t.primes[t.prime_index(b, limb)];
      for (size_t i = 0; i < t.n; ++i) {
        const __int128 want = ((small[i] % q) + q) % q;
        ASSERT_EQ(static_cast<__int128>(d[limb * t.n + i]), want) << "limb " << limb << " coeff " << i;
      }
    }
  }
}

}  // namespace
}  // namespace veil::test
