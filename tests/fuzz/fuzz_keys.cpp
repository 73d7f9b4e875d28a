// Untrusted input: key blobs (a session's body holds a relinearization key and Galois
// keys). The first byte picks the loader; a loaded key re-serializes, loads again and
// works: the relinearization key in a multiplication, Galois keys in a rotation, a
// public key in an encryption, a secret key in a decryption.
#include "fuzz_fixture.hpp"

namespace {
void fuzz_one(veil::ByteView in) {
  if (in.empty()) return;
  const auto& f = veil::fuzz::fixture();
  const veil::ByteView blob = in.subspan(1);
  veil::Evaluator eval(f.ctx);
  switch (in[0] % 4) {
    case 0: {
      const veil::RelinKey rk = veil::deserialize_relin_key(f.ctx, blob);
      (void)veil::deserialize_relin_key(f.ctx, veil::serialize(rk));
      (void)eval.multiply(f.ct, f.ct, rk);
      break;
    }
    case 1: {
      const veil::GaloisKeys gk = veil::deserialize_galois_keys(f.ctx, blob);
      (void)veil::deserialize_galois_keys(f.ctx, veil::serialize(gk));
      for (const auto& [elt, key] : gk.keys) {
        (void)key;
        (void)eval.apply_galois(f.ct, elt, gk);
        break;
      }
      break;
    }
    case 2: {
      const veil::PublicKey pk = veil::deserialize_public_key(f.ctx, blob);
      (void)veil::deserialize_public_key(f.ctx, veil::serialize(pk));
      veil::Encryptor e(f.ctx, pk, veil::RandomSource::insecure_deterministic(1));
      (void)e.encrypt(f.pt);
      break;
    }
    default: {
      const veil::SecretKey sk = veil::deserialize_secret_key(f.ctx, blob);
      (void)veil::deserialize_secret_key(f.ctx, veil::serialize_secret_key(sk));
      (void)veil::Decryptor(f.ctx, sk).decrypt(f.ct);
      break;
    }
  }
}
}  // namespace
VEIL_FUZZ_TARGET(fuzz_one)
