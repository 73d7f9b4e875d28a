// The polynomial backend seam. CKKS (written once) calls only these
// primitives on limb-major uint64_t[limbs][N] buffers; the `cpu` backend
// (host/) and the `cuda` backend (kernels/) implement them and must give
// bit-identical results for the same inputs.
//
// Buffers live wherever the backend keeps them (host memory for cpu, device
// memory for cuda); CKKS code never dereferences them, it only moves data
// with upload()/download().
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "veil/params.hpp"
#include "veil/random.hpp"

namespace veil {

namespace arith {
class SpecialFft;  // host/arith/special_fft.hpp
}

// Which primes a buffer's limbs use. Limb k < q_count is q_k; the next
// `alpha` limbs (when `special`) are the special primes p_0..p_{alpha-1}.
// Q at level l is {l+1, false}; the extended basis Q_l u P is {l+1, true};
// P alone is {0, true}.
struct Basis {
  uint32_t q_count = 0;
  bool special = false;
};

// Host-side constants derived from the primes, shared by all backends.
// Prime index i < L+1 is q_i; index L+1+k is p_k.
struct RnsTables {
  struct ModUpPlan {  // digit j of a level-l polynomial, extended to Q_l u P
    uint32_t first = 0, count = 0;           // the digit's limbs within Q_l
    std::vector<uint32_t> target_limbs;      // limb positions (in Q_l u P) to fill by conversion
    std::vector<uint64_t> qhat_inv;          // [(D/d_i)^-1 mod d_i] per digit limb
    std::vector<uint64_t> qhat_mod_target;   // [target][source] (D/d_i) mod t
  };
  struct ModDownPlan {  // Q_l u P -> Q_l, divide by P (level l uses rows i <= l)
    std::vector<uint32_t> drop;              // prime indices of the dropped limbs, in buffer order
    std::vector<uint64_t> phat_inv;          // [(P/p_k)^-1 mod p_k]
    std::vector<uint64_t> phat_mod_q;        // [q limb i][p limb k] (P/p_k) mod q_i
    std::vector<uint64_t> p_inv_mod_q;       // P^-1 mod q_i
    std::vector<uint64_t> p_mod_q;           // P mod q_i
    std::vector<double> p_inv;               // 1.0 / p_k (IEEE double, for the rounding correction)
  };
  struct RescalePlan {  // Q_l -> Q_{l-1}, divide by q_l with rounding
    std::vector<uint64_t> ql_inv_mod_q;      // q_l^-1 mod q_i, i < l
    std::vector<uint64_t> half_ql_mod_q;     // floor(q_l / 2) mod q_i, i < l
  };

  uint32_t log_n = 0;
  uint64_t n = 0;
  uint32_t max_level = 0;  // L
  uint32_t alpha = 0;      // special primes
  std::vector<uint64_t> primes;                   // q_0..q_L, p_0..p_{alpha-1}
  std::vector<std::vector<ModUpPlan>> mod_up;     // [level][digit]
  ModDownPlan mod_down;
  std::vector<RescalePlan> rescale;               // [level], level >= 1
  // [level], level >= 1: ModDown and rescale as one division by D = q_l P
  // (Backend::mod_down_rescale_pair). Its "P" is D, limbs in buffer order: q_l, then
  // p_0 .. p_{alpha-1} (alpha + 1 of them); rows i < l.
  std::vector<ModDownPlan> mod_down_rescale;

  uint32_t limbs(Basis b) const { return b.q_count + (b.special ? alpha : 0); }
  uint32_t prime_index(Basis b, uint32_t limb) const {
    return limb < b.q_count ? limb : max_level + 1 + (limb - b.q_count);
  }
  // Digits used by key switching at `level`: ceil((level+1) / alpha).
  uint32_t digits(uint32_t level) const { return (level + 1 + alpha - 1) / alpha; }

