// The slot-wise plan (host/nn/slots_plan.hpp): every layer becomes a map over
// features (an integer combination of ciphertexts) or an element-wise step.
#include "nn/slots_plan.hpp"

#include <bit>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <variant>

#include "veil/combination.hpp"
#include "veil/encoder.hpp"
#include "veil/error.hpp"
#include "veil/nn/polynomial.hpp"

#include "nn/checks.hpp"
#include "nn/plan_common.hpp"

namespace veil::nn::detail {

namespace {

using Entry = CombinationMatrix::Entry;
using Rows = std::vector<std::vector<Entry>>;

// Outputs of a large map are made a slice of rows at a time and, through the
// element-wise steps after it, summed into the next map a slice of columns at a time,
// so the tensor between them (3200 ciphertexts of the molecule model's convolution)
// never exists whole: ciphertexts held at once per slice.
constexpr size_t kSliceFeatures = 128;

// y = W x (+ bias) over features. `rescale`: weights at the input level's last prime,
// then a rescale (one level); else integer sums (pooling), no level, no bias.
struct MapStep {
  size_t columns = 0;
  Rows rows;
  std::vector<double> bias;
  uint32_t level = 0;
  double weight_scale = 1;
  bool rescale = true;
  // Row slices (the head of a streamed group) or column slices (its tail): each part
  // covers [cuts[i], cuts[i + 1]). A single part covers everything.
  std::vector<size_t> cuts;
  bool by_columns = false;
  std::vector<CombinationMatrix> parts;  // built at compile time unless encoded per run
  bool relinearize = false;  // its inputs are squares left unrelinearized and unrescaled
};
// Lazy relinearization: a square whose only consumer is a map is left at size 3 and
// not rescaled; the map runs one level higher on the three polynomials (about 1.7x its
// products), relinearizes its sums and rescales twice, so 512 key switches and no
// square rescales replace 3200 of each for the molecule model's first layers. The
// scales match the eager order: weights at q_(l-1), divided by q_l then q_(l-1). Both
// the key switch's noise and the c2 term's share of the rounding are divided by the
// rescales (rescaling c2 first would multiply its rounding by s^2).
struct ElementStep {
  std::optional<Polynomial> poly;  // none: square
  bool relinearize = true;         // a square: false when the next step is a map
};
struct SaveStep {};
struct JoinStep {
  std::optional<MapStep> projection;
  bool adjust = false;
  uint32_t level = 0;
  double value = 1, const_scale = 1;
};
using Step = std::variant<MapStep, ElementStep, SaveStep, JoinStep>;

struct Planned {
  Step step;
  std::string text;
};

// What the tensor is between layers.
struct State {
  TensorShape shape;
  double factor = 1;  // true value = factor * encrypted value
  uint32_t level = 0;
  double scale = 0;
};

// A convolution (or a depthwise window sum when `depthwise`) over a C x H x W tensor in
// flatten order, as rows of entries: weight(co, ci, ky, kx) per tap inside the image.
Rows conv_rows(const TensorShape& in, const Conv2dGeometry& g, size_t out_channels, bool depthwise,
               const std::function<double(size_t, size_t, size_t, size_t, size_t, size_t)>& weight) {
  const size_t oh = g.out_height(in.height), ow = g.out_width(in.width), k = g.kernel;
  Rows rows(out_channels * oh * ow);
  for (size_t co = 0; co < out_channels; ++co)
    for (size_t oy = 0; oy < oh; ++oy)
      for (size_t ox = 0; ox < ow; ++ox) {
        auto& row = rows[(co * oh + oy) * ow + ox];
        for (size_t ci = depthwise ? co : 0; ci < (depthwise ? co + 1 : in.channels); ++ci)
          for (size_t ky = 0; ky < k; ++ky)
            for (size_t kx = 0; kx < k; ++kx) {
              const long iy = static_cast<long>(oy * g.stride + ky) - static_cast<long>(g.pad_top);
              const long ix = static_cast<long>(ox * g.stride + kx) - static_cast<long>(g.pad_left);
              if (iy < 0 || ix < 0 || iy >= static_cast<long>(in.height) || ix >= static_cast<long>(in.width)) continue;
              const double w = weight(co, ci, ky, kx, oy, ox);
              if (w != 0)
                row.push_back({static_cast<uint32_t>((ci * in.height + static_cast<size_t>(iy)) * in.width +
                                                     static_cast<size_t>(ix)),
                               w});
            }
      }
  return rows;
}

TensorShape conv_shape(const TensorShape& in, const Conv2dGeometry& g, size_t out_channels) {
  return {out_channels, g.out_height(in.height), g.out_width(in.width), false};
}

// A conv2d layer (or a projection's) on `in`: its rows and its bias per output feature.
std::pair<Rows, std::vector<double>> conv_layer(const Layer& l, const TensorShape& in) {
  const Conv2dGeometry g = l.geometry();
  const size_t cin = in.channels, k = l.kernel;
  Rows rows = conv_rows(in, g, l.out, false, [&](size_t co, size_t ci, size_t ky, size_t kx, size_t, size_t) {
    return l.weight[((co * cin + ci) * k + ky) * k + kx];
  });
  const TensorShape out = conv_shape(in, g, l.out);
  std::vector<double> bias;
  if (!l.bias.empty())
    for (size_t f = 0; f < out.size(); ++f) bias.push_back(l.bias[f / (out.height * out.width)]);
  return {std::move(rows), std::move(bias)};
}

size_t map_entries(const Rows& rows) {
  size_t n = 0;
  for (const auto& r : rows) n += r.size();
  return n;
}

// The matrix of part i of a map.
CombinationMatrix build_part(const ContextPtr& ctx, const MapStep& m, size_t i) {
  const size_t first = m.cuts[i], last = m.cuts[i + 1];
  if (!m.by_columns) return CombinationMatrix(ctx, m.columns, Rows(m.rows.begin() + first, m.rows.begin() + last),
                                              m.level, m.weight_scale);
  Rows rows(m.rows.size());
  for (size_t r = 0; r < m.rows.size(); ++r)
    for (const Entry& e : m.rows[r])
      if (e.column >= first && e.column < last)
        rows[r].push_back({static_cast<uint32_t>(e.column - first), e.weight});
  return CombinationMatrix(ctx, last - first, rows, m.level, m.weight_scale);
}

std::vector<CombinationMatrix> build_parts(const ContextPtr& ctx, const MapStep& m) {
  std::vector<CombinationMatrix> parts;
  for (size_t i = 0; i + 1 < m.cuts.size(); ++i) parts.push_back(build_part(ctx, m, i));
  return parts;
}

}  // namespace

struct SlotsPlan::Impl {
  ContextPtr ctx;
  size_t batch = 0, input_size = 0;
  uint32_t in_level = 0, out_level = 0;
  double in_scale = 0;
  State out;
  bool per_run = false;  // matrices built per run (a client's plan, or plaintext_budget 0)
  std::vector<Planned> steps;
};

SlotsPlan::~SlotsPlan() = default;
SlotsPlan::SlotsPlan(SlotsPlan&&) noexcept = default;
SlotsPlan& SlotsPlan::operator=(SlotsPlan&&) noexcept = default;

SlotsPlan::SlotsPlan(ContextPtr ctx, const Sequential& model, const CompileOptions& opt, uint32_t depth)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.ctx = ctx;
  m.input_size = model.input_size();
  const size_t slots = ctx->params().slots();
  const int top = static_cast<int>(ctx->max_level());
  const int level0 = opt.level < 0 ? top : opt.level;
  require(level0 >= 0 && level0 <= top, ErrorCode::LevelMismatch,
          "model: input level must be in [0, " + std::to_string(top) + "]");
  m.in_level = static_cast<uint32_t>(level0);
  require(depth <= m.in_level, ErrorCode::LevelMismatch,
          "model: needs " + std::to_string(depth) + " levels but the input level is " + std::to_string(m.in_level) +
              " (max_level " + std::to_string(top) + "): choose parameters with a longer modulus chain");
  if (opt.batch == 0) {
    m.batch = slots;
  } else {
    require(std::has_single_bit(opt.batch) && opt.batch <= slots, ErrorCode::InvalidArgument,
            "model: batch " + std::to_string(opt.batch) + " must be a power of two <= " + std::to_string(slots) +
                " (the slots: one input per slot)");
    m.batch = opt.batch;
  }
  m.in_scale = opt.scale == 0 ? ctx->params().default_scale() : opt.scale;
  require(std::isfinite(m.in_scale) && m.in_scale > 1, ErrorCode::InvalidArgument, "model: bad input scale");
  m.per_run = opt.plaintext_budget == 0;

