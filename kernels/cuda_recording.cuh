// A recording of the cuda backend (Backend::begin_recording): the work of a sequence
// of calls captured from the backend's stream into a CUDA graph, replayed later with
// one cudaGraphLaunch. The memory those calls allocate comes from the recording's own
// arena (plain cudaMalloc chunks, so the graph holds only kernels, copies and memsets,
// no graph memory nodes): its addresses stay fixed for every replay and the memory
// lives as long as the recording.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "veil/backend.hpp"

namespace veil::cuda {

// Bump allocation in chunks of at least 64 MiB, 256-byte aligned; a released block
// goes back to a free list by size, for later allocations of the same recording
// (one stream: the captured work runs in order, so reuse is safe).
class RecordingArena {
 public:
  RecordingArena() = default;
  ~RecordingArena();  // frees the chunks: the owner has synchronised the stream
  RecordingArena(const RecordingArena&) = delete;
  RecordingArena& operator=(const RecordingArena&) = delete;

  void* allocate(size_t bytes);  // Error(Backend) when the device is out of memory
  void release(void* p, size_t bytes);
  bool owns(const void* p) const;
  size_t reserved_bytes() const;

 private:
  struct Chunk {
    char* base;
    size_t size, used;
  };
  static size_t rounded(size_t bytes) { return (bytes + 255) / 256 * 256; }
  std::vector<Chunk> chunks_;
  std::multimap<size_t, void*> free_;  // rounded size -> block
};

class CudaRecording final : public BackendRecording {
 public:
  struct DeferredRelease {  // memory from before the recording that a recorded call released
    uint64_t* ptr;
    size_t words;
    bool wipe;
  };
  // `retire` runs first in the destructor (the backend forgets the recording and
  // releases the deferred blocks).
  CudaRecording(const void* owner, cudaStream_t stream, std::function<void(CudaRecording&)> retire)
      : owner_(owner), stream_(stream), thread_(std::this_thread::get_id()), retire_(std::move(retire)) {}
  ~CudaRecording() override;
  size_t operations() const override { return nodes_; }

  const void* owner() const { return owner_; }
  cudaStream_t stream() const { return stream_; }
  std::thread::id thread() const { return thread_; }
  RecordingArena& arena() { return arena_; }
  std::vector<DeferredRelease>& deferred() { return deferred_; }
  // Pinned host memory holding `words` words, alive as long as the recording: a
  // source that a captured host-to-device copy may read at every replay.
  uint64_t* pinned_words(size_t words);
  // Turns the captured graph into the replayable one (takes ownership of `graph`).
  void instantiate(cudaGraph_t graph);
  // Queues a replay on `stream`.
  void launch(cudaStream_t stream);
  // Waits until the last replay queued has finished.
  void wait_for_replays() noexcept;

 private:
  const void* owner_;
  cudaStream_t stream_;
  std::thread::id thread_;
  std::function<void(CudaRecording&)> retire_;
  RecordingArena arena_;
  std::vector<DeferredRelease> deferred_;
  std::vector<void*> pinned_;
  cudaGraphExec_t exec_ = nullptr;
  cudaEvent_t replayed_ = nullptr;  // recorded after each replay
  size_t nodes_ = 0;
};

}  // namespace veil::cuda
