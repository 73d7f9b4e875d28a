// Backend selection and the Buffer handle.
#include "veil/backend.hpp"

#include <sodium.h>

#include <chrono>
#include <cmath>

#include "arith/rns_convert.hpp"
#include "arith/sampling.hpp"
#include "arith/special_fft.hpp"
#include "backend/cpu_backend.hpp"
#include "veil/error.hpp"
#ifdef VEIL_HAVE_CUDA
#include "backend/cuda_seam.hpp"
#endif

namespace veil {

bool cuda_available() {
#ifdef VEIL_HAVE_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

bool cuda_built() {
#ifdef VEIL_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::vector<std::string> cuda_devices() {
  std::vector<std::string> out;
#ifdef VEIL_HAVE_CUDA
  const int count = cuda::device_count();
  for (int d = 0; d < count; ++d) out.push_back(cuda::device_description(d));
#endif
  return out;
}

double cuda_peak_bandwidth_gbs(int device) {
#ifdef VEIL_HAVE_CUDA
  if (device < 0 || device >= cuda::device_count()) return 0;
  return cuda::peak_bandwidth_gbs(device);
#else
  (void)device;
  return 0;
#endif
}

void Backend::timer_start() {
  synchronize();
  timer_start_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count();
}

double Backend::timer_stop_ms() {
  synchronize();
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  return static_cast<double>(now - timer_start_ns_) * 1e-6;
}

void Backend::upload_signed(Basis b, uint64_t* dst, const int64_t* host_coeffs) {
  std::vector<uint64_t> rns(poly_words(b));
  rns::signed_to_rns(host_coeffs, tables_->n, *tables_, b, rns.data());
  upload(dst, rns.data(), rns.size());
  sodium_memzero(rns.data(), rns.size() * sizeof(uint64_t));  // the values may be secret
}

void Backend::sample_signed(Basis b, uint64_t* dst, SignedDistribution d, const Seed& seed, uint64_t stream) {
  sampling::SecretVector<int64_t> values(tables_->n);
  sampling::sample_signed(seed, stream, d, values.data(), values.size());
  upload_signed(b, dst, values.data());
}

void Backend::sample_uniform(Basis b, uint64_t* dst, const Seed& seed, uint64_t stream) {
  sampling::SecretVector<uint64_t> values(poly_words(b));
  sampling::sample_uniform(seed, stream, *tables_, b, values.data());
  upload(dst, values.data(), values.size());
}

const arith::SpecialFft& Backend::special_fft() const {
  std::call_once(fft_once_, [this] { fft_ = std::make_shared<const arith::SpecialFft>(tables_->n); });
  return *fft_;
}

void Backend::encode_slots(Basis b, uint64_t* dst, const std::complex<double>* values, size_t count, double scale) {
  const arith::SpecialFft& fft = special_fft();
  const uint64_t slots = fft.slots();
  require(count <= slots, ErrorCode::InvalidArgument,
          "too many values: " + std::to_string(count) + " > " + std::to_string(slots) + " slots");
  std::vector<std::complex<double>> v(slots, std::complex<double>(0, 0));
  for (size_t i = 0; i < count; ++i) {
    require(std::isfinite(values[i].real()) && std::isfinite(values[i].imag()), ErrorCode::InvalidArgument,
            "cannot encode a non-finite value");
    v[i] = values[i];
  }
  fft.to_coefficients(v.data());
  std::vector<double> coeffs(tables_->n);
  const double inv = 1.0 / static_cast<double>(slots);
  for (uint64_t i = 0; i < slots; ++i) {
    coeffs[i] = v[i].real() * inv;
    coeffs[i + slots] = v[i].imag() * inv;
  }
  encode_coefficients(b, dst, coeffs.data(), scale);
}

void Backend::encode_coefficients(Basis b, uint64_t* dst, const double* coeffs, double scale) {
  const RnsTables& t = *tables_;
  const size_t n = t.n;
  // Rounded coefficients that fit an int64 (the usual case) travel as N words and
  // become residues on the backend; larger ones take round_to_rns's exact path.
  std::vector<int64_t> rounded(n);
  bool fits = true;
  for (size_t i = 0; i < n && fits; ++i) {
    const double v = coeffs[i] * scale;
    require(std::isfinite(v) && std::fabs(v) < 0x1p120, ErrorCode::InvalidArgument,
            "value times scale must be finite and below 2^120 in magnitude");
    const double r = std::nearbyint(v);
    fits = std::fabs(r) < 0x1p63;
    rounded[i] = fits ? static_cast<int64_t>(r) : 0;
  }
  if (fits) {
    upload_signed(b, dst, rounded.data());
    return;
  }
  std::vector<uint64_t> host(poly_words(b));
  for (size_t i = 0; i < n; ++i) rns::round_to_rns(coeffs[i] * scale, t, b, host.data() + i, n);  // checks the bound
  upload(dst, host.data(), host.size());
}

void Backend::rescale_polys(uint32_t level, uint32_t polys, const uint64_t* in, uint64_t* out) {
  const size_t n = tables_->n;
  for (uint32_t z = 0; z < polys; ++z) rescale(level, in + z * (level + 1) * n, out + z * level * n);
}

void Backend::add_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  const size_t words = poly_words(b);
  for (uint32_t j = 0; j < polys; ++j) add(b, out + j * words, x + j * words, y + j * words);
}

void Backend::sub_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  const size_t words = poly_words(b);
  for (uint32_t j = 0; j < polys; ++j) sub(b, out + j * words, x + j * words, y + j * words);
}

