// ONNX model -> nn::Sequential (include/veil/nn/onnx.hpp). The graph is walked in its
// (topological) node order as one chain: `base_` is the tensor the Sequential built so
// far outputs, and element-wise arithmetic with scalar constants is tracked as a
// polynomial of that tensor (exprs_) until a layer needs it, so x*x, Pow(x, 3) - 2x or
// a torch-written polynomial activation become one square() / activation() layer.
// Per-channel constants (Mul/Add/Sub/Div, BatchNormalization) are tracked the same way
// as a pending affine map of the base (affines_): folded into the conv2d / linear that
// produced the base, else one affine() layer for the whole run of them.
// Residual blocks (y = f(x) + x): a scan before the walk finds the Adds that join the
// chain to an earlier tensor of it, and the walk calls residual_begin() when that
// tensor is the chain's, residual_add() at the Add.
#include "veil/nn/onnx.hpp"

#include <fstream>
#include <iterator>

#include "veil/error.hpp"

#ifndef VEIL_HAVE_ONNX

namespace veil::nn {

bool onnx_import_available() { return false; }

Sequential import_onnx(const std::string&, const OnnxImportOptions&) {
  throw Error(ErrorCode::Unsupported, "onnx: this build of Veil has no ONNX support (install libonnx-dev)");
}

Sequential import_onnx_bytes(std::string_view, const OnnxImportOptions&) {
  throw Error(ErrorCode::Unsupported, "onnx: this build of Veil has no ONNX support (install libonnx-dev)");
}

}  // namespace veil::nn

#else

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace veil::nn {
namespace {

static_assert(std::endian::native == std::endian::little, "ONNX raw_data is little-endian");

constexpr int64_t kMaxTensorElements = int64_t{1} << 26;
constexpr int kMaxPolynomialDegree = 63;
constexpr int64_t kMaxSide = int64_t{1} << 20;  // input sizes, kernels, strides and pads: no product wraps
constexpr size_t kMaxDenseConv = size_t{1} << 26;  // values of a grouped Conv's weight once made dense

[[noreturn]] void bad_file(const std::string& why) { throw Error(ErrorCode::Serialization, "onnx: " + why); }

// A constant (initializer or Constant node), values widened to double.
struct Tensor {
  std::vector<int64_t> dims;
  std::vector<double> values;
  size_t size() const { return values.size(); }
};

template <class T>
std::vector<double> from_raw(const std::string& raw, size_t count, const std::string& name) {
  if (raw.size() != count * sizeof(T))
    bad_file("tensor '" + name + "': raw_data holds " + std::to_string(raw.size()) + " bytes, its shape needs " +
             std::to_string(count * sizeof(T)));
  std::vector<double> v(count);
  for (size_t i = 0; i < count; ++i) {
    T x;
    std::memcpy(&x, raw.data() + i * sizeof(T), sizeof(T));
    v[i] = static_cast<double>(x);
  }
  return v;
}

template <class Field>
std::vector<double> from_field(const Field& f, size_t count, const std::string& name) {
  if (static_cast<size_t>(f.size()) != count)
    bad_file("tensor '" + name + "': " + std::to_string(f.size()) + " values for a shape of " + std::to_string(count));
  return std::vector<double>(f.begin(), f.end());
}

Tensor read_tensor(const onnx::TensorProto& t) {
  const std::string& name = t.name();
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    throw Error(ErrorCode::Unsupported, "onnx: tensor '" + name + "' keeps its data in an external file");
  Tensor out;
  int64_t count = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || d > kMaxTensorElements) bad_file("tensor '" + name + "' has a bad dimension " + std::to_string(d));
    count *= d;
    if (count > kMaxTensorElements) bad_file("tensor '" + name + "' is too large");
    out.dims.push_back(d);
  }
  const size_t n = static_cast<size_t>(count);
  const bool raw = t.has_raw_data();
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      out.values = raw ? from_raw<float>(t.raw_data(), n, name) : from_field(t.float_data(), n, name);
      break;
    case onnx::TensorProto::DOUBLE:
      out.values = raw ? from_raw<double>(t.raw_data(), n, name) : from_field(t.double_data(), n, name);
      break;
    case onnx::TensorProto::INT64:
      out.values = raw ? from_raw<int64_t>(t.raw_data(), n, name) : from_field(t.int64_data(), n, name);
      break;
    case onnx::TensorProto::INT32:
      out.values = raw ? from_raw<int32_t>(t.raw_data(), n, name) : from_field(t.int32_data(), n, name);
      break;
    default:
      throw Error(ErrorCode::Unsupported,
                  "onnx: tensor '" + name + "' has data type " + std::to_string(t.data_type()) +
                      " (float, double, int32 and int64 are read)");
  }
  return out;
}

// ---- polynomials in the power basis: p[0] + p[1] x + ... ----

using Poly = std::vector<double>;

Poly trim(Poly p) {
  while (p.size() > 1 && p.back() == 0) p.pop_back();
  return p;
}
Poly poly_add(const Poly& a, const Poly& b, double sign = 1) {
  Poly r(std::max(a.size(), b.size()), 0.0);
  for (size_t i = 0; i < a.size(); ++i) r[i] += a[i];
  for (size_t i = 0; i < b.size(); ++i) r[i] += sign * b[i];
  return trim(r);
}
Poly poly_mul(const Poly& a, const Poly& b) {
  Poly r(a.size() + b.size() - 1, 0.0);
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < b.size(); ++j) r[i + j] += a[i] * b[j];
  return trim(r);
}
Poly poly_scale(const Poly& a, double s) {
  Poly r(a);
  for (double& c : r) c *= s;
  return trim(r);
}
int degree(const Poly& p) { return static_cast<int>(p.size()) - 1; }
const Poly kIdentity = {0.0, 1.0};

class Importer {
 public:
  Importer(const onnx::ModelProto& model, const OnnxImportOptions& options) : model_(model), options_(options) {}

  Sequential run() {
    check_opset();
    const onnx::GraphProto& g = model_.graph();
    if (static_cast<size_t>(g.node_size()) > options_.max_nodes)
      throw Error(ErrorCode::Unsupported, "onnx: the graph has " + std::to_string(g.node_size()) +
                                              " nodes (limit " + std::to_string(options_.max_nodes) + ")");
    for (const auto& t : g.initializer()) consts_[t.name()] = read_tensor(t);
    start(g);
    find_projections(g);
    find_residual_joins(g);
    open_blocks(base_);
    for (int i = 0; i < g.node_size(); ++i) {
      index_ = static_cast<size_t>(i);
      node_ = &g.node(i);
      if (deferred_.count(index_)) continue;  // a projection's node: built at its Add
      visit(*node_);
      for (const auto& out : node_->output()) open_blocks(out);
    }
    node_ = nullptr;
    if (g.output_size() != 1)
      throw Error(ErrorCode::Unsupported, "onnx: the graph has " + std::to_string(g.output_size()) +
                                              " outputs (one is supported)");
    const std::string& out = g.output(0).name();
    if (!exprs_.count(out) && !padded_.count(out) && !affines_.count(out))
      throw Error(ErrorCode::Unsupported, "onnx: the graph output '" + out + "' is not computed from the input");
    materialize(out);
    if (seq_->open_residuals() != 0)  // a tensor named twice can open a block no Add closes
      throw Error(ErrorCode::Unsupported, "onnx: the graph output: a residual block opened at '" + open_.back() +
                                              "' is never closed by its Add");
    if (seq_->layers().empty()) throw Error(ErrorCode::Unsupported, "onnx: the graph has no layer");
    return std::move(*seq_);
  }

