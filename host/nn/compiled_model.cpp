// CompiledModel: turns a Sequential into encrypted steps with fixed layouts, levels
// and scales (see include/veil/nn/model.hpp), and runs them.
#include <bit>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <variant>

#include "veil/error.hpp"
#include "veil/nn/conv.hpp"
#include "veil/nn/linear.hpp"
#include "veil/nn/model.hpp"

#include "nn/checks.hpp"

namespace veil::nn {

namespace {

// Where every feature of the current tensor lives, and the factor still to apply.
struct Layout {
  size_t groups = 1, period = 1;              // ciphertexts; logical block size
  size_t height = 0, width = 0, ys = 0, xs = 0;  // spatial tensors only (height > 0)
  std::vector<std::pair<size_t, size_t>> where;  // feature (flatten order) -> (group, logical position)
  double factor = 1;                             // true value = factor * encrypted value
};

struct ConvTapsStep { Conv2dTaps conv; };
struct ConvIm2colStep { Conv2dIm2col conv; };
struct SquareStep {};
struct PolyStep { Polynomial poly; };
struct PoolStep { std::vector<int64_t> x_steps, y_steps; };  // physical rotation steps
struct LinearStep { LinearLayer layer; };
struct FlattenStep {};
using Step = std::variant<ConvTapsStep, ConvIm2colStep, SquareStep, PolyStep, PoolStep, LinearStep, FlattenStep>;

struct PlannedStep {
  Step step;
  std::string text;
};

// p(f * x) as a polynomial in x: the same coefficients on [a / f, b / f] (f > 0).
Polynomial scaled_input(const Polynomial& p, double factor) {
  if (factor == 1.0) return p;
  return Polynomial(p.coefficients(), p.a() / factor, p.b() / factor);
}

std::string scale_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "2^%.2f", std::log2(s));
  return buf;
}

size_t windows_block(const Layer& conv, size_t h, size_t w) {
  return std::bit_ceil(((h - conv.kernel) / conv.stride + 1) * ((w - conv.kernel) / conv.stride + 1));
}

// Lists the features of a spatial tensor in flatten order (channel, y, x) with their
// (ciphertext, logical position).
void index_spatial(Layout& lay) {
  lay.where.clear();
  for (size_t c = 0; c < lay.groups; ++c)
    for (size_t y = 0; y < lay.height; ++y)
      for (size_t x = 0; x < lay.width; ++x) lay.where.emplace_back(c, y * lay.ys + x * lay.xs);
}

}  // namespace

struct CompiledModel::Impl {
  ContextPtr ctx;
  size_t batch = 1, inputs = 1, height = 0, width = 0, input_period = 0;
  bool vector_input = false;
  uint32_t in_level = 0, out_level = 0;
  double in_scale = 0;
  Layout out;
  std::vector<PlannedStep> steps;
  std::set<int64_t> rotations;
};

CompiledModel::~CompiledModel() = default;
CompiledModel::CompiledModel(CompiledModel&&) noexcept = default;
CompiledModel& CompiledModel::operator=(CompiledModel&&) noexcept = default;

