// Helpers of the cuda backend's tests (test_cuda_backend.cpp, test_cuda_recording.cpp),
// which run against a real device and in tools/cuda_sim.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "veil/backend.hpp"
#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/params.hpp"

namespace veil::test {

// Why the cuda backend cannot be created here (for the skip message).
inline std::string no_cuda_reason() {
  static const std::string reason = [] {
    try {
      ParameterSpec spec;
      spec.log_n = 12;
      spec.q_bits = {40};
      spec.p_bits = {40};
      spec.default_scale = 0x1p20;
      make_backend(BackendKind::Cuda, RnsTables::build(Parameters::create(spec)));
      return std::string("cuda_available() is false");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  }();
  return reason;
}

#define VEIL_REQUIRE_CUDA() \
  if (!veil::cuda_available()) GTEST_SKIP() << "no CUDA device: " << no_cuda_reason()

// First differing word (limb and coefficient) and how many differ.
inline ::testing::AssertionResult same_words(const std::vector<uint64_t>& cpu, const std::vector<uint64_t>& gpu,
                                      uint64_t n) {
  if (cpu.size() != gpu.size())
    return ::testing::AssertionFailure() << "sizes differ: cpu " << cpu.size() << ", cuda " << gpu.size();
  size_t first = cpu.size(), count = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (cpu[i] != gpu[i]) {
      if (first == cpu.size()) first = i;
      ++count;
    }
  }
  if (count == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << count << " of " << cpu.size() << " words differ; first at limb "
                                       << first / n << ", coefficient " << first % n << ": cpu " << cpu[first]
                                       << ", cuda " << gpu[first];
}

inline std::vector<uint64_t> download(const ContextPtr& ctx, const uint64_t* data, size_t words) {
  std::vector<uint64_t> v(words);
  ctx->backend().download(v.data(), data, words);
  return v;
}

}  // namespace veil::test
