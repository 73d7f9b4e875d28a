// The passes of the device NTT (the design is described in ntt_kernels.cu), as
// templates over where a pass reads its input and writes its output, so that the
// element-wise step before or after a transform can run inside it: ModUp's basis
// conversion feeds the forward NTT's first pass directly, ModDown's last step
// consumes its last pass (basis_conversion_kernels.cu). Each saves writing a
// whole intermediate buffer and reading it back.
//
// An I/O policy `Io` has `__device__ At at(uint32_t limb, uint32_t poly, uint32_t
// prime) const`, called once per block; `At` has `uint64_t load(size_t i)` and
// `void store(size_t i, uint64_t v)` for coefficient i of that limb. A pass loads
// every element of its tile exactly once and stores every element exactly once,
// each by the thread that computes it, so a fused load may compute its value and
// a fused store may read other buffers at index i. Forward inputs must be < 4q;
// the forward contiguous pass stores values reduced to [0, q), the inverse
// strided pass values in [0, q).
//
// The kernels are in an anonymous namespace: every translation unit that includes
// this header gets its own instantiations, so no two device modules register the
// same kernel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda_check.cuh"
#include "device_tables.cuh"

namespace veil::cuda {
namespace {

constexpr uint32_t kLogTile = 11;  // 2048 words = 16 KiB of shared memory per block
constexpr uint32_t kTile = 1u << kLogTile;
constexpr uint32_t kThreads = 256;
constexpr uint32_t kMaxRadixLog = 3;   // stages per round
constexpr uint32_t kCoalesced = 32;    // unit spacing from which a warp's accesses are contiguous

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

// Shared-memory slot of tile element e. A half-warp's 16 eight-byte accesses are
// conflict-free when they land on 16 distinct slots mod 16: true for 16
// consecutive elements (the swizzle permutes inside aligned blocks of 16) and, thanks
// to the XOR with bits 4..6, for element 8u + m of threads u = 0..15 (units of 8
// consecutive elements), which would otherwise all hit two banks.
__device__ __forceinline__ uint32_t slot(uint32_t e) { return e ^ ((e >> 4) & 7); }

// Index in the limb of strided-tile element e (row e >> log_w, column e & (2^log_w - 1)).
__device__ __forceinline__ size_t strided_index(uint32_t e, uint32_t log_w, uint32_t log_stride, size_t col0) {
  return (static_cast<size_t>(e >> log_w) << log_stride) + col0 + (e & ((1u << log_w) - 1));
}

// What a round needs to find its twiddles: a butterfly whose lower element is tile
// element i0, at local distance 2^log_dist (global distance 2^(log_dist + delta)),
// uses table entry (N >> (log_dist + delta + 1)) + ((g0 + i0) >> (log_dist + 1)):
// the stage's first group plus the group of the element (g0: the tile's first
// element for the contiguous pass; 0 for the strided one, whose rows span whole groups).
struct Pass {
  const uint64_t* w;   // root or inv_root of this prime
  const uint64_t* ws;  // their Shoup companions
  uint64_t q, two_q;
  NttScalars sc;       // inverse only: the last stage with 1/N
  uint32_t log_n, delta;
  size_t g0;

