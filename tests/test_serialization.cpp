// Serialization: round trips of every object type, seed compression, blob
// sizes, bit packing, and rejection of truncated, corrupted, crafted and
// oversized blobs.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/bit_packing.hpp"
#include "io/serialization_format.hpp"
#include "veil/veil.hpp"

namespace {

using veil::Bytes;
using veil::ErrorCode;
namespace fmt = veil::format;

veil::ParameterSpec small_spec() {
  veil::ParameterSpec spec;
  spec.log_n = 13;
  spec.q_bits = {50, 40, 40};
  spec.p_bits = {60};
  return spec;
}

// ---- blob surgery helpers (little-endian fields, checksum recomputed) ----

void put_u64(Bytes& b, size_t pos, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[pos + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u32(Bytes& b, size_t pos, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[pos + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u16(Bytes& b, size_t pos, uint16_t v) {
  for (int i = 0; i < 2; ++i) b[pos + i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_u64(const Bytes& b, size_t pos) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{b[pos + i]} << (8 * i);
  return v;
}
uint32_t get_u32(const Bytes& b, size_t pos) { return static_cast<uint32_t>(get_u64(b, pos) & 0xffffffffu); }

// Recomputes the payload length field and the checksum, as a forger would.
void reseal(Bytes& b) {
  ASSERT_GE(b.size(), fmt::kHeaderBytes + fmt::kChecksumBytes);
  put_u64(b, fmt::kLengthOffset, b.size() - fmt::kHeaderBytes - fmt::kChecksumBytes);
  fmt::checksum(std::span<const uint8_t>(b.data(), b.size() - fmt::kChecksumBytes),
                b.data() + b.size() - fmt::kChecksumBytes);
}

// Payload offset of a field (payload starts after the header).
constexpr size_t P(size_t offset) { return fmt::kHeaderBytes + offset; }

// ---- packed polynomials (docs/serialization.md, "Polynomials") ----

unsigned coeff_bits(uint64_t q) { return static_cast<unsigned>(std::bit_width(q - 1)); }

// Bytes of a packed polynomial whose limbs use `primes`.
size_t poly_bytes(const std::vector<uint64_t>& primes, size_t n) {
  size_t bytes = 0;
  for (uint64_t q : primes) bytes += (n * coeff_bits(q) + 7) / 8;
  return bytes;
}

// The primes of Q_level, and of Q_L u P.
std::vector<uint64_t> q_primes(const veil::Parameters& params, uint32_t level) {
  return {params.q().begin(), params.q().begin() + level + 1};
}
std::vector<uint64_t> qp_primes(const veil::Parameters& params) {
  std::vector<uint64_t> out = params.q();
  out.insert(out.end(), params.p().begin(), params.p().end());
  return out;
}

// Coefficient j of a packed limb of width w starting at byte `start`, bit by
// bit straight from the documented layout (independent of bit_packing.hpp).
uint64_t get_coeff(const Bytes& b, size_t start, unsigned w, size_t j) {
  uint64_t v = 0;
  for (unsigned k = 0; k < w; ++k) {
    const size_t bit = j * w + k;
    v |= uint64_t{(b[start + bit / 8] >> (bit % 8)) & 1u} << k;
  }
  return v;
}
void put_coeff(Bytes& b, size_t start, unsigned w, size_t j, uint64_t v) {
  for (unsigned k = 0; k < w; ++k) {
    const size_t bit = j * w + k;
    const auto mask = static_cast<uint8_t>(1u << (bit % 8));
    if ((v >> k) & 1) b[start + bit / 8] |= mask;
    else b[start + bit / 8] &= static_cast<uint8_t>(~mask);
  }
}

// Expects Error(Serialization) whose message contains `needle`.
#define EXPECT_SERIALIZATION_ERROR_WITH(stmt, needle)                                       \
  do {                                                                                     \
    try {                                                                                  \
      stmt;                                                                                \
      ADD_FAILURE() << "no exception from: " #stmt;                                        \
    } catch (const veil::Error& e) {                                                       \
      EXPECT_EQ(e.code(), ErrorCode::Serialization) << e.what();                           \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();        \
    } catch (...) {                                                                        \
      ADD_FAILURE() << "exception other than veil::Error from: " #stmt;                    \
    }                                                                                      \
  } while (0)
#define EXPECT_SERIALIZATION_ERROR(stmt) EXPECT_SERIALIZATION_ERROR_WITH(stmt, "")

// Shared keys and samples: key generation dominates the runtime.
class Serialization : public ::testing::Test {
 protected:
  struct Shared {
    veil::ContextPtr ctx;
    std::unique_ptr<veil::KeyGenerator> keygen;
    veil::PublicKey pk;
    veil::RelinKey rk;
    veil::GaloisKeys gk;
  };

  static void SetUpTestSuite() {
    shared_ = new Shared;
    shared_->ctx = veil::Context::create(veil::Parameters::create(small_spec()));
    shared_->keygen = std::make_unique<veil::KeyGenerator>(shared_->ctx,
                                                           veil::RandomSource::insecure_deterministic(1));
    shared_->pk = shared_->keygen->create_public_key();
    shared_->rk = shared_->keygen->create_relin_key();
    shared_->gk = shared_->keygen->create_galois_keys({1, 3}, false);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  const veil::ContextPtr& ctx() const { return shared_->ctx; }
  const veil::SecretKey& sk() const { return shared_->keygen->secret_key(); }
  const veil::PublicKey& pk() const { return shared_->pk; }
  const veil::RelinKey& rk() const { return shared_->rk; }
  const veil::GaloisKeys& gk() const { return shared_->gk; }

  std::vector<double> values() const {
    std::vector<double> v(ctx()->params().slots());
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.01 * static_cast<double>(i));
    return v;
  }
  veil::Plaintext encode(int level = -1) const {
    return veil::Encoder(ctx()).encode(values(), 0, level);
  }
  veil::Ciphertext encrypt_pk(uint64_t seed = 2) const {
    veil::Encryptor enc(ctx(), pk(), veil::RandomSource::insecure_deterministic(seed));
    return enc.encrypt(encode());
  }
  veil::Ciphertext encrypt_sk(int level = -1, uint64_t seed = 3) const {
    veil::Encryptor enc(ctx(), sk(), veil::RandomSource::insecure_deterministic(seed));
    return enc.encrypt(encode(level));
  }
  std::vector<double> decrypt(const veil::Ciphertext& ct) const {
    return veil::Encoder(ctx()).decode(veil::Decryptor(ctx(), sk()).decrypt(ct));
  }
  void expect_close(const std::vector<double>& got) const {
    auto want = values();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << "slot " << i;
  }

  // Raw words of a backend region.
  std::vector<uint64_t> download(const uint64_t* src, size_t words) const {
    std::vector<uint64_t> out(words);
    ctx()->backend().download(out.data(), src, words);
    return out;
  }
  std::vector<uint64_t> bits(const veil::Ciphertext& ct) const {
    return download(ct.poly(0), ct.poly_words() * ct.size());
  }
  std::vector<uint64_t> bits(const veil::SwitchingKey& k) const { return download(k.data(), k.words()); }
  std::vector<uint64_t> bits(const veil::PublicKey& k) const {
    return download(k.poly(0), 2 * k.poly_words());
  }
  std::vector<uint64_t> bits(const veil::Plaintext& pt) const {
    return download(pt.data(), ctx()->words(veil::Basis{pt.level() + 1, false}));
  }
  std::vector<uint64_t> bits(const veil::SecretKey& s) const {
    return download(s.data(), ctx()->words(veil::Basis{ctx()->max_level() + 1, true}));
  }

  // A second context with other parameters (fingerprint differs).
  static veil::ContextPtr other_context() {
    veil::ParameterSpec spec = small_spec();
    spec.q_bits = {50, 40};
    return veil::Context::create(veil::Parameters::create(spec));
  }

  static Shared* shared_;
};

Serialization::Shared* Serialization::shared_ = nullptr;

// ================================================================ round trips

TEST_F(Serialization, ParametersRoundTrip) {
  const auto& params = ctx()->params();
  Bytes blob = veil::serialize(params);
  veil::Parameters loaded = veil::deserialize_parameters(blob);
  EXPECT_EQ(loaded.fingerprint(), params.fingerprint());
  EXPECT_EQ(loaded.log_n(), params.log_n());
  EXPECT_EQ(loaded.q(), params.q());
  EXPECT_EQ(loaded.p(), params.p());
  EXPECT_EQ(loaded.default_scale(), params.default_scale());
  EXPECT_EQ(loaded.security(), params.security());
}

TEST_F(Serialization, ParametersRoundTripKeepsSecurityFlag) {
  veil::ParameterSpec spec;
  spec.log_n = 12;
  spec.q_bits = {50, 40};
  spec.p_bits = {60};  // 150 bits > 109: insecure, accepted only in testing mode
  spec.security = veil::Security::InsecureTestingOnly;
  auto params = veil::Parameters::create(spec);
  // The flag alone never lowers the security level: the caller must allow it.
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_parameters(veil::serialize(params)), "insecure");
  veil::SerializationLimits allow;
  allow.allow_insecure_parameters = true;
  veil::Parameters loaded = veil::deserialize_parameters(veil::serialize(params), allow);
  EXPECT_EQ(loaded.security(), veil::Security::InsecureTestingOnly);
  EXPECT_EQ(loaded.fingerprint(), params.fingerprint());
  // A secure blob whose flag is flipped to insecure is refused too (and its fingerprint differs).
  veil::Bytes flipped = veil::serialize(ctx()->params());
  flipped[P(4)] = 1;
  reseal(flipped);
  EXPECT_SERIALIZATION_ERROR(veil::deserialize_parameters(flipped));
}

TEST_F(Serialization, PublicKeyCiphertextRoundTrip) {
  veil::Ciphertext ct = encrypt_pk();
  EXPECT_FALSE(ct.c1_seed().has_value());
  Bytes blob = veil::serialize(ct);
  EXPECT_EQ(blob.size(), veil::serialize(ct, false).size());  // nothing to compress
  veil::Ciphertext loaded = veil::deserialize_ciphertext(ctx(), blob);
  EXPECT_EQ(loaded.size(), ct.size());
  EXPECT_EQ(loaded.level(), ct.level());
  EXPECT_EQ(loaded.scale(), ct.scale());
  EXPECT_EQ(bits(loaded), bits(ct));
  expect_close(decrypt(loaded));
}

TEST_F(Serialization, SizeThreeCiphertextRoundTrip) {
  veil::Evaluator ev(ctx());
  veil::Ciphertext ct = ev.multiply_no_relin(encrypt_pk(), encrypt_pk(5));
  ASSERT_EQ(ct.size(), 3u);
  veil::Ciphertext loaded = veil::deserialize_ciphertext(ctx(), veil::serialize(ct));
  EXPECT_EQ(loaded.size(), 3u);
  EXPECT_EQ(loaded.scale(), ct.scale());
  EXPECT_EQ(bits(loaded), bits(ct));
}

TEST_F(Serialization, SeedCompressedCiphertextIsHalfSizeAndLoadsIdentically) {
  veil::Ciphertext ct = encrypt_sk();
  ASSERT_TRUE(ct.c1_seed().has_value());
  Bytes small = veil::serialize(ct, true);
  Bytes full = veil::serialize(ct, false);
  const double ratio = static_cast<double>(small.size()) / static_cast<double>(full.size());
  EXPECT_NEAR(ratio, 0.5, 0.01);
  veil::Ciphertext a = veil::deserialize_ciphertext(ctx(), small);
  veil::Ciphertext b = veil::deserialize_ciphertext(ctx(), full);
  EXPECT_EQ(bits(a), bits(ct));
  EXPECT_EQ(bits(b), bits(ct));
  ASSERT_TRUE(a.c1_seed().has_value());
  EXPECT_EQ(*a.c1_seed(), *ct.c1_seed());
  EXPECT_EQ(veil::serialize(a, true), small);  // reloaded ciphertexts compress again
  expect_close(decrypt(a));
}

TEST_F(Serialization, SeedCompressionAtLowerLevel) {
  veil::Ciphertext ct = encrypt_sk(/*level=*/1);
  Bytes small = veil::serialize(ct, true);
  EXPECT_LT(small.size(), veil::serialize(ct, false).size() * 6 / 10);
  veil::Ciphertext loaded = veil::deserialize_ciphertext(ctx(), small);
  EXPECT_EQ(loaded.level(), 1u);
  EXPECT_EQ(bits(loaded), bits(ct));
}

TEST_F(Serialization, EvaluatorOpThatKeepsC1StillCompresses) {
  veil::Evaluator ev(ctx());
  // add_plain changes c0 only and keeps the seed.
  veil::Ciphertext ct = ev.add_plain(encrypt_sk(), encode());
  ASSERT_TRUE(ct.c1_seed().has_value());
  Bytes small = veil::serialize(ct, true);
  EXPECT_LT(small.size(), veil::serialize(ct, false).size() * 6 / 10);
  veil::Ciphertext loaded = veil::deserialize_ciphertext(ctx(), small);
  EXPECT_EQ(bits(loaded), bits(ct));
}

TEST_F(Serialization, ChangedC1FallsBackToFullForm) {
  veil::Ciphertext ct = encrypt_sk();
  const Bytes full_size_ref = veil::serialize(ct, false);
  // An operation that changes c1 but (wrongly) keeps the seed: the stale seed must not be sent.
  const veil::Basis b{ct.level() + 1, false};
  ctx()->backend().add(b, ct.poly(1), ct.poly(1), ct.poly(1));
  ASSERT_TRUE(ct.c1_seed().has_value());
  Bytes blob = veil::serialize(ct, true);
  EXPECT_EQ(blob.size(), full_size_ref.size());
  veil::Ciphertext loaded = veil::deserialize_ciphertext(ctx(), blob);
  EXPECT_EQ(bits(loaded), bits(ct));
  EXPECT_FALSE(loaded.c1_seed().has_value());
}

TEST_F(Serialization, EvaluatorResultWithoutSeedUsesFullForm) {
  veil::Evaluator ev(ctx());
  veil::Ciphertext sum = ev.add(encrypt_sk(), encrypt_sk(-1, 7));
  Bytes blob = veil::serialize(sum, true);
  EXPECT_EQ(blob.size(), veil::serialize(sum, false).size());
  EXPECT_EQ(bits(veil::deserialize_ciphertext(ctx(), blob)), bits(sum));
}

TEST_F(Serialization, PlaintextRoundTrip) {
  veil::Plaintext pt = encode(1);
  veil::Plaintext loaded = veil::deserialize_plaintext(ctx(), veil::serialize(pt));
  EXPECT_EQ(loaded.level(), 1u);
  EXPECT_EQ(loaded.scale(), pt.scale());
  EXPECT_EQ(bits(loaded), bits(pt));
}

TEST_F(Serialization, PublicKeyRoundTripBothForms) {
  Bytes small = veil::serialize(pk(), true);
  Bytes full = veil::serialize(pk(), false);
  EXPECT_NEAR(static_cast<double>(small.size()) / static_cast<double>(full.size()), 0.5, 0.01);
  for (const Bytes* blob : {&small, &full}) {
    veil::PublicKey loaded = veil::deserialize_public_key(ctx(), *blob);
    EXPECT_EQ(bits(loaded), bits(pk()));
    // Same randomness, same key: bit-identical encryption.
    veil::Encryptor e1(ctx(), pk(), veil::RandomSource::insecure_deterministic(9));
    veil::Encryptor e2(ctx(), loaded, veil::RandomSource::insecure_deterministic(9));
    EXPECT_EQ(bits(e2.encrypt(encode())), bits(e1.encrypt(encode())));
  }
  EXPECT_TRUE(veil::deserialize_public_key(ctx(), small).a_seed().has_value());
}

TEST_F(Serialization, RelinKeyRoundTripRelinearizesIdentically) {
  Bytes small = veil::serialize(rk(), true);
  Bytes full = veil::serialize(rk(), false);
  EXPECT_NEAR(static_cast<double>(small.size()) / static_cast<double>(full.size()), 0.5, 0.01);
  veil::Evaluator ev(ctx());
  veil::Ciphertext ct3 = ev.multiply_no_relin(encrypt_pk(), encrypt_pk(5));
  const auto want = bits(ev.relinearize(ct3, rk()));
  for (const Bytes* blob : {&small, &full}) {
    veil::RelinKey loaded = veil::deserialize_relin_key(ctx(), *blob);
    EXPECT_EQ(bits(loaded.key), bits(rk().key));
    EXPECT_EQ(bits(ev.relinearize(ct3, loaded)), want);
  }
}

TEST_F(Serialization, GaloisKeysRoundTripRotateIdentically) {
  Bytes small = veil::serialize(gk(), true);
  Bytes full = veil::serialize(gk(), false);
  EXPECT_NEAR(static_cast<double>(small.size()) / static_cast<double>(full.size()), 0.5, 0.01);
  veil::Evaluator ev(ctx());
  veil::Ciphertext ct = encrypt_pk();
  for (const Bytes* blob : {&small, &full}) {
    veil::GaloisKeys loaded = veil::deserialize_galois_keys(ctx(), *blob);
    ASSERT_EQ(loaded.keys.size(), gk().keys.size());
    for (const auto& [g, key] : gk().keys) {
      ASSERT_TRUE(loaded.has(g));
      EXPECT_EQ(bits(loaded.keys.at(g)), bits(key));
    }
    EXPECT_EQ(bits(ev.rotate(ct, 1, loaded)), bits(ev.rotate(ct, 1, gk())));
    EXPECT_EQ(bits(ev.rotate(ct, 3, loaded)), bits(ev.rotate(ct, 3, gk())));
  }
}

TEST_F(Serialization, SecretKeyRoundTripDecryptsIdentically) {
  Bytes blob = veil::serialize_secret_key(sk());
  veil::SecretKey loaded = veil::deserialize_secret_key(ctx(), blob);
  EXPECT_EQ(bits(loaded), bits(sk()));
  veil::Ciphertext ct = encrypt_pk();
  EXPECT_EQ(bits(veil::Decryptor(ctx(), loaded).decrypt(ct)), bits(veil::Decryptor(ctx(), sk()).decrypt(ct)));
}

// ====================================================== sizes and bit packing

// Blob bytes of a size-`size` ciphertext at `level`: header, fields, packed polys, checksum.
size_t ciphertext_blob_bytes(const veil::Parameters& params, uint32_t size, uint32_t level, bool seeded) {
  const size_t polys = seeded ? 1 : size;
  return fmt::kHeaderBytes + 17 + polys * poly_bytes(q_primes(params, level), size_t{1} << params.log_n()) +
         (seeded ? 32 : 0) + fmt::kChecksumBytes;
}

TEST_F(Serialization, BlobSizesMatchTheFormula) {
  const auto& params = ctx()->params();
  const size_t n = ctx()->n();
  veil::Evaluator ev(ctx());
  EXPECT_EQ(veil::serialize(encrypt_pk()).size(), ciphertext_blob_bytes(params, 2, ctx()->max_level(), false));
  EXPECT_EQ(veil::serialize(encrypt_sk(1)).size(), ciphertext_blob_bytes(params, 2, 1, true));
  EXPECT_EQ(veil::serialize(encrypt_sk(1), false).size(), ciphertext_blob_bytes(params, 2, 1, false));
  EXPECT_EQ(veil::serialize(ev.multiply_no_relin(encrypt_pk(), encrypt_pk(5))).size(),
            ciphertext_blob_bytes(params, 3, ctx()->max_level(), false));
  const size_t frame = fmt::kHeaderBytes + fmt::kChecksumBytes;
  const size_t qp = poly_bytes(qp_primes(params), n);
  EXPECT_EQ(veil::serialize(encode(1)).size(), frame + 12 + poly_bytes(q_primes(params, 1), n));
  EXPECT_EQ(veil::serialize(pk(), false).size(), frame + 1 + 2 * qp);
  EXPECT_EQ(veil::serialize(pk(), true).size(), frame + 1 + qp + 32);
  EXPECT_EQ(veil::serialize(rk(), false).size(), frame + 5 + params.dnum() * 2 * qp);
  EXPECT_EQ(veil::serialize(rk(), true).size(), frame + 5 + 32 + params.dnum() * qp);
  EXPECT_EQ(veil::serialize_secret_key(sk()).size(), frame + qp);
}

// The examples quoted in docs/serialization.md.
TEST(SerializationSizes, DocumentedCiphertextExamples) {
  veil::ParameterSpec convnet;  // the primes of the ConvNet's default N = 8192 parameters
  convnet.log_n = 13;
  convnet.q_bits = {38, 27, 27, 27, 27, 27};
  convnet.p_bits = {44};
  convnet.default_scale = 0x1p27;
  auto ctx13 = veil::Context::create(veil::Parameters::create(convnet));
  veil::Ciphertext ct13(ctx13, 2, ctx13->max_level(), 0x1p27);
  EXPECT_EQ(veil::serialize(ct13).size(), ciphertext_blob_bytes(ctx13->params(), 2, ctx13->max_level(), false));
  EXPECT_EQ(veil::serialize(ct13).size(), 354361u);
  auto ctx14 = veil::Context::create(veil::Parameters::preset(14));
  veil::Ciphertext ct14(ctx14, 2, ctx14->max_level(), 0x1p40);
  EXPECT_EQ(veil::serialize(ct14).size(), 1351737u);
  // Zero coefficients load back.
  EXPECT_EQ(veil::deserialize_ciphertext(ctx14, veil::serialize(ct14)).level(), ctx14->max_level());
}

TEST(SerializationBitPacking, RoundTripsEveryWidth) {
  uint64_t state = 0x9e3779b97f4a7c15u;
  auto next = [&state] {  // splitmix64
    uint64_t z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  };
  for (unsigned w = 1; w <= 64; ++w) {
    const uint64_t mask = w == 64 ? ~uint64_t{0} : (uint64_t{1} << w) - 1;
    for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{7}, size_t{8}, size_t{65}, size_t{1000}}) {
      std::vector<uint64_t> in(n), out(n, 0xdead);
      for (auto& v : in) v = next() & mask;
      if (n) in[0] = mask;  // all ones
      Bytes packed(veil::io::packed_bytes(n, w));
      ASSERT_EQ(packed.size(), (n * w + 7) / 8);
      veil::io::pack_bits(in.data(), n, w, packed.data());
      for (size_t j = 0; j < n; ++j) ASSERT_EQ(get_coeff(packed, 0, w, j), in[j]) << "w " << w << " n " << n;
      ASSERT_TRUE(veil::io::unpack_bits(packed.data(), n, w, out.data())) << "w " << w << " n " << n;
      ASSERT_EQ(out, in) << "w " << w << " n " << n;
    }
  }
}

TEST(SerializationBitPacking, RejectsNonZeroPaddingBits) {
  // (n, w) with n * w not a multiple of 8; (3, 60) ends in a partial 7-byte word.
  const std::pair<size_t, unsigned> shapes[] = {{3, 5}, {1, 57}, {3, 60}, {5, 33}, {1, 1}};
  for (auto [n, w] : shapes) {
    const std::vector<uint64_t> in(n, w == 64 ? ~uint64_t{0} : (uint64_t{1} << w) - 1);  // all ones
    Bytes packed(veil::io::packed_bytes(n, w));
    veil::io::pack_bits(in.data(), n, w, packed.data());
    std::vector<uint64_t> out(n);
    ASSERT_TRUE(veil::io::unpack_bits(packed.data(), n, w, out.data()));
    for (size_t bit = n * w; bit < packed.size() * 8; ++bit) {
      ASSERT_EQ((packed[bit / 8] >> (bit % 8)) & 1, 0) << "padding written as zero";
      Bytes bad = packed;
      bad[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
      EXPECT_FALSE(veil::io::unpack_bits(bad.data(), n, w, out.data())) << "n " << n << " w " << w << " bit " << bit;
    }
  }
}

TEST_F(Serialization, EmptyObjectsAreRejectedOnWrite) {
  EXPECT_THROW(veil::serialize(veil::Ciphertext{}), veil::Error);
  EXPECT_THROW(veil::serialize(veil::Plaintext{}), veil::Error);
  EXPECT_THROW(veil::serialize(veil::GaloisKeys{}), veil::Error);
  EXPECT_THROW(veil::serialize_secret_key(veil::SecretKey{}), veil::Error);
}

// ================================================================= bad input

TEST_F(Serialization, RejectsEveryTruncationOfParametersBlob) {
  Bytes blob = veil::serialize(ctx()->params());
  for (size_t len = 0; len < blob.size(); ++len)
    EXPECT_SERIALIZATION_ERROR(veil::deserialize_parameters(veil::ByteView(blob.data(), len)));
}

TEST_F(Serialization, RejectsTruncatedCiphertextBlob) {
  Bytes blob = veil::serialize(encrypt_sk(0));
  // Every prefix around the header and the end, a stride through the middle.
  for (size_t len = 0; len < blob.size(); len += (len < 256 || len + 256 > blob.size()) ? 1 : 97)
    EXPECT_SERIALIZATION_ERROR(veil::deserialize_ciphertext(ctx(), veil::ByteView(blob.data(), len)));
}

// Every object type: cut at many lengths (the frame check), and with the last
// payload byte dropped or a byte added, length field and checksum fixed up
// (the size check against the parameters).
TEST_F(Serialization, RejectsTruncatedBlobsOfEveryType) {
  struct Case {
    const char* name;
    Bytes blob;
    void (*load)(const veil::ContextPtr&, veil::ByteView);
  };
  const Case cases[] = {
      {"ciphertext (full)", veil::serialize(encrypt_pk()),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_ciphertext(c, b); }},
      {"ciphertext (seeded)", veil::serialize(encrypt_sk()),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_ciphertext(c, b); }},
      {"plaintext", veil::serialize(encode()),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_plaintext(c, b); }},
      {"public key (full)", veil::serialize(pk(), false),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_public_key(c, b); }},
      {"public key (seeded)", veil::serialize(pk(), true),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_public_key(c, b); }},
      {"relin key (full)", veil::serialize(rk(), false),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_relin_key(c, b); }},
      {"relin key (seeded)", veil::serialize(rk(), true),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_relin_key(c, b); }},
      {"galois keys", veil::serialize(gk()),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_galois_keys(c, b); }},
      {"secret key", veil::serialize_secret_key(sk()),
       [](const veil::ContextPtr& c, veil::ByteView b) { veil::deserialize_secret_key(c, b); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const size_t size = c.blob.size();
    EXPECT_NO_THROW(c.load(ctx(), c.blob));
    for (size_t len : {size_t{0}, fmt::kHeaderBytes, fmt::kHeaderBytes + 1, size / 3, size / 2, size - 17, size - 1})
      EXPECT_SERIALIZATION_ERROR(c.load(ctx(), veil::ByteView(c.blob.data(), len)));
    Bytes shorter(c.blob.begin(), c.blob.end() - fmt::kChecksumBytes - 1);
    shorter.insert(shorter.end(), fmt::kChecksumBytes, 0);
    reseal(shorter);
    EXPECT_SERIALIZATION_ERROR(c.load(ctx(), shorter));
    Bytes longer(c.blob.begin(), c.blob.end() - fmt::kChecksumBytes);
    longer.insert(longer.end(), 1 + fmt::kChecksumBytes, 0);
    reseal(longer);
    EXPECT_SERIALIZATION_ERROR(c.load(ctx(), longer));
  }
}

