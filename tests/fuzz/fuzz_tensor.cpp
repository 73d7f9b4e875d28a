// Untrusted input: .npy and CSV inputs (veil encrypt and veil query read them). The
// first byte picks the format; a parsed tensor formats and parses back to itself.
#include "fuzz_fixture.hpp"
#include "veil/tensor_io.hpp"

namespace {
void fuzz_one(veil::ByteView in) {
  if (in.empty()) return;
  const auto body = in.subspan(1);
  if (in[0] % 2 == 0) {
    const veil::Tensor t = veil::parse_npy(body);
    const veil::Tensor back = veil::parse_npy(veil::format_npy(t));
    veil::fuzz::expect(back.shape == t.shape && back.data.size() == t.data.size(), ".npy round trip changed the tensor");
  } else {
    (void)veil::parse_csv(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()));
  }
}
}  // namespace
VEIL_FUZZ_TARGET(fuzz_one)
