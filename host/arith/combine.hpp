// One output chunk of a sparse integer linear combination (Backend::combine on the
// cpu): out[i] (+)= sum_e w[e] * in_e[i] mod q for i < count, where in_e is
// inputs[cols[e]] + offset. Products are summed lazily and reduced once per
// thousands of terms: with AVX-512 IFMA (q < 2^52) as 52-bit halves in 64-bit lanes,
// else in 128-bit integers.
#pragma once

#include <cstddef>
#include <cstdint>

#include "arith/modarith.hpp"

namespace veil::arith {

// The chunk size combine_chunk works best at (a multiple of 8: whole AVX-512 vectors).
inline constexpr size_t kCombineChunk = 32;

// count <= kCombineChunk; entries e in [e_begin, e_end) of the row; w indexed by e.
void combine_chunk(const Modulus& m, size_t count, size_t e_begin, size_t e_end, const uint64_t* cols,
                   const uint64_t* w, const uint64_t* const* inputs, size_t offset, uint64_t* out, bool accumulate);

}  // namespace veil::arith
