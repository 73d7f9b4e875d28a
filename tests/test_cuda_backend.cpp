// The cuda backend against the cpu backend, bit for bit: every primitive on
// the same random inputs, and every CKKS operation through two contexts (cpu,
// cuda) with the same parameters and the same insecure deterministic seeds.
// Equality of every 64-bit word, never closeness. Skips without a device.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>
#include <string>

#include "cuda_test_util.hpp"
#include "test_util.hpp"
#include "veil/backend.hpp"
#include "veil/nn/convnet.hpp"
#include "veil/stream_scope.hpp"

namespace veil::test {
namespace {

// ---- parameters ----

// Three, five, seven or ten q primes so that dnum 1, 2 and 3 are all exact
// (alpha = ceil((L+1)/dnum) gives back dnum digits), each within the 128-bit
// HE Standard bound for its N, with P larger than every digit.
Parameters dnum_params(uint32_t log_n, int dnum) {
  ParameterSpec spec;
  spec.log_n = log_n;
  int p_bits = 50;
  switch (log_n) {
    case 13:  // 80 + up to 120 bits <= 218
      spec.q_bits = {30, 25, 25};
      spec.default_scale = 0x1p25;
      p_bits = 40;
      break;
    case 14:  // 210 + up to 225 bits <= 438
      spec.q_bits = {50, 40, 40, 40, 40};
      p_bits = dnum == 1 ? 45 : 50;
      break;
    case 15:  // 300 + up to 350 bits <= 881
      spec.q_bits.assign(7, 40);
      spec.q_bits[0] = 60;
      break;
    default:  // 2^16: 420 + up to 500 bits <= 1772
      spec.q_bits.assign(10, 40);
      spec.q_bits[0] = 60;
      break;
  }
  spec.with_dnum(dnum, p_bits);
  return Parameters::create(spec);
}

// dnum 0 means the preset for log_n.
Parameters params_for(uint32_t log_n, int dnum) {
  return dnum == 0 ? Parameters::preset(log_n) : dnum_params(log_n, dnum);
}

struct Case {
  uint32_t log_n;
  int dnum;  // 0: preset
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return "N2e" + std::to_string(info.param.log_n) +
         (info.param.dnum == 0 ? std::string("_preset") : "_dnum" + std::to_string(info.param.dnum));
}

std::vector<Case> all_cases(bool with_presets) {
  std::vector<Case> cases;
  for (uint32_t log_n = 13; log_n <= 16; ++log_n) {
    if (with_presets) cases.push_back({log_n, 0});
    for (int dnum = 1; dnum <= 3; ++dnum) cases.push_back({log_n, dnum});
  }
  return cases;
}

// ---- primitives: one cpu and one cuda backend over the same tables ----

struct Backends {
  std::shared_ptr<const RnsTables> tables;
  std::shared_ptr<Backend> cpu, gpu;
  std::mt19937_64 rng{12345};

  explicit Backends(const Parameters& params)
      : tables(RnsTables::build(params)),
        cpu(make_backend(BackendKind::Cpu, tables)),
        gpu(make_backend(BackendKind::Cuda, tables)) {}

  const RnsTables& t() const { return *tables; }
  uint64_t n() const { return tables->n; }
  size_t words(Basis b, size_t polys = 1) const { return polys * tables->limbs(b) * tables->n; }
  uint64_t prime(Basis b, uint32_t limb) const { return tables->primes[tables->prime_index(b, limb)]; }

  // Residues below q (or below 4q when lazy, as the forward NTT accepts) for every limb of b.
  std::vector<uint64_t> random(Basis b, size_t polys = 1, bool lazy = false) {
    std::vector<uint64_t> v(words(b, polys));
    const uint32_t limbs = tables->limbs(b);
    for (size_t p = 0; p < polys; ++p)
      for (uint32_t limb = 0; limb < limbs; ++limb) {
        const uint64_t q = prime(b, limb), bound = lazy ? 4 * q : q;
        uint64_t* d = v.data() + (p * limbs + limb) * n();
        for (uint64_t c = 0; c < n(); ++c) d[c] = rng() % bound;
        d[0] = bound - 1;  // the extremes
        d[1] = 0;
      }
    return v;
  }
  std::vector<uint64_t> random_scalars(Basis b) {
    std::vector<uint64_t> s(tables->limbs(b));
    for (uint32_t limb = 0; limb < s.size(); ++limb) s[limb] = rng() % prime(b, limb);
    return s;
  }
  // The same host data on both backends.
  std::pair<Buffer, Buffer> put(const std::vector<uint64_t>& host) {
    Buffer a(cpu, host.size(), false, false), b(gpu, host.size(), false, false);
    a.from_host(host.data(), host.size());
    b.from_host(host.data(), host.size());
    return {std::move(a), std::move(b)};
  }
  // A random top-level switching key ([dnum][2][Q_L u P][N]) on both backends.
  std::pair<Buffer, Buffer> random_key() {
    const uint32_t top = t().max_level;
    return put(random(Basis{top + 1, true}, 2 * t().digits(top)));
  }
  // `count` random polynomials over Q_level (NTT form) on both backends, the cpu's
  // decompositions of them, and room for the device's.
  struct Inputs {
    std::vector<Buffer> in_c, in_g, dec_c, dec_g;
  };
  Inputs decomposable(uint32_t level, size_t count) {
    const Basis q{level + 1, false}, qp{level + 1, true};
    Inputs in;
    for (size_t i = 0; i < count; ++i) {
      auto [c, g] = put(random(q));
      in.in_c.push_back(std::move(c));
      in.in_g.push_back(std::move(g));
      in.dec_c.emplace_back(cpu, words(qp, t().digits(level)), false, true);
      in.dec_g.emplace_back(gpu, words(qp, t().digits(level)), false, true);
      cpu->key_switch_decompose(level, in.dec_c.back().data(), in.in_c.back().data());
    }
    return in;
  }
  std::pair<Buffer, Buffer> scratch(size_t words) {
    return {Buffer(cpu, words, false, true), Buffer(gpu, words, false, true)};
  }
  // A random polynomial over q on both backends, in coefficient form and in NTT form
  // (the cpu's transform of it).
  struct Forms {
    Buffer coeff_c, coeff_g, ntt_c, ntt_g;
  };
  Forms coeff_and_ntt(Basis q) {
    const auto coeff = random(q);
    auto [cc, cg] = put(coeff);
    Buffer ntt(cpu, coeff.size(), false, false);
    ntt.from_host(coeff.data(), coeff.size());
    cpu->ntt_forward(q, ntt.data());
    auto [nc, ng] = put(ntt.to_host());
    return {std::move(cc), std::move(cg), std::move(nc), std::move(ng)};
  }
};

class CudaPrimitives : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    VEIL_REQUIRE_CUDA();
    be_ = std::make_unique<Backends>(params_for(GetParam().log_n, GetParam().dnum));
  }
  Backends& be() { return *be_; }
  std::unique_ptr<Backends> be_;
};

TEST_P(CudaPrimitives, NttForwardAndInverse) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  for (Basis b : {Basis{L + 1, true}, Basis{L + 1, false}, Basis{1, false}, Basis{0, true}}) {
    for (bool lazy : {false, true}) {  // the forward NTT takes inputs below 4q
      auto [c, g] = B.put(B.random(b, 1, lazy));
      B.cpu->ntt_forward(b, c.data());
      B.gpu->ntt_forward(b, g.data());
      ASSERT_TRUE(same_words(c.to_host(), g.to_host(), B.n())) << "forward, lazy " << lazy << ", " << b.q_count;
    }
    auto [c, g] = B.put(B.random(b));
    B.cpu->ntt_inverse(b, c.data());
    B.gpu->ntt_inverse(b, g.data());
    ASSERT_TRUE(same_words(c.to_host(), g.to_host(), B.n())) << "inverse";
    B.cpu->ntt_forward(b, c.data());  // and back
    B.gpu->ntt_forward(b, g.data());
    ASSERT_TRUE(same_words(c.to_host(), g.to_host(), B.n())) << "round trip";
  }
}