TEST_F(Serialization, RejectsSingleBitFlips) {
  Bytes params = veil::serialize(ctx()->params());
  for (size_t bit = 0; bit < params.size() * 8; ++bit) {
    Bytes bad = params;
    bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_SERIALIZATION_ERROR(veil::deserialize_parameters(bad));
  }
  Bytes ct = veil::serialize(encrypt_sk(0));
  std::vector<size_t> positions;
  for (size_t i = 0; i < fmt::kHeaderBytes + 32; ++i) positions.push_back(i);   // header, first fields
  for (size_t i = fmt::kHeaderBytes; i < ct.size(); i += 4099) positions.push_back(i);  // payload
  for (size_t i = ct.size() - fmt::kChecksumBytes; i < ct.size(); ++i) positions.push_back(i);  // checksum
  for (size_t pos : positions) {
    Bytes bad = ct;
    bad[pos] ^= static_cast<uint8_t>(1u << (pos % 8));
    EXPECT_SERIALIZATION_ERROR(veil::deserialize_ciphertext(ctx(), bad));
  }
}

TEST_F(Serialization, RejectsWrongMagic) {
  Bytes blob = veil::serialize(encode(0));
  blob[0] = 'X';
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), blob), "magic");
}

TEST_F(Serialization, RejectsWrongVersion) {
  Bytes blob = veil::serialize(encode(0));
  put_u16(blob, fmt::kVersionOffset, fmt::kVersion + 1);
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), blob), "version");
}

