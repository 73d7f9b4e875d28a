// veil-cnn-layouts: the spatial layout's one free choice, measured, beside the slot-wise
// packing. For each model and each number of channels per ciphertext G
// (CompileOptions::channel_blocks; the batch takes the slots the channels leave), and
// for Packing::Slots (one image per slot, every feature its own ciphertext; printed as
// "slots"), it compiles, encrypts one full batch,
// runs it `--runs` times and reports: images per run, input ciphertexts, rotation keys
// and their bytes, pre-encoded weight bytes, run time (median), time per image and the
// worst precision against Sequential::forward (float64), in bits.
//
//   veil-cnn-layouts [--runs 3] [--onnx FILE]... [--json]
//
// --onnx adds an imported model (depth <= 5), e.g. tests/data/lenet_digits.onnx: the
// LeNet-5-shaped digits net, whose G = 1 weights exceed the 512 MiB budget and are
// encoded per run.
//
// The models (random weights, N = 8192, the ConvNet's five 2^27 levels):
//   lenet-12: 1x12x12 -> conv 4 (3x3, pad 1) -> x^2 -> pool 2 -> conv 6 (3x3, pad 1)
//             -> x^2 -> pool 2 -> linear 54 -> 5 (LeNet's shape, small)
//   rgb-16:   3x16x16 -> conv 8 (3x3, stride 2, pad 1) -> x^2 -> conv 8 (3x3, pad 1)
//             -> x^2 -> global average pool -> linear 8 -> 10
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "veil/nn/convnet.hpp"
#include "veil/nn/model.hpp"
#include "veil/nn/onnx.hpp"
#include "veil/serialization.hpp"
#include "veil/veil.hpp"

