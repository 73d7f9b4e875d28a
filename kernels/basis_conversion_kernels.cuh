// RNS basis changes on the device: the element-wise pieces of rescale,
// ModUp and ModDown (the NTTs between them are ntt_kernels' launches), each
// the twin of a loop in CpuBackend::rescale / mod_up / mod_down.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "device_tables.cuh"

namespace veil::cuda {

// Most key switches one launch sequence covers (Backend::key_switch_many): their
// pointers travel in the launches' parameters (16 x 5 words for the inner product,
// 32 x 3 words for the ModDown, well inside the 4 KiB parameter space).
constexpr uint32_t kMaxBatch = 16;
constexpr uint32_t kMaxModDownPolys = 2 * kMaxBatch;

// Rescale constants of one level l (rows i < l), device pointers.
struct RescaleView {
  const uint64_t* ql_inv_mod_q;
  const uint64_t* ql_inv_mod_q_shoup;
  const uint64_t* half_ql_mod_q;
};

// One target row of a level's ModUp: digit `digit` (source limbs [first, first +
// count) of Q_l) converted to limb `limb` of Q_l u P, with the factors (D/d_i) mod t
// at factor_off of ModUpDigitsView::factors.
struct ModUpRow {
  uint32_t digit, limb, first, count;
  size_t factor_off;
};

// Consecutive digits [first_digit, first_digit + digits) of one level, device
// pointers: their own limbs [first_limb, first_limb + limbs) of Q_l and their rows.
struct ModUpDigitsView {
  uint32_t first_digit = 0, alpha = 1;
  uint32_t first_limb = 0, limbs = 0;
  uint32_t rows = 0;                  // sum over the digits of their targets
  const ModUpRow* row;                // [rows]
  const uint64_t* qhat_inv;           // [limbs]: (D/d_i)^-1 mod d_i of each limb's digit
  const uint64_t* qhat_inv_shoup;
  const uint64_t* factors;
  const uint64_t* factors_shoup;
};

// ModDown constants, device pointers.
struct ModDownView {
  const uint64_t* phat_inv;           // [alpha]
  const uint64_t* phat_inv_shoup;     // [alpha]
  const uint64_t* phat_mod_q;         // [L+1][alpha]
  const uint64_t* phat_mod_q_shoup;   // [L+1][alpha]
  const uint64_t* p_mod_q;            // [L+1]
  const uint64_t* p_mod_q_shoup;      // [L+1]
  const uint64_t* p_inv_mod_q;        // [L+1]
  const uint64_t* p_inv_mod_q_shoup;  // [L+1]
  const double* p_inv;                // [alpha]
  // Set for ModDown and rescale at once (RnsTables::mod_down_rescale, "P" = q_l P): the
  // addends are multiplied by these (q_l^-1 mod q_i) before they are added.
  const uint64_t* add_scale = nullptr;
  const uint64_t* add_scale_shoup = nullptr;
};

// The polynomials one rescale launch sequence covers (blockIdx.z): polys (1 ..
// kMaxModDownPolys) inputs over Q_level, each with its own output over Q_{level-1}
// (out[z] may alias in[z]: each word is read before the same thread writes it).
struct RescalePolys {
  uint32_t polys = 0;
  const uint64_t* in[kMaxModDownPolys] = {};
  uint64_t* out[kMaxModDownPolys] = {};
};

// Rescale in four launches for every polynomial of rp: the dropped limb (limb `level`)
// to coefficients, out of place into `last`; then one forward NTT of the `level` limbs
// of Q_{level-1} whose first pass computes tmp[i] = reduce_{q_i}(last + floor(q_l/2)
// mod q_l) + q_i - (floor(q_l/2) mod q_i) and whose last pass writes out[i] = (in[i] +
// q_i - NTT(tmp)[i]) q_l^-1 mod q_i. scratch: [rp.polys][level + 1][N] (per polynomial
// tmp, then last).
void rescale_ntt(const DeviceTablesView& tv, uint32_t level, const RescaleView& rv, const RescalePolys& rp,
                 uint64_t* scratch, cudaStream_t stream);

// ModUp of the digits of a ModUpDigitsView (out: one polynomial over Q_l u P per digit,
// `stride` words apart, starting with digit first_digit). Own limbs:
// out[i / alpha][i] = ntt[i] (exact, already NTT form).
void mod_up_own(const DeviceTablesView& tv, const ModUpDigitsView& plan, size_t stride, const uint64_t* ntt,
                uint64_t* out, cudaStream_t stream);
// y[k] = coeff[first_limb + k] (D/d_i)^-1 mod d_i for each own limb (of its digit).
void mod_up_scale(const DeviceTablesView& tv, const ModUpDigitsView& plan, const uint64_t* coeff, uint64_t* y,
                  cudaStream_t stream);
// The same y from the NTT form of the input: y[k] = INTT(ntt[first_limb + k]) (D/d_i)^-1
// mod d_i, the inverse transform out of place (its first pass reads ntt, writes y) and
// the scaling done by its last pass, so no coefficient-form copy of the input is made.
// count (<= kMaxBatch) inputs at once: y + i * plan.limbs * N from ntts[i].
void mod_up_scale_from_ntt(const DeviceTablesView& tv, const ModUpDigitsView& plan, uint32_t count,
                           const uint64_t* const* ntts, uint64_t* y, cudaStream_t stream);
// out[row.digit][row.limb] = NTT(sum_i y[row.first + i] (D/d_i) mod t) for every row: the
// conversion runs inside the forward NTT's first pass (ntt_passes.cuh), so the
// coefficient-form rows are never stored. `targets` is the LimbMap of the digits'
// Q_l u P limbs with their own limbs skipped. One-prime digits (alpha = 1) convert as
// x mod t: congruent to the cpu's copy, and the NTT outputs canonical residues, so the
// words agree.
void mod_up_convert_ntt(const DeviceTablesView& tv, uint32_t level, const ModUpDigitsView& plan,
                        const LimbMap& targets, const uint64_t* y, uint64_t* out, cudaStream_t stream);
// The same with only the NTT's first (strided) pass: the target rows are left half
// transformed, for key_switch_decomposed (key_switch_kernels.cuh), whose kernel runs
// the second pass itself.
// count (<= kMaxBatch) decompositions at once: input i's y at y + i * plan.limbs * N
// (mod_up_scale_from_ntt's), its digits at outs[i]; `targets` covers one input's digits.
// finish: also run the NTT's second (contiguous) pass over the same limbs, so the
// target rows are left fully transformed (CudaBackend's split key switch).
void mod_up_convert_strided(const DeviceTablesView& tv, uint32_t level, const ModUpDigitsView& plan,
                            const LimbMap& targets, uint32_t count, const uint64_t* y, uint64_t* const* outs,
                            bool finish, cudaStream_t stream);

// The polynomials one ModDown launch sequence covers (blockIdx.z): `polys` (1 ..
// kMaxModDownPolys) inputs over Q_l u P, in_stride words apart; their coefficient-form
// conversions conv_stride words apart in scratch; outputs out[z] over Q_l, plus add[z]
// when that is not null (an addend must not alias an output).
// g_inv[z] != 0: output z is then permuted by X -> X^g (g = g_inv[z]^-1 mod 2N), the
// value of slot i stored in the slot X -> X^g fills from it (a rotation's last step).
struct ModDownPolys {
  uint32_t polys = 1;
  size_t in_stride = 0, conv_stride = 0;
  uint64_t* out[kMaxModDownPolys] = {};
  const uint64_t* add[kMaxModDownPolys] = {};
  uint64_t g_inv[kMaxModDownPolys] = {};
};

// P parts to coefficients: p_part[k] = INTT(p_part[k]) (P/p_k)^-1 mod p_k in place, the
// scaling done by the inverse NTT's last pass. p_map: the alpha P limbs of mp.polys
// polynomials, mp.in_stride apart.
void mod_down_p_to_coeff(const DeviceTablesView& tv, const ModDownView& md, const ModDownPolys& mp,
                         const LimbMap& p_map, uint64_t* p_part, cudaStream_t stream);
// mod_down_p_to_coeff for ModDown and rescale at once: d_map covers D's limbs (q_l,
// then P: contiguous in Q_l u P), md is the level's merged view, and the q_l limb of
// polynomial z first gets (P mod q_l) mp.add[z][level] added (pm, pms: P mod q_l and
// its Shoup companion), as the cpu's mod_down_rescale_pair does.
void mod_down_rescale_to_coeff(const DeviceTablesView& tv, const ModDownView& md, const ModDownPolys& mp,
                               const LimbMap& d_map, uint32_t level, uint64_t pm, uint64_t pms, uint64_t* d_part,
                               cudaStream_t stream);
// The rest of ModDown for limbs i <= level, in one forward NTT whose first pass computes
// the conversion conv[i] = sum_k p_part[k] (P/p_k) - v P mod q_i (coefficient form; v =
// (uint64)(sum_k double(p_part[k][c]) * p_inv[k] + 0.5), in k order, IEEE round-to-nearest,
// no FMA) into conv, and whose last pass writes out[i] = (x[i] - NTT(conv)[i]) P^-1 (+ add[i]) mod q_i.
// conv_map: the Q_l limbs of mp.polys polynomials, mp.conv_stride apart in conv.
void mod_down_convert_finish(const DeviceTablesView& tv, const ModDownView& md, const ModDownPolys& mp,
                             const LimbMap& conv_map, uint32_t alpha, const uint64_t* x, const uint64_t* p_part,
                             uint64_t* conv, cudaStream_t stream);

}  // namespace veil::cuda