 private:
  void check_opset() {
    int64_t version = -1;
    for (const auto& op : model_.opset_import())
      if (op.domain().empty() || op.domain() == "ai.onnx") version = op.version();
    if (version < 9 || version > 21)
      throw Error(ErrorCode::Unsupported, "onnx: default-domain opset " + std::to_string(version) +
                                              " (9 .. 21 are supported)");
  }

  // The graph's one non-constant input: [batch, C, H, W] or [C, H, W] images, or
  // [batch, F] vectors.
  void start(const onnx::GraphProto& g) {
    const onnx::ValueInfoProto* input = nullptr;
    for (const auto& in : g.input()) {
      if (consts_.count(in.name())) continue;  // IR < 4 lists initializers as inputs
      if (input) throw Error(ErrorCode::Unsupported, "onnx: the graph has more than one data input");
      input = &in;
    }
    if (!input) throw Error(ErrorCode::Unsupported, "onnx: the graph has no data input");
    const auto& type = input->type();
    if (!type.has_tensor_type() || !type.tensor_type().has_shape())
      throw Error(ErrorCode::Unsupported, "onnx: input '" + input->name() + "' has no tensor shape");
    const auto elem = type.tensor_type().elem_type();
    if (elem != onnx::TensorProto::FLOAT && elem != onnx::TensorProto::DOUBLE)
      throw Error(ErrorCode::Unsupported, "onnx: input '" + input->name() + "' is not float or double");
    std::vector<int64_t> dims;  // -1: symbolic (the batch)
    for (const auto& d : type.tensor_type().shape().dim()) dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    auto fixed = [&](size_t i) {
      if (dims[i] < 1 || dims[i] > kMaxSide)
        throw Error(ErrorCode::Unsupported, "onnx: input '" + input->name() + "' dimension " + std::to_string(i) +
                                                " must be a fixed positive size");
      return static_cast<size_t>(dims[i]);
    };
    try {
      if (dims.size() == 4 || dims.size() == 3) {
        const size_t c = dims.size() - 3;  // the batch, when there is one, is not part of the model
        rank_ = dims.size();
        seq_.emplace(fixed(c), fixed(c + 1), fixed(c + 2));
      } else if (dims.size() == 2) {
        seq_.emplace(1, fixed(1));
        seq_->flatten();
      } else {
        throw Error(ErrorCode::Unsupported, "onnx: input '" + input->name() + "' has rank " +
                                                std::to_string(dims.size()) +
                                                " (4: [batch, C, H, W] or 3: [C, H, W] images, 2: [batch, F] vectors)");
      }
    } catch (const Error& e) {  // Sequential's size limits
      if (e.code() != ErrorCode::InvalidArgument) throw;
      throw Error(ErrorCode::InvalidArgument, "onnx: input '" + input->name() + "': " + e.what());
    }
    set_base(input->name(), false);
  }

  // ---- node helpers ----