  const auto& q = ctx->tables().primes;
  State st{{model.channels(), model.height(), model.width(), false}, 1, m.in_level, m.in_scale};
  std::vector<State> skips;
  const auto& layers = model.layers();
  std::string how;
  // A map at the current level: weights times the carried factor, at the level's last
  // prime, then rescaled.
  auto linear_map = [&](size_t columns, Rows rows, std::vector<double> bias, State& s) {
    for (auto& r : rows)
      for (auto& e : r) e.weight *= s.factor;
    require(s.level >= 1, ErrorCode::LevelMismatch, "model: no level left for a linear layer");
    MapStep mp;
    mp.columns = columns;
    mp.cuts = {0, rows.size()};  // one part, until streaming slices it
    mp.rows = std::move(rows);
    mp.bias = std::move(bias);
    mp.level = s.level;
    mp.weight_scale = static_cast<double>(q[s.level]);
    how = std::to_string(map_entries(mp.rows)) + " weights";
    s.scale = s.scale * static_cast<double>(q[s.level]) / static_cast<double>(q[s.level]);  // as combine, then rescale
    s.level -= 1;
    s.factor = 1;
    return mp;
  };
  auto sum_map = [&](size_t columns, Rows rows, State& s) {
    MapStep mp;
    mp.columns = columns;
    mp.cuts = {0, rows.size()};
    mp.rows = std::move(rows);
    mp.level = s.level;
    mp.rescale = false;  // weight scale 1: integer sums
    how = std::to_string(map_entries(mp.rows)) + " additions, no level";
    return mp;
  };
  for (size_t index = 0; index < layers.size(); ++index) {
    const Layer& l = layers[index];
    const State in = st;
    how.clear();
    std::optional<Step> step;
    switch (l.kind) {
      case LayerKind::Conv2d: {
        auto [rows, bias] = conv_layer(l, st.shape);
        const TensorShape out = conv_shape(st.shape, l.geometry(), l.out);
        step = linear_map(st.shape.size(), std::move(rows), std::move(bias), st);
        st.shape = out;
        break;
      }
      case LayerKind::Square:
        st.scale = st.scale * st.scale / static_cast<double>(q[st.level]);
        st.level -= 1;
        st.factor *= st.factor;
        step = ElementStep{};
        break;
      case LayerKind::Activation: {
        Polynomial p = scaled_input(*l.poly, st.factor);
        st.level -= static_cast<uint32_t>(p.depth());
        how = "interval [" + std::to_string(p.a()) + ", " + std::to_string(p.b()) + "]";
        st.factor = 1;
        step = ElementStep{std::move(p)};
        break;
      }
      case LayerKind::AvgPool2d: {
        const Conv2dGeometry g = l.geometry();
        const TensorShape shape = st.shape, out = conv_shape(shape, g, shape.channels);
        const double area = static_cast<double>(l.kernel * l.kernel);
        if (l.pad.none()) {  // window sums; the 1 / k^2 is carried
          step = sum_map(shape.size(), conv_rows(shape, g, shape.channels, true, [](auto...) { return 1.0; }), st);
          st.factor /= area;
        } else {  // each row holds its window's pixels inside the image: their count
          Rows rows = conv_rows(shape, g, shape.channels, true, [](auto...) { return 1.0; });
          for (auto& r : rows)
            for (auto& e : r) e.weight = 1.0 / (l.count_include_pad ? area : static_cast<double>(r.size()));
          step = linear_map(shape.size(), std::move(rows), {}, st);
        }
        st.shape = out;
        break;
      }
      case LayerKind::GlobalAvgPool: {
        const TensorShape shape = st.shape;
        const size_t area = shape.height * shape.width;
        Rows rows(shape.channels);
        for (size_t c = 0; c < shape.channels; ++c)
          for (size_t p = 0; p < area; ++p) rows[c].push_back({static_cast<uint32_t>(c * area + p), 1.0});
        if (pool_folds(layers, index)) {
          step = sum_map(shape.size(), std::move(rows), st);
          st.factor /= static_cast<double>(area);
          how += "; the 1/" + std::to_string(area) + " folded into the next linear layer";
        } else {
          for (auto& r : rows)
            for (auto& e : r) e.weight = 1.0 / static_cast<double>(area);
          step = linear_map(shape.size(), std::move(rows), {}, st);
        }
        st.shape = {shape.channels, 1, 1, false};
        break;
      }
      case LayerKind::Flatten:
        st.shape = {st.shape.size(), 1, 1, true};
        break;
      case LayerKind::Affine: {
        const size_t features = st.shape.size(), per = features / l.weight.size();
        Rows rows(features);
        std::vector<double> bias(features);
        for (size_t f = 0; f < features; ++f) {
          rows[f].push_back({static_cast<uint32_t>(f), l.weight[f / per]});
          bias[f] = l.bias[f / per];
        }
        step = linear_map(features, std::move(rows), std::move(bias), st);
        break;
      }
      case LayerKind::ResidualBegin:
        skips.push_back(st);
        step = SaveStep{};
        how = "keeps " + std::to_string(st.shape.size()) + " ciphertexts for the skip";
        break;
      case LayerKind::ResidualAdd: {
        State s = skips.back();
        skips.pop_back();
        JoinStep join;
        if (l.projects()) {
          require(s.level > st.level, ErrorCode::Unsupported,
                  "model layer " + std::to_string(index) + ": residual_add's projection needs a level, and the "
                  "branch spends none (put a conv or an activation in the block)");
          auto [rows, bias] = conv_layer(l, s.shape);
          const TensorShape out = conv_shape(s.shape, l.geometry(), l.out);
          join.projection = linear_map(s.shape.size(), std::move(rows), std::move(bias), s);
          s.shape = out;
          how = "the projection: " + how + "; ";
        }
        require(s.shape.size() == st.shape.size(), ErrorCode::InvalidArgument,
                "model layer " + std::to_string(index) + ": residual_add of different sizes");
        join.level = st.level;
        if (s.level > st.level) {
          join.adjust = true;
          join.value = s.factor / st.factor;
          join.const_scale = st.scale * static_cast<double>(q[st.level + 1]) / s.scale;
          require(std::isfinite(join.value) && std::isfinite(join.const_scale) && join.const_scale > 1,
                  ErrorCode::InvalidArgument, "model layer " + std::to_string(index) + ": residual_add cannot match the skip's scale");
          how += "the skip times a constant at level " + std::to_string(st.level + 1) + ", rescaled";
        } else {
          require(std::fabs(s.scale - st.scale) <= std::ldexp(st.scale, -40) && s.factor == st.factor,
                  ErrorCode::Unsupported,
                  "model layer " + std::to_string(index) +
                      ": residual_add around a block that consumes no level must keep the scale and factor");
          how += "a plain addition";
        }
        step = std::move(join);
        break;
      }
      case LayerKind::Linear: {
        Rows rows(l.out);
        for (size_t r = 0; r < l.out; ++r)
          for (size_t c = 0; c < l.in; ++c)
            if (l.weight[r * l.in + c] != 0) rows[r].push_back({static_cast<uint32_t>(c), l.weight[r * l.in + c]});
        step = linear_map(l.in, std::move(rows), l.bias, st);
        st.shape = {l.out, 1, 1, true};
        break;
      }
    }
    if (!step) continue;  // flatten: a change of shape only
    char buf[200];
    std::snprintf(buf, sizeof buf, "%2zu %-44s level %u -> %u, scale %s -> %s, ciphertexts %zu -> %zu", index,
                  l.describe().c_str(), in.level, st.level, scale_text(in.scale).c_str(),
                  scale_text(st.scale).c_str(), in.shape.size(), st.shape.size());
    m.steps.push_back({std::move(*step), std::string(buf) + (how.empty() ? "" : "; " + how)});
  }
  require(m.in_level - st.level == depth, ErrorCode::InvalidArgument,
          "model (internal): the slot-wise plan's depth disagrees with pass 1");
  m.out_level = st.level;
  m.out = st;

