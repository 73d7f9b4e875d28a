// CUDA runtime errors become veil::Error(Backend, "<call>: <message>"), so
// callers of the backend see the same exception type as for every other failure.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "veil/error.hpp"

namespace veil::cuda {

[[noreturn]] inline void throw_cuda_error(const char* call, cudaError_t err) {
  throw Error(ErrorCode::Backend, std::string(call) + ": " + cudaGetErrorString(err));
}

inline void check(cudaError_t err, const char* call) {
  if (err != cudaSuccess) throw_cuda_error(call, err);
}

// After a kernel launch: launch-configuration errors are reported at once;
// faults inside the kernel surface at the next synchronising call.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

}  // namespace veil::cuda

// Stringifies the call so the message names it.
#define VEIL_CUDA_CHECK(call) ::veil::cuda::check((call), #call)
