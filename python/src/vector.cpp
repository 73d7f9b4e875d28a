// veil.Vector: arithmetic with vectors, numpy arrays and scalars, polynomials, vector x
// matrix, rotations, the im2col convolution and pack_vectors.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cmath>

#include "common.hpp"
#include "veil/nn/conv.hpp"
#include "veil/nn/linear.hpp"
#include "veil/nn/pack.hpp"
#include "veil/nn/polynomial.hpp"

using namespace nb::literals;

namespace vpy {
namespace {

PyVector like(const PyVector& a, veil::Ciphertext ct) {
  PyVector r;
  r.s = a.s;
  r.ct = std::move(ct);
  r.size = a.size;
  r.period = a.period;
  r.clean = a.clean || a.size == a.period;
  return r;
}

void same_context(const PyVector& a, const PyVector& b) {
  if (a.ct.context()->id() != b.ct.context()->id())
    throw veil::Error(veil::ErrorCode::ContextMismatch,
                      "the vectors belong to different contexts (link one with Vector.link(context))");
}

void same_size(const PyVector& a, const PyVector& b, const char* op) {
  if (a.size != b.size)
    throw nb::value_error((std::string(op) + ": sizes differ (" + std::to_string(a.size) + " and " +
                           std::to_string(b.size) + ")").c_str());
}

// Brings x to scale `target` exactly: multiplied by 1 encoded at the scale that makes
// its rescale land on `target` (one level).
void adjust_scale(const CtxState& s, veil::Ciphertext& x, double target) {
  if (x.level() == 0)
    throw veil::Error(veil::ErrorCode::LevelMismatch, "the operands' scales differ and no level is left to match them");
  const double q = static_cast<double>(s.ctx->params().q()[x.level()]);
  const veil::Plaintext one = s.enc->encode_constant(1.0, target * q / x.scale(), static_cast<int>(x.level()));
  x = s.eval->rescale(s.eval->multiply_plain(x, one));
  x.set_scale(target);  // equal up to the rounding of the double products
}

bool same_scale(double a, double b) { return std::fabs(a / b - 1) < std::ldexp(1.0, -40); }

// Brings a and b to one scale (the evaluator needs equal scales for add/sub): the
// operand at the higher level (a when equal) is adjusted to the other's scale.
void match_scales(const CtxState& s, veil::Ciphertext& a, veil::Ciphertext& b) {
  if (same_scale(a.scale(), b.scale())) return;
  if (a.level() >= b.level())
    adjust_scale(s, a, b.scale());
  else
    adjust_scale(s, b, a.scale());
}

enum class Op { Add, Sub, Mul };

PyVector vec_vec(const PyVector& a, const PyVector& b, Op op) {
  same_context(a, b);
  same_size(a, b, op == Op::Mul ? "mul" : op == Op::Add ? "add" : "sub");
  PyVector r;
  r.s = a.s;
  r.size = a.size;
  r.period = std::max(a.period, b.period);
  nb::gil_scoped_release release;
  const CtxState& s = *a.s;
  if (op == Op::Mul) {
    if (s.keys->rk.key.empty())
      throw veil::Error(veil::ErrorCode::MissingKey, "vector x vector needs the relinearization key");
    r.ct = s.eval->relinearize_rescale(s.eval->multiply_no_relin(a.ct, b.ct), s.keys->rk);
    r.clean = a.clean || b.clean;
  } else {
    veil::Ciphertext x = a.ct, y = b.ct;
    match_scales(s, x, y);
    r.ct = op == Op::Add ? s.eval->add(x, y) : s.eval->sub(x, y);
    r.clean = a.clean && b.clean;
  }
  if (r.size == r.period) r.clean = true;
  return r;
}

PyVector vec_plain(const PyVector& a, const std::vector<double>& x, Op op) {
  if (x.size() != a.size)
    throw nb::value_error(("the array has " + std::to_string(x.size()) + " values, the vector " +
                           std::to_string(a.size)).c_str());
  const CtxState& s = *a.s;
  const std::vector<double> slots = veil::nn::LinearLayer::layout(x, a.period, s.slots());
  nb::gil_scoped_release release;
  const int level = static_cast<int>(a.ct.level());
  if (op == Op::Mul) {
    const double q = static_cast<double>(s.ctx->params().q()[a.ct.level()]);
    PyVector r = like(a, s.eval->rescale(s.eval->multiply_plain(a.ct, s.enc->encode(slots, q, level))));
    r.clean = true;
    return r;
  }
  const veil::Plaintext pt = s.enc->encode(slots, a.ct.scale(), level);
  return like(a, op == Op::Add ? s.eval->add_plain(a.ct, pt) : s.eval->sub_plain(a.ct, pt));
}

PyVector vec_scalar(const PyVector& a, double c, Op op) {
  if (!std::isfinite(c)) throw nb::value_error("the scalar is not finite");
  const CtxState& s = *a.s;
  nb::gil_scoped_release release;
  if (op == Op::Mul) return like(a, s.eval->rescale(s.eval->multiply_scalar(a.ct, c)));
  PyVector r = like(a, s.eval->add_scalar(a.ct, op == Op::Add ? c : -c));
  if (c != 0 && r.size != r.period) r.clean = false;
  return r;
}

bool is_scalar(nb::handle h) {
  if (PyFloat_Check(h.ptr()) || PyLong_Check(h.ptr())) return !PyBool_Check(h.ptr());
  return nb::hasattr(h, "ndim") && nb::hasattr(h, "dtype") && nb::cast<int>(h.attr("ndim")) == 0;
}

nb::object binary(const PyVector& a, nb::handle other, Op op) {
  if (nb::isinstance<PyVector>(other)) return nb::cast(vec_vec(a, nb::cast<const PyVector&>(other), op));
  if (is_scalar(other)) return nb::cast(vec_scalar(a, nb::cast<double>(nb::float_(other)), op));
  if (PySequence_Check(other.ptr()) || nb::hasattr(other, "__array__") || nb::hasattr(other, "detach"))
    return nb::cast(vec_plain(a, to_doubles(other, "operand"), op));
  return nb::borrow(Py_NotImplemented);
}

PyVector negate(const PyVector& a) {
  nb::gil_scoped_release release;
  return like(a, a.s->eval->negate(a.ct));
}

PyVector rotate(const PyVector& a, int64_t steps) {
  const int64_t p = static_cast<int64_t>(a.period);
  const int64_t k = ((steps % p) + p) % p;
  PyVector r = like(a, a.ct);
  if (k == 0) return r;
  nb::gil_scoped_release release;
  ensure_galois_steps(*a.s, {k});
  std::shared_lock lock(a.s->keys->mutex);
  r.ct = a.s->eval->rotate(a.ct, k, a.s->keys->gk);
  r.clean = r.size == r.period;
  return r;
}

PyVector masked(const PyVector& a) {
  if (a.clean || a.size == a.period) return like(a, a.ct);
  std::vector<double> mask(a.period, 0.0);
  std::fill(mask.begin(), mask.begin() + static_cast<std::ptrdiff_t>(a.size), 1.0);
  const CtxState& s = *a.s;
  const std::vector<double> slots = veil::nn::LinearLayer::layout(mask, a.period, s.slots());
  const double q = static_cast<double>(s.ctx->params().q()[a.ct.level()]);
  PyVector r =
      like(a, s.eval->rescale(s.eval->multiply_plain(a.ct, s.enc->encode(slots, q, static_cast<int>(a.ct.level())))));
  r.clean = true;
  return r;
}

PyVector sum(const PyVector& a) {
  nb::gil_scoped_release release;
  PyVector m = masked(a);
  std::vector<int64_t> steps;
  for (size_t k = 1; k < a.period; k <<= 1) steps.push_back(static_cast<int64_t>(k));
  ensure_galois_steps(*a.s, steps);
  std::shared_lock lock(a.s->keys->mutex);
  veil::Ciphertext ct = m.ct;
  for (int64_t k : steps) ct = a.s->eval->add(ct, a.s->eval->rotate(ct, k, a.s->keys->gk));
  PyVector r = like(a, std::move(ct));
  r.size = 1;
  r.period = 1;
  r.clean = true;
  return r;
}

PyVector polyval(const PyVector& a, const std::vector<double>& coeffs, double lo, double hi) {
  if (coeffs.empty()) throw nb::value_error("polyval: no coefficients");
  for (double c : coeffs)
    if (!std::isfinite(c)) throw nb::value_error("polyval: non-finite coefficient");
  nb::gil_scoped_release release;
  const veil::nn::Polynomial p = veil::nn::Polynomial::from_power(coeffs, lo, hi);
  if (static_cast<int>(a.ct.level()) < p.depth())
    throw veil::Error(veil::ErrorCode::LevelMismatch,
                      "polyval: a degree-" + std::to_string(p.degree()) + " polynomial on [" + std::to_string(lo) +
                          ", " + std::to_string(hi) + "] needs " + std::to_string(p.depth()) +
                          " levels, the vector has " + std::to_string(a.ct.level()) + " left");
  if (p.degree() >= 2 && a.s->keys->rk.key.empty())
    throw veil::Error(veil::ErrorCode::MissingKey, "polyval needs the relinearization key");
  PyVector r = like(a, veil::nn::evaluate(*a.s->eval, a.ct, p, a.s->keys->rk));
  r.clean = (a.clean && coeffs[0] == 0) || r.size == r.period;
  return r;
}

// x @ M with M of shape (size, out): LinearLayer with block d = max(block_size, period)
// and the weights transposed and zero-padded to d columns.
PyVector mm(const PyVector& a, nb::handle matrix, nb::handle bias_obj) {
  size_t in = 0, out = 0;
  const std::vector<double> m = to_matrix(matrix, "mm: matrix", in, out);
  if (in != a.size)
    throw nb::value_error(("mm: the matrix has " + std::to_string(in) + " rows, the vector " +
                           std::to_string(a.size) + " values (x @ M needs M of shape (size, out))").c_str());
  std::vector<double> bias;
  if (!bias_obj.is_none()) bias = to_doubles(bias_obj, "mm: bias", out, out);
  const CtxState& s = *a.s;
  const size_t d = std::max(veil::nn::LinearLayer::block_size(out, in), a.period);
  if (d > s.slots())
    throw nb::value_error(("mm: block of " + std::to_string(d) + " slots exceeds the " + std::to_string(s.slots()) +
                           " slots").c_str());
  std::vector<double> w(out * d, 0.0);
  for (size_t c = 0; c < in; ++c)
    for (size_t r = 0; r < out; ++r) w[r * d + c] = m[c * out + r];
  nb::gil_scoped_release release;
  if (a.ct.level() < 1) throw veil::Error(veil::ErrorCode::LevelMismatch, "mm: the vector has no level left");
  const veil::nn::LinearLayer layer(s.ctx, w, out, d, bias, static_cast<int>(a.ct.level()), a.ct.scale());
  ensure_galois_steps(s, layer.rotation_steps());
  std::shared_lock lock(s.keys->mutex);
  PyVector r = like(a, layer.apply(*s.eval, a.ct, s.keys->gk));
  r.size = out;
  r.period = layer.block();
  r.clean = true;
  return r;
}

nb::object conv2d_im2col(const PyVector& a, nb::handle kernel, size_t windows, nb::handle bias_obj) {
  if (!a.im2col) throw nb::value_error("conv2d_im2col: the vector was not made by Context.im2col_encode");
  const Im2colInfo& g = *a.im2col;
  nb::module_ np = nb::module_::import_("numpy");
  nb::object karr = np.attr("asarray")(kernel, "dtype"_a = "float64");
  const int ndim = nb::cast<int>(karr.attr("ndim"));
  if (ndim != 2 && ndim != 3) throw nb::value_error("conv2d_im2col: kernel must be (k, k) or (channels, k, k)");
  const size_t channels = ndim == 3 ? nb::cast<size_t>(karr.attr("shape")[0]) : 1;
  const std::vector<double> k = to_doubles(karr, "conv2d_im2col: kernel", 1);
  if (k.size() != channels * g.kernel * g.kernel)
    throw nb::value_error(("conv2d_im2col: the kernel must be " + std::to_string(g.kernel) + " x " +
                           std::to_string(g.kernel) + " (the im2col_encode kernel_size)").c_str());
  std::vector<double> bias;
  if (!bias_obj.is_none()) bias = to_doubles(bias_obj, "conv2d_im2col: bias", channels, channels);
  std::vector<PyVector> outs;
  {
    nb::gil_scoped_release release;
    const CtxState& s = *a.s;
    const veil::nn::Conv2dIm2col conv(s.ctx, g.height, g.width, g.kernel, g.stride, k, channels, bias,
                                      static_cast<int>(a.ct.level()), a.ct.scale());
    if (windows != conv.windows())
      throw veil::Error(veil::ErrorCode::InvalidArgument,
                        "conv2d_im2col: windows = " + std::to_string(windows) + ", the encoding has " +
                            std::to_string(conv.windows()));
    ensure_galois_steps(s, conv.rotation_steps());
    std::shared_lock lock(s.keys->mutex);
    for (auto& ct : conv.apply(*s.eval, a.ct, s.keys->gk)) {
      PyVector r = like(a, std::move(ct));
      r.im2col.reset();
      r.size = windows;
      r.period = conv.window_block();
      r.clean = bias.empty() || r.size == r.period;
      outs.push_back(std::move(r));
    }
  }
  if (ndim == 2) return nb::cast(std::move(outs[0]));
  return nb::cast(std::move(outs));
}

PyVector pack(const std::vector<const PyVector*>& vs) {
  if (vs.empty()) throw nb::value_error("pack_vectors: no vectors");
  const size_t d = vs[0]->period;
  for (const PyVector* v : vs) {
    same_context(*vs[0], *v);
    if (v->period != d)
      throw nb::value_error("pack_vectors: the vectors must have the same period (e.g. the same size)");
  }
  const CtxState& s = *vs[0]->s;
  const size_t D = d * next_pow2(vs.size());
  if (D > s.slots()) throw nb::value_error("pack_vectors: the packed block exceeds the slots");
  nb::gil_scoped_release release;
  std::vector<veil::Ciphertext> cts;
  // Junk past an input's size would land inside the concatenation: masked first (a level).
  for (const PyVector* v : vs) cts.push_back(masked(*v).ct);
  // One scale and one level for all (the evaluator rejects unequal ones).
  const double target = cts[0].scale();
  for (auto& c : cts)
    if (!same_scale(c.scale(), target)) adjust_scale(s, c, target);
  uint32_t level = cts[0].level();
  for (const auto& c : cts) level = std::min(level, c.level());
  for (auto& c : cts)
    if (c.level() > level) c = s.eval->mod_switch_to(c, level);
  PyVector r;
  r.s = vs[0]->s;
  r.ct = veil::nn::pack_vectors(*s.eval, cts, d);
  r.size = (vs.size() - 1) * d + vs.back()->size;
  r.period = D;
  r.clean = true;
  return r;
}

}  // namespace

void bind_vector(nb::module_& m) {
  nb::class_<PyVector> cls(m, "Vector",
                           "An encrypted vector of real values (TenSEAL: CKKSVector). Arithmetic with "
                           "Vectors, numpy arrays (same size) and scalars; mm / @ with a numpy matrix.");
  cls.def_prop_ro("size", [](const PyVector& v) { return v.size; }, "Number of values.")
      .def("__len__", [](const PyVector& v) { return v.size; })
      .def_prop_ro("level", [](const PyVector& v) { return v.ct.level(); }, "Multiplicative levels left.")
      .def_prop_ro("scale", [](const PyVector& v) { return v.ct.scale(); })
      .def_prop_ro("period", [](const PyVector& v) { return v.period; },
                   "Layout: the values repeat every `period` slots (a power of two >= size).")
      .def_prop_ro("context", [](const PyVector& v) { return PyContext{v.s}; })
      .def(
          "decrypt",
          [](const PyVector& v, std::optional<PyContext> ctx) {
            const State& s = ctx ? ctx->s : v.s;
            std::vector<double> slots;
            {
              nb::gil_scoped_release release;
              slots = decrypt_slots(*s, v.ct);
            }
            slots.resize(v.size);
            return to_numpy(std::move(slots));
          },
          "context"_a = nb::none(),
          "The values (numpy float64). Needs the secret key: this vector's context, or `context` "
          "(one with the same parameters) when given.")
      .def("__add__", [](const PyVector& a, nb::handle b) { return binary(a, b, Op::Add); }, nb::is_operator())
      .def("__radd__", [](const PyVector& a, nb::handle b) { return binary(a, b, Op::Add); }, nb::is_operator())
      .def("__sub__", [](const PyVector& a, nb::handle b) { return binary(a, b, Op::Sub); }, nb::is_operator())
      .def(
          "__rsub__",
          [](const PyVector& a, nb::handle b) {
            nb::object d = binary(a, b, Op::Sub);
            if (d.is(Py_NotImplemented)) return d;
            return nb::cast(negate(nb::cast<const PyVector&>(d)));
          },
          nb::is_operator())
      .def("__mul__", [](const PyVector& a, nb::handle b) { return binary(a, b, Op::Mul); }, nb::is_operator())
      .def("__rmul__", [](const PyVector& a, nb::handle b) { return binary(a, b, Op::Mul); }, nb::is_operator())
      .def("__neg__", &negate)
      .def("add", [](const PyVector& a, nb::handle b) { return binary(a, b, Op::Add); }, "other"_a)
      .def("sub", [](const PyVector& a, nb::handle b) { return binary(a, b, Op::Sub); }, "other"_a)
      .def("mul", [](const PyVector& a, nb::handle b) { return binary(a, b, Op::Mul); }, "other"_a)
      .def("neg", &negate)
      .def(
          "square",
          [](const PyVector& a) {
            if (a.s->keys->rk.key.empty())
              throw veil::Error(veil::ErrorCode::MissingKey, "square needs the relinearization key");
            nb::gil_scoped_release release;
            PyVector r = like(a, a.s->eval->rescale(a.s->eval->square(a.ct, a.s->keys->rk)));
            r.clean = a.clean || a.size == a.period;
            return r;
          },
          "x * x (one level).")
      .def("polyval", &polyval, "coeffs"_a, "lo"_a = -1.0, "hi"_a = 1.0,
           "p(x) = sum coeffs[i] x^i slot-wise (TenSEAL: polyval), evaluated in the Chebyshev basis on "
           "[lo, hi] (accurate for values inside; [-1, 1] saves a level). Levels: nn::Polynomial::depth().")
      .def("mm", &mm, "matrix"_a, "bias"_a = nb::none(),
           "x @ matrix (+ bias), matrix of shape (size, out) (TenSEAL: enc.mm(W)); one level.")
      .def("__matmul__", [](const PyVector& a, nb::handle w) { return mm(a, w, nb::none()); }, nb::is_operator())
      .def("rotate", &rotate, "steps"_a,
           "Rotates left by `steps` inside the period: result[i] = x_padded[(i + steps) mod period], "
           "x_padded = x with zeros up to `period` (np.roll(x, -steps) when size is a power of two).")
      .def("sum", &sum, "The sum of the values (TenSEAL: sum), in a vector of size 1.")
      .def("conv2d_im2col", &conv2d_im2col, "kernel"_a, "windows"_a, "bias"_a = nb::none(),
           "Convolution of an im2col_encode'd image (TenSEAL: enc.conv2d_im2col(kernel, windows)): a "
           "(k, k) kernel gives one Vector of `windows` values (row-major output), a (C, k, k) kernel a "
           "list of C. One level.")
      .def("copy", [](const PyVector& a) { return a; })
      .def("__copy__", [](const PyVector& a) { return a; })
      .def("__deepcopy__", [](const PyVector& a, nb::handle) { return a; })
      .def(
          "link",
          [](nb::handle self, const PyContext& ctx) {
            PyVector& v = nb::cast<PyVector&>(self);
            if (v.ct.context()->id() != ctx.s->ctx->id()) {
              nb::gil_scoped_release release;
              v.ct = v.ct.to(ctx.s->ctx);  // ContextMismatch for other parameters
            }
            v.s = ctx.s;
            return nb::borrow(self);
          },
          "context"_a, "Moves this vector to `context` (same parameters, else veil.Error); returns it.")
      .def("__repr__", [](const PyVector& v) {
        return "<veil.Vector size=" + std::to_string(v.size) + " level=" + std::to_string(v.ct.level()) +
               " period=" + std::to_string(v.period) + ">";
      });
  m.def(
      "pack_vectors",
      [](const std::vector<const PyVector*>& vs) { return pack(vs); }, "vectors"_a,
      "One vector holding the concatenation of `vectors`, each zero-padded to the largest period "
      "(TenSEAL: ts.pack_vectors). One level.");
}

}  // namespace vpy
