// numpy in and out, the context registry, Galois keys on demand.
#include <bit>
#include <cmath>
#include <mutex>
#include <sstream>

#include "common.hpp"

using namespace nb::literals;

namespace vpy {

size_t next_pow2(size_t n) { return n <= 1 ? 1 : std::bit_ceil(n); }

veil::BackendKind parse_backend(const std::string& name) {
  if (name == "cpu") return veil::BackendKind::Cpu;
  if (name == "cuda") return veil::BackendKind::Cuda;
  if (name == "auto") return veil::BackendKind::Auto;
  throw nb::value_error(("backend must be \"cpu\", \"cuda\" or \"auto\", not \"" + name + "\"").c_str());
}

namespace {

std::mutex g_registry_mutex;
std::vector<std::weak_ptr<CtxState>> g_registry;

// numpy.ascontiguousarray(x, dtype=float64), torch tensors through .detach().cpu().numpy().
nb::object as_float64(nb::handle obj, const char* what) {
  nb::object o = nb::borrow(obj);
  if (nb::hasattr(o, "detach") && nb::hasattr(o, "cpu")) o = o.attr("detach")().attr("cpu")().attr("numpy")();
  nb::module_ np = nb::module_::import_("numpy");
  try {
    return np.attr("ascontiguousarray")(o, "dtype"_a = "float64");
  } catch (nb::python_error& e) {
    if (e.matches(PyExc_ValueError) || e.matches(PyExc_TypeError))
      throw nb::type_error((std::string(what) + ": expected an array of numbers (" + e.what() + ")").c_str());
    throw;
  }
}

using Array = nb::ndarray<const double, nb::c_contig, nb::device::cpu>;

}  // namespace

std::vector<double> to_doubles(nb::handle obj, const char* what, size_t min_size, size_t max_size) {
  nb::object arr = as_float64(obj, what);
  Array a = nb::cast<Array>(arr);
  const size_t n = a.size();
  if (n < min_size || n > max_size) {
    std::ostringstream os;
    os << what << ": " << n << " values, expected " << min_size;
    if (max_size != min_size) os << ".." << max_size;
    throw nb::value_error(os.str().c_str());
  }
  std::vector<double> v(a.data(), a.data() + n);
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i]))
      throw nb::value_error((std::string(what) + ": value " + std::to_string(i) + " is not finite").c_str());
  return v;
}

std::vector<double> to_matrix(nb::handle obj, const char* what, size_t& rows, size_t& cols) {
  nb::object arr = as_float64(obj, what);
  Array a = nb::cast<Array>(arr);
  if (a.ndim() != 2 || a.shape(0) == 0 || a.shape(1) == 0)
    throw nb::value_error((std::string(what) + ": expected a non-empty 2-D array").c_str());
  rows = a.shape(0);
  cols = a.shape(1);
  std::vector<double> v(a.data(), a.data() + rows * cols);
  for (double x : v)
    if (!std::isfinite(x)) throw nb::value_error((std::string(what) + ": non-finite value").c_str());
  return v;
}

nb::object to_numpy(std::vector<double>&& v) {
  auto* heap = new std::vector<double>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<double>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, double, nb::ndim<1>>(heap->data(), {heap->size()}, owner));
}

nb::object to_numpy_2d(std::vector<double>&& v, size_t rows, size_t cols) {
  auto* heap = new std::vector<double>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<double>*>(p); });
  return nb::cast(nb::ndarray<nb::numpy, double, nb::ndim<2>>(heap->data(), {rows, cols}, owner));
}

State make_state(veil::ContextPtr ctx, bool insecure, const std::string& backend) {
  auto s = std::make_shared<CtxState>();
  s->ctx = std::move(ctx);
  s->enc = std::make_unique<veil::Encoder>(s->ctx);
  s->eval = std::make_unique<veil::Evaluator>(s->ctx);
  s->keys = std::make_shared<Keys>();
  s->insecure = insecure;
  s->backend = backend;
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  std::erase_if(g_registry, [](const std::weak_ptr<CtxState>& w) { return w.expired(); });
  g_registry.push_back(s);
  return s;
}

State find_state(uint64_t fingerprint, uint64_t context_id) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  State best;
  int best_rank = -1;
  for (auto it = g_registry.rbegin(); it != g_registry.rend(); ++it) {
    State s = it->lock();
    if (!s || s->ctx->params().fingerprint() != fingerprint) continue;
    const int rank = (context_id != 0 && s->ctx->id() == context_id ? 2 : 0) + (s->sk ? 1 : 0);
    if (rank > best_rank) best = s, best_rank = rank;
  }
  return best;
}

void ensure_galois_steps(const CtxState& s, const std::vector<int64_t>& steps) {
  Keys& k = *s.keys;
  auto missing = [&] {
    std::vector<int64_t> out;
    for (int64_t step : steps)
      if (!k.gk.has(veil::galois_element_for_step(*s.ctx, step))) out.push_back(step);
    return out;
  };
  {
    std::shared_lock lock(k.mutex);
    if (missing().empty()) return;
  }
  std::unique_lock lock(k.mutex);
  const std::vector<int64_t> need = missing();
  if (need.empty()) return;
  if (!s.sk) {
    std::ostringstream os;
    os << "missing Galois (rotation) keys for steps [";
    for (size_t i = 0; i < need.size(); ++i) os << (i ? ", " : "") << need[i];
    os << "]: this context has no secret key; generate them with generate_galois_keys() on the "
          "secret context and send its public() copy again";
    throw veil::Error(veil::ErrorCode::MissingKey, os.str());
  }
  veil::KeyGenerator kg(s.ctx, *s.sk, veil::RandomSource::os());
  veil::GaloisKeys fresh = kg.create_galois_keys(need, /*conjugation=*/false);
  for (auto& [elt, key] : fresh.keys) k.gk.keys.emplace(elt, std::move(key));
}

std::vector<double> decrypt_slots(const CtxState& s, const veil::Ciphertext& ct) {
  if (!s.sk)
    throw veil::Error(veil::ErrorCode::MissingKey,
                      "cannot decrypt: this context has no secret key (a public context); decrypt with "
                      "the context that holds the secret key");
  veil::Decryptor dec(s.ctx, *s.sk);
  if (ct.context()->id() != s.ctx->id()) return s.enc->decode(dec.decrypt(ct.to(s.ctx)));
  return s.enc->decode(dec.decrypt(ct));
}

}  // namespace vpy
