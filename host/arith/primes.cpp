#include "arith/primes.hpp"

#include <algorithm>
#include <string>

#include "arith/modarith.hpp"
#include "veil/error.hpp"

namespace veil::arith {

namespace {
// Exact for every 64-bit modulus. Modulus's Barrett reduction needs q < 2^63
// (its remainder estimate reaches 2q), but is_prime accepts any 64-bit x.
uint64_t mul_mod_any(uint64_t a, uint64_t b, uint64_t m) { return static_cast<uint64_t>((u128)a * b % m); }
uint64_t pow_mod_any(uint64_t base, uint64_t exp, uint64_t m) {
  uint64_t result = 1 % m, b = base % m;
  while (exp) {
    if (exp & 1) result = mul_mod_any(result, b, m);
    b = mul_mod_any(b, b, m);
    exp >>= 1;
  }
  return result;
}
}  // namespace

bool is_prime(uint64_t x) {
  if (x < 2) return false;
  for (uint64_t p : {2ull, 3ull, 5ull, 7ull, 11ull, 13ull, 17ull, 19ull, 23ull, 29ull, 31ull, 37ull}) {
    if (x % p == 0) return x == p;
  }
  uint64_t d = x - 1;
  int r = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++r;
  }
  // These bases make Miller-Rabin deterministic for all x < 2^64.
  for (uint64_t a : {2ull, 3ull, 5ull, 7ull, 11ull, 13ull, 17ull, 19ull, 23ull, 29ull, 31ull, 37ull}) {
    uint64_t y = pow_mod_any(a, d, x);
    if (y == 1 || y == x - 1) continue;
    bool composite = true;
    for (int i = 1; i < r; ++i) {
      y = mul_mod_any(y, y, x);
      if (y == x - 1) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

std::vector<uint64_t> generate_ntt_primes(int bits, uint64_t n, size_t count,
                                          const std::vector<uint64_t>& exclude) {
  require(bits >= 20 && bits <= 61, ErrorCode::InvalidArgument,
          "prime bit size " + std::to_string(bits) + " outside [20, 61]");
  const uint64_t step = 2 * n;
  const uint64_t upper = uint64_t{1} << bits, lower = uint64_t{1} << (bits - 1);
  std::vector<uint64_t> out;
  // Largest candidate below 2^bits that is 1 mod 2n.
  uint64_t candidate = upper - step + 1;
  while (out.size() < count && candidate > lower) {
    if (is_prime(candidate) && std::find(exclude.begin(), exclude.end(), candidate) == exclude.end())
      out.push_back(candidate);
    candidate -= step;
  }
  require(out.size() == count, ErrorCode::InvalidArgument,
          "not enough " + std::to_string(bits) + "-bit primes = 1 mod " + std::to_string(step));
  return out;
}

uint64_t minimal_primitive_root(uint64_t two_n, uint64_t q) {
  require((q - 1) % two_n == 0, ErrorCode::InvalidArgument, "q is not 1 mod 2N");
  // g^((q-1)/2n) has order dividing 2n; it is primitive iff its n-th power is -1.
  const uint64_t cofactor = (q - 1) / two_n;
  uint64_t best = 0;
  for (uint64_t g = 2; g < q; ++g) {
    uint64_t root = pow_mod(g, cofactor, q);
    if (pow_mod(root, two_n / 2, q) == q - 1) {
      best = root;
      break;
    }
  }
  require(best != 0, ErrorCode::InvalidArgument, "no primitive root found");
  // Choose the smallest primitive 2n-th root (odd powers of one root).
  Modulus m(q);
  uint64_t sq = m.mul(best, best), cur = best, smallest = best;
  for (uint64_t i = 1; i < two_n / 2; ++i) {
    cur = m.mul(cur, sq);
    if (cur < smallest) smallest = cur;
  }
  return smallest;
}

}  // namespace veil::arith
