// CompiledModel: turns a Sequential into encrypted steps with fixed layouts, levels
// and scales (see include/veil/nn/model.hpp), and runs them.
#include <bit>
#include <functional>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>

#include "veil/encoder.hpp"
#include "veil/error.hpp"
#include "veil/nn/conv.hpp"
#include "veil/nn/linear.hpp"
#include "veil/nn/compile.hpp"
#include "veil/nn/model.hpp"
#include "veil/nn/spatial.hpp"

#include "nn/checks.hpp"
#include "nn/plan_common.hpp"
#include "nn/slots_plan.hpp"

namespace veil::nn {

using detail::pool_folds;
using detail::scale_text;
using detail::scaled_input;

namespace {

// Where every feature of the current tensor lives, and the factor still to apply.
struct Layout {
  size_t groups = 1, period = 1;  // ciphertexts; logical period (a linear layer's column block)
  bool spatial = false;           // sp describes the tensor
  SpatialLayout sp;
  // feature (flatten order) -> the (ciphertext, logical position) pairs whose sum it is
  std::vector<std::vector<std::pair<size_t, size_t>>> where;
  double factor = 1;  // true value = factor * encrypted value
};

struct ConvTapsStep { Conv2dTaps conv; };
struct ConvIm2colStep { Conv2dIm2col conv; };
struct SpatialConvStep { SpatialConv2d conv; };
struct SquareStep {};
struct PolyStep { Polynomial poly; };
// Window sums by rotations (physical steps): each direction either adds all its
// rotations of the same ciphertext (hoisted) or, `doubling`, adds acc rotated by each
// step in turn (steps 1, 2, 4, ...: a sum of 2^k neighbours in k rotations).
struct PoolStep {
  std::vector<int64_t> x_steps, y_steps;
  bool x_doubling = false, y_doubling = false;
};

// The rotations that sum `count` neighbours spaced `stride` apart onto the first one:
// doubling steps for a power of two, else count - 1 hoisted ones.
std::vector<int64_t> sum_steps(size_t count, size_t stride, int64_t batch, bool& doubling) {
  std::vector<int64_t> steps;
  doubling = std::has_single_bit(count);
  if (doubling) {
    for (size_t d = 1; d < count; d *= 2) steps.push_back(static_cast<int64_t>(d * stride) * batch);
  } else {
    for (size_t d = 1; d < count; ++d) steps.push_back(static_cast<int64_t>(d * stride) * batch);
  }
  return steps;
}
struct LinearStep { LinearLayer layer; };
struct FlattenStep {};
// affine: per ciphertext, times `scale` (at scale q_level), rescaled, plus `shift`.
struct AffineStep {
  std::vector<Plaintext> scale, shift;
};
// A linear layer's output (rows values in a block of `period` slots, zeros after them)
// made periodic with a smaller block: x += x rotated right by r, for r = new block, 2x,
// ..., period / 2 (physical left steps). The next linear layer then works on the small
// block: fewer diagonals and rotation keys.
struct ReplicateStep {
  std::vector<int64_t> steps;
};
struct SaveStep {};  // residual_begin: keep the current ciphertexts
// residual_add: the saved ciphertexts, brought to the branch's level, scale and factor
// (times `match` at level + 1, then rescaled, when `adjust`), added to the current ones.
struct AddStep {
  std::optional<SpatialConv2d> projection;  // a conv on the skip path first
  bool adjust = false;
  uint32_t level = 0;
  Plaintext match;
};
using Step = std::variant<ConvTapsStep, ConvIm2colStep, SpatialConvStep, SquareStep, PolyStep, PoolStep, LinearStep,
                          FlattenStep, SaveStep, AddStep, AffineStep, ReplicateStep>;

struct PlannedStep {
  Step step;
  std::string text;
};

size_t windows_block(const Layer& conv, size_t h, size_t w) {
  return std::bit_ceil(((h - conv.kernel) / conv.stride + 1) * ((w - conv.kernel) / conv.stride + 1));
}

// Lists the features of a spatial tensor in flatten order (channel, y, x) with their
// (ciphertext, logical position).
void index_spatial(Layout& lay) {
  const SpatialLayout& sp = lay.sp;
  lay.where.clear();
  for (size_t c = 0; c < sp.channels; ++c)
    for (size_t y = 0; y < sp.height; ++y)
      for (size_t x = 0; x < sp.width; ++x) lay.where.push_back({{c / sp.blocks, sp.position(c, y, x)}});
}

Layout spatial_layout(const SpatialLayout& sp) {
  Layout lay;
  lay.spatial = true;
  lay.sp = sp;
  lay.groups = sp.ciphertexts();
  lay.period = sp.period();
  index_spatial(lay);
  return lay;
}

// The packing the first layer allows.
Packing resolve_packing(const std::vector<Layer>& layers, Packing asked) {
  if (asked == Packing::Slots) return asked;
  const Layer& first = layers.front();
  const bool taps_ok = first.kind == LayerKind::Conv2d && first.in == 1 && first.pad.none();
  return taps_ok ? asked : Packing::Spatial;
}

// Pass 1 of the compiler: sizes only. The spatial block D (the smallest power of two
// that holds every layer's pixels: strides spread them), the largest channel count,
// the largest linear block, and the depth with each layer's share.
struct Sizes {
  size_t block = 1, max_channels = 1, linear_block = 0, first_block = 0;
  uint32_t depth = 0;
  std::string parts;
  // Every SpatialConv2d of the plan: channels in and out (0 out: depthwise), taps, and
  // the depth before it (its plaintexts have in_level - depth_before + 1 limbs).
  struct Conv {
    size_t in, out, taps;
    uint32_t depth_before;
  };
  std::vector<Conv> convs;
  // Linear layers whose sparse spatial input is first gathered into a dense vector.
  std::set<size_t> compacted;

