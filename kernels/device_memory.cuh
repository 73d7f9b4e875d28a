// Device memory: each backend's blocks come from its own CUDA stream-ordered
// memory pool (cudaMallocFromPoolAsync / cudaFreeAsync), which keeps released
// memory reserved up to a threshold, so steady-state operations reach no OS
// allocator, and which orders every reuse after the work queued on the releasing
// stream; plus an owning array for the constant tables.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda_check.cuh"

namespace veil::cuda {

class DevicePool {
 public:
  // A pool on `device` that keeps up to max_pooled_bytes of released memory
  // reserved. Error(Unsupported) when the device has no stream-ordered pools.
  DevicePool(int device, size_t max_pooled_bytes);
  ~DevicePool();
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // `bytes` of device memory, usable by work queued on `stream` from now on. When
  // the device is out of memory, the pool's reserve is released (after the work
  // queued on `stream`) and the allocation retried once; then Error(Backend).
  void* allocate(size_t bytes, cudaStream_t stream);
  // Returns a block once the work queued on `stream` so far is done. Never throws.
  void release(void* ptr, cudaStream_t stream) noexcept;
  // Gives the reserved memory back to the device (after `stream`'s queued work).
  void trim(cudaStream_t stream) noexcept;

 private:
  cudaMemPool_t pool_ = nullptr;
};

// An owning device array of trivially copyable T, filled once from the host.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(const std::vector<T>& host) { assign(host.data(), host.size()); }
  ~DeviceArray() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& o) noexcept : ptr_(o.ptr_), size_(o.size_) {
    o.ptr_ = nullptr;
    o.size_ = 0;
  }
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      if (ptr_) cudaFree(ptr_);
      ptr_ = o.ptr_;
      size_ = o.size_;
      o.ptr_ = nullptr;
      o.size_ = 0;
    }
    return *this;
  }

  void assign(const T* host, size_t count) {
    if (ptr_) {
      cudaFree(ptr_);
      ptr_ = nullptr;
      size_ = 0;
    }
    if (count == 0) return;
    VEIL_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(T)));
    size_ = count;
    // Synchronous: the host vector may go away right after.
    VEIL_CUDA_CHECK(cudaMemcpy(ptr_, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }
  const T* get() const { return ptr_; }
  size_t size() const { return size_; }

 private:
  T* ptr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace veil::cuda