  static std::shared_ptr<const RnsTables> build(const Parameters& params);
};

// A sparse matrix of integers for Backend::combine, in CSR order, every array in that
// backend's memory as 64-bit words: row_start[rows + 1] (row_start[0] = 0,
// nondecreasing, row_start[rows] = entries), cols[entries] (input indices) and
// weights[limbs][entries] (limb l's entry e is a residue < prime l of the basis used).
struct CombineMatrix {
  size_t rows = 0, entries = 0, columns = 0;  // columns: the inputs a combine call passes
  uint32_t limbs = 0;
  const uint64_t* row_start = nullptr;
  const uint64_t* cols = nullptr;
  const uint64_t* weights = nullptr;
};

// The distributions of Backend::sample_signed.
// One key switch of Backend::key_switch_many: the decomposition `decomposed` of the
// polynomial `ntt` (Backend::key_switch_decompose's), a switching key ([dnum][2][Q_L u
// P][N]), the Galois element g of a rotation's permutation (0: none), the outputs over
// Q_l and optional addends (null: nothing added).
struct KeySwitchJob {
  const uint64_t* decomposed = nullptr;
  const uint64_t* ntt = nullptr;
  const uint64_t* key = nullptr;
  uint64_t g = 0;
  uint64_t* out0 = nullptr;
  uint64_t* out1 = nullptr;
  const uint64_t* add0 = nullptr;
  const uint64_t* add1 = nullptr;
};

enum class SignedDistribution {
  Ternary,           // {-1, 0, 1}, each with probability 1/3 (secrets, encryption's v)
  CenteredBinomial,  // k = 21: sigma = sqrt(10.5) ~ 3.24, values in [-21, 21] (errors)
};

// An extra stream of a backend (opaque; veil::StreamScope is how users get one).
class BackendStream {
 public:
  virtual ~BackendStream() = default;
};

// Work recorded by Backend::begin_recording / end_recording, for Backend::replay.
// Destroy it before its backend.
class BackendRecording {
 public:
  virtual ~BackendRecording() = default;
  // Device work items one replay runs (kernels, copies, fills).
  virtual size_t operations() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Waits until every operation the calling thread issued on its current stream
  // has finished (device backends run asynchronously; the cpu backend is
  // synchronous: a no-op).
  virtual void synchronize() {}

  // ---- streams: independent work from several threads overlaps on a device ----
  // Every call a thread makes goes to that thread's current stream of the backend:
  // the backend's own stream unless the thread pushed another. create_stream()
  // makes a new stream whose work starts after everything issued so far on the
  // calling thread's current stream; nullptr when the backend has no streams (cpu:
  // every call runs to completion on the calling thread). push_stream makes `s` (from
  // this backend's create_stream) the calling thread's current stream until the
  // matching pop_stream; pushes nest, and `s` must outlive them. Error(InvalidArgument)
  // for a stream of another backend, or a pop without a push.
  virtual std::unique_ptr<BackendStream> create_stream() { return nullptr; }
  virtual void push_stream(BackendStream* s);
  virtual void pop_stream() {}
  // Benchmark timing of the work issued between timer_start() and timer_stop_ms()
  // (milliseconds; waits for that work). cpu: wall clock; cuda: CUDA events on the
  // backend's stream. Not thread-safe: one timing at a time per backend.
  virtual void timer_start();
  virtual double timer_stop_ms();
  const RnsTables& tables() const { return *tables_; }

  // ---- recording: a fixed sequence of calls replayed with no host work per call ----
  // begin_recording() makes the calls the calling thread then makes (on its current
  // stream) recorded instead of run, until end_recording() returns the recording;
  // replay() runs that work again, on the same buffers, reading their words as they
  // are then. Memory the recorded calls allocate belongs to the recording: fixed
  // addresses, alive (and never handed out again) until the recording is destroyed,
  // so its results can be read after each replay; memory from before the recording
  // that a recorded call releases is kept until then too. While recording, a call that
  // needs the host at that moment (upload, download, synchronize, upload_signed,
  // encode_slots, sampling, timers, streams) throws Error(Unsupported), and the
  // recording must then still be ended (and dropped). Every buffer the recorded calls
  // read must outlive the recording, and lazily built device state must exist before
  // it (run the same calls once first). One recording at a time per backend
  // (Error(InvalidArgument) otherwise); replay on the thread's current stream, in order
  // with the thread's other work. Returns false, recording nothing, on a backend that
  // cannot record (cpu: its calls finish before they return, so there is nothing to
  // save). end_recording / replay: Error(InvalidArgument) without a recording (or for
  // another backend's).
  virtual bool begin_recording() { return false; }
  virtual std::unique_ptr<BackendRecording> end_recording();
  virtual void replay(BackendRecording& recording);

