#include "arith/sampling.hpp"

#include <bit>
#include <cstring>

#include "arith/sampling_rules.hpp"
#include "veil/error.hpp"

namespace veil::sampling {

static_assert(std::endian::native == std::endian::little, "keystream words are read little-endian");

namespace {
constexpr size_t kChunkBlocks = 64;  // 4 KiB of keystream per libsodium call

void ensure_sodium() {
  static const bool ok = sodium_init() >= 0;
  require(ok, ErrorCode::Backend, "libsodium failed to initialise");
}

// One replacement word (replacement domain, word index w).
uint64_t replacement_word(const Seed& seed, uint64_t stream, uint64_t w) {
  uint64_t block[kWordsPerBlock];
  keystream_words(seed, stream, kReplacementDomain, w / kWordsPerBlock, 1, block);
  const uint64_t out = block[w % kWordsPerBlock];
  sodium_memzero(block, sizeof block);
  return out;
}
}  // namespace

void keystream_words(const Seed& seed, uint64_t stream, uint32_t domain, uint64_t first_block, size_t blocks,
                     uint64_t* words) {
  ensure_sodium();
  require(first_block + blocks <= (uint64_t{1} << 32), ErrorCode::Backend,
          "sampling: more than 2^32 ChaCha20 blocks asked of one stream");
  unsigned char nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
  static_assert(sizeof nonce == 12);
  std::memcpy(nonce, &stream, 8);
  std::memcpy(nonce + 8, &domain, 4);
  std::memset(words, 0, blocks * 64);
  auto* bytes = reinterpret_cast<unsigned char*>(words);
  crypto_stream_chacha20_ietf_xor_ic(bytes, bytes, blocks * 64, nonce, static_cast<uint32_t>(first_block),
                                     seed.data());
}

void sample_signed(const Seed& seed, uint64_t stream, SignedDistribution d, int64_t* out, size_t n) {
  require(n % kWordsPerBlock == 0, ErrorCode::InvalidArgument, "sample_signed: n must be a multiple of 8");
  uint64_t buf[kChunkBlocks * kWordsPerBlock];
  for (size_t first = 0; first < n; first += std::size(buf)) {
    const size_t words = std::min(std::size(buf), n - first);
    keystream_words(seed, stream, kPrimaryDomain, first / kWordsPerBlock, words / kWordsPerBlock, buf);
    for (size_t k = 0; k < words; ++k) {
      if (d == SignedDistribution::CenteredBinomial) {
        out[first + k] = centered_binomial_from_word(buf[k]);
      } else if (!ternary_from_word(buf[k], out[first + k])) {
        ternary_from_word(replacement_word(seed, stream, first + k), out[first + k]);
      }
    }
  }
  sodium_memzero(buf, sizeof buf);
}

void sample_uniform(const Seed& seed, uint64_t stream, const RnsTables& t, Basis b, uint64_t* out) {
  const uint32_t limbs = t.limbs(b);
  const size_t n = t.n;
  require(n % 4 == 0, ErrorCode::InvalidArgument, "sample_uniform: N must be a multiple of 4");
  // Checked here: nothing may throw inside the parallel loop.
  require(2 * static_cast<uint64_t>(limbs) * n / kWordsPerBlock <= (uint64_t{1} << 32), ErrorCode::Backend,
          "sampling: more than 2^32 ChaCha20 blocks asked of one stream");
  ensure_sodium();
#pragma omp parallel for schedule(static) if (static_cast<size_t>(limbs) * n >= (size_t{1} << 16))
  for (uint32_t limb = 0; limb < limbs; ++limb) {
    const uint64_t q = t.primes[t.prime_index(b, limb)];
    uint64_t* dst = out + static_cast<size_t>(limb) * n;
    uint64_t buf[kChunkBlocks * kWordsPerBlock];
    constexpr size_t per_chunk = std::size(buf) / 2;  // residues per chunk: two words each
    for (size_t first = 0; first < n; first += per_chunk) {
      const size_t count = std::min(per_chunk, n - first);
      const uint64_t word0 = 2 * (static_cast<uint64_t>(limb) * n + first);  // a multiple of 8
      keystream_words(seed, stream, kPrimaryDomain, word0 / kWordsPerBlock, 2 * count / kWordsPerBlock, buf);
      for (size_t k = 0; k < count; ++k) {
        if (!uniform_from_words(buf[2 * k], buf[2 * k + 1], q, dst[first + k])) {
          const uint64_t w = word0 + 2 * k;
          uniform_from_words(replacement_word(seed, stream, w), replacement_word(seed, stream, w + 1), q,
                             dst[first + k]);
        }
      }
    }
    sodium_memzero(buf, sizeof buf);
  }
}

}  // namespace veil::sampling
