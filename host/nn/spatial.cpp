// SpatialLayout and SpatialConv2d (include/veil/nn/spatial.hpp): multi-channel tensors
// in channel blocks, and the masked-diagonal convolution over them.
#include "veil/nn/spatial.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "veil/encoder.hpp"
#include "veil/error.hpp"

#include "nn/checks.hpp"

namespace veil::nn {

namespace {

constexpr size_t kMaxSide = size_t{1} << 16;

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

// The conv weights, checked before any lambda indexes them.
const std::vector<double>& checked_weights(const std::vector<double>& w, const SpatialLayout& in,
                                           const Conv2dGeometry& g) {
  require(g.kernel >= 1 && g.kernel <= 64 && g.out_channels >= 1 && g.out_channels <= kMaxSide &&
              in.channels >= 1 && in.channels <= kMaxSide,
          ErrorCode::InvalidArgument, "conv: needs kernel in [1, 64] and channels in [1, 65536]");
  const size_t want = g.out_channels * in.channels * g.kernel * g.kernel;  // < 2^45: no wrap
  require(w.size() == want, ErrorCode::InvalidArgument,
          "conv: weights must hold out * in * kernel^2 = " + std::to_string(want) + " values, got " +
              std::to_string(w.size()));
  require(all_finite(w), ErrorCode::InvalidArgument, "conv: non-finite weight");
  return w;
}

}  // namespace

SpatialLayout SpatialLayout::dense(size_t channels, size_t height, size_t width, size_t block, size_t blocks,
                                   size_t batch) {
  return SpatialLayout{channels, height, width, block, blocks, width, 1, batch};
}

void SpatialLayout::check(size_t slots) const {
  auto pow2 = [](size_t v) { return std::has_single_bit(v); };
  require(channels >= 1 && height >= 1 && width >= 1 && height <= kMaxSide && width <= kMaxSide &&
              channels <= kMaxSide,
          ErrorCode::InvalidArgument, "spatial layout: channels, height and width must be in [1, 65536]");
  require(pow2(block) && pow2(blocks) && pow2(batch) && ys >= 1 && xs >= 1, ErrorCode::InvalidArgument,
          "spatial layout: block, blocks and batch must be powers of two and ys, xs >= 1");
  require(block <= slots && blocks <= slots / block && batch <= slots / (block * blocks),
          ErrorCode::InvalidArgument,
          "spatial layout: batch " + std::to_string(batch) + " x blocks " + std::to_string(blocks) + " x block " +
              std::to_string(block) + " exceeds " + std::to_string(slots) + " slots");
  require(ys <= block && xs <= block && (height - 1) * ys + (width - 1) * xs < block, ErrorCode::InvalidArgument,
          "spatial layout: a " + std::to_string(height) + "x" + std::to_string(width) + " image with strides (" +
              std::to_string(ys) + ", " + std::to_string(xs) + ") does not fit a block of " + std::to_string(block));
}

std::string SpatialLayout::describe() const {
  return std::to_string(channels) + "x" + std::to_string(height) + "x" + std::to_string(width) + " in " +
         std::to_string(ciphertexts()) + " ct (" + std::to_string(blocks) + " channel(s) of " +
         std::to_string(block) + " slots each, batch " + std::to_string(batch) + ")";
}

std::vector<std::vector<double>> SpatialLayout::encode(const std::vector<std::vector<double>>& tensors,
                                                       size_t slots) const {
  check(slots);
  require(!tensors.empty() && tensors.size() <= batch, ErrorCode::InvalidArgument,
          "spatial layout: " + std::to_string(tensors.size()) + " inputs for a batch of " + std::to_string(batch));
  const size_t n = channels * height * width, logical = slots / batch, p = period();
  std::vector<std::vector<double>> out(ciphertexts(), std::vector<double>(slots, 0.0));
  for (size_t b = 0; b < tensors.size(); ++b) {
    require(tensors[b].size() == n, ErrorCode::InvalidArgument,
            "spatial layout: an input must hold " + std::to_string(n) + " values (" + std::to_string(channels) +
                "x" + std::to_string(height) + "x" + std::to_string(width) + "), got " +
                std::to_string(tensors[b].size()));
    for (size_t c = 0; c < channels; ++c)
      for (size_t y = 0; y < height; ++y)
        for (size_t x = 0; x < width; ++x) {
          const double v = tensors[b][(c * height + y) * width + x];
          for (size_t base = 0; base < logical; base += p)  // the period repeats over the slots
            out[c / blocks][(base + position(c, y, x)) * batch + b] = v;
        }
  }
  return out;
}

std::vector<std::vector<double>> SpatialLayout::decode(const std::vector<std::vector<double>>& decoded,
                                                       size_t count) const {
  require(decoded.size() == ciphertexts(), ErrorCode::InvalidArgument,
          "spatial layout: " + std::to_string(decoded.size()) + " decoded ciphertexts, the layout has " +
              std::to_string(ciphertexts()));
  require(count >= 1 && count <= batch, ErrorCode::InvalidArgument,
          "spatial layout: decode 1.." + std::to_string(batch) + " inputs");
  for (const auto& d : decoded)
    require(d.size() >= batch * period(), ErrorCode::InvalidArgument, "spatial layout: a decoded vector is too short");
  std::vector<std::vector<double>> out(count, std::vector<double>(channels * height * width));
  for (size_t b = 0; b < count; ++b)
    for (size_t c = 0; c < channels; ++c)
      for (size_t y = 0; y < height; ++y)
        for (size_t x = 0; x < width; ++x)
          out[b][(c * height + y) * width + x] = decoded[c / blocks][position(c, y, x) * batch + b];
  return out;
}

SpatialConv2d::SpatialConv2d(ContextPtr ctx, const SpatialLayout& in, const Conv2dGeometry& g,
                             const std::vector<double>& weights, const std::vector<double>& bias,
                             const SpatialConvOptions& options)
    : SpatialConv2d(
          std::move(ctx), in, g,
          [&weights = checked_weights(weights, in, g), cin = in.channels, kk = g.kernel * g.kernel](size_t co, size_t ci, size_t t, size_t, size_t) {
            return weights[(co * cin + ci) * kk + t];
          },
          bias, options, "conv") {
  // weight_ captured `weights` by reference for the construction only; keep a copy
  // for plaintexts encoded later (apply() beyond the budget).
  if (!pre_encoded_) {
    weight_ = [w = weights, cin = in.channels, kk = g.kernel * g.kernel](size_t co, size_t ci, size_t t, size_t,
                                                                        size_t) { return w[(co * cin + ci) * kk + t]; };
  } else {
    weight_ = nullptr;
  }
}

SpatialConv2d SpatialConv2d::average_pool(ContextPtr ctx, const SpatialLayout& in, const Conv2dGeometry& geometry,
                                          bool count_include_pad, const SpatialConvOptions& options) {
  Conv2dGeometry g = geometry;
  g.out_channels = in.channels;
  const size_t k = g.kernel, h = in.height, w = in.width;
  // The number of window pixels inside the image, for the mean without padding.
  auto inside = [=](size_t o, size_t stride, size_t pad, size_t side) {
    const auto lo = static_cast<int64_t>(o * stride) - static_cast<int64_t>(pad);
    const int64_t a = std::max<int64_t>(lo, 0), b = std::min<int64_t>(lo + static_cast<int64_t>(k), side);
    return static_cast<double>(std::max<int64_t>(b - a, 1));
  };
  WeightFn fn = [=](size_t co, size_t ci, size_t, size_t oy, size_t ox) {
    if (co != ci) return 0.0;
    if (count_include_pad) return 1.0 / static_cast<double>(k * k);
    return 1.0 / (inside(oy, g.stride, g.pad_top, h) * inside(ox, g.stride, g.pad_left, w));
  };
  return SpatialConv2d(std::move(ctx), in, g, fn, {}, options, "avg_pool");
}

SpatialConv2d::SpatialConv2d(ContextPtr ctx, const SpatialLayout& in, const Conv2dGeometry& g, const WeightFn& weight,
                             const std::vector<double>& bias, const SpatialConvOptions& opt, const std::string& what)
    : ctx_(std::move(ctx)), in_(in), geo_(g), weight_(weight), what_(what) {
  require(ctx_ != nullptr, ErrorCode::InvalidArgument, what_ + ": null context");
  const size_t slots = ctx_->params().slots();
  in_.check(slots);
  const size_t k = g.kernel;
  require(g.out_channels >= 1 && g.out_channels <= kMaxSide && k >= 1 && g.stride >= 1 && g.stride <= kMaxSide,
          ErrorCode::InvalidArgument, what_ + ": needs out_channels in [1, 65536], kernel >= 1 and stride >= 1");
  require(g.pad_top < k && g.pad_left < k && g.pad_bottom < k && g.pad_right < k, ErrorCode::InvalidArgument,
          what_ + ": every pad must be smaller than the kernel (" + std::to_string(k) + ")");
  require(in.height + g.pad_top + g.pad_bottom >= k && in.width + g.pad_left + g.pad_right >= k,
          ErrorCode::InvalidArgument,
          what_ + ": kernel " + std::to_string(k) + " is larger than the padded " + std::to_string(in.height) + "x" +
              std::to_string(in.width) + " input");
  require(bias.empty() || bias.size() == g.out_channels, ErrorCode::InvalidArgument,
          what_ + ": bias must be empty or hold out_channels values");
  require(all_finite(bias), ErrorCode::InvalidArgument, what_ + ": non-finite bias");
  const int top = static_cast<int>(ctx_->max_level());
  const int lv = opt.level < 0 ? top : opt.level;
  require(lv >= 1 && lv <= top, ErrorCode::LevelMismatch,
          what_ + ": needs an input level in [1, " + std::to_string(top) + "] (it consumes one rescale)");
  level_ = static_cast<uint32_t>(lv);
  scale_ = opt.scale == 0 ? ctx_->params().default_scale() : opt.scale;
  require(std::isfinite(scale_) && scale_ > 1, ErrorCode::InvalidArgument, what_ + ": bad scale");

  out_ = in_;
  out_.channels = g.out_channels;
  out_.height = g.out_height(in.height);
  out_.width = g.out_width(in.width);
  require(g.stride <= in.block / std::max(in.ys, in.xs), ErrorCode::InvalidArgument, what_ + ": stride too large");
  out_.ys = in.ys * g.stride;
  out_.xs = in.xs * g.stride;
  require((out_.height - 1) * out_.ys + (out_.width - 1) * out_.xs < out_.block, ErrorCode::InvalidArgument,
          what_ + ": the " + std::to_string(out_.height) + "x" + std::to_string(out_.width) +
              " output does not fit a block of " + std::to_string(out_.block) + " slots; compile with a larger block");

  for (size_t ky = 0; ky < k; ++ky)
    for (size_t kx = 0; kx < k; ++kx)
      offsets_.push_back((static_cast<int64_t>(ky) - static_cast<int64_t>(g.pad_top)) * static_cast<int64_t>(in_.ys) +
                         (static_cast<int64_t>(kx) - static_cast<int64_t>(g.pad_left)) * static_cast<int64_t>(in_.xs));

  // Every (o, j, i, t) whose plaintext is not all zero, in the order apply() uses.
  const size_t limb_bytes = ctx_->params().n() * sizeof(uint64_t);
  for (size_t o = 0; o < out_.ciphertexts(); ++o)
    for (size_t j = 0; j < in_.blocks; ++j)
      for (size_t i = 0; i < in_.ciphertexts(); ++i)
        for (size_t t = 0; t < k * k; ++t) {
          const auto v = slot_values(o, i, t, j);
          if (!std::all_of(v.begin(), v.end(), [](double x) { return x == 0.0; })) terms_.push_back({o, i, t, j});
        }
  plaintext_bytes_ = terms_.size() * (level_ + 1 + ctx_->tables().alpha) * limb_bytes;  // over Q_l u P
  pre_encoded_ = plaintext_bytes_ <= opt.plaintext_budget;
  if (pre_encoded_) {
    plain_.reserve(terms_.size());
    for (size_t n = 0; n < terms_.size(); ++n) plain_.push_back(encode_term(n));
  }

  if (!bias.empty()) {
    const Encoder encoder(ctx_);
    const size_t logical = slots / in_.batch, per = in_.period();
    for (size_t o = 0; o < out_.ciphertexts(); ++o) {
      std::vector<double> v(slots, 0.0);
      for (size_t c = 0; c < out_.blocks && o * out_.blocks + c < out_.channels; ++c)
        for (size_t oy = 0; oy < out_.height; ++oy)
          for (size_t ox = 0; ox < out_.width; ++ox)
            for (size_t base = 0; base < logical; base += per)
              for (size_t b = 0; b < in_.batch; ++b)
                v[(base + out_.position(o * out_.blocks + c, oy, ox)) * in_.batch + b] = bias[o * out_.blocks + c];
      bias_.push_back(encoder.encode(v, scale_, static_cast<int>(level_) - 1));
    }
  }
}

// Slot values of P'[o, i, t, j] (see the header), batch-expanded over every slot.
std::vector<double> SpatialConv2d::slot_values(size_t o, size_t i, size_t t, size_t j) const {
  const size_t slots = ctx_->params().slots(), per = in_.period(), d = in_.block, g = in_.blocks, k = geo_.kernel;
  const size_t ky = t / k, kx = t % k;
  std::vector<double> base(per, 0.0);
  bool any = false;
  for (size_t c = 0; c < g; ++c) {
    const size_t co = o * g + c, ci = i * g + (c + j) % g;
    if (co >= out_.channels || ci >= in_.channels) continue;
    for (size_t oy = 0; oy < out_.height; ++oy) {
      const auto iy = static_cast<int64_t>(oy * geo_.stride + ky) - static_cast<int64_t>(geo_.pad_top);
      if (iy < 0 || iy >= static_cast<int64_t>(in_.height)) continue;
      for (size_t ox = 0; ox < out_.width; ++ox) {
        const auto ix = static_cast<int64_t>(ox * geo_.stride + kx) - static_cast<int64_t>(geo_.pad_left);
        if (ix < 0 || ix >= static_cast<int64_t>(in_.width)) continue;
        const double w = weight_(co, ci, t, oy, ox);
        if (w == 0.0) continue;
        require(std::isfinite(w), ErrorCode::InvalidArgument, what_ + ": non-finite weight");
        // Pre-rotated right by j * D: the giant rotation left by j * D puts it back.
        base[(out_.position(co, oy, ox) + j * d) % per] = w;
        any = true;
      }
    }
  }
  if (!any) return {};
  std::vector<double> v(slots);
  for (size_t s = 0; s < slots; ++s) v[s] = base[(s / in_.batch) % per];
  return v;
}

ExtendedPlaintext SpatialConv2d::encode_term(size_t index) const {
  const Term& term = terms_[index];
  const Encoder encoder(ctx_);
  return encoder.encode_extended(slot_values(term.o, term.i, term.t, term.j),
                                 static_cast<double>(ctx_->tables().primes[level_]), static_cast<int>(level_));
}

std::vector<int64_t> SpatialConv2d::rotation_steps() const {
  const auto per = static_cast<int64_t>(in_.period()), batch = static_cast<int64_t>(in_.batch);
  std::vector<int64_t> steps;
  for (const Term& term : terms_) {
    const int64_t r = ((offsets_[term.t] % per) + per) % per;
    if (r != 0) steps.push_back(r * batch);
    if (term.j != 0) steps.push_back(static_cast<int64_t>(term.j * in_.block) * batch);
  }
  std::sort(steps.begin(), steps.end());
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  return steps;
}

std::vector<Ciphertext> SpatialConv2d::apply(const Evaluator& eval, const std::vector<Ciphertext>& xs_in,
                                             const GaloisKeys& gk) const {
  require(xs_in.size() == in_.ciphertexts(), ErrorCode::InvalidArgument,
          what_ + ": " + std::to_string(xs_in.size()) + " input ciphertexts, the layer takes " +
              std::to_string(in_.ciphertexts()));
  auto steps = rotation_steps();
  for (const auto& x : xs_in) {
    detail::check_layer_input(what_, *ctx_, eval, x, level_, scale_, gk, steps);
    steps.clear();
  }
  const auto per = static_cast<int64_t>(in_.period()), batch = static_cast<int64_t>(in_.batch);
  auto physical = [&](int64_t r) { return (((r % per) + per) % per) * batch; };

  // rotated[i][t]: input i rotated left by r_t, over Q_l u P (double hoisting: no
  // ModDown); the rotations of one input share one decomposition, all inputs one batch.
  const size_t taps = offsets_.size();
  std::vector<Ciphertext> low(xs_in.size());
  std::vector<const Ciphertext*> xs(xs_in.size());
  std::vector<std::vector<int64_t>> wanted(xs_in.size());  // physical steps, 0 included
  for (size_t i = 0; i < xs_in.size(); ++i) {
    if (xs_in[i].level() != level_) low[i] = eval.mod_switch_to(xs_in[i], level_);
    xs[i] = low[i].empty() ? &xs_in[i] : &low[i];
  }
  for (const Term& term : terms_) wanted[term.i].push_back(physical(offsets_[term.t]));
  for (auto& w : wanted) {
    std::sort(w.begin(), w.end());
    w.erase(std::unique(w.begin(), w.end()), w.end());
  }
  const auto hoisted = eval.rotate_hoisted_extended(xs, wanted, gk);
  std::vector<std::vector<const ExtendedCiphertext*>> rotated(xs_in.size(),
                                                              std::vector<const ExtendedCiphertext*>(taps, nullptr));
  for (size_t i = 0; i < xs_in.size(); ++i)
    for (size_t t = 0; t < taps; ++t) {
      const auto at = std::lower_bound(wanted[i].begin(), wanted[i].end(), physical(offsets_[t]));
      if (at != wanted[i].end() && *at == physical(offsets_[t]))
        rotated[i][t] = &hoisted[i][static_cast<size_t>(at - wanted[i].begin())];
    }

  std::vector<Ciphertext> out;
  size_t n = 0;
  for (size_t o = 0; o < out_.ciphertexts(); ++o) {
    // parts[k]: sum_{i,t} rot(x_i, r_t) * P'[o, i, t, j] for the k-th channel diagonal j.
    std::vector<ExtendedCiphertext> parts;
    std::vector<int64_t> part_steps;
    while (n < terms_.size() && terms_[n].o == o) {
      const size_t j = terms_[n].j;
      // The group's products in multiply_sum calls of up to kSumTerms terms (weights
      // encoded per run live only for their call).
      constexpr size_t kSumTerms = 64;
      ExtendedCiphertext inner;
      std::vector<ExtendedPlaintext> lazy;
      lazy.reserve(kSumTerms);
      std::vector<const ExtendedCiphertext*> group;
      std::vector<const ExtendedPlaintext*> plains;
      while (n < terms_.size() && terms_[n].o == o && terms_[n].j == j) {
        lazy.clear();
        group.clear();
        plains.clear();
        for (; n < terms_.size() && terms_[n].o == o && terms_[n].j == j && group.size() < kSumTerms; ++n) {
          if (!pre_encoded_) lazy.push_back(encode_term(n));
          group.push_back(rotated[terms_[n].i][terms_[n].t]);
          plains.push_back(pre_encoded_ ? &plain_[n] : &lazy.back());
        }
        eval.multiply_sum_extended(inner, group, plains, !inner.empty());
      }
      parts.push_back(std::move(inner));
      part_steps.push_back(static_cast<int64_t>(j * in_.block) * batch);
    }
    Ciphertext y;
    if (parts.empty()) {  // all weights zero
      const double prod_scale = xs_in.front().scale() * static_cast<double>(ctx_->tables().primes[level_]);
      y = eval.rescale(Ciphertext(ctx_, 2, level_, prod_scale, true));
    } else {
      y = eval.rotate_sum_extended(parts, part_steps, gk, /*rescale=*/true);
    }
    if (!bias_.empty()) y = eval.add_plain(y, bias_[o]);
    out.push_back(std::move(y));
  }
  return out;
}

}  // namespace veil::nn
