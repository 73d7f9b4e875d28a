// The OpenMP-parallel CPU primitives give the same bits with 1 and 2 threads.
#include "test_util.hpp"

namespace veil::test {
namespace {

std::vector<uint64_t> words(const Ciphertext& ct) {
  std::vector<uint64_t> out;
  for (uint32_t i = 0; i < ct.size(); ++i) out.insert(out.end(), ct.poly(i), ct.poly(i) + ct.poly_words());
  return out;
}

TEST(Threads, OneAndTwoThreadsAgreeBitForBit) {
  Keyed& k = Keyed::preset(14);
  const int before = cpu_threads();
  auto ct = k.encrypt(random_reals(k.slots(), 41));
  auto run = [&] {
    auto prod = k.eval->rescale(k.eval->multiply(ct, ct, k.rk));
    auto rots = k.eval->rotate_hoisted(prod, {1, 2, -4}, k.gk);
    return words(k.eval->add(rots[0], k.eval->add(rots[1], rots[2])));
  };
  set_cpu_threads(1);
  auto one = run();
  set_cpu_threads(2);
  auto two = run();
  set_cpu_threads(before);
  EXPECT_EQ(one, two);
  EXPECT_THROW(set_cpu_threads(0), Error);
}

}  // namespace
}  // namespace veil::test
