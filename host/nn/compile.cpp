// The model compiler's parameter search and dry run (include/veil/nn/compile.hpp).
#include "veil/nn/compile.hpp"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <sstream>

#include "veil/context.hpp"
#include "veil/encoder.hpp"
#include "veil/encryptor.hpp"
#include "veil/error.hpp"
#include "veil/evaluator.hpp"
#include "veil/keygen.hpp"

namespace veil::nn {

namespace {

constexpr int kMinPrimeBits = 20, kMaxPrimeBits = 61, kFastPrimeBits = 49;
constexpr int kFirstPrimeMargin = 4;  // q_0 bits beyond scale + output magnitude: noise, sign, sampling luck
// The dry run must beat the promise by this much, so that other inputs and other keys
// (whose noise differs from run to run) still meet it.
constexpr double kPromiseMarginBits = 2.0;  // a second measurement (other keys, inputs) was seen 1.4 bits lower

// A modulus chain for one N: q_0, `levels` scale-sized primes, alpha special primes.
struct Chain {
  uint32_t log_n = 0, levels = 0, alpha = 0;
  int scale_bits = 0, first_bits = 0, special_bits = 0;

  ParameterSpec spec() const {
    ParameterSpec s;
    s.log_n = log_n;
    s.q_bits.assign(levels + 1, scale_bits);
    s.q_bits[0] = first_bits;
    s.p_bits.assign(alpha, special_bits);
    s.default_scale = std::ldexp(1.0, scale_bits);
    return s;
  }
  int log_qp() const { return first_bits + static_cast<int>(levels) * scale_bits + static_cast<int>(alpha) * special_bits; }
};

// The chain for scale 2^scale_bits at N = 2^log_n, or why there is none.
std::optional<Chain> make_chain(uint32_t log_n, int scale_bits, uint32_t depth, int magnitude_bits,
                                std::string& why) {
  Chain c;
  c.log_n = log_n;
  c.levels = depth;
  c.scale_bits = scale_bits;
  c.first_bits = scale_bits + magnitude_bits + kFirstPrimeMargin;
  if (scale_bits < kMinPrimeBits || c.first_bits > kMaxPrimeBits) {
    why = "scale 2^" + std::to_string(scale_bits) + " needs a first prime of " + std::to_string(c.first_bits) +
          " bits (limit " + std::to_string(kMaxPrimeBits) + ")";
    return std::nullopt;
  }
  // Special primes at least as large as every q (the key-switching noise stays below
  // the scale), kept on the IFMA path when the q are.
  c.special_bits = std::max(c.first_bits, scale_bits);
  const int bound = he_standard_max_log_qp(log_n);
  const int q_bits = c.first_bits + static_cast<int>(depth) * scale_bits;
  for (uint32_t alpha = depth + 1; alpha >= 1; --alpha) {  // fewest digits that fit
    if (q_bits + static_cast<int>(alpha) * c.special_bits <= bound) {
      c.alpha = alpha;
      return c;
    }
  }
  why = "N = " + std::to_string(uint64_t{1} << log_n) + " allows log2(QP) <= " + std::to_string(bound) +
        " bits (HE Standard, 128-bit), the chain needs " + std::to_string(q_bits + c.special_bits);
  return std::nullopt;
}

std::vector<std::vector<double>> random_images(const Sequential& m, size_t count, double lo, double hi,
                                               uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<std::vector<double>> images(count, std::vector<double>(m.input_size()));
  for (auto& img : images)
    for (auto& v : img) v = hi > lo ? dist(rng) : lo;
  return images;
}

double precision_bits(double max_err, double max_ref) {
  const double rel = max_err / std::max(1.0, max_ref);
  return rel > 0 ? -std::log2(rel) : 60.0;
}

std::string describe_backend(const Context& ctx) {
  if (ctx.backend().name() == "cpu") return "cpu backend, " + std::to_string(omp_get_max_threads()) + " threads";
  const auto devices = cuda_devices();
  return "cuda backend" + (devices.empty() ? std::string() : ", " + devices.front());
}

struct DryRun {
  double bits = 0, max_err = 0, max_ref = 0, run_ms = 0;
  size_t batch = 0;
  bool confirmed = false;  // just below the margin, but a second run brought the mean to it
  std::string machine;
};

// Encrypts a full batch of random inputs, runs the plan and compares with float64.
DryRun dry_run(const Sequential& model, const Parameters& params, const CompileOptions& options,
               const AutoCompileOptions& o) {
  auto ctx = Context::create(params, o.backend);
  CompiledModel plan(ctx, model, options);
  KeyGenerator keygen(ctx);
  const RelinKey rk = keygen.create_relin_key();
  const GaloisKeys gk = keygen.create_galois_keys(plan.rotation_steps(), false);
  Encoder encoder(ctx);
  Encryptor encryptor(ctx, keygen.secret_key());
  Decryptor decryptor(ctx, keygen.secret_key());
  Evaluator eval(ctx);
  const auto images = random_images(model, plan.batch(), o.input_min, o.input_max, o.seed);
  std::vector<Ciphertext> inputs;
  for (const auto& slots : plan.encode(images))
    inputs.push_back(encryptor.encrypt(encoder.encode(slots, plan.input_scale(), static_cast<int>(plan.input_level()))));
  ctx->backend().synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  const auto outputs = plan.run(eval, inputs, rk, gk);
  ctx->backend().synchronize();
  DryRun r;
  r.run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::vector<double>> decoded;
  for (const auto& ct : outputs) decoded.push_back(encoder.decode(decryptor.decrypt(ct)));
  const auto got = plan.decode(decoded, images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const auto want = model.forward(images[i]);
    for (size_t f = 0; f < want.size(); ++f) {
      r.max_err = std::max(r.max_err, std::fabs(got[i][f] - want[f]));
      r.max_ref = std::max(r.max_ref, std::fabs(want[f]));
    }
  }
  r.bits = precision_bits(r.max_err, r.max_ref);
  r.batch = plan.batch();
  r.machine = describe_backend(*ctx);
  return r;
}

void say(const AutoCompileOptions& o, const std::string& line) {
  if (o.progress) o.progress(line);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

ModelFile compile_model(const Sequential& model, const std::string& name, const AutoCompileOptions& o) {
  require(valid_model_name(name), ErrorCode::InvalidArgument,
          "model name must be 1..64 characters of [A-Za-z0-9._-], got \"" + name + "\"");
  require(o.precision_bits >= 4 && o.precision_bits <= 40, ErrorCode::InvalidArgument,
          "precision must be 4..40 bits");
  require(std::isfinite(o.input_min) && std::isfinite(o.input_max) && o.input_min <= o.input_max,
          ErrorCode::InvalidArgument, "the input range must be finite and not empty");
  require(o.min_log_n >= 12 && o.min_log_n <= o.max_log_n && o.max_log_n <= 16, ErrorCode::InvalidArgument,
          "log N must be within 12..16");
  require(!model.layers().empty(), ErrorCode::InvalidArgument, "the model has no layers");
  const uint32_t depth = model_depth(model, o.packing);
  // The output's magnitude on inputs of the range decides q_0's headroom.
  double max_out = 0;
  for (const auto& img : random_images(model, 64, o.input_min, o.input_max, o.seed ^ 0x9e3779b97f4a7c15ULL))
    for (double y : model.forward(img)) max_out = std::max(max_out, std::fabs(y));
  const int magnitude_bits = static_cast<int>(std::ceil(std::log2(std::max(1.0, 2 * max_out))));
  say(o, "model: " + std::to_string(model.layers().size()) + " layers, depth " + std::to_string(depth) +
             ", outputs up to " + fmt("%.3g", max_out) + " on inputs in [" + fmt("%g", o.input_min) + ", " +
             fmt("%g", o.input_max) + "]");
  std::string why_not;
  for (uint32_t log_n = o.min_log_n; log_n <= o.max_log_n; ++log_n) {
    // Start from an estimate of the noise at this N (about log N / 2 + 10 bits below
    // the scale after a few layers) and let the measurements correct it.
    int scale = static_cast<int>(std::ceil(o.precision_bits + kPromiseMarginBits + log_n / 2.0 + 10));
    // ... but no larger than the largest scale whose chain fits this N's bound: the
    // estimate is pessimistic, and a measurement at that scale may still meet it.
    int largest = 0;
    for (int b = kMaxPrimeBits; b >= kMinPrimeBits && largest == 0; --b)
      if (make_chain(log_n, b, depth, magnitude_bits, why_not)) largest = b;
    if (largest == 0) continue;
    scale = std::min(scale, largest);
    std::optional<ModelFile> best;
    bool shrunk = false;
    for (int attempt = 0; attempt < 6; ++attempt) {
      std::string why;
      const auto chain = make_chain(log_n, scale, depth, magnitude_bits, why);
      if (!chain) {
        why_not = why;
        break;
      }
      std::optional<Parameters> params;
      try {
        params = Parameters::create(chain->spec());
      } catch (const Error& e) {
        why_not = "N = " + std::to_string(uint64_t{1} << log_n) + ": " + e.what();
        break;
      }
      CompileOptions copt{o.packing, o.batch, -1, 0, o.channel_blocks};
      DryRun run;
      try {
        run = dry_run(model, *params, copt, o);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::InvalidArgument && e.code() != ErrorCode::LevelMismatch) throw;
        why_not = "N = " + std::to_string(uint64_t{1} << log_n) + ": " + e.what();
        break;  // the layout does not fit these slots: a larger N may
      }
      say(o, "N = " + std::to_string(uint64_t{1} << log_n) + ", scale 2^" + std::to_string(scale) + ", log QP " +
                 fmt("%.0f", params->log_qp()) + ", dnum " + std::to_string(params->dnum()) + ": dry run of " +
                 std::to_string(run.batch) + " input(s) " + fmt("%.1f", run.bits) + " bits, " +
                 fmt("%.1f ms", run.run_ms));
      const double target = o.precision_bits + kPromiseMarginBits;
      if (run.bits < target && run.bits >= o.precision_bits + 1) {
        // The worst error of one batch varies by about half a bit from keys to keys (a
        // 12-bit ConvNet at 2^13 measured 13.5-16.1 over 60 runs, mean 15): a run just
        // below the margin gets a second one with fresh keys and other inputs, and the
        // chain passes when their mean reaches the target. The lower run is recorded.
        AutoCompileOptions other = o;
        other.seed = o.seed + 1;
        const DryRun again = dry_run(model, *params, copt, other);
        say(o, "  again with fresh keys and other inputs: " + fmt("%.1f", again.bits) + " bits, mean " +
                   fmt("%.1f", (run.bits + again.bits) / 2));
        if (again.bits >= o.precision_bits + 1 && (run.bits + again.bits) / 2 >= target) {
          run.bits = std::min(run.bits, again.bits);
          run.confirmed = true;
        }
      }
      if (run.bits >= target || run.confirmed) {
        copt.batch = run.batch;
        best = ModelFile{name,   model,          *params,  copt,       o.input_min, o.input_max,
                         o.precision_bits, run.bits, run.run_ms, run.machine, {}};
        if (shrunk || run.confirmed || run.bits < target + 3) break;
        // Far above the promise: one try with a smaller scale (fewer bits, maybe a
        // smaller chain for the same N), kept only if it still meets the promise.
        shrunk = true;
        scale -= static_cast<int>(std::floor(run.bits - target - 1));
        continue;
      }
      if (best) break;  // the smaller scale missed: keep the one that met the promise
      if (scale == largest) break;  // this N has no more bits to give
      scale = std::min(largest, scale + static_cast<int>(std::ceil(target - run.bits)) + 1);
    }
    if (best) return *best;
  }
  throw Error(ErrorCode::Unsupported,
              "no parameters up to N = " + std::to_string(uint64_t{1} << o.max_log_n) + " give " +
                  fmt("%g", o.precision_bits) + " bits for this model (" + why_not +
                  "); ask for fewer bits (--precision-bits), a smaller batch, or a shallower model");
}

namespace {

uint64_t poly_bytes(const Parameters& p, uint32_t q_limbs, bool special) {
  uint64_t bytes = 0;
  auto add = [&](uint64_t prime) { bytes += (p.n() * static_cast<uint64_t>(std::bit_width(prime - 1)) + 7) / 8; };
  for (uint32_t i = 0; i < q_limbs; ++i) add(p.q()[i]);
  if (special)
    for (uint64_t prime : p.p()) add(prime);
  return bytes;
}

constexpr uint64_t kFrameBytes = 24 + 16;  // header + checksum (docs/serialization.md)

struct Plan {
  ContextPtr ctx;
  CompiledModel model;
};

// layouts_only: no weights encoded (the sizes need none).
Plan build_plan(const ModelFile& m, bool layouts_only = false) {
  auto ctx = Context::create(m.params, BackendKind::Cpu);
  CompileOptions o = m.options;
  if (layouts_only) o.plaintext_budget = 0;
  return Plan{ctx, CompiledModel(ctx, m.model, o)};
}

QueryCost cost_of(const ModelFile& m, const CompiledModel& plan) {
  const Parameters& p = m.params;
  QueryCost c;
  c.galois_keys = plan.rotation_steps().size();
  c.input_ciphertexts = plan.input_ciphertexts();
  c.output_ciphertexts = plan.output_ciphertexts();
  // Seeded switching keys: per digit the b polynomial over Q_L u P and a 32-byte seed.
  const uint64_t key = kFrameBytes + 9 + p.dnum() * (poly_bytes(p, p.max_level() + 1, true) + 32);
  c.relin_key_bytes = key;
  // One blob for all Galois keys: a count, then per key its element and its switching key.
  c.galois_key_bytes = kFrameBytes + 4 + c.galois_keys * (key - kFrameBytes + 8);
  // Inputs seeded (c0 and a seed, secret-key encryption), outputs full (c0, c1).
  const uint64_t ct_head = kFrameBytes + 4 + 4 + 8 + 1;
  c.upload_bytes = c.input_ciphertexts * (ct_head + poly_bytes(p, plan.input_level() + 1, false) + 32);
  c.download_bytes = c.output_ciphertexts * (ct_head + 2 * poly_bytes(p, plan.output_level() + 1, false));
  return c;
}

std::string mb(uint64_t bytes) { return fmt("%.2f MB", static_cast<double>(bytes) / 1e6); }

}  // namespace

QueryCost query_cost(const ModelFile& m) {
  Plan plan = build_plan(m, true);
  return cost_of(m, plan.model);
}

std::string explain(const ModelFile& m) {
  Plan plan = build_plan(m);
  const QueryCost c = cost_of(m, plan.model);
  const Parameters& p = m.params;
  std::ostringstream s;
  s << "model " << m.name << ": input " << m.model.channels() << "x" << m.model.height() << "x" << m.model.width()
    << ", "
    << m.model.layers().size() << " layers, depth " << plan.model.depth() << "\n";
  s << plan.model.describe();
  s << "parameters: " << p.describe() << "\n";
  s << "  N = " << p.n() << ", log2(QP) = " << fmt("%.1f", p.log_qp()) << " of "
    << he_standard_max_log_qp(p.log_n()) << " allowed (HE Standard, 128-bit), " << p.max_level() + 1
    << " q primes, " << p.alpha() << " special, dnum " << p.dnum() << ", scale 2^"
    << fmt("%.0f", std::log2(p.default_scale())) << "\n";
  s << "batch: " << plan.model.batch() << " input(s) per query, packing "
    << packing_name(plan.model.packing()) << "\n";
  s << "precision: promised " << fmt("%.1f", m.promised_bits) << " bits, measured " << fmt("%.1f", m.measured_bits)
    << " bits (encrypted dry run on inputs in [" << fmt("%g", m.input_min) << ", " << fmt("%g", m.input_max)
    << "])\n";
  s << "keys (uploaded once per session): relinearization " << mb(c.relin_key_bytes) << ", " << c.galois_keys
    << " Galois " << mb(c.galois_key_bytes) << "\n";
  s << "per query: upload " << mb(c.upload_bytes) << " (" << c.input_ciphertexts << " ciphertext(s)), download "
    << mb(c.download_bytes) << " (" << c.output_ciphertexts << ")\n";
  s << "time per query: " << fmt("%.1f ms", m.dry_run_ms) << " (dry run on " << m.compiled_on << ")\n";
  return s.str();
}

}  // namespace veil::nn