void Backend::multiply_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* y) {
  const size_t words = poly_words(b);
  for (uint32_t j = 0; j < polys; ++j) multiply(b, out + j * words, x + j * words, y);
}

void Backend::multiply_scalar_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* x, const uint64_t* s) {
  const size_t words = poly_words(b);
  for (uint32_t j = 0; j < polys; ++j) multiply_scalar(b, out + j * words, x + j * words, s);
}

void Backend::automorphism_ntt_polys(Basis b, uint32_t polys, uint64_t* out, const uint64_t* in, uint64_t g) {
  const size_t words = poly_words(b);
  for (uint32_t j = 0; j < polys; ++j) automorphism_ntt(b, out + j * words, in + j * words, g);
}

void Backend::multiply_sum(Basis b, uint32_t polys, size_t terms, const uint64_t* const* xs,
                           const uint64_t* const* ys, uint64_t* out, bool accumulate) {
  const size_t words = poly_words(b);
  for (uint32_t j = 0; j < polys; ++j) {
    uint64_t* o = out + j * words;
    if (terms == 0 && !accumulate) set_zero(o, words);
    for (size_t t = 0; t < terms; ++t) {
      if (t == 0 && !accumulate) multiply(b, o, xs[t] + j * words, ys[t]);
      else multiply_accumulate(b, o, xs[t] + j * words, ys[t]);
    }
  }
}

void Backend::key_switch_decompose(uint32_t level, uint64_t* out_digits, const uint64_t* ntt) {
  require(level <= tables_->max_level, ErrorCode::InvalidArgument, "key_switch_decompose: bad level");
  const Basis q{level + 1, false};
  const size_t words = poly_words(q);
  Scratch coeff(*this, words);
  copy(coeff.get(), ntt, words);
  ntt_inverse(q, coeff.get());
  mod_up_all(level, out_digits, coeff.get(), ntt);
}

void Backend::key_switch_apply(uint32_t level, uint32_t num_digits, const uint64_t* decomposed, const uint64_t*,
                               const uint64_t* key, uint64_t* out0, uint64_t* out1) {
  require(num_digits <= tables_->digits(level), ErrorCode::InvalidArgument,
          "key_switch_apply: more digits than the level has");
  key_switch_inner_product(level, num_digits, decomposed, key, out0, out1);
}

void Backend::rescale_many(uint32_t level, size_t count, const uint64_t* const* ins, uint64_t* const* outs) {
  for (size_t i = 0; i < count; ++i) rescale(level, ins[i], outs[i]);
}