TEST_P(CudaPrimitives, ElementWise) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  for (Basis b : {Basis{L + 1, true}, Basis{L, false}}) {
    const auto xs = B.random(b), ys = B.random(b), os = B.random(b);
    const auto s = B.random_scalars(b);
    auto [xc, xg] = B.put(xs);
    auto [yc, yg] = B.put(ys);
    using Op = void (*)(Backend&, Basis, uint64_t*, const uint64_t*, const uint64_t*, const uint64_t*);
    const std::vector<std::pair<const char*, Op>> ops = {
        {"add", [](Backend& e, Basis bs, uint64_t* o, const uint64_t* x, const uint64_t* y, const uint64_t*) { e.add(bs, o, x, y); }},
        {"sub", [](Backend& e, Basis bs, uint64_t* o, const uint64_t* x, const uint64_t* y, const uint64_t*) { e.sub(bs, o, x, y); }},
        {"negate", [](Backend& e, Basis bs, uint64_t* o, const uint64_t* x, const uint64_t*, const uint64_t*) { e.negate(bs, o, x); }},
        {"multiply", [](Backend& e, Basis bs, uint64_t* o, const uint64_t* x, const uint64_t* y, const uint64_t*) { e.multiply(bs, o, x, y); }},
        {"multiply_accumulate", [](Backend& e, Basis bs, uint64_t* o, const uint64_t* x, const uint64_t* y, const uint64_t*) { e.multiply_accumulate(bs, o, x, y); }},
        {"multiply_scalar", [](Backend& e, Basis bs, uint64_t* o, const uint64_t* x, const uint64_t*, const uint64_t* s) { e.multiply_scalar(bs, o, x, s); }},
        {"add_scalar", [](Backend& e, Basis bs, uint64_t* o, const uint64_t* x, const uint64_t*, const uint64_t* s) { e.add_scalar(bs, o, x, s); }},
    };
    for (const auto& [name, op] : ops) {
      auto [oc, og] = B.put(os);  // multiply_accumulate reads it
      op(*B.cpu, b, oc.data(), xc.data(), yc.data(), s.data());
      op(*B.gpu, b, og.data(), xg.data(), yg.data(), s.data());
      ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << name;
      // In place (out aliases x).
      auto [ac, ag] = B.put(xs);
      op(*B.cpu, b, ac.data(), ac.data(), yc.data(), s.data());
      op(*B.gpu, b, ag.data(), ag.data(), yg.data(), s.data());
      ASSERT_TRUE(same_words(ac.to_host(), ag.to_host(), B.n())) << name << " in place";
    }
    // add / sub on three polynomials in one call (cuda: one launch), against the cpu.
    {
      const auto x3 = B.random(b, 3), y3 = B.random(b, 3);
      auto [x3c, x3g] = B.put(x3);
      auto [y3c, y3g] = B.put(y3);
      for (bool subtract : {false, true}) {
        auto [o3c, o3g] = B.scratch(B.words(b, 3));
        if (subtract) {
          B.cpu->sub_polys(b, 3, o3c.data(), x3c.data(), y3c.data());
          B.gpu->sub_polys(b, 3, o3g.data(), x3g.data(), y3g.data());
        } else {
          B.cpu->add_polys(b, 3, o3c.data(), x3c.data(), y3c.data());
          B.gpu->add_polys(b, 3, o3g.data(), x3g.data(), y3g.data());
        }
        ASSERT_TRUE(same_words(o3c.to_host(), o3g.to_host(), B.n())) << (subtract ? "sub_polys" : "add_polys");
      }
    }
    // multiply / multiply_scalar of three polynomials by one y / one set of scalars.
    {
      const auto x3 = B.random(b, 3);
      for (bool scalar : {false, true}) {
        for (bool in_place : {false, true}) {
          auto [x3c, x3g] = B.put(x3);
          auto [o3c, o3g] = B.scratch(B.words(b, 3));
          uint64_t* outc = in_place ? x3c.data() : o3c.data();
          uint64_t* outg = in_place ? x3g.data() : o3g.data();
          if (scalar) {
            B.cpu->multiply_scalar_polys(b, 3, outc, x3c.data(), s.data());
            B.gpu->multiply_scalar_polys(b, 3, outg, x3g.data(), s.data());
          } else {
            B.cpu->multiply_polys(b, 3, outc, x3c.data(), yc.data());
            B.gpu->multiply_polys(b, 3, outg, x3g.data(), yg.data());
          }
          const Buffer& rc = in_place ? x3c : o3c;
          const Buffer& rg = in_place ? x3g : o3g;
          ASSERT_TRUE(same_words(rc.to_host(), rg.to_host(), B.n()))
              << (scalar ? "multiply_scalar_polys" : "multiply_polys") << (in_place ? " in place" : "");
        }
      }
    }
    // The tensor of two size-2 ciphertexts, and of one with itself (squaring).
    auto [zc, zg] = B.put(B.random(b));
    auto [tc, tg] = B.scratch(B.words(b, 3));
    const size_t w = B.words(b);
    for (bool square : {false, true}) {
      const uint64_t* b0c = square ? xc.data() : yc.data();
      const uint64_t* b1c = square ? zc.data() : xc.data();
      const uint64_t* b0g = square ? xg.data() : yg.data();
      const uint64_t* b1g = square ? zg.data() : xg.data();
      B.cpu->tensor(b, tc.data(), tc.data() + w, tc.data() + 2 * w, xc.data(), zc.data(), b0c, b1c);
      B.gpu->tensor(b, tg.data(), tg.data() + w, tg.data() + 2 * w, xg.data(), zg.data(), b0g, b1g);
      ASSERT_TRUE(same_words(tc.to_host(), tg.to_host(), B.n())) << (square ? "tensor (square)" : "tensor");
    }
  }
}

// Sparse integer combinations: rows with no entries, one entry, and more entries
// than the 32-term reduction step (repeated columns), replacing and accumulating.
TEST_P(CudaPrimitives, Combine) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  // 5 columns: the pointers travel in the launch's parameters; 500: in a table (the
  // 500 columns reuse 5 buffers, inputs are only read).
  for (const auto& [b, columns] : {std::pair{Basis{L + 1, false}, size_t{5}}, std::pair{Basis{1, false}, size_t{5}},
                                   std::pair{Basis{L + 1, false}, size_t{500}}}) {
    const size_t polys = 2, limbs = B.t().limbs(b), distinct = 5;
    std::vector<uint64_t> row_start{0}, cols;
    for (size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{70}}) {
      for (size_t e = 0; e < count; ++e) cols.push_back(B.rng() % columns);
      row_start.push_back(cols.size());
    }
    const size_t rows = row_start.size() - 1, entries = cols.size();
    std::vector<uint64_t> matrix = row_start;
    matrix.insert(matrix.end(), cols.begin(), cols.end());
    for (uint32_t limb = 0; limb < limbs; ++limb)
      for (size_t e = 0; e < entries; ++e) matrix.push_back(e % 3 == 0 ? B.prime(b, limb) - 1 : B.rng() % B.prime(b, limb));
    auto [mc, mg] = B.put(matrix);
    auto view = [&](const Buffer& m) {
      const uint64_t* base = m.data();
      return CombineMatrix{rows, entries, columns, static_cast<uint32_t>(limbs), base, base + rows + 1,
                           base + rows + 1 + entries};
    };
    std::vector<Buffer> in_c, in_g;
    for (size_t i = 0; i < distinct; ++i) {
      auto [c, g] = B.put(B.random(b, polys));
      in_c.push_back(std::move(c));
      in_g.push_back(std::move(g));
    }
    for (bool accumulate : {false, true}) {
      std::vector<Buffer> out_c, out_g;
      std::vector<const uint64_t*> ic, ig;
      std::vector<uint64_t*> oc, og;
      for (size_t i = 0; i < columns; ++i) ic.push_back(in_c[i % distinct].data()), ig.push_back(in_g[i % distinct].data());
      for (size_t r = 0; r < rows; ++r) {
        auto [c, g] = B.put(B.random(b, polys));
        out_c.push_back(std::move(c));
        out_g.push_back(std::move(g));
        oc.push_back(out_c.back().data());
        og.push_back(out_g.back().data());
      }
      B.cpu->combine(b, polys, view(mc), ic.data(), oc.data(), accumulate);
      B.gpu->combine(b, polys, view(mg), ig.data(), og.data(), accumulate);
      for (size_t r = 0; r < rows; ++r)
        ASSERT_TRUE(same_words(out_c[r].to_host(), out_g[r].to_host(), B.n()))
            << "row " << r << ", accumulate " << accumulate << ", limbs " << limbs << ", columns " << columns;
    }
  }
}

// Small signed coefficients (noise, a ternary secret, flooding up to 2^62) uploaded as
// residues: cuda converts on the device, the cpu on the host; the extremes included.
TEST_P(CudaPrimitives, UploadSigned) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  std::vector<int64_t> small(B.n());
  for (auto& v : small) v = static_cast<int64_t>(B.rng() % 43) - 21;
  small[0] = (int64_t{1} << 62) - 1;
  small[1] = -((int64_t{1} << 62) - 1);
  small[2] = 0;
  small[3] = -1;
  for (Basis b : {Basis{L + 1, true}, Basis{L + 1, false}, Basis{1, false}}) {
    auto [c, g] = B.scratch(B.words(b));
    B.cpu->upload_signed(b, c.data(), small.data());
    B.gpu->upload_signed(b, g.data(), small.data());
    const auto got = g.to_host();
    ASSERT_TRUE(same_words(c.to_host(), got, B.n())) << "limbs " << B.t().limbs(b);
    const uint64_t q0 = B.prime(b, 0);
    EXPECT_EQ(got[3], q0 - 1);  // -1 is q - 1
    EXPECT_EQ(got[2], 0u);
  }
}

// Device ChaCha20 + the shared word rules against libsodium on the host: both
// distributions and uniform residues, on several bases, seeds and streams.
TEST_P(CudaPrimitives, Sampling) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  for (uint64_t stream : {uint64_t{0}, uint64_t{3}, ~uint64_t{0}}) {
    Seed seed{};
    for (auto& byte : seed) byte = static_cast<uint8_t>(B.rng());
    for (Basis b : {Basis{L + 1, true}, Basis{L + 1, false}, Basis{1, false}}) {
      for (auto d : {SignedDistribution::Ternary, SignedDistribution::CenteredBinomial}) {
        auto [c, g] = B.scratch(B.words(b));
        B.cpu->sample_signed(b, c.data(), d, seed, stream);
        B.gpu->sample_signed(b, g.data(), d, seed, stream);
        ASSERT_TRUE(same_words(c.to_host(), g.to_host(), B.n())) << "signed, limbs " << B.t().limbs(b);
      }
      auto [c, g] = B.scratch(B.words(b));
      B.cpu->sample_uniform(b, c.data(), seed, stream);
      B.gpu->sample_uniform(b, g.data(), seed, stream);
      ASSERT_TRUE(same_words(c.to_host(), g.to_host(), B.n())) << "uniform, limbs " << B.t().limbs(b);
    }
  }
}

