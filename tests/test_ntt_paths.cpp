// The AVX-512 IFMA NTT (primes < 2^50, chosen at run time) and the portable
// scalar NTT give identical outputs.
#include <gtest/gtest.h>

#include <random>

#include "arith/ntt.hpp"
#include "arith/ntt_ifma.hpp"
#include "arith/primes.hpp"

namespace veil::arith {
namespace {

TEST(NttPaths, IfmaMatchesScalarBitForBit) {
  if (!ifma::available()) GTEST_SKIP() << "this CPU has no AVX-512 IFMA; only the scalar NTT runs here";
  std::mt19937_64 rng(3);
  for (uint32_t log_n : {4u, 5u, 10u, 13u, 16u}) {
    for (int bits : {20, 36, 49}) {
      const uint64_t q = generate_ntt_primes(bits, uint64_t{1} << log_n, 1).front();
      NttTables vec(q, log_n), scalar(q, log_n);
      ASSERT_TRUE(vec.uses_ifma());
      scalar.set_use_ifma(false);
      ASSERT_FALSE(scalar.uses_ifma());
      std::vector<uint64_t> a(size_t{1} << log_n);
      for (auto& v : a) v = rng() % q;
      a[0] = q - 1;
      auto b = a;
      vec.forward(a.data());
      scalar.forward(b.data());
      ASSERT_EQ(a, b) << "forward, log_n " << log_n << ", " << bits << " bits";
      vec.inverse(a.data());
      scalar.inverse(b.data());
      ASSERT_EQ(a, b) << "inverse, log_n " << log_n << ", " << bits << " bits";
    }
  }
}

TEST(NttPaths, ForwardAcceptsLazyInputsBelowFourQ) {
  // ModUp feeds unreduced residues (< 4q) straight into the forward NTT.
  std::mt19937_64 rng(4);
  for (uint32_t log_n : {4u, 11u, 12u}) {
    for (int bits : {30, 49, 55, 61}) {
      const uint64_t q = generate_ntt_primes(bits, uint64_t{1} << log_n, 1).front();
      NttTables ntt(q, log_n);
      std::vector<uint64_t> a(size_t{1} << log_n), lazy(a.size());
      for (size_t i = 0; i < a.size(); ++i) {
        a[i] = rng() % q;
        lazy[i] = a[i] + (rng() % 4) * q;
      }
      lazy[1] = 4 * q - 1;
      a[1] = q - 1;
      ntt.forward(a.data());
      ntt.forward(lazy.data());
      ASSERT_EQ(a, lazy) << "log_n " << log_n << ", " << bits << " bits";
    }
  }
}

TEST(NttPaths, WidePrimesUseTheScalarPath) {
  const uint64_t q = generate_ntt_primes(55, 1024, 1).front();
  EXPECT_FALSE(NttTables(q, 10).uses_ifma());
}

}  // namespace
}  // namespace veil::arith
