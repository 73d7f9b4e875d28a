#include "backend/cpu_backend.hpp"

#include <omp.h>
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "arith/combine.hpp"
#include "arith/rns_convert.hpp"
#include "arith/sampling.hpp"
#include "veil/error.hpp"

namespace veil {

using arith::u128;

namespace {
// Parallelise over limbs only when there is enough work to beat the fork cost.
constexpr size_t kParallelWords = size_t{1} << 15;
// dst[c] = sum_i y[i][c] * factors[i] mod m. Each term is a lazy Shoup
// product in [0, 2t); the running sum is folded below 2t so it never overflows.
void fast_base_convert(const uint64_t* y, uint32_t count, size_t n, const uint64_t* factors,
                       const arith::Modulus& m, uint64_t* dst) {
  const uint64_t t = m.value, two_t = 2 * t;
  uint64_t shoup[64];
  for (uint32_t i = 0; i < count; ++i) shoup[i] = arith::shoup_precompute(factors[i], t);
  for (size_t c = 0; c < n; ++c) dst[c] = arith::mul_shoup_lazy(y[c], factors[0], shoup[0], t);
  for (uint32_t i = 1; i < count; ++i) {
    const uint64_t* yi = y + i * n;
    const uint64_t f = factors[i], fs = shoup[i];
    for (size_t c = 0; c < n; ++c) {
      uint64_t s = dst[c] + arith::mul_shoup_lazy(yi[c], f, fs, t);  // < 4t
      dst[c] = s - ((s >= two_t) ? two_t : 0);
    }
  }
  for (size_t c = 0; c < n; ++c) dst[c] -= (dst[c] >= t) ? t : 0;
}

}  // namespace

CpuBackend::CpuBackend(std::shared_ptr<const RnsTables> tables) : Backend(std::move(tables)) {
  const auto& t = *tables_;
  mod_.reserve(t.primes.size());
  ntt_.reserve(t.primes.size());
  for (uint64_t q : t.primes) {
    mod_.emplace_back(q);
    ntt_.emplace_back(q, t.log_n);
  }
}

namespace {
constexpr size_t kMaxPooledBytes = size_t{1} << 30;
size_t block_bytes(size_t words) { return ((words * sizeof(uint64_t) + 63) / 64) * 64; }
}  // namespace

void set_cpu_threads(int threads) {
  require(threads >= 1 && threads <= 1024, ErrorCode::InvalidArgument, "thread count must be in [1, 1024]");
  omp_set_num_threads(threads);
}

int cpu_threads() { return omp_get_max_threads(); }

CpuBackend::~CpuBackend() {
  for (auto& [bytes, blocks] : pool_)
    for (uint64_t* p : blocks) std::free(p);
}

uint64_t* CpuBackend::allocate(size_t words) {
  if (words == 0) return nullptr;
  const size_t bytes = block_bytes(words);
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    auto it = pool_.find(bytes);
    if (it != pool_.end() && !it->second.empty()) {
      uint64_t* p = it->second.back();
      it->second.pop_back();
      pooled_bytes_ -= bytes;
      return p;
    }
  }
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw Error(ErrorCode::Backend, "cpu backend: out of memory allocating " + std::to_string(bytes) + " bytes");
  return static_cast<uint64_t*>(p);
}

void CpuBackend::release(uint64_t* ptr, size_t words, bool wipe) noexcept {
  if (!ptr) return;
  const size_t bytes = block_bytes(words);
  if (wipe) sodium_memzero(ptr, bytes);
  {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    if (pooled_bytes_ + bytes <= kMaxPooledBytes) {
      try {
        pool_[bytes].push_back(ptr);
        pooled_bytes_ += bytes;
        return;
      } catch (...) {  // no memory for the bookkeeping: just free the block
      }
    }
  }
  std::free(ptr);
}