// The device special FFT + rounding against the host's, bit for bit: a full and a
// partial vector of slots, none, and values too large for the device path (the
// cuda backend hands them to the host path).
TEST_P(CudaPrimitives, EncodeSlots) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  const size_t slots = B.n() / 2;
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<std::complex<double>> values(slots);
  for (auto& v : values) v = {dist(B.rng), dist(B.rng)};
  struct Run {
    size_t count;
    double scale;
  };
  for (Run r : {Run{slots, 0x1p40}, Run{slots / 3, 0x1p30}, Run{0, 0x1p40}, Run{slots, 0x1p70}}) {
    for (Basis b : {Basis{L + 1, false}, Basis{1, false}}) {
      auto [c, g] = B.scratch(B.words(b));
      B.cpu->encode_slots(b, c.data(), values.data(), r.count, r.scale);
      B.gpu->encode_slots(b, g.data(), values.data(), r.count, r.scale);
      ASSERT_TRUE(same_words(c.to_host(), g.to_host(), B.n()))
          << "count " << r.count << ", scale 2^" << std::log2(r.scale) << ", limbs " << B.t().limbs(b);
    }
  }
}

// multiply_sum across the 32-term reduction and the 64-term launches, both ways.
TEST_P(CudaPrimitives, MultiplySum) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const Basis b{B.t().max_level + 1, false};
  for (size_t terms : {size_t{0}, size_t{5}, size_t{70}}) {
    std::vector<std::vector<uint64_t>> xs, ys;
    for (size_t t = 0; t < terms; ++t) {
      auto x = B.random(b);
      const auto x1 = B.random(b);
      x.insert(x.end(), x1.begin(), x1.end());
      xs.push_back(std::move(x));
      ys.push_back(B.random(b));
    }
    for (bool accumulate : {false, true}) {
      std::vector<Buffer> xc, xg, yc, yg;
      std::vector<const uint64_t*> xcp, xgp, ycp, ygp;
      for (size_t t = 0; t < terms; ++t) {
        auto [c, g] = B.put(xs[t]);
        auto [c2, g2] = B.put(ys[t]);
        xcp.push_back(c.data()), xgp.push_back(g.data()), ycp.push_back(c2.data()), ygp.push_back(g2.data());
        xc.push_back(std::move(c)), xg.push_back(std::move(g)), yc.push_back(std::move(c2)), yg.push_back(std::move(g2));
      }
      auto start = B.random(b);
      const auto start1 = B.random(b);
      start.insert(start.end(), start1.begin(), start1.end());
      auto [oc, og] = B.put(start);
      B.cpu->multiply_sum(b, 2, terms, xcp.data(), ycp.data(), oc.data(), accumulate);
      B.gpu->multiply_sum(b, 2, terms, xgp.data(), ygp.data(), og.data(), accumulate);
      ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << terms << " terms, accumulate " << accumulate;
    }
  }
}

TEST_P(CudaPrimitives, Automorphisms) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  const uint64_t two_n = 2 * B.n();
  const Basis b{L + 1, true};
  const auto xs = B.random(b);
  auto [xc, xg] = B.put(xs);
  uint64_t g5 = 1;
  std::vector<uint64_t> elements = {two_n - 1, 3, two_n - 3};
  for (int k = 0; k < 4; ++k) elements.push_back(g5 = g5 * 5 % two_n);
  for (uint64_t g : elements) {
    auto [oc, og] = B.scratch(B.words(b));
    B.cpu->automorphism_ntt(b, oc.data(), xc.data(), g);
    B.gpu->automorphism_ntt(b, og.data(), xg.data(), g);
    ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "ntt form, g = " << g;
    B.cpu->automorphism_coeff(b, oc.data(), xc.data(), g);
    B.gpu->automorphism_coeff(b, og.data(), xg.data(), g);
    ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "coefficient form, g = " << g;
  }
  // Both halves of a ciphertext in one call (a rotation), against the cpu per polynomial.
  const Basis q{L + 1, false};
  auto [pc, pg] = B.put(B.random(q, 2));
  for (uint64_t g : elements) {
    auto [oc, og] = B.scratch(2 * B.words(q));
    for (uint32_t j = 0; j < 2; ++j) B.cpu->automorphism_ntt(q, oc.data() + j * B.words(q), pc.data() + j * B.words(q), g);
    B.gpu->automorphism_ntt_polys(q, 2, og.data(), pg.data(), g);
    ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "two polynomials, g = " << g;
  }
}

std::vector<uint32_t> some_levels(uint32_t lo, uint32_t hi) {
  std::vector<uint32_t> v;
  for (uint32_t l : {lo, lo + 1, (lo + hi) / 2, hi - 1, hi})
    if (l >= lo && l <= hi && (v.empty() || v.back() < l)) v.push_back(l);
  return v;
}

TEST_P(CudaPrimitives, Rescale) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  for (uint32_t level : some_levels(1, B.t().max_level)) {
    const Basis q{level + 1, false};
    const auto xs = B.random(q);
    auto [xc, xg] = B.put(xs);
    auto [oc, og] = B.scratch(B.words(Basis{level, false}));
    B.cpu->rescale(level, xc.data(), oc.data());
    B.gpu->rescale(level, xg.data(), og.data());
    ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "level " << level;
    B.cpu->rescale(level, xc.data(), xc.data());  // out aliases in
    B.gpu->rescale(level, xg.data(), xg.data());
    ASSERT_TRUE(same_words(xc.to_host(), xg.to_host(), B.n())) << "level " << level << " in place";
    // A ciphertext's three polynomials at once (cuda: one launch sequence; cpu: the
    // default loop), against one rescale each on the cpu.
    auto [tc, tg] = B.put(B.random(q, 3));
    auto [pc, pg] = B.scratch(B.words(Basis{level, false}, 3));
    auto [rc, rg] = B.scratch(B.words(Basis{level, false}, 3));
    const size_t in_words = B.words(q), out_words = B.words(Basis{level, false});
    for (uint32_t z = 0; z < 3; ++z) B.cpu->rescale(level, tc.data() + z * in_words, rc.data() + z * out_words);
    B.cpu->rescale_polys(level, 3, tc.data(), pc.data());
    B.gpu->rescale_polys(level, 3, tg.data(), pg.data());
    const auto want = rc.to_host();
    ASSERT_EQ(pc.to_host(), want) << "level " << level << ", cpu default";
    ASSERT_TRUE(same_words(want, pg.to_host(), B.n())) << "level " << level << ", three polynomials";
    // rescale_many: polynomials with their own buffers (outputs in reverse order), more
    // than one launch sequence takes (32) where that is cheap.
    const size_t count = B.n() <= 16384 ? 35 : 3;
    auto [mc, mg] = B.put(B.random(q, count));
    auto [sc, sg] = B.scratch(out_words * count);
    std::vector<const uint64_t*> ins_c, ins_g;
    std::vector<uint64_t*> outs_c, outs_g;
    for (size_t z = 0; z < count; ++z) {
      ins_c.push_back(mc.data() + z * in_words);
      ins_g.push_back(mg.data() + z * in_words);
      outs_c.push_back(sc.data() + (count - 1 - z) * out_words);
      outs_g.push_back(sg.data() + (count - 1 - z) * out_words);
    }
    B.cpu->rescale_many(level, count, ins_c.data(), outs_c.data());
    B.gpu->rescale_many(level, count, ins_g.data(), outs_g.data());
    ASSERT_TRUE(same_words(sc.to_host(), sg.to_host(), B.n())) << "level " << level << ", rescale_many of " << count;
    Buffer first(B.cpu, out_words, false, true);
    B.cpu->rescale(level, ins_c[0], first.data());
    const auto many = sc.to_host();
    ASSERT_EQ(first.to_host(), std::vector<uint64_t>(many.end() - out_words, many.end()))
        << "level " << level << ": the first input's result is the last buffer";
  }
}

// ModUp digit by digit, and all digits at once (the cuda backend batches them into
// one launch per step; the cpu's default calls mod_up per digit).
TEST_P(CudaPrimitives, ModUpEveryDigitAndAllAtOnce) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  for (uint32_t level : some_levels(0, B.t().max_level)) {
    const Basis q{level + 1, false}, qp{level + 1, true};
    const uint32_t digits = B.t().digits(level);
    auto [cc, cg, nc, ng] = B.coeff_and_ntt(q);
    for (uint32_t digit = 0; digit < digits; ++digit) {
      auto [oc, og] = B.scratch(B.words(qp));
      B.cpu->mod_up(level, digit, oc.data(), cc.data(), nc.data());
      B.gpu->mod_up(level, digit, og.data(), cg.data(), ng.data());
      ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "level " << level << ", digit " << digit;
    }
    auto [ac, ag] = B.scratch(B.words(qp, digits));
    B.cpu->mod_up_all(level, ac.data(), cc.data(), nc.data());
    B.gpu->mod_up_all(level, ag.data(), cg.data(), ng.data());
    ASSERT_TRUE(same_words(ac.to_host(), ag.to_host(), B.n())) << "level " << level << ", all " << digits << " digits";
  }
}