  __device__ size_t twiddle(uint32_t base, uint32_t log_dist) const {
    return (size_t{1} << (log_n - log_dist - delta - 1)) + ((g0 + base) >> (log_dist + 1));
  }
};

// One round of R stages on every unit of the tile. Units have 2^R elements
// base + m * 2^log_dlow; forward rounds run distances 2^(log_dlow + R - 1) down to
// 2^log_dlow, inverse rounds the other way. load(e) / store(e, value) move tile
// element e; each thread touches only its own units, so the caller's barriers
// between rounds are all the synchronisation there is.
template <uint32_t R, bool kForward, class Load, class Store>
__device__ __forceinline__ void run_round(const Pass& p, uint32_t log_len, uint32_t log_dlow, Load load,
                                          Store store) {
  constexpr uint32_t kUnit = 1u << R;
  const uint32_t units = (1u << log_len) >> R;
  const uint32_t dlow_mask = (1u << log_dlow) - 1;
  for (uint32_t u = threadIdx.x; u < units; u += blockDim.x) {
    const uint32_t base = ((u >> log_dlow) << (log_dlow + R)) + (u & dlow_mask);
    uint64_t v[kUnit];
#pragma unroll
    for (uint32_t m = 0; m < kUnit; ++m) v[m] = load(base + (m << log_dlow));
#pragma unroll
    for (uint32_t j = 0; j < R; ++j) {
      // Forward: distance 2^(log_dlow + R - 1 - j), pairs (m, m + half), 2^j twiddles.
      // Inverse: distance 2^(log_dlow + j), 2^(R - 1 - j) twiddles.
      const uint32_t log_half = kForward ? R - 1 - j : j;
      const uint32_t half = 1u << log_half;
      const uint32_t log_dist = log_dlow + log_half;
      const size_t first = p.twiddle(base, log_dist);
      const bool last_inverse = !kForward && log_dist + p.delta + 1 == p.log_n;  // global t = N / 2
#pragma unroll
      for (uint32_t m = 0; m < kUnit; ++m) {
        if (m & half) continue;
        const size_t widx = first + (m >> (log_half + 1));
        if (kForward) {
          ct_butterfly(v[m], v[m + half], p.w[widx], p.ws[widx], p.q, p.two_q);
        } else if (last_inverse) {  // x' = (x + y) / N, y' = (x - y) w / N: fully reduced
          const uint64_t x = v[m], y = v[m + half];
          v[m] = mul_shoup(x + y, p.sc.n_inv, p.sc.n_inv_shoup, p.q);
          v[m + half] = mul_shoup(x - y + p.two_q, p.sc.last_w_n_inv, p.sc.last_w_n_inv_shoup, p.q);
        } else {
          gs_butterfly(v[m], v[m + half], p.w[widx], p.ws[widx], p.q, p.two_q);
        }
      }
    }
#pragma unroll
    for (uint32_t m = 0; m < kUnit; ++m) store(base + (m << log_dlow), v[m]);
  }
}

template <bool kForward, class Load, class Store>
__device__ __forceinline__ void round_of(uint32_t r, const Pass& p, uint32_t log_len, uint32_t log_dlow, Load load,
                                         Store store) {
  switch (r) {
    case 3: run_round<3, kForward>(p, log_len, log_dlow, load, store); break;
    case 2: run_round<2, kForward>(p, log_len, log_dlow, load, store); break;
    default: run_round<1, kForward>(p, log_len, log_dlow, load, store); break;
  }
}

// Runs `stages` stages of a pass on a tile of 2^log_len elements. Forward: local
// distances 2^(log_len - 1) downwards; inverse: 2^(log_len - stages) upwards.
// gload(e) / gstore(e, v) address tile element e in global memory; out(v) maps a
// value on its last store (the forward contiguous pass reduces to [0, q)).
// Barrier count is uniform across the block (it depends on the pass only).
// kLeaveInShared: the last round always stores to shared memory and the tile is left
// there (slot-swizzled) after a barrier, for a caller that consumes it itself.
template <bool kForward, bool kLeaveInShared = false, class GLoad, class GStore>
__device__ __forceinline__ void run_pass(uint64_t* sh, const Pass& p, uint32_t log_len, uint32_t stages, GLoad gload,
                                         GStore gstore) {
  auto sload = [sh](uint32_t e) { return sh[slot(e)]; };
  auto sstore = [sh](uint32_t e, uint64_t v) { sh[slot(e)] = v; };
  uint32_t done = 0;
  bool in_shared = false;  // where the current tile values are
  while (done < stages) {
    const uint32_t r = stages - done < kMaxRadixLog ? stages - done : kMaxRadixLog;
    // Forward rounds go down from the largest distance, inverse rounds up from the smallest.
    const uint32_t log_dlow = kForward ? log_len - done - r : log_len - stages + done;
    const bool first = done == 0, last = done + r == stages;
    const bool direct_in = first && (1u << log_dlow) >= kCoalesced;
    const bool direct_out = !kLeaveInShared && last && (1u << log_dlow) >= kCoalesced;
    if (first && !direct_in) {  // stage the tile in shared memory, coalesced
      for (uint32_t e = threadIdx.x; e < (1u << log_len); e += blockDim.x) sh[slot(e)] = gload(e);
      in_shared = true;
    }
    if (in_shared) __syncthreads();
    if (direct_in && direct_out) round_of<kForward>(r, p, log_len, log_dlow, gload, gstore);
    else if (direct_in) round_of<kForward>(r, p, log_len, log_dlow, gload, sstore);
    else if (direct_out) round_of<kForward>(r, p, log_len, log_dlow, sload, gstore);
    else round_of<kForward>(r, p, log_len, log_dlow, sload, sstore);
    in_shared = !direct_out;
    done += r;
  }
  if (in_shared) {  // the last round was not coalesced: write the tile out from shared memory
    __syncthreads();
    if constexpr (!kLeaveInShared)
      for (uint32_t e = threadIdx.x; e < (1u << log_len); e += blockDim.x) gstore(e, sh[slot(e)]);
  }
}

__device__ __forceinline__ Pass make_pass(const DeviceTablesView& tv, uint32_t pi, bool forward, uint32_t delta,
                                          size_t g0) {
  const size_t n = size_t{1} << tv.log_n;
  Pass p;
  p.w = (forward ? tv.root : tv.inv_root) + pi * n;
  p.ws = (forward ? tv.root_shoup : tv.inv_root_shoup) + pi * n;
  p.q = tv.mod[pi].value;
  p.two_q = 2 * p.q;
  p.sc = forward ? NttScalars{} : tv.ntt_scalars[pi];
  p.log_n = tv.log_n;
  p.delta = delta;
  p.g0 = g0;
  return p;
}

// The plain transform: each limb of the LimbMap's buffer in place.
struct InPlaceIo {
  uint64_t* data;
  size_t poly_stride;
  uint32_t log_n;
  struct At {
    uint64_t* a;
    __device__ uint64_t load(size_t i) const { return a[i]; }
    __device__ void store(size_t i, uint64_t v) const { a[i] = v; }
  };
  __device__ At at(uint32_t limb, uint32_t poly, uint32_t) const {
    return At{data + poly * poly_stride + (static_cast<size_t>(limb) << log_n)};
  }
};

// An out-of-place pass's view of one limb (an Io's At): loads from s, stores at the
// same place in d.
struct CopyAt {
  const uint64_t* s;
  uint64_t* d;
  __device__ uint64_t load(size_t i) const { return s[i]; }
  __device__ void store(size_t i, uint64_t v) const { d[i] = v; }
};

// Stages with t >= C: forward stages 0 .. log_rows - 1, or inverse t = C .. N / 2.
// grid: (N / 2^11 tiles, limbs, polys).
template <bool kForward, class Io>
__global__ void __launch_bounds__(kThreads) strided_pass(DeviceTablesView tv, LimbMap map, uint32_t log_rows, Io io) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y, poly = blockIdx.z;
  if (map.skipped(limb, poly)) return;
  const uint32_t pi = map.prime(limb);
  const uint32_t log_n = tv.log_n;
  const uint32_t log_w = kLogTile - log_rows, log_stride = log_n - log_rows;
  const size_t col0 = static_cast<size_t>(blockIdx.x) << log_w;
  const auto at = io.at(limb, poly, pi);
  // Tile rows are C = 2^log_stride apart and 2^log_w wide: local distance d is global d * 2^(log_n - 11).
  const Pass p = make_pass(tv, pi, kForward, log_n - kLogTile, 0);
  auto gload = [=](uint32_t e) { return at.load(strided_index(e, log_w, log_stride, col0)); };
  auto gstore = [=](uint32_t e, uint64_t v) { at.store(strided_index(e, log_w, log_stride, col0), v); };
  run_pass<kForward>(sh, p, kLogTile, log_rows, gload, gstore);
}

// Stages with t < C on runs of C = N >> log_rows words; the forward output is reduced.
template <bool kForward, class Io>
__global__ void __launch_bounds__(kThreads) contiguous_pass(DeviceTablesView tv, LimbMap map, uint32_t log_rows,
                                                            Io io) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y, poly = blockIdx.z;
  if (map.skipped(limb, poly)) return;
  const uint32_t pi = map.prime(limb);
  const uint32_t log_n = tv.log_n, log_c = log_n - log_rows;
  const size_t c0 = static_cast<size_t>(blockIdx.x) << log_c;
  const auto at = io.at(limb, poly, pi);
  const Pass p = make_pass(tv, pi, kForward, 0, c0);
  const uint64_t q = p.q, two_q = p.two_q;
  auto gload = [=](uint32_t e) { return at.load(c0 + e); };
  auto gstore = [=](uint32_t e, uint64_t v) { at.store(c0 + e, kForward ? reduce_4q(v, q, two_q) : v); };
  run_pass<kForward>(sh, p, log_c, log_c, gload, gstore);
}