  // Stream a large map through the element-wise steps into the next map.
  for (size_t i = 0; i < m.steps.size(); ++i) {
    auto* head = std::get_if<MapStep>(&m.steps[i].step);
    // A map that is already a group's tail stays whole on its rows.
    if (!head || head->by_columns || !head->rescale || head->rows.size() <= 2 * kSliceFeatures) continue;
    size_t j = i + 1;
    while (j < m.steps.size() && std::holds_alternative<ElementStep>(m.steps[j].step)) ++j;
    if (j >= m.steps.size()) continue;
    auto* tail = std::get_if<MapStep>(&m.steps[j].step);
    if (!tail || tail->columns != head->rows.size()) continue;
    std::vector<size_t> cuts;
    for (size_t c = 0; c < head->rows.size(); c += kSliceFeatures) cuts.push_back(c);
    cuts.push_back(head->rows.size());
    head->cuts = tail->cuts = cuts;
    tail->by_columns = true;
    m.steps[j].text += "; fed " + std::to_string(kSliceFeatures) + " features at a time from layer above";
  }
  for (size_t i = 0; i + 1 < m.steps.size(); ++i) {
    auto* es = std::get_if<ElementStep>(&m.steps[i].step);
    auto* next = std::get_if<MapStep>(&m.steps[i + 1].step);
    if (!es || es->poly || !next) continue;
    es->relinearize = false;
    next->relinearize = true;
    next->level += 1;
    m.steps[i].text += "; relinearized and rescaled by the next layer (lazily)";
  }
  if (!m.per_run)
    for (auto& p : m.steps) {
      if (auto* mp = std::get_if<MapStep>(&p.step)) mp->parts = build_parts(ctx, *mp);
      if (auto* js = std::get_if<JoinStep>(&p.step); js && js->projection)
        js->projection->parts = build_parts(ctx, *js->projection);
    }
}