namespace {

using namespace veil;
using clock_type = std::chrono::steady_clock;

std::vector<double> reals(size_t n, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

nn::Sequential lenet_12() {
  nn::Sequential m(1, 12, 12);
  m.conv2d(4, 3, 1, nn::Padding::same(1), reals(36, 1, -0.3, 0.3), reals(4, 2, -0.2, 0.2))
      .square()
      .avg_pool2d(2)
      .conv2d(6, 3, 1, nn::Padding::same(1), reals(216, 3, -0.3, 0.3), reals(6, 4, -0.2, 0.2))
      .square()
      .avg_pool2d(2)
      .flatten()
      .linear(5, reals(270, 5, -0.3, 0.3), reals(5, 6, -1, 1));
  return m;
}

nn::Sequential rgb_16() {
  nn::Sequential m(3, 16, 16);
  m.conv2d(8, 3, 2, nn::Padding::same(1), reals(8 * 27, 11, -0.3, 0.3), reals(8, 12, -0.2, 0.2))
      .square()
      .conv2d(8, 3, 1, nn::Padding::same(1), reals(8 * 72, 13, -0.2, 0.2), reals(8, 14, -0.2, 0.2))
      .square()
      .global_avg_pool()
      .flatten()
      .linear(10, reals(80, 15, -0.5, 0.5), reals(10, 16, -1, 1));
  return m;
}

struct Row {
  std::string model;
  size_t blocks = 0, batch = 0, inputs = 0, rotation_keys = 0;
  double galois_mib = 0, weights_mib = 0, run_ms = 0, per_image_ms = 0, worst_bits = 0;
};

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

// blocks 0: Packing::Slots.
Row measure(const std::string& name, const nn::Sequential& model, size_t blocks, size_t runs, KeyGenerator& keygen,
            const ContextPtr& ctx, const RelinKey& rk) {
  nn::CompileOptions opt;
  opt.channel_blocks = blocks;
  if (blocks == 0) opt.packing = nn::Packing::Slots;
  nn::CompiledModel plan(ctx, model, opt);
  Row r{name, blocks, plan.batch(), plan.input_ciphertexts(), plan.rotation_steps().size()};
  const GaloisKeys gk = keygen.create_galois_keys(plan.rotation_steps(), false);
  r.galois_mib = static_cast<double>(serialize(gk).size()) / (1 << 20);
  // The weights the plan holds: every spatial convolution's line says "N MiB of weights".
  const std::string text = plan.describe();
  for (size_t at = text.find(" MiB of weights"); at != std::string::npos; at = text.find(" MiB of weights", at + 1)) {
    size_t start = text.rfind(' ', at - 1);
    r.weights_mib += std::stod(text.substr(start + 1, at - start - 1));
  }
  Encoder encoder(ctx);
  Encryptor enc(ctx, keygen.create_public_key(), RandomSource::os());
  Decryptor dec(ctx, keygen.secret_key());
  Evaluator eval(ctx);
  std::vector<std::vector<double>> inputs;
  for (size_t i = 0; i < plan.batch(); ++i) inputs.push_back(reals(model.input_size(), 100 + i, 0, 1));
  std::vector<Ciphertext> cts;
  for (const auto& s : plan.encode(inputs)) cts.push_back(enc.encrypt(encoder.encode(s)));
  std::vector<double> times;
  std::vector<Ciphertext> out;
  for (size_t i = 0; i < runs; ++i) {
    const auto t = clock_type::now();
    out = plan.run(eval, cts, rk, gk);
    times.push_back(seconds_since(t) * 1e3);
  }
  std::sort(times.begin(), times.end());
  r.run_ms = times[times.size() / 2];
  r.per_image_ms = r.run_ms / static_cast<double>(plan.batch());
  std::vector<std::vector<double>> decoded;
  for (const auto& c : out) decoded.push_back(encoder.decode(dec.decrypt(c)));
  const auto got = plan.decode(decoded, plan.batch());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const auto want = model.forward(inputs[i]);
    for (size_t j = 0; j < want.size(); ++j) worst = std::max(worst, std::fabs(want[j] - got[i][j]));
  }
  r.worst_bits = -std::log2(std::max(worst, 1e-300));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  size_t runs = 3;
  bool json = false;
  std::vector<std::string> onnx;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
      runs = std::max<size_t>(1, std::strtoul(argv[++i], nullptr, 10));
    } else if (!std::strcmp(argv[i], "--onnx") && i + 1 < argc) {
      onnx.emplace_back(argv[++i]);
    } else if (!std::strcmp(argv[i], "--json")) {
      json = true;
    } else {
      std::fprintf(stderr, "usage: veil-cnn-layouts [--runs 3] [--onnx FILE]... [--json]\n");
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  try {
    const ContextPtr ctx = Context::create(nn::convnet_parameters(13));
    KeyGenerator keygen(ctx, RandomSource::os());
    const RelinKey rk = keygen.create_relin_key();
    std::vector<Row> rows;
    struct Entry {
      std::string name;
      nn::Sequential model;
      std::vector<size_t> blocks;
    };
    std::vector<Entry> models{{"lenet-12", lenet_12(), {1, 2, 4, 8, 0}}, {"rgb-16", rgb_16(), {1, 2, 4, 8, 0}}};
    for (const auto& path : onnx) {
      std::string stem = path.substr(path.find_last_of('/') + 1);
      stem = stem.substr(0, stem.find('.'));
      models.push_back({stem, nn::import_onnx(path), {1, 2, 4, 8, 16, 0}});
    }
    for (const auto& m : models)
      for (size_t g : m.blocks) {
        rows.push_back(measure(m.name, m.model, g, runs, keygen, ctx, rk));
        const Row& r = rows.back();
        if (!json)
          std::printf("%-9s %-5s batch %4zu  inputs %zu  rot keys %3zu (%6.1f MiB)  weights %6.1f MiB  run %8.1f ms"
                      "  per image %7.2f ms  worst %.1f bits\n",
                      r.model.c_str(), r.blocks ? ("G=" + std::to_string(r.blocks)).c_str() : "slots", r.batch, r.inputs, r.rotation_keys, r.galois_mib, r.weights_mib,
                      r.run_ms, r.per_image_ms, r.worst_bits);
      }
    if (json) {
      std::printf("[\n");
      for (size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        std::printf("  {\"model\": \"%s\", \"packing\": \"%s\", \"channel_blocks\": %zu, \"batch\": %zu, \"input_ciphertexts\": %zu, "
                    "\"rotation_keys\": %zu, \"galois_mib\": %.2f, \"weights_mib\": %.1f, \"run_ms\": %.2f, "
                    "\"per_image_ms\": %.3f, \"worst_bits\": %.2f}%s\n",
                    r.model.c_str(), r.blocks ? "spatial" : "slots", r.blocks, r.batch, r.inputs, r.rotation_keys,
                    r.galois_mib, r.weights_mib, r.run_ms, r.per_image_ms, r.worst_bits, i + 1 < rows.size() ? "," : "");
      }
      std::printf("]\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "veil-cnn-layouts: %s\n", e.what());
    return 1;
  }
  return 0;
}
