// Element-wise kernels: grid-stride loops over limbs x N words; each word
// gets exactly the CPU backend's formula (host/cpu_backend.cpp).
#include "cuda_check.cuh"
#include "elementwise_kernels.cuh"

namespace veil::cuda {
namespace {

// Limb of word i when map.polys polynomials lie one after another (polys is small).
__device__ __forceinline__ uint32_t limb_of(size_t i, uint32_t log_n, const LimbMap& map) {
  uint32_t limb = static_cast<uint32_t>(i >> log_n);
  while (limb >= map.limbs) limb -= map.limbs;
  return limb;
}

// y has y_words words (total: one per output word; one polynomial's: the same y for
// every polynomial).
template <BinaryOp OP>
__global__ void binary_kernel(DeviceTablesView tv, LimbMap map, uint64_t* out, const uint64_t* x,
                              const uint64_t* y, size_t y_words, size_t total) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const DeviceModulus m = tv.mod[map.prime(limb_of(i, tv.log_n, map))];
    size_t j = i;
    while (j >= y_words) j -= y_words;  // polys is small
    const uint64_t a = x[i], b = y[j];
    if constexpr (OP == BinaryOp::Add) {
      out[i] = add_mod(a, b, m.value);
    } else if constexpr (OP == BinaryOp::Sub) {
      out[i] = sub_mod(a, b, m.value);
    } else if constexpr (OP == BinaryOp::Multiply) {
      out[i] = mul_mod(a, b, m);
    } else {  // (u128)a * b + out[i], then Barrett
      U128 p = mul_wide(a, b);
      const uint64_t o = out[i];
      p.lo += o;
      p.hi += p.lo < o ? 1 : 0;
      out[i] = reduce128(p, m);
    }
  }
}

// The canonical residues equal the cpu's multiply / multiply_accumulate sequence.
__global__ void tensor_kernel(DeviceTablesView tv, LimbMap map, uint64_t* d0, uint64_t* d1, uint64_t* d2,
                              const uint64_t* a0, const uint64_t* a1, const uint64_t* b0, const uint64_t* b1,
                              size_t total) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const DeviceModulus m = tv.mod[map.prime(static_cast<uint32_t>(i >> tv.log_n))];
    const uint64_t x0 = a0[i], x1 = a1[i], y0 = b0[i], y1 = b1[i];
    d0[i] = mul_mod(x0, y0, m);
    U128 cross = mul_wide(x0, y1);
    mac_wide(cross, x1, y0);
    d1[i] = reduce128(cross, m);
    d2[i] = mul_mod(x1, y1, m);
  }
}

__global__ void negate_kernel(DeviceTablesView tv, LimbMap map, uint64_t* out, const uint64_t* x, size_t total) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const uint64_t q = tv.mod[map.prime(static_cast<uint32_t>(i >> tv.log_n))].value;
    out[i] = neg_mod(x[i], q);
  }
}

// Residues of small signed integers, as sampling::signed_to_rns computes them:
// r = x % q in (-q, q) (truncating, as C++), plus q when negative (branch-free).
__global__ void signed_to_rns_kernel(DeviceTablesView tv, LimbMap map, uint64_t* out, const int64_t* in,
                                     size_t total) {
  const size_t mask = (size_t{1} << tv.log_n) - 1;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    out[i] = signed_residue(in[i & mask], tv.mod[map.prime(static_cast<uint32_t>(i >> tv.log_n))].value);
  }
}

template <ScalarOp OP>
__global__ void scalar_kernel(DeviceTablesView tv, LimbMap map, uint64_t* out, const uint64_t* x, LimbScalars s,
                              size_t total) {
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const uint32_t limb = limb_of(i, tv.log_n, map);
    const uint64_t q = tv.mod[map.prime(limb)].value;
    if constexpr (OP == ScalarOp::Multiply) out[i] = mul_shoup(x[i], s.w[limb], s.w_shoup[limb], q);
    else out[i] = add_mod(x[i], s.w[limb], q);
  }
}

// x over the words (grid-stride), y over the copies.
__global__ void copy_batch_kernel(CopyBatch batch, uint32_t count) {
  for (uint32_t c = blockIdx.y; c < count; c += gridDim.y) {
    const uint64_t* src = batch.src[c];
    uint64_t* dst = batch.dst[c];
    const uint64_t words = batch.words[c];
    for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < words;
         i += static_cast<size_t>(blockDim.x) * gridDim.x)
      dst[i] = src[i];
  }
}

// Bit-reversed slot i holds a(psi^(2 brev(i) + 1)); a(X^g) there is the slot
// whose exponent is (2 brev(i) + 1) g mod 2N (host: CpuBackend::ntt_permutation).
__global__ void automorphism_ntt_kernel(DeviceTablesView tv, uint64_t* out, const uint64_t* in, uint64_t g,
                                        size_t total) {
  const uint32_t log_n = tv.log_n;
  const uint64_t n = uint64_t{1} << log_n, mask = 2 * n - 1;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const uint32_t slot = static_cast<uint32_t>(i & (n - 1));
    const uint64_t e = 2 * static_cast<uint64_t>(bit_reverse(slot, log_n)) + 1;
    const uint32_t target = static_cast<uint32_t>(((e * g) & mask) >> 1);
    out[i] = in[(i - slot) + bit_reverse(target, log_n)];
  }
}