void Backend::key_switch_decompose_many(uint32_t level, size_t count, uint64_t* const* out_digits,
                                        const uint64_t* const* ntts) {
  for (size_t i = 0; i < count; ++i) key_switch_decompose(level, out_digits[i], ntts[i]);
}

void Backend::key_switch_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs) {
  key_switch_one_by_one(level, num_digits, count, jobs, false);
}

void Backend::key_switch_rescale_many(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs) {
  require(level >= 1 || count == 0, ErrorCode::LevelMismatch, "key_switch_rescale_many needs level >= 1");
  key_switch_one_by_one(level, num_digits, count, jobs, true);
}

// Level, digits, buffers and Galois elements of every job, before any work.
static void check_extended_jobs(const RnsTables& t, uint32_t level, uint32_t num_digits, size_t count,
                                const KeySwitchJob* jobs, bool outputs, const char* what) {
  require(level <= t.max_level && num_digits >= 1 && num_digits <= t.digits(level), ErrorCode::InvalidArgument,
          std::string(what) + ": bad level/digits");
  for (size_t i = 0; i < count; ++i) {
    const KeySwitchJob& j = jobs[i];
    require(j.decomposed && j.ntt && j.key && (!outputs || (j.out0 && j.out1)), ErrorCode::InvalidArgument,
            std::string(what) + ": a job without its buffers");
    require(j.g == 0 || (j.g % 2 == 1 && j.g < 2 * t.n), ErrorCode::InvalidArgument,
            std::string(what) + ": g must be odd and < 2N");
  }
}

void Backend::key_switch_extended_many(uint32_t level, uint32_t num_digits, size_t count,
                                       const KeySwitchJob* jobs) {
  check_extended_jobs(*tables_, level, num_digits, count, jobs, true, "key_switch_extended_many");
  if (count == 0) return;
  const Basis qp{level + 1, true};
  const size_t words = poly_words(qp);
  Scratch acc(*this, 2 * words);
  for (size_t i = 0; i < count; ++i) {
    const KeySwitchJob& j = jobs[i];
    uint64_t* sum[2] = {j.g ? acc.get() : j.out0, j.g ? acc.get() + words : j.out1};
    key_switch_apply(level, num_digits, j.decomposed, j.ntt, j.key, sum[0], sum[1]);
    if (j.add0) add(qp, sum[0], sum[0], j.add0);
    if (j.add1) add(qp, sum[1], sum[1], j.add1);
    if (j.g) {
      automorphism_ntt(qp, j.out0, sum[0], j.g);
      automorphism_ntt(qp, j.out1, sum[1], j.g);
    }
  }
}

void Backend::key_switch_extended_sum(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs,
                                      uint64_t* sum0, uint64_t* sum1, bool accumulate) {
  check_extended_jobs(*tables_, level, num_digits, count, jobs, false, "key_switch_extended_sum");
  require(sum0 && sum1, ErrorCode::InvalidArgument, "key_switch_extended_sum: no sums");
  const Basis qp{level + 1, true};
  const size_t words = poly_words(qp);
  if (!accumulate) {
    set_zero(sum0, words);
    set_zero(sum1, words);
  }
  if (count == 0) return;
  Scratch one(*this, 2 * words);
  for (size_t i = 0; i < count; ++i) {
    KeySwitchJob j = jobs[i];
    j.out0 = one.get();
    j.out1 = one.get() + words;
    key_switch_extended_many(level, num_digits, 1, &j);
    add(qp, sum0, sum0, j.out0);
    add(qp, sum1, sum1, j.out1);
  }
}

void Backend::multiply_by_p(uint32_t level, size_t count, uint64_t* const* outs, const uint64_t* const* ins) {
  const RnsTables& t = *tables_;
  for (size_t i = 0; i < count; ++i) {
    multiply_scalar(Basis{level + 1, false}, outs[i], ins[i], t.mod_down.p_mod_q.data());
    set_zero(outs[i] + static_cast<size_t>(level + 1) * t.n, static_cast<size_t>(t.alpha) * t.n);
  }
}

