// Hybrid key switching (Han-Ki / Kim et al. RNS variant), split in two so a
// decomposition can be shared by many keys (hoisting):
//   decompose: INTT, then ModUp each of the ceil((l+1)/alpha) digits to Q_l u P;
//   apply:     inner product with the key's digits, then ModDown by P.
#pragma once

#include "veil/backend.hpp"
#include "veil/context.hpp"
#include "veil/keys.hpp"

namespace veil::keyswitch {

struct Decomposition {
  Buffer digits;  // [count][Q_l u P][N], NTT form
  uint32_t level = 0;
  uint32_t count = 0;
};

// poly: a level-`level` polynomial over Q_l in NTT form.
Decomposition decompose(const Context& ctx, const uint64_t* poly, uint32_t level);
// (out0, out1) over Q_l, NTT form, with out0 + out1 s ~ poly * s' for the key from s' to s.
void apply(const Context& ctx, const Decomposition& dec, const SwitchingKey& key, uint64_t* out0,
           uint64_t* out1);

}  // namespace veil::keyswitch
