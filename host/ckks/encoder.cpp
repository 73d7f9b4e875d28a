#include "veil/encoder.hpp"

#include <cmath>
#include <numbers>

#include "arith/rns_convert.hpp"
#include "veil/error.hpp"

namespace veil {

using cd = std::complex<double>;

namespace {
void bit_reverse_permute(std::vector<cd>& v) {
  const size_t n = v.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(v[i], v[j]);
  }
}
}  // namespace

Encoder::Encoder(ContextPtr ctx) : ctx_(std::move(ctx)) {
  require(ctx_ != nullptr, ErrorCode::InvalidArgument, "null context");
  const uint64_t n = ctx_->n(), m = 2 * n, slots = n / 2;
  rot_group_.resize(slots);
  uint64_t g = 1;
  for (uint64_t j = 0; j < slots; ++j) {
    rot_group_[j] = g;
    g = (g * 5) % m;
  }
  roots_.resize(m + 1);
  for (uint64_t k = 0; k <= m; ++k) {
    // Computed in long double, one by one, so no error accumulates.
    long double angle = 2.0L * std::numbers::pi_v<long double> * static_cast<long double>(k) / m;
    roots_[k] = cd(static_cast<double>(std::cos(angle)), static_cast<double>(std::sin(angle)));
  }
}

// Inverse of the canonical embedding restricted to the 5^j orbit (HEAAN's
// "special FFT"): slot values -> coefficients (real part, imaginary part).
Plaintext Encoder::encode(std::span<const cd> values, double scale, int level) const {
  const uint64_t slots = ctx_->params().slots(), m = 2 * ctx_->n();
  require(values.size() <= slots, ErrorCode::InvalidArgument,
          "too many values: " + std::to_string(values.size()) + " > " + std::to_string(slots) + " slots");
  std::vector<cd> v(slots, cd(0, 0));
  for (size_t i = 0; i < values.size(); ++i) {
    require(std::isfinite(values[i].real()) && std::isfinite(values[i].imag()), ErrorCode::InvalidArgument,
            "cannot encode a non-finite value");
    v[i] = values[i];
  }
  for (uint64_t len = slots; len >= 1; len >>= 1) {
    const uint64_t lenh = len >> 1, lenq = len << 2, gap = m / lenq;
    for (uint64_t i = 0; i < slots; i += len) {
      for (uint64_t j = 0; j < lenh; ++j) {
        const uint64_t idx = (lenq - (rot_group_[j] % lenq)) * gap;
        cd u = v[i + j] + v[i + j + lenh];
        cd w = (v[i + j] - v[i + j + lenh]) * roots_[idx];
        v[i + j] = u;
        v[i + j + lenh] = w;
      }
    }
  }
  bit_reverse_permute(v);
  std::vector<double> coeffs(ctx_->n());
  const double inv = 1.0 / static_cast<double>(slots);
  for (uint64_t i = 0; i < slots; ++i) {
    coeffs[i] = v[i].real() * inv;
    coeffs[i + slots] = v[i].imag() * inv;
  }
  return encode_coefficients(coeffs, scale, level);
}

Plaintext Encoder::encode(std::span<const double> values, double scale, int level) const {
  std::vector<cd> c(values.begin(), values.end());
  return encode(std::span<const cd>(c), scale, level);
}

Plaintext Encoder::encode_constant(double value, double scale, int level) const {
  // A constant is the constant polynomial: no FFT needed.
  std::vector<double> coeffs(ctx_->n(), 0.0);
  coeffs[0] = value;
  return encode_coefficients(coeffs, scale, level);
}

Plaintext Encoder::encode_coefficients(const std::vector<double>& coeffs, double scale, int level) const {
  if (scale == 0) scale = ctx_->params().default_scale();
  if (level < 0) level = static_cast<int>(ctx_->max_level());
  require(std::isfinite(scale) && scale >= 1, ErrorCode::InvalidArgument, "scale must be finite and >= 1");
  require(level <= static_cast<int>(ctx_->max_level()), ErrorCode::LevelMismatch,
          "level " + std::to_string(level) + " above the top level " + std::to_string(ctx_->max_level()));
  Plaintext pt(ctx_, static_cast<uint32_t>(level), scale);
  const auto& t = ctx_->tables();
  const Basis b{static_cast<uint32_t>(level) + 1, false};
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
    ctx_->backend().upload_signed(b, pt.data(), rounded.data());
  } else {
    std::vector<uint64_t> host(ctx_->words(b));
    for (size_t i = 0; i < n; ++i) rns::round_to_rns(coeffs[i] * scale, t, b, host.data() + i, n);
    ctx_->backend().upload(pt.data(), host.data(), host.size());
  }
  ctx_->backend().ntt_forward(b, pt.data());
  return pt;
}

std::vector<cd> Encoder::decode_complex(const Plaintext& pt) const {
  require(!pt.empty() && pt.context()->id() == ctx_->id(), ErrorCode::ContextMismatch,
          "plaintext belongs to a different context");
  const auto& t = ctx_->tables();
  const Basis b{pt.level() + 1, false};
  const uint64_t n = t.n, slots = n / 2, m = 2 * n;
  Buffer tmp = ctx_->allocate(b);
  ctx_->backend().copy(tmp.data(), pt.data(), tmp.words());
  ctx_->backend().ntt_inverse(b, tmp.data());
  std::vector<uint64_t> host = tmp.to_host();
  rns::CrtComposer crt(t, pt.level() + 1);
  std::vector<cd> v(slots);
  const double inv_scale = 1.0 / pt.scale();
  for (uint64_t i = 0; i < slots; ++i) {
    v[i] = cd(crt.compose(host.data() + i, n) * inv_scale, crt.compose(host.data() + i + slots, n) * inv_scale);
  }
  bit_reverse_permute(v);
  for (uint64_t len = 2; len <= slots; len <<= 1) {
    const uint64_t lenh = len >> 1, lenq = len << 2, gap = m / lenq;
    for (uint64_t i = 0; i < slots; i += len) {
      for (uint64_t j = 0; j < lenh; ++j) {
        const uint64_t idx = (rot_group_[j] % lenq) * gap;
        cd u = v[i + j];
        cd w = v[i + j + lenh] * roots_[idx];
        v[i + j] = u + w;
        v[i + j + lenh] = u - w;
      }
    }
  }
  return v;
}

std::vector<double> Encoder::decode(const Plaintext& pt) const {
  auto c = decode_complex(pt);
  std::vector<double> out(c.size());
  for (size_t i = 0; i < c.size(); ++i) out[i] = c[i].real();
  return out;
}

}  // namespace veil
