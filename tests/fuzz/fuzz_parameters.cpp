// Untrusted input: a parameters blob (a model file embeds one; a client reads one from
// a server). A load must give parameters that serialize to the same bytes.
#include "fuzz_fixture.hpp"

namespace {
void fuzz_one(veil::ByteView blob) {
  const veil::Parameters p = veil::deserialize_parameters(blob);
  veil::fuzz::expect(p.security() == veil::Security::HEStandard128, "insecure parameters loaded by default");
  const veil::Bytes again = veil::serialize(p);
  veil::fuzz::expect(veil::Bytes(blob.begin(), blob.end()) == again, "parameters do not re-serialize identically");
}
}  // namespace
VEIL_FUZZ_TARGET(fuzz_one)
