// veil-bench: Google Benchmark suite for the cpu backend and, when a CUDA device
// is present, the cuda backend.
//
// Every benchmark is registered once per ring degree N in {2^13, 2^14, 2^15,
// 2^16} under the name "BM_<Op>/<N>" (e.g. "BM_NTT/16384", "BM_MulRelin/16384"),
// and those that depend on P once more on the 2^16 preset ("BM_<Op>/65536/dnum5"),
// and reports the counters N, limbs (primes of Q at the level it runs at),
// alpha (special primes) and dnum (key-switching digits). The CPU backend runs
// limbs in parallel with OpenMP (set OMP_NUM_THREADS to pin the thread count),
// so read "real_time" (wall clock), not "cpu_time" (the main thread only).
// UseRealTime() is not set because it would append "/real_time" to the names.
//
// cuda: the same operations as "BM_<Op>/<N>/cuda/manual_time", timed with CUDA
// events on the backend's stream around each iteration (Backend::timer_start /
// timer_stop_ms), after Google Benchmark's warm-up; operands live on the device,
// no transfer is timed. "BM_Upload|Download/<N>/cuda" time one top-level
// ciphertext's host <-> device copy (wall clock; bytes_per_second).
// "BM_KeySwitchInner/<N>[/cuda...]" is the key-switching inner product alone
// (dnum digits x the relinearization key, over Q u P at the top level), with the
// counters bytes (what must move: digits + key read, two outputs written),
// bytes_per_second (achieved) and, on cuda, peak_GBps (the device's theoretical
// bandwidth: achieved / peak = bytes_per_second / 1e9 / peak_GBps).
// "BM_MulRelinPair/<N>/cuda/{one_stream,two_streams}": two independent multiply +
// relinearize per iteration in one context, on one stream or on two (wall clock of
// the pair): what overlapping independent work gains.
// "BM_{Add,Rescale,MulRelin}Burst/<N>/cuda": 16 ops issued back to back, per-op
// CUDA-event time of the burst and the host's issue time per op (host_us_per_op):
// against the single-op rows, how much of an op's latency is host work.
// "BM_{Add,Rescale,MulRelin,Rotate}Graph/<N>/cuda": the same 16 ops recorded once as a
// CUDA graph and replayed (per op): device time with no host work per op.
// "BM_KeySwitchApply/<N>[/cuda...]": what key switching actually runs after the
// decomposition (cuda, split by default: the inner product on finished digits; with
// VEIL_CUDA_KEY_SWITCH=fused, the digits' last NTT pass fused into it), with the same
// counters as BM_KeySwitchInner.
// --benchmark_filter='/cuda' selects the cuda rows, --benchmark_filter='^BM_[A-Za-z0-9]+/[0-9]+$' the cpu rows.
//
// Moduli. For N = 2^13..2^15 the bit sizes are SEAL's CoeffModulus::BFVDefault
// (128-bit), so bench/compare.py can give SEAL and OpenFHE the same chain:
//   N =  8192: Q {43, 43, 44, 44}        P {44}   (218 bits) scale 2^30
//   N = 16384: Q {48, 48, 48, 49 x 5}    P {49}   (438 bits) scale 2^40
//   N = 32768: Q {55 x 15}               P {56}   (881 bits) scale 2^40
//   N = 65536: Q {60, 40 x 34}, P {60 x 5}, scale 2^40 (dnum 7): Phantom's "veil16"
//              chain (../shared/peers/phantom), Parameters::preset(16) until 2026-12-05
// (SEAL has no default chain for N = 2^16.) The rows "BM_<Op>/65536/dnum5[/cuda...]"
// run the operations whose cost depends on P (key switching, public-key encryption)
// on today's Parameters::preset(16): the same Q, P {50 x 7}, dnum 5. With a single
// special prime the key-switching digits are single primes: dnum = number of Q
// primes. The 43/44-bit chain uses scale 2^30 so that the scale stays below q_0 / 2.
//
// Contexts and keys are built lazily, once per N, on first use (the cache keeps
// one N at a time, and benchmarks run N-major, so each is built once). Only the
// Galois keys the rotation benchmarks need (steps 1..8) are generated. Run with
// --benchmark_filter='/16384$' to select one size; --benchmark_format=json for
// machine-readable output (bench/compare.py parses it).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "veil/veil.hpp"

