// What every fuzz harness shares (tests/fuzz/README.md): one small parameter set and
// its context, keys and objects, made deterministically so that a finding replays.
// A harness treats veil::Error as the expected outcome of a bad input; anything else
// (a crash, a sanitizer report, another exception) is a finding. After a successful
// load it checks what a load promises: the object serializes again, loads again, and
// works in one operation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>

#include "veil/veil.hpp"

namespace veil::fuzz {

struct Fixture {
  Parameters params;
  ContextPtr ctx;
  KeyGenerator keygen;
  PublicKey pk;
  RelinKey rk;
  GaloisKeys gk;
  Ciphertext ct;
  Plaintext pt;

  static Parameters small() {
    ParameterSpec spec;
    spec.log_n = 12;
    spec.q_bits = {30, 30};
    spec.p_bits = {30};
    spec.default_scale = std::ldexp(1.0, 20);
    return Parameters::create(spec);
  }
  Fixture()
      : params(small()),
        ctx(Context::create(params, BackendKind::Cpu)),
        keygen(ctx, RandomSource::insecure_deterministic(7)),
        pk(keygen.create_public_key()),
        rk(keygen.create_relin_key()),
        gk(keygen.create_galois_keys({1}, false)) {
    Encoder enc(ctx);
    pt = enc.encode(std::vector<double>{0.25, -0.5, 1.0});
    Encryptor e(ctx, pk, RandomSource::insecure_deterministic(8));
    ct = e.encrypt(pt);
  }
};

inline const Fixture& fixture() {
  static const Fixture f;
  return f;
}

// A broken promise: report and abort, so libFuzzer keeps the input.
[[noreturn]] inline void finding(const char* what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what);
  std::abort();
}
inline void expect(bool ok, const char* what) {
  if (!ok) finding(what);
}

inline ByteView view(const uint8_t* data, size_t size) { return ByteView(data, size); }

}  // namespace veil::fuzz

// Each harness defines `void fuzz_one(veil::ByteView)`; veil::Error is the expected
// outcome of bad input and is swallowed here, everything else escapes to libFuzzer.
#define VEIL_FUZZ_TARGET(body)                                                     \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {        \
    try {                                                                          \
      body(veil::fuzz::view(data, size));                                          \
    } catch (const veil::Error&) {                                                 \
    }                                                                              \
    return 0;                                                                      \
  }