void CpuBackend::upload(uint64_t* dst, const uint64_t* src, size_t words) {
  if (words) std::memcpy(dst, src, words * sizeof(uint64_t));
}
void CpuBackend::download(uint64_t* dst, const uint64_t* src, size_t words) {
  if (words) std::memcpy(dst, src, words * sizeof(uint64_t));
}
void CpuBackend::copy(uint64_t* dst, const uint64_t* src, size_t words) {
  if (words && dst != src) std::memmove(dst, src, words * sizeof(uint64_t));
}
// Host memory already: convert straight into dst, no staging copy to wipe.
void CpuBackend::upload_signed(Basis b, uint64_t* dst, const int64_t* host_coeffs) {
  rns::signed_to_rns(host_coeffs, tables_->n, *tables_, b, dst);
}
void CpuBackend::sample_uniform(Basis b, uint64_t* dst, const Seed& seed, uint64_t stream) {
  sampling::sample_uniform(seed, stream, *tables_, b, dst);  // dst is host memory: no staging copy
}
void CpuBackend::set_zero(uint64_t* dst, size_t words) {
  if (words) std::memset(dst, 0, words * sizeof(uint64_t));
}

// Runs the body for every limb of b (variables: limb, m = modulus, off = limb
// offset, n_). `parallel` forks OpenMP threads for compute-bound bodies (when the
// work is large enough); memory-bound element-wise loops pass false, since a
// second thread gains little there and a fork/join costs more on a loaded machine.
#define VEIL_FOR_EACH_LIMB(b, parallel, ...)                                          \
  do {                                                                                \
    const auto& tb_ = *tables_;                                                       \
    const int limbs_ = static_cast<int>(tb_.limbs(b));                                \
    const size_t n_ = tb_.n;                                                          \
    const bool fork_ = (parallel) && limbs_ * n_ >= kParallelWords;                   \
    _Pragma("omp parallel for if (fork_)")                                            \
    for (int limb = 0; limb < limbs_; ++limb) {                                       \
      const arith::Modulus& m = mod_[tb_.prime_index(b, limb)];                       \
      const size_t off = static_cast<size_t>(limb) * n_;                              \
      (void)m; (void)off;                                                             \
      __VA_ARGS__                                                                     \
    }                                                                                 \
  } while (0)

void CpuBackend::add(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  VEIL_FOR_EACH_LIMB(b, false, {
    const uint64_t q = m.value;
    for (size_t i = off; i < off + n_; ++i) out[i] = arith::add_mod(x[i], y[i], q);
  });
}

void CpuBackend::sub(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  VEIL_FOR_EACH_LIMB(b, false, {
    const uint64_t q = m.value;
    for (size_t i = off; i < off + n_; ++i) out[i] = arith::sub_mod(x[i], y[i], q);
  });
}

void CpuBackend::negate(Basis b, uint64_t* out, const uint64_t* x) {
  VEIL_FOR_EACH_LIMB(b, false, {
    const uint64_t q = m.value;
    for (size_t i = off; i < off + n_; ++i) out[i] = arith::neg_mod(x[i], q);
  });
}

void CpuBackend::multiply(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  VEIL_FOR_EACH_LIMB(b, true, {
    for (size_t i = off; i < off + n_; ++i) out[i] = m.mul(x[i], y[i]);
  });
}

void CpuBackend::multiply_accumulate(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  VEIL_FOR_EACH_LIMB(b, true, {
    for (size_t i = off; i < off + n_; ++i) out[i] = m.reduce128((u128)x[i] * y[i] + out[i]);
  });
}

// Per coefficient one 128-bit sum over the terms, reduced every 32 terms (32 (q - 1)^2
// + q < 2^128 for q < 2^61): one pass over out instead of one per term. The sums of a
// chunk of coefficients stay in L1 while the terms stream past two arrays at a time.
void CpuBackend::multiply_sum(Basis b, uint32_t polys, size_t terms, const uint64_t* const* xs,
                              const uint64_t* const* ys, uint64_t* out, bool accumulate) {
  constexpr size_t kTermsPerReduction = 32, kChunk = 256;
  const size_t words = poly_words(b);
  for (uint32_t j = 0; j < polys; ++j) {
    uint64_t* o = out + j * words;
    const size_t shift = j * words;
    VEIL_FOR_EACH_LIMB(b, true, {
      u128 acc[kChunk];
      for (size_t c0 = off; c0 < off + n_; c0 += kChunk) {
        const size_t len = std::min(kChunk, off + n_ - c0);
        for (size_t k = 0; k < len; ++k) acc[k] = accumulate ? o[c0 + k] : 0;
        for (size_t t = 0; t < terms;) {
          for (const size_t end = std::min(terms, t + kTermsPerReduction); t < end; ++t) {
            const uint64_t* x = xs[t] + shift + c0;
            const uint64_t* y = ys[t] + c0;
            for (size_t k = 0; k < len; ++k) acc[k] += (u128)x[k] * y[k];
          }
          if (t < terms)
            for (size_t k = 0; k < len; ++k) acc[k] = m.reduce128(acc[k]);
        }
        for (size_t k = 0; k < len; ++k) o[c0 + k] = m.reduce128(acc[k]);
      }
    });
  }
}