  // The largest layer's plaintext bytes with G channels per ciphertext (an upper
  // bound: SpatialConv2d skips the zero ones), over Q_l u P (alpha special limbs).
  size_t largest_weights(size_t g, uint32_t in_level, size_t n, uint32_t alpha) const {
    size_t most = 0;
    for (const Conv& c : convs) {
      const size_t in_cts = (c.in + g - 1) / g, terms = c.out == 0 ? in_cts * c.taps
                                                                      : (c.out + g - 1) / g * in_cts * c.taps * g;
      most = std::max(most, terms * (in_level - c.depth_before + 1 + alpha) * n * sizeof(uint64_t));
    }
    return most;
  }
};

// Whether another linear layer comes after layer `index`: a dense vector is then worth
// replicating into a small block (ReplicateStep).
bool linear_follows(const std::vector<Layer>& layers, size_t index) {
  for (size_t i = index + 1; i < layers.size(); ++i)
    if (layers[i].kind == LayerKind::Linear) return true;
  return false;
}

// Whether a linear layer (rows x features) reading `channels` channels spread over
// blocks of `block` slots gathers them first: its diagonals number up to
// min(channels * block, rows * features); gathered, at most features + the dense
// layer's block. Worth a level only when that saves a lot (LeNet-5's 400 -> 120 after
// two poolings of 28x28: 16384 against 912), not for the ConvNet's dense 4 x 64 blocks.
bool worth_compacting(size_t rows, size_t features, size_t channels, size_t block) {
  const size_t direct = std::min(channels * block, rows * features);
  const size_t gathered = features + std::bit_ceil(std::max(rows, features));
  return direct > 2048 && direct > 8 * gathered;
}

Sizes walk(const Sequential& model, Packing packing, bool vector_input, size_t block);

// Two walks: the first finds the block, the second decides compactions with it.
Sizes measure(const Sequential& model, Packing packing, bool vector_input) {
  return walk(model, packing, vector_input, walk(model, packing, vector_input, 0).block);
}

Sizes walk(const Sequential& model, Packing packing, bool vector_input, size_t block) {
  Sizes z;
  size_t sparse_channels = 0;  // channels of a flattened spatial tensor until a linear layer
  size_t channels = model.channels();
  std::vector<uint32_t> open_residuals;  // the depth at each open residual_begin
  const auto& layers = model.layers();
  size_t h = model.height(), w = model.width(), ys = w, xs = 1;
  size_t extent = h * w;
  z.max_channels = model.channels();
  double factor = 1;
  size_t period = vector_input ? std::bit_ceil(model.input_size()) : 0;
  z.linear_block = period;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    uint32_t d = 0;
    switch (l.kind) {
      case LayerKind::Conv2d: {
        d = 1;
        const Conv2dGeometry g = l.geometry();
        if (i == 0 && packing != Packing::Spatial) {
          z.first_block = windows_block(l, h, w);
          ys = g.out_width(w), xs = 1;
        } else {
          ys *= l.stride, xs *= l.stride;
          z.convs.push_back({l.in, l.out, l.kernel * l.kernel, z.depth});
        }
        h = g.out_height(h), w = g.out_width(w);
        z.max_channels = std::max(z.max_channels, l.out);
        channels = l.out;
        factor = 1;
        break;
      }
      case LayerKind::Square: d = 1, factor *= factor; break;
      case LayerKind::Affine: d = 1, factor = 1; break;
      case LayerKind::Activation:
        d = static_cast<uint32_t>(scaled_input(*l.poly, factor).depth()), factor = 1;
        break;
      case LayerKind::AvgPool2d: {
        const Conv2dGeometry g = l.geometry();
        if (l.pad.none()) {
          factor /= static_cast<double>(l.kernel * l.kernel);
        } else {
          d = 1;
          z.convs.push_back({l.in, 0, l.kernel * l.kernel, z.depth});
        }
        h = g.out_height(h), w = g.out_width(w), ys *= l.stride, xs *= l.stride;
        break;
      }
      case LayerKind::GlobalAvgPool:
        if (pool_folds(layers, i)) {
          factor /= static_cast<double>(h * w);
        } else {
          d = 1, factor = 1;
          period = std::bit_ceil(std::max(l.out, period));
          z.linear_block = std::max(z.linear_block, period);
        }
        h = w = 1;
        break;
      case LayerKind::Flatten:
        if (!vector_input && h * w > 1) sparse_channels = channels;  // a global pool left one position each
        break;
      case LayerKind::ResidualBegin: open_residuals.push_back(z.depth); break;
      case LayerKind::ResidualAdd:  // the join matches the skip to the branch: no depth
        if (l.projects()) z.convs.push_back({l.in, l.out, l.kernel * l.kernel, open_residuals.back()});
        open_residuals.pop_back();
        break;
      case LayerKind::Linear:
        d = 1, factor = 1;
        if (block != 0 && sparse_channels != 0 && packing != Packing::Slots && worth_compacting(l.out, l.in, sparse_channels, block)) {
          z.compacted.insert(i);
          d = 2;
          z.linear_block = std::max(z.linear_block, std::bit_ceil(std::max(l.in, period)));
          period = std::bit_ceil(l.in);  // replicated into its own block
        }
        sparse_channels = 0;
        period = std::bit_ceil(std::max(l.out, period));
        z.linear_block = std::max(z.linear_block, period);
        if (open_residuals.empty() && linear_follows(layers, i)) period = std::bit_ceil(l.out);
        break;
    }
    extent = std::max(extent, (h - 1) * ys + (w - 1) * xs + 1);
    if (d) z.parts += (z.parts.empty() ? "" : ", ") + l.describe() + " " + std::to_string(d);
    z.depth += d;
  }
  z.block = std::bit_ceil(extent);
  return z;
}

}  // namespace

