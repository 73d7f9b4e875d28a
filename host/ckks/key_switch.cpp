#include "ckks/key_switch.hpp"

#include "veil/error.hpp"

namespace veil::keyswitch {

Decomposition decompose(const Context& ctx, const uint64_t* poly, uint32_t level) {
  const auto& t = ctx.tables();
  Backend& be = ctx.backend();
  const Basis qp{level + 1, true};
  Decomposition dec;
  dec.input = poly;
  dec.level = level;
  dec.count = t.digits(level);
  dec.digits = ctx.allocate_scratch(qp, dec.count);
  be.key_switch_decompose(level, dec.digits.data(), poly);
  return dec;
}

namespace {

// The inner product with the key's digits, then the ModDown (and g's permutation when g != 0).
void apply_with(const Context& ctx, const Decomposition& dec, const SwitchingKey& key, uint64_t g, uint64_t* out0,
                uint64_t* out1, const uint64_t* add0, const uint64_t* add1) {
  require(!key.empty() && key.context()->id() == ctx.id(), ErrorCode::ContextMismatch,
          "switching key belongs to a different context");
  Backend& be = ctx.backend();
  const Basis qp{dec.level + 1, true};
  Buffer acc = ctx.allocate_scratch(qp, 2);  // fully written by the inner product
  uint64_t* acc0 = acc.data();
  uint64_t* acc1 = acc.data() + ctx.words(qp);
  be.key_switch_apply(dec.level, dec.count, dec.digits.data(), dec.input, key.data(), acc0, acc1);
  if (g)  // acc1 follows acc0
    be.mod_down_pair_automorphism(dec.level, g, out0, out1, acc0, add0, add1);
  else
    be.mod_down_pair(dec.level, out0, out1, acc0, add0, add1);
}

}  // namespace

void apply(const Context& ctx, const Decomposition& dec, const SwitchingKey& key, uint64_t* out0,
           uint64_t* out1, const uint64_t* add0, const uint64_t* add1) {
  apply_with(ctx, dec, key, 0, out0, out1, add0, add1);
}

void apply_automorphism(const Context& ctx, const Decomposition& dec, const SwitchingKey& key, uint64_t g,
                        uint64_t* out0, uint64_t* out1, const uint64_t* add0, const uint64_t* add1) {
  apply_with(ctx, dec, key, g, out0, out1, add0, add1);
}

}  // namespace veil::keyswitch
