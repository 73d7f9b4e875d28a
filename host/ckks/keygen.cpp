#include "veil/keygen.hpp"

#include "arith/sampling.hpp"
#include "veil/error.hpp"

namespace veil {

namespace {

uint64_t galois_inverse(uint64_t g, uint64_t n) {
  // The odd residues mod 2N form a group of order N: g^-1 = g^(N-1).
  uint64_t result = 1, base = g, e = n - 1, mod = 2 * n;
  while (e) {
    if (e & 1) result = (result * base) % mod;
    base = (base * base) % mod;
    e >>= 1;
  }
  return result;
}

}  // namespace

KeyGenerator::KeyGenerator(ContextPtr ctx) : KeyGenerator(std::move(ctx), RandomSource::os()) {}

KeyGenerator::KeyGenerator(ContextPtr ctx, RandomSource random)
    : ctx_(std::move(ctx)), random_(std::move(random)) {
  require(ctx_ != nullptr, ErrorCode::InvalidArgument, "null context");
  const auto& t = ctx_->tables();
  const Basis qp{t.max_level + 1, true};
  sk_ = SecretKey(ctx_);
  const sampling::SecretSeed seed{random_.next_seed()};
  ctx_->backend().sample_signed(qp, sk_.data(), SignedDistribution::Ternary, seed.value, 0);
  ctx_->backend().ntt_forward(qp, sk_.data());
}

KeyGenerator::KeyGenerator(ContextPtr ctx, const SecretKey& sk, RandomSource random)
    : ctx_(std::move(ctx)), random_(std::move(random)), sk_(sk) {
  require(ctx_ != nullptr && !sk.empty() && sk.context()->id() == ctx_->id(), ErrorCode::ContextMismatch,
          "secret key belongs to a different context");
}

PublicKey KeyGenerator::create_public_key() {
  const auto& t = ctx_->tables();
  const Basis q{t.max_level + 1, true};  // Q_L u P
  Backend& be = ctx_->backend();
  PublicKey pk(ctx_);
  Seed seed = random_.next_seed();
  pk.set_a_seed(seed);
  be.sample_uniform(q, pk.poly(1), seed, 0);  // uniform is uniform in NTT form too
  const sampling::SecretSeed error_seed{random_.next_seed()};
  be.sample_signed(q, pk.poly(0), SignedDistribution::CenteredBinomial, error_seed.value, 0);
  be.ntt_forward(q, pk.poly(0));
  Buffer as = ctx_->allocate(q, 1, /*secret=*/true);  // a s with public a reveals s
  be.multiply(q, as.data(), pk.poly(1), sk_.data());
  be.sub(q, pk.poly(0), pk.poly(0), as.data());  // b = e - a s
  return pk;
}

SwitchingKey KeyGenerator::create_switching_key(const uint64_t* from, const uint64_t* to) {
  const auto& t = ctx_->tables();
  const auto& params = ctx_->params();
  const Basis qp{t.max_level + 1, true};
  const size_t words = ctx_->words(qp);
  Backend& be = ctx_->backend();
  SwitchingKey key(ctx_);
  Seed seed = random_.next_seed();
  key.set_a_seed(seed);
  const std::vector<uint64_t>& p_mod = t.mod_down.p_mod_q;  // [P]_{q_i} per Q limb
  const sampling::SecretSeed error_seed{random_.next_seed()};
  Buffer tmp = ctx_->allocate(qp, 1, true);
  for (uint32_t j = 0; j < params.dnum(); ++j) {
    uint64_t* b = key.data() + (2 * j) * words;
    uint64_t* a = b + words;
    be.sample_uniform(qp, a, seed, j);
    be.sample_signed(qp, b, SignedDistribution::CenteredBinomial, error_seed.value, j);
    be.ntt_forward(qp, b);
    be.multiply(qp, tmp.data(), a, to);
    be.sub(qp, b, b, tmp.data());  // b = e - a s_to
    // + P * from on the limbs of digit j only (the RNS gadget; 0 on the P limbs: P = 0 mod p_k).
    std::vector<uint64_t> gadget(t.limbs(qp), 0);
    for (uint32_t i = j * t.alpha; i < std::min((j + 1) * t.alpha, t.max_level + 1); ++i) gadget[i] = p_mod[i];
    be.multiply_scalar(qp, tmp.data(), from, gadget.data());
    be.add(qp, b, b, tmp.data());
  }
  return key;
}

RelinKey KeyGenerator::create_relin_key() {
  const Basis qp{ctx_->max_level() + 1, true};
  Buffer s2 = ctx_->allocate(qp, 1, true);
  ctx_->backend().multiply(qp, s2.data(), sk_.data(), sk_.data());
  RelinKey rk;
  rk.key = create_switching_key(s2.data(), sk_.data());
  return rk;
}

SwitchingKey KeyGenerator::create_galois_key(uint64_t galois_elt) {
  const uint64_t n = ctx_->n();
  require((galois_elt & 1) && galois_elt < 2 * n && galois_elt != 1, ErrorCode::InvalidArgument,
          "Galois element must be odd, in (1, 2N)");
  // Rotation key-switches first and permutes after, so the key encrypts s under
  // sigma_g^-1(s).
  const Basis qp{ctx_->max_level() + 1, true};
  Buffer rotated = ctx_->allocate(qp, 1, true);
  ctx_->backend().automorphism_ntt(qp, rotated.data(), sk_.data(), galois_inverse(galois_elt, n));
  return create_switching_key(sk_.data(), rotated.data());
}

GaloisKeys KeyGenerator::create_galois_keys(const std::vector<int64_t>& steps, bool conjugation) {
  const int64_t slots = static_cast<int64_t>(ctx_->params().slots());
  std::vector<int64_t> wanted = steps;
  if (wanted.empty()) {
    for (int64_t s = 1; s < slots; s <<= 1) {
      wanted.push_back(s);
      wanted.push_back(-s);
    }
  }
  GaloisKeys gk;
  for (int64_t step : wanted) {
    uint64_t g = galois_element_for_step(*ctx_, step);
    if (g == 1 || gk.has(g)) continue;
    gk.keys.emplace(g, create_galois_key(g));
  }
  if (conjugation) {
    uint64_t g = galois_element_conjugate(*ctx_);
    gk.keys.emplace(g, create_galois_key(g));
  }
  return gk;
}

}  // namespace veil