namespace {

using namespace veil;

// The chains rows run on (a benchmark's `chain` argument indexes this table), each
// named by its rows' suffix.
struct Chain {
  uint32_t log_n;
  const char* suffix;
  bool preset;  // Parameters::preset(log_n), registered for the rows that depend on P only
};
constexpr Chain kChains[] = {
    {13, "/8192", false}, {14, "/16384", false}, {15, "/32768", false}, {16, "/65536", false}, {16, "/65536/dnum5", true}};
const std::vector<int64_t> kHoistSteps = {1, 2, 3, 4, 5, 6, 7, 8};
// BM_Bsgs16's rotations: baby steps 1..3, giant steps 4, 8, 12 (12: the one key not above).
const std::vector<int64_t> kBsgsBaby = {0, 1, 2, 3}, kBsgsGiant = {0, 4, 8, 12};

Parameters bench_parameters(const Chain& chain) {
  if (chain.preset) return Parameters::preset(chain.log_n);
  ParameterSpec spec;
  spec.log_n = chain.log_n;
  switch (chain.log_n) {
    case 13:
      spec.q_bits = {43, 43, 44, 44};
      spec.p_bits = {44};
      spec.default_scale = std::ldexp(1.0, 30);
      return Parameters::create(spec);
    case 14:
      spec.q_bits = {48, 48, 48, 49, 49, 49, 49, 49};
      spec.p_bits = {49};
      spec.default_scale = std::ldexp(1.0, 40);
      return Parameters::create(spec);
    case 15:
      spec.q_bits.assign(15, 55);
      spec.p_bits = {56};
      spec.default_scale = std::ldexp(1.0, 40);
      return Parameters::create(spec);
    default:
      spec.q_bits.assign(35, 40);
      spec.q_bits[0] = 60;
      spec.p_bits.assign(5, 60);
      spec.default_scale = std::ldexp(1.0, 40);
      return Parameters::create(spec);
  }
}

// Everything one N needs: context, keys, encoded/encrypted operands.
struct Fixture {
  Fixture(uint32_t chain, BackendKind kind)
      : ctx(Context::create(bench_parameters(kChains[chain]), kind)),
        keygen(ctx),
        encoder(ctx),
        evaluator(ctx) {
    pk = keygen.create_public_key();
    rk = keygen.create_relin_key();
    encryptor.emplace(ctx, pk);
    sk_encryptor.emplace(ctx, keygen.secret_key());
    decryptor.emplace(ctx, keygen.secret_key());

    std::mt19937_64 rng(0x5eed + kChains[chain].log_n);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    values.resize(ctx->params().slots());
    for (auto& v : values) v = dist(rng);
    std::vector<double> other(values.size());
    for (auto& v : other) v = dist(rng);

    pt = encoder.encode(values);
    ct_a = encryptor->encrypt(pt);
    ct_b = encryptor->encrypt(encoder.encode(other));
    ct3 = evaluator.multiply_no_relin(ct_a, ct_b);
    prod = evaluator.relinearize(ct3, rk);

    // One polynomial over Q_L with coefficients reduced mod each q_i.
    const Basis q{ctx->max_level() + 1, false};
    poly = ctx->allocate(q);
    std::vector<uint64_t> host(poly.words());
    const uint64_t n = ctx->n();
    for (uint32_t i = 0; i < q.q_count; ++i) {
      const uint64_t qi = ctx->tables().primes[i];
      for (uint64_t j = 0; j < n; ++j) host[i * n + j] = rng() % qi;
    }
    poly.from_host(host.data(), host.size());
  }

