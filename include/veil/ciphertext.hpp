// Plaintexts and ciphertexts: RNS polynomials in NTT form over Q_level,
// with the CKKS scale (a plaintext value v is stored as round(v * scale)).
#pragma once

#include <cstdint>
#include <optional>

#include "veil/backend.hpp"
#include "veil/context.hpp"
#include "veil/random.hpp"

namespace veil {

// An encoded message: one polynomial over Q_level, NTT form.
class Plaintext {
 public:
  Plaintext() = default;
  Plaintext(ContextPtr ctx, uint32_t level, double scale);

  const ContextPtr& context() const { return ctx_; }
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }
  void set_scale(double scale) { scale_ = scale; }
  uint32_t limbs() const { return level_ + 1; }
  uint64_t* data() { return buf_.data(); }
  const uint64_t* data() const { return buf_.data(); }
  bool empty() const { return !ctx_; }
  // A copy in `target`, a context of the same parameters on any backend (see
  // Ciphertext::to).
  Plaintext to(const ContextPtr& target) const;

 private:
  ContextPtr ctx_;
  Buffer buf_;
  uint32_t level_ = 0;
  double scale_ = 1;
};

// (c_0, ..., c_{size-1}) with sum c_i s^i = m + e over Q_level, NTT form.
// size is 2 normally, 3 after a multiplication without relinearization.
class Ciphertext {
 public:
  Ciphertext() = default;
  // Zero-filled; with zero = false the contents are unspecified (for outputs
  // that are written in full before use).
  Ciphertext(ContextPtr ctx, uint32_t size, uint32_t level, double scale, bool zero = true);

  const ContextPtr& context() const { return ctx_; }
  uint32_t size() const { return size_; }
  uint32_t level() const { return level_; }
  double scale() const { return scale_; }
  // Reinterprets the scale (no arithmetic). Use with care: the decrypted value is
  // (stored integer) / scale.
  void set_scale(double scale) { scale_ = scale; }
  uint32_t limbs() const { return level_ + 1; }
  size_t poly_words() const;
  uint64_t* poly(uint32_t i) { return buf_.data() + i * poly_words(); }
  const uint64_t* poly(uint32_t i) const { return buf_.data() + i * poly_words(); }
  bool empty() const { return !ctx_; }

  // Set by secret-key encryption: c_1 is the uniform polynomial expanded from
  // this seed, so serialization can send the seed instead of c_1.
  const std::optional<Seed>& c1_seed() const { return c1_seed_; }
  void set_c1_seed(std::optional<Seed> seed) { c1_seed_ = seed; }

  // A copy in `target`: a context with the same parameters, typically on another
  // backend (a client's cpu context -> a server's cuda context and back), so that
  // objects move between devices without serialization. Same words, level, scale
  // and seed. Throws ContextMismatch when the parameters differ (fingerprint),
  // InvalidArgument for a null target or an empty ciphertext.
  Ciphertext to(const ContextPtr& target) const;

 private:
  ContextPtr ctx_;
  Buffer buf_;
  uint32_t size_ = 0;
  uint32_t level_ = 0;
  double scale_ = 1;
  std::optional<Seed> c1_seed_;
};

}  // namespace veil
