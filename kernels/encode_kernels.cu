// The FFT's large stages one launch each (butterfly t of the stage: block t / h,
// offset t mod h); the stages whose butterflies stay inside aligned runs of kFftTile
// values (h <= kFftTile / 2) in one launch, a run per block in shared memory. Then one
// launch permutes, scales, rounds and writes every limb.
#include "cuda_check.cuh"
#include "device_arith.cuh"
#include "elementwise_kernels.cuh"
#include "encode_kernels.cuh"

namespace veil::cuda {
namespace {

__device__ __forceinline__ double dsub(double a, double b) { return __dadd_rn(a, -b); }

constexpr uint32_t kLogFftTile = 11;  // 2048 values = 32 KiB of shared memory per block
constexpr uint32_t kFftTile = 1u << kLogFftTile;

// Host: a' = a + b; b' = (a - b) w with (x + iy) w = (x wr - y wi) + (x wi + y wr) i.
__device__ __forceinline__ void encode_butterfly(ComplexDouble& a, ComplexDouble& b, ComplexDouble w) {
  const double dr = dsub(a.re, b.re), di = dsub(a.im, b.im);
  a = ComplexDouble{__dadd_rn(a.re, b.re), __dadd_rn(a.im, b.im)};
  b = ComplexDouble{dsub(__dmul_rn(dr, w.re), __dmul_rn(di, w.im)), __dadd_rn(__dmul_rn(dr, w.im), __dmul_rn(di, w.re))};
}

__global__ void fft_stage_kernel(ComplexDouble* v, const ComplexDouble* roots, uint32_t log_half, size_t butterflies) {
  const uint64_t half = uint64_t{1} << log_half;
  for (size_t t = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < butterflies;
       t += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const uint64_t j = t & (half - 1), i = (t >> log_half) << (log_half + 1);
    encode_butterfly(v[i + j], v[i + j + half], roots[half - 1 + j]);
  }
}

// Block x: values [x 2^log_tile, (x + 1) 2^log_tile), stages h = 2^(log_tile - 1) .. 1.
__global__ void fft_tile_kernel(ComplexDouble* v, const ComplexDouble* roots, uint32_t log_tile) {
  __shared__ ComplexDouble sh[kFftTile];
  const uint32_t tile = 1u << log_tile;
  ComplexDouble* run = v + (static_cast<size_t>(blockIdx.x) << log_tile);
  for (uint32_t i = threadIdx.x; i < tile; i += blockDim.x) sh[i] = run[i];
  __syncthreads();
  for (uint32_t log_half = log_tile; log_half-- > 0;) {
    const uint32_t half = 1u << log_half;
    for (uint32_t t = threadIdx.x; t < tile / 2; t += blockDim.x) {
      const uint32_t j = t & (half - 1), i = (t >> log_half) << (log_half + 1);
      encode_butterfly(sh[i + j], sh[i + j + half], roots[half - 1 + j]);
    }
    __syncthreads();
  }
  for (uint32_t i = threadIdx.x; i < tile; i += blockDim.x) run[i] = sh[i];
}

__global__ void encode_round_kernel(DeviceTablesView tv, LimbMap map, uint64_t* out, const ComplexDouble* v,
                                    double inv, double scale) {
  const uint64_t n = uint64_t{1} << tv.log_n, slots = n / 2;
  const uint32_t log_slots = tv.log_n - 1;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const uint32_t k = static_cast<uint32_t>(i < slots ? i : i - slots);
    const ComplexDouble c = v[bit_reverse(k, log_slots)];
    const double x = __dmul_rn(__dmul_rn(i < slots ? c.re : c.im, inv), scale);
    const int64_t r = static_cast<int64_t>(rint(x));  // nearest, ties to even: the host's nearbyint
    for (uint32_t limb = 0; limb < map.limbs; ++limb) out[limb * n + i] = signed_residue(r, tv.mod[map.prime(limb)].value);
  }
}

}  // namespace

void special_fft_encode(ComplexDouble* v, const ComplexDouble* roots, uint64_t slots, cudaStream_t stream) {
  const size_t butterflies = slots / 2;
  const uint32_t log_slots = static_cast<uint32_t>(__builtin_ctzll(slots));
  const uint32_t log_tile = log_slots < kLogFftTile ? log_slots : kLogFftTile;
  for (uint32_t log_half = log_slots; log_half-- > log_tile;) {
    fft_stage_kernel<<<grid_for(butterflies), kBlockThreads, 0, stream>>>(v, roots, log_half, butterflies);
    check_launch("fft_stage_kernel");
  }
  if (log_tile == 0) return;
  fft_tile_kernel<<<static_cast<unsigned>(slots >> log_tile), kBlockThreads, 0, stream>>>(v, roots, log_tile);
  check_launch("fft_tile_kernel");
}

void encode_round_to_rns(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const ComplexDouble* v,
                         double inv, double scale, cudaStream_t stream) {
  const size_t n = size_t{1} << tv.log_n;
  encode_round_kernel<<<grid_for(n), kBlockThreads, 0, stream>>>(tv, map, out, v, inv, scale);
  check_launch("encode_round_kernel");
}

}  // namespace veil::cuda