// log R: the strided pass covers at least one stage, the contiguous runs at most 2^11 words.
inline uint32_t log_rows_for(uint32_t log_n) {
  const uint32_t log_c = log_n - 1 < kLogTile ? log_n - 1 : kLogTile;
  return log_n - log_c;
}

// The forward strided pass alone (stages 0 .. log R - 1) over every limb of `map`,
// reading and writing through `io`: what a caller that fuses the contiguous pass
// into its own kernel (key_switch_kernels.cu) runs first.
template <class Io>
void launch_forward_strided(const DeviceTablesView& tv, const LimbMap& map, const Io& io, cudaStream_t stream,
                            const char* what) {
  if (map.limbs == 0 || map.polys == 0) return;
  const dim3 grid(1u << (tv.log_n - kLogTile), map.limbs, map.polys);
  strided_pass<true><<<grid, kThreads, 0, stream>>>(tv, map, log_rows_for(tv.log_n), io);
  check_launch(what);
}

// The forward contiguous pass alone (the stages after launch_forward_strided's),
// output reduced to [0, q).
template <class Io>
void launch_forward_contiguous(const DeviceTablesView& tv, const LimbMap& map, const Io& io, cudaStream_t stream,
                               const char* what) {
  if (map.limbs == 0 || map.polys == 0) return;
  const uint32_t log_rows = log_rows_for(tv.log_n);
  const dim3 grid(1u << log_rows, map.limbs, map.polys);
  contiguous_pass<true><<<grid, kThreads, 0, stream>>>(tv, map, log_rows, io);
  check_launch(what);
}

