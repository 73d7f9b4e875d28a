// Integer linear combinations of ciphertexts: a matrix times a vector whose entries
// each sit in their own ciphertext (nn's slot-wise packing, one input per slot, where
// a layer's weights are the same in every slot). Each weight w is applied as the
// integer round(w * weight_scale), exactly, so combining ciphertexts of scale s gives
// scale s * weight_scale: with weight_scale the level's last prime, a rescale
// returns to s, as after a plaintext product; with weight_scale 1 and integer
// weights (sums, as in pooling) no level is spent. No rotation, no key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "veil/backend.hpp"
#include "veil/context.hpp"

namespace veil {

class CombinationMatrix {
 public:
  struct Entry {
    uint32_t column = 0;
    double weight = 0;
  };
  CombinationMatrix() = default;
  // rows[r]: the entries of output r (entries that round to 0 are dropped). The
  // integers live on the context's backend at `level` (level + 1 limbs): the matrix
  // combines ciphertexts of that level. Throws Error(InvalidArgument) for a column >=
  // columns, a non-finite weight or weight_scale, weight_scale < 1, a rounded weight
  // of 2^100 or more, more than 2^32 entries or columns, or a level above the
  // context's; ContextMismatch for a null context.
  CombinationMatrix(ContextPtr ctx, size_t columns, const std::vector<std::vector<Entry>>& rows, uint32_t level,
                    double weight_scale);

  size_t rows() const { return rows_; }
  size_t columns() const { return columns_; }
  size_t entries() const { return entries_; }
  uint32_t level() const { return level_; }
  double weight_scale() const { return weight_scale_; }
  const ContextPtr& context() const { return ctx_; }
  bool empty() const { return !ctx_; }
  size_t bytes() const { return data_.words() * sizeof(uint64_t); }  // backend memory held
  // The backend's view (valid while this matrix lives).
  CombineMatrix view() const;

 private:
  ContextPtr ctx_;
  Buffer data_;  // row_start, cols, weights[limbs][entries]
  size_t rows_ = 0, columns_ = 0, entries_ = 0;
  uint32_t level_ = 0;
  double weight_scale_ = 1;
};

}  // namespace veil
