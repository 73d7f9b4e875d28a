// Independent-reference tests for the RNS basis changes (CRT composition,
// rounding into residues, rescale, ModUp, ModDown, the key-switching inner
// product): every residue is checked exactly against big-integer arithmetic
// done with NTL's ZZ on the CRT-lifted coefficients.
#include <algorithm>
#include <gtest/gtest.h>

#include <NTL/ZZ.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu_backend.hpp"
#include "arith/rns_convert.hpp"
#include "veil/backend.hpp"
#include "veil/error.hpp"
#include "veil/params.hpp"

namespace {

using NTL::ZZ;

ZZ zz(uint64_t v) { return NTL::conv<ZZ>(static_cast<unsigned long>(v)); }
uint64_t u64(const ZZ& v) { return NTL::conv<unsigned long>(v); }
// Residue in [0, q) of any (possibly negative) integer.
uint64_t residue(const ZZ& x, uint64_t q) {
  ZZ r = x % zz(q);
  if (r < 0) r += zz(q);
  return u64(r);
}
uint64_t below(std::mt19937_64& rng, uint64_t bound) {
  return std::uniform_int_distribution<uint64_t>(0, bound - 1)(rng);
}

ZZ product(const std::vector<uint64_t>& moduli) {
  ZZ m(1);
  for (uint64_t q : moduli) m *= zz(q);
  return m;
}

// Textbook CRT: x = sum_i r_i * [(M/m_i)^-1]_{m_i} * (M/m_i) mod M, in [0, M).
class Crt {
 public:
  explicit Crt(std::vector<uint64_t> moduli) : moduli_(std::move(moduli)), m_(product(moduli_)) {
    for (uint64_t q : moduli_) {
      ZZ hat = m_ / zz(q);
      coef_.push_back(hat * NTL::InvMod(hat % zz(q), zz(q)));
    }
  }
  const ZZ& modulus() const { return m_; }
  // residues[i * stride] is the residue mod moduli[i].
  ZZ lift(const uint64_t* residues, size_t stride) const {
    ZZ x(0);
    for (size_t i = 0; i < moduli_.size(); ++i) x += zz(residues[i * stride]) * coef_[i];
    return x % m_;
  }

 private:
  std::vector<uint64_t> moduli_;
  ZZ m_;
  std::vector<ZZ> coef_;
};

// Fast base conversion of residues over `from`: the integer
// sum_i [x_i * (D/d_i)^-1]_{d_i} * (D/d_i), which is = x mod D and lies in [0, count * D).
ZZ fast_base_conv(const std::vector<uint64_t>& from, const uint64_t* residues, size_t stride) {
  const ZZ d = product(from);
  ZZ y(0);
  for (size_t i = 0; i < from.size(); ++i) {
    const ZZ di = zz(from[i]), hat = d / di;
    y += ((zz(residues[i * stride]) * NTL::InvMod(hat % di, di)) % di) * hat;
  }
  return y;
}

struct RnsConfig {
  std::string name;
  std::vector<int> q_bits, p_bits;
};
// Names the configuration in gtest failure messages instead of dumping bytes.
void PrintTo(const RnsConfig& cfg, std::ostream* os) { *os << cfg.name; }

struct Env {
  std::shared_ptr<const veil::RnsTables> tables;
  std::shared_ptr<veil::Backend> backend;
  veil::CpuBackend* cpu = nullptr;
};

const Env& env(const RnsConfig& cfg) {
  static std::map<std::string, Env> cache;
  auto it = cache.find(cfg.name);
  if (it != cache.end()) return it->second;
  veil::ParameterSpec spec;
  spec.log_n = 12;
  spec.q_bits = cfg.q_bits;
  spec.p_bits = cfg.p_bits;
  spec.security = veil::Security::InsecureTestingOnly;
  Env e;
  e.tables = veil::RnsTables::build(veil::Parameters::create(spec));
  e.backend = veil::make_backend(veil::BackendKind::Cpu, e.tables);
  e.cpu = dynamic_cast<veil::CpuBackend*>(e.backend.get());
  return cache.emplace(cfg.name, std::move(e)).first->second;
}

class NtlRns : public ::testing::TestWithParam<RnsConfig> {
 protected:
  void SetUp() override {
    const Env& e = env(GetParam());
    t_ = e.tables.get();
    be_ = e.backend.get();
    cpu_ = e.cpu;
    ASSERT_NE(cpu_, nullptr);
    n_ = t_->n;
  }
  uint64_t prime(veil::Basis b, uint32_t limb) const { return t_->primes[t_->prime_index(b, limb)]; }
  std::vector<uint64_t> primes(veil::Basis b) const {
    std::vector<uint64_t> out;
    for (uint32_t l = 0; l < t_->limbs(b); ++l) out.push_back(prime(b, l));
    return out;
  }
  // Uniform residues on every limb of b, i.e. a uniform polynomial mod the basis product.
  std::vector<uint64_t> random_poly(veil::Basis b) {
    std::vector<uint64_t> a(t_->limbs(b) * n_);
    for (uint32_t l = 0; l < t_->limbs(b); ++l)
      for (size_t c = 0; c < n_; ++c) a[l * n_ + c] = below(rng_, prime(b, l));
    return a;
  }
  // Overwrites coefficient c of a with the residues of x.
  void set_coeff(std::vector<uint64_t>& a, veil::Basis b, size_t c, const ZZ& x) const {
    for (uint32_t l = 0; l < t_->limbs(b); ++l) a[l * n_ + c] = residue(x, prime(b, l));
  }
  // Inverse NTT of one limb with the backend's per-prime table.
  std::vector<uint64_t> limb_to_coeff(const uint64_t* limb, uint32_t prime_index) const {
    std::vector<uint64_t> v(limb, limb + n_);
    cpu_->ntt_table(prime_index).inverse(v.data());
    return v;
  }

