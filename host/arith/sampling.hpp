// Samplers for CKKS randomness on the host: the counter-based layout of
// arith/sampling_rules.hpp over libsodium's ChaCha20, so the cuda kernels that
// draw on the device give the same values for the same (seed, stream).
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

// A seed that wipes itself: it determines secret samples.
struct SecretSeed {
  Seed value;
  ~SecretSeed() { sodium_memzero(value.data(), value.size()); }
};

// Keystream words [8 first_block, 8 (first_block + blocks)) of (seed, stream, domain).
// Error(Backend) past the 2^32 blocks of one stream.
void keystream_words(const Seed& seed, uint64_t stream, uint32_t domain, uint64_t first_block, size_t blocks,
                     uint64_t* words);

// n samples of d from (seed, stream): ternary {-1, 0, 1} each with probability 1/3,
// or centered binomial k = 21 (sigma ~ 3.24, constant time). n: a multiple of 8.
void sample_signed(const Seed& seed, uint64_t stream, SignedDistribution d, int64_t* out, size_t n);

// Residues uniform below each limb's prime of basis b, limb-major, from (seed, stream);
// limbs in parallel (OpenMP) when large.
void sample_uniform(const Seed& seed, uint64_t stream, const RnsTables& t, Basis b, uint64_t* out);

}  // namespace veil::sampling