TEST_F(Serialization, RejectsVersionOneBlob) {
  // The current blob relabelled, and a plaintext in the version-1 layout (8 bytes a coefficient).
  Bytes blob = veil::serialize(encode(0));
  put_u16(blob, fmt::kVersionOffset, 1);
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), blob), "unsupported format version 1");
  Bytes v1(P(12) + ctx()->n() * 8 + fmt::kChecksumBytes, 0);
  std::memcpy(v1.data(), fmt::kMagic, sizeof fmt::kMagic);
  put_u16(v1, fmt::kVersionOffset, 1);
  put_u16(v1, fmt::kTypeOffset, static_cast<uint16_t>(fmt::ObjectType::Plaintext));
  put_u64(v1, fmt::kFingerprintOffset, ctx()->params().fingerprint());
  reseal(v1);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), v1), "unsupported format version 1");
}

TEST_F(Serialization, RejectsWrongObjectType) {
  Bytes pt = veil::serialize(encode(0));
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_ciphertext(ctx(), pt), "wrong object type");
  const Bytes pk_blob = veil::serialize(pk()), rk_blob = veil::serialize(rk());
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_secret_key(ctx(), pk_blob), "wrong object type");
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_galois_keys(ctx(), rk_blob), "wrong object type");
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_parameters(pt), "wrong object type");
  put_u16(pt, fmt::kTypeOffset, 999);  // unknown type
  reseal(pt);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), pt), "unknown object type");
}

