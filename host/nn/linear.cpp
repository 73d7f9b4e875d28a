// Halevi-Shoup diagonal method with baby-step/giant-step for y = W x + b.
// With k = g*n1 + b and rot() a left rotation over all slots:
//   y = sum_k D_k * rot(x, k) = sum_g rot( sum_b rot(D_k, -g*n1) * rot(x, b), g*n1 )
// so one hoisted decomposition serves the n1 baby rotations, the pre-rotated
// diagonals are plain, and only n2 - 1 giant rotations are full key switches. The
// baby rotations and their products stay over Q_l u P (double hoisting,
// veil/extended.hpp): one ModDown per giant step instead of one per rotation.
#include <algorithm>
#include <bit>
#include <cmath>
#include <string>

#include "veil/encoder.hpp"
#include "veil/error.hpp"
#include "veil/nn/linear.hpp"

#include "nn/checks.hpp"

namespace veil::nn {

namespace {

bool is_pow2(size_t v) { return v != 0 && (v & (v - 1)) == 0; }

bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

size_t LinearLayer::block_size(size_t rows, size_t cols) {
  require(rows >= 1 && cols >= 1, ErrorCode::InvalidArgument, "linear layer: rows and cols must be >= 1");
  return std::bit_ceil(std::max(rows, cols));
}

// n1 = 2^ceil(log2(d) / 2): baby steps (hoisted, cheaper) get the larger half.
static size_t baby_count(size_t d) {
  size_t log_d = 0;
  while ((size_t{1} << log_d) < d) ++log_d;
  return size_t{1} << ((log_d + 1) / 2);
}

std::vector<int64_t> LinearLayer::rotation_steps(size_t rows, size_t cols) {
  const size_t d = block_size(rows, cols), n1 = baby_count(d), n2 = d / n1;
  std::vector<int64_t> steps;
  for (size_t b = 1; b < n1; ++b) steps.push_back(static_cast<int64_t>(b));
  for (size_t g = 1; g < n2; ++g) steps.push_back(static_cast<int64_t>(g * n1));
  return steps;
}

std::vector<double> LinearLayer::layout(const std::vector<double>& x, size_t d, size_t slots) {
  require(is_pow2(d) && is_pow2(slots) && d <= slots, ErrorCode::InvalidArgument,
          "linear layout: block size d must be a power of two <= slots");
  require(
      x.size() <= d, ErrorCode::InvalidArgument,
      "linear layout: " + std::to_string(x.size()) + " values do not fit a block of " + std::to_string(d));
  std::vector<double> out(slots, 0.0);
  for (size_t base = 0; base < slots; base += d)
    for (size_t i = 0; i < x.size(); ++i) out[base + i] = x[i];
  return out;
}

LinearLayer::LinearLayer(ContextPtr ctx, const std::vector<double>& weights, size_t rows, size_t cols,
                         const std::vector<double>& bias, int level, double scale)
    : LinearLayer(std::move(ctx), weights, rows, cols, bias, LinearOptions{level, scale, 1, 1}) {}

LinearLayer::LinearLayer(ContextPtr ctx, const std::vector<double>& weights, size_t rows, size_t cols,
                         const std::vector<double>& bias, const LinearOptions& opt)
    : ctx_(std::move(ctx)), rows_(rows), cols_(cols), batch_(opt.batch), inputs_(opt.inputs) {
  require(ctx_ != nullptr, ErrorCode::InvalidArgument, "linear layer: null context");
  const size_t slots = ctx_->params().slots();
  require(rows >= 1 && cols >= 1 && rows <= slots && cols <= slots * std::max<size_t>(opt.inputs, 1),
          ErrorCode::InvalidArgument,
          "linear layer: rows and cols must be in [1, " + std::to_string(slots) + "], got " +
              std::to_string(rows) + " x " + std::to_string(cols));
  require(weights.size() == rows * cols, ErrorCode::InvalidArgument,
          "linear layer: " + std::to_string(weights.size()) + " weights for a " + std::to_string(rows) +
              " x " + std::to_string(cols) + " matrix");
  require(bias.empty() || bias.size() == rows, ErrorCode::InvalidArgument,
          "linear layer: bias must be empty or have " + std::to_string(rows) + " values, got " +
              std::to_string(bias.size()));
  require(all_finite(weights) && all_finite(bias), ErrorCode::InvalidArgument,
          "linear layer: weights and bias must be finite");
  require(inputs_ >= 1 && cols % inputs_ == 0, ErrorCode::InvalidArgument,
          "linear layer: " + std::to_string(inputs_) + " input ciphertexts do not divide " + std::to_string(cols) +
              " columns");
  const size_t part = cols / inputs_;
  d_ = block_size(rows, part);
  require(is_pow2(batch_) && batch_ * d_ <= slots, ErrorCode::InvalidArgument,
          "linear layer: batch " + std::to_string(batch_) + " must be a power of two with batch * block (" +
              std::to_string(d_) + ") <= " + std::to_string(slots) + " slots");
  int level = opt.level;
  const int max_level = static_cast<int>(ctx_->max_level());
  if (level < 0) level = max_level;
  require(level >= 1 && level <= max_level, ErrorCode::LevelMismatch,
          "linear layer: level must be in [1, " + std::to_string(max_level) +
              "] (it consumes one rescale), got " + std::to_string(level));
  level_ = static_cast<uint32_t>(level);
  scale_ = opt.scale == 0 ? ctx_->params().default_scale() : opt.scale;
  require(std::isfinite(scale_) && scale_ > 1, ErrorCode::InvalidArgument, "linear layer: scale must be > 1");

  n1_ = baby_count(d_);
  n2_ = d_ / n1_;
  const Encoder encoder(ctx_);
  const double diag_scale = static_cast<double>(ctx_->tables().primes[level_]);
  const size_t logical = slots / batch_;
  diag_.resize(inputs_ * d_);
  std::vector<double> v(slots);
  for (size_t in = 0; in < inputs_; ++in) {
    auto w = [&](size_t r, size_t c) { return r < rows && c < part ? weights[r * cols + in * part + c] : 0.0; };
    for (size_t k = 0; k < d_; ++k) {
      bool nonzero = false;
      for (size_t r = 0; r < rows && !nonzero; ++r) nonzero = w(r, (r + k) % d_) != 0.0;
      if (!nonzero) continue;
      // Logical slot l of rot(D_k, -shift) is D_k[l - shift]: row (l - shift) mod d,
      // column row + k; every input of the batch sees the same value.
      const size_t shift = (k / n1_) * n1_;
      for (size_t l = 0; l < logical; ++l) {
        const size_t r = (l + d_ - shift % d_) % d_;
        const double value = w(r, (r + k) % d_);
        for (size_t b = 0; b < batch_; ++b) v[l * batch_ + b] = value;
      }
      diag_[in * d_ + k] = encoder.encode_extended(v, diag_scale, static_cast<int>(level_));
    }
  }
  if (!bias.empty()) {
    std::vector<std::vector<double>> copies(batch_, bias);
    bias_ = encoder.encode(layout(copies, d_, slots, batch_), scale_, static_cast<int>(level_) - 1);
  }
}

std::vector<int64_t> LinearLayer::rotation_steps() const {
  std::vector<bool> baby(n1_, false), giant(n2_, false);
  for (size_t i = 0; i < diag_.size(); ++i) {
    if (diag_[i].empty()) continue;
    const size_t k = i % d_;
    baby[k % n1_] = true;
    giant[k / n1_] = true;
  }
  const auto stride = static_cast<int64_t>(batch_);
  std::vector<int64_t> steps;
  for (size_t b = 1; b < n1_; ++b)
    if (baby[b]) steps.push_back(static_cast<int64_t>(b) * stride);
  for (size_t g = 1; g < n2_; ++g)
    if (giant[g]) steps.push_back(static_cast<int64_t>(g * n1_) * stride);
  return steps;
}

size_t LinearLayer::nonzero_diagonals() const {
  size_t n = 0;
  for (const auto& p : diag_) n += !p.empty();
  return n;
}

std::vector<double> LinearLayer::layout(const std::vector<std::vector<double>>& xs, size_t d, size_t slots,
                                        size_t batch) {
  require(is_pow2(batch) && batch <= slots && xs.size() <= batch, ErrorCode::InvalidArgument,
          "linear layout: batch must be a power of two <= slots, with at most batch inputs");
  std::vector<double> out(slots, 0.0);
  for (size_t b = 0; b < xs.size(); ++b) {
    const auto one = layout(xs[b], d, slots / batch);
    for (size_t l = 0; l < one.size(); ++l) out[l * batch + b] = one[l];
  }
  return out;
}

std::vector<double> LinearLayer::encode_input(const std::vector<double>& x) const {
  require(batch_ == 1 && inputs_ == 1, ErrorCode::InvalidArgument,
          "linear layer: encode_input is for batch 1 and one input ciphertext; use encode_inputs");
  return encode_inputs({x}).front();
}

std::vector<std::vector<double>> LinearLayer::encode_inputs(const std::vector<std::vector<double>>& xs) const {
  require(!xs.empty() && xs.size() <= batch_, ErrorCode::InvalidArgument,
          "linear layer: " + std::to_string(xs.size()) + " inputs for a batch of " + std::to_string(batch_));
  const size_t part = cols_ / inputs_;
  std::vector<std::vector<double>> out;
  for (size_t in = 0; in < inputs_; ++in) {
    std::vector<std::vector<double>> parts;
    for (const auto& x : xs) {
      require(x.size() == cols_, ErrorCode::InvalidArgument,
              "linear layer: input has " + std::to_string(x.size()) + " values, expected " + std::to_string(cols_));
      parts.emplace_back(x.begin() + static_cast<std::ptrdiff_t>(in * part),
                         x.begin() + static_cast<std::ptrdiff_t>((in + 1) * part));
    }
    out.push_back(layout(parts, d_, ctx_->params().slots(), batch_));
  }
  return out;
}

std::vector<double> LinearLayer::decode_output(const std::vector<double>& slots) const {
  return decode_outputs(slots, 1).front();
}

std::vector<std::vector<double>> LinearLayer::decode_outputs(const std::vector<double>& slots, size_t count) const {
  require(count >= 1 && count <= batch_ && slots.size() >= rows_ * batch_, ErrorCode::InvalidArgument,
          "linear layer: decode needs 1..batch outputs and at least rows * batch decoded slots");
  std::vector<std::vector<double>> out(count, std::vector<double>(rows_));
  for (size_t b = 0; b < count; ++b)
    for (size_t r = 0; r < rows_; ++r) out[b][r] = slots[r * batch_ + b];
  return out;
}

Ciphertext LinearLayer::apply(const Evaluator& eval, const Ciphertext& x, const GaloisKeys& gk) const {
  return apply(eval, std::vector<Ciphertext>{x}, gk);
}

Ciphertext LinearLayer::apply(const Evaluator& eval, const std::vector<Ciphertext>& xs_in,
                              const GaloisKeys& gk) const {
  require(xs_in.size() == inputs_, ErrorCode::InvalidArgument,
          "linear layer: " + std::to_string(xs_in.size()) + " input ciphertexts, the layer takes " +
              std::to_string(inputs_));
  const auto steps = rotation_steps();
  for (const auto& x : xs_in) detail::check_layer_input("linear layer", *ctx_, eval, x, level_, scale_, gk, steps);

  const auto stride = static_cast<int64_t>(batch_);
  // inner[g] = sum over inputs and baby steps b of diag(in, g*n1+b) * rot(x_in, b), over Q_l u P.
  std::vector<ExtendedCiphertext> inner(n2_);
  std::vector<std::vector<size_t>> baby(inputs_);  // the baby steps input `in` uses (0 included)
  for (size_t in = 0; in < inputs_; ++in) {
    std::vector<bool> used(n1_, false);
    for (size_t k = 0; k < d_; ++k)
      if (!diag_[in * d_ + k].empty()) used[k % n1_] = true;
    for (size_t b = 0; b < n1_; ++b)
      if (used[b]) baby[in].push_back(b);
  }
  // Inputs in groups of the backend's key_switch_batch() whose rotations fit in 256 MiB,
  // each group's rotations one batch of key switches (one decomposition per input).
  const size_t rotation_bytes = 2 * ctx_->words(Basis{level_ + 1, true}) * sizeof(uint64_t);
  const size_t group_rotations = std::max<size_t>(1, (size_t{256} << 20) / rotation_bytes);
  const size_t group_inputs = ctx_->backend().key_switch_batch();
  for (size_t first = 0; first < inputs_;) {
    size_t end = first + 1, rotations = baby[first].size();
    while (end < inputs_ && end - first < group_inputs && rotations + baby[end].size() <= group_rotations)
      rotations += baby[end++].size();
    // Drop to the layer's level first: every rotation and product then runs on fewer limbs.
    std::vector<Ciphertext> lows(end - first);
    std::vector<const Ciphertext*> xs;
    std::vector<std::vector<int64_t>> group_steps;
    for (size_t in = first; in < end; ++in) {
      if (xs_in[in].level() != level_) lows[in - first] = eval.mod_switch_to(xs_in[in], level_);
      xs.push_back(lows[in - first].empty() ? &xs_in[in] : &lows[in - first]);
      group_steps.emplace_back();
      for (size_t b : baby[in]) group_steps.back().push_back(static_cast<int64_t>(b) * stride);
    }
    const auto rotated = eval.rotate_hoisted_extended(xs, group_steps, gk);

    // rot[in - first][b] = input `in` rotated left by b (logical), times P.
    std::vector<std::vector<const ExtendedCiphertext*>> rot(end - first,
                                                            std::vector<const ExtendedCiphertext*>(n1_, nullptr));
    for (size_t in = first; in < end; ++in)
      for (size_t i = 0; i < baby[in].size(); ++i) rot[in - first][baby[in][i]] = &rotated[in - first][i];
    // One multiply_sum per giant step: every product of the group's inputs and baby steps.
    std::vector<const ExtendedCiphertext*> terms;
    std::vector<const ExtendedPlaintext*> plains;
    for (size_t g = 0; g < n2_; ++g) {
      terms.clear();
      plains.clear();
      for (size_t in = first; in < end; ++in)
        for (size_t b = 0; b < n1_; ++b) {
          const ExtendedPlaintext& p = diag_[in * d_ + g * n1_ + b];
          if (p.empty()) continue;
          terms.push_back(rot[in - first][b]);
          plains.push_back(&p);
        }
      if (!terms.empty()) eval.multiply_sum_extended(inner[g], terms, plains, !inner[g].empty());
    }
    first = end;
  }

  // The giant rotations and the sum: one ModDown of each rotated part's c1 and one,
  // with the rescale, of the total.
  std::vector<ExtendedCiphertext> parts;
  std::vector<int64_t> part_steps;
  for (size_t g = 0; g < n2_; ++g) {
    if (inner[g].empty()) continue;
    parts.push_back(std::move(inner[g]));
    part_steps.push_back(static_cast<int64_t>(g * n1_) * stride);
  }
  Ciphertext y;
  if (parts.empty()) {  // W = 0: a trivial encryption of 0
    const double prod_scale = xs_in.front().scale() * static_cast<double>(ctx_->tables().primes[level_]);
    y = eval.rescale(Ciphertext(ctx_, 2, level_, prod_scale, true));
  } else {
    y = eval.rotate_sum_extended(parts, part_steps, gk, /*rescale=*/true);
  }
  if (!bias_.empty()) y = eval.add_plain(y, bias_);
  return y;
}

}  // namespace veil::nn
