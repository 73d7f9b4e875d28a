// Device memory: a pool of cudaMalloc blocks keyed by size (steady-state
// operations allocate nothing), and an owning array for the constant tables.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "cuda_check.cuh"

namespace veil::cuda {

class DevicePool {
 public:
  // Keeps at most max_pooled_bytes of released blocks for reuse.
  explicit DevicePool(size_t max_pooled_bytes) : max_pooled_(max_pooled_bytes) {}
  ~DevicePool();
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // Rounded-up size of the block that serves `bytes`.
  static size_t block_bytes(size_t bytes) { return (bytes + 255) / 256 * 256; }
  // A block of block_bytes(bytes). When cudaMalloc runs out of memory the pool
  // is emptied (after the queued work on `stream` is done) and the allocation
  // retried once.
  void* allocate(size_t bytes, cudaStream_t stream);
  // Returns a block (work already queued on the backend's single stream that
  // uses it stays ordered before any reuse). Never throws.
  void release(void* ptr, size_t bytes) noexcept;
  // Frees every pooled block.
  void trim() noexcept;

 private:
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t pooled_ = 0;
  size_t max_pooled_;
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
