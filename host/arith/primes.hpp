// NTT-friendly prime generation and primality testing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace veil::arith {

// Deterministic Miller-Rabin for 64-bit integers.
bool is_prime(uint64_t x);
// `count` distinct primes q = 1 (mod 2n) with 2^(bits-1) < q < 2^bits, largest
// first, skipping any in `exclude`. Throws Error(InvalidArgument) if there are
// not enough.
std::vector<uint64_t> generate_ntt_primes(int bits, uint64_t n, size_t count,
                                          const std::vector<uint64_t>& exclude = {});
// A generator of the multiplicative group's subgroup of order 2n: a primitive
// 2n-th root of unity mod q (the smallest such, for reproducibility).
uint64_t minimal_primitive_root(uint64_t two_n, uint64_t q);

}  // namespace veil::arith