TEST_F(Serialization, RejectsFingerprintMismatch) {
  auto other = other_context();
  veil::Plaintext pt = veil::Encoder(other).encode(values(), 0, 0);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), veil::serialize(pt)), "fingerprint");
  // A parameters blob whose fingerprint field disagrees with its primes.
  Bytes params = veil::serialize(ctx()->params());
  put_u64(params, fmt::kFingerprintOffset, other->params().fingerprint());
  reseal(params);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_parameters(params), "fingerprint");
}

TEST_F(Serialization, PackedLayoutMatchesDocumentation) {
  veil::Plaintext pt = encode(1);
  const Bytes blob = veil::serialize(pt);
  const auto want = bits(pt);
  const size_t n = ctx()->n();
  // Plaintext payload: u32 level, f64 scale, then the packed limbs.
  size_t start = P(12);
  for (size_t limb = 0; limb < 2; ++limb) {
    const unsigned w = coeff_bits(ctx()->params().q()[limb]);
    for (size_t j : {size_t{0}, size_t{1}, size_t{5}, size_t{7}, n / 2 + 3, n - 1})
      EXPECT_EQ(get_coeff(blob, start, w, j), want[limb * n + j]) << "limb " << limb << ", coefficient " << j;
    start += n * w / 8;
  }
}

