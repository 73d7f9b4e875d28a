// The OpenMP-parallel CPU primitives give the same bits with 1 and 2 threads, and
// several host threads can share one context and its keys (each in a StreamScope).
#include "test_util.hpp"
#include "veil/stream_scope.hpp"

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

// Three threads, one context, one set of keys, each thread in its own StreamScope
// (on the cpu a scope changes nothing; on cuda it is a stream of its own, see
// test_cuda_backend.cpp): the words each thread computes equal the sequential ones.
TEST(Threads, ThreadsShareAContextAndItsKeys) {
  Keyed& k = Keyed::preset(13);
  std::vector<Ciphertext> in;
  for (uint64_t i = 0; i < 3; ++i) in.push_back(k.encrypt(random_reals(k.slots(), 60 + i)));
  auto work = [&](const Ciphertext& a) {
    return words(k.eval->rotate(k.eval->rescale(k.eval->multiply(a, a, k.rk)), 1, k.gk));
  };
  std::vector<std::vector<uint64_t>> want, got(in.size());
  for (const auto& a : in) want.push_back(work(a));
  run_on_threads(in.size(), [&](size_t i) {
    StreamScope scope(k.ctx);
    got[i] = work(in[i]);
  });
  EXPECT_EQ(got, want);
  EXPECT_EQ(k.ctx->backend().create_stream(), nullptr);
  EXPECT_VEIL_ERROR(StreamScope(nullptr), ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace veil::test