  // ---- memory (sizes in 64-bit words) ----
  virtual uint64_t* allocate(size_t words) = 0;
  virtual void release(uint64_t* ptr, size_t words, bool wipe) noexcept = 0;
  virtual void upload(uint64_t* dst, const uint64_t* host_src, size_t words) = 0;
  virtual void download(uint64_t* host_dst, const uint64_t* src, size_t words) = 0;
  virtual void copy(uint64_t* dst, const uint64_t* src, size_t words) = 0;
  // `count` copies in one call: dsts[i] = words[i] words at srcs[i] (host arrays of this
  // backend's pointers). No destination may overlap a source or another destination.
  // Default: copy() each; cuda: one launch per 128 copies.
  virtual void copy_many(size_t count, uint64_t* const* dsts, const uint64_t* const* srcs, const size_t* words);
  virtual void set_zero(uint64_t* dst, size_t words) = 0;
  // dst (basis b, coefficient form) = the canonical residues of N signed integers
  // from host memory (any int64: a sampled error, a ternary secret, an encoded
  // plaintext's coefficients), the same words as sampling::signed_to_rns then upload. Default: converted on the host
  // and uploaded (limbs x N words); cuda moves the N words and converts them on the
  // device. The values may be secret: every host or device copy made here is wiped.
  virtual void upload_signed(Basis b, uint64_t* dst, const int64_t* host_coeffs);
  // ---- randomness, drawn where the buffer lives (host/arith/sampling_rules.hpp) ----
  // Counter-based ChaCha20 samples keyed by `seed`; `stream` separates the polynomials
  // drawn from one seed. Every backend gives the same words for the same (seed, stream,
  // basis). Default: drawn on the host (libsodium) and uploaded; cuda: ChaCha20 on the
  // device. The samples may be secret: host copies are wiped, and dst should be a
  // secret buffer.
  // dst (basis b, coefficient form) = the residues of N samples of d.
  virtual void sample_signed(Basis b, uint64_t* dst, SignedDistribution d, const Seed& seed, uint64_t stream);
  // dst (basis b) = residues uniform below each limb's prime (uniform in either form).
  virtual void sample_uniform(Basis b, uint64_t* dst, const Seed& seed, uint64_t stream);
  // ---- encoding: CKKS's canonical embedding (host/arith/special_fft.hpp) ----
  // dst (basis b, coefficient form) = the residues of round(c_i * scale), c being the
  // special FFT of `count` slot values (the rest zero) divided by N/2, the same
  // doubles on every backend. Error(InvalidArgument) when count > N/2, a value is not
  // finite, or a c_i * scale is not below 2^120 in magnitude. Default: on the host
  // (rounded coefficients that fit an int64 travel as N words); cuda: on the device
  // when every |value| * scale is below 2^62 (then so is every c_i * scale), else the
  // default.
  virtual void encode_slots(Basis b, uint64_t* dst, const std::complex<double>* values, size_t count, double scale);
  // dst (basis b, coefficient form) = the residues of round(coeffs[i] * scale), N host
  // doubles; the same errors. On the host.
  void encode_coefficients(Basis b, uint64_t* dst, const double* coeffs, double scale);
  // The special FFT of this backend's ring, built on first use (thread-safe).
  const arith::SpecialFft& special_fft() const;

  // dst (this backend's memory) = `words` words at src (memory of backend `from`),
  // without a trip through host memory: ordered after the work already issued on
  // `from`, and before any later work on either backend (so `from` may reuse src at
  // once). Returns false, copying nothing, when the pair has no such path; the
  // caller then goes through the host (Buffer::copy_to does). Default: false. cuda:
  // any two cuda backends (same device: a device-to-device copy; two devices: a peer
  // copy), each backend keeping its own stream, so their other work still overlaps.
  virtual bool copy_from(uint64_t* dst, Backend& from, const uint64_t* src, size_t words);

