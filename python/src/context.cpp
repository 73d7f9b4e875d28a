// veil.Context: parameters, keys (secret, public, relinearization; Galois on demand),
// public() copies, encryption and the im2col encoding.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "common.hpp"
#include "veil/nn/conv.hpp"
#include "veil/nn/linear.hpp"

using namespace nb::literals;

namespace vpy {
namespace {

// Secret, public and relinearization keys from the OS CSPRNG.
void generate_keys(CtxState& s) {
  veil::KeyGenerator kg(s.ctx);
  s.sk = std::make_shared<const veil::SecretKey>(kg.secret_key());
  s.keys->pk = kg.create_public_key();
  s.keys->rk = kg.create_relin_key();
}

PyContext create(const veil::Parameters& params, const std::string& backend, bool insecure) {
  const veil::BackendKind kind = parse_backend(backend);
  nb::gil_scoped_release release;
  State s = make_state(veil::Context::create(params, kind), insecure, backend);
  generate_keys(*s);
  return PyContext{s};
}

veil::Security security(bool insecure) {
  return insecure ? veil::Security::InsecureTestingOnly : veil::Security::HEStandard128;
}

}  // namespace

PyVector encrypt_values(const State& s, const std::vector<double>& x) {
  PyVector v;
  v.s = s;
  v.size = x.size();
  v.period = next_pow2(x.size());
  v.clean = true;
  const std::vector<double> slots = veil::nn::LinearLayer::layout(x, v.period, s->slots());
  nb::gil_scoped_release release;
  const veil::Plaintext pt = s->enc->encode(slots);
  std::lock_guard<std::mutex> lock(s->encrypt_mutex);
  if (!s->encryptor) {
    if (s->sk) {
      s->encryptor = std::make_unique<veil::Encryptor>(s->ctx, *s->sk);
    } else {
      if (s->keys->pk.empty())
        throw veil::Error(veil::ErrorCode::MissingKey,
                          "cannot encrypt: this context has neither a secret nor a public key");
      s->encryptor = std::make_unique<veil::Encryptor>(s->ctx, s->keys->pk);
    }
  }
  v.ct = s->encryptor->encrypt(pt);
  return v;
}

void bind_context(nb::module_& m) {
  nb::class_<PyContext>(m, "Context",
                        "CKKS parameters and keys (TenSEAL: ts.context(ts.SCHEME_TYPE.CKKS, ...)).\n\n"
                        "Context(log_n=None, q_bits=None, p_bits=None, scale=None, backend='cpu', insecure=False):\n"
                        "explicit parameters (q_bits: bit sizes of q_0..q_L, p_bits: special primes, "
                        "TenSEAL's coeff_mod_bit_sizes split in two; scale: TenSEAL's global_scale) or, "
                        "without q_bits, Parameters::preset(log_n or 14). Creates the secret, public and "
                        "relinearization keys; Galois (rotation) keys are generated when an operation "
                        "needs them (TenSEAL: generate_galois_keys). insecure=True skips the 128-bit check "
                        "(tests only).")
      .def("__init__",
           [](PyContext* self, std::optional<uint32_t> log_n, std::optional<std::vector<int>> q_bits,
              std::optional<std::vector<int>> p_bits, std::optional<double> scale, const std::string& backend,
              bool insecure) {
             veil::Parameters params = [&] {
               if (!q_bits) {
                 if (p_bits) throw nb::value_error("p_bits needs q_bits");
                 veil::Parameters preset = veil::Parameters::preset(log_n.value_or(14));
                 if (!scale && !insecure) return preset;
                 return veil::Parameters::from_primes(preset.log_n(), preset.q(), preset.p(),
                                                      scale.value_or(preset.default_scale()), security(insecure));
               }
               veil::ParameterSpec spec;
               spec.log_n = log_n.value_or(14);
               spec.q_bits = *q_bits;
               spec.p_bits = p_bits.value_or(std::vector<int>{60});
               spec.default_scale = scale.value_or(0);
               spec.security = security(insecure);
               return veil::Parameters::create(spec);
             }();
             new (self) PyContext(create(params, backend, insecure));
           },
           "log_n"_a = nb::none(), "q_bits"_a = nb::none(), "p_bits"_a = nb::none(), "scale"_a = nb::none(),
           "backend"_a = "cpu", "insecure"_a = false)
      .def_static(
          "preset",
          [](uint32_t log_n, const std::string& backend) { return create(veil::Parameters::preset(log_n), backend, false); },
          "log_n"_a = 14, "backend"_a = "cpu",
          "A 128-bit preset (log_n 13..16, scale 2^40; docs/parameters.md) with fresh keys.")
      .def_static(
          "_from_parameters_blob",
          [](nb::bytes blob, bool insecure, const std::string& backend) {
            veil::SerializationLimits lim;
            lim.allow_insecure_parameters = insecure;
            const auto* p = static_cast<const uint8_t*>(blob.data());
            const veil::Parameters params = veil::deserialize_parameters(veil::ByteView(p, blob.size()), lim);
            return create(params, backend, insecure);
          },
          "blob"_a, "insecure"_a = false, "backend"_a = "cpu",
          "A context (fresh keys) of the parameters in a Parameters blob, e.g. a compiled model's.")
      .def_prop_ro("n", [](const PyContext& c) { return c.s->ctx->n(); }, "Ring degree N (TenSEAL: poly_modulus_degree).")
      .def_prop_ro("slots", [](const PyContext& c) { return c.s->slots(); }, "N/2 slots.")
      .def_prop_ro("max_level", [](const PyContext& c) { return c.s->ctx->max_level(); },
                   "L: multiplicative levels of a fresh ciphertext.")
      .def_prop_ro("scale", [](const PyContext& c) { return c.s->ctx->params().default_scale(); },
                   "Default scale (TenSEAL: global_scale).")
      .def_prop_ro("log_qp", [](const PyContext& c) { return c.s->ctx->params().log_qp(); })
      .def_prop_ro("fingerprint", [](const PyContext& c) { return c.s->ctx->params().fingerprint(); },
                   "64-bit digest of the parameters (what blobs carry).")
      .def_prop_ro("backend", [](const PyContext& c) { return c.s->backend; })
      .def_prop_ro("insecure", [](const PyContext& c) { return c.s->insecure; })
      .def_prop_ro("has_secret_key", [](const PyContext& c) { return static_cast<bool>(c.s->sk); },
                   "TenSEAL: is_private().")
      .def_prop_ro("has_public_key", [](const PyContext& c) { return !c.s->keys->pk.empty(); })
      .def_prop_ro("has_relin_key", [](const PyContext& c) { return !c.s->keys->rk.key.empty(); })
      .def_prop_ro(
          "galois_steps",
          [](const PyContext& c) {
            std::shared_lock lock(c.s->keys->mutex);
            std::vector<uint64_t> elts;
            for (const auto& kv : c.s->keys->gk.keys) elts.push_back(kv.first);
            return elts;
          },
          "Galois elements of the rotation keys held (5^step mod 2N).")
      .def("describe", [](const PyContext& c) { return c.s->ctx->params().describe(); })
      .def("__repr__",
           [](const PyContext& c) {
             const auto& p = c.s->ctx->params();
             return "<veil.Context N=" + std::to_string(p.n()) + " L=" + std::to_string(p.max_level()) +
                    " log2(QP)=" + std::to_string(static_cast<int>(p.log_qp())) + (c.s->sk ? " secret" : " public") +
                    " backend=" + c.s->backend + ">";
           })
      .def(
          "generate_galois_keys",
          [](const PyContext& c, const std::vector<int64_t>& steps) {
            nb::gil_scoped_release release;
            ensure_galois_steps(*c.s, steps);
          },
          "steps"_a, "Rotation keys for these left-rotation steps (negative: right). Needs the secret key.")
      .def(
          "public",
          [](const PyContext& c) {
            auto s = make_state(c.s->ctx, c.s->insecure, c.s->backend);
            s->keys = c.s->keys;  // shared, never the secret key
            return PyContext{s};
          },
          "A copy without the secret key, for the party that evaluates (TenSEAL: make_context_public).")
      .def("encrypt",
           [](const PyContext& c, nb::handle values) {
             return encrypt_values(c.s, to_doubles(values, "encrypt", 1, c.s->slots()));
           },
           "values"_a,
           "Encrypts 1..slots real values (numpy array, list or torch tensor; flattened) into a "
           "veil.Vector (TenSEAL: ts.ckks_vector(ctx, values)).")
      .def(
          "im2col_encode",
          [](const PyContext& c, nb::handle image, size_t kernel_size, size_t stride) {
            size_t h = 0, w = 0;
            const std::vector<double> img = to_matrix(image, "im2col_encode: image", h, w);
            if (kernel_size == 0 || stride == 0 || kernel_size > h || kernel_size > w)
              throw nb::value_error("im2col_encode: need 1 <= kernel_size <= the image's sides and stride >= 1");
            std::vector<double> slots;
            size_t windows = 0, block = 0;
            {
              nb::gil_scoped_release release;
              veil::nn::Conv2dIm2col conv(c.s->ctx, h, w, kernel_size, stride,
                                          std::vector<double>(kernel_size * kernel_size, 0.0), 1);
              slots = conv.encode_input(img);
              windows = conv.windows();
              block = conv.window_block() * conv.position_block();
            }
            PyVector v = encrypt_values(c.s, std::vector<double>(slots.begin(), slots.begin() + block));
            v.im2col = Im2colInfo{h, w, kernel_size, stride};
            return nb::make_tuple(nb::cast(std::move(v)), windows);
          },
          "image"_a, "kernel_size"_a, "stride"_a,
          "Encrypts a 2-D image in the im2col layout (TenSEAL: ts.im2col_encoding): returns "
          "(vector, windows) for Vector.conv2d_im2col.");
}

}  // namespace vpy
