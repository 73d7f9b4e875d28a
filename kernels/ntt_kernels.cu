// Device NTT in two passes per transform, each pass a tile of up to 2^11 words
// per block, worked in rounds of up to three radix-2 stages held in registers.
//
// The forward transform is the CPU's radix-2 Cooley-Tukey sequence: stage s
// (s = 0 .. log N - 1) has 2^s groups of half-width t = N >> (s + 1), and
// group i uses the twiddle root[2^s + i]. With C = min(2^11, N / 2) and
// R = N / C:
//  * the first log R stages (t >= C) only combine elements that are C apart:
//    element j of every run of C is an independent R-point problem. The
//    "strided" pass takes a tile of R rows x (2^11 / R) adjacent columns
//    (coalesced rows) and runs those stages;
//  * the remaining log C stages (t < C) stay inside aligned runs of C
//    elements: the "contiguous" pass runs them on one run per block and
//    reduces the output from [0, 4q) to [0, q).
// The inverse runs the Gentleman-Sande stages in the opposite order
// (contiguous pass first) and folds 1/N into its last stage, as the CPU does.
//
// Inside a pass, stage k of the tile pairs elements 2^(log len - 1 - k) apart
// in tile order, whichever pass it is. A round of r <= 3 consecutive stages
// splits the tile into units of 2^r elements (spaced by the round's smallest
// distance); each thread loads its units into registers, runs all r stages on
// them (7 twiddle pairs, 12 butterflies for r = 3) and stores them back, so a
// transform of 2^16 needs 2 + 4 rounds and as many barriers instead of 16
// stages with one barrier each. The first round of a pass reads global memory
// directly and the last one writes it directly when their units are coalesced
// (spacing >= 32 words); otherwise the tile goes through shared memory, whose
// word order is XOR-swizzled so that both unit shapes are free of bank conflicts.
// Butterflies are Harvey's lazy ones with the same Shoup twiddles and both
// outputs are fully reduced, so the results are the CPU's canonical words.
#include "cuda_check.cuh"
#include "ntt_kernels.cuh"

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
template <bool kForward, class GLoad, class GStore>
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
    const bool direct_out = last && (1u << log_dlow) >= kCoalesced;
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

// Stages with t >= C: forward stages 0 .. log_rows - 1, or inverse t = C .. N / 2.
// grid: (N / 2^11 tiles, limbs, polys).
template <bool kForward>
__global__ void __launch_bounds__(kThreads) strided_pass(DeviceTablesView tv, LimbMap map, uint64_t* data,
                                                         uint32_t log_rows) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y, poly = blockIdx.z;
  if (map.skipped(limb, poly)) return;
  const uint32_t pi = map.prime(limb);
  const uint32_t log_n = tv.log_n;
  const uint32_t log_w = kLogTile - log_rows, log_stride = log_n - log_rows;
  const size_t col0 = static_cast<size_t>(blockIdx.x) << log_w;
  uint64_t* a = data + poly * map.poly_stride + (static_cast<size_t>(limb) << log_n);
  // Tile rows are C = 2^log_stride apart and 2^log_w wide: local distance d is global d * 2^(log_n - 11).
  const Pass p = make_pass(tv, pi, kForward, log_n - kLogTile, 0);
  auto gload = [=](uint32_t e) { return a[strided_index(e, log_w, log_stride, col0)]; };
  auto gstore = [=](uint32_t e, uint64_t v) { a[strided_index(e, log_w, log_stride, col0)] = v; };
  run_pass<kForward>(sh, p, kLogTile, log_rows, gload, gstore);
}

// Stages with t < C on runs of C = N >> log_rows words; the forward output is reduced.
template <bool kForward>
__global__ void __launch_bounds__(kThreads) contiguous_pass(DeviceTablesView tv, LimbMap map, uint64_t* data,
                                                            uint32_t log_rows) {
  __shared__ uint64_t sh[kTile];
  const uint32_t limb = blockIdx.y, poly = blockIdx.z;
  if (map.skipped(limb, poly)) return;
  const uint32_t pi = map.prime(limb);
  const uint32_t log_n = tv.log_n, log_c = log_n - log_rows;
  const size_t c0 = static_cast<size_t>(blockIdx.x) << log_c;
  uint64_t* a = data + poly * map.poly_stride + (static_cast<size_t>(limb) << log_n) + c0;
  const Pass p = make_pass(tv, pi, kForward, 0, c0);
  const uint64_t q = p.q, two_q = p.two_q;
  auto gload = [=](uint32_t e) { return a[e]; };
  auto gstore = [=](uint32_t e, uint64_t v) { a[e] = kForward ? reduce_4q(v, q, two_q) : v; };
  run_pass<kForward>(sh, p, log_c, log_c, gload, gstore);
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
  if (map.limbs == 0 || map.polys == 0) return;
  check_size(tv.log_n);
  const uint32_t log_rows = log_rows_for(tv.log_n);
  const dim3 strided_grid(1u << (tv.log_n - kLogTile), map.limbs, map.polys);
  const dim3 contiguous_grid(1u << log_rows, map.limbs, map.polys);
  strided_pass<true><<<strided_grid, kThreads, 0, stream>>>(tv, map, data, log_rows);
  check_launch("forward strided_pass");
  contiguous_pass<true><<<contiguous_grid, kThreads, 0, stream>>>(tv, map, data, log_rows);
  check_launch("forward contiguous_pass");
}

void ntt_inverse(const DeviceTablesView& tv, const LimbMap& map, uint64_t* data, cudaStream_t stream) {
  if (map.limbs == 0 || map.polys == 0) return;
  check_size(tv.log_n);
  const uint32_t log_rows = log_rows_for(tv.log_n);
  const dim3 strided_grid(1u << (tv.log_n - kLogTile), map.limbs, map.polys);
  const dim3 contiguous_grid(1u << log_rows, map.limbs, map.polys);
  contiguous_pass<false><<<contiguous_grid, kThreads, 0, stream>>>(tv, map, data, log_rows);
  check_launch("inverse contiguous_pass");
  strided_pass<false><<<strided_grid, kThreads, 0, stream>>>(tv, map, data, log_rows);
  check_launch("inverse strided_pass");
}

}  // namespace veil::cuda
