// Packing::Slots (include/veil/nn/model.hpp): one input per slot, every feature of the
// tensor in a ciphertext of its own, as CryptoNets laid out its images. A layer's
// weights are then the same in every slot, so each linear layer (conv2d, linear,
// pooling, affine, a projection) is an integer combination of ciphertexts
// (veil/combination.hpp): no rotation and no Galois key, and a run serves slots()
// inputs at once. The cost is per run, not per input: the layout for throughput.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/evaluator.hpp"
#include "veil/keys.hpp"
#include "veil/nn/model.hpp"

namespace veil::nn::detail {

class SlotsPlan {
 public:
  // depth: the compiler's first pass (the plan checks that it agrees). Throws as
  // CompiledModel's constructor does.
  SlotsPlan(ContextPtr ctx, const Sequential& model, const CompileOptions& opt, uint32_t depth);
  ~SlotsPlan();
  SlotsPlan(SlotsPlan&&) noexcept;
  SlotsPlan& operator=(SlotsPlan&&) noexcept;

  size_t batch() const;
  size_t input_ciphertexts() const;
  size_t output_ciphertexts() const;
  size_t output_size() const;
  uint32_t input_level() const;
  uint32_t output_level() const;
  double input_scale() const;
  std::string describe() const;
  std::vector<std::vector<double>> encode(const std::vector<std::vector<double>>& images) const;
  std::vector<Ciphertext> run(const Evaluator& eval, const std::vector<Ciphertext>& inputs, const RelinKey& rk) const;
  std::vector<std::vector<double>> decode(const std::vector<std::vector<double>>& outputs, size_t images) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace veil::nn::detail
