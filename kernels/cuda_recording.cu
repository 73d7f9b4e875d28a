#include "cuda_recording.cuh"

#include <algorithm>
#include <string>

#include "cuda_check.cuh"

namespace veil::cuda {

namespace {
constexpr size_t kChunkBytes = size_t{64} << 20;
}

RecordingArena::~RecordingArena() {
  for (const Chunk& c : chunks_) cudaFree(c.base);
}

void* RecordingArena::allocate(size_t bytes) {
  const size_t size = rounded(bytes ? bytes : 1);
  if (auto it = free_.find(size); it != free_.end()) {
    void* p = it->second;
    free_.erase(it);
    return p;
  }
  for (Chunk& c : chunks_)
    if (c.size - c.used >= size) {
      void* p = c.base + c.used;
      c.used += size;
      return p;
    }
  // cudaMalloc during a relaxed-mode capture is allowed; the memory is not part of the graph.
  Chunk c{nullptr, std::max(size, kChunkBytes), size};
  const cudaError_t err = cudaMalloc(reinterpret_cast<void**>(&c.base), c.size);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw Error(ErrorCode::Backend, "cuda recording: cudaMalloc(" + std::to_string(c.size) +
                                        " bytes) for the recording's memory: " + cudaGetErrorString(err));
  }
  chunks_.push_back(c);
  return c.base;
}

void RecordingArena::release(void* p, size_t bytes) { free_.emplace(rounded(bytes ? bytes : 1), p); }

bool RecordingArena::owns(const void* p) const {
  const char* b = static_cast<const char*>(p);
  for (const Chunk& c : chunks_)
    if (b >= c.base && b < c.base + c.size) return true;
  return false;
}

size_t RecordingArena::reserved_bytes() const {
  size_t total = 0;
  for (const Chunk& c : chunks_) total += c.size;
  return total;
}

CudaRecording::~CudaRecording() {
  if (retire_) retire_(*this);  // waits for replays in flight, releases the deferred blocks
  if (exec_) cudaGraphExecDestroy(exec_);
  if (replayed_) cudaEventDestroy(replayed_);
  for (void* p : pinned_) cudaFreeHost(p);
}

uint64_t* CudaRecording::pinned_words(size_t words) {
  void* p = nullptr;
  VEIL_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(words, 1) * sizeof(uint64_t)));
  pinned_.push_back(p);
  return static_cast<uint64_t*>(p);
}

void CudaRecording::instantiate(cudaGraph_t graph) {
  size_t nodes = 0;
  cudaError_t err = cudaGraphGetNodes(graph, nullptr, &nodes);
  if (err == cudaSuccess) err = cudaGraphInstantiate(&exec_, graph, 0);
  cudaGraphDestroy(graph);
  if (err != cudaSuccess) {
    cudaGetLastError();
    exec_ = nullptr;
    throw Error(ErrorCode::Backend, std::string("cuda recording: cudaGraphInstantiate: ") + cudaGetErrorString(err));
  }
  nodes_ = nodes;
}

void CudaRecording::launch(cudaStream_t stream) {
  if (!replayed_) VEIL_CUDA_CHECK(cudaEventCreateWithFlags(&replayed_, cudaEventDisableTiming));
  VEIL_CUDA_CHECK(cudaGraphLaunch(exec_, stream));
  VEIL_CUDA_CHECK(cudaEventRecord(replayed_, stream));
}

void CudaRecording::wait_for_replays() noexcept {
  if (replayed_) cudaEventSynchronize(replayed_);
}

}  // namespace veil::cuda