TEST_F(Serialization, RejectsPackedCoefficientNotBelowPrime) {
  const Bytes blob = veil::serialize(encode(1));
  // Limb 1 starts after limb 0's packed bytes; coefficient 5 of it.
  const size_t n = ctx()->n();
  const auto& q = ctx()->params().q();
  const size_t start = P(12) + n * coeff_bits(q[0]) / 8;
  const unsigned w = coeff_bits(q[1]);
  // q itself, and the largest value the field holds.
  for (uint64_t v : {q[1], q[1] + 1, (uint64_t{1} << w) - 1}) {
    Bytes bad = blob;
    put_coeff(bad, start, w, 5, v);
    reseal(bad);
    EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), bad), "not reduced");
  }
  Bytes ok = blob;  // q - 1 is in range and loads
  put_coeff(ok, start, w, 5, q[1] - 1);
  reseal(ok);
  EXPECT_EQ(bits(veil::deserialize_plaintext(ctx(), ok))[n + 5], q[1] - 1);
}

TEST_F(Serialization, RejectsSpecialPrimeLimbNotBelowItsPrime) {
  Bytes blob = veil::serialize_secret_key(sk());
  // Secret key: Q_L u P limbs; the last limb uses p_0 and follows the q limbs.
  const auto& params = ctx()->params();
  const size_t start = P(poly_bytes(params.q(), ctx()->n()));
  put_coeff(blob, start, coeff_bits(params.p()[0]), 0, params.p()[0]);
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_secret_key(ctx(), blob), "not reduced");
}