size_t SlotsPlan::batch() const { return impl_->batch; }
size_t SlotsPlan::input_ciphertexts() const { return impl_->input_size; }
size_t SlotsPlan::output_ciphertexts() const { return impl_->out.shape.size(); }
size_t SlotsPlan::output_size() const { return impl_->out.shape.size(); }
uint32_t SlotsPlan::input_level() const { return impl_->in_level; }
uint32_t SlotsPlan::output_level() const { return impl_->out_level; }
double SlotsPlan::input_scale() const { return impl_->in_scale; }

std::string SlotsPlan::describe() const {
  const Impl& m = *impl_;
  size_t bytes = 0;
  for (const auto& p : m.steps)
    if (const auto* mp = std::get_if<MapStep>(&p.step))
      for (const auto& part : mp->parts) bytes += part.bytes();
  std::string s = "model plan: " + std::to_string(m.batch) + " input(s) per run, one per slot; " +
                  std::to_string(m.input_size) + " input ciphertexts (one per feature), depth " +
                  std::to_string(m.in_level - m.out_level) + ", 0 rotation keys, " + std::to_string(bytes >> 20) +
                  " MiB of weights" + (m.per_run ? " (encoded per run)" : "") + "\ninput packing slots\n";
  for (const auto& p : m.steps) s += p.text + "\n";
  return s;
}

