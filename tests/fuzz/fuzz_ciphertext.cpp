// Untrusted input: a ciphertext blob (the server's infer body). A loaded ciphertext
// re-serializes, loads again and works in an addition and a rescale.
#include "fuzz_fixture.hpp"

namespace {
void fuzz_one(veil::ByteView blob) {
  const auto& f = veil::fuzz::fixture();
  const veil::Ciphertext ct = veil::deserialize_ciphertext(f.ctx, blob);
  const veil::Ciphertext back = veil::deserialize_ciphertext(f.ctx, veil::serialize(ct, false));
  veil::fuzz::expect(back.level() == ct.level() && back.size() == ct.size(), "ciphertext round trip changed it");
  veil::Evaluator eval(f.ctx);
  const veil::Ciphertext sum = eval.add(ct, back);
  if (sum.level() >= 1) (void)eval.rescale(sum);
}
}  // namespace
VEIL_FUZZ_TARGET(fuzz_one)
