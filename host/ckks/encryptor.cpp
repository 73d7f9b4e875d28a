#include "veil/encryptor.hpp"

#include "arith/sampling.hpp"
#include "veil/error.hpp"

namespace veil {

namespace {
void check_same(const ContextPtr& ctx, const ContextPtr& other, const char* what) {
  require(ctx != nullptr, ErrorCode::InvalidArgument, "null context");
  require(other != nullptr && other->id() == ctx->id(), ErrorCode::ContextMismatch,
          std::string(what) + " belongs to a different context");
}

// dst (basis b, NTT form) = a fresh centered-binomial error from (seed, stream).
void sample_error(const Context& ctx, const Seed& seed, uint64_t stream, Basis b, uint64_t* dst) {
  ctx.backend().sample_signed(b, dst, SignedDistribution::CenteredBinomial, seed, stream);
  ctx.backend().ntt_forward(b, dst);
}
}  // namespace

Encryptor::Encryptor(ContextPtr ctx, const PublicKey& pk) : Encryptor(ctx, pk, RandomSource::os()) {}
Encryptor::Encryptor(ContextPtr ctx, const SecretKey& sk) : Encryptor(ctx, sk, RandomSource::os()) {}

Encryptor::Encryptor(ContextPtr ctx, const PublicKey& pk, RandomSource random)
    : ctx_(std::move(ctx)), pk_(pk), random_(std::move(random)) {
  check_same(ctx_, pk.context(), "public key");
}

Encryptor::Encryptor(ContextPtr ctx, const SecretKey& sk, RandomSource random)
    : ctx_(std::move(ctx)), sk_(sk), random_(std::move(random)) {
  check_same(ctx_, sk.context(), "secret key");
}

Ciphertext Encryptor::encrypt_zero(uint32_t level, double scale) {
  require(level <= ctx_->max_level(), ErrorCode::LevelMismatch, "encryption level above the top level");
  const auto& t = ctx_->tables();
  const Basis b{level + 1, false};
  Backend& be = ctx_->backend();
  Ciphertext ct(ctx_, 2, level, scale);
  if (!sk_.empty()) {
    // (-a s + e, a) with a expanded from a seed.
    const Seed seed = random_.next_seed();  // public: it travels instead of c1
    be.sample_uniform(b, ct.poly(1), seed, 0);
    const sampling::SecretSeed error_seed{random_.next_seed()};
    sample_error(*ctx_, error_seed.value, 0, b, ct.poly(0));
    Buffer as = ctx_->allocate(b, 1, /*secret=*/true);  // a s with public a reveals s
    be.multiply(b, as.data(), ct.poly(1), sk_.data());
    be.sub(b, ct.poly(0), ct.poly(0), as.data());
    ct.set_c1_seed(seed);
    return ct;
  }
  // ((v b + e0) / P, (v a + e1) / P) computed over Q_l u P, v ternary: the
  // division by P (ModDown) shrinks the noise to rounding size.
  // One seed: stream 0 draws v, streams 1 and 2 the errors e0 and e1.
  const Basis qp{level + 1, true};
  const sampling::SecretSeed seed{random_.next_seed()};
  Buffer v_buf = ctx_->allocate(qp, 1, true);
  be.sample_signed(qp, v_buf.data(), SignedDistribution::Ternary, seed.value, 0);
  be.ntt_forward(qp, v_buf.data());
  // acc holds v * pk + e: ephemeral randomness that would reveal m, so it is wiped.
  Buffer key_part = ctx_->allocate(qp), acc = ctx_->allocate(qp, 1, /*secret=*/true);
  const size_t q_words = ctx_->words(b), p_words = ctx_->words(Basis{0, true});
  for (uint32_t i = 0; i < 2; ++i) {
    // pk is over Q_L u P: gather its Q_l and P limbs.
    be.copy(key_part.data(), pk_.poly(i), q_words);
    be.copy(key_part.data() + q_words, pk_.poly(i) + ctx_->words(Basis{t.max_level + 1, false}), p_words);
    sample_error(*ctx_, seed.value, 1 + i, qp, acc.data());
    be.multiply_accumulate(qp, acc.data(), v_buf.data(), key_part.data());
    be.mod_down(level, ct.poly(i), acc.data());
  }
  return ct;
}

Ciphertext Encryptor::encrypt(const Plaintext& pt) {
  check_same(ctx_, pt.context(), "plaintext");
  Ciphertext ct = encrypt_zero(pt.level(), pt.scale());
  ctx_->backend().add(Basis{pt.level() + 1, false}, ct.poly(0), ct.poly(0), pt.data());
  return ct;
}

Decryptor::Decryptor(ContextPtr ctx, const SecretKey& sk) : ctx_(std::move(ctx)), sk_(sk) {
  check_same(ctx_, sk.context(), "secret key");
}

Plaintext Decryptor::decrypt(const Ciphertext& ct) const {
  check_same(ctx_, ct.context(), "ciphertext");
  const Basis b{ct.level() + 1, false};
  Backend& be = ctx_->backend();
  Plaintext pt(ctx_, ct.level(), ct.scale());
  // Horner: ((c_{k-1} s + c_{k-2}) s + ...) + c_0
  be.copy(pt.data(), ct.poly(ct.size() - 1), ct.poly_words());
  for (int i = static_cast<int>(ct.size()) - 2; i >= 0; --i) {
    be.multiply(b, pt.data(), pt.data(), sk_.data());
    be.add(b, pt.data(), pt.data(), ct.poly(i));
  }
  return pt;
}

Plaintext Decryptor::decrypt_flooded(const Ciphertext& ct, int flood_bits, RandomSource& random) const {
  require(flood_bits >= 1 && flood_bits <= 62, ErrorCode::InvalidArgument, "flood_bits must be in [1, 62]");
  Plaintext pt = decrypt(ct);
  const auto& t = ctx_->tables();
  const Basis b{ct.level() + 1, false};
  Prng prng(random.next_seed());
  // Uniform in [-2^flood_bits, 2^flood_bits] by rejection from flood_bits+2 random bits.
  const uint64_t bound = uint64_t{1} << flood_bits, range = 2 * bound + 1;
  const uint64_t mask = (flood_bits >= 62) ? ~uint64_t{0} >> 1 : (uint64_t{1} << (flood_bits + 2)) - 1;
  sampling::SecretVector<int64_t> e(t.n);
  for (size_t i = 0; i < t.n;) {
    uint64_t r = prng.next_u64() & mask;
    if (r < range) e[i++] = static_cast<int64_t>(r) - static_cast<int64_t>(bound);
  }
  Buffer noise = ctx_->allocate(b);
  ctx_->backend().upload_signed(b, noise.data(), e.data());
  ctx_->backend().ntt_forward(b, noise.data());
  ctx_->backend().add(b, pt.data(), pt.data(), noise.data());
  return pt;
}

}  // namespace veil
