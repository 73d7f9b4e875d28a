#include "veil/stream_scope.hpp"

#include "veil/error.hpp"

namespace veil {

StreamScope::StreamScope(const ContextPtr& ctx) {
  require(ctx != nullptr, ErrorCode::InvalidArgument, "StreamScope: no context");
  backend_ = ctx->backend_ptr();
  stream_ = backend_->create_stream();
  if (stream_) backend_->push_stream(stream_.get());
}

StreamScope::~StreamScope() {
  if (!stream_) return;
  try {
    backend_->synchronize();  // the scope's stream is still the current one
  } catch (...) {  // a device error: nothing to report from a destructor; pop anyway
  }
  try {
    backend_->pop_stream();
  } catch (...) {
  }
}

void StreamScope::synchronize() const { backend_->synchronize(); }

}  // namespace veil