void CpuBackend::multiply_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) {
  VEIL_FOR_EACH_LIMB(b, true, {
    const uint64_t q = m.value, w = s[limb], ws = arith::shoup_precompute(w, q);
    for (size_t i = off; i < off + n_; ++i) out[i] = arith::mul_shoup(x[i], w, ws, q);
  });
}

void CpuBackend::add_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) {
  VEIL_FOR_EACH_LIMB(b, false, {
    const uint64_t q = m.value, w = s[limb];
    for (size_t i = off; i < off + n_; ++i) out[i] = arith::add_mod(x[i], w, q);
  });
}

// Tasks are (limb, polynomial, chunk of coefficients), each running every row: the
// inputs' chunks (columns x 32 words) stay in cache across the rows instead of
// streaming every input once per row.
void CpuBackend::combine(Basis b, uint32_t polys, const CombineMatrix& m, const uint64_t* const* inputs,
                         uint64_t* const* outputs, bool accumulate) {
  const auto& tb = *tables_;
  const size_t limbs = tb.limbs(b), n = tb.n;
  require(limbs <= m.limbs, ErrorCode::InvalidArgument, "combine: the matrix has fewer limbs than the basis");
  const size_t chunk = std::min(arith::kCombineChunk, n), chunks = n / chunk;
  const size_t tasks = limbs * polys * chunks;
  const bool fork = m.entries * polys * limbs * n >= kParallelWords;
#pragma omp parallel for schedule(static) if (fork)
  for (size_t t = 0; t < tasks; ++t) {
    const size_t limb = t / (polys * chunks), p = t / chunks % polys, c = t % chunks;
    const arith::Modulus& mod = mod_[tb.prime_index(b, static_cast<uint32_t>(limb))];
    const size_t offset = (p * limbs + limb) * n + c * chunk;
    const uint64_t* w = m.weights + limb * m.entries;
    for (size_t r = 0; r < m.rows; ++r)
      arith::combine_chunk(mod, chunk, m.row_start[r], m.row_start[r + 1], m.cols, w, inputs, offset,
                           outputs[r] + offset, accumulate);
  }
}

void CpuBackend::ntt_forward(Basis b, uint64_t* data) {
  VEIL_FOR_EACH_LIMB(b, true, { ntt_[tb_.prime_index(b, limb)].forward(data + off); });
}

void CpuBackend::ntt_inverse(Basis b, uint64_t* data) {
  VEIL_FOR_EACH_LIMB(b, true, { ntt_[tb_.prime_index(b, limb)].inverse(data + off); });
}

// Bit-reversed NTT slot i holds a(psi^(2 brev(i) + 1)); a(X^g) there equals
// a(psi^((2 brev(i) + 1) g)), i.e. the slot whose exponent is that product.
const std::vector<uint32_t>& CpuBackend::ntt_permutation(uint64_t g) {
  std::lock_guard<std::mutex> lock(perm_mutex_);
  auto it = perm_cache_.find(g);
  if (it != perm_cache_.end()) return it->second;
  const uint32_t log_n = tables_->log_n;
  const uint64_t n = tables_->n, two_n_mask = 2 * n - 1;
  std::vector<uint32_t> perm(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t e = 2 * arith::bit_reverse(static_cast<uint32_t>(i), log_n) + 1;
    uint64_t target = ((e * g) & two_n_mask) >> 1;
    perm[i] = arith::bit_reverse(static_cast<uint32_t>(target), log_n);
  }
  return perm_cache_.emplace(g, std::move(perm)).first->second;
}

