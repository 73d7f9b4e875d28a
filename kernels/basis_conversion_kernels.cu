// Rescale, ModUp and ModDown pieces. Rows (limbs or conversion targets) are
// blockIdx.y; coefficients are a grid-stride loop over blockIdx.x. The lazy
// sums follow host/cpu_backend.cpp step for step.
#include "basis_conversion_kernels.cuh"
#include "cuda_check.cuh"
#include "elementwise_kernels.cuh"

namespace veil::cuda {
namespace {

#define VEIL_FOR_COEFF(c, n)                                                                     \
  for (size_t c = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < (n); \
       c += static_cast<size_t>(blockDim.x) * gridDim.x)

// Prime index of a limb of Q_level u P (host: RnsTables::prime_index).
__device__ __forceinline__ uint32_t qp_prime(const DeviceTablesView& tv, uint32_t level, uint32_t limb) {
  return limb < level + 1 ? limb : tv.max_level + 1 + (limb - (level + 1));
}

// sum_i y[i][c] f[i] mod t: lazy Shoup terms in [0, 2t), the running sum
// folded below 2t, one final correction (host: fast_base_convert).
__device__ __forceinline__ uint64_t fast_base_convert(const uint64_t* y, uint32_t count, size_t n, size_t c,
                                                      const uint64_t* f, const uint64_t* fs, uint64_t t) {
  const uint64_t two_t = 2 * t;
  uint64_t acc = mul_shoup_lazy(y[c], f[0], fs[0], t);
  for (uint32_t i = 1; i < count; ++i) {
    const uint64_t s = acc + mul_shoup_lazy(y[i * n + c], f[i], fs[i], t);  // < 4t
    acc = s - ((s >= two_t) ? two_t : 0);
  }
  return acc - ((acc >= t) ? t : 0);
}

__global__ void rescale_prepare_kernel(DeviceTablesView tv, uint32_t level, RescaleView rv, const uint64_t* last,
                                       uint64_t* tmp) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t i = blockIdx.y;
  const uint64_t ql = tv.mod[level].value, half = ql >> 1;
  const DeviceModulus m = tv.mod[i];
  const uint64_t minus_h = m.value - rv.half_ql_mod_q[i];
  uint64_t* dst = tmp + i * n;
  VEIL_FOR_COEFF(c, n) {
    const uint64_t rounded = add_mod(last[c], half, ql);  // round instead of floor
    dst[c] = reduce64(rounded, m) + minus_h;               // < 2 q_i: the NTT takes lazy input
  }
}

__global__ void rescale_finish_kernel(DeviceTablesView tv, RescaleView rv, const uint64_t* in, const uint64_t* tmp,
                                      uint64_t* out) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t i = blockIdx.y;
  const uint64_t qi = tv.mod[i].value, w = rv.ql_inv_mod_q[i], ws = rv.ql_inv_mod_q_shoup[i];
  const size_t off = i * n;
  VEIL_FOR_COEFF(c, n) out[off + c] = mul_shoup(in[off + c] + qi - tmp[off + c], w, ws, qi);
}

// ModUp kernels cover the digits [plan.first_digit, plan.first_digit + polys) of a
// level; out points at the first of them, `stride` words per digit.
__global__ void mod_up_own_kernel(DeviceTablesView tv, ModUpDigitsView plan, size_t stride, const uint64_t* ntt,
                                  uint64_t* out) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t i = plan.first_limb + blockIdx.y;
  const uint64_t* src = ntt + static_cast<size_t>(i) * n;
  uint64_t* dst = out + (i / plan.alpha - plan.first_digit) * stride + static_cast<size_t>(i) * n;
  VEIL_FOR_COEFF(c, n) dst[c] = src[c];
}

__global__ void mod_up_scale_kernel(DeviceTablesView tv, ModUpDigitsView plan, const uint64_t* coeff,
                                    uint64_t* y) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t k = blockIdx.y, i = plan.first_limb + k;
  const uint64_t d = tv.mod[i].value, w = plan.qhat_inv[k], ws = plan.qhat_inv_shoup[k];
  const uint64_t* src = coeff + static_cast<size_t>(i) * n;
  uint64_t* dst = y + static_cast<size_t>(k) * n;
  VEIL_FOR_COEFF(c, n) dst[c] = mul_shoup(src[c], w, ws, d);
}