// Declared in veil/nn/compile.hpp; the same walk as the compiler's first pass.
uint32_t model_depth(const Sequential& model, Packing packing) {
  require(!model.layers().empty(), ErrorCode::InvalidArgument, "model: no layers");
  const bool vector_input = model.layers().front().kind == LayerKind::Flatten;
  return measure(model, packing == Packing::Slots ? packing : Packing::Spatial, vector_input).depth;
}

struct CompiledModel::Impl {
  ContextPtr ctx;
  size_t batch = 1, inputs = 1, input_size = 0, input_period = 0;
  bool vector_input = false;
  Packing packing = Packing::Spatial;
  SpatialLayout input_layout;  // Packing::Spatial
  size_t blocks = 1;           // channels per ciphertext
  uint32_t in_level = 0, out_level = 0;
  double in_scale = 0;
  Layout out;
  std::vector<PlannedStep> steps;
  std::set<int64_t> rotations;
  std::optional<detail::SlotsPlan> slots;  // Packing::Slots: the whole plan
};

CompiledModel::~CompiledModel() = default;
CompiledModel::CompiledModel(CompiledModel&&) noexcept = default;
CompiledModel& CompiledModel::operator=(CompiledModel&&) noexcept = default;

CompiledModel::CompiledModel(ContextPtr ctx, const Sequential& model, const CompileOptions& opt)
    : impl_(std::make_unique<Impl>()) {
  require(ctx != nullptr, ErrorCode::InvalidArgument, "model: null context");
  const auto& layers = model.layers();
  require(!layers.empty(), ErrorCode::InvalidArgument, "model: no layers");
  Impl& m = *impl_;
  m.ctx = ctx;
  m.input_size = model.input_size();
  m.vector_input = layers.front().kind == LayerKind::Flatten;
  m.packing = m.vector_input ? opt.packing : resolve_packing(layers, opt.packing);
  const size_t slots = ctx->params().slots();
  if (m.packing == Packing::Slots) {
    require(model.open_residuals() == 0, ErrorCode::InvalidArgument, "model: a residual_begin has no residual_add");
    m.slots.emplace(ctx, model, opt, measure(model, Packing::Slots, m.vector_input).depth);
    m.batch = m.slots->batch();
    m.inputs = m.slots->input_ciphertexts();
    m.in_level = m.slots->input_level();
    m.out_level = m.slots->output_level();
    m.in_scale = m.slots->input_scale();
    return;
  }

  // Pass 1: depth, blocks, channels per ciphertext and batch.
  const Sizes z = measure(model, m.packing, m.vector_input);
  const int top = static_cast<int>(ctx->max_level());
  const int level0 = opt.level < 0 ? top : opt.level;
  require(level0 >= 0 && level0 <= top, ErrorCode::LevelMismatch,
          "model: input level must be in [0, " + std::to_string(top) + "]");
  m.in_level = static_cast<uint32_t>(level0);
  require(z.depth <= m.in_level, ErrorCode::LevelMismatch,
          "model: needs " + std::to_string(z.depth) + " levels (" + z.parts + ") but the input level is " +
              std::to_string(m.in_level) + " (max_level " + std::to_string(top) +
              "): choose parameters with a longer modulus chain");
  size_t blocks = 1, block = 0;
  const bool spatial_input = !m.vector_input && m.packing == Packing::Spatial;
  if (m.vector_input) {
    block = z.linear_block;
  } else if (!spatial_input) {
    const Layer& first = layers.front();
    block = m.packing == Packing::Im2col ? z.first_block * std::bit_ceil(first.kernel * first.kernel) : z.first_block;
  } else {
    require(z.block <= slots, ErrorCode::InvalidArgument,
            "model: the " + std::to_string(model.height()) + "x" + std::to_string(model.width()) +
                " images need blocks of " + std::to_string(z.block) + " slots; the parameters have " +
                std::to_string(slots));
    if (opt.channel_blocks != 0) {
      require(std::has_single_bit(opt.channel_blocks) && opt.channel_blocks <= slots / z.block,
              ErrorCode::InvalidArgument,
              "model: channel_blocks " + std::to_string(opt.channel_blocks) + " must be a power of two <= " +
                  std::to_string(slots / z.block) + " (slots / block " + std::to_string(z.block) + ")");
      blocks = opt.channel_blocks;
    } else if (opt.batch != 0 && opt.batch <= slots / z.block) {
      blocks = std::min(std::bit_ceil(z.max_channels), slots / (z.block * opt.batch));
    } else if (opt.batch == 0) {
      // One channel per ciphertext is the fastest per image while its weights fit the
      // budget; encoding them per run costs more than packing channels (docs/models.md).
      const size_t most = std::min(std::bit_ceil(z.max_channels), slots / z.block);
      while (blocks < most &&
             z.largest_weights(blocks, m.in_level, ctx->params().n(), ctx->tables().alpha) > opt.plaintext_budget)
        blocks *= 2;
    }
    block = z.block * blocks;
    m.blocks = blocks;
  }
  block = std::max(block, z.linear_block);
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
  m.in_scale = opt.scale == 0 ? ctx->params().default_scale() : opt.scale;
  require(std::isfinite(m.in_scale) && m.in_scale > 1, ErrorCode::InvalidArgument, "model: bad input scale");

  // Pass 2: build every step for the level and scale its input will have.
  uint32_t level = m.in_level;
  double scale = m.in_scale;
  Layout lay;
  if (m.vector_input) {
    m.input_period = lay.period = std::bit_ceil(model.input_size());
    for (size_t f = 0; f < model.input_size(); ++f) lay.where.push_back({{0, f}});
  } else if (spatial_input) {
    m.input_layout = SpatialLayout::dense(model.channels(), model.height(), model.width(), z.block, blocks, m.batch);
    lay = spatial_layout(m.input_layout);
    m.inputs = lay.groups;
  }
  const auto& q = ctx->tables().primes;
  const auto B = static_cast<int64_t>(m.batch);
  size_t index = 0;
  struct Skip {
    Layout lay;
    uint32_t level;
    double scale;
  };
  std::vector<Skip> skips;
  require(model.open_residuals() == 0, ErrorCode::InvalidArgument, "model: a residual_begin has no residual_add");
  auto need_spatial = [&](const Layer& l) {
    require(lay.spatial, ErrorCode::Unsupported,
            "model layer " + std::to_string(index) + ": " + l.describe() +
                " after global_avg_pool is not supported; use flatten() and linear()");
  };
  // y = W x + b with x read where the layout holds it (times the carried factor):
  // one LinearLayer with one input per ciphertext; the result is a dense vector.
  std::string how;
  auto linear = [&](size_t rows, const std::function<double(size_t, size_t)>& weight,
                    const std::vector<double>& bias) {
    const size_t cols = lay.groups * lay.period;
    std::vector<double> w(rows * cols, 0.0);
    for (size_t f = 0; f < lay.where.size(); ++f)
      for (const auto& [g, pos] : lay.where[f])
        for (size_t r = 0; r < rows; ++r) w[r * cols + g * lay.period + pos] += weight(r, f) * lay.factor;
    LinearLayer layer(ctx, w, rows, cols, bias, LinearOptions{static_cast<int>(level), scale, m.batch, lay.groups});
    for (int64_t s : layer.rotation_steps()) m.rotations.insert(s);
    how += std::to_string(lay.groups) + " input ciphertext(s), block " + std::to_string(layer.block()) + ", " +
           std::to_string(layer.nonzero_diagonals()) + " diagonals, " +
           std::to_string(layer.rotation_steps().size()) + " rotation keys";
    lay = Layout{1, layer.block(), false, {}, {}, 1};
    for (size_t f = 0; f < rows; ++f) lay.where.push_back({{0, f}});
    m.steps.push_back({LinearStep{std::move(layer)}, ""});
    level -= 1;
  };
  for (const Layer& l : layers) {
    const uint32_t level_in = level;
    const double scale_in = scale;
    const size_t groups_in = index == 0 && !m.vector_input && !spatial_input ? 0 : lay.groups;
    how.clear();
    switch (l.kind) {
      case LayerKind::Conv2d: {
        const int lv = static_cast<int>(level);
        if (index == 0 && !spatial_input) {
          const size_t h = model.height(), w = model.width();
          SpatialLayout out;
          if (m.packing == Packing::Taps) {
            Conv2dTaps conv(ctx, h, w, l.kernel, l.stride, l.weight, l.out, l.bias, lv, scale, m.batch);
            m.inputs = conv.taps();
            out = SpatialLayout{l.out, conv.out_height(), conv.out_width(), conv.window_block(), 1,
                                conv.out_width(), 1, m.batch};
            how = "taps: " + std::to_string(conv.taps()) + " scalar products per channel";
            m.steps.push_back({ConvTapsStep{std::move(conv)}, ""});
          } else {
            Conv2dIm2col conv(ctx, h, w, l.kernel, l.stride, l.weight, l.out, l.bias, lv, scale, m.batch);
            m.inputs = 1;
            out = SpatialLayout{l.out, conv.out_height(), conv.out_width(), conv.window_block(), 1,
                                conv.out_width(), 1, m.batch};
            for (int64_t s : conv.rotation_steps()) m.rotations.insert(s);
            how = "im2col: " + std::to_string(conv.rotation_steps().size()) + " rotations per channel";
            m.steps.push_back({ConvIm2colStep{std::move(conv)}, ""});
          }
          lay = spatial_layout(out);
        } else {
          need_spatial(l);
          std::vector<double> weight = l.weight;
          for (double& v : weight) v *= lay.factor;  // a carried factor folds into the weights
          SpatialConv2d conv(ctx, lay.sp, l.geometry(), weight, l.bias,
                             SpatialConvOptions{lv, scale, opt.plaintext_budget});
          for (int64_t s : conv.rotation_steps()) m.rotations.insert(s);
          how = std::to_string(conv.products()) + " products, " + std::to_string(conv.rotation_steps().size()) +
                " rotation keys, " + std::to_string(conv.plaintext_bytes() >> 20) + " MiB of weights" +
                (conv.pre_encoded() ? "" : " (encoded per run)");
          lay = spatial_layout(conv.output_layout());
          m.steps.push_back({SpatialConvStep{std::move(conv)}, ""});
        }
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
        need_spatial(l);
        const size_t k = l.kernel;
        if (l.pad.none()) {  // window sums by rotations: no level; the 1/k^2 is carried
          PoolStep ps;
          for (size_t dx = 1; dx < k; ++dx) ps.x_steps.push_back(static_cast<int64_t>(dx * lay.sp.xs) * B);
          for (size_t dy = 1; dy < k; ++dy) ps.y_steps.push_back(static_cast<int64_t>(dy * lay.sp.ys) * B);
          for (int64_t s : ps.x_steps) m.rotations.insert(s);
          for (int64_t s : ps.y_steps) m.rotations.insert(s);
          how = std::to_string(2 * (k - 1)) + " rotations per ciphertext";
          SpatialLayout sp = lay.sp;
          const Conv2dGeometry g = l.geometry();
          sp.height = g.out_height(sp.height), sp.width = g.out_width(sp.width);
          sp.ys *= l.stride, sp.xs *= l.stride;
          const double factor = lay.factor / static_cast<double>(k * k);
          lay = spatial_layout(sp);
          lay.factor = factor;
          m.steps.push_back({std::move(ps), ""});
        } else {  // padding: a depthwise convolution with the window counts in its weights
          auto pool = SpatialConv2d::average_pool(ctx, lay.sp, l.geometry(), l.count_include_pad,
                                                  SpatialConvOptions{static_cast<int>(level), scale, opt.plaintext_budget});
          for (int64_t s : pool.rotation_steps()) m.rotations.insert(s);
          how = std::to_string(pool.products()) + " products (depthwise)";
          const double factor = lay.factor;
          lay = spatial_layout(pool.output_layout());
          lay.factor = factor;
          m.steps.push_back({SpatialConvStep{std::move(pool)}, ""});
          level -= 1;
        }
        break;
      }
      case LayerKind::GlobalAvgPool: {
        need_spatial(l);
        const SpatialLayout& sp = lay.sp;
        const double area = static_cast<double>(sp.height * sp.width);
        // Rotations sum each channel onto its pixel (0, 0): no level, and the next
        // linear layer reads one position per channel.
        PoolStep ps;
        ps.x_steps = sum_steps(sp.width, sp.xs, B, ps.x_doubling);
        ps.y_steps = sum_steps(sp.height, sp.ys, B, ps.y_doubling);
        for (int64_t s : ps.x_steps) m.rotations.insert(s);
        for (int64_t s : ps.y_steps) m.rotations.insert(s);
        const size_t rotations = ps.x_steps.size() + ps.y_steps.size();
        m.steps.push_back({std::move(ps), ""});
        how = std::to_string(rotations) + " rotations per ciphertext";
        lay.where.clear();
        for (size_t c = 0; c < sp.channels; ++c) lay.where.push_back({{c / sp.blocks, sp.position(c, 0, 0)}});
        lay.spatial = false;
        if (pool_folds(layers, index)) {
          lay.factor /= area;
          how += ", the 1/(H W) folded into the next linear layer";
        } else {  // nothing to fold into: gather the sums with a linear layer
          how += ", then a gathering linear layer: ";
          linear(sp.channels, [area](size_t r, size_t f) { return r == f ? 1.0 / area : 0.0; }, {});
        }
        break;
      }
      case LayerKind::Flatten:
        lay.spatial = false;  // positions stay; only the shape is forgotten
        m.steps.push_back({FlattenStep{}, ""});
        break;
      case LayerKind::Affine: {
        // Per-slot scale (times the carried factor) and shift at every position of
        // each feature; the other slots are never read.
        const size_t per = lay.where.size() / l.weight.size(), logical = slots / m.batch;
        std::vector<std::vector<double>> a(lay.groups, std::vector<double>(slots, 0.0)), b = a;
        for (size_t f = 0; f < lay.where.size(); ++f)
          for (size_t i = 0; i < lay.where[f].size(); ++i) {
            const auto [g, pos] = lay.where[f][i];
            for (size_t base = 0; base < logical; base += lay.period)
              for (size_t k = 0; k < m.batch; ++k) {
                a[g][(base + pos) * m.batch + k] = l.weight[f / per] * lay.factor;
                if (i == 0) b[g][(base + pos) * m.batch + k] = l.bias[f / per];  // a sum gets it once
              }
          }
        const Encoder encoder(ctx);
        AffineStep st;
        for (size_t g = 0; g < lay.groups; ++g) {
          st.scale.push_back(encoder.encode(a[g], static_cast<double>(q[level]), static_cast<int>(level)));
          st.shift.push_back(encoder.encode(b[g], scale, static_cast<int>(level) - 1));
        }
        lay.factor = 1;
        level -= 1;
        how = "one plaintext product per ciphertext";
        m.steps.push_back({std::move(st), ""});
        break;
      }
      case LayerKind::ResidualBegin:
        skips.push_back({lay, level, scale});
        m.steps.push_back({SaveStep{}, ""});
        how = "keeps " + std::to_string(lay.groups) + " ciphertext(s) for the skip";
        break;
      case LayerKind::ResidualAdd: {
        Skip s = std::move(skips.back());
        skips.pop_back();
        AddStep add;
        if (l.projects()) {  // the skip's conv runs first, at the skip's level
          require(s.lay.spatial, ErrorCode::Unsupported,
                  "model layer " + std::to_string(index) + ": residual_add's projection needs a spatial skip");
          require(s.level > level, ErrorCode::Unsupported,
                  "model layer " + std::to_string(index) + ": residual_add's projection needs a level, and the "
                  "branch spends none (put a conv or an activation in the block)");
          std::vector<double> weight = l.weight;
          for (double& v : weight) v *= s.lay.factor;
          SpatialConv2d conv(ctx, s.lay.sp, l.geometry(), weight, l.bias,
                             SpatialConvOptions{static_cast<int>(s.level), s.scale, opt.plaintext_budget});
          for (int64_t r : conv.rotation_steps()) m.rotations.insert(r);
          how = "the projection: " + std::to_string(conv.products()) + " products, " +
                std::to_string(conv.rotation_steps().size()) + " rotation keys; ";
          s.lay = spatial_layout(conv.output_layout());
          s.level -= 1;
          add.projection = std::move(conv);
        }
        require(s.lay.groups == lay.groups && s.lay.period == lay.period && s.lay.where == lay.where,
                ErrorCode::Unsupported,
                "model layer " + std::to_string(index) +
                    ": residual_add: the block moved its values (a strided or pooling layer inside it); "
                    "the skip and the branch must keep one layout (a projection with the branch's stride does)");
        add.level = level;
        if (s.level > level) {  // the skip spends one of its spare levels on a matching constant
          add.adjust = true;
          const double value = s.lay.factor / lay.factor, const_scale = scale * static_cast<double>(q[level + 1]) / s.scale;
          require(std::isfinite(value) && std::isfinite(const_scale) && const_scale > 1, ErrorCode::InvalidArgument,
                  "model layer " + std::to_string(index) + ": residual_add cannot match the skip's scale");
          add.match = Encoder(ctx).encode_constant(value, const_scale, static_cast<int>(level + 1));
          how += "the skip (level " + std::to_string(s.level) + ") times a constant at level " +
                 std::to_string(level + 1) + ", rescaled: no level of the plan";
        } else {
          require(std::fabs(s.scale - scale) <= std::ldexp(scale, -40) && s.lay.factor == lay.factor,
                  ErrorCode::Unsupported,
                  "model layer " + std::to_string(index) +
                      ": residual_add around a block that consumes no level must keep the scale and factor");
          how += "a plain addition";
        }
        m.steps.push_back({std::move(add), ""});
        break;
      }
      case LayerKind::Linear: {
        require(lay.where.size() == l.in, ErrorCode::InvalidArgument, "model: linear input size mismatch");
        // A dense vector in a large block is made periodic with a small one.
        auto replicate = [&](size_t rows) {
          const size_t small = std::bit_ceil(rows), logical = slots / m.batch;
          if (lay.period <= small) return;
          ReplicateStep st;
          for (size_t r = small; r < lay.period; r *= 2) st.steps.push_back(static_cast<int64_t>((logical - r) * m.batch));
          for (int64_t s : st.steps) m.rotations.insert(s);
          how += ", replicated into blocks of " + std::to_string(small) + " (" + std::to_string(st.steps.size()) +
                 " rotations)";
          lay.period = small;
          m.steps.push_back({std::move(st), ""});
        };
        if (z.compacted.count(index)) {  // gather the sparse features into a dense vector first
          how = "gathered first (";
          linear(l.in, [](size_t r, size_t f) { return r == f ? 1.0 : 0.0; }, {});
          replicate(l.in);
          how += "), then ";
        }
        linear(l.out, [&](size_t r, size_t f) { return l.weight[r * l.in + f]; }, l.bias);
        if (skips.empty() && linear_follows(layers, index)) replicate(l.out);
        break;
      }
    }
    char buf[200];
    std::snprintf(buf, sizeof buf, "%2zu %-44s level %u -> %u, scale %s -> %s, ciphertexts %zu -> %zu", index,
                  l.describe().c_str(), level_in, level, scale_text(scale_in).c_str(), scale_text(scale).c_str(),
                  groups_in == 0 ? m.inputs : groups_in, lay.groups);
    m.steps.back().text = std::string(buf) + (how.empty() ? "" : "; " + how);
    ++index;
  }
  m.out_level = level;
  require(m.in_level - m.out_level == z.depth, ErrorCode::InvalidArgument, "model (internal): the plan's depth disagrees with pass 1");
  m.out = std::move(lay);
}

