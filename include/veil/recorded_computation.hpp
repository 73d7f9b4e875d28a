// A homomorphic computation recorded once and replayed for every later input: on the
// cuda backend its whole sequence of kernels becomes one CUDA graph, so a run costs
// one graph launch instead of host work and a launch per kernel (what bounds small
// rings, N = 2^13, where each kernel runs for a few microseconds). On the cpu backend
// there is nothing to save: run() calls the computation itself.
//
// What is recorded is the device work; the computation's host logic (which
// operations, levels, scales) must depend only on the inputs' shape, never on their
// words, which holds for CKKS evaluation (Evaluator, nn::CompiledModel::run). The
// computation must not need the host in the middle (no encoding, encryption,
// decryption or downloads): prepare plaintexts and keys before.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "veil/backend.hpp"
#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/error.hpp"

namespace veil {

class RecordedComputation {
 public:
  using Function = std::function<std::vector<Ciphertext>(const std::vector<Ciphertext>&)>;

  // Runs f on `example` (at least one ciphertext, all of one context) once to build
  // whatever it prepares lazily, then once more recorded (cuda). Every object f uses
  // (evaluator, keys, model) must outlive this. Throws what f throws, and
  // Error(Unsupported) when f needs the host while recorded (the message names the call).
  RecordedComputation(Function f, const std::vector<Ciphertext>& example);
  ~RecordedComputation();
  RecordedComputation(const RecordedComputation&) = delete;
  RecordedComputation& operator=(const RecordedComputation&) = delete;

  // f(inputs), the same words as calling f: inputs must match the example's shape
  // (count, context, size, level and scale, exactly); Error(InvalidArgument,
  // ContextMismatch, LevelMismatch or ScaleMismatch) otherwise. Returns fresh
  // ciphertexts, complete when the call returns. Thread-safe (calls run one at a time).
  std::vector<Ciphertext> run(const std::vector<Ciphertext>& inputs) const;

  // Whether inputs have the example's shape (run() accepts them).
  bool matches(const std::vector<Ciphertext>& inputs) const;
  // True when run() replays a recording (cuda), false when it calls f (cpu).
  bool replayed() const { return recording_ != nullptr; }
  // Device work items per replay (kernels, copies, fills); 0 when not replayed.
  size_t operations() const { return recording_ ? recording_->operations() : 0; }

 private:
  std::optional<Error> mismatch(const std::vector<Ciphertext>& inputs) const;
  static void copy_all(Backend& be, std::vector<Ciphertext>& to, const std::vector<Ciphertext>& from);

  ContextPtr ctx_;  // declared first: the backend outlives the recording
  Function f_;
  mutable std::vector<Ciphertext> slots_;  // the recorded inputs: run() copies its inputs here
  std::unique_ptr<BackendRecording> recording_;
  std::vector<Ciphertext> outputs_;  // the recorded outputs (the recording's memory)
  mutable std::mutex mutex_;
};

}  // namespace veil
