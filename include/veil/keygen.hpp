// Key generation (client side). Draws from an OS-seeded CSPRNG unless an
// (insecure, test-only) deterministic RandomSource is supplied.
#pragma once

#include <cstdint>
#include <vector>

#include "veil/keys.hpp"
#include "veil/random.hpp"

namespace veil {

class KeyGenerator {
 public:
  explicit KeyGenerator(ContextPtr ctx);
  KeyGenerator(ContextPtr ctx, RandomSource random);
  // Uses an existing secret key (e.g. loaded from disk).
  KeyGenerator(ContextPtr ctx, const SecretKey& sk, RandomSource random);

  const SecretKey& secret_key() const { return sk_; }
  PublicKey create_public_key();
  RelinKey create_relin_key();
  // Keys for left rotations by each step in `steps` (negative = right). With
  // no steps: every power of two, both directions. Conjugation key when asked.
  GaloisKeys create_galois_keys(const std::vector<int64_t>& steps = {}, bool conjugation = true);
  // Key for one Galois element (advanced use).
  SwitchingKey create_galois_key(uint64_t galois_elt);

 private:
  // Key for digits of a polynomial multiplied by `from`, producing a ciphertext
  // under `to` (both over Q_L u P, NTT form, on the backend).
  SwitchingKey create_switching_key(const uint64_t* from, const uint64_t* to);
  ContextPtr ctx_;
  RandomSource random_;
  SecretKey sk_;
};

}  // namespace veil