TEST_P(CudaPrimitives, ModDown) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  for (uint32_t level : some_levels(0, B.t().max_level)) {
    const Basis q{level + 1, false}, qp{level + 1, true};
    auto [xc, xg] = B.put(B.random(qp));
    auto [oc, og] = B.scratch(B.words(q));
    B.cpu->mod_down(level, oc.data(), xc.data());
    B.gpu->mod_down(level, og.data(), xg.data());
    ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "level " << level;
    // Both halves of a key-switch result at once (one launch sequence on the device),
    // without addends, then with an addend for one half only and for both.
    const auto pair_in = B.random(qp, 2);
    auto [pc, pg] = B.put(pair_in);
    auto [rc, rg] = B.scratch(B.words(q, 2));
    B.cpu->mod_down_pair(level, rc.data(), rc.data() + B.words(q), pc.data(), nullptr, nullptr);
    B.gpu->mod_down_pair(level, rg.data(), rg.data() + B.words(q), pg.data(), nullptr, nullptr);
    ASSERT_TRUE(same_words(rc.to_host(), rg.to_host(), B.n())) << "pair, level " << level;
    auto [ac, ag] = B.put(B.random(q, 2));
    const size_t wq = B.words(q);
    for (bool both : {false, true}) {
      auto [pc2, pg2] = B.put(pair_in);  // the input is scratch for ModDown
      auto [sc, sg] = B.scratch(B.words(q, 2));
      B.cpu->mod_down_pair(level, sc.data(), sc.data() + wq, pc2.data(), both ? ac.data() : nullptr, ac.data() + wq);
      B.gpu->mod_down_pair(level, sg.data(), sg.data() + wq, pg2.data(), both ? ag.data() : nullptr, ag.data() + wq);
      ASSERT_TRUE(same_words(sc.to_host(), sg.to_host(), B.n())) << "pair with addends, level " << level;
    }
    // A rotation's last step: the pair's ModDown, then X -> X^g (cuda: in the same pass).
    for (uint64_t g : {uint64_t{5}, 2 * B.n() - 1, uint64_t{3} * 3 * 3 * 3 % (2 * B.n())}) {
      auto [pc3, pg3] = B.put(pair_in);
      auto [tc, tg] = B.scratch(B.words(q, 2));
      B.cpu->mod_down_pair_automorphism(level, g, tc.data(), tc.data() + wq, pc3.data(), ac.data(), nullptr);
      B.gpu->mod_down_pair_automorphism(level, g, tg.data(), tg.data() + wq, pg3.data(), ag.data(), nullptr);
      ASSERT_TRUE(same_words(tc.to_host(), tg.to_host(), B.n())) << "pair then X -> X^" << g << ", level " << level;
    }
  }
}

// ModDown and rescale at once (divide by q_l P): the pair with and without addends,
// and a batch of relinearizations rescaled in their ModDown (key_switch_rescale_many,
// more jobs than one launch takes where that is cheap), against the cpu.
TEST_P(CudaPrimitives, ModDownRescale) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;  // >= 1 for every parameter set here
  for (uint32_t level : some_levels(1, L)) {
    const Basis q{level + 1, false}, qp{level + 1, true}, lower{level, false};
    const auto pair_in = B.random(qp, 2);
    auto [ac, ag] = B.put(B.random(q, 2));
    const size_t wq = B.words(q), wl = B.words(lower);
    for (int adds = 0; adds < 3; ++adds) {  // none, the second half's only, both
      auto [pc, pg] = B.put(pair_in);      // the input is scratch
      auto [oc, og] = B.scratch(2 * wl);
      const uint64_t* a0c = adds == 2 ? ac.data() : nullptr;
      const uint64_t* a0g = adds == 2 ? ag.data() : nullptr;
      const uint64_t* a1c = adds >= 1 ? ac.data() + wq : nullptr;
      const uint64_t* a1g = adds >= 1 ? ag.data() + wq : nullptr;
      B.cpu->mod_down_rescale_pair(level, oc.data(), oc.data() + wl, pc.data(), a0c, a1c);
      B.gpu->mod_down_rescale_pair(level, og.data(), og.data() + wl, pg.data(), a0g, a1g);
      ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "level " << level << ", addends " << adds;
    }
  }
  const uint32_t level = L, digits = B.t().digits(level);
  const Basis q{level + 1, false}, qp{level + 1, true}, lower{level, false};
  auto [kc, kg] = B.random_key();
  const size_t inputs = B.n() <= 16384 ? 18 : 3;  // > kMaxBatch where it is cheap
  auto [in_c, in_g, dec_c, dec_g] = B.decomposable(level, inputs);
  for (size_t i = 0; i < inputs; ++i) B.gpu->key_switch_decompose(level, dec_g[i].data(), in_g[i].data());
  auto [ac, ag] = B.put(B.random(q, 2 * inputs));
  auto [oc, og] = B.scratch(B.words(lower, 2 * inputs));
  std::vector<KeySwitchJob> jobs_c(inputs), jobs_g(inputs);
  for (size_t i = 0; i < inputs; ++i) {
    const size_t o = 2 * i * B.words(lower), a = 2 * i * B.words(q);
    const bool add = i % 3 != 1;
    jobs_c[i] = KeySwitchJob{dec_c[i].data(), in_c[i].data(), kc.data(), 0, oc.data() + o, oc.data() + o + B.words(lower),
                             add ? ac.data() + a : nullptr, add ? ac.data() + a + B.words(q) : nullptr};
    jobs_g[i] = KeySwitchJob{dec_g[i].data(), in_g[i].data(), kg.data(), 0, og.data() + o, og.data() + o + B.words(lower),
                             add ? ag.data() + a : nullptr, add ? ag.data() + a + B.words(q) : nullptr};
  }
  B.cpu->key_switch_rescale_many(level, digits, inputs, jobs_c.data());
  B.gpu->key_switch_rescale_many(level, digits, inputs, jobs_g.data());
  ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "key_switch_rescale_many";
  KeySwitchJob rotation = jobs_g[0];
  rotation.g = 5;
  EXPECT_VEIL_ERROR(B.gpu->key_switch_rescale_many(level, digits, 1, &rotation), ErrorCode::InvalidArgument);
}

TEST_P(CudaPrimitives, KeySwitchInnerProduct) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  auto [kc, kg] = B.random_key();
  for (uint32_t level : some_levels(0, L)) {
    const Basis qp{level + 1, true};
    const uint32_t digits = B.t().digits(level);
    auto [dc, dg] = B.put(B.random(qp, digits));
    auto [oc, og] = B.scratch(B.words(qp, 2));
    B.cpu->key_switch_inner_product(level, digits, dc.data(), kc.data(), oc.data(), oc.data() + B.words(qp));
    B.gpu->key_switch_inner_product(level, digits, dg.data(), kg.data(), og.data(), og.data() + B.words(qp));
    ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "level " << level;
  }
}

// The two halves of key switching as the scheme calls them: the cuda backend's own
// decomposition layout (target limbs half transformed) and its fused inner product
// give the cpu's mod_up_all + inner product words, for every key of a hoisted set
// (the decomposition is read, never changed) and for fewer digits than the level has.
TEST_P(CudaPrimitives, KeySwitchDecomposeAndApply) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  auto [k1c, k1g] = B.random_key();
  auto [k2c, k2g] = B.random_key();
  for (uint32_t level : some_levels(0, L)) {
    const Basis q{level + 1, false}, qp{level + 1, true};
    const uint32_t digits = B.t().digits(level);
    auto [cc, cg, nc, ng] = B.coeff_and_ntt(q);
    (void)cg;  // the cuda decomposition starts from the NTT form only
    auto [dc, dg] = B.scratch(B.words(qp, digits));
    B.cpu->mod_up_all(level, dc.data(), cc.data(), nc.data());
    B.gpu->key_switch_decompose(level, dg.data(), ng.data());
    const auto decomposed = dg.to_host();
    Buffer dc2(B.cpu, B.words(qp, digits), false, true);
    B.cpu->key_switch_decompose(level, dc2.data(), nc.data());
    ASSERT_EQ(dc2.to_host(), dc.to_host()) << "the cpu's decomposition is mod_up_all's digits";
    for (uint32_t used : {digits, 1u}) {
      for (const auto* key : {&k1c, &k2c}) {
        const Buffer& kg = key == &k1c ? k1g : k2g;
        auto [oc, og] = B.scratch(B.words(qp, 2));
        B.cpu->key_switch_inner_product(level, used, dc.data(), key->data(), oc.data(), oc.data() + B.words(qp));
        B.gpu->key_switch_apply(level, used, dg.data(), ng.data(), kg.data(), og.data(), og.data() + B.words(qp));
        ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n()))
            << "level " << level << ", " << used << " of " << digits << " digits, key " << (key == &k1c ? 1 : 2);
      }
    }
    ASSERT_EQ(dg.to_host(), decomposed) << "key_switch_apply changed the decomposition";
    ASSERT_TRUE(same_words(nc.to_host(), ng.to_host(), B.n())) << "key_switch_decompose/apply changed the input";
    auto [oc, og] = B.scratch(B.words(qp, 2));
    EXPECT_VEIL_ERROR(B.gpu->key_switch_apply(level, digits + 1, dg.data(), ng.data(), k1g.data(), og.data(), og.data()),
                      ErrorCode::InvalidArgument);
    EXPECT_VEIL_ERROR(B.gpu->key_switch_apply(level, digits, dg.data(), nullptr, k1g.data(), og.data(), og.data()),
                      ErrorCode::InvalidArgument);
    EXPECT_VEIL_ERROR(B.cpu->key_switch_apply(level, digits + 1, dc.data(), nc.data(), k1c.data(), oc.data(), oc.data()),
                      ErrorCode::InvalidArgument);
  }
}