TEST_F(Serialization, RejectsPayloadLengthFieldTooLarge) {
  Bytes blob = veil::serialize(encode(0));
  put_u64(blob, fmt::kLengthOffset, uint64_t{1} << 60);
  fmt::checksum(std::span<const uint8_t>(blob.data(), blob.size() - fmt::kChecksumBytes),
                blob.data() + blob.size() - fmt::kChecksumBytes);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), blob), "payload length");
}

TEST_F(Serialization, RejectsLevelInconsistentWithPayload) {
  // A level-0 ciphertext blob claiming level 2: the size check fails before any allocation.
  Bytes blob = veil::serialize(encrypt_pk());
  Bytes low = veil::serialize(veil::Evaluator(ctx()).mod_switch_to(encrypt_pk(), 0));
  put_u32(low, P(4), 2);
  reseal(low);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_ciphertext(ctx(), low), "does not match its size");
  put_u32(blob, P(4), 7);  // above the top level
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_ciphertext(ctx(), blob), "top level");
}

TEST_F(Serialization, RejectsOversizedPrimeCount) {
  Bytes blob = veil::serialize(ctx()->params());
  // Parameters payload: u32 log_n, u8 security, f64 scale, u32 #q.
  put_u32(blob, P(13), 0xffffffffu);
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_parameters(blob), "prime count");
  put_u32(blob, P(13), 60);  // <= 64 but more than the payload holds
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_parameters(blob), "truncated");
}

