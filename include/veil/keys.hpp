// Keys. The secret key never leaves the client: evaluation keys (public,
// relinearization, Galois) are what a server receives.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "veil/backend.hpp"
#include "veil/context.hpp"
#include "veil/random.hpp"

namespace veil {

// Uniform ternary secret s in {-1,0,1}^N, stored over Q_L u P in NTT form.
// Its memory is wiped on destruction.
class SecretKey {
 public:
  SecretKey() = default;
  explicit SecretKey(ContextPtr ctx);
  const ContextPtr& context() const { return ctx_; }
  uint64_t* data() { return buf_.data(); }
  const uint64_t* data() const { return buf_.data(); }
  bool empty() const { return !ctx_; }
  // A copy in another context of the same parameters (Ciphertext::to), for a client
  // that keeps its secret key on its own GPU. Device and host copies are wiped.
  SecretKey to(const ContextPtr& target) const;

 private:
  ContextPtr ctx_;
  Buffer buf_;
};

// (b, a) = (-a s + e, a) over Q_L u P, NTT form. Encryption works over
// Q_l u P and divides by P at the end, so fresh noise is mostly rounding.
class PublicKey {
 public:
  PublicKey() = default;
  explicit PublicKey(ContextPtr ctx);
  const ContextPtr& context() const { return ctx_; }
  uint64_t* poly(uint32_t i) { return buf_.data() + i * poly_words(); }
  const uint64_t* poly(uint32_t i) const { return buf_.data() + i * poly_words(); }
  size_t poly_words() const;
  bool empty() const { return !ctx_; }
  const std::optional<Seed>& a_seed() const { return a_seed_; }
  void set_a_seed(std::optional<Seed> s) { a_seed_ = s; }
  // A copy in another context of the same parameters (Ciphertext::to).
  PublicKey to(const ContextPtr& target) const;

 private:
  ContextPtr ctx_;
  Buffer buf_;
  std::optional<Seed> a_seed_;
};

// Hybrid key-switching key from s' to s: for each digit j < dnum,
// (b_j, a_j) over Q_L u P with b_j = -a_j s + e_j + [P]_{q_i} s' on the
// limbs q_i of digit j. Layout [dnum][2][Q_L u P][N], NTT form.
class SwitchingKey {
 public:
  SwitchingKey() = default;
  explicit SwitchingKey(ContextPtr ctx);
  const ContextPtr& context() const { return ctx_; }
  uint64_t* data() { return buf_.data(); }
  const uint64_t* data() const { return buf_.data(); }
  size_t poly_words() const;
  size_t words() const { return buf_.words(); }
  bool empty() const { return !ctx_; }
  // All a_j are expanded from this seed (stream j) when present.
  const std::optional<Seed>& a_seed() const { return a_seed_; }
  void set_a_seed(std::optional<Seed> s) { a_seed_ = s; }
  // A copy in another context of the same parameters (Ciphertext::to).
  SwitchingKey to(const ContextPtr& target) const;

 private:
  ContextPtr ctx_;
  Buffer buf_;
  std::optional<Seed> a_seed_;
};

// Switches s^2 -> s after a ciphertext multiplication.
class RelinKey {
 public:
  SwitchingKey key;
  RelinKey to(const ContextPtr& target) const { return RelinKey{key.to(target)}; }
};

// Switching keys for automorphisms X -> X^g, indexed by Galois element g.
class GaloisKeys {
 public:
  bool has(uint64_t galois_elt) const { return keys.count(galois_elt) != 0; }
  // Every key copied into another context of the same parameters (Ciphertext::to).
  GaloisKeys to(const ContextPtr& target) const;
  std::map<uint64_t, SwitchingKey> keys;
};

// Galois element for a left rotation by `step` slots (negative: right): 5^step mod 2N.
uint64_t galois_element_for_step(const Context& ctx, int64_t step);
// Galois element for complex conjugation: 2N - 1.
uint64_t galois_element_conjugate(const Context& ctx);

}  // namespace veil