size_t CompiledModel::batch() const { return impl_->batch; }
size_t CompiledModel::input_ciphertexts() const { return impl_->inputs; }
size_t CompiledModel::output_ciphertexts() const {
  return impl_->slots ? impl_->slots->output_ciphertexts() : impl_->out.groups;
}
size_t CompiledModel::output_size() const {
  return impl_->slots ? impl_->slots->output_size() : impl_->out.where.size();
}
uint32_t CompiledModel::depth() const { return impl_->in_level - impl_->out_level; }
uint32_t CompiledModel::input_level() const { return impl_->in_level; }
uint32_t CompiledModel::output_level() const { return impl_->out_level; }
double CompiledModel::input_scale() const { return impl_->in_scale; }

std::vector<int64_t> CompiledModel::rotation_steps() const {
  return {impl_->rotations.begin(), impl_->rotations.end()};
}

Packing CompiledModel::packing() const { return impl_->packing; }
size_t CompiledModel::channel_blocks() const { return impl_->blocks; }

std::string CompiledModel::describe() const {
  const Impl& m = *impl_;
  if (m.slots) return m.slots->describe();
  std::string s = "model plan: " + std::to_string(m.batch) + " image(s) per run, " + std::to_string(m.inputs) +
                  " input ciphertext(s), depth " + std::to_string(depth()) + ", " +
                  std::to_string(m.rotations.size()) + " rotation keys\n";
  if (!m.vector_input)
    s += "input packing " + packing_name(m.packing) +
         (m.packing == Packing::Spatial ? ": " + m.input_layout.describe() : std::string()) + "\n";
  for (const auto& st : m.steps)
    if (!st.text.empty()) s += st.text + "\n";  // a layer of two steps has its line on the last
  return s;
}