CompiledModel::CompiledModel(ContextPtr ctx, const Sequential& model, const CompileOptions& opt)
    : impl_(std::make_unique<Impl>()) {
  require(ctx != nullptr, ErrorCode::InvalidArgument, "model: null context");
  const auto& layers = model.layers();
  require(!layers.empty(), ErrorCode::InvalidArgument, "model: no layers");
  const bool conv_first = layers.front().kind == LayerKind::Conv2d;
  require(conv_first || layers.front().kind == LayerKind::Flatten, ErrorCode::InvalidArgument,
          "model: the first layer must be conv2d (image input) or flatten (vector input)");
  Impl& m = *impl_;
  m.ctx = ctx;
  m.height = model.height();
  m.width = model.width();
  m.vector_input = !conv_first;
  const size_t slots = ctx->params().slots();

  // Pass 1: depth (with the factors polynomials will see) and the largest block.
  {
    const int top = static_cast<int>(ctx->max_level());
    const int level = opt.level < 0 ? top : opt.level;
    require(level >= 0 && level <= top, ErrorCode::LevelMismatch,
            "model: input level must be in [0, " + std::to_string(top) + "]");
    m.in_level = static_cast<uint32_t>(level);
    uint32_t depth = 0;
    std::string parts;
    double factor = 1;
    size_t period = conv_first ? 0 : std::bit_ceil(model.height() * model.width()), block = period;
    for (const Layer& l : layers) {
      uint32_t d = 0;
      switch (l.kind) {
        case LayerKind::Conv2d:
          d = 1;
          period = windows_block(l, model.height(), model.width());
          block = opt.packing == Packing::Im2col ? period * std::bit_ceil(l.kernel * l.kernel) : period;
          break;
        case LayerKind::Square: d = 1, factor *= factor; break;
        case LayerKind::Activation: d = static_cast<uint32_t>(scaled_input(*l.poly, factor).depth()), factor = 1; break;
        case LayerKind::AvgPool2d: factor /= static_cast<double>(l.kernel * l.kernel); break;
        case LayerKind::Flatten: break;
        case LayerKind::Linear:
          d = 1, factor = 1;
          period = std::bit_ceil(std::max(l.out, period));
          block = std::max(block, period);
          break;
      }
      if (d) parts += (parts.empty() ? "" : ", ") + l.describe() + " " + std::to_string(d);
      depth += d;
    }
    require(depth <= m.in_level, ErrorCode::LevelMismatch,
            "model: needs " + std::to_string(depth) + " levels (" + parts + ") but the input level is " +
                std::to_string(m.in_level) + " (max_level " + std::to_string(top) +
                "): choose parameters with a longer modulus chain");
    m.out_level = m.in_level - depth;
    require(block <= slots, ErrorCode::InvalidArgument,
            "model: a layout block of " + std::to_string(block) + " slots does not fit " + std::to_string(slots) +
                " slots");
    if (opt.batch == 0) {
      m.batch = slots / block;
    } else {
      require(std::has_single_bit(opt.batch) && opt.batch * block <= slots, ErrorCode::InvalidArgument,
              "model: batch " + std::to_string(opt.batch) + " must be a power of two <= " +
                  std::to_string(slots / block) + " (slots / largest block " + std::to_string(block) + ")");
      m.batch = opt.batch;
    }
  }
  m.in_scale = opt.scale == 0 ? ctx->params().default_scale() : opt.scale;
  require(std::isfinite(m.in_scale) && m.in_scale > 1, ErrorCode::InvalidArgument, "model: bad input scale");

  // Pass 2: build every step for the level and scale its input will have.
  uint32_t level = m.in_level;
  double scale = m.in_scale;
  Layout lay;
  if (m.vector_input) {
    m.input_period = lay.period = std::bit_ceil(model.height() * model.width());
    for (size_t f = 0; f < model.height() * model.width(); ++f) lay.where.emplace_back(0, f);
  }
  const auto& q = ctx->tables().primes;
  const auto B = static_cast<int64_t>(m.batch);
  size_t index = 0;
  for (const Layer& l : layers) {
    const uint32_t level_in = level;
    const double scale_in = scale;
    const size_t groups_in = index == 0 && !m.vector_input ? 0 : lay.groups;
    std::string how;
    switch (l.kind) {
      case LayerKind::Conv2d: {
        const int lv = static_cast<int>(level);
        if (opt.packing == Packing::Taps) {
          Conv2dTaps conv(ctx, m.height, m.width, l.kernel, l.stride, l.weight, l.out, l.bias, lv, scale, m.batch);
          m.inputs = conv.taps();
          lay = Layout{l.out, conv.window_block(), conv.out_height(), conv.out_width(), conv.out_width(), 1, {}, 1};
          how = "taps: " + std::to_string(conv.taps()) + " scalar products per channel";
          m.steps.push_back({ConvTapsStep{std::move(conv)}, ""});
        } else {
          Conv2dIm2col conv(ctx, m.height, m.width, l.kernel, l.stride, l.weight, l.out, l.bias, lv, scale, m.batch);
          m.inputs = 1;
          lay = Layout{l.out, conv.window_block(), conv.out_height(), conv.out_width(), conv.out_width(), 1, {}, 1};
          for (int64_t s : conv.rotation_steps()) m.rotations.insert(s);
          how = "im2col: " + std::to_string(conv.rotation_steps().size()) + " rotations per channel";
          m.steps.push_back({ConvIm2colStep{std::move(conv)}, ""});
        }
        index_spatial(lay);
        level -= 1;
        break;
      }
      case LayerKind::Square:
        scale = scale * scale / static_cast<double>(q[level]);  // as Evaluator::multiply then rescale
        level -= 1;
        lay.factor *= lay.factor;
        m.steps.push_back({SquareStep{}, ""});
        break;
      case LayerKind::Activation: {
        Polynomial p = scaled_input(*l.poly, lay.factor);
        level -= static_cast<uint32_t>(p.depth());
        how = "interval [" + std::to_string(p.a()) + ", " + std::to_string(p.b()) + "]";
        lay.factor = 1;
        m.steps.push_back({PolyStep{std::move(p)}, ""});
        break;
      }
      case LayerKind::AvgPool2d: {
        const size_t k = l.kernel;
        PoolStep ps;
        for (size_t dx = 1; dx < k; ++dx) ps.x_steps.push_back(static_cast<int64_t>(dx * lay.xs) * B);
        for (size_t dy = 1; dy < k; ++dy) ps.y_steps.push_back(static_cast<int64_t>(dy * lay.ys) * B);
        for (int64_t s : ps.x_steps) m.rotations.insert(s);
        for (int64_t s : ps.y_steps) m.rotations.insert(s);
        how = std::to_string(2 * (k - 1)) + " rotations per channel";
        lay.height /= k, lay.width /= k, lay.ys *= k, lay.xs *= k;
        lay.factor /= static_cast<double>(k * k);
        index_spatial(lay);
        m.steps.push_back({std::move(ps), ""});
        break;
      }
      case LayerKind::Flatten:
        lay.height = lay.width = lay.ys = lay.xs = 0;  // positions stay; only the shape is forgotten
        m.steps.push_back({FlattenStep{}, ""});
        break;
      case LayerKind::Linear: {
        require(lay.where.size() == l.in, ErrorCode::InvalidArgument, "model: linear input size mismatch");
        const size_t cols = lay.groups * lay.period;
        std::vector<double> w(l.out * cols, 0.0);
        for (size_t f = 0; f < l.in; ++f) {
          const auto [g, pos] = lay.where[f];
          for (size_t r = 0; r < l.out; ++r) w[r * cols + g * lay.period + pos] = l.weight[r * l.in + f] * lay.factor;
        }
        LinearLayer layer(ctx, w, l.out, cols, l.bias,
                          LinearOptions{static_cast<int>(level), scale, m.batch, lay.groups});
        for (int64_t s : layer.rotation_steps()) m.rotations.insert(s);
        how = std::to_string(lay.groups) + " input ciphertext(s), block " + std::to_string(layer.block()) + ", " +
              std::to_string(layer.rotation_steps().size()) + " rotation keys";
        lay = Layout{1, layer.block(), 0, 0, 0, 0, {}, 1};
        for (size_t f = 0; f < l.out; ++f) lay.where.emplace_back(0, f);
        m.steps.push_back({LinearStep{std::move(layer)}, ""});
        level -= 1;
        break;
      }
    }
    char buf[160];
    std::snprintf(buf, sizeof buf, "%2zu %-38s level %u -> %u, scale %s -> %s, ciphertexts %zu -> %zu", index,
                  l.describe().c_str(), level_in, level, scale_text(scale_in).c_str(), scale_text(scale).c_str(),
                  groups_in == 0 ? m.inputs : groups_in, lay.groups);
    m.steps.back().text = std::string(buf) + (how.empty() ? "" : "; " + how);
    ++index;
  }
  m.out = std::move(lay);
}