std::vector<std::vector<double>> SlotsPlan::encode(const std::vector<std::vector<double>>& images) const {
  const Impl& m = *impl_;
  require(!images.empty() && images.size() <= m.batch, ErrorCode::InvalidArgument,
          "model: " + std::to_string(images.size()) + " images for a batch of " + std::to_string(m.batch));
  std::vector<std::vector<double>> out(m.input_size, std::vector<double>(m.ctx->params().slots(), 0.0));
  for (size_t b = 0; b < images.size(); ++b) {
    require(images[b].size() == m.input_size, ErrorCode::InvalidArgument,
            "model: an input must hold " + std::to_string(m.input_size) + " values, got " +
                std::to_string(images[b].size()));
    for (size_t f = 0; f < m.input_size; ++f) out[f][b] = images[b][f];
  }
  return out;
}

namespace {

// Rescale and bias of a map's outputs [first, first + outs.size()).
// Rescale, bias and (after unrelinearized squares) relinearization of a map's outputs
// [first, first + outs.size()).
void finish(const Evaluator& eval, const MapStep& mp, std::vector<Ciphertext>& outs, size_t first,
            const RelinKey& rk) {
  // Each step is one batch over the outputs (one launch sequence on cuda).
  if (mp.relinearize) outs = eval.relinearize_rescale_many(outs, rk);  // the squares' rescale
  if (!mp.rescale) return;
  outs = eval.rescale_many(outs);
  for (size_t r = 0; r < outs.size(); ++r)
    if (!mp.bias.empty() && mp.bias[first + r] != 0) outs[r] = eval.add_scalar(outs[r], mp.bias[first + r]);
}

void element(const Evaluator& eval, const ElementStep& es, std::vector<Ciphertext>& cts, const RelinKey& rk) {
  if (es.poly) {
    for (auto& c : cts) c = evaluate(eval, c, *es.poly, rk);
    return;
  }
  for (auto& c : cts) c = eval.multiply_no_relin(c, c);
  if (!es.relinearize) return;
  cts = eval.relinearize_rescale_many(cts, rk);  // one batch of key switches, rescaled in their ModDown
}

}  // namespace