__global__ void mod_up_convert_kernel(DeviceTablesView tv, uint32_t level, ModUpDigitsView plan, size_t stride,
                                      const uint64_t* y, uint64_t* out) {
  const size_t n = size_t{1} << tv.log_n;
  const ModUpRow row = plan.row[blockIdx.y];
  const uint64_t t = tv.mod[qp_prime(tv, level, row.limb)].value;
  const uint64_t* src = y + static_cast<size_t>(row.first - plan.first_limb) * n;
  const uint64_t* f = plan.factors + row.factor_off;
  const uint64_t* fs = plan.factors_shoup + row.factor_off;
  uint64_t* dst = out + (row.digit - plan.first_digit) * stride + static_cast<size_t>(row.limb) * n;
  VEIL_FOR_COEFF(c, n) dst[c] = fast_base_convert(src, row.count, n, c, f, fs, t);
}

// ModDown kernels take polynomial z = blockIdx.z of a ModDownPolys batch.
__global__ void mod_down_scale_kernel(DeviceTablesView tv, ModDownView md, ModDownPolys mp, uint64_t* p_part) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t k = blockIdx.y;
  const uint64_t pk = tv.mod[tv.max_level + 1 + k].value, w = md.phat_inv[k], ws = md.phat_inv_shoup[k];
  uint64_t* limb = p_part + blockIdx.z * mp.in_stride + k * n;
  VEIL_FOR_COEFF(c, n) limb[c] = mul_shoup(limb[c], w, ws, pk);
}

// The rounding correction must round exactly as the host's IEEE double code
// (compiled with -ffp-contract=off): explicit round-to-nearest intrinsics, so
// nvcc cannot fuse the multiply and add into an FMA.
__global__ void mod_down_round_kernel(DeviceTablesView tv, ModDownView md, ModDownPolys mp, uint32_t alpha,
                                      const uint64_t* p_part, uint64_t* v) {
  const size_t n = size_t{1} << tv.log_n;
  p_part += blockIdx.z * mp.in_stride;
  v += blockIdx.z * n;
  VEIL_FOR_COEFF(c, n) {
    double sum = 0;
    for (uint32_t k = 0; k < alpha; ++k)
      sum = __dadd_rn(sum, __dmul_rn(__ull2double_rn(p_part[k * n + c]), md.p_inv[k]));
    v[c] = __double2ull_rz(__dadd_rn(sum, 0.5));  // static_cast<uint64_t> truncates
  }
}

__global__ void mod_down_convert_kernel(DeviceTablesView tv, ModDownView md, ModDownPolys mp, uint32_t alpha,
                                        const uint64_t* p_part, const uint64_t* v, uint64_t* conv) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t i = blockIdx.y;
  p_part += blockIdx.z * mp.in_stride;
  v += blockIdx.z * n;
  conv += blockIdx.z * mp.conv_stride;
  const uint64_t qi = tv.mod[i].value;
  const uint64_t* f = md.phat_mod_q + static_cast<size_t>(i) * alpha;
  const uint64_t* fs = md.phat_mod_q_shoup + static_cast<size_t>(i) * alpha;
  const uint64_t pm = md.p_mod_q[i], pms = md.p_mod_q_shoup[i];
  uint64_t* dst = conv + i * n;
  VEIL_FOR_COEFF(c, n) {
    const uint64_t x = fast_base_convert(p_part, alpha, n, c, f, fs, qi);
    dst[c] = sub_mod(x, mul_shoup(v[c], pm, pms, qi), qi);
  }
}

__global__ void mod_down_finish_kernel(DeviceTablesView tv, ModDownView md, ModDownPolys mp, const uint64_t* x,
                                       const uint64_t* conv) {
  const size_t n = size_t{1} << tv.log_n;
  const uint32_t i = blockIdx.y;
  x += blockIdx.z * mp.in_stride;
  conv += blockIdx.z * mp.conv_stride;
  uint64_t* out = mp.out[blockIdx.z];
  const uint64_t qi = tv.mod[i].value, w = md.p_inv_mod_q[i], ws = md.p_inv_mod_q_shoup[i];
  const size_t off = i * n;
  VEIL_FOR_COEFF(c, n) out[off + c] = mul_shoup(sub_mod(x[off + c], conv[off + c], qi), w, ws, qi);
}

#undef VEIL_FOR_COEFF