void CpuBackend::automorphism_ntt(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) {
  require((g & 1) && g < 2 * tables_->n, ErrorCode::InvalidArgument, "Galois element must be odd and < 2N");
  const auto& perm = ntt_permutation(g);
  VEIL_FOR_EACH_LIMB(b, true, {
    const uint64_t* src = in + off;
    uint64_t* dst = out + off;
    for (size_t i = 0; i < n_; ++i) dst[i] = src[perm[i]];
  });
}

void CpuBackend::automorphism_coeff(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) {
  require((g & 1) && g < 2 * tables_->n, ErrorCode::InvalidArgument, "Galois element must be odd and < 2N");
  VEIL_FOR_EACH_LIMB(b, true, {
    const uint64_t q = m.value, mask = 2 * n_ - 1;
    const uint64_t* src = in + off;
    uint64_t* dst = out + off;
    for (size_t i = 0; i < n_; ++i) {
      uint64_t k = (i * g) & mask;
      if (k < n_) dst[k] = src[i];
      else dst[k - n_] = arith::neg_mod(src[i], q);
    }
  });
}

void CpuBackend::rescale(uint32_t level, const uint64_t* in, uint64_t* out) {
  require(level >= 1 && level <= tables_->max_level, ErrorCode::LevelMismatch, "rescale needs level >= 1");
  const auto& t = *tables_;
  const auto& plan = t.rescale[level];
  const size_t n = t.n;
  const uint64_t ql = t.primes[level];
  std::vector<uint64_t> last(in + level * n, in + (level + 1) * n);
  ntt_[level].inverse(last.data());
  const uint64_t half = ql >> 1;
  for (auto& v : last) v = arith::add_mod(v, half, ql);  // round instead of floor
#pragma omp parallel for if (level * n >= kParallelWords)
  for (int i = 0; i < static_cast<int>(level); ++i) {
    const arith::Modulus& m = mod_[i];
    const uint64_t qi = m.value;
    std::vector<uint64_t> tmp(n);
    const uint64_t minus_h = qi - plan.half_ql_mod_q[i];
    for (size_t c = 0; c < n; ++c) tmp[c] = m.reduce(last[c]) + minus_h;  // < 2 qi: the NTT takes lazy input
    ntt_[i].forward(tmp.data());
    const uint64_t w = plan.ql_inv_mod_q[i], ws = arith::shoup_precompute(w, qi);
    const uint64_t* src = in + i * n;
    uint64_t* dst = out + i * n;
    for (size_t c = 0; c < n; ++c) dst[c] = arith::mul_shoup(src[c] + qi - tmp[c], w, ws, qi);
  }
}

void CpuBackend::mod_up(uint32_t level, uint32_t digit, uint64_t* out_qp, const uint64_t* coeff,
                        const uint64_t* ntt) {
  const auto& t = *tables_;
  require(level <= t.max_level && digit < t.digits(level), ErrorCode::InvalidArgument, "mod_up: bad level/digit");
  const auto& plan = t.mod_up[level][digit];
  const size_t n = t.n;
  // The digit's own limbs are exact: copy them (already NTT form).
  std::memcpy(out_qp + plan.first * n, ntt + plan.first * n, plan.count * n * sizeof(uint64_t));
  const Basis qp{level + 1, true};
  const int targets = static_cast<int>(plan.target_limbs.size());
  if (plan.count == 1 && plan.qhat_inv[0] == 1) {
    // One-prime digit (alpha = 1): the conversion is x mod t. The forward NTT
    // accepts inputs below 4t, so when d < 4t no reduction is needed at all.
    const uint64_t d = t.primes[plan.first];
    const uint64_t* src = coeff + static_cast<size_t>(plan.first) * n;
#pragma omp parallel for if (targets * n >= kParallelWords)
    for (int k = 0; k < targets; ++k) {
      const uint32_t limb = plan.target_limbs[k];
      const uint32_t pi = t.prime_index(qp, limb);
      const arith::Modulus& m = mod_[pi];
      uint64_t* dst = out_qp + limb * n;
      if (d < 4 * m.value) std::memcpy(dst, src, n * sizeof(uint64_t));
      else for (size_t c = 0; c < n; ++c) dst[c] = m.reduce(src[c]);
      ntt_[pi].forward(dst);
    }
    return;
  }
  // y_i = x_i * (D/d_i)^-1 mod d_i
  std::vector<uint64_t> y(plan.count * n);
  for (uint32_t i = 0; i < plan.count; ++i) {
    const uint64_t d = t.primes[plan.first + i], w = plan.qhat_inv[i], ws = arith::shoup_precompute(w, d);
    const uint64_t* src = coeff + (plan.first + i) * n;
    for (size_t c = 0; c < n; ++c) y[i * n + c] = arith::mul_shoup(src[c], w, ws, d);
  }
#pragma omp parallel for if (targets * n >= kParallelWords)
  for (int k = 0; k < targets; ++k) {
    const uint32_t limb = plan.target_limbs[k];
    const uint32_t pi = t.prime_index(qp, limb);
    const arith::Modulus& m = mod_[pi];
    const uint64_t* factors = plan.qhat_mod_target.data() + static_cast<size_t>(k) * plan.count;
    uint64_t* dst = out_qp + limb * n;
    fast_base_convert(y.data(), plan.count, n, factors, m, dst);
    ntt_[pi].forward(dst);
  }
}