  const GaloisKeys& galois_keys() {
    if (!gk) {
      std::vector<int64_t> steps = kHoistSteps;
      steps.push_back(12);
      gk = keygen.create_galois_keys(steps, /*conjugation=*/false);
    }
    return *gk;
  }
  // BM_Bsgs16's four plaintexts (one per baby step, reused by every giant step) at
  // scale q_L, over Q_L and over Q_L u P.
  void bsgs_plaintexts() {
    if (!bsgs_plain.empty()) return;
    const double q = static_cast<double>(ctx->tables().primes[ctx->max_level()]);
    for (size_t b = 0; b < kBsgsBaby.size(); ++b) {
      std::vector<double> v(values.size());
      for (size_t i = 0; i < v.size(); ++i) v[i] = values[(i + 7 * b) % v.size()];
      bsgs_plain.push_back(encoder.encode(v, q));
      bsgs_extended.push_back(encoder.encode_extended(v, q));
    }
  }

  void set_counters(benchmark::State& state, uint32_t limbs) const {
    const auto& p = ctx->params();
    state.counters["N"] = static_cast<double>(p.n());
    state.counters["limbs"] = limbs;
    state.counters["alpha"] = p.alpha();
    state.counters["dnum"] = p.dnum();
  }
  uint32_t top_limbs() const { return ctx->max_level() + 1; }

  ContextPtr ctx;
  KeyGenerator keygen;
  Encoder encoder;
  Evaluator evaluator;
  PublicKey pk;
  RelinKey rk;
  std::optional<GaloisKeys> gk;
  std::optional<Encryptor> encryptor, sk_encryptor;
  std::optional<Decryptor> decryptor;
  std::vector<double> values;
  std::vector<Plaintext> bsgs_plain;
  std::vector<ExtendedPlaintext> bsgs_extended;
  Plaintext pt;
  Ciphertext ct_a, ct_b, ct3, prod;
  Buffer poly;
};

// Keeps the fixture of the chain and backend in use; switching frees the previous one
// first (keys at N = 2^16 take several hundred MB each).
Fixture& fixture(uint32_t chain, BackendKind kind) {
  static std::unique_ptr<Fixture> cache;
  static uint32_t cached_chain = 0;
  static BackendKind cached_kind = BackendKind::Cpu;
  if (!cache || cached_chain != chain || cached_kind != kind) {
    cache.reset();
    cache = std::make_unique<Fixture>(chain, kind);
    cached_chain = chain;
    cached_kind = kind;
  }
  return *cache;
}

// bytes: what must move per iteration; bytes_per_second: achieved; peak_GBps (cuda):
// the device's theoretical bandwidth, so achieved / peak = bytes_per_second / 1e9 / peak_GBps.
void set_bandwidth_counters(benchmark::State& state, const Fixture& f, double bytes) {
  state.counters["bytes"] = bytes;
  state.counters["bytes_per_second"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  if (f.ctx->backend().name() == "cuda") state.counters["peak_GBps"] = cuda_peak_bandwidth_gbs(0);
}

// Runs `op` once per iteration: cpu as before (wall clock by the framework); cuda
// with manual time from CUDA events around the op.
template <class Op>
void run_timed(benchmark::State& state, Fixture& f, Op&& op) {
  Backend& be = f.ctx->backend();
  if (be.name() == "cpu") {
    for (auto _ : state) op();
    return;
  }
  for (auto _ : state) {
    be.timer_start();
    op();
    state.SetIterationTime(be.timer_stop_ms() * 1e-3);
  }
}

// cuda: kBurst ops issued back to back, timed with events around the burst: the
// per-op time when the device never waits for one op's host work before the next
// (what a model's run sees), against run_timed's single-op latency. The counter
// host_us_per_op is the host's time to issue one op (no synchronisation inside).
constexpr int kBurst = 16;
template <class Op>
void run_burst(benchmark::State& state, Fixture& f, Op&& op) {
  Backend& be = f.ctx->backend();
  double host_us = 0;
  for (auto _ : state) {
    be.timer_start();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kBurst; ++i) op();
    const auto t1 = std::chrono::steady_clock::now();
    state.SetIterationTime(be.timer_stop_ms() * 1e-3 / kBurst);
    host_us += std::chrono::duration<double, std::micro>(t1 - t0).count() / kBurst;
  }
  state.counters["host_us_per_op"] = host_us / static_cast<double>(state.iterations());
}

// cuda: kBurst ops recorded once (Backend::begin_recording, a CUDA graph) and replayed,
// timed with events around the replay: the per-op device time with no host work per op
// (what a recorded model run, veil::RecordedComputation, sees). The counter
// graph_nodes_per_op is the device work items per op.
template <class Op>
void run_graph(benchmark::State& state, Fixture& f, Op&& op) {
  Backend& be = f.ctx->backend();
  op();  // lazily built device state exists before the recording
  be.synchronize();
  if (!be.begin_recording()) {
    state.SkipWithError("this backend cannot record");
    return;
  }
  try {
    for (int i = 0; i < kBurst; ++i) op();  // each result is released at once: the recording reuses its memory
  } catch (...) {
    be.end_recording();
    throw;
  }
  const std::unique_ptr<BackendRecording> recording = be.end_recording();
  for (auto _ : state) {
    be.timer_start();
    be.replay(*recording);
    state.SetIterationTime(be.timer_stop_ms() * 1e-3 / kBurst);
  }
  state.counters["graph_nodes_per_op"] = static_cast<double>(recording->operations()) / kBurst;
}

// ---- benchmarks (argument: an index into kChains) ----

void BM_NTT(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const Basis q{f.top_limbs(), false};
  Backend& be = f.ctx->backend();
  uint64_t* data = f.poly.data();
  run_timed(state, f, [&] {
    be.ntt_forward(q, data);
    benchmark::DoNotOptimize(data);
    benchmark::ClobberMemory();
  });
  f.set_counters(state, f.top_limbs());
}

void BM_INTT(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const Basis q{f.top_limbs(), false};
  Backend& be = f.ctx->backend();
  uint64_t* data = f.poly.data();
  run_timed(state, f, [&] {
    be.ntt_inverse(q, data);
    benchmark::DoNotOptimize(data);
    benchmark::ClobberMemory();
  });
  f.set_counters(state, f.top_limbs());
}

void BM_Encode(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Plaintext p = f.encoder.encode(f.values);
    benchmark::DoNotOptimize(p.data());
  });
  f.set_counters(state, f.top_limbs());
}

