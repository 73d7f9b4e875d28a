// pack_vectors: several vectors, each in its own ciphertext in LinearLayer's layout
// (block d, optionally batched), into one ciphertext holding their concatenation,
// like TenSEAL's pack_vectors. One plaintext mask per input, one rescale (one level),
// no rotation: input c is d-periodic, so masking it to the c-th d-segment of every
// D-block (D = d * power of two >= count) already puts it in place.
//
// Output layout: LinearLayer's input layout with block D (batched like the inputs):
// logical slot l holds input (l mod D) / d at position l mod d, zero in the segments
// past the last input. It feeds a LinearLayer whose columns are the concatenation
// (input c's values at columns c * d .. c * d + d - 1).
//
// Note: a LinearLayer built with LinearOptions::inputs = count reads the same data with
// no packing level at all; packing pays off when the next layers want one ciphertext.
#pragma once

#include <cstddef>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/evaluator.hpp"

namespace veil::nn {

// cts: 1..slots/(d*batch) ciphertexts of one context, size 2, same level >= 1 and
// same scale (within the evaluator's tolerance), each in LinearLayer's layout with
// block d (a power of two) and `batch` interleaved inputs. Returns one ciphertext at
// level - 1 with the same scale. Throws Error(InvalidArgument) for an empty list, bad
// d or batch, a packed block larger than the logical slots or unequal levels/scales;
// ContextMismatch for foreign ciphertexts; LevelMismatch at level 0.
Ciphertext pack_vectors(const Evaluator& eval, const std::vector<Ciphertext>& cts, size_t d, size_t batch = 1);

}  // namespace veil::nn