void Backend::mod_down_many(uint32_t level, size_t count, uint64_t* const* outs, uint64_t* const* ins) {
  for (size_t i = 0; i < count; ++i) mod_down(level, outs[i], ins[i]);
}

void Backend::key_switch_one_by_one(uint32_t level, uint32_t num_digits, size_t count, const KeySwitchJob* jobs,
                                    bool rescale) {
  if (count == 0) return;
  const size_t words = poly_words(Basis{level + 1, true});
  Scratch acc(*this, 2 * words);
  for (size_t i = 0; i < count; ++i) {
    const KeySwitchJob& j = jobs[i];
    require(!rescale || j.g == 0, ErrorCode::InvalidArgument,
            "key_switch_rescale_many: rotations are not rescaled here (g != 0)");
    key_switch_apply(level, num_digits, j.decomposed, j.ntt, j.key, acc.get(), acc.get() + words);
    if (rescale)
      mod_down_rescale_pair(level, j.out0, j.out1, acc.get(), j.add0, j.add1);
    else if (j.g)
      mod_down_pair_automorphism(level, j.g, j.out0, j.out1, acc.get(), j.add0, j.add1);
    else
      mod_down_pair(level, j.out0, j.out1, acc.get(), j.add0, j.add1);
  }
}

void Backend::push_stream(BackendStream* s) {
  require(s == nullptr, ErrorCode::InvalidArgument, "push_stream: the " + name() + " backend has no streams");
}

bool Backend::copy_from(uint64_t*, Backend&, const uint64_t*, size_t) { return false; }

void Backend::copy_many(size_t count, uint64_t* const* dsts, const uint64_t* const* srcs, const size_t* words) {
  for (size_t i = 0; i < count; ++i) copy(dsts[i], srcs[i], words[i]);
}

std::unique_ptr<BackendRecording> Backend::end_recording() {
  throw Error(ErrorCode::InvalidArgument, "end_recording: the " + name() + " backend is not recording");
}

void Backend::replay(BackendRecording&) {
  throw Error(ErrorCode::InvalidArgument, "replay: the " + name() + " backend has no recordings");
}

std::string backend_kind_name(BackendKind kind) {
  switch (kind) {
    case BackendKind::Cpu: return "cpu";
    case BackendKind::Cuda: return "cuda";
    case BackendKind::Auto: return "auto";
  }
  return "unknown";
}

std::shared_ptr<Backend> make_backend(BackendKind kind, std::shared_ptr<const RnsTables> tables, int device) {
  require(tables != nullptr, ErrorCode::InvalidArgument, "make_backend: no tables");
  if (kind == BackendKind::Auto) kind = cuda_available() ? BackendKind::Cuda : BackendKind::Cpu;
  if (kind == BackendKind::Cpu) return std::make_shared<CpuBackend>(std::move(tables));
#ifdef VEIL_HAVE_CUDA
  const int count = cuda::device_count();
  require(count > 0, ErrorCode::Unsupported, "cuda backend requested but no CUDA device is present");
  require(device >= 0 && device < count, ErrorCode::InvalidArgument,
          "cuda device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " present)");
  return cuda::make_backend(std::move(tables), device);
#else
  (void)device;
  throw Error(ErrorCode::Unsupported, "cuda backend requested but Veil was built without CUDA (VEIL_CUDA=OFF)");
#endif
}

void Backend::mod_up_all(uint32_t level, uint64_t* out_digits, const uint64_t* coeff, const uint64_t* ntt) {
  require(level <= tables_->max_level, ErrorCode::InvalidArgument, "mod_up_all: bad level");
  const size_t stride = static_cast<size_t>(tables_->limbs(Basis{level + 1, true})) * tables_->n;
  for (uint32_t j = 0; j < tables_->digits(level); ++j) mod_up(level, j, out_digits + j * stride, coeff, ntt);
}

