// veil._veil: the compiled half of the Python package (python/veil wraps it).
#include "common.hpp"

NB_MODULE(_veil, m) {
  m.doc() = "Veil RNS-CKKS engine (compiled module; use the `veil` package)";
  vpy::bind_errors(m);
  vpy::bind_context(m);
  vpy::bind_vector(m);
  vpy::bind_serialization(m);
  vpy::bind_serve(m);
  vpy::bind_model(m);
}