  const veil::RnsTables* t_ = nullptr;
  veil::Backend* be_ = nullptr;
  veil::CpuBackend* cpu_ = nullptr;
  size_t n_ = 0;
  std::mt19937_64 rng_{0x4e544c};
};

TEST_P(NtlRns, CrtComposerMatchesCenteredNtlCrt) {
  for (uint32_t limbs = 1; limbs <= t_->max_level + 1; ++limbs) {
    SCOPED_TRACE(limbs);
    const veil::Basis b{limbs, false};
    const auto qs = primes(b);
    const Crt crt(qs);
    const ZZ& q = crt.modulus();
    const veil::rns::CrtComposer composer(*t_, limbs);
    // Edge values: 0, +-1, the two ends of the centered range, and +-(2^53 - 1).
    std::vector<ZZ> values = {ZZ(0), ZZ(1), q - 1, (q - 1) / 2, (q + 1) / 2, q / 2 + 2};
    const ZZ big53 = NTL::power2_ZZ(53) - 1;
    if (big53 < q / 2) values.insert(values.end(), {big53, q - big53});
    std::vector<uint64_t> res(limbs * 3);
    for (int i = 0; i < 200 + static_cast<int>(values.size()); ++i) {
      ZZ x;
      if (i < static_cast<int>(values.size())) {
        x = values[i];
      } else if (i % 2) {
        for (uint32_t l = 0; l < limbs; ++l) res[l] = below(rng_, qs[l]);
        x = crt.lift(res.data(), 1);
      } else {
        // Small values, where the double must be exact.
        x = zz(rng_() >> (11 + below(rng_, 50)));
        if (rng_() & 1) x = q - x;
        x %= q;
      }
      // Strided residues, as the decoder passes them.
      for (uint32_t l = 0; l < limbs; ++l) res[l * 3] = residue(x, qs[l]);
      ZZ centered = x;
      if (2 * centered > q) centered -= q;  // (-Q/2, Q/2]; Q is odd
      const double got = composer.compose(res.data(), 3);
      const double expect = NTL::conv<double>(centered);
      if (NTL::NumBits(centered) <= 53) {
        ASSERT_EQ(got, expect) << "x = " << centered;
      } else {
        ASSERT_LE(std::fabs(got - expect), 1e-15 * std::fabs(expect)) << "x = " << centered;
        ASSERT_EQ(std::signbit(got), centered < 0);
      }
    }
  }
}

TEST_P(NtlRns, RoundToRnsMatchesNtlResidues) {
  const veil::Basis b{t_->max_level + 1, true};
  const auto qs = primes(b);
  std::vector<uint64_t> out(qs.size() * 2);
  std::vector<double> values = {0.0, -0.0, 0.4, -0.4, 1.0, -1.0, 0x1p52, -0x1p53, 0x1p63, -0x1p63,
                                0x1p63 - 1024, 0x1p64, 0x1p119 * 1.999, -0x1p119 * 1.5};
  for (int e = 0; e < 120; ++e) {
    for (int k = 0; k < 4; ++k) {
      double v = std::ldexp(std::uniform_real_distribution<double>(1.0, 2.0)(rng_), e);
      if (e < 119 || v < 0x1p120) values.push_back(k % 2 ? -v : v);
    }
  }
  for (double v : values) {
    SCOPED_TRACE(v);
    veil::rns::round_to_rns(v, *t_, b, out.data(), 2);
    const double r = std::nearbyint(v);
    ZZ x = NTL::conv<ZZ>(r);  // r is an integer, so the conversion is exact
    for (size_t l = 0; l < qs.size(); ++l) ASSERT_EQ(out[l * 2], residue(x, qs[l])) << "limb " << l;
  }
  EXPECT_THROW(veil::rns::round_to_rns(0x1p120, *t_, b, out.data()), veil::Error);
  EXPECT_THROW(veil::rns::round_to_rns(std::nan(""), *t_, b, out.data()), veil::Error);
  EXPECT_THROW(veil::rns::round_to_rns(-INFINITY, *t_, b, out.data()), veil::Error);
}

TEST_P(NtlRns, RescaleIsRoundedDivisionOfTheLift) {
  for (uint32_t level = 1; level <= t_->max_level; ++level) {
    SCOPED_TRACE(level);
    const veil::Basis b{level + 1, false}, lower{level, false};
    const Crt crt(primes(b));
    const ZZ& q = crt.modulus();
    const uint64_t ql = t_->primes[level];
    const ZZ h = zz(ql / 2);
    auto x = random_poly(b);
    // Pin some coefficients to the rounding boundaries ([x]_{q_l} = h, h + 1, ...) and range ends.
    std::vector<ZZ> edges = {ZZ(0), q - 1, q - h, q - h - 1, h, h + 1, h - 1, zz(ql - 1), zz(ql)};
    for (uint64_t target : {ql / 2 - 1, ql / 2, ql / 2 + 1, ql - 1, uint64_t{0}}) {
      ZZ base = crt.lift(x.data() + 20 + edges.size(), n_);
      edges.push_back((base - base % zz(ql) + zz(target)) % q);
    }
    for (size_t c = 0; c < edges.size(); ++c) set_coeff(x, b, c, edges[c]);

    std::vector<uint64_t> in = x;
    be_->ntt_forward(b, in.data());
    std::vector<uint64_t> data(static_cast<size_t>(level) * n_), aliased = in;
    be_->rescale(level, in.data(), data.data());
    be_->rescale(level, aliased.data(), aliased.data());  // out may alias in
    ASSERT_TRUE(std::equal(data.begin(), data.end(), aliased.begin()));
    be_->ntt_inverse(lower, data.data());
    for (size_t c = 0; c < n_; ++c) {
      // floor((x + floor(q_l/2)) / q_l) = round(x / q_l) for x in [0, Q_l) (q_l is odd: no ties).
      const ZZ expect = (crt.lift(x.data() + c, n_) + h) / zz(ql);
      for (uint32_t i = 0; i < level; ++i)
        ASSERT_EQ(data[i * n_ + c], residue(expect, t_->primes[i])) << "coeff " << c << " limb " << i;
    }
  }
  std::vector<uint64_t> dummy(n_ * (t_->max_level + 1));
  EXPECT_THROW(be_->rescale(0, dummy.data(), dummy.data()), veil::Error);
}

TEST_P(NtlRns, ModUpIsFastBaseConversionOfTheDigit) {
  const uint32_t alpha = t_->alpha;
  for (uint32_t level = 0; level <= t_->max_level; ++level) {
    const veil::Basis q_basis{level + 1, false}, qp{level + 1, true};
    const uint32_t limbs = t_->limbs(qp);
    const auto x = random_poly(q_basis);
    std::vector<uint64_t> x_ntt = x;
    be_->ntt_forward(q_basis, x_ntt.data());
    ASSERT_EQ(t_->digits(level), (level + alpha) / alpha);
    for (uint32_t digit = 0; digit < t_->digits(level); ++digit) {
      SCOPED_TRACE(::testing::Message() << "level " << level << " digit " << digit);
      // Digit j covers Q-limbs [j * alpha, min((j + 1) * alpha, level + 1)).
      const uint32_t first = digit * alpha, count = std::min(alpha, level + 1 - first);
      ASSERT_EQ(t_->mod_up[level][digit].first, first);
      ASSERT_EQ(t_->mod_up[level][digit].count, count);
      const std::vector<uint64_t> d(t_->primes.begin() + first, t_->primes.begin() + first + count);
      const ZZ dz = product(d);

      std::vector<uint64_t> out(limbs * n_, ~uint64_t{0});  // not a residue: unwritten limbs show
      be_->mod_up(level, digit, out.data(), x.data(), x_ntt.data());
      std::vector<ZZ> y(n_);
      for (size_t c = 0; c < n_; ++c) {
        y[c] = fast_base_conv(d, x.data() + first * n_ + c, n_);
        // The reference itself: y = x mod D, 0 <= y < count * D.
        ASSERT_TRUE(y[c] >= 0 && y[c] < zz(count) * dz);
        ASSERT_EQ(residue(y[c], d[0]), x[first * n_ + c]);
      }
      for (uint32_t limb = 0; limb < limbs; ++limb) {
        if (limb >= first && limb < first + count) {
          // The digit's own limbs are copied unchanged (NTT form).
          ASSERT_TRUE(std::equal(out.begin() + limb * n_, out.begin() + (limb + 1) * n_,
                                 x_ntt.begin() + limb * n_))
              << "limb " << limb;
          continue;
        }
        const uint32_t pi = t_->prime_index(qp, limb);
        const auto got = limb_to_coeff(out.data() + limb * n_, pi);
        for (size_t c = 0; c < n_; ++c)
          ASSERT_EQ(got[c], residue(y[c], t_->primes[pi])) << "limb " << limb << " coeff " << c;
      }
    }
  }
}

TEST_P(NtlRns, ModDownIsRoundedDivisionByP) {
  const uint32_t alpha = t_->alpha;
  const veil::Basis p_only{0, true};
  const auto ps = primes(p_only);
  const ZZ p = product(ps);
  for (uint32_t level = 0; level <= t_->max_level; ++level) {
    SCOPED_TRACE(level);
    const veil::Basis q_basis{level + 1, false}, qp{level + 1, true};
    const Crt crt_qp(primes(qp));
    auto x = random_poly(qp);
    // Coefficients whose P part is 0 or P - 1 everywhere, the conversion's extremes.
    for (uint32_t k = 0; k < alpha; ++k) {
      x[(level + 1 + k) * n_ + 0] = 0;
      x[(level + 1 + k) * n_ + 1] = ps[k] - 1;
    }
    std::vector<uint64_t> in = x, out((level + 1) * n_);
    be_->ntt_forward(qp, in.data());
    be_->mod_down(level, out.data(), in.data());
    be_->ntt_inverse(q_basis, out.data());
    for (size_t c = 0; c < n_; ++c) {
      // round(X / P) for the lift X in [0, QP); P is odd, so there are no ties.
      const ZZ lift = crt_qp.lift(x.data() + c, n_);
      const ZZ expect = (2 * lift + p) / (2 * p);
      for (uint32_t i = 0; i <= level; ++i)
        ASSERT_EQ(out[i * n_ + c], residue(expect, t_->primes[i])) << "coeff " << c << " limb " << i;
    }
  }
}

// ModDown and rescale at once: out = round(Y / (q_l P)) for the lift Y in [0, Q_l P) of
// x + P add (the second half without an addend: round(X / (q_l P))), over Q_{l-1}.
TEST_P(NtlRns, ModDownRescaleIsRoundedDivisionByQlP) {
  const uint32_t alpha = t_->alpha;
  const ZZ p = product(primes(veil::Basis{0, true}));
  for (uint32_t level = 1; level <= t_->max_level; ++level) {
    SCOPED_TRACE(level);
    const veil::Basis q_basis{level + 1, false}, qp{level + 1, true}, lower{level, false};
    const Crt crt_qp(primes(qp));
    const ZZ d = p * zz(t_->primes[level]);
    auto x0 = random_poly(qp), x1 = random_poly(qp), add = random_poly(q_basis);
    for (uint32_t k = 0; k <= alpha; ++k) {  // D's limbs (q_l, P) at their extremes
      const uint32_t limb = level + k;
      x0[limb * n_ + 0] = 0;
      x0[limb * n_ + 1] = prime(qp, limb) - 1;
    }
    // The residues of x0 + P add: P add vanishes mod every p_k.
    std::vector<uint64_t> y0 = x0;
    for (uint32_t i = 0; i <= level; ++i)
      for (size_t c = 0; c < n_; ++c) {
        const uint64_t q = t_->primes[i];
        y0[i * n_ + c] = residue(zz(x0[i * n_ + c]) + p * zz(add[i * n_ + c]), q);
      }
    const size_t words = x0.size();
    std::vector<uint64_t> in(2 * words), a = add, out0(level * n_), out1(level * n_);
    std::copy(x0.begin(), x0.end(), in.begin());
    std::copy(x1.begin(), x1.end(), in.begin() + words);
    be_->ntt_forward(qp, in.data());
    be_->ntt_forward(qp, in.data() + words);
    be_->ntt_forward(q_basis, a.data());
    be_->mod_down_rescale_pair(level, out0.data(), out1.data(), in.data(), a.data(), nullptr);
    be_->ntt_inverse(lower, out0.data());
    be_->ntt_inverse(lower, out1.data());
    for (size_t c = 0; c < n_; ++c) {
      // D is odd, so there are no ties.
      const ZZ e0 = (2 * crt_qp.lift(y0.data() + c, n_) + d) / (2 * d);
      const ZZ e1 = (2 * crt_qp.lift(x1.data() + c, n_) + d) / (2 * d);
      for (uint32_t i = 0; i < level; ++i) {
        ASSERT_EQ(out0[i * n_ + c], residue(e0, t_->primes[i])) << "with the addend: coeff " << c << " limb " << i;
        ASSERT_EQ(out1[i * n_ + c], residue(e1, t_->primes[i])) << "no addend: coeff " << c << " limb " << i;
      }
    }
  }
  std::vector<uint64_t> scratch(2 * t_->limbs(veil::Basis{1, true}) * n_), out(2 * n_);
  EXPECT_THROW(be_->mod_down_rescale_pair(0, out.data(), out.data() + n_, scratch.data(), nullptr, nullptr),
               veil::Error);
}

TEST_P(NtlRns, ModDownRoundsExactMultiplesOfPPlusNoise) {
  const ZZ p = product(primes(veil::Basis{0, true}));
  for (uint32_t level = 0; level <= t_->max_level; ++level) {
    SCOPED_TRACE(level);
    const veil::Basis q_basis{level + 1, false}, qp{level + 1, true};
    const Crt crt_q(primes(q_basis));
    const ZZ& q = crt_q.modulus();
    const auto m = random_poly(q_basis);
    std::vector<uint64_t> x(t_->limbs(qp) * n_);
    std::vector<ZZ> m_lift(n_), e(n_);
    for (size_t c = 0; c < n_; ++c) {
      m_lift[c] = crt_q.lift(m.data() + c, n_);
      // x = P * m + e with e anywhere in (-P, P), including its ends and 0.
      if (c < 5) {
        const ZZ ends[] = {ZZ(0), ZZ(1), ZZ(-1), p - 1, 1 - p};
        e[c] = ends[c];
      } else {
        NTL::RandomBnd(e[c], 2 * p - 1);
        e[c] -= p - 1;
      }
      set_coeff(x, qp, c, p * m_lift[c] + e[c]);
    }
    std::vector<uint64_t> out((level + 1) * n_);
    be_->ntt_forward(qp, x.data());
    be_->mod_down(level, out.data(), x.data());
    be_->ntt_inverse(q_basis, out.data());
    for (size_t c = 0; c < n_; ++c) {
      ZZ diff = (crt_q.lift(out.data() + c, n_) - m_lift[c]) % q;
      if (2 * diff > q) diff -= q;
      // Exactly m + round(e / P): the result is rounded, never floored.
      ZZ want = e[c] >= 0 ? (2 * e[c] + p) / (2 * p) : -((-2 * e[c] + p) / (2 * p));
      ASSERT_EQ(diff, want) << "coeff " << c << " e " << e[c];
    }
  }
}

// multiply_sum (the diagonal method's inner sums): every word against NTL's exact sum
// of products, for term counts around the 32-term reduction, with and without an
// accumulator, on both polynomials of a ciphertext; the Backend default (a multiply
// and multiply_accumulate per term) gives the same words.
TEST_P(NtlRns, MultiplySumMatchesExactSums) {
  const veil::Basis b{t_->max_level + 1, true};
  const auto qs = primes(b);
  const size_t words = qs.size() * n_;
  for (size_t terms : {size_t{0}, size_t{1}, size_t{32}, size_t{33}, size_t{70}}) {
    std::vector<std::vector<uint64_t>> xs(terms), ys(terms);
    std::vector<const uint64_t*> xp, yp;
    for (size_t t = 0; t < terms; ++t) {
      xs[t] = random_poly(b);
      const auto second = random_poly(b);
      xs[t].insert(xs[t].end(), second.begin(), second.end());  // two polynomials
      ys[t] = random_poly(b);
      for (size_t i = 0; i < 4; ++i) xs[t][i * 7] = qs[0] - 1, ys[t][i * 7] = qs[0] - 1;  // the largest products
      xp.push_back(xs[t].data());
      yp.push_back(ys[t].data());
    }
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(testing::Message() << terms << " terms, accumulate " << accumulate);
      auto start = random_poly(b);
      const auto second = random_poly(b);
      start.insert(start.end(), second.begin(), second.end());
      std::vector<uint64_t> got = start, by_default = start;
      be_->multiply_sum(b, 2, terms, xp.data(), yp.data(), got.data(), accumulate);
      be_->veil::Backend::multiply_sum(b, 2, terms, xp.data(), yp.data(), by_default.data(), accumulate);
      ASSERT_EQ(got, by_default);
      for (size_t k = 0; k < 2 * words; k += 97) {  // a spread of words of both polynomials
        const size_t w = k % words;
        const ZZ q = zz(qs[w / n_]);
        ZZ sum = accumulate ? zz(start[k]) : ZZ(0);
        for (size_t t = 0; t < terms; ++t) sum += zz(xs[t][k]) * zz(ys[t][w]);
        ASSERT_EQ(got[k], u64(sum % q)) << "word " << k;
      }
    }
  }
}