// Sets an environment variable for its lifetime, then restores the old value.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The two ways the cuda backend runs a key switch give the cpu's words at every N.
// Split (the default): the decomposition finishes its digits' NTT, an apply is a plain
// inner product. Fused: every apply finishes the digits in shared memory.
// VEIL_CUDA_KEY_SWITCH picks one. Each mode's decomposition is applied twice
// (a hoisted reuse) and in a batch; only the split one holds the cpu's target limbs.
TEST_P(CudaPrimitives, KeySwitchSplitAndFusedAgree) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t level = B.t().max_level;
  const Basis q{level + 1, false}, qp{level + 1, true};
  const uint32_t digits = B.t().digits(level), alpha = B.t().alpha;
  auto [k1c, k1g] = B.random_key();
  auto [k2c, k2g] = B.random_key();
  auto [cc, cg, nc, ng] = B.coeff_and_ntt(q);
  (void)cg;
  Buffer dc(B.cpu, B.words(qp, digits), false, true);
  B.cpu->key_switch_decompose(level, dc.data(), nc.data());
  const auto dec_cpu = dc.to_host();
  auto [oc, og] = B.scratch(B.words(qp, 2));
  B.cpu->key_switch_inner_product(level, digits, dc.data(), k1c.data(), oc.data(), oc.data() + B.words(qp));
  const auto inner_cpu = oc.to_host();
  auto [mc, mg] = B.scratch(B.words(q, 6));
  const uint64_t g = 2 * B.n() - 1;
  auto jobs = [&](const Buffer& dec, const Buffer& in, const Buffer& k1, const Buffer& k2, Buffer& out) {
    const size_t w = B.words(q);
    return std::vector<KeySwitchJob>{
        {dec.data(), in.data(), k1.data(), 0, out.data(), out.data() + w, nullptr, nullptr},
        {dec.data(), in.data(), k2.data(), g, out.data() + 2 * w, out.data() + 3 * w, nullptr, nullptr},
        {dec.data(), in.data(), k2.data(), 5, out.data() + 4 * w, out.data() + 5 * w, nullptr, nullptr}};
  };
  const auto jobs_c = jobs(dc, nc, k1c, k2c, mc);
  B.cpu->key_switch_many(level, digits, jobs_c.size(), jobs_c.data());
  const auto many_cpu = mc.to_host();

  // Whether every target limb of the device's decomposition equals the cpu's (own limbs are not stored).
  auto targets_match = [&](const std::vector<uint64_t>& dec) {
    const size_t limb_words = B.n(), digit_words = B.words(qp);
    for (uint32_t j = 0; j < digits; ++j)
      for (uint32_t limb = 0; limb < B.t().limbs(qp); ++limb) {
        if (limb < level + 1 && limb / alpha == j) continue;
        const size_t o = j * digit_words + limb * limb_words;
        if (!std::equal(dec.begin() + o, dec.begin() + o + limb_words, dec_cpu.begin() + o)) return false;
      }
    return true;
  };
  for (const char* mode : {"split", "fused"}) {
    SCOPED_TRACE(mode);
    const ScopedEnv env("VEIL_CUDA_KEY_SWITCH", mode);
    const std::shared_ptr<Backend> gpu = make_backend(BackendKind::Cuda, B.tables);
    Buffer dg(gpu, B.words(qp, digits), false, true);
    gpu->key_switch_decompose(level, dg.data(), ng.data());
    EXPECT_EQ(targets_match(dg.to_host()), std::string(mode) == "split")
        << "a split decomposition holds the finished digits, a fused one half-transformed ones";
    for (int reuse = 0; reuse < 2; ++reuse) {
      Buffer out(gpu, B.words(qp, 2), false, true);
      gpu->key_switch_apply(level, digits, dg.data(), ng.data(), k1g.data(), out.data(), out.data() + B.words(qp));
      ASSERT_TRUE(same_words(inner_cpu, out.to_host(), B.n())) << "apply " << reuse;
    }
    Buffer many(gpu, B.words(q, 6), false, true);
    const auto jobs_g = jobs(dg, ng, k1g, k2g, many);
    gpu->key_switch_many(level, digits, jobs_g.size(), jobs_g.data());
    ASSERT_TRUE(same_words(many_cpu, many.to_host(), B.n())) << "key_switch_many";
  }
  const ScopedEnv env("VEIL_CUDA_KEY_SWITCH", "fastest");
  EXPECT_VEIL_ERROR(make_backend(BackendKind::Cuda, B.tables), ErrorCode::InvalidArgument);
}

// Batches of independent key switches (Backend::key_switch_decompose_many /
// key_switch_many): several inputs decomposed in one launch sequence, then jobs that
// mix inputs, keys, rotations (g != 0) and relinearizations (g = 0), with and without
// addends, give the words of the cpu running the jobs one by one. At N <= 2^14 more
// jobs than one launch takes (16), so the groups are checked too.
TEST_P(CudaPrimitives, KeySwitchMany) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  auto [k1c, k1g] = B.random_key();
  auto [k2c, k2g] = B.random_key();
  const size_t inputs = B.n() <= 16384 ? 17 : 3;  // > kMaxBatch where it is cheap
  const size_t job_count = B.n() <= 16384 ? 21 : 4;
  for (uint32_t level : {L, L / 2}) {
    const Basis q{level + 1, false}, qp{level + 1, true};
    const uint32_t digits = B.t().digits(level);
    auto [in_c, in_g, dec_c, dec_g] = B.decomposable(level, inputs);
    std::vector<const uint64_t*> ntt_g;
    std::vector<uint64_t*> out_digits_g;
    for (size_t i = 0; i < inputs; ++i) {
      ntt_g.push_back(in_g[i].data());
      out_digits_g.push_back(dec_g[i].data());
    }
    B.gpu->key_switch_decompose_many(level, inputs, out_digits_g.data(), ntt_g.data());
    {  // the batch decomposes each input as key_switch_decompose does
      const size_t i = inputs - 1;
      Buffer one(B.gpu, B.words(qp, digits), false, true);
      B.gpu->key_switch_decompose(level, one.data(), in_g[i].data());
      ASSERT_EQ(one.to_host(), dec_g[i].to_host()) << "input " << i << " of the batch, level " << level;
    }
    auto [ac, ag] = B.put(B.random(q, 2 * job_count));  // addends
    auto [oc, og] = B.scratch(B.words(q, 2 * job_count));
    std::vector<KeySwitchJob> jobs_c(job_count), jobs_g(job_count);
    for (size_t j = 0; j < job_count; ++j) {
      const size_t i = (j * 5) % inputs;
      const uint64_t g = j % 3 == 0 ? 0 : (j % 3 == 1 ? 2 * B.n() - 1 : (uint64_t{1} + 4 * j) % (2 * B.n()));
      const bool add0 = j % 2 == 0, add1 = j % 4 == 1;
      const size_t o = 2 * j * B.words(q);
      jobs_c[j] = KeySwitchJob{dec_c[i].data(), in_c[i].data(), (j % 2 ? k2c : k1c).data(), g,
                               oc.data() + o, oc.data() + o + B.words(q), add0 ? ac.data() + o : nullptr,
                               add1 ? ac.data() + o + B.words(q) : nullptr};
      jobs_g[j] = KeySwitchJob{dec_g[i].data(), in_g[i].data(), (j % 2 ? k2g : k1g).data(), g,
                               og.data() + o, og.data() + o + B.words(q), add0 ? ag.data() + o : nullptr,
                               add1 ? ag.data() + o + B.words(q) : nullptr};
    }
    B.cpu->key_switch_many(level, digits, job_count, jobs_c.data());
    B.gpu->key_switch_many(level, digits, job_count, jobs_g.data());
    const auto host_c = oc.to_host(), host_g = og.to_host();
    for (size_t j = 0; j < job_count; ++j) {
      const size_t o = 2 * j * B.words(q), w = 2 * B.words(q);
      ASSERT_TRUE(same_words(std::vector<uint64_t>(host_c.begin() + o, host_c.begin() + o + w),
                             std::vector<uint64_t>(host_g.begin() + o, host_g.begin() + o + w), B.n()))
          << "job " << j << " of " << job_count << " (g " << jobs_c[j].g << "), level " << level;
    }
    KeySwitchJob bad = jobs_g[0];
    bad.g = 4;  // even: not a Galois element
    EXPECT_VEIL_ERROR(B.gpu->key_switch_many(level, digits, 1, &bad), ErrorCode::InvalidArgument);
  }
}

