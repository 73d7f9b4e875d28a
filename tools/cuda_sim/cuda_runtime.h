// Host simulation of the CUDA subset the Veil kernels use (validation only).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <cmath>
#include <chrono>
#include <utility>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(x)
struct dim3 { unsigned x, y, z; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct sim_uint3 { unsigned x = 0, y = 0, z = 0; };
inline thread_local sim_uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;
template <class F> void sim_launch(dim3 grid, dim3 block, F&& f) {
  (void)block;
  gridDim = grid; blockDim = dim3(1, 1, 1);
  for (unsigned z = 0; z < grid.z; ++z) for (unsigned y = 0; y < grid.y; ++y) for (unsigned x = 0; x < grid.x; ++x) {
    blockIdx.x = x; blockIdx.y = y; blockIdx.z = z; threadIdx = sim_uint3{};
    f();
  }
}
inline void __syncthreads() {}
inline uint64_t __umul64hi(uint64_t a, uint64_t b) { return (uint64_t)(((unsigned __int128)a * b) >> 64); }
inline unsigned __brev(unsigned x) { unsigned r = 0; for (int i = 0; i < 32; ++i) { r = (r << 1) | (x & 1); x >>= 1; } return r; }
inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
inline double __ull2double_rn(unsigned long long x) { return (double)x; }
inline unsigned long long __double2ull_rz(double x) { return (unsigned long long)x; }
typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
typedef struct CUstream_st* cudaStream_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
#define cudaStreamNonBlocking 1
struct cudaDeviceProp { char name[256]; size_t totalGlobalMem; int major, minor; };
inline const char* cudaGetErrorString(cudaError_t) { return "sim error"; }
inline cudaError_t cudaGetLastError() { return 0; }
inline cudaError_t cudaGetDeviceCount(int* c) { *c = 1; return 0; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return 0; }
inline cudaError_t cudaSetDevice(int) { return 0; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { *s = (cudaStream_t)0x10; return 0; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return 0; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return 0; }
inline cudaError_t cudaDeviceSynchronize() { return 0; }
inline cudaError_t cudaMalloc(void** p, size_t b) { size_t r = (b + 255) / 256 * 256; *p = std::aligned_alloc(256, r ? r : 256); std::memset(*p, 0xA5, r); return 0; }
inline cudaError_t cudaFree(void* p) { std::free(p); return 0; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t b, cudaMemcpyKind) { std::memcpy(d, s, b); return 0; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t b, cudaMemcpyKind, cudaStream_t) { std::memcpy(d, s, b); return 0; }
inline cudaError_t cudaMemset(void* p, int v, size_t b) { std::memset(p, v, b); return 0; }
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t b, cudaStream_t) { std::memset(p, v, b); return 0; }
inline cudaError_t cudaMemGetInfo(size_t* f, size_t* t) { *f = *t = size_t{16} << 30; return 0; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) { std::snprintf(p->name, 256, "sim"); p->totalGlobalMem = size_t{16} << 30; p->major = 9; p->minor = 0; return 0; }

// Events (host wall clock) and device attributes.
typedef struct sim_event { std::chrono::steady_clock::time_point t; }* cudaEvent_t;
enum cudaDeviceAttr { cudaDevAttrMemoryClockRate = 36, cudaDevAttrGlobalMemoryBusWidth = 37 };
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new sim_event{}; return 0; }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return 0; }
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { e->t = std::chrono::steady_clock::now(); return 0; }
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return 0; }
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count(); return 0; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int) {
  *v = a == cudaDevAttrMemoryClockRate ? 2619000 : 5120; return 0; }  // an H100 SXM's values