void BM_Encrypt(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.encryptor->encrypt(f.pt);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

// Secret-key encryption (what veil query does): c1 is expanded from a seed, so on
// cuda both halves are drawn on the device.
void BM_EncryptSecretKey(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.sk_encryptor->encrypt(f.pt);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

// What a client's encrypt call does (and veil.Context.encrypt from Python): encode the
// slot values, then encrypt with the public key.
void BM_EncryptValues(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.encryptor->encrypt(f.encoder.encode(f.values));
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

void BM_Decrypt(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Plaintext p = f.decryptor->decrypt(f.ct_a);
    benchmark::DoNotOptimize(p.data());
  });
  f.set_counters(state, f.top_limbs());
}

void BM_Add(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.evaluator.add(f.ct_a, f.ct_b);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

void BM_Mul(benchmark::State& state, uint32_t chain, BackendKind kind) {  // tensor only, no relinearization
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.evaluator.multiply_no_relin(f.ct_a, f.ct_b);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

void BM_MulRelin(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.evaluator.multiply(f.ct_a, f.ct_b, f.rk);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

// A product as a model layer (and Python's `a * b`) computes it: multiply, then
// relinearize and rescale in one ModDown (Evaluator::relinearize_rescale).
void BM_MulRelinRescale(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.evaluator.relinearize_rescale(f.evaluator.multiply_no_relin(f.ct_a, f.ct_b), f.rk);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

// The same product with relinearize and rescale as two calls: what the merged ModDown saves.
void BM_MulRelinRescaleTwoSteps(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.evaluator.rescale(f.evaluator.multiply(f.ct_a, f.ct_b, f.rk));
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

void BM_Relin(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.evaluator.relinearize(f.ct3, f.rk);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
  // The whole key switch plus the two additions: what must move is the three input
  // polynomials over Q_L, the key (dnum x 2 polynomials over Q_L u P) and the two
  // outputs. Every intermediate (ModUp digits, accumulators, ModDown scratch) is
  // extra traffic, so achieved / peak measures the pipeline, not one kernel.
  const RnsTables& t = f.ctx->tables();
  const uint32_t level = f.ctx->max_level();
  const double poly_q = 8.0 * f.ctx->words(Basis{level + 1, false});
  const double poly_qp = 8.0 * f.ctx->words(Basis{level + 1, true});
  set_bandwidth_counters(state, f, 5.0 * poly_q + 2.0 * t.digits(level) * poly_qp);
}

void BM_Rescale(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_timed(state, f, [&] {
    Ciphertext c = f.evaluator.rescale(f.prod);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

void BM_Rotate(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const GaloisKeys& gk = f.galois_keys();
  run_timed(state, f, [&] {
    Ciphertext c = f.evaluator.rotate(f.ct_a, 1, gk);
    benchmark::DoNotOptimize(c.poly(0));
  });
  f.set_counters(state, f.top_limbs());
}

void BM_RotateHoisted8(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const GaloisKeys& gk = f.galois_keys();
  run_timed(state, f, [&] {
    std::vector<Ciphertext> c = f.evaluator.rotate_hoisted(f.ct_a, kHoistSteps, gk);
    benchmark::DoNotOptimize(c.data());
  });
  f.set_counters(state, f.top_limbs());
  state.counters["rotations"] = static_cast<double>(kHoistSteps.size());
}

// A 16-diagonal baby-step/giant-step sum, sum_g rot(sum_b p_b * rot(x, b), 4 g) for b, g
// < 4, then the rescale, as LinearLayer and SpatialConv2d run it: double hoisted (the
// baby rotations and products over Q_L u P, one ModDown per giant step; counter
// mod_downs). BM_Bsgs16Classic: the same sum from rotate_hoisted, multiply_plain,
// rotate_many, add and rescale (a ModDown per rotation), to read against it in one run.
void BM_Bsgs16(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const GaloisKeys& gk = f.galois_keys();
  f.bsgs_plaintexts();
  const Evaluator& ev = f.evaluator;
  run_timed(state, f, [&] {
    auto babies = ev.rotate_hoisted_extended({&f.ct_a}, {kBsgsBaby}, gk);
    std::vector<const ExtendedCiphertext*> xs;
    std::vector<const ExtendedPlaintext*> ps;
    for (size_t b = 0; b < kBsgsBaby.size(); ++b) {
      xs.push_back(&babies[0][b]);
      ps.push_back(&f.bsgs_extended[b]);
    }
    std::vector<ExtendedCiphertext> parts(kBsgsGiant.size());
    for (auto& part : parts) ev.multiply_sum_extended(part, xs, ps, false);
    Ciphertext y = ev.rotate_sum_extended(parts, kBsgsGiant, gk);
    benchmark::DoNotOptimize(y.poly(0));
  });
  f.set_counters(state, f.top_limbs());
  state.counters["mod_downs"] = static_cast<double>(kBsgsGiant.size() - 1 + 2);  // c1 per rotated part, the sum
}

void BM_Bsgs16Classic(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const GaloisKeys& gk = f.galois_keys();
  f.bsgs_plaintexts();
  const Evaluator& ev = f.evaluator;
  const std::vector<int64_t> baby(kBsgsBaby.begin() + 1, kBsgsBaby.end());
  const std::vector<int64_t> giant(kBsgsGiant.begin() + 1, kBsgsGiant.end());
  run_timed(state, f, [&] {
    const auto rotated = ev.rotate_hoisted(f.ct_a, baby, gk);
    std::vector<Ciphertext> parts;
    for (size_t g = 0; g < kBsgsGiant.size(); ++g) {
      Ciphertext part = ev.multiply_plain(f.ct_a, f.bsgs_plain[0]);
      for (size_t b = 1; b < kBsgsBaby.size(); ++b) part = ev.add(part, ev.multiply_plain(rotated[b - 1], f.bsgs_plain[b]));
      parts.push_back(std::move(part));
    }
    std::vector<const Ciphertext*> rotate_these;
    for (size_t g = 1; g < parts.size(); ++g) rotate_these.push_back(&parts[g]);
    Ciphertext sum = parts[0];
    for (const Ciphertext& r : ev.rotate_many(rotate_these, giant, gk)) sum = ev.add(sum, r);
    Ciphertext y = ev.rescale(sum);
    benchmark::DoNotOptimize(y.poly(0));
  });
  f.set_counters(state, f.top_limbs());
  state.counters["mod_downs"] = static_cast<double>(2 * (baby.size() + giant.size()));  // a pair per rotation
}

// Eight independent rotations (eight ciphertexts, the steps of BM_RotateHoisted8):
// one batch of key switches (Evaluator::rotate_many), to read against 8 x BM_Rotate.
void BM_RotateMany8(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const GaloisKeys& gk = f.galois_keys();
  std::vector<Ciphertext> xs(kHoistSteps.size(), f.ct_a);
  std::vector<const Ciphertext*> ptrs;
  for (const auto& x : xs) ptrs.push_back(&x);
  run_timed(state, f, [&] {
    std::vector<Ciphertext> c = f.evaluator.rotate_many(ptrs, kHoistSteps, gk);
    benchmark::DoNotOptimize(c.data());
  });
  f.set_counters(state, f.top_limbs());
  state.counters["rotations"] = static_cast<double>(kHoistSteps.size());
}

// Eight relinearizations (of the same product, in eight buffers) in one batch
// (Evaluator::relinearize_many), to read against 8 x BM_Relin.
void BM_RelinMany8(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const std::vector<Ciphertext> products(8, f.ct3);
  run_timed(state, f, [&] {
    std::vector<Ciphertext> c = f.evaluator.relinearize_many(products, f.rk);
    benchmark::DoNotOptimize(c.data());
  });
  f.set_counters(state, f.top_limbs());
  state.counters["relinearizations"] = 8;
}

// The key-switching inner product alone at the top level: dnum digits over Q u P
// times the relinearization key, accumulated into two outputs.
void BM_KeySwitchInner(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const RnsTables& t = f.ctx->tables();
  const uint32_t level = f.ctx->max_level(), digits = t.digits(level);
  const Basis qp{level + 1, true};
  Buffer dig = f.ctx->allocate(qp, digits), out = f.ctx->allocate(qp, 2);
  const size_t poly = f.ctx->words(qp);
  Backend& be = f.ctx->backend();
  run_timed(state, f, [&] {
    be.key_switch_inner_product(level, digits, dig.data(), f.rk.key.data(), out.data(), out.data() + poly);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  });
  f.set_counters(state, f.top_limbs());
  // Read every digit word and both key words per digit, write two outputs.
  set_bandwidth_counters(state, f, 8.0 * static_cast<double>(poly) * (digits + 2.0 * digits + 2.0));
}

// Two independent multiply+relinearize operations per iteration in one context with
// one set of keys: both on the backend's stream, or each on a stream of its own
// (Backend::create_stream / push_stream, what a StreamScope does per thread) so the
// second can overlap the first. Wall clock of the pair, from issue until both are done.
void BM_MulRelinPair(benchmark::State& state, uint32_t chain, bool two_streams) {
  Fixture& f = fixture(chain, BackendKind::Cuda);
  Backend& be = f.ctx->backend();
  auto s1 = be.create_stream(), s2 = be.create_stream();
  auto on = [&](BackendStream* s, auto&& fn) {
    if (two_streams) be.push_stream(s);
    fn();
    if (two_streams) be.pop_stream();
  };
  be.synchronize();
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    {
      Ciphertext c1, c2;
      on(s1.get(), [&] { c1 = f.evaluator.multiply(f.ct_a, f.ct_b, f.rk); });
      on(s2.get(), [&] { c2 = f.evaluator.multiply(f.ct_b, f.ct_a, f.rk); });
      on(s1.get(), [&] { be.synchronize(); });
      on(s2.get(), [&] { be.synchronize(); });
      benchmark::DoNotOptimize(c1.poly(0));
      benchmark::DoNotOptimize(c2.poly(0));
    }  // freed on the backend's stream, after both streams finished
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  f.set_counters(state, f.top_limbs());
  state.counters["streams"] = two_streams ? 2 : 1;
}

// What key switching runs after the decomposition: Backend::key_switch_apply on
// key_switch_decompose's output (cuda: the inner product on the finished digits, or
// with VEIL_CUDA_KEY_SWITCH=fused the digits' last NTT pass fused with it; cpu: the
// inner product itself). Same bytes that must move as
// BM_KeySwitchInner: the decomposition is as large as the digits.
void BM_KeySwitchApply(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  const RnsTables& t = f.ctx->tables();
  const uint32_t level = f.ctx->max_level(), digits = t.digits(level);
  const Basis qp{level + 1, true};
  Buffer dec = f.ctx->allocate(qp, digits), out = f.ctx->allocate(qp, 2);
  Backend& be = f.ctx->backend();
  be.key_switch_decompose(level, dec.data(), f.poly.data());
  const size_t poly = f.ctx->words(qp);
  run_timed(state, f, [&] {
    be.key_switch_apply(level, digits, dec.data(), f.poly.data(), f.rk.key.data(), out.data(), out.data() + poly);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  });
  f.set_counters(state, f.top_limbs());
  set_bandwidth_counters(state, f, 8.0 * static_cast<double>(poly) * (digits + 2.0 * digits + 2.0));
}

// The ops of the burst and graph rows: one each, timed by run_burst or run_graph.
using BenchOp = void (*)(Fixture&);
void add_op(Fixture& f) { benchmark::DoNotOptimize(f.evaluator.add(f.ct_a, f.ct_b).poly(0)); }
void rescale_op(Fixture& f) { benchmark::DoNotOptimize(f.evaluator.rescale(f.prod).poly(0)); }
void mul_relin_op(Fixture& f) { benchmark::DoNotOptimize(f.evaluator.multiply(f.ct_a, f.ct_b, f.rk).poly(0)); }
void rotate_op(Fixture& f) { benchmark::DoNotOptimize(f.evaluator.rotate(f.ct_a, 1, f.galois_keys()).poly(0)); }

template <BenchOp Op>
void BM_Burst(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  run_burst(state, f, [&] { Op(f); });
  f.set_counters(state, f.top_limbs());
}

template <BenchOp Op>
void BM_Graph(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  f.galois_keys();  // made before: a recording refuses the keys' upload
  run_graph(state, f, [&] { Op(f); });
  f.set_counters(state, f.top_limbs());
}

// One top-level ciphertext (2 polynomials over Q_L) host -> device and back.
void BM_Upload(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  std::vector<uint64_t> host(2 * f.ct_a.poly_words(), 1);
  Buffer dev = f.ctx->allocate(Basis{f.top_limbs(), false}, 2);
  for (auto _ : state) dev.from_host(host.data(), host.size());
  f.set_counters(state, f.top_limbs());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * host.size() * 8));
}

void BM_Download(benchmark::State& state, uint32_t chain, BackendKind kind) {
  Fixture& f = fixture(chain, kind);
  Buffer dev = f.ctx->allocate(Basis{f.top_limbs(), false}, 2);
  for (auto _ : state) {
    std::vector<uint64_t> host = dev.to_host();
    benchmark::DoNotOptimize(host.data());
  }
  f.set_counters(state, f.top_limbs());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * dev.words() * 8));
}

struct Entry {
  const char* name;
  void (*fn)(benchmark::State&, uint32_t, BackendKind);
  benchmark::TimeUnit unit;
  bool depends_on_p;  // key switching or public-key encryption: also run on the preset chain
};

const Entry kEntries[] = {
    {"BM_NTT", BM_NTT, benchmark::kMicrosecond, false},
    {"BM_INTT", BM_INTT, benchmark::kMicrosecond, false},
    {"BM_Encode", BM_Encode, benchmark::kMicrosecond, false},
    {"BM_Encrypt", BM_Encrypt, benchmark::kMillisecond, true},
    {"BM_EncryptSecretKey", BM_EncryptSecretKey, benchmark::kMillisecond, false},
    {"BM_EncryptValues", BM_EncryptValues, benchmark::kMillisecond, true},
    {"BM_Decrypt", BM_Decrypt, benchmark::kMicrosecond, false},
    {"BM_Add", BM_Add, benchmark::kMicrosecond, false},
    {"BM_Mul", BM_Mul, benchmark::kMicrosecond, false},
    {"BM_MulRelin", BM_MulRelin, benchmark::kMillisecond, true},
    {"BM_MulRelinRescale", BM_MulRelinRescale, benchmark::kMillisecond, true},
    {"BM_MulRelinRescaleTwoSteps", BM_MulRelinRescaleTwoSteps, benchmark::kMillisecond, true},
    {"BM_Relin", BM_Relin, benchmark::kMillisecond, true},
    {"BM_Rescale", BM_Rescale, benchmark::kMicrosecond, false},
    {"BM_Rotate", BM_Rotate, benchmark::kMillisecond, true},
    {"BM_RotateHoisted8", BM_RotateHoisted8, benchmark::kMillisecond, true},
    {"BM_RotateMany8", BM_RotateMany8, benchmark::kMillisecond, true},
    {"BM_RelinMany8", BM_RelinMany8, benchmark::kMillisecond, true},
    {"BM_Bsgs16", BM_Bsgs16, benchmark::kMillisecond, true},
    {"BM_Bsgs16Classic", BM_Bsgs16Classic, benchmark::kMillisecond, true},
    {"BM_KeySwitchInner", BM_KeySwitchInner, benchmark::kMicrosecond, true},
    {"BM_KeySwitchApply", BM_KeySwitchApply, benchmark::kMicrosecond, true},
};

// Chain-major registration so each chain's context and keys are built once per backend.
void register_all() {
  const bool cuda = cuda_available();
  for (uint32_t chain = 0; chain < std::size(kChains); ++chain) {
    const std::string suffix = kChains[chain].suffix;
    const bool all = !kChains[chain].preset;
    for (const Entry& e : kEntries) {
      if (!all && !e.depends_on_p) continue;
      auto fn = e.fn;
      benchmark::RegisterBenchmark((std::string(e.name) + suffix).c_str(), [fn, chain](benchmark::State& st) { fn(st, chain, BackendKind::Cpu); })->Unit(e.unit);
    }
    if (!cuda) continue;
    for (const Entry& e : kEntries) {
      if (!all && !e.depends_on_p) continue;
      auto fn = e.fn;
      benchmark::RegisterBenchmark((std::string(e.name) + suffix + "/cuda").c_str(),
                                   [fn, chain](benchmark::State& st) { fn(st, chain, BackendKind::Cuda); })
          ->Unit(benchmark::kMicrosecond)
          ->UseManualTime();
    }
    using Fn = void (*)(benchmark::State&, uint32_t, BackendKind);
    const std::pair<const char*, Fn> graphs[] = {{"BM_MulRelinGraph", BM_Graph<mul_relin_op>}, {"BM_RotateGraph", BM_Graph<rotate_op>}};
    const std::pair<const char*, Fn> others[] = {
        {"BM_AddBurst", BM_Burst<add_op>}, {"BM_RescaleBurst", BM_Burst<rescale_op>},
        {"BM_MulRelinBurst", BM_Burst<mul_relin_op>}, {"BM_AddGraph", BM_Graph<add_op>},
        {"BM_RescaleGraph", BM_Graph<rescale_op>}};
    auto register_graph_rows = [&](const auto& rows) {
      for (auto [name, fn] : rows) {
        benchmark::RegisterBenchmark((std::string(name) + suffix + "/cuda").c_str(), [fn, chain](benchmark::State& st) { fn(st, chain, BackendKind::Cuda); })
            ->Unit(benchmark::kMicrosecond)
            ->UseManualTime();
      }
    };
    register_graph_rows(graphs);
    if (!all) continue;
    register_graph_rows(others);
    for (bool two : {false, true}) {
      benchmark::RegisterBenchmark((std::string("BM_MulRelinPair") + suffix + (two ? "/cuda/two_streams" : "/cuda/one_stream")).c_str(),
                                   [two, chain](benchmark::State& st) { BM_MulRelinPair(st, chain, two); })
          ->Unit(benchmark::kMicrosecond)
          ->UseManualTime();
    }
    const std::pair<const char*, Fn> transfers[] = {{"BM_Upload", BM_Upload}, {"BM_Download", BM_Download}};
    for (auto [name, fn] : transfers) {
      benchmark::RegisterBenchmark((std::string(name) + suffix + "/cuda").c_str(), [fn, chain](benchmark::State& st) { fn(st, chain, BackendKind::Cuda); })->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    benchmark::RunSpecifiedBenchmarks();
  } catch (const veil::Error& e) {
    std::fprintf(stderr, "veil error: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
