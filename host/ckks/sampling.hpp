// Samplers for CKKS randomness, on the host so every backend sees the same
// values for the same seed. All draw from a ChaCha20 Prng.
#pragma once

#include <sodium.h>

#include <cstdint>
#include <vector>

#include "veil/backend.hpp"
#include "veil/random.hpp"

namespace veil::sampling {

// A host vector wiped on destruction (secret samples).
template <typename T>
class SecretVector {
 public:
  explicit SecretVector(size_t n) : v_(n) {}
  ~SecretVector() { sodium_memzero(v_.data(), v_.size() * sizeof(T)); }
  SecretVector(const SecretVector&) = delete;
  SecretVector& operator=(const SecretVector&) = delete;
  T* data() { return v_.data(); }
  const T* data() const { return v_.data(); }
  size_t size() const { return v_.size(); }
  T& operator[](size_t i) { return v_[i]; }
  const T& operator[](size_t i) const { return v_[i]; }

 private:
  std::vector<T> v_;
};

// Uniform residues mod each limb's prime (rejection sampling), limb-major.
void uniform(Prng& prng, const RnsTables& t, Basis b, uint64_t* out);
// Uniform ternary {-1, 0, 1}, each with probability 1/3.
void ternary(Prng& prng, int64_t* out, size_t n);
// Centered binomial with k = 21 (sigma = sqrt(10.5) ~ 3.24), constant time.
void centered_binomial(Prng& prng, int64_t* out, size_t n);

}  // namespace veil::sampling