// Blocks per row: N / 256 threads, one coefficient each.
dim3 rows_grid(const DeviceTablesView& tv, uint32_t rows, uint32_t polys = 1) {
  return dim3(grid_for(size_t{1} << tv.log_n), rows, polys);
}

}  // namespace

void rescale_prepare(const DeviceTablesView& tv, uint32_t level, const RescaleView& rv, const uint64_t* last,
                     uint64_t* tmp, cudaStream_t stream) {
  if (level == 0) return;
  rescale_prepare_kernel<<<rows_grid(tv, level), kBlockThreads, 0, stream>>>(tv, level, rv, last, tmp);
  check_launch("rescale_prepare_kernel");
}

void rescale_finish(const DeviceTablesView& tv, uint32_t level, const RescaleView& rv, const uint64_t* in,
                    const uint64_t* tmp, uint64_t* out, cudaStream_t stream) {
  if (level == 0) return;
  rescale_finish_kernel<<<rows_grid(tv, level), kBlockThreads, 0, stream>>>(tv, rv, in, tmp, out);
  check_launch("rescale_finish_kernel");
}

void mod_up_own(const DeviceTablesView& tv, const ModUpDigitsView& plan, size_t stride, const uint64_t* ntt,
                uint64_t* out, cudaStream_t stream) {
  if (plan.limbs == 0) return;
  mod_up_own_kernel<<<rows_grid(tv, plan.limbs), kBlockThreads, 0, stream>>>(tv, plan, stride, ntt, out);
  check_launch("mod_up_own_kernel");
}

void mod_up_scale(const DeviceTablesView& tv, const ModUpDigitsView& plan, const uint64_t* coeff, uint64_t* y,
                  cudaStream_t stream) {
  if (plan.limbs == 0) return;
  mod_up_scale_kernel<<<rows_grid(tv, plan.limbs), kBlockThreads, 0, stream>>>(tv, plan, coeff, y);
  check_launch("mod_up_scale_kernel");
}

void mod_up_convert(const DeviceTablesView& tv, uint32_t level, const ModUpDigitsView& plan, size_t stride,
                    const uint64_t* y, uint64_t* out, cudaStream_t stream) {
  if (plan.rows == 0) return;
  mod_up_convert_kernel<<<rows_grid(tv, plan.rows), kBlockThreads, 0, stream>>>(tv, level, plan, stride, y, out);
  check_launch("mod_up_convert_kernel");
}

void mod_down_scale(const DeviceTablesView& tv, const ModDownView& md, const ModDownPolys& mp, uint32_t alpha,
                    uint64_t* p_part, cudaStream_t stream) {
  if (alpha == 0) return;
  mod_down_scale_kernel<<<rows_grid(tv, alpha, mp.polys), kBlockThreads, 0, stream>>>(tv, md, mp, p_part);
  check_launch("mod_down_scale_kernel");
}

void mod_down_round(const DeviceTablesView& tv, const ModDownView& md, const ModDownPolys& mp, uint32_t alpha,
                    const uint64_t* p_part, uint64_t* v, cudaStream_t stream) {
  mod_down_round_kernel<<<rows_grid(tv, 1, mp.polys), kBlockThreads, 0, stream>>>(tv, md, mp, alpha, p_part, v);
  check_launch("mod_down_round_kernel");
}

void mod_down_convert(const DeviceTablesView& tv, uint32_t level, const ModDownView& md, const ModDownPolys& mp,
                      uint32_t alpha, const uint64_t* p_part, const uint64_t* v, uint64_t* conv,
                      cudaStream_t stream) {
  if (alpha == 0) return;
  mod_down_convert_kernel<<<rows_grid(tv, level + 1, mp.polys), kBlockThreads, 0, stream>>>(tv, md, mp, alpha,
                                                                                            p_part, v, conv);
  check_launch("mod_down_convert_kernel");
}

void mod_down_finish(const DeviceTablesView& tv, uint32_t level, const ModDownView& md, const ModDownPolys& mp,
                     const uint64_t* x, const uint64_t* conv, cudaStream_t stream) {
  mod_down_finish_kernel<<<rows_grid(tv, level + 1, mp.polys), kBlockThreads, 0, stream>>>(tv, md, mp, x, conv);
  check_launch("mod_down_finish_kernel");
}

}  // namespace veil::cuda
