// Serialization: contexts (parameters + evaluation keys, the secret key only when
// asked), vectors (a small header for the Python-side layout + the ciphertext blob),
// and what pickling needs. Every load goes through Veil's validating deserializers.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <bit>
#include <cstring>

#include "common.hpp"

using namespace nb::literals;

namespace vpy {
namespace {

constexpr uint16_t kParameters = 1, kCiphertext = 2, kPublicKey = 4, kRelinKey = 5, kGaloisKeys = 6,
                   kSecretKey = 7;
// Vector container: "VPYV", u16 version, u16 flags (1: clean, 2: im2col), u64 size,
// u64 period, [u64 height, width, kernel, stride when im2col], then one ciphertext blob.
constexpr char kVectorMagic[4] = {'V', 'P', 'Y', 'V'};
constexpr uint16_t kVectorVersion = 1;

veil::ByteView view(const nb::bytes& b) { return {static_cast<const uint8_t*>(b.data()), b.size()}; }
nb::bytes to_bytes(const veil::Bytes& b) { return nb::bytes(reinterpret_cast<const char*>(b.data()), b.size()); }

void append(veil::Bytes& out, const veil::Bytes& b) { out.insert(out.end(), b.begin(), b.end()); }
void put_u16(veil::Bytes& out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u64(veil::Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint64_t get_u(veil::ByteView b, size_t off, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{b[off + i]} << (8 * i);
  return v;
}

[[noreturn]] void bad(const std::string& what) { throw veil::Error(veil::ErrorCode::Serialization, what); }

// The object type of a Veil blob (after its frame is checked by split_blobs).
uint16_t blob_type(veil::ByteView b) {
  if (b.size() < 24 || std::memcmp(b.data(), "VEIL", 4) != 0) bad("not a Veil blob");
  return static_cast<uint16_t>(get_u(b, 6, 2));
}

veil::SerializationLimits limits(bool insecure) {
  veil::SerializationLimits l;
  l.allow_insecure_parameters = insecure;
  return l;
}

nb::bytes serialize_context(const PyContext& c, bool secret_key) {
  const CtxState& s = *c.s;
  if (secret_key && !s.sk) throw veil::Error(veil::ErrorCode::MissingKey, "this context has no secret key to serialize");
  veil::Bytes out;
  {
    nb::gil_scoped_release release;
    append(out, veil::serialize(s.ctx->params()));
    if (!s.keys->pk.empty()) append(out, veil::serialize(s.keys->pk));
    if (!s.keys->rk.key.empty()) append(out, veil::serialize(s.keys->rk));
    {
      std::shared_lock lock(s.keys->mutex);
      if (!s.keys->gk.keys.empty()) append(out, veil::serialize(s.keys->gk));
    }
    if (secret_key) append(out, veil::serialize_secret_key(*s.sk));
  }
  return to_bytes(out);
}

PyContext load_context(nb::bytes data, const std::string& backend, bool insecure) {
  const veil::BackendKind kind = parse_backend(backend);
  const veil::ByteView all = view(data);
  nb::gil_scoped_release release;
  const std::vector<veil::ByteView> blobs = veil::split_blobs(all, 5);
  if (blobs.empty() || blob_type(blobs[0]) != kParameters)
    bad("a serialized context starts with a Parameters blob");
  const veil::SerializationLimits lim = limits(insecure);
  const veil::Parameters params = veil::deserialize_parameters(blobs[0], lim);
  State s = make_state(veil::Context::create(params, kind), insecure, backend);
  bool seen[8] = {};
  for (size_t i = 1; i < blobs.size(); ++i) {
    const uint16_t t = blob_type(blobs[i]);
    if (t >= 8 || seen[t]) bad("a serialized context holds blob " + std::to_string(i) + " of an unexpected type");
    seen[t] = true;
    switch (t) {
      case kPublicKey: s->keys->pk = veil::deserialize_public_key(s->ctx, blobs[i], lim); break;
      case kRelinKey: s->keys->rk = veil::deserialize_relin_key(s->ctx, blobs[i], lim); break;
      case kGaloisKeys: s->keys->gk = veil::deserialize_galois_keys(s->ctx, blobs[i], lim); break;
      case kSecretKey:
        s->sk = std::make_shared<const veil::SecretKey>(veil::deserialize_secret_key(s->ctx, blobs[i], lim));
        break;
      default: bad("a serialized context holds blob " + std::to_string(i) + " of an unexpected type");
    }
  }
  return PyContext{s};
}

nb::bytes serialize_vector(const PyVector& v) {
  veil::Bytes out(kVectorMagic, kVectorMagic + 4);
  put_u16(out, kVectorVersion);
  put_u16(out, static_cast<uint16_t>((v.clean ? 1 : 0) | (v.im2col ? 2 : 0)));
  put_u64(out, v.size);
  put_u64(out, v.period);
  if (v.im2col)
    for (size_t x : {v.im2col->height, v.im2col->width, v.im2col->kernel, v.im2col->stride}) put_u64(out, x);
  nb::gil_scoped_release release;
  append(out, veil::serialize(v.ct));
  return to_bytes(out);
}

PyVector load_vector(const PyContext& ctx, nb::bytes data) {
  const veil::ByteView b = view(data);
  const State& s = ctx.s;
  PyVector v;
  v.s = s;
  nb::gil_scoped_release release;
  veil::ByteView blob = b;
  if (b.size() >= 4 && std::memcmp(b.data(), kVectorMagic, 4) == 0) {
    if (b.size() < 24) bad("truncated vector header");
    if (get_u(b, 4, 2) != kVectorVersion) bad("unknown vector format version " + std::to_string(get_u(b, 4, 2)));
    const uint64_t flags = get_u(b, 6, 2);
    if (flags > 3) bad("unknown vector flags");
    v.size = get_u(b, 8, 8);
    v.period = get_u(b, 16, 8);
    v.clean = flags & 1;
    size_t off = 24;
    if (flags & 2) {
      if (b.size() < 56) bad("truncated vector header");
      Im2colInfo g{get_u(b, 24, 8), get_u(b, 32, 8), get_u(b, 40, 8), get_u(b, 48, 8)};
      const uint64_t lim = uint64_t{1} << 32;
      if (g.height == 0 || g.width == 0 || g.kernel == 0 || g.stride == 0 || g.height >= lim || g.width >= lim ||
          g.kernel > g.height || g.kernel > g.width || g.stride >= lim)
        bad("bad im2col geometry in the vector header");
      v.im2col = g;
      off = 56;
    }
    if (v.period == 0 || !std::has_single_bit(v.period) || v.period > s->slots() || v.size == 0 ||
        v.size > v.period)
      bad("bad size / period in the vector header");
    blob = b.subspan(off);
  } else {
    v.size = v.period = s->slots();  // a bare ciphertext blob (the CLI's): every slot
    v.clean = true;
  }
  v.ct = veil::deserialize_ciphertext(s->ctx, blob, limits(s->insecure));
  return v;
}

}  // namespace

void bind_serialization(nb::module_& m) {
  m.def("_serialize_context", &serialize_context, "context"_a, "secret_key"_a = false);
  m.def("_load_context", &load_context, "data"_a, "backend"_a = "cpu", "insecure"_a = false);
  m.def("_serialize_vector", &serialize_vector, "vector"_a);
  m.def("_load_vector", &load_vector, "context"_a, "data"_a);
  m.def("_parameters_blob", [](const PyContext& c) { return to_bytes(veil::serialize(c.s->ctx->params())); });
  m.def(
      "_context_for_parameters",
      [](nb::bytes blob, bool insecure, uint64_t context_id) {
        const veil::Parameters p = veil::deserialize_parameters(view(blob), limits(insecure));
        if (State s = find_state(p.fingerprint(), context_id)) return PyContext{s};
        nb::gil_scoped_release release;
        return PyContext{make_state(veil::Context::create(p, veil::BackendKind::Cpu), insecure, "cpu")};
      },
      "blob"_a, "insecure"_a = false, "context_id"_a = 0,
      "A live context of these parameters (the one with this id first, then the newest, one with a "
      "secret key first), else a key-less one.");
  m.def("_context_id", [](const PyContext& c) { return c.s->ctx->id(); });
  m.def(
      "_blob_type",
      [](nb::bytes data) -> int {
        const veil::ByteView b = view(data);
        if (b.size() >= 4 && std::memcmp(b.data(), kVectorMagic, 4) == 0) return -1;
        if (b.size() < 24 || std::memcmp(b.data(), "VEIL", 4) != 0) return 0;
        return static_cast<int>(get_u(b, 6, 2));
      },
      "data"_a, "-1: a veil.Vector, 0: unknown, else the Veil blob's object type.");
}

}  // namespace vpy
