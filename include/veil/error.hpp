// Veil's single exception type. Every public entry point reports bad input
// (mismatched contexts, wrong levels or scales, malformed serialized data,
// insecure parameters, missing keys) by throwing veil::Error, never by
// crashing or by undefined behaviour.
#pragma once

#include <stdexcept>
#include <string>

namespace veil {

enum class ErrorCode {
  InvalidArgument,     // a value outside its documented range
  InsecureParameters,  // parameters below the 128-bit HE Standard bound
  ContextMismatch,     // objects from different contexts / parameter sets
  LevelMismatch,       // operand levels cannot be combined or are exhausted
  ScaleMismatch,       // scales cannot be matched
  MissingKey,          // a Galois/relinearization key is not available
  Serialization,       // truncated, corrupted, oversized or hostile blob
  Backend,             // a backend (e.g. CUDA runtime) failure
  Unsupported,         // a feature not available in this build
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// Throws Error(code, message) when `condition` is false.
inline void require(bool condition, ErrorCode code, const std::string& message) {
  if (!condition) throw Error(code, message);
}

}  // namespace veil
