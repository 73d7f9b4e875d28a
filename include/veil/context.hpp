// A Context binds validated Parameters to precomputed RNS tables and one
// backend. Every ciphertext, plaintext and key belongs to exactly one
// context; mixing objects from different contexts throws ContextMismatch.
#pragma once

#include <cstdint>
#include <memory>

#include "veil/backend.hpp"
#include "veil/params.hpp"

namespace veil {

class Context {
 public:
  // Throws Error(Unsupported) if the requested backend is unavailable,
  // Error(InvalidArgument) for a CUDA device id that does not exist.
  // device: CUDA device id for BackendKind::Cuda / Auto (see cuda_devices()).
  static std::shared_ptr<const Context> create(const Parameters& params,
                                               BackendKind backend = BackendKind::Cpu, int device = 0);

  const Parameters& params() const { return params_; }
  const RnsTables& tables() const { return *tables_; }
  Backend& backend() const { return *backend_; }
  const std::shared_ptr<Backend>& backend_ptr() const { return backend_; }
  uint64_t n() const { return params_.n(); }
  uint32_t max_level() const { return params_.max_level(); }
  // Process-unique identity; objects compare it to detect mixing.
  uint64_t id() const { return id_; }

  // Words in a limb-major buffer holding `polys` polynomials on `b`.
  size_t words(Basis b, size_t polys = 1) const { return polys * tables_->limbs(b) * n(); }
  Buffer allocate(Basis b, size_t polys = 1, bool secret = false) const {
    return Buffer(backend_, words(b, polys), secret);
  }
  // Uninitialised scratch: every word must be written before it is read.
  Buffer allocate_scratch(Basis b, size_t polys = 1) const {
    return Buffer(backend_, words(b, polys), false, /*zero=*/false);
  }

 private:
  Context(const Parameters& params, std::shared_ptr<const RnsTables> tables,
          std::shared_ptr<Backend> backend);
  Parameters params_;
  std::shared_ptr<const RnsTables> tables_;
  std::shared_ptr<Backend> backend_;
  uint64_t id_;
};

using ContextPtr = std::shared_ptr<const Context>;

}  // namespace veil
