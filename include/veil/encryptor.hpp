// Encryption (public or secret key) and decryption.
#pragma once

#include "veil/ciphertext.hpp"
#include "veil/keys.hpp"
#include "veil/random.hpp"

namespace veil {

class Encryptor {
 public:
  // Public-key encryption: ct = (v b + e0 + m, v a + e1), v ternary.
  Encryptor(ContextPtr ctx, const PublicKey& pk);
  // Secret-key (symmetric) encryption: ct = (-a s + e + m, a); a is expanded
  // from a seed so the ciphertext serializes at half size.
  Encryptor(ContextPtr ctx, const SecretKey& sk);
  Encryptor(ContextPtr ctx, const PublicKey& pk, RandomSource random);
  Encryptor(ContextPtr ctx, const SecretKey& sk, RandomSource random);

  Ciphertext encrypt(const Plaintext& pt);
  Ciphertext encrypt_zero(uint32_t level, double scale);

 private:
  ContextPtr ctx_;
  PublicKey pk_;  // copies: the encryptor outlives nothing it was given
  SecretKey sk_;
  RandomSource random_;
};

class Decryptor {
 public:
  Decryptor(ContextPtr ctx, const SecretKey& sk);
  // m = sum c_i s^i over Q_level.
  Plaintext decrypt(const Ciphertext& ct) const;
  // Decryption for results that are shared with another party: adds fresh
  // noise of about 2^flood_bits (uniform in [-2^flood_bits, 2^flood_bits]) to
  // every coefficient so the output does not leak the secret key through the
  // ciphertext noise (IND-CPA-D, Li-Micciancio 2021). Choose flood_bits at
  // least ~30 bits above the ciphertext noise; precision drops accordingly.
  Plaintext decrypt_flooded(const Ciphertext& ct, int flood_bits, RandomSource& random) const;

 private:
  ContextPtr ctx_;
  SecretKey sk_;
};

}  // namespace veil
