// Untrusted input: an ONNX file (veil compile's input). An import must give a model
// whose float64 evaluation runs on an input of its shape.
#include "fuzz_fixture.hpp"
#include "veil/nn/onnx.hpp"

namespace {
void fuzz_one(veil::ByteView blob) {
  veil::nn::OnnxImportOptions o;
  o.activation_bound = 4;  // Relu/Sigmoid too
  o.activation_degree = 7;
  const veil::nn::Sequential m =
      veil::nn::import_onnx_bytes(std::string_view(reinterpret_cast<const char*>(blob.data()), blob.size()), o);
  // Evaluate what a 10 s limit can: huge convolutions are legal, only slow.
  if (m.input_size() <= (1u << 16) && m.output_shape().size() <= (1u << 16) && m.multiply_adds() <= (1u << 26))
    (void)m.forward(std::vector<double>(m.input_size(), 0.5));
}
}  // namespace
VEIL_FUZZ_TARGET(fuzz_one)