std::vector<std::vector<double>> CompiledModel::encode(const std::vector<std::vector<double>>& images) const {
  const Impl& m = *impl_;
  if (m.slots) return m.slots->encode(images);
  require(!images.empty() && images.size() <= m.batch, ErrorCode::InvalidArgument,
          "model: " + std::to_string(images.size()) + " images for a batch of " + std::to_string(m.batch));
  for (const auto& img : images)
    require(img.size() == m.input_size, ErrorCode::InvalidArgument,
            "model: an input must hold " + std::to_string(m.input_size) + " values, got " +
                std::to_string(img.size()));
  if (!m.vector_input && m.packing == Packing::Spatial) return m.input_layout.encode(images, m.ctx->params().slots());
  const Step& first = m.steps.front().step;
  if (const auto* t = std::get_if<ConvTapsStep>(&first)) return t->conv.encode_inputs(images);
  if (const auto* c = std::get_if<ConvIm2colStep>(&first)) return {c->conv.encode_inputs(images)};
  return {LinearLayer::layout(images, m.input_period, m.ctx->params().slots(), m.batch)};
}

std::vector<Ciphertext> CompiledModel::run(const Evaluator& eval, const std::vector<Ciphertext>& inputs,
                                           const RelinKey& rk, const GaloisKeys& gk) const {
  const Impl& m = *impl_;
  if (m.slots) return m.slots->run(eval, inputs, rk);
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
  std::vector<std::vector<Ciphertext>> saved;  // the open residual blocks' skips
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
          } else if constexpr (std::is_same_v<T, SpatialConvStep>) {
            next = s.conv.apply(eval, *src, gk);
          } else if constexpr (std::is_same_v<T, SquareStep>) {
            std::vector<Ciphertext> squares;  // relinearized together: one batch of key switches
            for (const auto& c : *src) squares.push_back(eval.multiply_no_relin(c, c));
            next = eval.relinearize_rescale_many(squares, rk);
          } else if constexpr (std::is_same_v<T, PolyStep>) {
            for (const auto& c : *src) next.push_back(evaluate(eval, c, s.poly, rk));
          } else if constexpr (std::is_same_v<T, PoolStep>) {
            for (const auto& c : *src) {
              Ciphertext acc = c;
              for (const auto& [dir, doubling] : {std::pair{&s.x_steps, s.x_doubling}, std::pair{&s.y_steps, s.y_doubling}}) {
                if (doubling) {
                  for (int64_t step : *dir) acc = eval.add(acc, eval.rotate(acc, step, gk));
                } else {
                  auto rotated = eval.rotate_hoisted(acc, *dir, gk);
                  for (const auto& r : rotated) acc = eval.add(acc, r);
                }
              }
              next.push_back(std::move(acc));
            }
          } else if constexpr (std::is_same_v<T, LinearStep>) {
            next.push_back(s.layer.apply(eval, *src, gk));
          } else if constexpr (std::is_same_v<T, AffineStep>) {
            std::vector<Ciphertext> scaled;
            for (size_t i = 0; i < src->size(); ++i) scaled.push_back(eval.multiply_plain((*src)[i], s.scale[i]));
            scaled = eval.rescale_many(scaled);  // one batch
            for (size_t i = 0; i < scaled.size(); ++i) next.push_back(eval.add_plain(scaled[i], s.shift[i]));
          } else if constexpr (std::is_same_v<T, ReplicateStep>) {
            for (const auto& c : *src) {
              Ciphertext acc = c;
              for (int64_t step : s.steps) acc = eval.add(acc, eval.rotate(acc, step, gk));
              next.push_back(std::move(acc));
            }
          } else if constexpr (std::is_same_v<T, SaveStep>) {
            saved.push_back(*src);
            next = *src;
          } else if constexpr (std::is_same_v<T, AddStep>) {
            std::vector<Ciphertext> skip = std::move(saved.back());
            saved.pop_back();
            if (s.projection) skip = s.projection->apply(eval, skip, gk);
            for (size_t i = 0; i < src->size(); ++i) {
              Ciphertext x = std::move(skip[i]);
              if (s.adjust) {
                if (x.level() != s.level + 1) x = eval.mod_switch_to(x, s.level + 1);
                x = eval.rescale(eval.multiply_plain(x, s.match));
              } else if (x.level() != s.level) {
                x = eval.mod_switch_to(x, s.level);
              }
              next.push_back(eval.add((*src)[i], x));
            }
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
  if (m.slots) return m.slots->decode(outputs, images);
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
      double sum = 0;
      for (const auto& [g, pos] : m.out.where[f]) sum += outputs[g][pos * m.batch + b];
      out[b][f] = sum * m.out.factor;
    }
  return out;
}

}  // namespace veil::nn