// Polynomial blockIdx.y of the batch: the sum read at the permuted slot (the
// permutation of automorphism_ntt_kernel), added mod q of the word's limb.
__device__ __forceinline__ size_t permuted_index(size_t i, uint64_t g, uint32_t log_n) {
  if (g == 0) return i;
  const uint64_t n = uint64_t{1} << log_n, mask = 2 * n - 1;
  const uint32_t slot = static_cast<uint32_t>(i & (n - 1));
  const uint64_t e = 2 * static_cast<uint64_t>(bit_reverse(slot, log_n)) + 1;
  return (i - slot) + bit_reverse(static_cast<uint32_t>(((e * g) & mask) >> 1), log_n);
}

// Polynomial blockIdx.y of the batch: the sum read at the permuted slot, added mod q
// of the word's limb.
__global__ void add_automorphism_batch_kernel(DeviceTablesView tv, LimbMap map, AutomorphismBatch batch,
                                              size_t total) {
  const uint32_t p = blockIdx.y, log_n = tv.log_n;
  const uint64_t* add = batch.add[p];
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const size_t from = permuted_index(i, batch.g[p], log_n);
    uint64_t v = batch.in[p][from];
    if (add) v = add_mod(v, add[from], tv.mod[map.prime(static_cast<uint32_t>(i >> log_n))].value);
    batch.out[p][i] = v;
  }
}

// Half blockIdx.y of the sum.
__global__ void permuted_sum_kernel(DeviceTablesView tv, LimbMap map, PermutedSum sum, uint32_t count,
                                    bool accumulate, size_t total) {
  const uint32_t h = blockIdx.y, log_n = tv.log_n;
  uint64_t* out = sum.out[h];
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const uint64_t q = tv.mod[map.prime(static_cast<uint32_t>(i >> log_n))].value;
    uint64_t v = accumulate ? out[i] : 0;
    for (uint32_t j = 0; j < count; ++j) {
      const size_t from = permuted_index(i, sum.g[j], log_n);
      v = add_mod(v, sum.in[h][j][from], q);
      if (sum.add[h][j]) v = add_mod(v, sum.add[h][j][from], q);
    }
    out[i] = v;
  }
}

// Polynomial blockIdx.y of the batch.
__global__ void lift_batch_kernel(DeviceTablesView tv, LimbMap map, LiftBatch batch, LimbScalars s, size_t total) {
  const uint32_t p = blockIdx.y, log_n = tv.log_n;
  const size_t q_words = static_cast<size_t>(map.q_count) << log_n;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    if (i >= q_words) {
      batch.out[p][i] = 0;
      continue;
    }
    const uint32_t limb = static_cast<uint32_t>(i >> log_n);
    batch.out[p][i] = mul_shoup(batch.in[p][i], s.w[limb], s.w_shoup[limb], tv.mod[map.prime(limb)].value);
  }
}

// Coefficient i goes to i g mod 2N, negated when that wraps past N.
__global__ void automorphism_coeff_kernel(DeviceTablesView tv, LimbMap map, uint64_t* out, const uint64_t* in,
                                          uint64_t g, size_t total) {
  const uint32_t log_n = tv.log_n;
  const uint64_t n = uint64_t{1} << log_n, mask = 2 * n - 1;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<size_t>(blockDim.x) * gridDim.x) {
    const uint64_t c = i & (n - 1);
    const size_t base = i - c;
    const uint64_t k = (c * g) & mask;
    if (k < n) {
      out[base + k] = in[i];
    } else {
      const uint64_t q = tv.mod[map.prime(static_cast<uint32_t>(i >> log_n))].value;
      out[base + (k - n)] = neg_mod(in[i], q);
    }
  }
}

size_t total_words(const DeviceTablesView& tv, const LimbMap& map) {
  return static_cast<size_t>(map.limbs) << tv.log_n;
}

}  // namespace

void elementwise_binary(BinaryOp op, const DeviceTablesView& tv, const LimbMap& map, uint64_t* out,
                        const uint64_t* x, const uint64_t* y, cudaStream_t stream, bool broadcast_y) {
  const size_t total = static_cast<size_t>(map.polys) * total_words(tv, map);
  if (total == 0) return;
  const size_t y_words = broadcast_y ? total_words(tv, map) : total;
  const unsigned grid = grid_for(total);
  switch (op) {
    case BinaryOp::Add:
      binary_kernel<BinaryOp::Add><<<grid, kBlockThreads, 0, stream>>>(tv, map, out, x, y, y_words, total);
      break;
    case BinaryOp::Sub:
      binary_kernel<BinaryOp::Sub><<<grid, kBlockThreads, 0, stream>>>(tv, map, out, x, y, y_words, total);
      break;
    case BinaryOp::Multiply:
      binary_kernel<BinaryOp::Multiply><<<grid, kBlockThreads, 0, stream>>>(tv, map, out, x, y, y_words, total);
      break;
    case BinaryOp::MultiplyAccumulate:
      binary_kernel<BinaryOp::MultiplyAccumulate><<<grid, kBlockThreads, 0, stream>>>(tv, map, out, x, y, y_words, total);
      break;
  }
  check_launch("binary_kernel");
}