void CpuBackend::mod_down(uint32_t level, uint64_t* out_q, uint64_t* in_qp) {
  const auto& t = *tables_;
  require(level <= t.max_level, ErrorCode::InvalidArgument, "mod_down: bad level");
  divide_rounded(t.mod_down, in_qp + (level + 1) * t.n, level + 1, in_qp, out_q, nullptr, nullptr);
}

// x + P add over Q_l u P: P add vanishes mod every p_k, so only the Q limbs change; the
// q_l limb (divided away with P) gets it here, the others through add * q_l^-1 (= P D^-1).
void CpuBackend::mod_down_rescale_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2,
                                       const uint64_t* add0, const uint64_t* add1) {
  const auto& t = *tables_;
  require(level >= 1 && level <= t.max_level, ErrorCode::LevelMismatch, "mod_down_rescale_pair needs level >= 1");
  const size_t n = t.n, words = poly_words(Basis{level + 1, true});
  const uint64_t ql = t.primes[level];
  const uint64_t pm = t.mod_down.p_mod_q[level], pms = arith::shoup_precompute(pm, ql);
  uint64_t* outs[2] = {out0, out1};
  const uint64_t* adds[2] = {add0, add1};
  for (int h = 0; h < 2; ++h) {
    uint64_t* x = in_qp2 + h * words;
    if (adds[h]) {
      uint64_t* xl = x + level * n;
      const uint64_t* al = adds[h] + level * n;
      for (size_t c = 0; c < n; ++c) xl[c] = arith::add_mod(xl[c], arith::mul_shoup(al[c], pm, pms, ql), ql);
    }
    divide_rounded(t.mod_down_rescale[level], x + level * n, level, x, outs[h], adds[h],
                   t.rescale[level].ql_inv_mod_q.data());
  }
}

