// pack_vectors: three 64-value vectors (2 images per ciphertext) packed into one
// 256-slot block, checked in every slot; bad input.
#include "test_util.hpp"
#include "veil/nn/linear.hpp"
#include "veil/nn/pack.hpp"

namespace veil::test {
namespace {

TEST(PackVectors, ConcatenatesBlocksWithoutRotations) {
  static Keyed k(Parameters::preset(13), 301, false);
  const size_t d = 64, count = 3, batch = 2;
  std::vector<std::vector<std::vector<double>>> parts(count);  // [vector c][image b]
  std::vector<Ciphertext> cts;
  for (size_t c = 0; c < count; ++c) {
    for (size_t b = 0; b < batch; ++b) parts[c].push_back(random_reals(d, 310 + 10 * c + b));
    cts.push_back(k.encrypt(nn::LinearLayer::layout(parts[c], d, k.slots(), batch)));
  }
  auto packed = nn::pack_vectors(*k.eval, cts, d, batch);
  EXPECT_EQ(packed.level(), cts[0].level() - 1);
  EXPECT_DOUBLE_EQ(packed.scale(), cts[0].scale());
  // The expected layout: block 256 = [v0, v1, v2, 0] per image.
  std::vector<std::vector<double>> concat(batch);
  for (size_t b = 0; b < batch; ++b)
    for (size_t c = 0; c < count; ++c) concat[b].insert(concat[b].end(), parts[c][b].begin(), parts[c][b].end());
  auto want = nn::LinearLayer::layout(concat, 256, k.slots(), batch);
  auto p = precision(want, k.decrypt(packed));
  report("pack_vectors 3 x 64 (batch 2), all slots", *k.ctx, p);
  EXPECT_GE(p.mean_bits, 24.0);
  EXPECT_GE(p.worst_bits, 20.0);
}

TEST(PackVectors, BadInput) {
  static Keyed k(Parameters::preset(13), 302, false);
  auto ct = k.encrypt(nn::LinearLayer::layout({1, 2, 3}, 4, k.slots()));
  EXPECT_THROW(nn::pack_vectors(*k.eval, {}, 4), Error);
  EXPECT_THROW(nn::pack_vectors(*k.eval, {ct}, 3), Error);                                 // d not a power of two
  EXPECT_THROW(nn::pack_vectors(*k.eval, std::vector<Ciphertext>(3, ct), 2048), Error);    // does not fit
  EXPECT_THROW(nn::pack_vectors(*k.eval, {ct, k.eval->mod_switch_to(ct, 1)}, 4), Error);  // levels differ
  EXPECT_THROW(nn::pack_vectors(*k.eval, {k.eval->mod_switch_to(ct, 0)}, 4), Error);      // level 0
  auto other = Context::create(Parameters::preset(13));
  EXPECT_THROW(nn::pack_vectors(*k.eval, {Ciphertext(other, 2, 1, ct.scale())}, 4), Error);
}

}  // namespace
}  // namespace veil::test
