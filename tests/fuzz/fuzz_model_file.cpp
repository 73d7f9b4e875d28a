// Untrusted input: a model file (veil serve and veil eval read them). A load must
// re-serialize to the same bytes and give a model whose float64 evaluation runs.
#include "fuzz_fixture.hpp"
#include "veil/nn/model_file.hpp"

namespace {
void fuzz_one(veil::ByteView blob) {
  const veil::nn::ModelFile m = veil::nn::deserialize_model(blob);
  veil::fuzz::expect(veil::nn::serialize_model(m) == veil::Bytes(blob.begin(), blob.end()),
                     "model file does not re-serialize identically");
  if (m.model.input_size() <= (1u << 16) && m.model.multiply_adds() <= (1u << 26))
    (void)m.model.forward(std::vector<double>(m.model.input_size(), 0.5));
}
}  // namespace
VEIL_FUZZ_TARGET(fuzz_one)