  // ---- element-wise mod q_i, every limb of basis b; out may alias inputs ----
  virtual void add(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) = 0;
  virtual void sub(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) = 0;
  virtual void negate(Basis b, uint64_t* out, const uint64_t* x) = 0;
  // add / sub on `polys` polynomials (limbs x N words apart): a ciphertext's halves in
  // one call. Default: one call per polynomial; cuda: one launch.
  virtual void add_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y);
  virtual void sub_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y);
  virtual void multiply(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) = 0;
  // multiply / multiply_scalar of `polys` polynomials (limbs x N words apart) by the
  // same y (one polynomial) / the same scalars: a ciphertext times a plaintext or a
  // constant in one call; out may alias x. Default: one call per polynomial; cuda: one launch.
  virtual void multiply_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y);
  virtual void multiply_scalar_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* s);
  // out += x * y
  virtual void multiply_accumulate(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* y) = 0;
  // The tensor of two size-2 ciphertexts: d0 = a0 b0, d1 = a0 b1 + a1 b0, d2 = a1 b1.
  // The outputs must not alias the inputs (a and b may be the same). Default: four
  // element-wise calls; cuda: one kernel that reads each input word once.
  virtual void tensor(Basis b, uint64_t* d0, uint64_t* d1, uint64_t* d2, const uint64_t* a0, const uint64_t* a1,
                      const uint64_t* b0, const uint64_t* b1);
  // out = x * s[limb]; s is a host array of per-limb scalars, each < its prime.
  virtual void multiply_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) = 0;
  // out = x + s[limb] (every coefficient / every NTT point)
  virtual void add_scalar(Basis b, uint64_t* out, const uint64_t* x, const uint64_t* s) = 0;

  // ---- transforms ----
  // Negacyclic NTT in place. Forward takes coefficients in natural order and
  // leaves evaluations in bit-reversed order; inverse undoes it exactly.
  virtual void ntt_forward(Basis b, uint64_t* data) = 0;
  virtual void ntt_inverse(Basis b, uint64_t* data) = 0;
  // X -> X^g (g odd, < 2N). out must not alias in.
  virtual void automorphism_ntt(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) = 0;
  // automorphism_ntt of `polys` polynomials (limbs x N words apart) in one call (a
  // rotation's two halves). Default: one call per polynomial; cuda: one launch.
  virtual void automorphism_ntt_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* in, uint64_t g);
  virtual void automorphism_coeff(Basis b, uint64_t* out, const uint64_t* in, uint64_t g) = 0;

  // ---- RNS basis changes ----
  // in: Q_level, NTT form; out: `level` limbs (Q_{level-1}), NTT form, receiving
  // round(x / q_level). out may alias in.
  virtual void rescale(uint32_t level, const uint64_t* in, uint64_t* out) = 0;
  // rescale of `polys` consecutive polynomials (a ciphertext's): in holds them
  // (level + 1) N words apart, out receives them level N words apart; out must not
  // overlap in. Default: one rescale each; cuda runs them all in one launch sequence.
  virtual void rescale_polys(uint32_t level, uint32_t polys, const uint64_t* in, uint64_t* out);
  // rescale of `count` polynomials, polynomial i from ins[i] into outs[i]; no output
  // overlaps an input or another output. Default: one rescale each; cuda: groups of 32
  // in one launch sequence (4 launches per group instead of per ciphertext).
  virtual void rescale_many(uint32_t level, size_t count, const uint64_t* const* ins, uint64_t* const* outs);
  // Extends digit `digit` of a level-`level` polynomial to Q_l u P (NTT form).
  // coeff: the polynomial in coefficient form (Q_l); ntt: the same in NTT form.
  virtual void mod_up(uint32_t level, uint32_t digit, uint64_t* out_qp, const uint64_t* coeff,
                      const uint64_t* ntt) = 0;
  // Every digit of the level-`level` polynomial at once: out_digits holds
  // digits(level) polynomials over Q_l u P ([digit][Q_l u P][N]), digit j equal to
  // mod_up(level, j, ...). Default: one mod_up per digit; the cuda backend batches
  // the digits into one launch per step (what key switching calls).
  virtual void mod_up_all(uint32_t level, uint64_t* out_digits, const uint64_t* coeff, const uint64_t* ntt);
  // out_q = round(x / P) over Q_l, NTT form: (x - [x]_P) * P^-1 where [x]_P is the
  // centered residue mod P, made exact by the float correction
  // v = round(sum_k y_k / p_k) (y_k = [x_k (P/p_k)^-1]_{p_k}, summed in k order in IEEE
  // double without fused multiply-add, so every backend gets the same v):
  // [x]_P = sum_k y_k (P/p_k) - v P. Rounding (not flooring) keeps the error
  // centered, so it adds no bias to the slots. in_qp (Q_l u P, NTT form) is used
  // as scratch and left unspecified.
  virtual void mod_down(uint32_t level, uint64_t* out_q, uint64_t* in_qp) = 0;
  // Both halves of a key-switch result: in_qp2 holds two polynomials over Q_l u P
  // ([2][Q_l u P][N]); out0 = mod_down of the first + add0, out1 = mod_down of the
  // second + add1 (over Q_l, NTT form; a null addend adds nothing; addends must not
  // alias the outputs). Default: two mod_down calls and the additions; the cuda backend runs
  // both in one launch sequence, the additions inside its last pass.
  virtual void mod_down_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2, const uint64_t* add0,
                             const uint64_t* add1);
  // mod_down_pair, then X -> X^g (automorphism_ntt, g odd < 2N) of both results: a
  // rotation's last step. The outputs must not alias the input or the addends.
  // Default: mod_down_pair into scratch, then one automorphism_ntt each; cuda: the
  // ModDown's last pass stores each value in its permuted slot (no extra launch).
  virtual void mod_down_pair_automorphism(uint32_t level, uint64_t g, uint64_t* out0, uint64_t* out1,
                                          uint64_t* in_qp2, const uint64_t* add0, const uint64_t* add1);
  // out0 = sum_j digits[j] * key[j][0], out1 = sum_j digits[j] * key[j][1] over Q_l u P.
  // digits: [num_digits][Q_l u P][N]; key: [dnum][2][Q_L u P][N] (top-level key).
  virtual void key_switch_inner_product(uint32_t level, uint32_t num_digits, const uint64_t* digits,
                                        const uint64_t* key, uint64_t* out0, uint64_t* out1) = 0;
  // Key switching in the two halves that hoisting separates (key_switch.cpp): the
  // decomposition of a level-`level` polynomial given in NTT form (`ntt`, Q_l), in a
  // layout the backend chooses, in a buffer the size of mod_up_all's digits
  // (digits(level) polynomials over Q_l u P); then, for any key, the inner product
  // from it and from the same `ntt` polynomial (unchanged in between): out0, out1
  // equal key_switch_inner_product on mod_up_all's digits, word for word. Only
  // key_switch_apply reads what key_switch_decompose writes, and it leaves it
  // unchanged (several keys may use it). num_digits <= digits(level). Default: an
  // inverse NTT of a copy, mod_up_all and key_switch_inner_product (ntt unused);
  // cuda runs the inverse NTT out of place with ModUp's scaling in its last pass and
  // stores only the target limbs (the digits' own limbs are ntt's): by default fully
  // transformed, so an apply is an inner product; with VEIL_CUDA_KEY_SWITCH=fused after
  // the forward NTT's first pass, finished inside the inner product's kernel.
  // ---- sparse integer linear combinations (nn's slot-wise layers) ----
  // For each row r < m.rows: outputs[r] = sum over entries e in [row_start[r],
  // row_start[r + 1]) of weights[limb * m.entries + e] * inputs[cols[e]] mod that limb's
  // prime, for every limb of basis b (limbs(b) <= m.limbs) and each of the `polys`
  // consecutive polynomials (basis b) an input and an output hold. With `accumulate`
  // the sum is added to the output's words (mod q), else it replaces them; a row
  // without entries gives zeros (or leaves the output as it was). Exact modular
  // arithmetic, so every backend gives the same words. inputs (m.columns of them) and
  // outputs (m.rows) are host arrays of pointers to this backend's memory; every
  // cols[e] < m.columns (the matrix's builder checks); outputs must not overlap inputs
  // or each other.
  virtual void combine(Basis b, uint32_t polys, const CombineMatrix& m, const uint64_t* const* inputs,
                       uint64_t* const* outputs, bool accumulate) = 0;

  // out (`polys` polynomials of basis b, limbs x N words apart) = the sum over t <
  // terms of xs[t] (polys polynomials, the same layout) times ys[t] (one polynomial),
  // element-wise mod q; with `accumulate`, added to out. The diagonal method's inner
  // sums in one call instead of a multiply and a multiply_accumulate per term (and per
  // polynomial). xs, ys: host arrays of this backend's pointers; out must not overlap
  // an input. Default: multiply / multiply_accumulate per term; cpu and cuda: 128-bit
  // sums reduced every 32 terms (the same canonical words).
  virtual void multiply_sum(Basis b, uint32_t polys, size_t terms, const uint64_t* const* xs,
                            const uint64_t* const* ys, uint64_t* out, bool accumulate);

  virtual void key_switch_decompose(uint32_t level, uint64_t* out_digits, const uint64_t* ntt);
  virtual void key_switch_apply(uint32_t level, uint32_t num_digits, const uint64_t* decomposed,
                                const uint64_t* ntt, const uint64_t* key, uint64_t* out0, uint64_t* out1);

  // How many inputs (decompositions) one batch of key switches should cover: the
  // Evaluator's *_many calls split larger ones. 1 on cpu, where a batch saves nothing
  // and one input at a time keeps the working set in cache; on cuda 16, or fewer when
  // their decompositions would take more than 1 GiB (9 at the 2^16 preset).
  virtual size_t key_switch_batch() const { return 1; }
  // ---- batches of independent key switches (hoisted or independent rotations,
  // several relinearizations): one launch sequence for the whole batch on cuda, so
  // small rings get the blocks of every job at once instead of a few per launch ----
  // key_switch_decompose of `count` polynomials: out_digits[i] gets the decomposition
  // of ntts[i] (each buffer and input as key_switch_decompose's). Default: one
  // key_switch_decompose each.
  virtual void key_switch_decompose_many(uint32_t level, size_t count, uint64_t* const* out_digits,
                                         const uint64_t* const* ntts);
  // Runs every job: key_switch_apply of (decomposed, ntt) with key, then mod_down_pair
  // into (out0, out1) with the addends, or mod_down_pair_automorphism when g != 0.
  // All jobs at `level` with num_digits digits. An output must not alias any job's
  // inputs, addends or other outputs. The words equal the jobs run one by one.
  // Default: that; cuda: groups of up to 16 jobs, each group one inner-product launch
  // and one ModDown launch sequence (5 launches per group instead of per job).
  virtual void key_switch_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs);

  // ---- a key switch and the rescale after it in one step ----
  // For each half h of in_qp2 ([2][Q_l u P][N], NTT form, used as scratch; level >= 1):
  // out_h (over Q_{level-1}, NTT form) = round((x_h + P add_h) / D) with D = q_level P,
  // computed as mod_down computes round(x / P), with D's limbs in the order q_level,
  // p_0 .. p_{alpha-1} (RnsTables::mod_down_rescale). A null addend adds nothing;
  // addends are over Q_level and must not alias the outputs. One rounding instead of
  // mod_down_pair's and rescale's two, so the words differ from those two calls, and
  // the NTT of the Q_level limbs between them is saved.
  virtual void mod_down_rescale_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2,
                                     const uint64_t* add0, const uint64_t* add1) = 0;
  // key_switch_many whose results are rescaled: each job's inner product, then
  // mod_down_rescale_pair (outputs over Q_{level-1}; every job's g must be 0). The
  // words equal the jobs run one by one. Default: that; cuda: groups as key_switch_many.
  virtual void key_switch_rescale_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs);

  // ---- double hoisting (veil/extended.hpp): key switches without their ModDown ----
  // Each job's inner product (ip0, ip1) as key_switch_apply computes it, plus the
  // addends, then X -> X^g (g = 0: none): out0 = (ip0 + add0)(X^g), out1 = (ip1 +
  // add1)(X^g), every buffer over Q_l u P in NTT form, addends included (null: nothing
  // added). An output must not alias any job's inputs, addends or other outputs. Exact
  // modular arithmetic: every backend gives the same words. Default: key_switch_apply,
  // add, automorphism_ntt per job; cuda: the inner products of up to 16 jobs in one
  // launch, their additions and permutations in one more.
  virtual void key_switch_extended_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs);
  // The same jobs' results summed (their out0 / out1 unused): sum0 = sum_j (ip0_j +
  // add0_j)(X^g_j), sum1 likewise, added to sum0 / sum1's words with `accumulate`. The
  // sums must not alias any job's inputs or addends. Default: key_switch_extended_many
  // into scratch, then add; cuda: per group of 16 jobs one inner-product launch and one
  // launch gathering every job's permuted words into the sums.
  virtual void key_switch_extended_sum(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs,
                                       uint64_t* sum0, uint64_t* sum1, bool accumulate);
  // outs[i] (Q_l u P) = P * ins[i] (Q_l): (P mod q_i) times limb i, zero P limbs (exact:
  // its ModDown gives ins[i] back). Outputs must not alias inputs. Default: multiply_scalar
  // and set_zero each; cuda: one launch.
  virtual void multiply_by_p(uint32_t level, size_t count, uint64_t* const* outs, const uint64_t* const* ins);
  // mod_down of `count` polynomials of one level (ins[i]: Q_l u P, used as scratch;
  // outs[i]: Q_l). Default: one mod_down each; cuda: a gathering copy and one launch
  // sequence per 32.
  virtual void mod_down_many(uint32_t level, size_t count, uint64_t* const* outs, uint64_t* const* ins);

 protected:
  explicit Backend(std::shared_ptr<const RnsTables> tables) : tables_(std::move(tables)) {}
  // key_switch_many's and key_switch_rescale_many's default: each job's inner product,
  // then its ModDown (rescale: mod_down_rescale_pair).
  void key_switch_one_by_one(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs,
                             bool rescale);
  // Words of one polynomial of basis b (limbs x N).
  size_t poly_words(Basis b) const { return static_cast<size_t>(tables_->limbs(b)) * tables_->n; }
  std::shared_ptr<const RnsTables> tables_;

  // This backend's memory for the length of a scope: released at its end, on every
  // path out (wiped first when it held secrets).
  class Scratch {
   public:
    Scratch(Backend& be, size_t words, bool wipe = false)
        : be_(be), words_(words), ptr_(be.allocate(words)), wipe_(wipe) {}
    ~Scratch() { be_.release(ptr_, words_, wipe_); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    uint64_t* get() const { return ptr_; }

   private:
    Backend& be_;
    size_t words_;
    uint64_t* ptr_;
    bool wipe_;
  };

 private:
  int64_t timer_start_ns_ = 0;  // the base class's wall-clock timer
  mutable std::once_flag fft_once_;
  mutable std::shared_ptr<const arith::SpecialFft> fft_;
};

