#include "veil/context.hpp"

#include <atomic>

namespace veil {

namespace {
std::atomic<uint64_t> next_context_id{1};
}

Context::Context(const Parameters& params, std::shared_ptr<const RnsTables> tables,
                 std::shared_ptr<Backend> backend)
    : params_(params), tables_(std::move(tables)), backend_(std::move(backend)), id_(next_context_id++) {}

std::shared_ptr<const Context> Context::create(const Parameters& params, BackendKind kind, int device) {
  auto tables = RnsTables::build(params);
  auto backend = make_backend(kind, tables, device);
  return std::shared_ptr<const Context>(new Context(params, std::move(tables), std::move(backend)));
}

}  // namespace veil
