// Host simulation of the CUDA subset the Veil kernels use (validation only).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <cstdio>
#include <cmath>
#include <chrono>
#include <utility>
#include <memory>
#include <type_traits>
#include <functional>
#include <tuple>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// Static shared arrays are function-local thread_local statics, shared by the
// threads (fibers) of the block that runs, and separate for each OS thread that
// launches kernels (two host threads driving two backends at once). convert.py
// follows each `__shared__ T name[...];` with SIM_SHARED_TOUCH(name), which fills
// the array with 0xA5 bytes the first time a thread of a new block passes the
// declaration, i.e. before any thread of that block can touch it; reads of words no thread of the block wrote show up as wrong
// results instead of stale values of the previous block. convert.py rejects
// `extern __shared__` (dynamic shared memory is not simulated).
#define __shared__ static thread_local
#define __launch_bounds__(x)
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct sim_uint3 { unsigned x = 0, y = 0, z = 0; };
// One OS thread runs a whole launch (every thread of a block is a fiber on it), so
// these are set by the scheduler on every switch into a fiber.
inline thread_local sim_uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;

// The scheduler (sim_fiber.cpp). A launch runs its blocks one after another; a
// block runs blockDim.x * y * z fibers in phases separated by __syncthreads. The
// order of threads in a phase and of blocks in the grid comes from VEIL_SIM_ORDER
// (forward | reverse | shuffle, with VEIL_SIM_SEED); VEIL_SIM_THREADS=1 runs one
// thread per block (blockDim forced to 1, no fibers, __syncthreads a no-op).
namespace sim_detail {
using body_fn = void (*)(void*);
void launch(dim3 grid, dim3 block, size_t dynamic_smem, const char* kernel, body_fn fn, void* ctx);
void syncthreads(const char* file, int line);
// Launch census (tools/cuda_sim/launch_census.cpp): every launch of every host thread
// counted by kernel name, with the blocks of its grid and its threads per block.
struct KernelTally {
  const char* kernel;
  unsigned long long launches, blocks, threads_per_block;
};
void reset_launch_tally();
std::vector<KernelTally> launch_tally();  // in first-launch order
inline thread_local unsigned long long block_serial = 0;  // incremented before every block
struct shared_reg { unsigned long long serial = 0; };      // last block that poisoned the array
inline void shared_touch(shared_reg& r, void* p, size_t bytes) {
  if (r.serial != block_serial) {
    r.serial = block_serial;
    std::memset(p, 0xA5, bytes);
  }
}
}  // namespace sim_detail
#define SIM_SHARED_TOUCH(name)                                                          \
  do {                                                                                  \
    static thread_local ::sim_detail::shared_reg sim_shared_reg_;                                  \
    ::sim_detail::shared_touch(sim_shared_reg_, (void*)&(name), sizeof(name));          \
  } while (0)
#define __syncthreads() ::sim_detail::syncthreads(__FILE__, __LINE__)

// kernel<<<grid, block, smem, stream>>>(args) ->
//   sim_launch(grid, block, smem, "kernel", stream, [](auto... a) { kernel(a...); }, args)
// The arguments are evaluated and copied at the launch, as CUDA does, so a launch
// recorded by stream capture (below) replays with the values it was given.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;
namespace sim_detail {
[[noreturn]] void fail(const char* message);  // prints "cuda_sim: message" and aborts
bool record_if_capturing(cudaStream_t s, const char* what, std::function<void()>& op);
}  // namespace sim_detail
template <class K, class... A>
void sim_launch(dim3 grid, dim3 block, size_t dynamic_smem, const char* kernel, cudaStream_t stream, K k,
                A&&... args) {
  std::function<void()> op = [=, tup = std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)]() mutable {
    auto call = [&] { std::apply(k, tup); };
    using Fn = decltype(call);
    sim_detail::launch(grid, block, dynamic_smem, kernel, [](void* p) { (*static_cast<Fn*>(p))(); },
                       static_cast<void*>(&call));
  };
  if (!sim_detail::record_if_capturing(stream, kernel, op)) op();
}
inline uint64_t __umul64hi(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * b) >> 64); }
inline unsigned __brev(unsigned x) { unsigned r = 0; for (int i = 0; i < 32; ++i) { r = (r << 1) | (x & 1); x >>= 1; } return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __ull2double_rn(unsigned long long x) { return (double)x; }
inline unsigned long long __double2ull_rz(double x) { return (unsigned long long)x; }
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
#define cudaStreamNonBlocking 1
struct cudaDeviceProp { char name[256]; size_t totalGlobalMem; int major, minor; };
inline const char* cudaGetErrorString(cudaError_t) { return "sim error"; }
inline cudaError_t cudaGetLastError() { return 0; }
inline cudaError_t cudaGetDeviceCount(int* c) { *c = 1; return 0; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return 0; }
inline cudaError_t cudaSetDevice(int) { return 0; }
inline cudaError_t cudaMemGetInfo(size_t* f, size_t* t) { *f = *t = size_t{16} << 30; return 0; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) { std::snprintf(p->name, 256, "sim"); p->totalGlobalMem = size_t{16} << 30; p->major = 9; p->minor = 0; return 0; }

// Events (host wall clock) and device attributes.
typedef struct sim_event { std::chrono::steady_clock::time_point t; }* cudaEvent_t;
enum cudaDeviceAttr { cudaDevAttrMemoryClockRate = 36, cudaDevAttrGlobalMemoryBusWidth = 37,
                      cudaDevAttrMemoryPoolsSupported = 115 };
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new sim_event{}; return 0; }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return 0; }
constexpr unsigned cudaEventDisableTiming = 2;
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { *e = new sim_event{}; return 0; }
// Launches and copies run at once on the calling thread: every stream is always idle.
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count(); return 0; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrMemoryPoolsSupported ? 1 : a == cudaDevAttrMemoryClockRate ? 2619000 : 5120;  // an H100 SXM's values
  return 0; }

// Stream-ordered pools: every allocation is a fresh poisoned block (as cudaMalloc),
// every free immediate (streams never have pending work here).
typedef struct sim_mem_pool* cudaMemPool_t;
enum cudaMemAllocationType { cudaMemAllocationTypePinned = 1 };
enum cudaMemLocationType { cudaMemLocationTypeDevice = 1 };
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold = 4 };
struct cudaMemLocation { cudaMemLocationType type; int id; };
struct cudaMemPoolProps { cudaMemAllocationType allocType; int handleTypes; cudaMemLocation location; };
inline cudaError_t cudaMemPoolCreate(cudaMemPool_t* p, const cudaMemPoolProps*) { *p = (cudaMemPool_t)0x20; return 0; }
inline cudaError_t cudaMemPoolDestroy(cudaMemPool_t) { return 0; }
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return 0; }
inline cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t) { return 0; }

#include "sim_graph.hpp"