TEST_F(Serialization, RejectsGaloisCountInconsistentWithPayload) {
  Bytes blob = veil::serialize(gk());
  put_u32(blob, P(0), 1000);  // within the limit, but the payload holds 2 keys
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_galois_keys(ctx(), blob), "inconsistent");
  put_u32(blob, P(0), 1);  // fewer: leaves trailing bytes
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_galois_keys(ctx(), blob), "trailing");
}

TEST_F(Serialization, RejectsBlobAboveSizeLimit) {
  Bytes blob = veil::serialize(encode(0));
  veil::SerializationLimits limits;
  limits.max_blob_bytes = blob.size() - 1;
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), blob, limits), "exceeds the limit");
  limits.max_blob_bytes = blob.size();
  EXPECT_NO_THROW(veil::deserialize_plaintext(ctx(), blob, limits));
}

TEST_F(Serialization, RejectsGaloisCountAboveLimit) {
  Bytes blob = veil::serialize(gk());
  veil::SerializationLimits limits;
  limits.max_galois_keys = 1;
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_galois_keys(ctx(), blob, limits), "Galois key count");
  put_u32(blob, P(0), 5000);  // above the default limit of 1024
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_galois_keys(ctx(), blob), "Galois key count");
}

TEST_F(Serialization, RejectsInvalidGaloisElements) {
  const Bytes blob = veil::serialize(gk());
  ASSERT_EQ(gk().keys.size(), 2u);
  const size_t entry = (blob.size() - fmt::kHeaderBytes - fmt::kChecksumBytes - 4) / 2;
  const uint64_t first = get_u64(blob, P(4));
  const uint64_t two_n = 2 * ctx()->n();
  for (uint64_t g : {uint64_t{2}, uint64_t{1}, two_n + 1, ~uint64_t{0}}) {
    Bytes bad = blob;
    put_u64(bad, P(4), g);
    reseal(bad);
    EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_galois_keys(ctx(), bad), "Galois element");
  }
  Bytes dup = blob;
  put_u64(dup, P(4 + entry), first);
  reseal(dup);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_galois_keys(ctx(), dup), "duplicate");
}