void elementwise_tensor(const DeviceTablesView& tv, const LimbMap& map, uint64_t* d0, uint64_t* d1, uint64_t* d2,
                        const uint64_t* a0, const uint64_t* a1, const uint64_t* b0, const uint64_t* b1,
                        cudaStream_t stream) {
  const size_t total = total_words(tv, map);
  if (total == 0) return;
  tensor_kernel<<<grid_for(total), kBlockThreads, 0, stream>>>(tv, map, d0, d1, d2, a0, a1, b0, b1, total);
  check_launch("tensor_kernel");
}

void elementwise_negate(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const uint64_t* x,
                        cudaStream_t stream) {
  const size_t total = total_words(tv, map);
  if (total == 0) return;
  negate_kernel<<<grid_for(total), kBlockThreads, 0, stream>>>(tv, map, out, x, total);
  check_launch("negate_kernel");
}

void elementwise_signed_to_rns(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const int64_t* in,
                               cudaStream_t stream) {
  const size_t total = total_words(tv, map);
  if (total == 0) return;
  signed_to_rns_kernel<<<grid_for(total), kBlockThreads, 0, stream>>>(tv, map, out, in, total);
  check_launch("signed_to_rns_kernel");
}

void elementwise_scalar(ScalarOp op, const DeviceTablesView& tv, const LimbMap& map, uint64_t* out,
                        const uint64_t* x, const LimbScalars& s, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(map.polys) * total_words(tv, map);
  if (total == 0) return;
  const unsigned grid = grid_for(total);
  if (op == ScalarOp::Multiply)
    scalar_kernel<ScalarOp::Multiply><<<grid, kBlockThreads, 0, stream>>>(tv, map, out, x, s, total);
  else
    scalar_kernel<ScalarOp::Add><<<grid, kBlockThreads, 0, stream>>>(tv, map, out, x, s, total);
  check_launch("scalar_kernel");
}

void copy_batch(const CopyBatch& batch, uint32_t count, uint64_t max_words, cudaStream_t stream) {
  if (count == 0 || max_words == 0) return;
  const dim3 grid(grid_for(max_words), count);
  copy_batch_kernel<<<grid, kBlockThreads, 0, stream>>>(batch, count);
  check_launch("copy_batch_kernel");
}

void automorphism_ntt(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const uint64_t* in,
                      uint64_t g, cudaStream_t stream) {
  const size_t total = static_cast<size_t>(map.polys) * total_words(tv, map);  // a permutation per N words
  if (total == 0) return;
  automorphism_ntt_kernel<<<grid_for(total), kBlockThreads, 0, stream>>>(tv, out, in, g, total);
  check_launch("automorphism_ntt_kernel");
}

void add_automorphism_batch(const DeviceTablesView& tv, const LimbMap& map, const AutomorphismBatch& batch,
                            uint32_t count, cudaStream_t stream) {
  const size_t total = total_words(tv, map);
  if (total == 0 || count == 0) return;
  const dim3 grid(grid_for(total), count);
  add_automorphism_batch_kernel<<<grid, kBlockThreads, 0, stream>>>(tv, map, batch, total);
  check_launch("add_automorphism_batch_kernel");
}

void permuted_sum(const DeviceTablesView& tv, const LimbMap& map, const PermutedSum& sum, uint32_t count,
                  bool accumulate, cudaStream_t stream) {
  const size_t total = total_words(tv, map);
  if (total == 0) return;
  const dim3 grid(grid_for(total), 2);
  permuted_sum_kernel<<<grid, kBlockThreads, 0, stream>>>(tv, map, sum, count, accumulate, total);
  check_launch("permuted_sum_kernel");
}

void lift_batch(const DeviceTablesView& tv, const LimbMap& map, const LiftBatch& batch, uint32_t count,
                const LimbScalars& s, cudaStream_t stream) {
  const size_t total = total_words(tv, map);
  if (total == 0 || count == 0) return;
  const dim3 grid(grid_for(total), count);
  lift_batch_kernel<<<grid, kBlockThreads, 0, stream>>>(tv, map, batch, s, total);
  check_launch("lift_batch_kernel");
}

void automorphism_coeff(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const uint64_t* in,
                        uint64_t g, cudaStream_t stream) {
  const size_t total = total_words(tv, map);
  if (total == 0) return;
  automorphism_coeff_kernel<<<grid_for(total), kBlockThreads, 0, stream>>>(tv, map, out, in, g, total);
  check_launch("automorphism_coeff_kernel");
}

}  // namespace veil::cuda
