#include "veil/encoder.hpp"

#include <cmath>

#include "arith/rns_convert.hpp"
#include "arith/special_fft.hpp"
#include "veil/error.hpp"

namespace veil {

using cd = std::complex<double>;

Encoder::Encoder(ContextPtr ctx) : ctx_(std::move(ctx)) {
  require(ctx_ != nullptr, ErrorCode::InvalidArgument, "null context");
}

namespace {
// An encode call's level, checked, and its scale: scale 0 means the parameters'
// default, level -1 the top level.
uint32_t encoding_level(const ContextPtr& ctx, double& scale, int level) {
  if (scale == 0) scale = ctx->params().default_scale();
  if (level < 0) level = static_cast<int>(ctx->max_level());
  require(std::isfinite(scale) && scale >= 1, ErrorCode::InvalidArgument, "scale must be finite and >= 1");
  require(level <= static_cast<int>(ctx->max_level()), ErrorCode::LevelMismatch,
          "level " + std::to_string(level) + " above the top level " + std::to_string(ctx->max_level()));
  return static_cast<uint32_t>(level);
}

// The plaintext an encode call fills.
Plaintext blank_plaintext(const ContextPtr& ctx, double& scale, int level) {
  const uint32_t l = encoding_level(ctx, scale, level);
  return Plaintext(ctx, l, scale);
}

// Slot values to an NTT-form polynomial of basis b at `scale`.
void encode_into(const Context& ctx, Basis b, uint64_t* dst, std::span<const cd> values, double scale) {
  ctx.backend().encode_slots(b, dst, values.data(), values.size(), scale);
  ctx.backend().ntt_forward(b, dst);
}
}  // namespace

// Inverse of the canonical embedding restricted to the 5^j orbit (HEAAN's
// "special FFT"): slot values -> coefficients (real part, imaginary part).
Plaintext Encoder::encode(std::span<const cd> values, double scale, int level) const {
  Plaintext pt = blank_plaintext(ctx_, scale, level);
  encode_into(*ctx_, Basis{pt.level() + 1, false}, pt.data(), values, scale);
  return pt;
}

Plaintext Encoder::encode(std::span<const double> values, double scale, int level) const {
  std::vector<cd> c(values.begin(), values.end());
  return encode(std::span<const cd>(c), scale, level);
}

ExtendedPlaintext Encoder::encode_extended(std::span<const double> values, double scale, int level) const {
  const uint32_t l = encoding_level(ctx_, scale, level);
  ExtendedPlaintext pt(ctx_, l, scale);
  const std::vector<cd> c(values.begin(), values.end());
  encode_into(*ctx_, pt.basis(), pt.data(), c, scale);
  return pt;
}

Plaintext Encoder::encode_constant(double value, double scale, int level) const {
  // A constant is the constant polynomial: no FFT needed.
  std::vector<double> coeffs(ctx_->n(), 0.0);
  coeffs[0] = value;
  return encode_coefficients(coeffs, scale, level);
}

Plaintext Encoder::encode_coefficients(const std::vector<double>& coeffs, double scale, int level) const {
  Plaintext pt = blank_plaintext(ctx_, scale, level);
  const Basis b{pt.level() + 1, false};
  ctx_->backend().encode_coefficients(b, pt.data(), coeffs.data(), scale);
  ctx_->backend().ntt_forward(b, pt.data());
  return pt;
}

std::vector<cd> Encoder::decode_complex(const Plaintext& pt) const {
  require(!pt.empty() && pt.context()->id() == ctx_->id(), ErrorCode::ContextMismatch,
          "plaintext belongs to a different context");
  const auto& t = ctx_->tables();
  const Basis b{pt.level() + 1, false};
  const uint64_t n = t.n, slots = n / 2;
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
  ctx_->backend().special_fft().to_slots(v.data());
  return v;
}

std::vector<double> Encoder::decode(const Plaintext& pt) const {
  auto c = decode_complex(pt);
  std::vector<double> out(c.size());
  for (size_t i = 0; i < c.size(); ++i) out[i] = c[i].real();
  return out;
}

}  // namespace veil
