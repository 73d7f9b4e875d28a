// Streams, copies, stream capture and CUDA graphs for the simulation (included at the
// end of cuda_runtime.h). Work runs at once on the calling thread, except on a stream
// that is capturing: there kernel launches, device-to-device copies, copies from or to
// pinned host memory (cudaMallocHost) and memsets are recorded, and cudaGraphLaunch
// replays them in order. What CUDA refuses during a capture stops the simulation with
// a message instead of returning an error (the backend must never try it): a copy from
// or to pageable host memory, synchronising, stream-ordered allocation or events on
// the capturing stream, device-wide synchronisation, cudaFree, and cudaMalloc /
// cudaMemcpy / cudaMemset ("potentially unsafe" calls) unless the capture is relaxed.
#pragma once
#include <atomic>
#include <map>
#include <mutex>
#include <string>

enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
                             cudaStreamCaptureModeRelaxed = 2 };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1 };

struct CUstream_st {
  std::vector<std::function<void()>>* capture = nullptr;  // the graph being recorded, or none
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
};
struct sim_graph { std::vector<std::function<void()>> ops; };
typedef sim_graph* cudaGraph_t;
struct sim_graph_exec { std::vector<std::function<void()>> ops; };
typedef sim_graph_exec* cudaGraphExec_t;

namespace sim_detail {
inline std::atomic<int> g_active_captures{0};
inline thread_local int t_strict_captures = 0;  // this thread's captures in global / thread-local mode
inline std::mutex g_pinned_mutex;
inline std::map<const char*, size_t> g_pinned;  // cudaMallocHost blocks: start -> bytes

[[noreturn]] inline void refuse(const std::string& what) {
  fail((what + " during stream capture: CUDA refuses it and invalidates the capture").c_str());
}
inline void check_no_capture(const char* api) {
  if (g_active_captures.load() > 0) refuse(api);
}
inline void check_unsafe_allowed(const char* api) {
  if (t_strict_captures > 0)
    refuse(std::string(api) + " (a potentially unsafe call, allowed only in cudaStreamCaptureModeRelaxed)");
}
inline bool pinned(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(g_pinned_mutex);
  auto it = g_pinned.upper_bound(static_cast<const char*>(p));
  if (it == g_pinned.begin()) return false;
  --it;
  return static_cast<const char*>(p) + bytes <= it->first + it->second;
}
inline bool record_if_capturing(cudaStream_t s, const char* what, std::function<void()>& op) {
  (void)what;
  if (!s || !s->capture) return false;
  s->capture->push_back(std::move(op));
  return true;
}
}  // namespace sim_detail

inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { *s = new CUstream_st{}; return 0; }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s && s->capture) sim_detail::refuse("cudaStreamDestroy of the capturing stream");
  delete s;
  return 0;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s && s->capture) sim_detail::refuse("cudaStreamSynchronize of the capturing stream");
  return 0;
}
inline cudaError_t cudaDeviceSynchronize() { sim_detail::check_no_capture("cudaDeviceSynchronize"); return 0; }

inline cudaError_t cudaMalloc(void** p, size_t b) {
  sim_detail::check_unsafe_allowed("cudaMalloc");
  size_t r = (b + 255) / 256 * 256;
  *p = std::aligned_alloc(256, r ? r : 256);
  std::memset(*p, 0xA5, r);
  return 0;
}
inline cudaError_t cudaFree(void* p) { sim_detail::check_no_capture("cudaFree"); std::free(p); return 0; }
inline cudaError_t cudaMallocHost(void** p, size_t b) {
  sim_detail::check_unsafe_allowed("cudaMallocHost");
  size_t r = (b + 255) / 256 * 256;
  *p = std::aligned_alloc(256, r ? r : 256);
  std::lock_guard<std::mutex> lock(sim_detail::g_pinned_mutex);
  sim_detail::g_pinned[static_cast<const char*>(*p)] = r ? r : 256;
  return 0;
}
inline cudaError_t cudaFreeHost(void* p) {
  sim_detail::check_no_capture("cudaFreeHost");
  {
    std::lock_guard<std::mutex> lock(sim_detail::g_pinned_mutex);
    if (!sim_detail::g_pinned.erase(static_cast<const char*>(p))) sim_detail::fail("cudaFreeHost of a pointer cudaMallocHost did not return");
  }
  std::free(p);
  return 0;
}

