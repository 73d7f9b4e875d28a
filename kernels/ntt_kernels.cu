// Device NTT in two shared-memory passes per transform.
//
// The forward transform is the CPU's radix-2 Cooley-Tukey sequence: stage s
// (s = 0 .. log N - 1) has 2^s groups of half-width t = N >> (s + 1), and
// group i uses the twiddle root[2^s + i]. With C = min(2^11, N / 2) and
// R = N / C:
//  * the first log R stages (t >= C) only combine elements that are C apart:
//    element j of every run of C is an independent R-point problem. The
//    "strided" kernel loads a tile of R rows x (2^11 / R) adjacent columns
//    (coalesced rows), runs those stages in shared memory, and stores back;
//  * the remaining log C stages (t < C) stay inside aligned runs of C
//    elements: the "contiguous" kernel runs them on one run per block and
//    reduces the output from [0, 4q) to [0, q).
// The inverse runs the Gentleman-Sande stages in the opposite order
// (contiguous pass first) and folds 1/N into its last stage, as the CPU does.
// Butterflies are Harvey's lazy ones with the same Shoup twiddles, and both
// outputs are fully reduced, so the results are the CPU's canonical words.
#include "cuda_check.cuh"
#include "ntt_kernels.cuh"

namespace veil::cuda {
namespace {

constexpr uint32_t kLogTile = 11;  // 2048 words = 16 KiB of shared memory per block
constexpr uint32_t kTile = 1u << kLogTile;
constexpr uint32_t kThreads = 256;

// x, y in [0, 4q) -> x + wy, x - wy in [0, 4q).
__device__ __forceinline__ void ct_butterfly(uint64_t& x, uint64_t& y, uint64_t w, uint64_t ws, uint64_t q,
                                             uint64_t two_q) {
  const uint64_t u = x - ((x >= two_q) ? two_q : 0);
  const uint64_t v = mul_shoup_lazy(y, w, ws, q);
  x = u + v;
  y = u - v + two_q;
}

// x, y in [0, 2q) -> x + y, (x - y) w in [0, 2q).
__device__ __forceinline__ void gs_butterfly(uint64_t& x, uint64_t& y, uint64_t w, uint64_t ws, uint64_t q,
                                             uint64_t two_q) {
  const uint64_t s = x + y;
  const uint64_t d = x - y + two_q;
  x = s - ((s >= two_q) ? two_q : 0);
  y = mul_shoup_lazy(d, w, ws, q);
}

__device__ __forceinline__ uint64_t reduce_4q(uint64_t x, uint64_t q, uint64_t two_q) {
  x -= (x >= two_q) ? two_q : 0;
  return x - ((x >= q) ? q : 0);
}

// Index in the limb of tile element e (row e >> log_w, column e & (2^log_w - 1)).
__device__ __forceinline__ size_t strided_index(uint32_t e, uint32_t log_w, uint32_t log_stride, size_t col0) {
  return (static_cast<size_t>(e >> log_w) << log_stride) + col0 + (e & ((1u << log_w) - 1));
}

// Forward stages 0 .. log_rows - 1. grid: (N / 2^11 tiles, limbs).
__global__ void __launch_bounds__(kThreads)
    forward_strided(DeviceTablesView tv, LimbMap map, uint64_t* data, uint32_t log_rows) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y;
  if (map.skipped(limb)) return;
  const uint32_t pi = map.prime(limb);
  const uint32_t log_n = tv.log_n;
  const size_t n = size_t{1} << log_n;
  const uint64_t q = tv.mod[pi].value, two_q = 2 * q;
  const uint64_t* root = tv.root + pi * n;
  const uint64_t* root_s = tv.root_shoup + pi * n;
  uint64_t* a = data + limb * n;
  const uint32_t log_w = kLogTile - log_rows, log_stride = log_n - log_rows;
  const uint32_t w_mask = (1u << log_w) - 1;
  const size_t col0 = static_cast<size_t>(blockIdx.x) << log_w;