void CpuBackend::divide_rounded(const RnsTables::ModDownPlan& plan, uint64_t* dropped, uint32_t keep,
                                const uint64_t* x, uint64_t* out, const uint64_t* add, const uint64_t* add_scale) {
  const size_t n = tables_->n;
  const std::vector<uint32_t>& drop_primes = plan.drop;
  const auto drop = static_cast<uint32_t>(drop_primes.size());
  // Dropped limbs to coefficients, then y_k = x_k * (D/d_k)^-1 mod d_k (in place).
#pragma omp parallel for if (drop * n >= kParallelWords)
  for (int k = 0; k < static_cast<int>(drop); ++k) {
    const uint64_t dk = tables_->primes[drop_primes[k]];
    uint64_t* limb = dropped + k * n;
    ntt_[drop_primes[k]].inverse(limb);
    const uint64_t w = plan.phat_inv[k], ws = arith::shoup_precompute(w, dk);
    for (size_t c = 0; c < n; ++c) limb[c] = arith::mul_shoup(limb[c], w, ws, dk);
  }
  // v = round(sum_k y_k / d_k): how many D to subtract so the converted value is
  // the centered residue [x]_D (exact division then rounds instead of floors).
  std::vector<uint64_t> v(n);
  for (size_t c = 0; c < n; ++c) {
    double sum = 0;
    for (uint32_t k = 0; k < drop; ++k) sum += static_cast<double>(dropped[k * n + c]) * plan.p_inv[k];
    v[c] = static_cast<uint64_t>(sum + 0.5);
  }
#pragma omp parallel for if (keep * n >= kParallelWords)
  for (int i = 0; i < static_cast<int>(keep); ++i) {
    const arith::Modulus& m = mod_[i];
    const uint64_t qi = m.value;
    std::vector<uint64_t> conv(n);
    fast_base_convert(dropped, drop, n, plan.phat_mod_q.data() + static_cast<size_t>(i) * drop, m, conv.data());
    const uint64_t dm = plan.p_mod_q[i], dms = arith::shoup_precompute(dm, qi);
    for (size_t c = 0; c < n; ++c) conv[c] = arith::sub_mod(conv[c], arith::mul_shoup(v[c], dm, dms, qi), qi);
    ntt_[i].forward(conv.data());
    const uint64_t w = plan.p_inv_mod_q[i], ws = arith::shoup_precompute(w, qi);
    const uint64_t* xi = x + i * n;
    uint64_t* dst = out + i * n;
    for (size_t c = 0; c < n; ++c) dst[c] = arith::mul_shoup(arith::sub_mod(xi[c], conv[c], qi), w, ws, qi);
    if (add) {
      const uint64_t a = add_scale[i], as = arith::shoup_precompute(a, qi);
      const uint64_t* ai = add + i * n;
      for (size_t c = 0; c < n; ++c) dst[c] = arith::add_mod(dst[c], arith::mul_shoup(ai[c], a, as, qi), qi);
    }
  }
}

void CpuBackend::key_switch_inner_product(uint32_t level, uint32_t num_digits, const uint64_t* digits,
                                          const uint64_t* key, uint64_t* out0, uint64_t* out1) {
  const auto& t = *tables_;
  require(level <= t.max_level && num_digits >= 1 && num_digits <= t.digits(t.max_level),
          ErrorCode::InvalidArgument, "key_switch_inner_product: bad level/digits");
  const Basis qp{level + 1, true};
  const size_t n = t.n;
  const uint32_t limbs = t.limbs(qp);
  const size_t key_poly = static_cast<size_t>(t.max_level + 1 + t.alpha) * n;
  const size_t digit_words = static_cast<size_t>(limbs) * n;
  // Blocks of coefficients keep the 128-bit accumulators in L1 while each
  // digit/key stream is read sequentially (few streams for the prefetcher).
  constexpr size_t kBlock = 512;
#pragma omp parallel for if (limbs * n >= kParallelWords)
  for (int limb = 0; limb < static_cast<int>(limbs); ++limb) {
    const uint32_t pi = t.prime_index(qp, limb);
    const arith::Modulus& m = mod_[pi];
    const size_t key_off = static_cast<size_t>(pi) * n;  // prime index == key limb index
    u128 acc0[kBlock], acc1[kBlock];
    for (size_t base = 0; base < n; base += kBlock) {
      const size_t len = std::min(kBlock, n - base);
      for (size_t c = 0; c < len; ++c) acc0[c] = acc1[c] = 0;
      for (uint32_t j = 0; j < num_digits; ++j) {
        const uint64_t* d = digits + j * digit_words + limb * n + base;
        const uint64_t* k0 = key + 2 * j * key_poly + key_off + base;
        const uint64_t* k1 = k0 + key_poly;
        for (size_t c = 0; c < len; ++c) {
          acc0[c] += (u128)d[c] * k0[c];
          acc1[c] += (u128)d[c] * k1[c];
        }
      }
      for (size_t c = 0; c < len; ++c) {
        out0[limb * n + base + c] = m.reduce128(acc0[c]);
        out1[limb * n + base + c] = m.reduce128(acc1[c]);
      }
    }
  }
}

}  // namespace veil
