// Randomness. All secret material and every encryption draws from a
// ChaCha20 stream (libsodium) keyed by a 256-bit seed. RandomSource::os()
// seeds from the operating system's CSPRNG; insecure_deterministic() exists
// only so tests can reproduce results (e.g. CPU vs GPU bit-exactness).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace veil {

using Seed = std::array<uint8_t, 32>;

// Deterministic ChaCha20 keystream expander: same seed, same bytes.
class Prng {
 public:
  explicit Prng(const Seed& seed, uint64_t stream = 0);
  ~Prng();
  Prng(const Prng&) = delete;
  Prng& operator=(const Prng&) = delete;
  void fill(void* out, size_t bytes);
  uint64_t next_u64();

 private:
  void refill();
  Seed key_;
  uint64_t stream_;
  uint32_t counter_ = 0;
  uint8_t block_[4096];
  size_t pos_ = sizeof(block_);
};

// Hands out fresh seeds for independent streams.
class RandomSource {
 public:
  // Seeded from the OS CSPRNG (libsodium randombytes).
  static RandomSource os();
  // INSECURE: reproducible stream for tests only; never use for real keys.
  static RandomSource insecure_deterministic(uint64_t seed);

  Seed next_seed();
  bool is_deterministic() const { return deterministic_; }

 private:
  RandomSource(const Seed& master, bool deterministic) : master_(master), deterministic_(deterministic) {}
  Seed master_;
  uint64_t counter_ = 0;
  bool deterministic_;
};

}  // namespace veil