  // "onnx: node 3 (Conv 'conv1'): ", or the graph output once every node is read.
  std::string where() const {
    if (!node_) return "onnx: the graph output: ";
    std::string w = "onnx: node " + std::to_string(index_) + " (" + node_->op_type();
    if (!node_->name().empty()) w += " '" + node_->name() + "'";
    return w + "): ";
  }
  [[noreturn]] void unsupported(const std::string& why) const { throw Error(ErrorCode::Unsupported, where() + why); }
  // Shapes that do not fit (a malformed model rather than a missing feature).
  [[noreturn]] void invalid(const std::string& why) const { throw Error(ErrorCode::InvalidArgument, where() + why); }
  // Runs a Sequential builder; its shape and value checks then name the node too.
  template <class F>
  void build(F&& add) {
    try {
      add(*seq_);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::InvalidArgument) throw;
      invalid(e.what());
    }
  }
  const onnx::AttributeProto* attr(const std::string& name) const {
    for (const auto& a : node_->attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  int64_t attr_int(const std::string& name, int64_t fallback) const {
    const auto* a = attr(name);
    return a ? a->i() : fallback;
  }
  double attr_float(const std::string& name, double fallback) const {
    const auto* a = attr(name);
    return a ? a->f() : fallback;
  }
  std::vector<int64_t> attr_ints(const std::string& name) const {
    const auto* a = attr(name);
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : std::vector<int64_t>{};
  }
  std::string attr_string(const std::string& name) const {
    const auto* a = attr(name);
    return a ? a->s() : std::string{};
  }
  void inputs_between(int lo, int hi) const {
    if (node_->input_size() < lo || node_->input_size() > hi)
      unsupported("takes " + std::to_string(node_->input_size()) + " inputs");
  }
  const std::string& input(int i) const { return node_->input(i); }
  const std::string& output() const {
    if (node_->output_size() < 1) unsupported("has no output");
    return node_->output(0);
  }
  bool is_const(const std::string& name) const { return consts_.count(name) > 0; }
  const Tensor& constant(const std::string& name) const {
    auto it = consts_.find(name);
    if (it == consts_.end()) unsupported("input '" + name + "' must be a constant");
    return it->second;
  }
  // A data tensor of the chain (a polynomial of the base); a pending affine map becomes
  // its layer first (the tensor is then the base).
  const Poly& expr(const std::string& name) {
    build_affine(name);
    if (padded_.count(name))
      unsupported("input '" + name + "' is the output of a Pad with non-zero pads, which must directly feed a "
                  "Conv or AveragePool (it is folded into that layer's padding)");
    auto it = exprs_.find(name);
    if (it == exprs_.end())
      unsupported("input '" + name + "' is neither a constant nor the output of the chain so far "
                  "(the graph branches here: only a chain, with residual blocks whose skip carries a tensor "
                  "of the chain unchanged to an Add, is supported)");
    return it->second;
  }

  void set_base(const std::string& name, bool affine) {
    base_ = name;
    exprs_.clear();
    affines_.clear();
    exprs_[name] = kIdentity;
    last_affine_ = affine;
  }
  void layer_done(bool affine) {
    column_ = false;  // a layer's output is a row (reshape() sets it again after its flatten)
    set_base(output(), affine);
  }

  // Turns the polynomial `name` holds into layers, so that `name` is the new base.
  void materialize(const std::string& name) {
    const Poly p = expr(name);
    if (p == kIdentity) {
      set_base(name, last_affine_);  // an alias of the base (Identity, Pad, x * 1)
      return;
    }
    if (degree(p) < 1) unsupported("tensor '" + name + "' does not depend on the input");
    if (degree(p) == 1 && last_affine_) {  // a * x + b after conv2d / linear: fold into it
      fold_affine(std::vector<double>(features(), p[1]), std::vector<double>(features(), p[0]));
      set_base(name, true);
      return;
    }
    if (p == Poly{0.0, 0.0, 1.0}) {
      build([](Sequential& m) { m.square(); });
    } else {
      if (degree(p) > kMaxPolynomialDegree) unsupported("polynomial of degree " + std::to_string(degree(p)));
      build([&](Sequential& m) { m.activation(Polynomial::from_power(p)); });
    }
    set_base(name, false);
  }

  // Channels (spatial) or features (flat) of the current output.
  size_t features() const {
    const TensorShape s = seq_->output_shape();
    return s.flat ? s.size() : s.channels;
  }
  // y = gamma * x + beta per channel / feature, folded into the previous conv2d / linear.
  void fold_affine(const std::vector<double>& gamma, const std::vector<double>& beta) {
    const std::vector<double> zero(gamma.size(), 0.0), one(gamma.size(), 1.0);
    build([&](Sequential& m) { m.batch_norm(gamma, beta, zero, one, 0.0); });
  }

  // ---- per-channel affine maps: scale[c] * base + shift[c] ----

  struct Affine {
    std::vector<double> scale, shift;
  };
  Affine uniform_affine(double scale, double shift) const {
    return {std::vector<double>(features(), scale), std::vector<double>(features(), shift)};
  }
  bool pending(const std::string& name) const { return affines_.count(name) > 0; }

  // `name` as an affine map of the base: its pending map, or its polynomial when of degree
  // 1; any other polynomial becomes a layer first (then the base itself).
  Affine affine_of(const std::string& name) {
    if (const auto it = affines_.find(name); it != affines_.end()) return it->second;
    const Poly p = expr(name);
    if (degree(p) == 1) return uniform_affine(p[1], p[0]);
    materialize(name);  // refuses a constant (degree 0)
    return uniform_affine(1, 0);
  }

  // The node's output = gamma * data + beta per channel / feature. Right after a conv2d /
  // linear it is folded into that layer (no level); otherwise it stays pending, so that
  // the constants that follow (x * a + b, a BatchNorm then a Mul) make one affine layer.
  void apply_affine(const std::string& data, const std::vector<double>& gamma, const std::vector<double>& beta) {
    Affine a = affine_of(data);
    for (size_t i = 0; i < a.scale.size(); ++i) {
      a.scale[i] *= gamma[i];
      a.shift[i] = gamma[i] * a.shift[i] + beta[i];
      if (!std::isfinite(a.scale[i]) || !std::isfinite(a.shift[i]))
        invalid("the per-channel constants overflow (channel / feature " + std::to_string(i) + ")");
    }
    if (last_affine_) {
      fold_affine(a.scale, a.shift);
      layer_done(true);
      return;
    }
    affines_[output()] = std::move(a);
  }

  // Turns a pending affine map into its layer (none for the identity); `name` becomes the base.
  void build_affine(const std::string& name) {
    const auto it = affines_.find(name);
    if (it == affines_.end()) return;
    const Affine a = std::move(it->second);
    const bool identity = std::all_of(a.scale.begin(), a.scale.end(), [](double v) { return v == 1; }) &&
                          std::all_of(a.shift.begin(), a.shift.end(), [](double v) { return v == 0; });
    if (!identity) build([&](Sequential& m) { m.affine(a.scale, a.shift); });
    set_base(name, last_affine_ && identity);
  }

  // The node's output is its input unchanged (Identity, a zero Pad, Flatten of a vector).
  void pass_through(const std::string& in) {
    if (pending(in)) affines_[output()] = affines_.at(in);
    else exprs_[output()] = expr(in);
  }

  // A constant broadcast against the current output: one value (scalar) or one per
  // channel ([C,1,1] / [1,C,1,1]) or per feature ([F] / [1,F]).
  std::optional<std::vector<double>> per_feature(const Tensor& c) const {
    const TensorShape s = seq_->output_shape();
    std::vector<int64_t> d = c.dims;
    while (!d.empty() && d.front() == 1 && d.size() > (s.flat ? 1u : 3u)) d.erase(d.begin());
    const size_t f = features();
    bool ok = false;
    if (s.flat) ok = d.size() == 1 && static_cast<size_t>(d[0]) == f;
    else ok = d.size() == 3 && static_cast<size_t>(d[0]) == f && d[1] == 1 && d[2] == 1;
    if (!ok) return std::nullopt;
    return c.values;
  }

  // ---- residual blocks ----

  static bool elementwise(const std::string& op) {
    return op == "Identity" || op == "Dropout" || op == "Neg" || op == "Pow" || op == "Add" || op == "Sub" ||
           op == "Mul" || op == "Div" || op == "Sum" || op == "Pad";
  }
  static bool joins_two(const onnx::NodeProto& n) {
    return n.op_type() == "Add" || (n.op_type() == "Sum" && n.input_size() == 2);
  }

  // Records the Adds that join the chain to an earlier tensor of it (joins_, and per
  // skip tensor how many blocks start there: skip_uses_). A segment is a stretch of
  // the chain between layers: element-wise nodes stay in their input's (the walk folds
  // them into one polynomial), every other node starts a new one. A segment started
  // from the newest one continues the chain; any other is a branch. An Add of two
  // chain segments is a residual join whose skip is the earlier one; an Add of two
  // tensors of one segment stays a polynomial; an Add with a branch is refused here,
  // naming it (a Conv on the skip path, two diverging paths).
  // A projection shortcut's skip path: a Conv, maybe a BatchNormalization after it.
  struct Projection {
    size_t conv = 0;
    std::optional<size_t> bn;
    std::string output;  // the skip path's tensor at the Add
  };
  // A Conv node's layer arguments (conv_spec).
  struct ConvSpec {
    size_t out = 0, kernel = 0, stride = 1;
    Padding pad;
    std::vector<double> weight, bias;
  };

  // Finds the projection shortcuts: an Add (or two-input Sum) one of whose inputs is
  // Conv(x) or BatchNormalization(Conv(x)), each used only on that path, where the Add's
  // other input is computed from x but is not x (that is a plain block whose branch is
  // the Conv). When both
  // inputs qualify, the later Conv is the shortcut (PyTorch's order: the block's
  // branch first, the downsample after it).
  void find_projections(const onnx::GraphProto& g) {
    std::map<std::string, size_t> producer, uses;
    for (int i = 0; i < g.node_size(); ++i) {
      for (const auto& o : g.node(i).output())
        if (!o.empty()) producer[o] = static_cast<size_t>(i);
      for (const auto& in : g.node(i).input()) ++uses[in];
    }
    for (const auto& o : g.output()) ++uses[o.name()];
    auto path = [&](const std::string& t) -> std::optional<Projection> {
      Projection p;
      p.output = t;
      auto it = producer.find(t);
      if (it == producer.end() || uses[t] != 1) return std::nullopt;
      if (g.node(static_cast<int>(it->second)).op_type() == "BatchNormalization") {
        p.bn = it->second;
        const std::string& x = g.node(static_cast<int>(it->second)).input(0);
        it = producer.find(x);
        if (it == producer.end() || uses[x] != 1) return std::nullopt;
      }
      const onnx::NodeProto& conv = g.node(static_cast<int>(it->second));
      if (conv.op_type() != "Conv" || conv.input_size() < 2) return std::nullopt;
      p.conv = it->second;
      return p;
    };
    // Whether `from` is an ancestor of `t` (the branch must start at the shortcut's input).
    auto descends = [&](const std::string& t, const std::string& from) {
      std::vector<std::string> todo{t};
      std::set<std::string> seen;
      while (!todo.empty()) {
        const std::string cur = todo.back();
        todo.pop_back();
        if (cur == from) return true;
        const auto it = producer.find(cur);
        if (it == producer.end() || !seen.insert(cur).second) continue;
        for (const auto& in : g.node(static_cast<int>(it->second)).input()) todo.push_back(in);
      }
      return false;
    };
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& n = g.node(i);
      if (!joins_two(n) || n.input_size() != 2) continue;
      std::optional<Projection> best;
      for (int side = 0; side < 2; ++side) {
        auto p = path(n.input(side));
        if (!p) continue;
        const std::string& x = g.node(static_cast<int>(p->conv)).input(0);
        if (x == n.input(1 - side) || !descends(n.input(1 - side), x)) continue;
        if (!best || p->conv > best->conv) best = p;
      }
      if (!best) continue;
      deferred_.insert(best->conv);
      if (best->bn) deferred_.insert(*best->bn);
      projections_[static_cast<size_t>(i)] = *best;
    }
  }

  void find_residual_joins(const onnx::GraphProto& g) {
    std::map<std::string, size_t> segment{{base_, 0}};
    std::vector<bool> on_chain{true};
    size_t newest = 0;
    auto start_segment = [&](size_t from) {
      on_chain.push_back(on_chain[from] && from == newest);
      return newest = on_chain.size() - 1;
    };
    for (int i = 0; i < g.node_size(); ++i) {
      index_ = static_cast<size_t>(i);
      node_ = &g.node(i);
      if (deferred_.count(index_)) continue;
      if (const auto p = projections_.find(index_); p != projections_.end()) {
        const std::string& skip = g.node(static_cast<int>(p->second.conv)).input(0);
        const std::string& branch = input(0) == p->second.output ? input(1) : input(0);
        const auto s = segment.find(skip), b = segment.find(branch);
        if (s == segment.end() || b == segment.end())
          unsupported("the projection's input '" + skip + "' or the branch '" + branch +
                      "' is not computed from the graph input");
        const size_t out = start_segment(residual_join({skip, s->second}, {branch, b->second}, on_chain));
        for (const auto& o : node_->output())
          if (!o.empty()) segment[o] = out;
        continue;
      }
      std::vector<std::pair<std::string, size_t>> data;  // the inputs that depend on the graph input
      for (const auto& in : node_->input())
        if (auto it = segment.find(in); !in.empty() && it != segment.end()) data.emplace_back(in, it->second);
      if (data.empty()) continue;  // constants
      size_t out = data[0].second;
      const bool one_segment =
          std::all_of(data.begin(), data.end(), [&](const auto& d) { return d.second == data[0].second; });
      if (!elementwise(node_->op_type())) {
        out = start_segment(data[0].second);
      } else if (!one_segment && joins_two(*node_) && data.size() == 2) {
        out = start_segment(residual_join(data[0], data[1], on_chain));
      } else if (!one_segment) {
        out = start_segment(std::max(data[0].second, data[1].second));  // the walk refuses it
      }
      for (const auto& o : node_->output())
        if (!o.empty()) segment[o] = out;  // "" is an omitted optional output
    }
    node_ = nullptr;
  }

  // Records the join of the current node's two inputs (tensor, segment); returns the
  // branch's segment, which the Add's output continues.
  size_t residual_join(const std::pair<std::string, size_t>& a, const std::pair<std::string, size_t>& b,
                       const std::vector<bool>& on_chain) {
    if (!on_chain[a.second] || !on_chain[b.second])
      unsupported("inputs '" + a.first + "' and '" + b.first + "' come from two branches of the graph (e.g. a Conv "
                  "on the skip path): a residual block's skip must carry a tensor of the chain unchanged to the Add");
    const bool a_first = a.second < b.second;  // the chain's segments are numbered in its order
    const std::string& skip = a_first ? a.first : b.first;
    joins_[index_] = skip;
    ++skip_uses_[skip];
    return a_first ? b.second : a.second;
  }

  // Opens the residual blocks whose skip starts at `name`, now that the chain reaches it
  // (`name` by value: it may be base_, which materialize() reassigns).
  void open_blocks(const std::string name) {
    const auto it = skip_uses_.find(name);
    if (it == skip_uses_.end()) return;
    const int blocks = it->second;
    skip_uses_.erase(it);  // once, even if a malformed graph names the tensor twice
    materialize(name);  // the skip saves the polynomial's value, so it is a layer first
    for (int i = 0; i < blocks; ++i) {
      build([](Sequential& m) { m.residual_begin(); });
      open_.push_back(name);
    }
    last_affine_ = false;  // the begin sits between the conv / linear and anything folded into it
  }

  // y = branch + skip, where the skip must be the innermost open block's tensor (or,
  // for a projection shortcut, the input of its Conv).
  void residual_add(const std::string& skip) {
    inputs_between(2, 2);
    const auto proj = projections_.find(index_);
    const std::string& other = proj != projections_.end() ? proj->second.output : skip;
    const std::string& branch = input(0) == other ? input(1) : input(0);
    if (open_.empty()) unsupported("the skip input '" + skip + "' starts no open residual block");
    if (open_.back() != skip)
      unsupported("the skip input '" + skip + "' is not the innermost open residual block's (that is '" +
                  open_.back() + "'): residual blocks must nest");
    materialize(branch);
    if (proj == projections_.end()) {
      build([](Sequential& m) { m.residual_add(); });
    } else {
      const onnx::NodeProto* add = node_;
      ConvSpec c = projection_conv(proj->second);
      node_ = add;
      build([&](Sequential& m) { m.residual_add(c.out, c.kernel, c.stride, c.pad, std::move(c.weight), c.bias); });
    }
    open_.pop_back();
    layer_done(false);
  }

  // The projection's Conv, with its BatchNormalization folded in, on the skip's shape.
  ConvSpec projection_conv(const Projection& p) {
    const onnx::GraphProto& g = model_.graph();
    node_ = &g.node(static_cast<int>(p.conv));
    const TensorShape in = seq_->residual_input_shape();
    ConvSpec c = conv_spec(in, Padding{});
    if (c.bias.empty()) c.bias.assign(c.out, 0.0);
    if (p.bn) {
      node_ = &g.node(static_cast<int>(*p.bn));
      inputs_between(5, 5);
      if (attr_int("training_mode", 0) != 0) unsupported("training mode");
      const Affine a = batch_norm_affine(attr_float("epsilon", 1e-5), c.out);
      const size_t per = c.weight.size() / c.out;
      for (size_t o = 0; o < c.out; ++o) {
        for (size_t i = 0; i < per; ++i) c.weight[o * per + i] *= a.scale[o];
        c.bias[o] = c.bias[o] * a.scale[o] + a.shift[o];
      }
    }
    return c;
  }

  // ---- operators ----

  void visit(const onnx::NodeProto& n) {
    if (!n.domain().empty() && n.domain() != "ai.onnx") unsupported("operator domain '" + n.domain() + "'");
    const std::string& op = n.op_type();
    if (op == "Constant") return constant_node();
    if (op == "Identity" || op == "Dropout") return alias();
    if (op == "Pad") return pad();
    if ((op == "Add" || op == "Sum") && joins_.count(index_)) return residual_add(joins_.at(index_));
    if (op == "Sum") {
      if (n.input_size() != 2) unsupported("Sum of " + std::to_string(n.input_size()) + " inputs (two are supported)");
      return arithmetic("Add");
    }
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return arithmetic(op);
    if (op == "Pow") return power();
    if (op == "Neg") {
      inputs_between(1, 1);
      if (pending(input(0))) {
        const Affine neg = uniform_affine(-1, 0);
        return apply_affine(input(0), neg.scale, neg.shift);
      }
      exprs_[output()] = poly_scale(expr(input(0)), -1);
      return;
    }
    if (op == "Conv") return conv();
    if (op == "Gemm") return gemm();
    if (op == "MatMul") return matmul();
    if (op == "BatchNormalization") return batch_norm();
    if (op == "AveragePool") return average_pool();
    if (op == "GlobalAveragePool") return global_average_pool();
    if (op == "Flatten") return flatten();
    if (op == "Reshape") return reshape();
    if (op == "Relu" || op == "Sigmoid") return approximated_activation(op);
    unsupported("operator not supported on ciphertexts by the importer (include/veil/nn/onnx.hpp lists them)");
  }

  void constant_node() {
    Tensor t;
    if (const auto* a = attr("value")) {
      t = read_tensor(a->t());
    } else if (const auto* f = attr("value_float")) {
      t.values = {f->f()};
    } else if (const auto* fs = attr("value_floats")) {
      t.values.assign(fs->floats().begin(), fs->floats().end());
      t.dims = {static_cast<int64_t>(t.values.size())};
    } else if (const auto* i = attr("value_int")) {
      t.values = {static_cast<double>(i->i())};
    } else if (const auto* is = attr("value_ints")) {
      t.values.assign(is->ints().begin(), is->ints().end());
      t.dims = {static_cast<int64_t>(t.values.size())};
    } else {
      unsupported("Constant without a numeric value");
    }
    consts_[output()] = std::move(t);
  }

  void alias() {
    inputs_between(1, 3);
    if (is_const(input(0))) {
      consts_[output()] = consts_.at(input(0));
      return;
    }
    if (node_->op_type() == "Dropout" && attr_int("training_mode", 0) != 0) unsupported("training mode");
    pass_through(input(0));
  }

  void pad() {
    inputs_between(1, 4);
    std::vector<int64_t> pads = attr_ints("pads");  // opset < 11
    if (node_->input_size() >= 2 && !input(1).empty()) {
      // Strictly integral and in range before any conversion (a float 1e30 must not
      // reach an int64 cast, and 0.5 must not be truncated to 0).
      pads.clear();
      for (double v : constant(input(1)).values) {
        if (!std::isfinite(v) || v != std::trunc(v) || std::fabs(v) > 1e9)
          unsupported("pads must be integers, got " + std::to_string(v));
        pads.push_back(static_cast<int64_t>(v));
      }
    }
    bool zero = true;
    for (int64_t p : pads) zero = zero && p == 0;
    if (zero) {  // a no-op, whatever the mode
      pass_through(input(0));
      return;
    }
    padded_[output()] = {input(0), zero_padding(pads)};
  }

  // The height and width pads of a non-zero Pad, checked to be a zero padding that the
  // Conv / AveragePool reading it can take over.
  Padding zero_padding(const std::vector<int64_t>& pads) {
    const std::string mode = attr_string("mode");
    if (!mode.empty() && mode != "constant") unsupported("mode '" + mode + "' (only constant zero padding is supported)");
    bool value_zero = attr_float("value", 0) == 0;  // opset < 11
    if (node_->input_size() >= 3 && !input(2).empty()) {
      const Tensor& v = constant(input(2));
      value_zero = v.size() == 1 && v.values[0] == 0;
    }
    if (!value_zero) unsupported("the pad value must be 0");
    if (node_->input_size() >= 4 && !input(3).empty()) unsupported("the axes input is not supported");
    materialize(input(0));  // the tensor the Conv / AveragePool will read
    if (seq_->output_shape().flat) unsupported("padding is supported on images only (before Flatten)");
    const size_t rank = rank_;
    if (pads.size() != 2 * rank)
      unsupported("pads must hold " + std::to_string(2 * rank) + " values, got " + std::to_string(pads.size()));
    for (size_t i = 0; i + 2 < rank; ++i)
      if (pads[i] != 0 || pads[rank + i] != 0) unsupported("only the height and width can be padded");
    for (int64_t p : pads)
      if (p < 0 || p > kMaxSide) unsupported("pads must be in [0, 2^20] (no cropping), got " + std::to_string(p));
    auto at = [&](size_t i) { return static_cast<size_t>(pads[i]); };
    return Padding{at(rank - 2), at(rank - 1), at(2 * rank - 2), at(2 * rank - 1)};
  }

  // The padding of a Pad folded into the Conv / AveragePool that reads `name` (none if
  // `name` is no Pad output); the data it pads becomes the base.
  Padding folded_pad(const std::string& name) {
    auto it = padded_.find(name);
    if (it == padded_.end()) {
      materialize(name);
      return {};
    }
    const auto [data, pad] = it->second;
    materialize(data);
    return pad;
  }

  void arithmetic(const std::string& op) {
    inputs_between(2, 2);
    const bool c0 = is_const(input(0)), c1 = is_const(input(1));
    if (c0 && c1) unsupported("both operands are constants (fold them before export)");
    const std::string& data = c0 ? input(1) : input(0);
    if (c0 || c1) {
      const Tensor& c = constant(c0 ? input(0) : input(1));
      // A scalar joins a pending per-channel map rather than start a polynomial of it.
      if (c.size() == 1 && !pending(data)) return scalar_arithmetic(op, data, c.values[0], c0);
      return feature_arithmetic(op, data, c, c0);
    }
    build_affine(input(0));  // both first: building one makes it the base
    build_affine(input(1));
    const Poly a = expr(input(0)), b = expr(input(1));
    Poly r;
    if (op == "Add") r = poly_add(a, b);
    else if (op == "Sub") r = poly_add(a, b, -1);
    else if (op == "Mul") r = poly_mul(a, b);
    else unsupported("division by a tensor that depends on the input");
    if (degree(r) > kMaxPolynomialDegree) unsupported("polynomial of degree " + std::to_string(degree(r)));
    exprs_[output()] = r;
  }

  // data (op) s, or s (op) data when const_first.
  void scalar_arithmetic(const std::string& op, const std::string& data, double s, bool const_first) {
    if (!std::isfinite(s)) unsupported("non-finite constant");
    const Poly& p = expr(data);
    Poly r;
    if (op == "Add") r = poly_add(p, Poly{s});
    else if (op == "Sub") r = const_first ? poly_add(Poly{s}, p, -1) : poly_add(p, Poly{s}, -1);
    else if (op == "Mul") r = poly_scale(p, s);
    else if (const_first) unsupported("division by a tensor that depends on the input");
    else if (s == 0) unsupported("division by zero");
    else r = poly_scale(p, 1.0 / s);
    exprs_[output()] = r;
  }

  // Per-channel / per-feature constants (or a scalar on a pending map): an affine map.
  void feature_arithmetic(const std::string& op, const std::string& data, const Tensor& c, bool const_first) {
    if (!pending(data)) expr(data);  // refuses a tensor off the chain before its shape is compared
    const auto v = c.size() == 1 ? std::optional(std::vector<double>(features(), c.values[0])) : per_feature(c);
    if (!v) unsupported("constant of shape not broadcast per channel / feature of the data");
    const size_t f = v->size();
    std::vector<double> gamma(f, 1.0), beta(f, 0.0);
    for (size_t i = 0; i < f; ++i) {
      const double x = (*v)[i];
      if (!std::isfinite(x)) unsupported("non-finite constant");
      if (op == "Add") beta[i] = x;
      else if (op == "Sub") (const_first ? (gamma[i] = -1, beta[i] = x) : beta[i] = -x);
      else if (op == "Mul") gamma[i] = x;
      else if (const_first || x == 0) unsupported("division by a tensor or by zero");
      else gamma[i] = 1.0 / x;
    }
    apply_affine(data, gamma, beta);
  }

  void power() {
    inputs_between(2, 2);
    const Tensor& e = constant(input(1));
    if (e.size() != 1) unsupported("exponent must be a scalar");
    const double k = e.values[0];
    if (k != std::floor(k) || k < 1 || k > kMaxPolynomialDegree) unsupported("exponent must be an integer 1 .. 63");
    const Poly& p = expr(input(0));
    Poly r = p;
    for (int i = 1; i < static_cast<int>(k); ++i) {
      r = poly_mul(r, p);
      if (degree(r) > kMaxPolynomialDegree) unsupported("polynomial of degree > 63");
    }
    exprs_[output()] = r;
  }

  // ---- Conv and AveragePool windows ----

  size_t attr_stride() const {
    const auto s = attr_ints("strides");
    if (s.empty()) return 1;
    if (s.size() != 2 || s[0] != s[1]) unsupported("strides must be 2 equal values");
    if (s[0] < 1 || s[0] > kMaxSide) unsupported("stride must be in [1, 2^20], got " + std::to_string(s[0]));
    return static_cast<size_t>(s[0]);
  }
  void check_dilations() const {
    for (int64_t d : attr_ints("dilations"))
      if (d != 1) unsupported("dilations must be 1, got " + std::to_string(d));
  }
  // auto_pad SAME_*: as many output pixels as ceil(in / stride), the odd padding pixel
  // at the end (SAME_UPPER) or at the beginning (SAME_LOWER), as the ONNX spec says.
  static std::pair<size_t, size_t> same_pads(size_t in, size_t k, size_t stride, bool upper) {
    const size_t out = (in + stride - 1) / stride, need = (out - 1) * stride + k;
    const size_t total = need > in ? need - in : 0, half = total / 2;
    return upper ? std::pair{half, total - half} : std::pair{total - half, half};
  }
  // The node's own padding (pads or auto_pad) for a kernel k on an h x w input.
  Padding attr_padding(size_t k, size_t stride, size_t h, size_t w) const {
    const std::string mode = attr_string("auto_pad");
    const auto pads = attr_ints("pads");
    if (mode.empty() || mode == "NOTSET") {
      if (pads.empty()) return {};
      if (pads.size() != 4) unsupported("pads must hold 4 values (top, left, bottom, right)");
      for (int64_t p : pads)
        if (p < 0 || p >= static_cast<int64_t>(k))
          unsupported("pads must be in [0, kernel - 1 = " + std::to_string(k - 1) + "], got " + std::to_string(p));
      auto at = [&](size_t i) { return static_cast<size_t>(pads[i]); };
      return Padding{at(0), at(1), at(2), at(3)};
    }
    for (int64_t p : pads)
      if (p != 0) unsupported("pads given together with auto_pad " + mode);
    if (mode == "VALID") return {};
    if (mode != "SAME_UPPER" && mode != "SAME_LOWER") unsupported("auto_pad '" + mode + "'");
    const auto [top, bottom] = same_pads(h, k, stride, mode == "SAME_UPPER");
    const auto [left, right] = same_pads(w, k, stride, mode == "SAME_UPPER");
    return Padding{top, left, bottom, right};
  }
  // A folded Pad's padding plus the node's own (auto_pad sees the padded input).
  Padding window_padding(const Padding& pre, const Padding& own, size_t k) const {
    const Padding p{pre.top + own.top, pre.left + own.left, pre.bottom + own.bottom, pre.right + own.right};
    if (p.top >= k || p.left >= k || p.bottom >= k || p.right >= k)
      unsupported("the padding (" + std::to_string(p.top) + ", " + std::to_string(p.left) + ", " +
                  std::to_string(p.bottom) + ", " + std::to_string(p.right) + " with the Pad before it) must be " +
                  "smaller than the kernel " + std::to_string(k) + " on every side");
    return p;
  }
  Padding own_padding(const Padding& pre, size_t k, size_t stride) const {
    const TensorShape s = seq_->output_shape();
    return attr_padding(k, stride, s.height + pre.top + pre.bottom, s.width + pre.left + pre.right);
  }
  // The data a Conv / AveragePool reads must be an image.
  void need_spatial() const {
    if (seq_->output_shape().flat) invalid("the input is a flat vector (after Flatten), not an image");
  }

  // The current Conv node on an input of shape `in` (after a folded Pad of `pre`).
  ConvSpec conv_spec(const TensorShape& in_shape, const Padding& pre) const {
    inputs_between(2, 3);
    const int64_t group = attr_int("group", 1);
    if (group < 1) unsupported("group must be >= 1, got " + std::to_string(group));
    check_dilations();
    if (in_shape.flat) invalid("the input is a flat vector (after Flatten), not an image");
    const Tensor& w = constant(input(1));
    if (w.dims.size() != 4) unsupported("weight must be 4-D [out, in / group, kernel, kernel]");
    if (w.dims[2] != w.dims[3]) unsupported("kernel must be square");
    const size_t out = static_cast<size_t>(w.dims[0]), in = static_cast<size_t>(w.dims[1]);
    const size_t k = static_cast<size_t>(w.dims[2]), channels = in_shape.channels;
    const size_t groups = static_cast<size_t>(group);
    if (channels % groups != 0 || out % groups != 0)
      unsupported("group " + std::to_string(group) + " must divide the input channels (" + std::to_string(channels) +
                  ") and the output channels (" + std::to_string(out) + ")");
    if (in != channels / groups)
      invalid("the weight has " + std::to_string(in) + " input channels" + (groups > 1 ? " per group" : "") +
              ", the data has " + std::to_string(channels) +
              (groups > 1 ? " (" + std::to_string(channels / groups) + " per group)" : std::string{}));
    if (k < 1) invalid("the kernel is empty");
    const auto ks = attr_ints("kernel_shape");
    if (!ks.empty() && (ks.size() != 2 || ks[0] != w.dims[2] || ks[1] != w.dims[3]))
      unsupported("kernel_shape does not match the weight");
    ConvSpec c;
    c.out = out, c.kernel = k, c.stride = attr_stride();
    const Padding own =
        attr_padding(k, c.stride, in_shape.height + pre.top + pre.bottom, in_shape.width + pre.left + pre.right);
    c.pad = window_padding(pre, own, k);
    if (node_->input_size() == 3 && !input(2).empty()) c.bias = constant(input(2)).values;
    c.weight = groups == 1 ? w.values : dense_weight(w, groups, channels);
    return c;
  }

  void conv() {
    inputs_between(2, 3);
    const Padding pre = folded_pad(input(0));
    need_spatial();
    ConvSpec c = conv_spec(seq_->output_shape(), pre);
    build([&](Sequential& m) { m.conv2d(c.out, c.kernel, c.stride, c.pad, std::move(c.weight), c.bias); });
    layer_done(true);
  }

  // A grouped Conv's weight [out][in / groups][k][k] as Sequential's dense [out][in][k][k]:
  // output channel o reads only its group's inputs, zeros elsewhere (the encrypted conv
  // skips zero plaintexts, so a depthwise conv stays cheap).
  std::vector<double> dense_weight(const Tensor& w, size_t groups, size_t in) const {
    const size_t out = static_cast<size_t>(w.dims[0]), kk = static_cast<size_t>(w.dims[2] * w.dims[3]);
    if (out * in > kMaxDenseConv / kk)  // out, in <= 2^28 and kk <= 2^52: no product wraps
      unsupported("the grouped convolution's dense weight would hold " + std::to_string(out) + " x " +
                  std::to_string(in) + " x " + std::to_string(kk) + " values, over the limit of 2^26");
    const size_t per_in = in / groups, per_out = out / groups;
    std::vector<double> dense(out * in * kk, 0.0);
    for (size_t o = 0; o < out; ++o) {
      const size_t first = (o / per_out) * per_in;  // the group's first input channel
      for (size_t j = 0; j < per_in; ++j)
        std::copy_n(w.values.begin() + static_cast<std::ptrdiff_t>((o * per_in + j) * kk), kk,
                    dense.begin() + static_cast<std::ptrdiff_t>((o * in + first + j) * kk));
    }
    return dense;
  }

  // A weight matrix of out x in that fits the data: in is the features the data has
  // (so no size is taken from the matrix alone), out is at least one, and the
  // tensor holds exactly out * in values (the product cannot wrap: both are bounded).
  void check_matrix(size_t out, size_t in, const Tensor& b) {
    if (!seq_->output_shape().flat) return;  // Sequential::linear refuses it, naming the layer
    const size_t features = seq_->output_shape().size();
    if (in != features)
      unsupported("the matrix has " + std::to_string(in) + " rows, the data has " + std::to_string(features) +
                  " features");
    if (out < 1 || out > (size_t{1} << 20)) unsupported("the matrix must have 1 .. 2^20 output features");
    if (b.size() != out * in) bad_file("the matrix holds " + std::to_string(b.size()) + " values, not " +
                                       std::to_string(out) + " x " + std::to_string(in));
  }

  void gemm() {
    inputs_between(2, 3);
    materialize(input(0));
    // transA = 1: A is the data as a column [K, 1] (a Reshape to (-1, 1)), so A^T B is
    // the same map of its K values as a row's A B.
    const int64_t trans_a = attr_int("transA", 0);
    if (trans_a != 0 && trans_a != 1) unsupported("transA must be 0 or 1");
    if ((trans_a == 1) != column_)
      unsupported(trans_a == 1 ? "transA = 1 needs the data as a column [K, 1] (a Reshape to (-1, 1) before it)"
                               : "the data is a column [K, 1]: a Gemm needs transA = 1 to read it");
    const bool trans_b = attr_int("transB", 0) != 0;
    const double alpha = attr_float("alpha", 1.0), beta = attr_float("beta", 1.0);
    const Tensor& b = constant(input(1));
    if (b.dims.size() != 2) unsupported("B must be a 2-D constant");
    const size_t out = static_cast<size_t>(trans_b ? b.dims[0] : b.dims[1]);
    const size_t in = static_cast<size_t>(trans_b ? b.dims[1] : b.dims[0]);
    check_matrix(out, in, b);
    std::vector<double> w(out * in);
    for (size_t o = 0; o < out; ++o)
      for (size_t i = 0; i < in; ++i) w[o * in + i] = alpha * (trans_b ? b.values[o * in + i] : b.values[i * out + o]);
    std::vector<double> bias;
    if (node_->input_size() == 3 && !input(2).empty()) {
      const Tensor& c = constant(input(2));
      if (c.size() != out && c.size() != 1) unsupported("C must have one value per output feature");
      bias.resize(out);
      for (size_t o = 0; o < out; ++o) bias[o] = beta * c.values[c.size() == 1 ? 0 : o];
    }
    build([&](Sequential& m) { m.linear(out, std::move(w), std::move(bias)); });
    layer_done(true);
  }

  void matmul() {
    inputs_between(2, 2);
    if (is_const(input(0))) unsupported("constant times data is not supported (data must come first)");
    if (column_) unsupported("the data is a column [K, 1]: MatMul needs it as a row (use Gemm with transA = 1)");
    materialize(input(0));
    const Tensor& b = constant(input(1));
    if (b.dims.size() != 2) unsupported("the matrix must be a 2-D constant");
    const size_t in = static_cast<size_t>(b.dims[0]), out = static_cast<size_t>(b.dims[1]);
    check_matrix(out, in, b);
    std::vector<double> w(out * in);
    for (size_t o = 0; o < out; ++o)
      for (size_t i = 0; i < in; ++i) w[o * in + i] = b.values[i * out + o];
    build([&](Sequential& m) { m.linear(out, std::move(w)); });
    layer_done(true);
  }

  void batch_norm() {
    inputs_between(5, 5);
    if (node_->output_size() > 1)
      for (int i = 1; i < node_->output_size(); ++i)
        if (!node_->output(i).empty()) unsupported("training-mode outputs");
    if (attr_int("training_mode", 0) != 0) unsupported("training mode");
    if (attr_int("spatial", 1) != 1) unsupported("spatial = 0");
    if (!pending(input(0))) expr(input(0));  // refuses a tensor off the chain first
    if (!seq_->output_shape().flat && rank_ == 3)
      unsupported("BatchNormalization of a [C, H, W] tensor (ONNX normalizes dimension 1, here H): export the "
                  "model with a batch dimension");
    const double eps = attr_float("epsilon", 1e-5);
    if (last_affine_ && !pending(input(0))) {
      materialize(input(0));
      if (last_affine_) {  // folded into the conv2d / linear, which checks the parameters
        build([&](Sequential& m) {
          m.batch_norm(constant(input(1)).values, constant(input(2)).values, constant(input(3)).values,
                       constant(input(4)).values, eps);
        });
        layer_done(true);
        return;
      }
    }
    const Affine a = batch_norm_affine(eps);
    apply_affine(input(0), a.scale, a.shift);
  }

  // Inference BatchNormalization as y = scale * x + shift per channel (feature):
  // scale = gamma / sqrt(var + eps), shift = beta - mean * scale.
  Affine batch_norm_affine(double eps) const { return batch_norm_affine(eps, features()); }
  Affine batch_norm_affine(double eps, size_t f) const {
    Affine a{std::vector<double>(f), std::vector<double>(f)};
    const Tensor *gamma = &constant(input(1)), *beta = &constant(input(2)), *mean = &constant(input(3)),
                 *var = &constant(input(4));
    for (const Tensor* t : {gamma, beta, mean, var})
      if (t->size() != f)
        invalid("scale, B, mean and var need " + std::to_string(f) + " values (one per " +
                (seq_->output_shape().flat ? "feature" : "channel") + "), got " + std::to_string(t->size()));
    if (!std::isfinite(eps)) invalid("epsilon must be finite");
    for (size_t c = 0; c < f; ++c) {
      const double v = var->values[c] + eps;
      if (!(v > 0) || !std::isfinite(v)) invalid("var + epsilon must be finite and > 0 (channel " + std::to_string(c) + ")");
      a.scale[c] = gamma->values[c] / std::sqrt(v);
      a.shift[c] = beta->values[c] - mean->values[c] * a.scale[c];
      if (!std::isfinite(a.scale[c]) || !std::isfinite(a.shift[c]))
        invalid("the parameters must be finite (channel " + std::to_string(c) + ")");
    }
    return a;
  }

  void average_pool() {
    inputs_between(1, 1);
    if (attr_int("ceil_mode", 0) != 0) unsupported("ceil_mode 1 is not supported (floor mode only)");
    check_dilations();
    const Padding pre = folded_pad(input(0));
    need_spatial();
    const auto ks = attr_ints("kernel_shape");
    if (ks.size() != 2 || ks[0] != ks[1]) unsupported("kernel_shape must be square (2 equal values)");
    if (ks[0] < 1 || ks[0] > kMaxSide) unsupported("kernel size must be in [1, 2^20], got " + std::to_string(ks[0]));
    const size_t k = static_cast<size_t>(ks[0]), stride = attr_stride();
    const Padding own = own_padding(pre, k, stride), pad = window_padding(pre, own, k);
    bool count_pad = attr_int("count_include_pad", 0) != 0;  // ONNX's default: 0
    if (!pre.none()) {  // the Pad's zeros are data to the pool: they count
      if (!own.none() && !count_pad)
        unsupported("a Pad before an AveragePool with its own pads and count_include_pad 0 cannot be folded "
                    "(the Pad's zeros count, the pool's own do not)");
      count_pad = true;
    }
    build([&](Sequential& m) { m.avg_pool2d(k, stride, pad, count_pad); });
    layer_done(false);
  }

  void global_average_pool() {
    inputs_between(1, 1);
    materialize(input(0));
    need_spatial();
    build([](Sequential& m) { m.global_avg_pool(); });
    layer_done(false);
  }

  void flatten() {
    inputs_between(1, 1);
    // To (1 or batch, features): axis 1 of [batch, C, H, W] and of vectors, axis 0 of [C, H, W].
    const bool flat = seq_->output_shape().flat;
    const int64_t rank = flat ? 2 : static_cast<int64_t>(rank_);
    int64_t axis = attr_int("axis", 1);
    if (axis < 0) axis += rank;
    const int64_t want = flat ? 1 : rank - 3;
    if (axis != want)
      unsupported("axis must be " + std::to_string(want) + " (to one vector of features per input)");
    to_flat();
  }

  void reshape() {
    inputs_between(2, 2);
    const Tensor& shape = constant(input(1));
    const TensorShape s = seq_->output_shape();
    // 0 copies the input's first dimension: the batch, or C of a [C, H, W] input.
    const bool zero_ok = s.flat || rank_ == 4 || s.channels == 1;
    bool ok = shape.size() == 2;
    if (ok) {
      const double d0 = shape.values[0], d1 = shape.values[1];
      ok = (d0 == 1 || d0 == -1 || (d0 == 0 && zero_ok)) && (d1 == -1 || d1 == static_cast<double>(s.size())) &&
           !(d0 == -1 && d1 == -1);
    }
    // (features, 1): the column a Gemm with transA = 1 reads.
    const bool column = !ok && shape.size() == 2 && shape.values[1] == 1 &&
                        (shape.values[0] == -1 || shape.values[0] == static_cast<double>(s.size()));
    if (!ok && !column) unsupported("only a reshape to (batch, features) or (features, 1) is supported");
    to_flat();
    column_ = column && s.size() > 1;
  }

  void to_flat() {
    if (seq_->output_shape().flat) {  // already a vector: nothing to do
      pass_through(input(0));
      return;
    }
    materialize(input(0));
    build([](Sequential& m) { m.flatten(); });
    layer_done(false);
  }

  void approximated_activation(const std::string& op) {
    inputs_between(1, 1);
    if (options_.activation_bound <= 0)
      unsupported(op + " cannot be evaluated on ciphertexts: replace it with a polynomial (x * x, or a Chebyshev "
                       "approximation, docs/nn_activations.md), or set OnnxImportOptions::activation_bound");
    materialize(input(0));
    const Approximation a = op == "Relu" ? relu_approximation(options_.activation_bound, options_.activation_degree)
                                         : sigmoid_approximation(options_.activation_bound, options_.activation_degree);
    build([&](Sequential& m) { m.activation(a.poly); });
    layer_done(false);
  }

  const onnx::ModelProto& model_;
  const OnnxImportOptions& options_;
  std::map<std::string, Tensor> consts_;
  std::map<std::string, Poly> exprs_;
  std::map<std::string, Affine> affines_;  // tensors that are a per-channel affine map of the base
  // Outputs of non-zero Pad nodes: the padded data and the padding, for the next Conv / AveragePool.
  std::map<std::string, std::pair<std::string, Padding>> padded_;
  size_t rank_ = 4;  // of the image tensors: 4 ([batch, C, H, W]) or 3 ([C, H, W])
  std::optional<Sequential> seq_;
  std::string base_;
  bool last_affine_ = false;  // the base is the output of a conv2d / linear (affine folds allowed)
  bool column_ = false;       // the flat base is a column [K, 1] (Reshape to (-1, 1)), for Gemm transA
  size_t index_ = 0;
  const onnx::NodeProto* node_ = nullptr;
  std::map<size_t, std::string> joins_;   // node index of a residual Add -> its skip input
  // Projection shortcuts (find_projections): node index of the Add -> its skip path;
  // the walk leaves the path's nodes (deferred_) to the Add.
  std::map<size_t, Projection> projections_;
  std::set<size_t> deferred_;
  std::map<std::string, int> skip_uses_;  // skip tensor -> blocks that start there (not yet opened)
  std::vector<std::string> open_;         // the open blocks' skip tensors, innermost last
};

}  // namespace

bool onnx_import_available() { return true; }

Sequential import_onnx_bytes(std::string_view bytes, const OnnxImportOptions& options) {
  if (bytes.size() > options.max_file_bytes)
    bad_file("model of " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
             std::to_string(options.max_file_bytes));
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) bad_file("model too large for protobuf");
  onnx::ModelProto model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    bad_file("the data is not an ONNX model (protobuf parse failed)");
  if (!model.has_graph()) bad_file("the model has no graph");
  return Importer(model, options).run();
}

Sequential import_onnx(const std::string& path, const OnnxImportOptions& options) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) bad_file("cannot open '" + path + "'");
  const std::streamoff size = in.tellg();
  if (size < 0) bad_file("cannot read '" + path + "'");
  if (static_cast<uint64_t>(size) > options.max_file_bytes)
    bad_file("'" + path + "' has " + std::to_string(size) + " bytes, over the limit of " +
             std::to_string(options.max_file_bytes));
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) bad_file("cannot read '" + path + "'");
  return import_onnx_bytes(bytes, options);
}

}  // namespace veil::nn

#endif