void Backend::mod_down_pair(uint32_t level, uint64_t* out0, uint64_t* out1, uint64_t* in_qp2, const uint64_t* add0,
                            const uint64_t* add1) {
  require(level <= tables_->max_level, ErrorCode::InvalidArgument, "mod_down_pair: bad level");
  const Basis q{level + 1, false};
  mod_down(level, out0, in_qp2);
  mod_down(level, out1, in_qp2 + static_cast<size_t>(tables_->limbs(Basis{level + 1, true})) * tables_->n);
  if (add0) add(q, out0, out0, add0);
  if (add1) add(q, out1, out1, add1);
}

void Backend::mod_down_pair_automorphism(uint32_t level, uint64_t g, uint64_t* out0, uint64_t* out1,
                                         uint64_t* in_qp2, const uint64_t* add0, const uint64_t* add1) {
  const Basis q{level + 1, false};
  Scratch pair(*this, 2 * poly_words(q));
  mod_down_pair(level, pair.get(), pair.get() + poly_words(q), in_qp2, add0, add1);
  automorphism_ntt(q, out0, pair.get(), g);
  automorphism_ntt(q, out1, pair.get() + poly_words(q), g);
}

void Backend::tensor(Basis b, uint64_t* d0, uint64_t* d1, uint64_t* d2, const uint64_t* a0, const uint64_t* a1,
                     const uint64_t* b0, const uint64_t* b1) {
  multiply(b, d0, a0, b0);
  multiply(b, d1, a0, b1);
  multiply_accumulate(b, d1, a1, b0);
  multiply(b, d2, a1, b1);
}

Buffer::Buffer(std::shared_ptr<Backend> backend, size_t words, bool secret, bool zero)
    : backend_(std::move(backend)), words_(words), secret_(secret) {
  ptr_ = backend_->allocate(words);
  if (zero) backend_->set_zero(ptr_, words);
}

Buffer::Buffer(const Buffer& other) : backend_(other.backend_), words_(other.words_), secret_(other.secret_) {
  if (other.ptr_) {
    ptr_ = backend_->allocate(words_);
    backend_->copy(ptr_, other.ptr_, words_);
  }
}

Buffer& Buffer::operator=(const Buffer& other) {
  if (this != &other) {
    Buffer tmp(other);
    *this = std::move(tmp);
  }
  return *this;
}

Buffer::Buffer(Buffer&& other) noexcept
    : backend_(std::move(other.backend_)), ptr_(other.ptr_), words_(other.words_), secret_(other.secret_) {
  other.ptr_ = nullptr;
  other.words_ = 0;
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    backend_ = std::move(other.backend_);
    ptr_ = other.ptr_;
    words_ = other.words_;
    secret_ = other.secret_;
    other.ptr_ = nullptr;
    other.words_ = 0;
  }
  return *this;
}

Buffer::~Buffer() { reset(); }

void Buffer::reset() noexcept {
  if (ptr_) backend_->release(ptr_, words_, secret_);
  ptr_ = nullptr;
  words_ = 0;
}

std::vector<uint64_t> Buffer::to_host() const {
  std::vector<uint64_t> out(words_);
  if (ptr_) backend_->download(out.data(), ptr_, words_);
  return out;
}

void Buffer::from_host(const uint64_t* src, size_t words) {
  require(words == words_, ErrorCode::InvalidArgument, "Buffer::from_host: size mismatch");
  if (ptr_) backend_->upload(ptr_, src, words);
}

Buffer Buffer::copy_to(std::shared_ptr<Backend> target) const {
  require(target != nullptr, ErrorCode::InvalidArgument, "Buffer::copy_to: no target backend");
  if (target == backend_) return Buffer(*this);
  Buffer out(target, words_, secret_, /*zero=*/false);
  if (!ptr_) return out;
  if (target->copy_from(out.data(), *backend_, ptr_, words_)) return out;  // no host copy
  std::vector<uint64_t> host(words_);
  struct Wipe {  // the host copy of a secret buffer is wiped on every path out
    std::vector<uint64_t>& v;
    bool on;
    ~Wipe() {
      if (on) sodium_memzero(v.data(), v.size() * sizeof(uint64_t));
    }
  } wipe{host, secret_};
  backend_->download(host.data(), ptr_, words_);
  out.from_host(host.data(), words_);
  return out;
}

}  // namespace veil
