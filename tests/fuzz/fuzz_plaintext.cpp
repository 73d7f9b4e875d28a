// Untrusted input: a plaintext blob. A loaded plaintext re-serializes and decodes.
#include "fuzz_fixture.hpp"

namespace {
void fuzz_one(veil::ByteView blob) {
  const auto& f = veil::fuzz::fixture();
  const veil::Plaintext pt = veil::deserialize_plaintext(f.ctx, blob);
  const veil::Bytes again = veil::serialize(pt);
  (void)veil::deserialize_plaintext(f.ctx, again);
  (void)veil::Encoder(f.ctx).decode(pt);
}
}  // namespace
VEIL_FUZZ_TARGET(fuzz_one)