// Double hoisting's primitives (veil/extended.hpp): products by P, ModDowns of many
// polynomials, key switches kept over Q_l u P one by one and summed.
TEST_P(CudaPrimitives, DoubleHoisting) {
  VEIL_REQUIRE_CUDA();
  auto& B = be();
  const uint32_t L = B.t().max_level;
  auto [k1c, k1g] = B.random_key();
  auto [k2c, k2g] = B.random_key();
  const size_t inputs = B.n() <= 16384 ? 5 : 2;
  const size_t job_count = B.n() <= 16384 ? 19 : 3;  // > kMaxBatch where it is cheap
  for (uint32_t level : {L, L / 2}) {
    const Basis q{level + 1, false}, qp{level + 1, true};
    const size_t wq = B.words(q), wqp = B.words(qp);
    {  // multiply_by_p and mod_down_many of `inputs` polynomials
      auto [xc, xg] = B.put(B.random(q, inputs));
      auto [pc, pg] = B.scratch(inputs * wqp);
      auto [mc, mg] = B.scratch(inputs * wq);
      std::vector<uint64_t*> pcs, pgs, dcs(inputs), dgs(inputs), mcs, mgs;
      std::vector<const uint64_t*> xcs, xgs;
      for (size_t i = 0; i < inputs; ++i) {
        xcs.push_back(xc.data() + i * wq);
        xgs.push_back(xg.data() + i * wq);
        pcs.push_back(pc.data() + i * wqp);
        pgs.push_back(pg.data() + i * wqp);
        mcs.push_back(mc.data() + i * wq);
        mgs.push_back(mg.data() + i * wq);
      }
      B.cpu->multiply_by_p(level, inputs, pcs.data(), xcs.data());
      B.gpu->multiply_by_p(level, inputs, pgs.data(), xgs.data());
      ASSERT_TRUE(same_words(pc.to_host(), pg.to_host(), B.n())) << "multiply_by_p, level " << level;
      const auto qp_inputs = B.random(qp, inputs);
      for (size_t count : {size_t{1}, inputs}) {
        auto [dc, dg] = B.put(qp_inputs);  // fresh: the inputs are scratch
        for (size_t i = 0; i < inputs; ++i) {
          dcs[i] = dc.data() + i * wqp;
          dgs[i] = dg.data() + i * wqp;
        }
        B.cpu->mod_down_many(level, count, mcs.data(), dcs.data());
        B.gpu->mod_down_many(level, count, mgs.data(), dgs.data());
        ASSERT_TRUE(same_words(mc.to_host(), mg.to_host(), B.n())) << "mod_down_many of " << count << ", level "
                                                                  << level;
      }
      // The ModDown of P x is x.
      B.cpu->mod_down_many(level, inputs, mcs.data(), pcs.data());
      ASSERT_EQ(mc.to_host(), xc.to_host()) << "ModDown(P x) = x, level " << level;
    }
    const uint32_t digits = B.t().digits(level);
    auto [in_c, in_g, dec_c, dec_g] = B.decomposable(level, inputs);
    for (size_t i = 0; i < inputs; ++i) B.gpu->key_switch_decompose(level, dec_g[i].data(), in_g[i].data());
    auto [ac, ag] = B.put(B.random(qp, 2 * job_count));  // addends over Q_l u P
    auto [oc, og] = B.scratch(2 * job_count * wqp);
    std::vector<KeySwitchJob> jobs_c(job_count), jobs_g(job_count);
    for (size_t j = 0; j < job_count; ++j) {
      const size_t i = (j * 3) % inputs, o = 2 * j * wqp;
      const uint64_t g = j % 3 == 0 ? 0 : (j % 3 == 1 ? 2 * B.n() - 1 : (uint64_t{1} + 4 * j) % (2 * B.n()));
      const bool add0 = j % 2 == 0, add1 = j % 4 == 1;
      jobs_c[j] = KeySwitchJob{dec_c[i].data(), in_c[i].data(), (j % 2 ? k2c : k1c).data(), g, oc.data() + o,
                               oc.data() + o + wqp, add0 ? ac.data() + o : nullptr,
                               add1 ? ac.data() + o + wqp : nullptr};
      jobs_g[j] = KeySwitchJob{dec_g[i].data(), in_g[i].data(), (j % 2 ? k2g : k1g).data(), g, og.data() + o,
                               og.data() + o + wqp, add0 ? ag.data() + o : nullptr,
                               add1 ? ag.data() + o + wqp : nullptr};
    }
    B.cpu->key_switch_extended_many(level, digits, job_count, jobs_c.data());
    B.gpu->key_switch_extended_many(level, digits, job_count, jobs_g.data());
    ASSERT_TRUE(same_words(oc.to_host(), og.to_host(), B.n())) << "key_switch_extended_many, level " << level;
    {  // the cpu's results are the inner product plus the addends, permuted
      const size_t j = 1;  // g = 2N - 1, an addend on the second half only
      Buffer ip(B.cpu, 2 * wqp, false, true), perm(B.cpu, 2 * wqp, false, true);
      B.cpu->key_switch_apply(level, digits, jobs_c[j].decomposed, jobs_c[j].ntt, jobs_c[j].key, ip.data(),
                              ip.data() + wqp);
      ASSERT_EQ(jobs_c[j].add0, nullptr);
      B.cpu->add(qp, ip.data() + wqp, ip.data() + wqp, jobs_c[j].add1);
      B.cpu->automorphism_ntt_polys(qp, 2, perm.data(), ip.data(), jobs_c[j].g);
      const auto all = oc.to_host();
      ASSERT_EQ(perm.to_host(), std::vector<uint64_t>(all.begin() + 2 * j * wqp, all.begin() + 2 * (j + 1) * wqp));
    }
    for (const bool accumulate : {false, true}) {
      auto [sc, sg] = B.put(B.random(qp, 2));
      for (auto& j : jobs_c) j.out0 = j.out1 = nullptr;
      for (auto& j : jobs_g) j.out0 = j.out1 = nullptr;
      B.cpu->key_switch_extended_sum(level, digits, job_count, jobs_c.data(), sc.data(), sc.data() + wqp, accumulate);
      B.gpu->key_switch_extended_sum(level, digits, job_count, jobs_g.data(), sg.data(), sg.data() + wqp, accumulate);
      ASSERT_TRUE(same_words(sc.to_host(), sg.to_host(), B.n()))
          << "key_switch_extended_sum, accumulate " << accumulate << ", level " << level;
    }
    KeySwitchJob bad = jobs_g[0];
    bad.g = 4;  // even: not a Galois element
    EXPECT_VEIL_ERROR(B.gpu->key_switch_extended_sum(level, digits, 1, &bad, og.data(), og.data() + wqp, false),
                      ErrorCode::InvalidArgument);
  }
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaPrimitives, ::testing::ValuesIn(all_cases(true)), case_name);

// N = 2^12, the smallest ring Veil's parameters allow: the strided pass has a
// single stage and the contiguous one eleven (the other cases above have more rows).
TEST(CudaNtt, SmallestRingRoundTrips) {
  VEIL_REQUIRE_CUDA();
  ParameterSpec spec;
  spec.log_n = 12;
  spec.q_bits = {40, 30};
  spec.p_bits = {35};
  spec.default_scale = 0x1p30;
  Backends B(Parameters::create(spec));
  const Basis b{2, true};
  for (bool lazy : {false, true}) {
    auto [c, g] = B.put(B.random(b, 1, lazy));
    B.cpu->ntt_forward(b, c.data());
    B.gpu->ntt_forward(b, g.data());
    ASSERT_TRUE(same_words(c.to_host(), g.to_host(), B.n())) << "forward, lazy " << lazy;
    B.cpu->ntt_inverse(b, c.data());
    B.gpu->ntt_inverse(b, g.data());
    ASSERT_TRUE(same_words(c.to_host(), g.to_host(), B.n())) << "inverse, lazy " << lazy;
  }
}

// ---- CKKS operations through a cpu context and a cuda context ----

// One side of a comparison: Keyed (test_util.hpp) on a given backend.
using Side = Keyed;  // seeds 71 (keys), 72 and 73 (encryptors) on both sides

class CudaCkks : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    VEIL_REQUIRE_CUDA();
    const Parameters params = params_for(GetParam().log_n, GetParam().dnum);
    cpu_ = std::make_unique<Side>(params, 71, true, BackendKind::Cpu, steps_);
    gpu_ = std::make_unique<Side>(params, 71, true, BackendKind::Cuda, steps_);
    ASSERT_EQ(gpu_->ctx->backend().name(), "cuda");
    ASSERT_EQ(cpu_->ctx->backend().name(), "cpu");
  }

  // Same level, scale and size; every word equal; identical decryption.
  void expect_same(const Ciphertext& c, const Ciphertext& g, const std::string& what) {
    ASSERT_EQ(c.size(), g.size()) << what;
    ASSERT_EQ(c.level(), g.level()) << what;
    ASSERT_EQ(c.scale(), g.scale()) << what;
    ASSERT_TRUE(same_words(words_of(c), words_of(g), c.context()->n())) << what;
    if (c.size() != 2) return;
    const Plaintext pc = cpu_->decryptor->decrypt(c), pg = gpu_->decryptor->decrypt(g);
    const size_t pw = c.context()->words(Basis{pc.level() + 1, false});
    ASSERT_TRUE(same_words(download(pc.context(), pc.data(), pw), download(pg.context(), pg.data(), pw),
                           c.context()->n()))
        << what << ": decrypted plaintext";
    const auto vc = cpu_->encoder->decode_complex(pc), vg = gpu_->encoder->decode_complex(pg);
    ASSERT_EQ(vc, vg) << what << ": decoded slots";
  }

  const std::vector<int64_t> steps_ = {1, 5, -3};
  std::unique_ptr<Side> cpu_, gpu_;
};

