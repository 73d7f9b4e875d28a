// Integer linear combinations of ciphertexts (veil/combination.hpp): exact against the
// evaluator's own multiply_integer and add (word for word), on primes below 2^50 (the
// cpu's IFMA path) and of 60 bits (the 128-bit path); the real-weight form decrypts to
// W x; every misuse is refused. NTL checks the arithmetic itself in test_arith_ntl.
#include <gtest/gtest.h>

#include <random>

#include "test_util.hpp"
#include "veil/combination.hpp"

namespace veil {
namespace {

using test::Keyed;
using test::words_of;
using Entry = CombinationMatrix::Entry;

Parameters small_primes(int bits) {
  ParameterSpec s;
  s.log_n = 12;
  s.q_bits = {bits, bits, bits};
  s.p_bits = {bits};
  s.default_scale = std::ldexp(1.0, bits - 10);
  s.security = Security::InsecureTestingOnly;  // a test of arithmetic, not of security
  return Parameters::create(s);
}

class CombinationExact : public ::testing::TestWithParam<int> {};

// Rows: empty, one entry, a negative and a zero weight, and 5000 entries over three
// columns (beyond the IFMA path's 4095-term reduction step).
TEST_P(CombinationExact, EqualsSumsOfIntegerProducts) {
  Keyed k(small_primes(GetParam()), 3, false);
  const size_t columns = 4;
  std::vector<Ciphertext> in;
  for (size_t i = 0; i < columns; ++i) in.push_back(k.encrypt(test::random_reals(k.slots(), 10 + i)));
  std::mt19937_64 rng(5);
  std::vector<std::vector<Entry>> rows(4);
  rows[1] = {{2, 7}};
  rows[2] = {{0, -3}, {1, 0}, {3, 123456789}, {0, 2}};
  for (int e = 0; e < 5000; ++e) rows[3].push_back({static_cast<uint32_t>(rng() % 3), double(int64_t(rng() % 2001) - 1000)});
  for (uint32_t level : {2u, 1u}) {
    const CombinationMatrix m(k.ctx, columns, rows, level, 1.0);
    EXPECT_EQ(m.entries(), 1 + 3 + 5000 - std::count_if(rows[3].begin(), rows[3].end(), [](const Entry& e) { return e.weight == 0; }));
    const auto out = k.eval->combine(in, m);
    ASSERT_EQ(out.size(), rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      Ciphertext want = k.eval->multiply_integer(k.eval->mod_switch_to(in[0], level), 0);
      for (const Entry& e : rows[r])
        want = k.eval->add(want, k.eval->multiply_integer(k.eval->mod_switch_to(in[e.column], level),
                                                           static_cast<int64_t>(e.weight)));
      EXPECT_EQ(out[r].level(), level);
      EXPECT_EQ(out[r].scale(), in[0].scale());
      EXPECT_EQ(words_of(out[r]), words_of(want)) << "row " << r << ", level " << level;
    }
    // Accumulating twice doubles.
    std::vector<Ciphertext> acc = out;
    k.eval->combine_into(acc, in, m);
    for (size_t r = 0; r < rows.size(); ++r) EXPECT_EQ(words_of(acc[r]), words_of(k.eval->add(out[r], out[r])));
  }
}

INSTANTIATE_TEST_SUITE_P(Primes, CombinationExact, ::testing::Values(30, 49, 60),
                         [](const auto& info) { return std::to_string(info.param) + "bit"; });

// Real weights at the level's last prime, rescaled: W x to the scheme's precision,
// with a slice of columns at a time (combine_into) giving the same words as the whole.
TEST(Combination, RealWeightsDecryptToTheMatrixProduct) {
  Keyed& k = Keyed::preset(13);
  const size_t columns = 6, rows = 3;
  std::vector<Ciphertext> in;
  std::vector<std::vector<double>> x;
  for (size_t i = 0; i < columns; ++i) {
    x.push_back(test::random_reals(k.slots(), 40 + i));
    in.push_back(k.encrypt(x.back()));
  }
  std::vector<std::vector<Entry>> w(rows);
  const auto values = test::random_reals(rows * columns, 9, -2, 2);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < columns; ++c) w[r].push_back({static_cast<uint32_t>(c), values[r * columns + c]});
  const uint32_t level = in[0].level();
  const double q = static_cast<double>(k.ctx->params().q()[level]);
  const CombinationMatrix m(k.ctx, columns, w, level, q);
  const auto out = k.eval->combine(in, m);
  for (size_t r = 0; r < rows; ++r) {
    const auto got = k.decrypt(k.eval->rescale(out[r]));
    std::vector<double> want(k.slots(), 0.0);
    for (size_t c = 0; c < columns; ++c)
      for (size_t s = 0; s < want.size(); ++s) want[s] += values[r * columns + c] * x[c][s];
    const auto p = test::precision(want, got);
    EXPECT_GT(p.worst_bits, 20) << "row " << r;
  }
  // Two column slices accumulated equal the whole.
  std::vector<std::vector<Entry>> left(rows), right(rows);
  for (size_t r = 0; r < rows; ++r)
    for (const Entry& e : w[r]) (e.column < 2 ? left[r] : right[r]).push_back(e.column < 2 ? e : Entry{e.column - 2, e.weight});
  const CombinationMatrix ml(k.ctx, 2, left, level, q), mr(k.ctx, columns - 2, right, level, q);
  auto acc = k.eval->combine(std::span<const Ciphertext>(in).first(2), ml);
  k.eval->combine_into(acc, std::span<const Ciphertext>(in).subspan(2), mr);
  for (size_t r = 0; r < rows; ++r) EXPECT_EQ(words_of(acc[r]), words_of(out[r])) << "row " << r;
}

TEST(Combination, MisuseIsRefused) {
  Keyed& k = Keyed::preset(13);
  const auto x = k.encrypt(test::random_reals(k.slots(), 1));
  const uint32_t top = x.level();
  EXPECT_VEIL_ERROR(CombinationMatrix(k.ctx, 1, {{{1, 1.0}}}, top, 1), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(CombinationMatrix(k.ctx, 1, {{{0, std::nan("")}}}, top, 1), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(CombinationMatrix(k.ctx, 1, {{{0, 1e300}}}, top, 1), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(CombinationMatrix(k.ctx, 1, {{{0, 1}}}, top, 0.5), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(CombinationMatrix(k.ctx, 1, {{{0, 1}}}, top + 1, 1), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(CombinationMatrix(nullptr, 1, {{{0, 1}}}, top, 1), ErrorCode::ContextMismatch);
  const CombinationMatrix m(k.ctx, 2, {{{0, 1}, {1, 1}}}, top - 1, 1);
  const std::vector<Ciphertext> two{x, x};
  EXPECT_VEIL_ERROR(k.eval->combine(std::span<const Ciphertext>(two).first(1), m), ErrorCode::InvalidArgument);
  const std::vector<Ciphertext> low{k.eval->mod_switch_to(x, top - 2), x};
  EXPECT_VEIL_ERROR(k.eval->combine(low, m), ErrorCode::LevelMismatch);
  Ciphertext other_scale = x;
  other_scale.set_scale(x.scale() * 2);
  const std::vector<Ciphertext> mixed{x, other_scale};
  EXPECT_VEIL_ERROR(k.eval->combine(mixed, m), ErrorCode::ScaleMismatch);
  const std::vector<Ciphertext> sizes{x, k.eval->multiply_no_relin(x, x)};
  EXPECT_VEIL_ERROR(k.eval->combine(sizes, m), ErrorCode::InvalidArgument);
  Keyed& other = Keyed::preset(14);
  const CombinationMatrix foreign(other.ctx, 2, {{{0, 1}}}, 1, 1);
  EXPECT_VEIL_ERROR(k.eval->combine(two, foreign), ErrorCode::ContextMismatch);
  // Inputs above the matrix's level are brought down; outputs must match the sums.
  auto out = k.eval->combine(two, m);
  EXPECT_EQ(out[0].level(), top - 1);
  std::vector<Ciphertext> wrong{k.eval->mod_switch_to(out[0], top - 2)};
  EXPECT_VEIL_ERROR(k.eval->combine_into(wrong, two, m), ErrorCode::InvalidArgument);
  std::vector<Ciphertext> two_outputs{out[0], out[0]};
  EXPECT_VEIL_ERROR(k.eval->combine_into(two_outputs, two, m), ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace veil
