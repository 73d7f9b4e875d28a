// Constructors of the data-holding objects (plaintexts, ciphertexts, their extended
// forms, keys).
#include "veil/ciphertext.hpp"
#include "veil/error.hpp"
#include "veil/extended.hpp"
#include "veil/keys.hpp"

#include <string>

namespace veil {

namespace {
const ContextPtr& checked(const ContextPtr& ctx) {
  require(ctx != nullptr, ErrorCode::InvalidArgument, "null context");
  return ctx;
}
}  // namespace

Plaintext::Plaintext(ContextPtr ctx, uint32_t level, double scale)
    : ctx_(std::move(ctx)), level_(level), scale_(scale) {
  checked(ctx_);
  require(level <= ctx_->max_level(), ErrorCode::LevelMismatch, "plaintext level above the top level");
  buf_ = ctx_->allocate(Basis{level + 1, false});
}

Ciphertext::Ciphertext(ContextPtr ctx, uint32_t size, uint32_t level, double scale, bool zero)
    : ctx_(std::move(ctx)), size_(size), level_(level), scale_(scale) {
  checked(ctx_);
  require(level <= ctx_->max_level(), ErrorCode::LevelMismatch, "ciphertext level above the top level");
  require(size >= 2 && size <= 3, ErrorCode::InvalidArgument, "ciphertext size must be 2 or 3");
  buf_ = zero ? ctx_->allocate(Basis{level + 1, false}, size) : ctx_->allocate_scratch(Basis{level + 1, false}, size);
}

size_t Ciphertext::poly_words() const { return static_cast<size_t>(level_ + 1) * ctx_->n(); }

ExtendedPlaintext::ExtendedPlaintext(ContextPtr ctx, uint32_t level, double scale)
    : ctx_(std::move(ctx)), level_(level), scale_(scale) {
  checked(ctx_);
  require(level <= ctx_->max_level(), ErrorCode::LevelMismatch, "plaintext level above the top level");
  buf_ = ctx_->allocate(basis());
}

ExtendedCiphertext::ExtendedCiphertext(ContextPtr ctx, uint32_t level, double scale, bool zero)
    : ctx_(std::move(ctx)), level_(level), scale_(scale) {
  checked(ctx_);
  require(level <= ctx_->max_level(), ErrorCode::LevelMismatch, "ciphertext level above the top level");
  buf_ = zero ? ctx_->allocate(basis(), 2) : ctx_->allocate_scratch(basis(), 2);
}

size_t ExtendedCiphertext::poly_words() const { return ctx_->words(basis()); }

SecretKey::SecretKey(ContextPtr ctx) : ctx_(std::move(ctx)) {
  checked(ctx_);
  buf_ = ctx_->allocate(Basis{ctx_->max_level() + 1, true}, 1, /*secret=*/true);
}

PublicKey::PublicKey(ContextPtr ctx) : ctx_(std::move(ctx)) {
  checked(ctx_);
  buf_ = ctx_->allocate(Basis{ctx_->max_level() + 1, true}, 2);
}
size_t PublicKey::poly_words() const { return ctx_->words(Basis{ctx_->max_level() + 1, true}); }

SwitchingKey::SwitchingKey(ContextPtr ctx) : ctx_(std::move(ctx)) {
  checked(ctx_);
  buf_ = ctx_->allocate(Basis{ctx_->max_level() + 1, true}, 2 * ctx_->params().dnum());
}
size_t SwitchingKey::poly_words() const {
  return ctx_->words(Basis{ctx_->max_level() + 1, true});
}

namespace {
// The target context for Object::to(): same parameters, any backend.
const ContextPtr& transfer_target(const ContextPtr& from, const ContextPtr& to, const char* what) {
  require(from != nullptr, ErrorCode::InvalidArgument, std::string("cannot copy an empty ") + what);
  require(to != nullptr, ErrorCode::InvalidArgument, std::string(what) + "::to: null target context");
  require(to->params().fingerprint() == from->params().fingerprint(), ErrorCode::ContextMismatch,
          std::string(what) + "::to: the target context has different parameters");
  return to;
}
}  // namespace

Plaintext Plaintext::to(const ContextPtr& target) const {
  Plaintext out;
  out.ctx_ = transfer_target(ctx_, target, "Plaintext");
  out.buf_ = buf_.copy_to(target->backend_ptr());
  out.level_ = level_;
  out.scale_ = scale_;
  return out;
}

Ciphertext Ciphertext::to(const ContextPtr& target) const {
  Ciphertext out;
  out.ctx_ = transfer_target(ctx_, target, "Ciphertext");
  out.buf_ = buf_.copy_to(target->backend_ptr());
  out.size_ = size_;
  out.level_ = level_;
  out.scale_ = scale_;
  out.c1_seed_ = c1_seed_;
  return out;
}

SecretKey SecretKey::to(const ContextPtr& target) const {
  SecretKey out;
  out.ctx_ = transfer_target(ctx_, target, "SecretKey");
  out.buf_ = buf_.copy_to(target->backend_ptr());  // stays a wiped-on-release buffer
  return out;
}

PublicKey PublicKey::to(const ContextPtr& target) const {
  PublicKey out;
  out.ctx_ = transfer_target(ctx_, target, "PublicKey");
  out.buf_ = buf_.copy_to(target->backend_ptr());
  out.a_seed_ = a_seed_;
  return out;
}

SwitchingKey SwitchingKey::to(const ContextPtr& target) const {
  SwitchingKey out;
  out.ctx_ = transfer_target(ctx_, target, "SwitchingKey");
  out.buf_ = buf_.copy_to(target->backend_ptr());
  out.a_seed_ = a_seed_;
  return out;
}

GaloisKeys GaloisKeys::to(const ContextPtr& target) const {
  GaloisKeys out;
  for (const auto& [g, key] : keys) out.keys.emplace(g, key.to(target));
  return out;
}

uint64_t galois_element_for_step(const Context& ctx, int64_t step) {
  const uint64_t slots = ctx.params().slots(), two_n = 2 * ctx.n();
  int64_t s = step % static_cast<int64_t>(slots);
  if (s < 0) s += static_cast<int64_t>(slots);
  uint64_t g = 1, base = 5, e = static_cast<uint64_t>(s);
  while (e) {  // 5^s mod 2N
    if (e & 1) g = (g * base) % two_n;
    base = (base * base) % two_n;
    e >>= 1;
  }
  return g;
}

uint64_t galois_element_conjugate(const Context& ctx) { return 2 * ctx.n() - 1; }

}  // namespace veil