TEST_P(CudaCkks, KeysAreIdentical) {
  VEIL_REQUIRE_CUDA();
  const auto& cc = cpu_->ctx;
  const auto& gc = gpu_->ctx;
  const uint64_t n = cc->n();
  EXPECT_TRUE(same_words(download(cc, cpu_->pk.poly(0), 2 * cpu_->pk.poly_words()),
                         download(gc, gpu_->pk.poly(0), 2 * gpu_->pk.poly_words()), n))
      << "public key";
  EXPECT_TRUE(same_words(download(cc, cpu_->rk.key.data(), cpu_->rk.key.words()),
                         download(gc, gpu_->rk.key.data(), gpu_->rk.key.words()), n))
      << "relinearization key";
  ASSERT_EQ(cpu_->gk.keys.size(), gpu_->gk.keys.size());
  for (const auto& [g, key] : cpu_->gk.keys) {
    ASSERT_TRUE(gpu_->gk.has(g));
    const SwitchingKey& other = gpu_->gk.keys.at(g);
    EXPECT_TRUE(same_words(download(cc, key.data(), key.words()), download(gc, other.data(), other.words()), n))
        << "Galois key " << g;
  }
}

TEST_P(CudaCkks, OperationsMatchBitForBit) {
  VEIL_REQUIRE_CUDA();
  const size_t slots = cpu_->ctx->params().slots();
  const auto x = random_reals(slots, 81), y = random_reals(slots, 82);
  Side& C = *cpu_;
  Side& G = *gpu_;

  // Encrypt (public and secret key, seeded randomness).
  const Ciphertext xc = C.pk_encryptor->encrypt(C.encoder->encode(x)), xg = G.pk_encryptor->encrypt(G.encoder->encode(x));
  expect_same(xc, xg, "public-key encrypt");
  const Ciphertext yc = C.sk_encryptor->encrypt(C.encoder->encode(y)), yg = G.sk_encryptor->encrypt(G.encoder->encode(y));
  expect_same(yc, yg, "secret-key encrypt");

  // Multiply + relinearize, rescale.
  const Ciphertext pc = C.eval->multiply(xc, yc, C.rk), pg = G.eval->multiply(xg, yg, G.rk);
  expect_same(pc, pg, "multiply + relinearize");
  const Ciphertext rc = C.eval->rescale(pc), rg = G.eval->rescale(pg);
  expect_same(rc, rg, "rescale");

  // Rotations at the top level and one level down (fewer digits).
  for (const Ciphertext* pair : {&xc, &rc}) {
    const Ciphertext& a_c = *pair;
    const Ciphertext& a_g = pair == &xc ? xg : rg;
    const std::string at = " at level " + std::to_string(a_c.level());
    for (int64_t step : steps_) {
      expect_same(C.eval->rotate(a_c, step, C.gk), G.eval->rotate(a_g, step, G.gk),
                  "rotate " + std::to_string(step) + at);
    }
    const auto hc = C.eval->rotate_hoisted(a_c, steps_, C.gk), hg = G.eval->rotate_hoisted(a_g, steps_, G.gk);
    ASSERT_EQ(hc.size(), hg.size());
    for (size_t i = 0; i < hc.size(); ++i) expect_same(hc[i], hg[i], "rotate_hoisted " + std::to_string(steps_[i]) + at);
    expect_same(C.eval->conjugate(a_c, C.gk), G.eval->conjugate(a_g, G.gk), "conjugate" + at);
  }

  // The lowest level: one digit.
  const Ciphertext lc = C.eval->mod_switch_to(xc, 0), lg = G.eval->mod_switch_to(xg, 0);
  expect_same(C.eval->rotate(lc, 1, C.gk), G.eval->rotate(lg, 1, G.gk), "rotate at level 0");
  expect_same(C.eval->multiply(lc, lc, C.rk), G.eval->multiply(lg, lg, G.rk), "multiply at level 0");
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaCkks, ::testing::ValuesIn(all_cases(false)), case_name);

// ---- a whole model: the scheme code above the backend, unchanged, on the device ----

// The digits ConvNet (taps packing, 8 images in one batched run: 49 input ciphertexts,
// convolution, squares, pooling, two linear layers with hoisted rotations) on both
// backends from the same seeds: every output word equal, hence the same logits.
TEST(CudaModels, ConvNetMatchesCpuBitForBit) {
  VEIL_REQUIRE_CUDA();
  const std::string data = (std::filesystem::path(__FILE__).parent_path() / "data").string();
  const auto weights = nn::load_convnet_weights(data + "/convnet_digits.weights");
  const auto set = nn::load_convnet_test_set(data, 8);
  const Parameters params = nn::convnet_parameters(13);
  Side cpu(params, 71, false, BackendKind::Cpu);
  Side gpu(params, 71, false, BackendKind::Cuda);
  nn::CompiledModel mc(cpu.ctx, nn::convnet_model(weights)), mg(gpu.ctx, nn::convnet_model(weights));
  ASSERT_EQ(mc.rotation_steps(), mg.rotation_steps());
  cpu.gk = cpu.keygen->create_galois_keys(mc.rotation_steps(), false);
  gpu.gk = gpu.keygen->create_galois_keys(mg.rotation_steps(), false);

  std::vector<Ciphertext> in_c, in_g;
  for (const auto& slots : mc.encode(set.images)) in_c.push_back(cpu.pk_encryptor->encrypt(cpu.encoder->encode(slots)));
  for (const auto& slots : mg.encode(set.images)) in_g.push_back(gpu.pk_encryptor->encrypt(gpu.encoder->encode(slots)));
  const auto out_c = mc.run(*cpu.eval, in_c, cpu.rk, cpu.gk);
  const auto out_g = mg.run(*gpu.eval, in_g, gpu.rk, gpu.gk);
  ASSERT_EQ(out_c.size(), out_g.size());
  std::vector<std::vector<double>> dec_c, dec_g;
  for (size_t i = 0; i < out_c.size(); ++i) {
    ASSERT_EQ(out_c[i].level(), out_g[i].level());
    ASSERT_TRUE(same_words(words_of(out_c[i]), words_of(out_g[i]), params.n())) << "output ciphertext " << i;
    dec_c.push_back(cpu.decrypt(out_c[i]));
    dec_g.push_back(gpu.decrypt(out_g[i]));
  }
  const auto logits_c = mc.decode(dec_c, set.size()), logits_g = mg.decode(dec_g, set.size());
  EXPECT_EQ(logits_c, logits_g);
  for (size_t k = 0; k < set.size(); ++k) EXPECT_EQ(nn::argmax(logits_g[k]), set.predicted[k]) << "image " << k;
}

// ---- objects from different contexts / devices ----