  for (uint32_t e = threadIdx.x; e < kTile; e += blockDim.x) sh[e] = a[strided_index(e, log_w, log_stride, col0)];
  __syncthreads();
  for (uint32_t s = 0; s < log_rows; ++s) {
    const uint32_t log_half = log_rows - s - 1;  // butterfly distance in rows
    for (uint32_t b = threadIdx.x; b < kTile / 2; b += blockDim.x) {
      const uint32_t j = b & w_mask, kb = b >> log_w;
      const uint32_t g = kb >> log_half, r = kb & ((1u << log_half) - 1);
      const uint32_t k0 = (g << (log_half + 1)) + r;
      const uint32_t i0 = (k0 << log_w) + j, i1 = i0 + (1u << (log_half + log_w));
      const size_t widx = (size_t{1} << s) + g;  // group g of stage s (rows span whole groups)
      ct_butterfly(sh[i0], sh[i1], root[widx], root_s[widx], q, two_q);
    }
    __syncthreads();
  }
  for (uint32_t e = threadIdx.x; e < kTile; e += blockDim.x) a[strided_index(e, log_w, log_stride, col0)] = sh[e];
}

// Forward stages log_rows .. log_n - 1 on runs of N >> log_rows words, output reduced.
__global__ void __launch_bounds__(kThreads)
    forward_contiguous(DeviceTablesView tv, LimbMap map, uint64_t* data, uint32_t log_rows) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y;
  if (map.skipped(limb)) return;
  const uint32_t pi = map.prime(limb);
  const uint32_t log_n = tv.log_n, log_c = log_n - log_rows;
  const uint32_t len = 1u << log_c;
  const size_t n = size_t{1} << log_n;
  const uint64_t q = tv.mod[pi].value, two_q = 2 * q;
  const uint64_t* root = tv.root + pi * n;
  const uint64_t* root_s = tv.root_shoup + pi * n;
  const size_t c0 = static_cast<size_t>(blockIdx.x) << log_c;
  uint64_t* a = data + limb * n + c0;

  for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) sh[e] = a[e];
  __syncthreads();
  for (uint32_t s = log_rows; s < log_n; ++s) {
    const uint32_t log_t = log_n - s - 1;
    const uint32_t t = 1u << log_t;
    const size_t group_base = (size_t{1} << s) + (c0 >> (log_t + 1));  // first group of this run
    for (uint32_t b = threadIdx.x; b < len / 2; b += blockDim.x) {
      const uint32_t g = b >> log_t, r = b & (t - 1);
      const uint32_t x0 = (g << (log_t + 1)) + r;
      const size_t widx = group_base + g;
      ct_butterfly(sh[x0], sh[x0 + t], root[widx], root_s[widx], q, two_q);
    }
    __syncthreads();
  }
  for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) a[e] = reduce_4q(sh[e], q, two_q);
}

// Inverse stages with t = 1 .. C / 2 on runs of C = N >> log_rows words.
__global__ void __launch_bounds__(kThreads)
    inverse_contiguous(DeviceTablesView tv, LimbMap map, uint64_t* data, uint32_t log_rows) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y;
  if (map.skipped(limb)) return;
  const uint32_t pi = map.prime(limb);
  const uint32_t log_n = tv.log_n, log_c = log_n - log_rows;
  const uint32_t len = 1u << log_c;
  const size_t n = size_t{1} << log_n;
  const uint64_t q = tv.mod[pi].value, two_q = 2 * q;
  const uint64_t* iroot = tv.inv_root + pi * n;
  const uint64_t* iroot_s = tv.inv_root_shoup + pi * n;
  const size_t c0 = static_cast<size_t>(blockIdx.x) << log_c;
  uint64_t* a = data + limb * n + c0;

  for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) sh[e] = a[e];
  __syncthreads();
  for (uint32_t log_t = 0; log_t < log_c; ++log_t) {
    const uint32_t t = 1u << log_t;
    // Stage m = N / t has h = m / 2 groups; group i uses inv_root[h + i].
    const size_t group_base = (size_t{1} << (log_n - log_t - 1)) + (c0 >> (log_t + 1));
    for (uint32_t b = threadIdx.x; b < len / 2; b += blockDim.x) {
      const uint32_t g = b >> log_t, r = b & (t - 1);
      const uint32_t x0 = (g << (log_t + 1)) + r;
      const size_t widx = group_base + g;
      gs_butterfly(sh[x0], sh[x0 + t], iroot[widx], iroot_s[widx], q, two_q);
    }
    __syncthreads();
  }
  for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) a[e] = sh[e];
}

