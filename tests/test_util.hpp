// Shared helpers for the CKKS tests: a keyed test fixture per parameter set and
// precision measurement against plain double evaluation.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "veil/veil.hpp"

namespace veil::test {

// Runs fn(i) for i = 0 .. count - 1, each on a thread of its own, all at once; then
// rethrows the first exception a thread raised.
template <class Fn>
void run_on_threads(size_t count, Fn fn) {
  std::vector<std::exception_ptr> errors(count);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < count; ++i) {
    threads.emplace_back([&, i] {
      try {
        fn(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// -log2 of the mean and of the worst absolute slot error.
struct Precision {
  double mean_bits = 0, worst_bits = 0;
};

inline Precision precision(const std::vector<std::complex<double>>& want,
                           const std::vector<std::complex<double>>& got) {
  double sum = 0, worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    double err = std::abs(want[i] - got[i]);
    sum += err;
    worst = std::max(worst, err);
  }
  sum /= static_cast<double>(want.size());
  return {-std::log2(std::max(sum, 1e-300)), -std::log2(std::max(worst, 1e-300))};
}

inline Precision precision(const std::vector<double>& want, const std::vector<double>& got) {
  std::vector<std::complex<double>> a(want.begin(), want.end()), b(got.begin(), got.begin() + want.size());
  return precision(a, b);
}

// Lattigo's test floor for fresh and linear operations: log2(scale) - (logN + 2).
inline double lattigo_floor(const Context& ctx, double scale) {
  return std::log2(scale) - (ctx.params().log_n() + 2);
}

// Every word of a ciphertext, in host memory (for word-for-word comparisons).
inline std::vector<uint64_t> words_of(const Ciphertext& ct) {
  std::vector<uint64_t> v(ct.size() * ct.poly_words());
  ct.context()->backend().download(v.data(), ct.poly(0), v.size());
  return v;
}

inline std::vector<double> random_reals(size_t n, uint64_t seed, double lo = -1, double hi = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// The code of the veil::Error that f throws; the test fails when f throws none. When
// must_contain is not empty, the error message must contain it.
inline ErrorCode error_code_of(const std::function<void()>& f, const std::string& must_contain = "") {
  try {
    f();
  } catch (const Error& e) {
    if (!must_contain.empty())
      EXPECT_NE(std::string(e.what()).find(must_contain), std::string::npos) << e.what();
    return e.code();
  }
  ADD_FAILURE() << "no veil::Error thrown";
  return static_cast<ErrorCode>(-1);
}

// EXPECT that `stmt` throws a veil::Error with `expected_code`.
#define EXPECT_VEIL_ERROR(stmt, expected_code) EXPECT_EQ(::veil::test::error_code_of([&] { stmt; }), expected_code)

// Prints a precision line that docs/precision.md is built from.
inline void report(const std::string& what, const Context& ctx, Precision p) {
  std::printf("[precision] N=2^%u %-40s mean %.1f bits, worst %.1f bits\n", ctx.params().log_n(), what.c_str(),
              p.mean_bits, p.worst_bits);
}

// Context + keys, built once per parameter set and shared by the tests.
struct Keyed {
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  PublicKey pk;
  RelinKey rk;
  GaloisKeys gk;
  std::unique_ptr<Encoder> encoder;
  std::unique_ptr<Encryptor> pk_encryptor, sk_encryptor;
  std::unique_ptr<Decryptor> decryptor;
  std::unique_ptr<Evaluator> eval;

  // galois: generate Galois keys for `steps` (empty: every power of two) and conjugation.
  explicit Keyed(const Parameters& params, uint64_t seed = 7, bool galois = true,
                 BackendKind backend = BackendKind::Cpu, const std::vector<int64_t>& steps = {}) {
    ctx = Context::create(params, backend);
    keygen = std::make_unique<KeyGenerator>(ctx, RandomSource::insecure_deterministic(seed));
    pk = keygen->create_public_key();
    rk = keygen->create_relin_key();
    if (galois) gk = keygen->create_galois_keys(steps, true);
    encoder = std::make_unique<Encoder>(ctx);
    pk_encryptor = std::make_unique<Encryptor>(ctx, pk, RandomSource::insecure_deterministic(seed + 1));
    sk_encryptor = std::make_unique<Encryptor>(ctx, keygen->secret_key(), RandomSource::insecure_deterministic(seed + 2));
    decryptor = std::make_unique<Decryptor>(ctx, keygen->secret_key());
    eval = std::make_unique<Evaluator>(ctx);
  }

  Ciphertext encrypt(const std::vector<double>& v, bool public_key = true) {
    auto pt = encoder->encode(v);
    return public_key ? pk_encryptor->encrypt(pt) : sk_encryptor->encrypt(pt);
  }
  std::vector<double> decrypt(const Ciphertext& ct) { return encoder->decode(decryptor->decrypt(ct)); }
  size_t slots() const { return ctx->params().slots(); }

  // Cached instances (key generation dominates test time).
  static Keyed& preset(uint32_t log_n) {
    static std::map<uint32_t, std::unique_ptr<Keyed>> cache;
    auto& slot = cache[log_n];
    if (!slot) slot = std::make_unique<Keyed>(Parameters::preset(log_n));
    return *slot;
  }
};

}  // namespace veil::test