TEST_P(NtlRns, KeySwitchInnerProductMatchesNtl) {
  const uint32_t big_l = t_->max_level, dnum = t_->digits(big_l);
  const veil::Basis full{big_l + 1, true};
  const size_t key_poly = t_->limbs(full) * n_;
  // key[j][s] is a top-level polynomial over Q_L u P; edge value q - 1 in coefficient 0.
  std::vector<uint64_t> key(2 * dnum * key_poly);
  for (uint32_t js = 0; js < 2 * dnum; ++js) {
    auto k = random_poly(full);
    for (uint32_t l = 0; l < t_->limbs(full); ++l) k[l * n_] = prime(full, l) - 1;
    std::copy(k.begin(), k.end(), key.begin() + js * key_poly);
  }
  for (uint32_t level = 0; level <= big_l; ++level) {
    const veil::Basis qp{level + 1, true};
    const uint32_t limbs = t_->limbs(qp);
    for (uint32_t nd : {uint32_t{1}, t_->digits(level), dnum}) {
      SCOPED_TRACE(::testing::Message() << "level " << level << " digits " << nd);
      std::vector<uint64_t> digits(nd * limbs * n_);
      for (uint32_t j = 0; j < nd; ++j) {
        auto d = random_poly(qp);
        for (uint32_t l = 0; l < limbs; ++l) d[l * n_] = prime(qp, l) - 1;
        std::copy(d.begin(), d.end(), digits.begin() + j * limbs * n_);
      }
      std::vector<uint64_t> out0(limbs * n_), out1(limbs * n_);
      be_->key_switch_inner_product(level, nd, digits.data(), key.data(), out0.data(), out1.data());
      for (uint32_t limb = 0; limb < limbs; ++limb) {
        const uint32_t pi = t_->prime_index(qp, limb);
        const ZZ q = zz(t_->primes[pi]);
        for (size_t c = 0; c < n_; ++c) {
          ZZ acc0(0), acc1(0);
          for (uint32_t j = 0; j < nd; ++j) {
            const ZZ dj = zz(digits[(j * limbs + limb) * n_ + c]);
            acc0 += dj * zz(key[(2 * j) * key_poly + pi * n_ + c]);
            acc1 += dj * zz(key[(2 * j + 1) * key_poly + pi * n_ + c]);
          }
          ASSERT_EQ(out0[limb * n_ + c], u64(acc0 % q)) << "limb " << limb << " coeff " << c;
          ASSERT_EQ(out1[limb * n_ + c], u64(acc1 % q)) << "limb " << limb << " coeff " << c;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    NtlConfigs, NtlRns,
    ::testing::Values(RnsConfig{"dnum2", {50, 40, 40, 40}, {55, 55}},
                      RnsConfig{"dnum1", {50, 40, 40, 40}, {60, 60, 60, 60}},     // one digit, big P
                      RnsConfig{"alpha1", {50, 40, 40, 40}, {61}},                // single-limb digits
                      RnsConfig{"uneven", {60, 59, 61, 30, 20}, {61, 61, 61}}),  // partial last digit
    [](const ::testing::TestParamInfo<RnsConfig>& info) { return info.param.name; });

// Many 60-bit limbs: the composer's multi-word accumulation and its reduction loop.
TEST(NtlRnsWide, CrtComposerManyLimbs) {
  veil::ParameterSpec spec;
  spec.log_n = 12;
  spec.q_bits.assign(40, 60);
  spec.q_bits[0] = 61;
  spec.p_bits = {61};
  spec.security = veil::Security::InsecureTestingOnly;
  const auto tables = veil::RnsTables::build(veil::Parameters::create(spec));
  std::mt19937_64 rng(0x3103);
  for (uint32_t limbs : {2u, 7u, 20u, 40u}) {
    SCOPED_TRACE(limbs);
    const std::vector<uint64_t> qs(tables->primes.begin(), tables->primes.begin() + limbs);
    const Crt crt(qs);
    const ZZ& q = crt.modulus();
    const veil::rns::CrtComposer composer(*tables, limbs);
    std::vector<uint64_t> res(limbs);
    for (int i = 0; i < 300; ++i) {
      for (uint32_t l = 0; l < limbs; ++l) res[l] = i == 0 ? qs[l] - 1 : i == 1 ? 0 : below(rng, qs[l]);
      ZZ x = crt.lift(res.data(), 1);
      if (i % 3 == 2) {  // a value of random size, so big and small magnitudes both appear
        x = x >> static_cast<long>(below(rng, NTL::NumBits(q)));
        if (i % 2) x = q - x;
        x %= q;
        for (uint32_t l = 0; l < limbs; ++l) res[l] = residue(x, qs[l]);
      }
      if (2 * x > q) x -= q;
      const double got = composer.compose(res.data(), 1), expect = NTL::conv<double>(x);
      const long bits = NTL::NumBits(x);
      if (bits <= 53) {
        ASSERT_EQ(got, expect) << x;
      } else if (bits <= 1000) {
        ASSERT_LE(std::fabs(got - expect), 1e-15 * std::fabs(expect)) << x;
      } else if (bits >= 1030) {
        // Beyond the double range (Q here has up to 2400 bits) the result saturates to +-inf.
        ASSERT_EQ(got, x < 0 ? -INFINITY : INFINITY) << x;
      }
    }
  }
}

}  // namespace