size_t CompiledModel::batch() const { return impl_->batch; }
size_t CompiledModel::input_ciphertexts() const { return impl_->inputs; }
size_t CompiledModel::output_ciphertexts() const { return impl_->out.groups; }
size_t CompiledModel::output_size() const { return impl_->out.where.size(); }
uint32_t CompiledModel::depth() const { return impl_->in_level - impl_->out_level; }
uint32_t CompiledModel::input_level() const { return impl_->in_level; }
uint32_t CompiledModel::output_level() const { return impl_->out_level; }
double CompiledModel::input_scale() const { return impl_->in_scale; }

std::vector<int64_t> CompiledModel::rotation_steps() const {
  return {impl_->rotations.begin(), impl_->rotations.end()};
}

std::string CompiledModel::describe() const {
  const Impl& m = *impl_;
  std::string s = "model plan: " + std::to_string(m.batch) + " image(s) per run, " + std::to_string(m.inputs) +
                  " input ciphertext(s), depth " + std::to_string(depth()) + ", " +
                  std::to_string(m.rotations.size()) + " rotation keys\n";
  for (const auto& st : m.steps) s += st.text + "\n";
  return s;
}

std::vector<std::vector<double>> CompiledModel::encode(const std::vector<std::vector<double>>& images) const {
  const Impl& m = *impl_;
  require(!images.empty() && images.size() <= m.batch, ErrorCode::InvalidArgument,
          "model: " + std::to_string(images.size()) + " images for a batch of " + std::to_string(m.batch));
  for (const auto& img : images)
    require(img.size() == m.height * m.width, ErrorCode::InvalidArgument,
            "model: an image must hold " + std::to_string(m.height * m.width) + " values, got " +
                std::to_string(img.size()));
  const Step& first = m.steps.front().step;
  if (const auto* t = std::get_if<ConvTapsStep>(&first)) return t->conv.encode_inputs(images);
  if (const auto* c = std::get_if<ConvIm2colStep>(&first)) return {c->conv.encode_inputs(images)};
  return {LinearLayer::layout(images, m.input_period, m.ctx->params().slots(), m.batch)};
}

