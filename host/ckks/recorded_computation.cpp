#include "veil/recorded_computation.hpp"

#include <optional>
#include <string>

#include "veil/error.hpp"

namespace veil {

RecordedComputation::RecordedComputation(Function f, const std::vector<Ciphertext>& example) : f_(std::move(f)) {
  require(static_cast<bool>(f_), ErrorCode::InvalidArgument, "RecordedComputation: no computation given");
  require(!example.empty(), ErrorCode::InvalidArgument, "RecordedComputation: the example needs a ciphertext");
  for (const Ciphertext& ct : example) {
    require(!ct.empty(), ErrorCode::InvalidArgument, "RecordedComputation: an example ciphertext is empty");
    require(ct.context()->id() == example.front().context()->id(), ErrorCode::ContextMismatch,
            "RecordedComputation: the example ciphertexts belong to different contexts");
  }
  ctx_ = example.front().context();
  slots_ = example;  // own copies, at addresses the recording reads
  Backend& be = ctx_->backend();
  f_(slots_);  // builds what the computation prepares on first use, outside the recording
  be.synchronize();
  if (!be.begin_recording()) return;
  std::vector<Ciphertext> out;
  try {
    out = f_(slots_);
  } catch (...) {
    try {
      be.end_recording();  // dropped at once
    } catch (...) {
    }
    throw;
  }
  recording_ = be.end_recording();
  outputs_ = std::move(out);
}

RecordedComputation::~RecordedComputation() = default;

// to[i]'s words = from[i]'s (same shapes), as one Backend::copy_many.
void RecordedComputation::copy_all(Backend& be, std::vector<Ciphertext>& to, const std::vector<Ciphertext>& from) {
  std::vector<uint64_t*> dsts;
  std::vector<const uint64_t*> srcs;
  std::vector<size_t> words;
  for (size_t i = 0; i < to.size(); ++i) {
    dsts.push_back(to[i].poly(0));
    srcs.push_back(from[i].poly(0));
    words.push_back(to[i].size() * to[i].poly_words());
  }
  be.copy_many(to.size(), dsts.data(), srcs.data(), words.data());
}

// The first way inputs differ from the example's shape, as the error run() throws.
std::optional<Error> RecordedComputation::mismatch(const std::vector<Ciphertext>& inputs) const {
  if (inputs.size() != slots_.size())
    return Error(ErrorCode::InvalidArgument, "recorded computation: " + std::to_string(inputs.size()) +
                                                 " input ciphertext(s), recorded with " + std::to_string(slots_.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Ciphertext& in = inputs[i];
    const Ciphertext& slot = slots_[i];
    auto which = [i] { return "recorded computation: input " + std::to_string(i) + " "; };  // built only on an error
    if (in.empty()) return Error(ErrorCode::InvalidArgument, which() + "is empty");
    if (in.context()->id() != ctx_->id()) return Error(ErrorCode::ContextMismatch, which() + "belongs to another context");
    if (in.size() != slot.size())
      return Error(ErrorCode::InvalidArgument, which() + "has " + std::to_string(in.size()) +
                                                   " polynomials, recorded with " + std::to_string(slot.size()));
    if (in.level() != slot.level())
      return Error(ErrorCode::LevelMismatch, which() + "is at level " + std::to_string(in.level()) + ", recorded at " +
                                                 std::to_string(slot.level()) +
                                                 " (bring it there with mod_switch_to, or record another)");
    if (in.scale() != slot.scale())
      return Error(ErrorCode::ScaleMismatch, which() + "has scale " + std::to_string(in.scale()) + ", recorded with " +
                                                 std::to_string(slot.scale()));
  }
  return std::nullopt;
}

bool RecordedComputation::matches(const std::vector<Ciphertext>& inputs) const { return !mismatch(inputs); }

std::vector<Ciphertext> RecordedComputation::run(const std::vector<Ciphertext>& inputs) const {
  if (auto error = mismatch(inputs)) throw *error;
  Backend& be = ctx_->backend();
  if (!recording_) {
    std::vector<Ciphertext> out = f_(inputs);
    be.synchronize();
    return out;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  // The recording reads its inputs from the slots: every input copied there in one call.
  copy_all(be, slots_, inputs);
  be.replay(*recording_);
  std::vector<Ciphertext> out;  // fresh ciphertexts, filled in one call queued after the replay
  out.reserve(outputs_.size());
  for (const Ciphertext& o : outputs_) out.emplace_back(o.context(), o.size(), o.level(), o.scale(), false);
  copy_all(be, out, outputs_);
  be.synchronize();  // the next run may overwrite the recording's buffers from another thread's stream
  return out;
}

}  // namespace veil