inline cudaError_t cudaMemcpy(void* d, const void* s, size_t b, cudaMemcpyKind) {
  sim_detail::check_unsafe_allowed("cudaMemcpy");
  std::memcpy(d, s, b);
  return 0;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t b, cudaMemcpyKind kind, cudaStream_t st) {
  if (st && st->capture) {
    const void* host = kind == cudaMemcpyHostToDevice ? s : kind == cudaMemcpyDeviceToHost ? d : nullptr;
    if (host && !sim_detail::pinned(host, b))
      sim_detail::refuse("cudaMemcpyAsync from or to pageable host memory");
  }
  std::function<void()> op = [=] { std::memcpy(d, s, b); };
  if (!sim_detail::record_if_capturing(st, "cudaMemcpyAsync", op)) op();
  return 0;
}
inline cudaError_t cudaMemcpyPeerAsync(void* d, int, const void* s, int, size_t b, cudaStream_t st) {
  if (st && st->capture) sim_detail::refuse("cudaMemcpyPeerAsync (not used in captures here)");
  std::memcpy(d, s, b);
  return 0;
}
inline cudaError_t cudaMemset(void* p, int v, size_t b) {
  sim_detail::check_unsafe_allowed("cudaMemset");
  std::memset(p, v, b);
  return 0;
}
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t b, cudaStream_t st) {
  std::function<void()> op = [=] { std::memset(p, v, b); };
  if (!sim_detail::record_if_capturing(st, "cudaMemsetAsync", op)) op();
  return 0;
}

inline cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t, unsigned) {
  if (s && s->capture) sim_detail::refuse("cudaStreamWaitEvent on the capturing stream (not used in captures here)");
  return 0;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (s && s->capture) sim_detail::refuse("cudaEventRecord on the capturing stream (not used in captures here)");
  e->t = std::chrono::steady_clock::now();
  return 0;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return 0; }

// Stream-ordered pools: every allocation is a fresh poisoned block (as cudaMalloc),
// every free immediate. Graph memory nodes are not simulated: allocating from a pool
// on a capturing stream stops the simulation.
inline cudaError_t cudaMallocFromPoolAsync(void** p, size_t b, cudaMemPool_t, cudaStream_t s) {
  if (s && s->capture) sim_detail::refuse("cudaMallocFromPoolAsync on the capturing stream (graph memory nodes are not simulated)");
  size_t r = (b + 255) / 256 * 256;
  *p = std::aligned_alloc(256, r ? r : 256);
  std::memset(*p, 0xA5, r);
  return 0;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t s) {
  if (s && s->capture) sim_detail::refuse("cudaFreeAsync on the capturing stream (graph memory nodes are not simulated)");
  std::free(p);
  return 0;
}

// ---- capture and graphs ----
inline cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  if (!s) sim_detail::fail("cudaStreamBeginCapture on the legacy stream (CUDA refuses it)");
  if (s->capture) sim_detail::fail("cudaStreamBeginCapture on a stream that is already capturing");
  s->capture = new std::vector<std::function<void()>>();
  s->mode = mode;
  ++sim_detail::g_active_captures;
  if (mode != cudaStreamCaptureModeRelaxed) ++sim_detail::t_strict_captures;
  return 0;
}
inline cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  if (!s || !s->capture) sim_detail::fail("cudaStreamEndCapture on a stream that is not capturing");
  *graph = new sim_graph{std::move(*s->capture)};
  delete s->capture;
  s->capture = nullptr;
  --sim_detail::g_active_captures;
  if (s->mode != cudaStreamCaptureModeRelaxed) --sim_detail::t_strict_captures;
  return 0;
}
inline cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  *status = s && s->capture ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return 0;
}
inline cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
  sim_detail::check_no_capture("cudaGraphInstantiate");
  *exec = new sim_graph_exec{g->ops};
  return 0;
}
inline cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return 0; }
inline cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return 0; }
inline cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (s && s->capture) sim_detail::fail("cudaGraphLaunch on a capturing stream (not used here)");
  for (auto& op : e->ops) op();
  return 0;
}
// How many nodes a graph has (cudaGraphGetNodes with a null array).
typedef struct sim_graph_node* cudaGraphNode_t;
inline cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t*, size_t* count) { *count = g->ops.size(); return 0; }
