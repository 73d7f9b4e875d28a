// Concurrent work on one context: each thread in a StreamScope issues its work to a
// stream of its own, so that on a device backend independent operations from
// several threads overlap while sharing one context and one set of keys.
#pragma once

#include <memory>

#include "veil/backend.hpp"
#include "veil/context.hpp"

namespace veil {

// While alive, the calling thread's work on `ctx` goes to a new stream of the
// context's backend. The stream starts after the work the thread issued before the
// scope (so objects made then are ready inside it), and the destructor waits for the
// scope's work, so whatever the scope computed is ready for every thread once it
// ends. Inside a scope, hand an object to another thread only after synchronize();
// and do not destroy an object another stream may still be using. Scopes nest (the
// innermost is current) and must end on the thread that made them. On the cpu backend
// a scope changes nothing (its calls already run to completion on the calling
// thread). Error(InvalidArgument) for a null context.
class StreamScope {
 public:
  explicit StreamScope(const ContextPtr& ctx);
  ~StreamScope();
  StreamScope(const StreamScope&) = delete;
  StreamScope& operator=(const StreamScope&) = delete;

  // Waits for the work this thread issued in the scope so far.
  void synchronize() const;

 private:
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<BackendStream> stream_;  // null on backends without streams
};

}  // namespace veil