TEST_F(Serialization, RejectsTrailingGarbage) {
  Bytes blob = veil::serialize(encode(0));
  Bytes appended = blob;
  appended.push_back(0);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), appended), "payload length");
  // Extra payload bytes with the length field and checksum fixed up.
  Bytes padded(blob.begin(), blob.end() - fmt::kChecksumBytes);
  padded.insert(padded.end(), 8, 0);
  padded.insert(padded.end(), fmt::kChecksumBytes, 0);
  reseal(padded);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), padded), "does not match");
}

TEST_F(Serialization, RejectsBadScale) {
  const Bytes blob = veil::serialize(encode(0));
  for (double scale : {0.0, -1.0, std::nan(""), HUGE_VAL}) {
    Bytes bad = blob;
    uint64_t bits_of;
    std::memcpy(&bits_of, &scale, sizeof bits_of);
    put_u64(bad, P(4), bits_of);  // plaintext: u32 level, f64 scale
    reseal(bad);
    EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_plaintext(ctx(), bad), "scale");
  }
}

TEST_F(Serialization, RejectsBadCiphertextSizeAndEncoding) {
  const Bytes blob = veil::serialize(encrypt_sk(0));  // seeded
  for (uint32_t size : {0u, 1u, 4u, 0xffffffffu}) {
    Bytes bad = blob;
    put_u32(bad, P(0), size);
    reseal(bad);
    EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_ciphertext(ctx(), bad), "size must be 2 or 3");
  }
  Bytes three = blob;
  put_u32(three, P(0), 3);  // size 3 cannot be seeded
  reseal(three);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_ciphertext(ctx(), three), "seed-compressed");
  Bytes enc = blob;
  enc[P(16)] = 7;  // unknown encoding
  reseal(enc);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_ciphertext(ctx(), enc), "encoding");
  enc[P(16)] = fmt::kFull;  // full form announced, seeded payload present
  reseal(enc);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_ciphertext(ctx(), enc), "does not match");
  // An older Veil's seeded form: its seed would expand to another polynomial here.
  enc[P(16)] = fmt::kSeededSequential;
  reseal(enc);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_ciphertext(ctx(), enc), "older Veil");
  Bytes key = veil::serialize(rk(), true);
  ASSERT_EQ(key[P(0)], fmt::kSeeded);  // switching key: u8 encoding first
  key[P(0)] = fmt::kSeededSequential;
  reseal(key);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_relin_key(ctx(), key), "older Veil");
}

TEST_F(Serialization, RejectsWrongDigitCountInSwitchingKey) {
  Bytes blob = veil::serialize(rk());
  EXPECT_EQ(get_u32(blob, P(1)), ctx()->params().dnum());
  put_u32(blob, P(1), 1000);
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_relin_key(ctx(), blob), "digit count");
}

TEST_F(Serialization, RejectsInvalidParametersInBlob) {
  Bytes blob = veil::serialize(ctx()->params());
  // First q prime: payload offset 4 + 1 + 8 + 4 = 17. Not prime any more.
  put_u64(blob, P(17), get_u64(blob, P(17)) + 2 * ctx()->n());
  reseal(blob);
  EXPECT_SERIALIZATION_ERROR(veil::deserialize_parameters(blob));
  Bytes flag = veil::serialize(ctx()->params());
  flag[P(4)] = 2;  // unknown security flag
  reseal(flag);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_parameters(flag), "security flag");
}

TEST_F(Serialization, RejectsEmptyAndGarbageInput) {
  EXPECT_SERIALIZATION_ERROR(veil::deserialize_parameters(veil::ByteView{}));
  EXPECT_SERIALIZATION_ERROR(veil::deserialize_ciphertext(ctx(), veil::ByteView{}));
  Bytes junk(4096, 0xA5);
  EXPECT_SERIALIZATION_ERROR_WITH(veil::deserialize_galois_keys(ctx(), junk), "magic");
}

}  // namespace