std::vector<Ciphertext> CompiledModel::run(const Evaluator& eval, const std::vector<Ciphertext>& inputs,
                                           const RelinKey& rk, const GaloisKeys& gk) const {
  const Impl& m = *impl_;
  require(inputs.size() == m.inputs, ErrorCode::InvalidArgument,
          "model: " + std::to_string(inputs.size()) + " input ciphertexts, the plan takes " + std::to_string(m.inputs));
  std::vector<int64_t> steps(m.rotations.begin(), m.rotations.end());
  bool above = false;
  for (const auto& x : inputs) {
    detail::check_layer_input("model", *m.ctx, eval, x, m.in_level, m.in_scale, gk, steps);
    steps.clear();  // keys checked once, before any work
    above |= x.level() != m.in_level;
  }
  // The current tensor: the inputs themselves (no copy) until a step replaces them.
  std::vector<Ciphertext> cur;
  if (above)
    for (const auto& x : inputs) cur.push_back(x.level() == m.in_level ? x : eval.mod_switch_to(x, m.in_level));
  const std::vector<Ciphertext>* src = above ? &cur : &inputs;
  for (const auto& planned : m.steps) {
    if (std::holds_alternative<FlattenStep>(planned.step)) continue;  // a layout change only
    std::vector<Ciphertext> next;
    std::visit(
        [&](const auto& s) {
          using T = std::decay_t<decltype(s)>;
          if constexpr (std::is_same_v<T, ConvTapsStep>) {
            next = s.conv.apply(eval, *src);
          } else if constexpr (std::is_same_v<T, ConvIm2colStep>) {
            next = s.conv.apply(eval, src->front(), gk);
          } else if constexpr (std::is_same_v<T, SquareStep>) {
            for (const auto& c : *src) next.push_back(eval.rescale(eval.square(c, rk)));
          } else if constexpr (std::is_same_v<T, PolyStep>) {
            for (const auto& c : *src) next.push_back(evaluate(eval, c, s.poly, rk));
          } else if constexpr (std::is_same_v<T, PoolStep>) {
            for (const auto& c : *src) {
              Ciphertext acc = c;
              for (const auto* dir : {&s.x_steps, &s.y_steps}) {
                auto rotated = eval.rotate_hoisted(acc, *dir, gk);
                for (const auto& r : rotated) acc = eval.add(acc, r);
              }
              next.push_back(std::move(acc));
            }
          } else if constexpr (std::is_same_v<T, LinearStep>) {
            next.push_back(s.layer.apply(eval, *src, gk));
          }
        },
        planned.step);
    cur = std::move(next);
    src = &cur;
  }
  return src == &cur ? std::move(cur) : inputs;  // inputs only for a model of flatten() alone
}

std::vector<std::vector<double>> CompiledModel::decode(const std::vector<std::vector<double>>& outputs,
                                                       size_t images) const {
  const Impl& m = *impl_;
  const size_t slots = m.ctx->params().slots();
  require(outputs.size() == m.out.groups, ErrorCode::InvalidArgument,
          "model: " + std::to_string(outputs.size()) + " decoded outputs, the plan returns " +
              std::to_string(m.out.groups));
  for (const auto& o : outputs)
    require(o.size() == slots, ErrorCode::InvalidArgument, "model: a decoded output must hold every slot");
  require(images >= 1 && images <= m.batch, ErrorCode::InvalidArgument,
          "model: decode 1.." + std::to_string(m.batch) + " images");
  std::vector<std::vector<double>> out(images, std::vector<double>(m.out.where.size()));
  for (size_t b = 0; b < images; ++b)
    for (size_t f = 0; f < m.out.where.size(); ++f) {
      const auto [g, pos] = m.out.where[f];
      out[b][f] = outputs[g][pos * m.batch + b] * m.out.factor;
    }
  return out;
}

}  // namespace veil::nn