// Inverse stages with t = C .. N / 2; the last (t = N / 2) scales by 1/N.
__global__ void __launch_bounds__(kThreads)
    inverse_strided(DeviceTablesView tv, LimbMap map, uint64_t* data, uint32_t log_rows) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y;
  if (map.skipped(limb)) return;
  const uint32_t pi = map.prime(limb);
  const uint32_t log_n = tv.log_n;
  const size_t n = size_t{1} << log_n;
  const uint64_t q = tv.mod[pi].value, two_q = 2 * q;
  const uint64_t* iroot = tv.inv_root + pi * n;
  const uint64_t* iroot_s = tv.inv_root_shoup + pi * n;
  const NttScalars sc = tv.ntt_scalars[pi];
  uint64_t* a = data + limb * n;
  const uint32_t log_w = kLogTile - log_rows, log_stride = log_n - log_rows;
  const uint32_t w_mask = (1u << log_w) - 1;
  const size_t col0 = static_cast<size_t>(blockIdx.x) << log_w;

  for (uint32_t e = threadIdx.x; e < kTile; e += blockDim.x) sh[e] = a[strided_index(e, log_w, log_stride, col0)];
  __syncthreads();
  for (uint32_t u = 0; u < log_rows; ++u) {  // t = C << u: butterflies 2^u rows apart
    const uint32_t log_half = u;
    const uint32_t h = 1u << (log_rows - u - 1);  // groups in this stage
    const bool last = (u + 1 == log_rows);
    for (uint32_t b = threadIdx.x; b < kTile / 2; b += blockDim.x) {
      const uint32_t j = b & w_mask, kb = b >> log_w;
      const uint32_t g = kb >> log_half, r = kb & ((1u << log_half) - 1);
      const uint32_t k0 = (g << (log_half + 1)) + r;
      const uint32_t i0 = (k0 << log_w) + j, i1 = i0 + (1u << (log_half + log_w));
      if (last) {  // x' = (x + y) / N, y' = (x - y) w / N: fully reduced
        const uint64_t x = sh[i0], y = sh[i1];
        sh[i0] = mul_shoup(x + y, sc.n_inv, sc.n_inv_shoup, q);
        sh[i1] = mul_shoup(x - y + two_q, sc.last_w_n_inv, sc.last_w_n_inv_shoup, q);
      } else {
        const size_t widx = h + g;
        gs_butterfly(sh[i0], sh[i1], iroot[widx], iroot_s[widx], q, two_q);
      }
    }
    __syncthreads();
  }
  for (uint32_t e = threadIdx.x; e < kTile; e += blockDim.x) a[strided_index(e, log_w, log_stride, col0)] = sh[e];
}

// log R: the strided pass covers at least one stage, the contiguous runs at most 2^11 words.
uint32_t log_rows_for(uint32_t log_n) {
  const uint32_t log_c = log_n - 1 < kLogTile ? log_n - 1 : kLogTile;
  return log_n - log_c;
}

void check_size(uint32_t log_n) {
  require(log_n >= kNttMinLogN && log_n <= kNttMaxLogN, ErrorCode::Unsupported,
          "cuda NTT: N must be 2^11 .. 2^17");
}

}  // namespace

void ntt_forward(const DeviceTablesView& tv, const LimbMap& map, uint64_t* data, cudaStream_t stream) {
  if (map.limbs == 0) return;
  check_size(tv.log_n);
  const uint32_t log_rows = log_rows_for(tv.log_n);
  const dim3 strided_grid(1u << (tv.log_n - kLogTile), map.limbs);
  const dim3 contiguous_grid(1u << log_rows, map.limbs);
  forward_strided<<<strided_grid, kThreads, 0, stream>>>(tv, map, data, log_rows);
  check_launch("forward_strided");
  forward_contiguous<<<contiguous_grid, kThreads, 0, stream>>>(tv, map, data, log_rows);
  check_launch("forward_contiguous");
}

void ntt_inverse(const DeviceTablesView& tv, const LimbMap& map, uint64_t* data, cudaStream_t stream) {
  if (map.limbs == 0) return;
  check_size(tv.log_n);
  const uint32_t log_rows = log_rows_for(tv.log_n);
  const dim3 strided_grid(1u << (tv.log_n - kLogTile), map.limbs);
  const dim3 contiguous_grid(1u << log_rows, map.limbs);
  inverse_contiguous<<<contiguous_grid, kThreads, 0, stream>>>(tv, map, data, log_rows);
  check_launch("inverse_contiguous");
  inverse_strided<<<strided_grid, kThreads, 0, stream>>>(tv, map, data, log_rows);
  check_launch("inverse_strided");
}

}  // namespace veil::cuda
