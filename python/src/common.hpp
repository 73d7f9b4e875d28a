// Shared by the binding files: the state behind a veil.Context and a veil.Vector, the
// numpy conversions and the Galois-key helper.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "veil/nn/model_file.hpp"
#include "veil/veil.hpp"

namespace nb = nanobind;

namespace vpy {

// Evaluation keys, shared by a context and the public() copies made from it in this
// process (so Galois keys generated on demand serve both). Any key may be empty (a
// context loaded from parameters alone).
struct Keys {
  veil::PublicKey pk;
  veil::RelinKey rk;
  veil::GaloisKeys gk;
  std::shared_mutex mutex;  // gk grows on demand: readers share, generation is exclusive
};

struct CtxState {
  veil::ContextPtr ctx;
  std::unique_ptr<veil::Encoder> enc;
  std::unique_ptr<veil::Evaluator> eval;
  std::shared_ptr<const veil::SecretKey> sk;  // null: a public context
  std::shared_ptr<Keys> keys;
  bool insecure = false;
  std::string backend = "cpu";
  // Made on first use and kept (an Encryptor copies its key and seeds its randomness
  // once); encryption mutates the randomness, so one thread at a time.
  std::mutex encrypt_mutex;
  std::unique_ptr<veil::Encryptor> encryptor;

  size_t slots() const { return static_cast<size_t>(ctx->params().slots()); }
};
using State = std::shared_ptr<CtxState>;

// A state around `ctx` with encoder and evaluator (no keys), registered for unpickling.
State make_state(veil::ContextPtr ctx, bool insecure, const std::string& backend);
// A live state of these parameters: one on the context `context_id` (Context::id(),
// 0: any) first, then the newest; among those, one with a secret key first.
State find_state(uint64_t fingerprint, uint64_t context_id = 0);

struct PyContext {
  State s;
};

struct Im2colInfo {
  size_t height = 0, width = 0, kernel = 0, stride = 0;
};

// An encrypted vector of `size` values. Layout: slot i holds x[i mod period] for
// i mod period < size; slots i mod period >= size hold zeros when `clean`, anything
// otherwise. period: a power of two >= size dividing the slot count.
struct PyVector {
  State s;
  veil::Ciphertext ct;
  size_t size = 0;
  size_t period = 0;
  bool clean = true;
  std::optional<Im2colInfo> im2col;  // set by Context.im2col_encode
};

veil::BackendKind parse_backend(const std::string& name);

// Anything numpy.asarray(x, float64) accepts (torch tensors through .detach().cpu()),
// flattened. ValueError for non-finite values or a size outside [min_size, max_size].
std::vector<double> to_doubles(nb::handle obj, const char* what, size_t min_size = 1,
                               size_t max_size = SIZE_MAX);
// A 2-D float64 array (rows, cols) from anything numpy accepts; ValueError otherwise.
std::vector<double> to_matrix(nb::handle obj, const char* what, size_t& rows, size_t& cols);
// A numpy array owning `v` (moved, no copy).
nb::object to_numpy(std::vector<double>&& v);
nb::object to_numpy_2d(std::vector<double>&& v, size_t rows, size_t cols);

size_t next_pow2(size_t n);

// A fresh encryption of x (1..slots values), replicated with period next_pow2(size).
PyVector encrypt_values(const State& s, const std::vector<double>& x);

// Makes sure the context has a key for each left-rotation step: generates the missing
// ones when it has the secret key, else throws veil::Error(MissingKey) naming them.
void ensure_galois_steps(const CtxState& s, const std::vector<int64_t>& steps);

// Decoded real slots of a ciphertext (needs the secret key: veil::Error otherwise).
std::vector<double> decrypt_slots(const CtxState& s, const veil::Ciphertext& ct);

// A compiled model file from a path or bytes (validated; insecure parameters only when asked).
veil::nn::ModelFile load_model(nb::handle model, bool insecure);
// The rows of a 1-D (one input) or n-D array (one input per first index, flattened),
// each `width` values (0: any); ValueError otherwise.
std::vector<std::vector<double>> rows_of(nb::handle inputs, size_t width);
nb::object to_rows(const std::vector<std::vector<double>>& rows);

void bind_errors(nb::module_& m);
void bind_context(nb::module_& m);
void bind_vector(nb::module_& m);
void bind_serialization(nb::module_& m);
void bind_serve(nb::module_& m);
void bind_model(nb::module_& m);

}  // namespace vpy
