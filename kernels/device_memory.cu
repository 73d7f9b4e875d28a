#include "device_memory.cuh"

#include <string>

namespace veil::cuda {

DevicePool::DevicePool(int device, size_t max_pooled_bytes) {
  int supported = 0;
  VEIL_CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device));
  require(supported != 0, ErrorCode::Unsupported,
          "cuda backend: device " + std::to_string(device) + " has no stream-ordered memory pools");
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  VEIL_CUDA_CHECK(cudaMemPoolCreate(&pool_, &props));
  uint64_t threshold = max_pooled_bytes;
  VEIL_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &threshold));
}

DevicePool::~DevicePool() {
  if (pool_) cudaMemPoolDestroy(pool_);  // the backend synchronised its stream first
}

void* DevicePool::allocate(size_t bytes, cudaStream_t stream) {
  void* p = nullptr;
  cudaError_t err = cudaMallocFromPoolAsync(&p, bytes, pool_, stream);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it, give the reserve back, retry once
    trim(stream);
    err = cudaMallocFromPoolAsync(&p, bytes, pool_, stream);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorCode::Backend,
                "cudaMallocFromPoolAsync(" + std::to_string(bytes) + " bytes): " + cudaGetErrorString(err));
  }
  return p;
}

void DevicePool::release(void* ptr, cudaStream_t stream) noexcept {
  if (!ptr) return;
  if (cudaFreeAsync(ptr, stream) != cudaSuccess) {
    cudaGetLastError();  // cannot be queued: wait for the stream's work, then free
    cudaStreamSynchronize(stream);
    cudaFree(ptr);
  }
}

void DevicePool::trim(cudaStream_t stream) noexcept {
  cudaStreamSynchronize(stream);
  cudaMemPoolTrimTo(pool_, 0);
}

}  // namespace veil::cuda