TEST(CudaBackend, RejectsObjectsOfACpuContext) {
  VEIL_REQUIRE_CUDA();
  const Parameters params = Parameters::preset(13);
  Side cpu(params, 71, true, BackendKind::Cpu, {1});
  Side gpu(params, 71, true, BackendKind::Cuda, {1});
  const auto x = random_reals(16, 91);
  const Ciphertext c = cpu.pk_encryptor->encrypt(cpu.encoder->encode(x));
  const Ciphertext g = gpu.pk_encryptor->encrypt(gpu.encoder->encode(x));
  EXPECT_VEIL_ERROR(gpu.eval->rescale(c), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(gpu.eval->add(g, c), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(gpu.eval->multiply(c, c, gpu.rk), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(gpu.eval->rotate(c, 1, gpu.gk), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(gpu.decryptor->decrypt(c), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(cpu.eval->negate(g), ErrorCode::ContextMismatch);
  // Keys of the other context.
  EXPECT_VEIL_ERROR(gpu.eval->multiply(g, g, cpu.rk), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(gpu.eval->rotate(g, 1, cpu.gk), ErrorCode::ContextMismatch);
}

// The client/server split across devices: encrypt on the cpu, move the ciphertexts
// and evaluation keys into a cuda context (Ciphertext::to), compute there, move the
// result back: word for word what the cpu computes, and it decrypts on the cpu.
TEST(CudaBackend, ObjectsMoveBetweenCpuAndCudaContexts) {
  VEIL_REQUIRE_CUDA();
  const Parameters params = Parameters::preset(13);
  Side cpu(params, 71, true, BackendKind::Cpu, {1, 5});
  const ContextPtr gpu = Context::create(params, BackendKind::Cuda);
  ASSERT_EQ(gpu->backend().name(), "cuda");
  const auto x = random_reals(cpu.slots(), 92), y = random_reals(cpu.slots(), 93);
  const Ciphertext xc = cpu.encrypt(x), yc = cpu.encrypt(y, false);
  const Ciphertext xg = xc.to(gpu), yg = yc.to(gpu);
  ASSERT_TRUE(same_words(words_of(xc), words_of(xg), params.n()));
  const RelinKey rk = cpu.rk.to(gpu);
  const GaloisKeys gk = cpu.gk.to(gpu);
  Evaluator eval(gpu);
  const Ciphertext out_g = eval.rotate(eval.rescale(eval.multiply(xg, yg, rk)), 5, gk);
  const Ciphertext out_c = cpu.eval->rotate(cpu.eval->rescale(cpu.eval->multiply(xc, yc, cpu.rk)), 5, cpu.gk);
  const Ciphertext back = out_g.to(cpu.ctx);
  EXPECT_EQ(back.context()->id(), cpu.ctx->id());
  ASSERT_TRUE(same_words(words_of(out_c), words_of(back), params.n()));
  // A secret key moved to the device decrypts there to the same plaintext words.
  Decryptor dec_g(gpu, cpu.keygen->secret_key().to(gpu));
  const Plaintext pg = dec_g.decrypt(out_g), pc = cpu.decryptor->decrypt(out_c);
  const size_t pw = params.n() * (pc.level() + 1);
  EXPECT_TRUE(same_words(download(cpu.ctx, pc.data(), pw), download(gpu, pg.data(), pw), params.n()));
  // Another device's context of other parameters is refused.
  const ContextPtr other = Context::create(Parameters::preset(14), BackendKind::Cuda);
  EXPECT_VEIL_ERROR(xc.to(other), ErrorCode::ContextMismatch);
}

// Independent work overlaps across contexts: each cuda context has its own stream
// and memory pool, so two host threads driving two contexts on one device run at
// the same time. Results move between them device to device (Backend::copy_from,
// ordered by events, no host copy), and every word equals the cpu's.
TEST(CudaBackend, ContextsOnOneDeviceRunConcurrentlyAndExchangeObjects) {
  VEIL_REQUIRE_CUDA();
  const Parameters params = Parameters::preset(13);
  Side cpu(params, 71, true, BackendKind::Cpu, {1});
  const auto x = random_reals(cpu.slots(), 94), y = random_reals(cpu.slots(), 95);
  const Ciphertext xc = cpu.encrypt(x), yc = cpu.encrypt(y);
  auto work = [](const Evaluator& e, const Ciphertext& a, const Ciphertext& b, const RelinKey& rk,
                 const GaloisKeys& gk) { return e.rotate(e.rescale(e.multiply(a, b, rk)), 1, gk); };
  struct Lane {
    ContextPtr ctx;
    Ciphertext a, b;
    RelinKey rk;
    GaloisKeys gk;
    Ciphertext out;
  };
  auto lane = [&](const Ciphertext& a, const Ciphertext& b) {
    const ContextPtr ctx = Context::create(params, BackendKind::Cuda);
    return Lane{ctx, a.to(ctx), b.to(ctx), cpu.rk.to(ctx), cpu.gk.to(ctx), {}};
  };
  Lane la = lane(xc, yc), lb = lane(xc, xc);
  run_on_threads(2, [&](size_t i) {
    Lane& l = i == 0 ? la : lb;
    l.out = work(Evaluator(l.ctx), l.a, l.b, l.rk, l.gk);
  });
  const Ciphertext want_a = work(*cpu.eval, xc, yc, cpu.rk, cpu.gk), want_b = work(*cpu.eval, xc, xc, cpu.rk, cpu.gk);
  ASSERT_TRUE(same_words(words_of(want_a), words_of(la.out), params.n())) << "context A";
  ASSERT_TRUE(same_words(words_of(want_b), words_of(lb.out), params.n())) << "context B";

  // A's result into B without a host copy, used there at once.
  const Ciphertext moved = la.out.to(lb.ctx);
  EXPECT_EQ(moved.context()->id(), lb.ctx->id());
  const Ciphertext sum = Evaluator(lb.ctx).add(moved, lb.out);
  ASSERT_TRUE(same_words(words_of(cpu.eval->add(want_a, want_b)), words_of(sum), params.n()));
  // Without the move, B refuses A's objects (same device, same parameters, other context).
  EXPECT_VEIL_ERROR(Evaluator(lb.ctx).add(la.out, lb.out), ErrorCode::ContextMismatch);
  EXPECT_VEIL_ERROR(Evaluator(lb.ctx).rotate(lb.out, 1, la.gk), ErrorCode::ContextMismatch);

  // The device path is taken between cuda backends only.
  const size_t w = la.out.poly_words();
  Buffer dst(lb.ctx->backend_ptr(), w, false, false);
  EXPECT_TRUE(lb.ctx->backend().copy_from(dst.data(), la.ctx->backend(), la.out.poly(0), w));
  EXPECT_TRUE(same_words(download(la.ctx, la.out.poly(0), w), dst.to_host(), params.n()));
  EXPECT_FALSE(lb.ctx->backend().copy_from(dst.data(), cpu.ctx->backend(), xc.poly(0), w));
  Buffer on_cpu(cpu.ctx->backend_ptr(), w);
  EXPECT_FALSE(cpu.ctx->backend().copy_from(on_cpu.data(), la.ctx->backend(), la.out.poly(0), w));
}

// One context and one set of keys shared by three host threads, each in a
// StreamScope (a stream of its own, so their kernels may run at the same time):
// every word equals the cpu's. Nested scopes, and streams of another backend.
TEST(CudaBackend, ThreadsShareOneContextOnStreamsOfTheirOwn) {
  VEIL_REQUIRE_CUDA();
  const Parameters params = Parameters::preset(13);
  Side cpu(params, 71, true, BackendKind::Cpu, {1});
  Side gpu(params, 71, true, BackendKind::Cuda, {1});
  auto work = [](Side& s, const Ciphertext& a, const Ciphertext& b) {
    return s.eval->rotate(s.eval->rescale(s.eval->multiply(a, b, s.rk)), 1, s.gk);
  };
  std::vector<Ciphertext> in_c, in_g;
  for (uint64_t i = 0; i < 4; ++i) {
    const auto v = random_reals(cpu.slots(), 96 + i);
    in_c.push_back(cpu.encrypt(v));
    in_g.push_back(gpu.encrypt(v));
  }
  std::vector<Ciphertext> out(3);
  run_on_threads(3, [&](size_t i) {
    StreamScope scope(gpu.ctx);
    Ciphertext r = work(gpu, in_g[i], in_g[i + 1]);
    {
      StreamScope inner(gpu.ctx);  // starts after the outer scope's work so far
      r = gpu.eval->add(r, r);
    }
    out[i] = gpu.eval->negate(r);  // back on the outer scope's stream
  });
  for (size_t i = 0; i < 3; ++i) {
    const Ciphertext w = work(cpu, in_c[i], in_c[i + 1]);
    const Ciphertext want = cpu.eval->negate(cpu.eval->add(w, w));
    ASSERT_TRUE(same_words(words_of(want), words_of(out[i]), params.n())) << "thread " << i;
  }

  Backend& be = gpu.ctx->backend();
  auto mine = be.create_stream();
  ASSERT_NE(mine, nullptr);
  const ContextPtr other = Context::create(params, BackendKind::Cuda);
  auto theirs = other->backend().create_stream();
  EXPECT_VEIL_ERROR(be.push_stream(theirs.get()), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(be.push_stream(nullptr), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(be.pop_stream(), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(cpu.ctx->backend().push_stream(mine.get()), ErrorCode::InvalidArgument);
  be.push_stream(mine.get());
  be.pop_stream();
}

// 130 copies of different lengths in one call (cuda: two launches of up to 128), on
// both backends, against the host data they came from.
TEST(CudaBackend, CopyManyCopiesEveryPair) {
  VEIL_REQUIRE_CUDA();
  const auto tables = RnsTables::build(Parameters::preset(13));
  for (BackendKind kind : {BackendKind::Cpu, BackendKind::Cuda}) {
    const auto be = make_backend(kind, tables);
    std::vector<Buffer> src, dst;
    std::vector<std::vector<uint64_t>> host;
    std::vector<uint64_t*> dsts;
    std::vector<const uint64_t*> srcs;
    std::vector<size_t> words;
    for (size_t i = 0; i < 130; ++i) {
      const size_t w = 1 + (i * 7919) % 3000;
      host.emplace_back(w);
      for (size_t k = 0; k < w; ++k) host.back()[k] = i * 1000003 + k;
      src.emplace_back(be, w);
      src.back().from_host(host.back().data(), w);
      dst.emplace_back(be, w);
      dsts.push_back(dst.back().data());
      srcs.push_back(src.back().data());
      words.push_back(w);
    }
    be->copy_many(130, dsts.data(), srcs.data(), words.data());
    for (size_t i = 0; i < 130; ++i) ASSERT_EQ(dst[i].to_host(), host[i]) << be->name() << ", copy " << i;
  }
}

TEST(CudaBackend, AutoPicksCudaAndBadCallsThrow) {
  VEIL_REQUIRE_CUDA();
  auto ctx = Context::create(Parameters::preset(13), BackendKind::Auto);
  EXPECT_EQ(ctx->backend().name(), "cuda");
  Backend& be = ctx->backend();
  Buffer a(ctx->backend_ptr(), ctx->words(Basis{1, false})), b = a;
  EXPECT_VEIL_ERROR(be.automorphism_ntt(Basis{1, false}, b.data(), a.data(), 4), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(be.rescale(0, a.data(), b.data()), ErrorCode::LevelMismatch);
  EXPECT_VEIL_ERROR(be.mod_up(0, 5, b.data(), a.data(), a.data()), ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace veil::test