std::vector<Ciphertext> SlotsPlan::run(const Evaluator& eval, const std::vector<Ciphertext>& inputs,
                                       const RelinKey& rk) const {
  const Impl& m = *impl_;
  require(inputs.size() == m.input_size, ErrorCode::InvalidArgument,
          "model: " + std::to_string(inputs.size()) + " input ciphertexts, the plan takes " +
              std::to_string(m.input_size));
  for (const auto& x : inputs) detail::check_layer_input("model", *m.ctx, eval, x, m.in_level, m.in_scale, {}, {});
  auto parts_of = [&](const MapStep& mp, std::vector<CombinationMatrix>& own) -> const std::vector<CombinationMatrix>& {
    if (!mp.parts.empty()) return mp.parts;
    own = build_parts(m.ctx, mp);
    return own;
  };
  std::vector<Ciphertext> cur;
  const std::vector<Ciphertext>* src = &inputs;
  std::vector<std::vector<Ciphertext>> saved;
  for (size_t i = 0; i < m.steps.size(); ++i) {
    std::vector<Ciphertext> next;
    const Step& step = m.steps[i].step;
    if (const auto* mp = std::get_if<MapStep>(&step)) {
      std::vector<CombinationMatrix> own;
      const auto& parts = parts_of(*mp, own);
      if (parts.size() == 1 || mp->by_columns) {
        next = eval.combine(*src, parts.front());
        finish(eval, *mp, next, 0, rk);
      } else {  // a streamed group: this map's row slices through the element-wise steps into the tail's columns
        size_t j = i + 1;
        while (std::holds_alternative<ElementStep>(m.steps[j].step)) ++j;
        const auto& tail = std::get<MapStep>(m.steps[j].step);
        std::vector<CombinationMatrix> tail_own;
        const auto& tail_parts = parts_of(tail, tail_own);
        require(tail.by_columns && tail_parts.size() == parts.size(), ErrorCode::InvalidArgument,
                "model (internal): a streamed layer's slices do not match the next layer's");
        for (size_t p = 0; p < parts.size(); ++p) {
          std::vector<Ciphertext> slice = eval.combine(*src, parts[p]);
          finish(eval, *mp, slice, mp->cuts[p], rk);
          for (size_t e = i + 1; e < j; ++e) element(eval, std::get<ElementStep>(m.steps[e].step), slice, rk);
          if (p == 0) next = eval.combine(slice, tail_parts[0]);
          else eval.combine_into(next, slice, tail_parts[p]);
        }
        finish(eval, tail, next, 0, rk);
        i = j;
      }
    } else if (const auto* es = std::get_if<ElementStep>(&step)) {
      next = *src;
      element(eval, *es, next, rk);
    } else if (std::holds_alternative<SaveStep>(step)) {
      saved.push_back(*src);
      next = *src;
    } else {
      const auto& js = std::get<JoinStep>(step);
      std::vector<Ciphertext> skip = std::move(saved.back());
      saved.pop_back();
      if (js.projection) {
        std::vector<CombinationMatrix> own;
        const auto& parts = parts_of(*js.projection, own);
        skip = eval.combine(skip, parts.front());
        finish(eval, *js.projection, skip, 0, rk);
      }
      for (size_t f = 0; f < src->size(); ++f) {
        Ciphertext x = std::move(skip[f]);
        if (js.adjust) {
          if (x.level() != js.level + 1) x = eval.mod_switch_to(x, js.level + 1);
          x = eval.rescale(eval.multiply_constant(x, js.value, js.const_scale));
        } else if (x.level() != js.level) {
          x = eval.mod_switch_to(x, js.level);
        }
        next.push_back(eval.add((*src)[f], x));
      }
    }
    cur = std::move(next);
    src = &cur;
  }
  return src == &cur ? std::move(cur) : inputs;
}

std::vector<std::vector<double>> SlotsPlan::decode(const std::vector<std::vector<double>>& outputs,
                                                   size_t images) const {
  const Impl& m = *impl_;
  const size_t features = m.out.shape.size(), slots = m.ctx->params().slots();
  require(outputs.size() == features, ErrorCode::InvalidArgument,
          "model: " + std::to_string(outputs.size()) + " decoded outputs, the plan returns " +
              std::to_string(features));
  for (const auto& o : outputs)
    require(o.size() == slots, ErrorCode::InvalidArgument, "model: a decoded output must hold every slot");
  require(images >= 1 && images <= m.batch, ErrorCode::InvalidArgument,
          "model: decode 1.." + std::to_string(m.batch) + " images");
  std::vector<std::vector<double>> out(images, std::vector<double>(features));
  for (size_t b = 0; b < images; ++b)
    for (size_t f = 0; f < features; ++f) out[b][f] = outputs[f][b] * m.out.factor;
  return out;
}

}  // namespace veil::nn::detail
