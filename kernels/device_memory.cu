#include "device_memory.cuh"

#include <string>

namespace veil::cuda {

DevicePool::~DevicePool() { trim(); }

void* DevicePool::allocate(size_t bytes, cudaStream_t stream) {
  const size_t size = block_bytes(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      pooled_ -= size;
      return p;
    }
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it, give the pooled blocks back, retry once
    cudaStreamSynchronize(stream);
    trim();
    err = cudaMalloc(&p, size);
  }
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorCode::Backend,
                "cudaMalloc(" + std::to_string(size) + " bytes): " + cudaGetErrorString(err));
  }
  return p;
}

void DevicePool::release(void* ptr, size_t bytes) noexcept {
  if (!ptr) return;
  const size_t size = block_bytes(bytes);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pooled_ + size <= max_pooled_) {
      try {
        free_[size].push_back(ptr);
        pooled_ += size;
        return;
      } catch (...) {  // no host memory for the bookkeeping: free the block instead
      }
    }
  }
  // Over the cap: free it once every queued use (and a queued wipe) is done.
  cudaDeviceSynchronize();
  cudaFree(ptr);
}

void DevicePool::trim() noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!free_.empty()) cudaDeviceSynchronize();  // pooled blocks may still be read by queued work
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) cudaFree(p);
  free_.clear();
  pooled_ = 0;
}

}  // namespace veil::cuda
