// CUDA backend seam. The device kernels (NTT, key switching, rotation) are
// the subject of the CUDA-backend issue; until they land this file provides
// device discovery and refuses to create a backend with a clear error.
#include <cuda_runtime.h>

#include <string>

#include "../host/cuda_seam.hpp"
#include "veil/error.hpp"

namespace veil::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return count;
}

std::string device_description(int device) {
  cudaDeviceProp prop{};
  cudaError_t err = cudaGetDeviceProperties(&prop, device);
  if (err != cudaSuccess)
    throw Error(ErrorCode::Backend, std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(err));
  return std::string(prop.name) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB, sm_" +
         std::to_string(prop.major) + std::to_string(prop.minor);
}

std::shared_ptr<Backend> make_backend(std::shared_ptr<const RnsTables>, int) {
  throw Error(ErrorCode::Unsupported,
              "the CUDA backend's kernels are not implemented yet in this build; use BackendKind::Cpu");
}

}  // namespace veil::cuda
