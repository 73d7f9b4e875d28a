// Rescale, ModUp and ModDown on the device: two plain kernels (ModUp's own-limb copy
// and scaling; rows are blockIdx.y, coefficients a grid-stride loop) and the I/O
// policies that run every other step inside the passes of the NTTs between them
// (ntt_passes.cuh). The lazy sums follow host/cpu_backend.cpp step for step.
#include "basis_conversion_kernels.cuh"
#include "cuda_check.cuh"
#include "elementwise_kernels.cuh"
#include "ntt_passes.cuh"

namespace veil::cuda {
namespace {

#define VEIL_FOR_COEFF(c, n)                                                                     \
  for (size_t c = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < (n); \
       c += static_cast<size_t>(blockDim.x) * gridDim.x)

// sum_i y_i f_i mod t as fast_base_convert on the host sums it: lazy Shoup terms in
// [0, 2t), the running sum folded below 2t, one final correction.
struct LazySum {
  uint64_t t, two_t, acc;
  __device__ LazySum(uint64_t y0, uint64_t f0, uint64_t fs0, uint64_t t_)
      : t(t_), two_t(2 * t_), acc(mul_shoup_lazy(y0, f0, fs0, t_)) {}
  __device__ void add(uint64_t y, uint64_t f, uint64_t fs) {
    const uint64_t s = acc + mul_shoup_lazy(y, f, fs, t);  // < 4t
    acc = s - ((s >= two_t) ? two_t : 0);
  }
  __device__ uint64_t result() const { return acc - ((acc >= t) ? t : 0); }
};

// sum_i y[i][c] f[i] mod t (host: fast_base_convert).
__device__ __forceinline__ uint64_t fast_base_convert(const uint64_t* y, uint32_t count, size_t n, size_t c,
                                                      const uint64_t* f, const uint64_t* fs, uint64_t t) {
  LazySum sum(y[c], f[0], fs[0], t);
  for (uint32_t i = 1; i < count; ++i) sum.add(y[i * n + c], f[i], fs[i]);
  return sum.result();
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

// ---- Io policies of the fused NTT passes (ntt_passes.cuh) ----

// The last pass of rescale and ModDown: reads t (the limb's NTT output) and stores
// out[i] = (x[i] - t[i]) w (+ add[i]) mod q (w: q_l^-1 or P^-1 mod q; add may be
// null; out may alias x, never add). mul_shoup's result is canonical, so it equals
// the cpu's (x + q - t) w and its separate addition word for word.
// g_inv != 0: the result of slot i goes to the slot that X -> X^g (g = g_inv^-1) fills
// from it. automorphism_ntt's out[j] = in[s_g(j)] with s_g(j) the slot of exponent
// (2 brev(j) + 1) g; s_{g_inv} is the inverse permutation of s_g, so out[s_{g_inv}(i)] = in[i].
struct SubtractScaleAt {
  const uint64_t* src;
  const uint64_t* x;
  uint64_t* out;
  uint64_t q, w, ws;
  const uint64_t* add = nullptr;
  uint64_t g_inv = 0;
  uint32_t log_n = 0;
  const uint64_t* add_w = nullptr;  // not null: add[i] is multiplied by *add_w first (Shoup, add_ws)
  uint64_t add_ws = 0;
  __device__ uint64_t load(size_t i) const { return src[i]; }
  __device__ void store(size_t i, uint64_t t) const {
    const uint64_t r = mul_shoup(sub_mod(x[i], t, q), w, ws, q);
    const uint64_t v = add ? add_mod(r, add_w ? mul_shoup(add[i], *add_w, add_ws, q) : add[i], q) : r;
    if (g_inv == 0) {
      out[i] = v;
      return;
    }
    const uint64_t mask = (uint64_t{2} << log_n) - 1;
    const uint64_t e = 2 * static_cast<uint64_t>(bit_reverse(static_cast<uint32_t>(i), log_n)) + 1;
    out[bit_reverse(static_cast<uint32_t>(((e * g_inv) & mask) >> 1), log_n)] = v;
  }
};

// Rescale: the forward strided pass loads tmp[i] = reduce_{q_i}(last + floor(q_l/2)
// mod q_l) + q_i - (floor(q_l/2) mod q_i) (< 2 q_i, lazy NTT input) and stores it in tmp.
struct RescalePrepareIo {
  RescaleView rv;
  const uint64_t* last;
  uint64_t* tmp;
  size_t stride;  // between polynomials, for last and tmp alike
  uint32_t level, log_n;
  const DeviceModulus* mod;
  struct At {
    const uint64_t* last;
    uint64_t* dst;
    DeviceModulus m;
    uint64_t ql, half, minus_h;
    __device__ uint64_t load(size_t i) const {
      const uint64_t rounded = add_mod(last[i], half, ql);  // round instead of floor
      return reduce64(rounded, m) + minus_h;
    }
    __device__ void store(size_t i, uint64_t v) const { dst[i] = v; }
  };
  __device__ At at(uint32_t limb, uint32_t poly, uint32_t prime) const {
    const DeviceModulus m = mod[prime];
    const uint64_t ql = mod[level].value;
    const size_t off = poly * stride;
    return At{last + off, tmp + off + (static_cast<size_t>(limb) << log_n), m, ql, ql >> 1,
              m.value - rv.half_ql_mod_q[limb]};
  }
};

// Rescale: the forward contiguous pass reads tmp and stores out[z][i] = (in[z][i] -
// tmp[i]) q_l^-1 mod q_i (tmp now in NTT form, reduced). out[z] may alias in[z].
struct RescaleFinishIo {
  RescaleView rv;
  RescalePolys rp;
  const uint64_t* tmp;
  size_t tmp_stride;
  uint32_t log_n;
  const DeviceModulus* mod;
  __device__ SubtractScaleAt at(uint32_t limb, uint32_t poly, uint32_t prime) const {
    const size_t off = static_cast<size_t>(limb) << log_n;
    return SubtractScaleAt{tmp + poly * tmp_stride + off, rp.in[poly] + off, rp.out[poly] + off, mod[prime].value,
                           rv.ql_inv_mod_q[limb], rv.ql_inv_mod_q_shoup[limb]};
  }
};

// ModUp: the forward strided pass loads each target row's conversion of y and stores
// it in the digit's limb (where the contiguous pass continues in place). Launch
// polynomial z is digit z mod `digits` of input z / digits: its y at y + input *
// y_stride, its digits at out[input], `stride` words apart.
struct ModUpConvertIo {
  ModUpDigitsView plan;
  const uint64_t* y;
  uint64_t* out[kMaxBatch];
  size_t stride, y_stride;
  uint32_t digits, level, log_n;
  const DeviceModulus* mod;
  struct At {
    const uint64_t* src;
    const uint64_t* f;
    const uint64_t* fs;
    uint64_t* dst;
    uint64_t t;
    size_t n;
    uint32_t count;
    __device__ uint64_t load(size_t i) const { return fast_base_convert(src, count, n, i, f, fs, t); }
    __device__ void store(size_t i, uint64_t v) const { dst[i] = v; }
  };
  // Rows are in digit order, each digit's in limb order over its targets (Q_l u P
  // minus its own limbs); every digit before the level's last has alpha own limbs,
  // so digit first_digit + poly starts at row poly * (level + 1).
  __device__ At at(uint32_t limb, uint32_t z, uint32_t prime) const {
    const uint32_t input = z / digits, poly = z % digits;
    const DigitLimbs own = digit_limbs(plan.first_digit + poly, plan.alpha, level + 1);
    const uint32_t target = limb < own.first ? limb : limb - own.count();
    const ModUpRow row = plan.row[poly * (level + 1) + target];
    const size_t n = size_t{1} << log_n;
    return At{y + input * y_stride + static_cast<size_t>(row.first - plan.first_limb) * n,
              plan.factors + row.factor_off, plan.factors_shoup + row.factor_off,
              out[input] + poly * stride + static_cast<size_t>(limb) * n, mod[prime].value, n, row.count};
  }
};

// The digits of mod_up_convert_strided's inputs in place (blockIdx.z = input * digits
// + digit, as ModUpConvertIo maps them): its contiguous pass when it finishes them.
struct DigitsInPlaceIo {
  uint64_t* out[kMaxBatch];
  size_t stride;
  uint32_t digits, log_n;
  __device__ InPlaceIo::At at(uint32_t limb, uint32_t z, uint32_t) const {
    return InPlaceIo::At{out[z / digits] + (z % digits) * stride + (static_cast<size_t>(limb) << log_n)};
  }
};

// In place, each limb's stores multiplied by its scalar (Shoup): the inverse strided
// pass of ModDown's P parts (y_k = x_k (P/p_k)^-1 mod p_k) and of ModUp's input
// (y_i = x_i (D/d_i)^-1 mod d_i). Inverse outputs are < q, as mul_shoup needs.
struct ScaleIo {
  uint64_t* data;
  size_t stride;
  uint32_t log_n;
  const uint64_t* w;  // [limb of the LimbMap]
  const uint64_t* w_shoup;
  const DeviceModulus* mod;
  struct At {
    uint64_t* a;
    uint64_t w, ws, q;
    __device__ uint64_t load(size_t i) const { return a[i]; }
    __device__ void store(size_t i, uint64_t v) const { a[i] = mul_shoup(v, w, ws, q); }
  };
  __device__ At at(uint32_t limb, uint32_t poly, uint32_t prime) const {
    return At{data + poly * stride + (static_cast<size_t>(limb) << log_n), w[limb], w_shoup[limb], mod[prime].value};
  }
};

// ModDown, Q limbs: the forward strided pass loads the conversion of the P part
// (with the rounding correction v computed per coefficient) and stores it in conv.
// The rounding must match the host's IEEE double code (compiled with
// -ffp-contract=off): explicit round-to-nearest intrinsics, so nvcc cannot fuse the
// multiply and add into an FMA.
struct ModDownConvertIo {
  ModDownView md;
  ModDownPolys mp;
  const uint64_t* p_part;
  uint64_t* conv;
  uint32_t alpha, log_n;
  const DeviceModulus* mod;
  struct At {
    const uint64_t* p;
    const uint64_t* f;
    const uint64_t* fs;
    const double* p_inv;
    uint64_t* dst;
    uint64_t qi, pm, pms;
    size_t n;
    uint32_t alpha;
    // One pass over the alpha words: the double sum and fast_base_convert's lazy
    // sum, each in the same order and with the same operations as on the host.
    __device__ uint64_t load(size_t i) const {
      uint64_t y = p[i];
      double sum = __dmul_rn(__ull2double_rn(y), p_inv[0]);
      LazySum conv(y, f[0], fs[0], qi);
      for (uint32_t k = 1; k < alpha; ++k) {
        y = p[k * n + i];
        sum = __dadd_rn(sum, __dmul_rn(__ull2double_rn(y), p_inv[k]));
        conv.add(y, f[k], fs[k]);
      }
      const uint64_t v = __double2ull_rz(__dadd_rn(sum, 0.5));  // static_cast<uint64_t> truncates
      return sub_mod(conv.result(), mul_shoup(v, pm, pms, qi), qi);
    }
    __device__ void store(size_t i, uint64_t v) const { dst[i] = v; }
  };
  __device__ At at(uint32_t limb, uint32_t poly, uint32_t prime) const {
    const size_t n = size_t{1} << log_n;
    return At{p_part + poly * mp.in_stride, md.phat_mod_q + static_cast<size_t>(limb) * alpha,
              md.phat_mod_q_shoup + static_cast<size_t>(limb) * alpha, md.p_inv,
              conv + poly * mp.conv_stride + static_cast<size_t>(limb) * n, mod[prime].value, md.p_mod_q[limb],
              md.p_mod_q_shoup[limb], n, alpha};
  }
};

// ModDown, Q limbs: the forward contiguous pass reads conv and stores
// out[i] = (x[i] - conv[i]) P^-1 mod q_i (conv now in NTT form, reduced).
struct ModDownFinishIo {
  ModDownView md;
  ModDownPolys mp;
  const uint64_t* x;
  const uint64_t* conv;
  uint32_t log_n;
  const DeviceModulus* mod;
  __device__ SubtractScaleAt at(uint32_t limb, uint32_t poly, uint32_t prime) const {
    const size_t off = static_cast<size_t>(limb) << log_n;
    const uint64_t* add = mp.add[poly];
    return SubtractScaleAt{conv + poly * mp.conv_stride + off,
                           x + poly * mp.in_stride + off,
                           mp.out[poly] + off,
                           mod[prime].value,
                           md.p_inv_mod_q[limb],
                           md.p_inv_mod_q_shoup[limb],
                           add ? add + off : nullptr,
                           mp.g_inv[poly],
                           log_n,
                           md.add_scale ? md.add_scale + limb : nullptr,
                           md.add_scale ? md.add_scale_shoup[limb] : 0};
  }
};

// ModDown and rescale at once, the inverse contiguous pass over D's limbs (q_l, P):
// in place, the q_l limb's loads with (P mod q_l) add[level] added first.
struct MergeAddendIo {
  ModDownPolys mp;
  uint64_t* data;
  uint32_t level, log_n;
  uint64_t pm, pms;  // P mod q_l
  const DeviceModulus* mod;
  struct At {
    uint64_t* a;
    const uint64_t* add;
    uint64_t pm, pms, q;
    __device__ uint64_t load(size_t i) const {
      return add ? add_mod(a[i], mul_shoup(add[i], pm, pms, q), q) : a[i];
    }
    __device__ void store(size_t i, uint64_t v) const { a[i] = v; }
  };
  __device__ At at(uint32_t limb, uint32_t poly, uint32_t prime) const {
    const uint64_t* add = limb == 0 && mp.add[poly] ? mp.add[poly] + (static_cast<size_t>(level) << log_n) : nullptr;
    return At{data + poly * mp.in_stride + (static_cast<size_t>(limb) << log_n), add, pm, pms, mod[prime].value};
  }
};

#undef VEIL_FOR_COEFF

void require_batch(uint32_t count) {
  if (count > kMaxBatch) throw Error(ErrorCode::InvalidArgument, "cuda: more than 16 key switches in one launch");
}

// Blocks per row: N / 256 threads, one coefficient each.
dim3 rows_grid(const DeviceTablesView& tv, uint32_t rows, uint32_t polys = 1) {
  return dim3(grid_for(size_t{1} << tv.log_n), rows, polys);
}

}  // namespace

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

// Loads limb `limb` of input z (its own pointer), stores at z * dst_stride in dst.
struct GatherIo {
  const uint64_t* src[kMaxModDownPolys];
  uint64_t* dst;
  size_t dst_stride;
  uint32_t log_n;
  __device__ CopyAt at(uint32_t limb, uint32_t z, uint32_t) const {
    const size_t off = static_cast<size_t>(limb) << log_n;
    return CopyAt{src[z] + off, dst + z * dst_stride + off};
  }
};

void rescale_ntt(const DeviceTablesView& tv, uint32_t level, const RescaleView& rv, const RescalePolys& rp,
                 uint64_t* scratch, cudaStream_t stream) {
  if (level == 0 || rp.polys == 0) return;
  if (rp.polys > kMaxModDownPolys) throw Error(ErrorCode::InvalidArgument, "cuda: more than 32 rescales in one launch");
  const size_t n = size_t{1} << tv.log_n, stride = (level + 1) * n;
  uint64_t* tmp = scratch;
  uint64_t* last = scratch + level * n;
  LimbMap last_map;  // the dropped limb of every polynomial
  last_map.limbs = last_map.q_count = 1;
  last_map.q_first = level;
  last_map.polys = rp.polys;
  GatherIo gather{};
  for (uint32_t z = 0; z < rp.polys; ++z) gather.src[z] = rp.in[z] + level * n;
  gather.dst = last;
  gather.dst_stride = stride;
  gather.log_n = tv.log_n;
  launch_inverse(tv, last_map, gather, InPlaceIo{last, stride, tv.log_n}, stream, "rescale_ntt");
  LimbMap q_map;  // the level limbs of Q_{level-1}
  q_map.limbs = q_map.q_count = level;
  q_map.polys = rp.polys;
  const RescalePrepareIo prepare{rv, last, tmp, stride, level, tv.log_n, tv.mod};
  const RescaleFinishIo finish{rv, rp, tmp, stride, tv.log_n, tv.mod};
  launch_forward(tv, q_map, prepare, finish, stream, "rescale_ntt");
}

void mod_up_scale_from_ntt(const DeviceTablesView& tv, const ModUpDigitsView& plan, uint32_t count,
                           const uint64_t* const* ntts, uint64_t* y, cudaStream_t stream) {
  if (plan.limbs == 0 || count == 0) return;
  require_batch(count);
  LimbMap own;  // the digits' own limbs of Q_l, with their primes
  own.limbs = own.q_count = plan.limbs;
  own.q_first = plan.first_limb;
  own.polys = count;
  const size_t y_stride = static_cast<size_t>(plan.limbs) << tv.log_n;
  GatherIo first{};
  for (uint32_t i = 0; i < count; ++i) first.src[i] = ntts[i] + (static_cast<size_t>(plan.first_limb) << tv.log_n);
  first.dst = y;
  first.dst_stride = y_stride;
  first.log_n = tv.log_n;
  const ScaleIo scale{y, y_stride, tv.log_n, plan.qhat_inv, plan.qhat_inv_shoup, tv.mod};
  launch_inverse(tv, own, first, scale, stream, "mod_up_scale_from_ntt");
}

void mod_up_convert_ntt(const DeviceTablesView& tv, uint32_t level, const ModUpDigitsView& plan,
                        const LimbMap& targets, const uint64_t* y, uint64_t* out, cudaStream_t stream) {
  if (plan.rows == 0) return;
  ModUpConvertIo convert{plan, y, {out}, targets.poly_stride, 0, targets.polys, level, tv.log_n, tv.mod};
  const InPlaceIo rest{out, targets.poly_stride, tv.log_n};
  launch_forward(tv, targets, convert, rest, stream, "mod_up_convert_ntt");
}

void mod_up_convert_strided(const DeviceTablesView& tv, uint32_t level, const ModUpDigitsView& plan,
                            const LimbMap& targets, uint32_t count, const uint64_t* y, uint64_t* const* outs,
                            bool finish, cudaStream_t stream) {
  if (plan.rows == 0 || count == 0) return;
  require_batch(count);
  ModUpConvertIo convert{plan, y, {}, targets.poly_stride, static_cast<size_t>(plan.limbs) << tv.log_n,
                         targets.polys, level, tv.log_n, tv.mod};
  DigitsInPlaceIo digits{{}, targets.poly_stride, targets.polys, tv.log_n};
  for (uint32_t i = 0; i < count; ++i) convert.out[i] = digits.out[i] = outs[i];
  LimbMap all = targets;  // every input's digits, each input's own limbs skipped
  all.digit_period = targets.polys;
  all.polys = targets.polys * count;
  launch_forward_strided(tv, all, convert, stream, "mod_up_convert_strided");
  if (finish) launch_forward_contiguous(tv, all, digits, stream, "mod_up_convert_strided (second pass)");
}

void mod_down_p_to_coeff(const DeviceTablesView& tv, const ModDownView& md, const ModDownPolys& mp,
                         const LimbMap& p_map, uint64_t* p_part, cudaStream_t stream) {
  const InPlaceIo first{p_part, mp.in_stride, tv.log_n};
  const ScaleIo scale{p_part, mp.in_stride, tv.log_n, md.phat_inv, md.phat_inv_shoup, tv.mod};
  launch_inverse(tv, p_map, first, scale, stream, "mod_down_p_to_coeff");
}

void mod_down_rescale_to_coeff(const DeviceTablesView& tv, const ModDownView& md, const ModDownPolys& mp,
                               const LimbMap& d_map, uint32_t level, uint64_t pm, uint64_t pms, uint64_t* d_part,
                               cudaStream_t stream) {
  const MergeAddendIo first{mp, d_part, level, tv.log_n, pm, pms, tv.mod};
  const ScaleIo scale{d_part, mp.in_stride, tv.log_n, md.phat_inv, md.phat_inv_shoup, tv.mod};
  launch_inverse(tv, d_map, first, scale, stream, "mod_down_rescale_to_coeff");
}

void mod_down_convert_finish(const DeviceTablesView& tv, const ModDownView& md, const ModDownPolys& mp,
                             const LimbMap& conv_map, uint32_t alpha, const uint64_t* x, const uint64_t* p_part,
                             uint64_t* conv, cudaStream_t stream) {
  const ModDownConvertIo convert{md, mp, p_part, conv, alpha, tv.log_n, tv.mod};
  const ModDownFinishIo finish{md, mp, x, conv, tv.log_n, tv.mod};
  launch_forward(tv, conv_map, convert, finish, stream, "mod_down_convert_finish");
}

}  // namespace veil::cuda