enum class BackendKind { Cpu, Cuda, Auto };

// Creates a backend. Cuda throws Error(Unsupported) when Veil was built
// without CUDA or no device is present; Auto picks Cuda when usable.
// device: the CUDA device id (0 .. cuda_devices().size() - 1; ignored for Cpu);
// Error(InvalidArgument) when out of range.
std::shared_ptr<Backend> make_backend(BackendKind kind, std::shared_ptr<const RnsTables> tables, int device = 0);
std::string backend_kind_name(BackendKind kind);
bool cuda_available();  // built with CUDA and a device is present
bool cuda_built();      // Veil was compiled with its CUDA backend (VEIL_CUDA)
// One line per visible CUDA device ("name, memory MiB, sm_XY, peak GB/s"),
// indexed by device id; empty without CUDA or without a device.
std::vector<std::string> cuda_devices();
// Theoretical peak memory bandwidth of a device in GB/s (10^9 bytes/s) from its
// memory clock and bus width (DDR: x2); 0 without CUDA or for a bad id.
double cuda_peak_bandwidth_gbs(int device);

// Threads the cpu backend uses for its compute-bound primitives (NTT, basis
// conversion, key switching), via OpenMP, for calls made from this thread.
// Default: OpenMP's (OMP_NUM_THREADS, else one per core). On a machine shared
// with other busy processes, 1 avoids waiting on preempted threads.
void set_cpu_threads(int threads);
int cpu_threads();

// An owning handle to backend memory. Copying deep-copies on the backend;
// `secret` buffers are wiped when released.
class Buffer {
 public:
  Buffer() = default;
  // Zero-filled unless `zero` is false (scratch that is overwritten at once).
  Buffer(std::shared_ptr<Backend> backend, size_t words, bool secret = false, bool zero = true);
  Buffer(const Buffer& other);
  Buffer& operator=(const Buffer& other);
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  ~Buffer();

  uint64_t* data() { return ptr_; }
  const uint64_t* data() const { return ptr_; }
  size_t words() const { return words_; }
  bool empty() const { return ptr_ == nullptr; }
  Backend& backend() const { return *backend_; }
  std::vector<uint64_t> to_host() const;
  void from_host(const uint64_t* src, size_t words);
  // The same words in a new buffer on `target` (any backend: cpu <-> cuda, or
  // another device). Through host memory when the backends differ; a secret
  // buffer stays secret and its host copy is wiped.
  Buffer copy_to(std::shared_ptr<Backend> target) const;

 private:
  void reset() noexcept;
  std::shared_ptr<Backend> backend_;
  uint64_t* ptr_ = nullptr;
  size_t words_ = 0;
  bool secret_ = false;
};

}  // namespace veil
