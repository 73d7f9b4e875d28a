#include "veil/random.hpp"

#include <sodium.h>

#include <cstring>

#include "veil/error.hpp"

namespace veil {

namespace {
void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  require(ok, ErrorCode::Backend, "libsodium failed to initialise");
}
}  // namespace

Prng::Prng(const Seed& seed, uint64_t stream) : key_(seed), stream_(stream) { ensure_sodium(); }

Prng::~Prng() {
  sodium_memzero(key_.data(), key_.size());
  sodium_memzero(block_, sizeof block_);
}

// ChaCha20 (IETF: 96-bit nonce, 32-bit block counter): the nonce carries the
// stream id, the counter advances 64 blocks per refill.
void Prng::refill() {
  unsigned char nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
  std::memcpy(nonce, &stream_, sizeof stream_);
  require(counter_ <= UINT32_MAX - sizeof(block_) / 64, ErrorCode::Backend, "Prng stream exhausted");
  std::memset(block_, 0, sizeof block_);
  crypto_stream_chacha20_ietf_xor_ic(block_, block_, sizeof block_, nonce, counter_, key_.data());
  counter_ += sizeof(block_) / 64;
  pos_ = 0;
}

void Prng::fill(void* out, size_t bytes) {
  auto* dst = static_cast<uint8_t*>(out);
  while (bytes) {
    if (pos_ == sizeof block_) refill();
    size_t take = std::min(bytes, sizeof block_ - pos_);
    std::memcpy(dst, block_ + pos_, take);
    pos_ += take;
    dst += take;
    bytes -= take;
  }
}

uint64_t Prng::next_u64() {
  uint64_t v;
  fill(&v, sizeof v);
  return v;
}

RandomSource RandomSource::os() {
  ensure_sodium();
  Seed master;
  randombytes_buf(master.data(), master.size());
  return RandomSource(master, false);
}

RandomSource RandomSource::insecure_deterministic(uint64_t seed) {
  Seed master{};
  std::memcpy(master.data(), &seed, sizeof seed);
  const char tag[] = "veil-insecure-test-seed";
  std::memcpy(master.data() + 8, tag, std::min(sizeof tag, master.size() - 8));
  return RandomSource(master, true);
}

Seed RandomSource::next_seed() {
  Seed out;
  if (!deterministic_) {
    randombytes_buf(out.data(), out.size());
  } else {
    Prng prng(master_, counter_++);
    prng.fill(out.data(), out.size());
  }
  return out;
}

}  // namespace veil
