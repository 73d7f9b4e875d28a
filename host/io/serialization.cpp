// Versioned binary serialization. Format: docs/serialization.md.
//
// Loading never trusts a field before checking it: sizes are checked against
// the parameters and the payload length before anything is allocated, and the
// reader is bounds-checked, so hostile blobs end in Error(Serialization).
#include "veil/serialization.hpp"

#include <sodium.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <set>
#include <string>

#include "arith/sampling.hpp"
#include "io/byte_io.hpp"
#include "io/serialization_format.hpp"
#include "veil/error.hpp"

namespace veil {

void format::checksum(std::span<const uint8_t> data, uint8_t out[kChecksumBytes]) {
  crypto_generichash(out, kChecksumBytes, data.data(), data.size(), nullptr, 0);
}

namespace {

using format::kChecksumBytes;
using format::kFull;
using format::kHeaderBytes;
using format::kMagic;
using format::kSeeded;
using format::kVersion;
using format::Encoding;
using format::ObjectType;
constexpr size_t kSeedBytes = sizeof(Seed);

[[noreturn]] void fail(const std::string& message) { throw Error(ErrorCode::Serialization, message); }

void check(bool ok, const char* message) {
  if (!ok) fail(message);
}

std::string type_name(uint16_t type) {
  switch (static_cast<ObjectType>(type)) {
    case ObjectType::Parameters: return "parameters";
    case ObjectType::Ciphertext: return "a ciphertext";
    case ObjectType::Plaintext: return "a plaintext";
    case ObjectType::PublicKey: return "a public key";
    case ObjectType::RelinKey: return "a relinearization key";
    case ObjectType::GaloisKeys: return "Galois keys";
    case ObjectType::SecretKey: return "a secret key";
    case ObjectType::Model: return "a compiled model";
  }
  return "an unknown object type (" + std::to_string(type) + ")";
}

// ---------------------------------------------------------------- framing

// Starts a blob whose payload will be exactly `payload_bytes` long; the
// writer is reserved for the whole blob so it never reallocates.
io::Writer begin_blob(ObjectType type, uint64_t fingerprint, size_t payload_bytes) {
  io::Writer w(kHeaderBytes + payload_bytes + kChecksumBytes);
  w.bytes(kMagic, sizeof kMagic);
  w.u16(kVersion);
  w.u16(static_cast<uint16_t>(type));
  w.u64(fingerprint);
  w.u64(payload_bytes);
  return w;
}

Bytes finish_blob(io::Writer& w, size_t payload_bytes) {
  require(w.size() == kHeaderBytes + payload_bytes, ErrorCode::Backend,
          "serialization: payload size does not match its announced length (internal error)");
  Bytes& out = w.buffer();
  format::checksum(ByteView(out.data(), w.size()), out.data() + w.size());
  return std::move(out);
}

struct OpenedBlob {
  uint64_t fingerprint = 0;
  ByteView payload;
};

// Checks the frame (size limits, magic, version, length, checksum, type).
OpenedBlob open_blob(ByteView blob, ObjectType want, const SerializationLimits& limits) {
  if (blob.size() > limits.max_blob_bytes)
    fail("blob of " + std::to_string(blob.size()) + " bytes exceeds the limit of " +
         std::to_string(limits.max_blob_bytes) + " bytes");
  check(blob.size() >= kHeaderBytes + kChecksumBytes, "blob is truncated: shorter than header and checksum");
  check(std::memcmp(blob.data(), kMagic, sizeof kMagic) == 0, "not a Veil blob (bad magic)");
  io::Reader header(blob.first(kHeaderBytes));
  header.bytes(sizeof kMagic);
  const uint16_t version = header.u16();
  if (version != kVersion)
    fail("unsupported format version " + std::to_string(version) + " (this build reads version " +
         std::to_string(kVersion) + ")");
  const uint16_t type = header.u16();
  OpenedBlob out;
  out.fingerprint = header.u64();
  const uint64_t payload_bytes = header.u64();
  if (payload_bytes != blob.size() - kHeaderBytes - kChecksumBytes)
    fail("payload length field (" + std::to_string(payload_bytes) + " bytes) does not match the blob size " +
         "(truncated blob or trailing bytes)");
  uint8_t sum[kChecksumBytes];
  format::checksum(blob.first(blob.size() - kChecksumBytes), sum);
  check(sodium_memcmp(sum, blob.data() + blob.size() - kChecksumBytes, kChecksumBytes) == 0,
        "checksum mismatch: blob is corrupted");
  if (type != static_cast<uint16_t>(want))
    fail("wrong object type: blob holds " + type_name(type) + ", expected " +
         type_name(static_cast<uint16_t>(want)));
  out.payload = blob.subspan(kHeaderBytes, static_cast<size_t>(payload_bytes));
  return out;
}

const ContextPtr& checked_context(const ContextPtr& ctx) {
  require(ctx != nullptr, ErrorCode::InvalidArgument, "null context");
  return ctx;
}

OpenedBlob open_for_context(const Context& ctx, ByteView blob, ObjectType want,
                            const SerializationLimits& limits) {
  OpenedBlob b = open_blob(blob, want, limits);
  check(b.fingerprint == ctx.params().fingerprint(),
        "blob was made for different parameters (fingerprint mismatch)");
  return b;
}

void expect_end(const io::Reader& r) { check(r.remaining() == 0, "trailing bytes after the payload fields"); }

void check_scale(double scale) { check(std::isfinite(scale) && scale > 0, "scale must be finite and > 0"); }

// ------------------------------------------------------------ polynomials

// Limb i is stored as N values of w_i = bit_width(q_i - 1) bits, bit-packed
// and padded to a whole byte (bit_packing.hpp): a coefficient < q_i needs no more.
unsigned coeff_bits(uint64_t q) { return static_cast<unsigned>(std::bit_width(q - 1)); }

uint64_t limb_prime(const RnsTables& t, Basis b, uint32_t limb) { return t.primes[t.prime_index(b, limb)]; }

// Exact stored size of a polynomial on basis b; depends on the parameters only.
size_t poly_bytes(const Context& ctx, Basis b) {
  const RnsTables& t = ctx.tables();
  size_t bytes = 0;
  for (uint32_t limb = 0; limb < t.limbs(b); ++limb)
    bytes += io::packed_bytes(t.n, coeff_bits(limb_prime(t, b, limb)));
  return bytes;
}

// Appends one host polynomial on basis b, limb by limb.
void write_poly(io::Writer& w, const Context& ctx, Basis b, const uint64_t* src) {
  const RnsTables& t = ctx.tables();
  for (uint32_t limb = 0; limb < t.limbs(b); ++limb)
    w.packed(src + static_cast<size_t>(limb) * t.n, t.n, coeff_bits(limb_prime(t, b, limb)));
}

// Downloads the polynomial on basis b at `src` from the backend and appends it.
void write_device(io::Writer& w, const Context& ctx, Basis b, const uint64_t* src) {
  std::vector<uint64_t> host(ctx.words(b));
  ctx.backend().download(host.data(), src, host.size());
  write_poly(w, ctx, b, host.data());
}

// Reads one polynomial on basis b into host memory, rejecting set padding
// bits and any coefficient >= the prime of its limb.
void read_poly(io::Reader& r, const Context& ctx, Basis b, uint64_t* dst) {
  const RnsTables& t = ctx.tables();
  for (uint32_t limb = 0; limb < t.limbs(b); ++limb) {
    const uint64_t q = limb_prime(t, b, limb);
    const unsigned bits = coeff_bits(q);
    uint64_t* row = dst + static_cast<size_t>(limb) * t.n;
    if (!io::unpack_bits(r.bytes(io::packed_bytes(t.n, bits)).data(), t.n, bits, row))
      fail("non-zero padding bits after limb " + std::to_string(limb));
    uint64_t bad = 0;  // branch-free: also used for secret keys
    for (size_t i = 0; i < t.n; ++i) bad |= static_cast<uint64_t>(row[i] >= q);
    if (bad) fail("coefficient not reduced modulo its prime (limb " + std::to_string(limb) + ")");
  }
}

// Reads a polynomial and uploads it to `dst` on the backend.
void read_to_device(io::Reader& r, const Context& ctx, Basis b, uint64_t* dst) {
  std::vector<uint64_t> host(ctx.words(b));
  read_poly(r, ctx, b, host.data());
  ctx.backend().upload(dst, host.data(), host.size());
}

// The uniform polynomial a sender expands from (seed, stream), as the
// encryptor and key generator do.
std::vector<uint64_t> expand_uniform(const Context& ctx, const Seed& seed, uint64_t stream, Basis b) {
  std::vector<uint64_t> out(ctx.words(b));
  sampling::sample_uniform(seed, stream, ctx.tables(), b, out.data());
  return out;
}

// Expanded where the polynomial lives (on the device for cuda).
void upload_uniform(const Context& ctx, const Seed& seed, uint64_t stream, Basis b, uint64_t* dst) {
  ctx.backend().sample_uniform(b, dst, seed, stream);
}

// True when the polynomial at `src` is still what (seed, stream) expands to:
// an evaluator op may have changed it while the seed was kept.
bool matches_seed(const Context& ctx, const Seed& seed, uint64_t stream, Basis b, const uint64_t* src) {
  std::vector<uint64_t> have(ctx.words(b));
  ctx.backend().download(have.data(), src, have.size());
  return expand_uniform(ctx, seed, stream, b) == have;
}

Seed read_seed(io::Reader& r) {
  Seed s;
  auto src = r.bytes(kSeedBytes);
  std::memcpy(s.data(), src.data(), kSeedBytes);
  return s;
}

Encoding read_encoding(io::Reader& r) {
  const uint8_t e = r.u8();
  if (e == format::kSeededSequential)
    fail("seed-compressed by an older Veil, whose seed expansion this version no longer has; "
         "write it again without compression with that version, or make the key or ciphertext anew");
  check(e == kFull || e == kSeeded, "unknown polynomial encoding");
  return static_cast<Encoding>(e);
}

Basis key_basis(const Context& ctx) { return Basis{ctx.max_level() + 1, true}; }

// ---------------------------------------------------------- switching keys
// Layout: u8 encoding, u32 dnum, then full: [dnum][b_j, a_j]; seeded: seed, [dnum] b_j.

bool switching_key_seeded(const SwitchingKey& key, bool compress) {
  if (!compress || !key.a_seed()) return false;
  const Context& ctx = *key.context();
  const size_t words = key.poly_words();
  for (uint32_t j = 0; j < ctx.params().dnum(); ++j) {
    if (!matches_seed(ctx, *key.a_seed(), j, key_basis(ctx), key.data() + (2 * j + 1) * words)) return false;
  }
  return true;
}

constexpr size_t kSwitchingKeyFieldBytes = 1 + 4;  // encoding, dnum

size_t switching_key_bytes(const Context& ctx, bool seeded) {
  const size_t polys = ctx.params().dnum() * (seeded ? 1 : 2);
  return kSwitchingKeyFieldBytes + (seeded ? kSeedBytes : 0) + polys * poly_bytes(ctx, key_basis(ctx));
}

void write_switching_key(io::Writer& w, const SwitchingKey& key, bool seeded) {
  const Context& ctx = *key.context();
  const uint32_t dnum = ctx.params().dnum();
  const Basis qp = key_basis(ctx);
  const size_t words = key.poly_words();
  w.u8(seeded ? kSeeded : kFull);
  w.u32(dnum);
  if (seeded) w.bytes(key.a_seed()->data(), kSeedBytes);
  for (uint32_t j = 0; j < dnum; ++j) {
    write_device(w, ctx, qp, key.data() + (2 * j) * words);
    if (!seeded) write_device(w, ctx, qp, key.data() + (2 * j + 1) * words);
  }
}

SwitchingKey read_switching_key(io::Reader& r, const ContextPtr& ctx) {
  const Encoding enc = read_encoding(r);
  const uint32_t dnum = r.u32();
  check(dnum == ctx->params().dnum(), "switching key digit count does not match the parameters");
  check(r.remaining() >= switching_key_bytes(*ctx, enc == kSeeded) - kSwitchingKeyFieldBytes,
        "blob is truncated: switching key");
  const Basis qp = key_basis(*ctx);
  SwitchingKey key(ctx);
  const size_t words = key.poly_words();
  std::optional<Seed> seed;
  if (enc == kSeeded) seed = read_seed(r);
  for (uint32_t j = 0; j < dnum; ++j) {
    read_to_device(r, *ctx, qp, key.data() + (2 * j) * words);
    uint64_t* a = key.data() + (2 * j + 1) * words;
    if (seed) upload_uniform(*ctx, *seed, j, qp, a);
    else read_to_device(r, *ctx, qp, a);
  }
  key.set_a_seed(seed);
  return key;
}

void check_galois_element(const Context& ctx, uint64_t g, const std::set<uint64_t>& seen) {
  check((g & 1) && g < 2 * ctx.n() && g != 1, "invalid Galois element (must be odd, in (1, 2N))");
  check(seen.count(g) == 0, "duplicate Galois element");
}

}  // namespace

Bytes format::seal(ObjectType type, uint64_t fingerprint, ByteView payload) {
  io::Writer w = begin_blob(type, fingerprint, payload.size());
  w.bytes(payload.data(), payload.size());
  return finish_blob(w, payload.size());
}

ByteView format::open(ByteView blob, ObjectType want, const SerializationLimits& limits, uint64_t& fingerprint) {
  OpenedBlob b = open_blob(blob, want, limits);
  fingerprint = b.fingerprint;
  return b.payload;
}

std::vector<ByteView> split_blobs(ByteView data, size_t max_blobs) {
  std::vector<ByteView> out;
  size_t pos = 0;  // of the current blob in the whole sequence, for the messages
  while (!data.empty()) {
    const std::string at = "blob " + std::to_string(out.size()) + " (byte " + std::to_string(pos) + "): ";
    if (out.size() >= max_blobs) fail(at + "more than " + std::to_string(max_blobs) + " blobs");
    if (data.size() < kHeaderBytes + kChecksumBytes) fail(at + "truncated");
    if (std::memcmp(data.data(), kMagic, sizeof kMagic) != 0) fail(at + "not a Veil blob (bad magic)");
    io::Reader header(data.first(kHeaderBytes));
    header.bytes(format::kLengthOffset);
    const uint64_t payload = header.u64();
    if (payload > data.size() - kHeaderBytes - kChecksumBytes)
      fail(at + "truncated (" + std::to_string(payload) + " payload bytes announced)");
    const size_t size = kHeaderBytes + static_cast<size_t>(payload) + kChecksumBytes;
    out.push_back(data.first(size));
    data = data.subspan(size);
    pos += size;
  }
  return out;
}

// ============================================================== parameters
// Payload: u32 log_n, u8 security, f64 scale, u32 #q, q[], u32 #p, p[].

Bytes serialize(const Parameters& params) {
  const size_t payload = 4 + 1 + 8 + 4 + 8 * params.q().size() + 4 + 8 * params.p().size();
  io::Writer w = begin_blob(ObjectType::Parameters, params.fingerprint(), payload);
  w.u32(params.log_n());
  w.u8(params.security() == Security::HEStandard128 ? 0 : 1);
  w.f64(params.default_scale());
  w.u32(static_cast<uint32_t>(params.q().size()));
  for (uint64_t q : params.q()) w.u64(q);
  w.u32(static_cast<uint32_t>(params.p().size()));
  for (uint64_t p : params.p()) w.u64(p);
  return finish_blob(w, payload);
}

namespace {
std::vector<uint64_t> read_primes(io::Reader& r) {
  const uint32_t count = r.u32();
  check(count >= 1 && count <= 64, "prime count must be in [1, 64]");
  check(r.remaining() >= uint64_t{count} * 8, "blob is truncated: prime list");
  std::vector<uint64_t> primes(count);
  for (auto& v : primes) v = r.u64();
  return primes;
}
}  // namespace

Parameters deserialize_parameters(ByteView blob, const SerializationLimits& limits) {
  OpenedBlob b = open_blob(blob, ObjectType::Parameters, limits);
  io::Reader r(b.payload);
  const uint32_t log_n = r.u32();
  const uint8_t security = r.u8();
  check(security <= 1, "unknown security flag");
  check(security == 0 || limits.allow_insecure_parameters,
        "the parameters are marked insecure (testing only): refused unless the caller allows them");
  const double scale = r.f64();
  std::vector<uint64_t> q = read_primes(r);
  std::vector<uint64_t> p = read_primes(r);
  expect_end(r);
  std::optional<Parameters> params;
  try {
    params = Parameters::from_primes(log_n, std::move(q), std::move(p), scale,
                                     security == 0 ? Security::HEStandard128 : Security::InsecureTestingOnly);
  } catch (const Error& e) {
    fail(std::string("invalid parameters in blob: ") + e.what());
  }
  check(params->fingerprint() == b.fingerprint, "parameter fingerprint does not match the stored primes");
  return *params;
}

// ============================================================== ciphertext
// Payload: u32 size, u32 level, f64 scale, u8 encoding, then full: size polys;
// seeded (size 2 only): c0, seed.

Bytes serialize(const Ciphertext& ct, bool compress) {
  require(!ct.empty(), ErrorCode::InvalidArgument, "cannot serialize an empty ciphertext");
  const Context& ctx = *ct.context();
  const Basis b{ct.level() + 1, false};
  const bool seeded = compress && ct.size() == 2 && ct.c1_seed() &&
                      matches_seed(ctx, *ct.c1_seed(), 0, b, ct.poly(1));
  const size_t polys = seeded ? 1 : ct.size();
  const size_t payload = 4 + 4 + 8 + 1 + polys * poly_bytes(ctx, b) + (seeded ? kSeedBytes : 0);
  io::Writer w = begin_blob(ObjectType::Ciphertext, ctx.params().fingerprint(), payload);
  w.u32(ct.size());
  w.u32(ct.level());
  w.f64(ct.scale());
  w.u8(seeded ? kSeeded : kFull);
  for (uint32_t i = 0; i < polys; ++i) write_device(w, ctx, b, ct.poly(i));
  if (seeded) w.bytes(ct.c1_seed()->data(), kSeedBytes);
  return finish_blob(w, payload);
}

Ciphertext deserialize_ciphertext(const ContextPtr& ctx, ByteView blob, const SerializationLimits& limits) {
  OpenedBlob opened = open_for_context(*checked_context(ctx), blob, ObjectType::Ciphertext, limits);
  io::Reader r(opened.payload);
  const uint32_t size = r.u32();
  const uint32_t level = r.u32();
  const double scale = r.f64();
  const Encoding enc = read_encoding(r);
  check(size == 2 || size == 3, "ciphertext size must be 2 or 3");
  check(level <= ctx->max_level(), "ciphertext level above the top level of the parameters");
  check_scale(scale);
  check(enc == kFull || size == 2, "only size-2 ciphertexts can be seed-compressed");
  const Basis b{level + 1, false};
  const size_t polys = enc == kSeeded ? 1 : size;
  check(r.remaining() == polys * poly_bytes(*ctx, b) + (enc == kSeeded ? kSeedBytes : 0),
        "ciphertext payload size does not match its size and level");
  Ciphertext ct(ctx, size, level, scale);
  for (uint32_t i = 0; i < polys; ++i) read_to_device(r, *ctx, b, ct.poly(i));
  if (enc == kSeeded) {
    const Seed seed = read_seed(r);
    upload_uniform(*ctx, seed, 0, b, ct.poly(1));
    ct.set_c1_seed(seed);
  }
  expect_end(r);
  return ct;
}

// =============================================================== plaintext
// Payload: u32 level, f64 scale, poly.

Bytes serialize(const Plaintext& pt) {
  require(!pt.empty(), ErrorCode::InvalidArgument, "cannot serialize an empty plaintext");
  const Context& ctx = *pt.context();
  const Basis b{pt.level() + 1, false};
  const size_t payload = 4 + 8 + poly_bytes(ctx, b);
  io::Writer w = begin_blob(ObjectType::Plaintext, ctx.params().fingerprint(), payload);
  w.u32(pt.level());
  w.f64(pt.scale());
  write_device(w, ctx, b, pt.data());
  return finish_blob(w, payload);
}

Plaintext deserialize_plaintext(const ContextPtr& ctx, ByteView blob, const SerializationLimits& limits) {
  OpenedBlob opened = open_for_context(*checked_context(ctx), blob, ObjectType::Plaintext, limits);
  io::Reader r(opened.payload);
  const uint32_t level = r.u32();
  const double scale = r.f64();
  check(level <= ctx->max_level(), "plaintext level above the top level of the parameters");
  check_scale(scale);
  const Basis b{level + 1, false};
  check(r.remaining() == poly_bytes(*ctx, b), "plaintext payload size does not match its level");
  Plaintext pt(ctx, level, scale);
  read_to_device(r, *ctx, b, pt.data());
  expect_end(r);
  return pt;
}

// ============================================================== public key
// Payload: u8 encoding, b, then full: a; seeded: seed. Both over Q_L u P.

Bytes serialize(const PublicKey& pk, bool compress) {
  require(!pk.empty(), ErrorCode::InvalidArgument, "cannot serialize an empty public key");
  const Context& ctx = *pk.context();
  const Basis qp = key_basis(ctx);
  const bool seeded = compress && pk.a_seed() && matches_seed(ctx, *pk.a_seed(), 0, qp, pk.poly(1));
  const size_t payload = 1 + (seeded ? poly_bytes(ctx, qp) + kSeedBytes : 2 * poly_bytes(ctx, qp));
  io::Writer w = begin_blob(ObjectType::PublicKey, ctx.params().fingerprint(), payload);
  w.u8(seeded ? kSeeded : kFull);
  write_device(w, ctx, qp, pk.poly(0));
  if (seeded) w.bytes(pk.a_seed()->data(), kSeedBytes);
  else write_device(w, ctx, qp, pk.poly(1));
  return finish_blob(w, payload);
}

PublicKey deserialize_public_key(const ContextPtr& ctx, ByteView blob, const SerializationLimits& limits) {
  OpenedBlob opened = open_for_context(*checked_context(ctx), blob, ObjectType::PublicKey, limits);
  io::Reader r(opened.payload);
  const Encoding enc = read_encoding(r);
  const Basis qp = key_basis(*ctx);
  check(r.remaining() == poly_bytes(*ctx, qp) + (enc == kSeeded ? kSeedBytes : poly_bytes(*ctx, qp)),
        "public key payload size does not match the parameters");
  PublicKey pk(ctx);
  read_to_device(r, *ctx, qp, pk.poly(0));
  if (enc == kSeeded) {
    const Seed seed = read_seed(r);
    upload_uniform(*ctx, seed, 0, qp, pk.poly(1));
    pk.set_a_seed(seed);
  } else {
    read_to_device(r, *ctx, qp, pk.poly(1));
  }
  expect_end(r);
  return pk;
}

// ============================================================== relin key

Bytes serialize(const RelinKey& rk, bool compress) {
  require(!rk.key.empty(), ErrorCode::InvalidArgument, "cannot serialize an empty relinearization key");
  const Context& ctx = *rk.key.context();
  const bool seeded = switching_key_seeded(rk.key, compress);
  const size_t payload = switching_key_bytes(ctx, seeded);
  io::Writer w = begin_blob(ObjectType::RelinKey, ctx.params().fingerprint(), payload);
  write_switching_key(w, rk.key, seeded);
  return finish_blob(w, payload);
}

RelinKey deserialize_relin_key(const ContextPtr& ctx, ByteView blob, const SerializationLimits& limits) {
  OpenedBlob opened = open_for_context(*checked_context(ctx), blob, ObjectType::RelinKey, limits);
  io::Reader r(opened.payload);
  RelinKey rk;
  rk.key = read_switching_key(r, ctx);
  expect_end(r);
  return rk;
}

// ============================================================= Galois keys
// Payload: u32 count, then count x (u64 Galois element, switching key).

Bytes serialize(const GaloisKeys& gk, bool compress) {
  require(!gk.keys.empty(), ErrorCode::InvalidArgument,
          "cannot serialize an empty GaloisKeys (it has no context to name)");
  const ContextPtr& ctx = gk.keys.begin()->second.context();
  std::vector<bool> seeded;
  size_t payload = 4;
  for (const auto& [g, key] : gk.keys) {
    require(!key.empty() && key.context()->id() == ctx->id(), ErrorCode::ContextMismatch,
            "Galois keys belong to different contexts");
    seeded.push_back(switching_key_seeded(key, compress));
    payload += 8 + switching_key_bytes(*ctx, seeded.back());
  }
  io::Writer w = begin_blob(ObjectType::GaloisKeys, ctx->params().fingerprint(), payload);
  w.u32(static_cast<uint32_t>(gk.keys.size()));
  size_t i = 0;
  for (const auto& [g, key] : gk.keys) {
    w.u64(g);
    write_switching_key(w, key, seeded[i++]);
  }
  return finish_blob(w, payload);
}

GaloisKeys deserialize_galois_keys(const ContextPtr& ctx, ByteView blob, const SerializationLimits& limits) {
  OpenedBlob opened = open_for_context(*checked_context(ctx), blob, ObjectType::GaloisKeys, limits);
  io::Reader r(opened.payload);
  const uint32_t count = r.u32();
  if (count > limits.max_galois_keys)
    fail("Galois key count " + std::to_string(count) + " exceeds the limit of " +
         std::to_string(limits.max_galois_keys));
  // Every entry is at least a Galois element and a seeded key.
  const uint64_t min_entry = 8 + switching_key_bytes(*ctx, true);
  check(r.remaining() >= count * min_entry, "Galois key count is inconsistent with the payload length");
  GaloisKeys gk;
  std::set<uint64_t> seen;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t g = r.u64();
    check_galois_element(*ctx, g, seen);
    seen.insert(g);
    gk.keys.emplace(g, read_switching_key(r, ctx));
  }
  expect_end(r);
  return gk;
}