// Forward transform of every limb of `map`: the strided pass reads through
// `first` and writes through `first`, the contiguous pass reads and writes
// through `second`; a policy's stores must land where the next pass reads.
template <class First, class Second>
void launch_forward(const DeviceTablesView& tv, const LimbMap& map, const First& first, const Second& second,
                    cudaStream_t stream, const char* what) {
  launch_forward_strided(tv, map, first, stream, what);
  launch_forward_contiguous(tv, map, second, stream, what);
}

// Inverse transform: the contiguous pass through `first`, then the strided pass through `second`.
template <class First, class Second>
void launch_inverse(const DeviceTablesView& tv, const LimbMap& map, const First& first, const Second& second,
                    cudaStream_t stream, const char* what) {
  if (map.limbs == 0 || map.polys == 0) return;
  const uint32_t log_rows = log_rows_for(tv.log_n);
  const dim3 strided_grid(1u << (tv.log_n - kLogTile), map.limbs, map.polys);
  const dim3 contiguous_grid(1u << log_rows, map.limbs, map.polys);
  contiguous_pass<false><<<contiguous_grid, kThreads, 0, stream>>>(tv, map, log_rows, first);
  check_launch(what);
  strided_pass<false><<<strided_grid, kThreads, 0, stream>>>(tv, map, log_rows, second);
  check_launch(what);
}

}  // namespace
}  // namespace veil::cuda