// ============================================================== secret key
// Payload: s over Q_L u P. Host copies are wiped.

Bytes serialize_secret_key(const SecretKey& sk) {
  require(!sk.empty(), ErrorCode::InvalidArgument, "cannot serialize an empty secret key");
  const Context& ctx = *sk.context();
  const Basis qp = key_basis(ctx);
  const size_t payload = poly_bytes(ctx, qp);
  io::Writer w = begin_blob(ObjectType::SecretKey, ctx.params().fingerprint(), payload);
  sampling::SecretVector<uint64_t> host(ctx.words(qp));
  ctx.backend().download(host.data(), sk.data(), host.size());
  write_poly(w, ctx, qp, host.data());
  return finish_blob(w, payload);
}

SecretKey deserialize_secret_key(const ContextPtr& ctx, ByteView blob, const SerializationLimits& limits) {
  OpenedBlob opened = open_for_context(*checked_context(ctx), blob, ObjectType::SecretKey, limits);
  io::Reader r(opened.payload);
  const Basis qp = key_basis(*ctx);
  check(r.remaining() == poly_bytes(*ctx, qp), "secret key payload size does not match the parameters");
  SecretKey sk(ctx);  // allocates a wiped-on-release buffer
  sampling::SecretVector<uint64_t> host(ctx->words(qp));
  read_poly(r, *ctx, qp, host.data());
  ctx->backend().upload(sk.data(), host.data(), host.size());
  expect_end(r);
  return sk;
}

}  // namespace veil
