// veil-convnet: encrypted inference of the digits ConvNet (docs/convnet.md) on the
// test images: key generation (minimal Galois keys), then per batch of images encrypt,
// run the model on the ciphertexts, decrypt, and compare with the float64 reference.
//
//   veil-convnet [--images N] [--log-n 13|14] [--packing taps|im2col] [--batch B] [--encrypt sk|pk]
//                [--backend cpu|cuda|auto] [--streams S] [--replay] [--onnx FILE] [--data DIR] [--json]
//
// --packing taps (default): 49 ciphertexts carry up to 64 images (N = 8192) or 128 (16384);
// --packing im2col: one ciphertext per image (N = 8192) or per 2 images (16384), the
// TenSEAL tutorial's setting. --batch: images per run (default: as many as fit).
// --encrypt sk (default): the client encrypts with its own secret key; the uniform half
// of each ciphertext is a seed, so uploads are half as large. --encrypt pk: public key.
// --streams S: the server runs up to S batches at once, one host thread each in a
// veil::StreamScope (its own stream on cuda), sharing one context and one set of keys;
// inference time is then the wall clock of all runs. Default 1.
// --replay: the server records one run (veil::RecordedComputation) and replays it for
// every batch: on cuda one CUDA graph launch per run instead of host work and a launch
// per kernel (the recording, made once per model and keys, is reported apart); on cpu
// it changes nothing. With --streams 1 only.
// --onnx FILE: run the model of an ONNX file (nn::import_onnx) instead of the weights
// file, e.g. tests/data/convnet_digits.onnx (tools/export_onnx.py); 28x28 inputs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "veil/nn/convnet.hpp"
#include "veil/nn/onnx.hpp"
#include "veil/veil.hpp"

#ifndef VEIL_DATA_DIR
#define VEIL_DATA_DIR "tests/data"
#endif

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

struct Options {
  size_t images = 400;
  uint32_t log_n = 13;
  std::string data = VEIL_DATA_DIR;
  veil::nn::Packing packing = veil::nn::Packing::Taps;
  size_t batch = 0;
  bool secret_key_encryption = true;
  veil::BackendKind backend = veil::BackendKind::Auto;  // auto: the GPU when one is usable
  size_t streams = 1;  // batches the server runs at once
  bool replay = false;  // runs replay one recorded run
  std::string onnx;  // empty: the built-in weights file
  bool json = false;  // progress to stderr, a JSON summary on stdout (bench/convnet_compare.py)
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr, "veil-convnet: %s\nusage: veil-convnet [--images N] [--log-n 13|14] [--packing taps|im2col] [--batch B] [--encrypt sk|pk] [--backend cpu|cuda|auto] [--streams S] [--replay] [--onnx FILE] [--data DIR] [--json]\n", msg);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") usage("encrypted ConvNet inference on the digits test set");
    if (a == "--replay") {
      o.replay = true;
      continue;
    }
    if (a == "--json") {
      o.json = true;
      continue;
    }
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    char* end = nullptr;
    if (a == "--images") {
      long n = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 1) usage("--images needs a positive integer");
      o.images = static_cast<size_t>(n);
    } else if (a == "--log-n") {
      if (v != "13" && v != "14") usage("--log-n must be 13 or 14");
      o.log_n = static_cast<uint32_t>(std::stoi(v));
    } else if (a == "--packing") {
      if (v != "taps" && v != "im2col") usage("--packing must be taps or im2col");
      o.packing = v == "taps" ? veil::nn::Packing::Taps : veil::nn::Packing::Im2col;
    } else if (a == "--batch") {
      long n = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 1) usage("--batch needs a positive integer");
      o.batch = static_cast<size_t>(n);
    } else if (a == "--encrypt") {
      if (v != "sk" && v != "pk") usage("--encrypt must be sk or pk");
      o.secret_key_encryption = v == "sk";
    } else if (a == "--backend") {
      if (v != "cpu" && v != "cuda" && v != "auto") usage("--backend must be cpu, cuda or auto");
      o.backend = v == "cpu" ? veil::BackendKind::Cpu : v == "cuda" ? veil::BackendKind::Cuda : veil::BackendKind::Auto;
    } else if (a == "--streams") {
      long n = std::strtol(v.c_str(), &end, 10);
      if (*end != '\0' || n < 1 || n > 64) usage("--streams needs an integer 1..64");
      o.streams = static_cast<size_t>(n);
    } else if (a == "--onnx") {
      o.onnx = v;
    } else if (a == "--data") {
      o.data = v;
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  if (o.replay && o.streams != 1) usage("--replay runs one batch at a time: leave out --streams");
  return o;
}

struct Totals {
  size_t n = 0, runs = 0, correct = 0, agree = 0, batch = 0, upload_bytes = 0, input_cts = 0, streams = 1;
  size_t replay_operations = 0;  // device work items per replayed run (0: not replayed)
  double max_err = 0, sum_err = 0, enc_ms = 0, infer_ms = 0, dec_ms = 0, keygen_s = 0, record_ms = 0;
  bool replay = false;
  std::string packing, encryption, backend;
};

void print_json(const Totals& t) {
  const double n = static_cast<double>(t.n);
  std::printf("{\"library\": \"Veil\", \"backend\": \"%s\", \"streams\": %zu, \"packing\": \"%s\", \"encryption\": \"%s\", \"images\": %zu, \"batch\": %zu, "
              "\"input_ciphertexts\": %zu, \"accuracy\": %.6f, \"agreement\": %.6f, "
              "\"max_logit_error\": %.6g, \"encrypt_ms\": %.4f, \"infer_ms\": %.4f, \"decrypt_ms\": %.4f, "
              "\"run_ms\": %.4f, \"upload_bytes_per_run\": %zu, \"keygen_s\": %.4f, \"replay\": %s, "
              "\"record_ms\": %.4f, \"replay_operations\": %zu}\n",
              t.backend.c_str(), t.streams, t.packing.c_str(), t.encryption.c_str(), t.n, t.batch, t.input_cts, t.correct / n, t.agree / n, t.max_err, t.enc_ms / n,
              t.infer_ms / n, t.dec_ms / n, t.infer_ms / static_cast<double>(t.runs), t.upload_bytes, t.keygen_s,
              t.replay ? "true" : "false", t.record_ms, t.replay_operations);
}

void print_summary(const Totals& t, const veil::nn::ConvNetTestSet& set) {
  size_t plain_correct = 0;
  for (size_t k = 0; k < t.n; ++k) plain_correct += set.predicted[k] == set.labels[k];
  const double n = static_cast<double>(t.n);
  std::printf("\nimages                       %zu\n", t.n);
  std::printf("accuracy (encrypted)         %.2f%% (%zu / %zu)\n", 100.0 * t.correct / n, t.correct, t.n);
  std::printf("accuracy (plaintext float64) %.2f%% (%zu / %zu)\n", 100.0 * plain_correct / n, plain_correct, t.n);
  std::printf("agreement with plaintext     %.2f%% (%zu / %zu)\n", 100.0 * t.agree / n, t.agree, t.n);
  std::printf("max |logit error|            %.3g (%.1f bits)\n", t.max_err, -std::log2(t.max_err));
  std::printf("mean |logit error|           %.3g (%.1f bits)\n", t.sum_err / (n * 10), -std::log2(t.sum_err / (n * 10)));
  std::printf("packing                      %s, %zu image(s) per run, %zu input ciphertext(s) (%.2f MB, %s) per run\n",
              t.packing.c_str(), t.batch, t.input_cts, t.upload_bytes / 1e6, t.encryption.c_str());
  std::printf("time per run                 infer %.1f ms (%zu runs, %zu at once)\n",
              t.infer_ms / static_cast<double>(t.runs), t.runs, t.streams);
  if (t.replay)
    std::printf("replay                       recorded once in %.1f ms; %zu device operations per run%s\n", t.record_ms,
                t.replay_operations, t.replay_operations ? " (one graph launch)" : " (cpu: runs directly)");
  std::printf("time per image (amortized)   encrypt %.2f ms, infer %.2f ms, decrypt %.2f ms\n", t.enc_ms / n,
              t.infer_ms / n, t.dec_ms / n);
}

int run(const Options& o) {
  const veil::nn::Sequential network =
      o.onnx.empty() ? veil::nn::convnet_model(veil::nn::load_convnet_weights(o.data + "/convnet_digits.weights"))
                     : veil::nn::import_onnx(o.onnx);
  auto set = veil::nn::load_convnet_test_set(o.data, o.images);
  auto params = veil::nn::convnet_parameters(o.log_n);
  FILE* log = o.json ? stderr : stdout;
  std::fprintf(log, "veil-convnet: %s\n", params.describe().c_str());
  auto ctx = veil::Context::create(params, o.backend);
  if (!o.onnx.empty()) std::fprintf(log, "model: %s (ONNX)\n", o.onnx.c_str());
  veil::nn::CompiledModel model(ctx, network,
                                veil::nn::CompileOptions{o.packing, o.batch, -1, 0});
  std::fprintf(log, "%s", model.describe().c_str());

  auto t0 = clock_type::now();
  veil::KeyGenerator keygen(ctx);
  auto pk = keygen.create_public_key();
  auto rk = keygen.create_relin_key();
  auto steps = model.rotation_steps();
  auto gk = keygen.create_galois_keys(steps, false);
  Totals t;
  t.keygen_s = ms_since(t0) / 1000;
  t.batch = model.batch();
  t.input_cts = model.input_ciphertexts();
  t.backend = ctx->backend().name();
  t.packing = veil::nn::packing_name(o.packing);
  t.encryption = o.secret_key_encryption ? "secret key (seeded)" : "public key";
  std::fprintf(log, "key generation: %.1f ms (%zu Galois keys, backend %s)\n", t.keygen_s * 1000, steps.size(),
               ctx->backend().name().c_str());

  veil::Encoder encoder(ctx);
  veil::Encryptor encryptor = o.secret_key_encryption ? veil::Encryptor(ctx, keygen.secret_key())
                                                      : veil::Encryptor(ctx, pk);
  veil::Decryptor decryptor(ctx, keygen.secret_key());
  veil::Evaluator eval(ctx);
  t.streams = o.streams;
  // Client: encrypt every batch. Server: run them, o.streams at a time. Client: decrypt.
  struct Run {
    size_t first = 0, count = 0;
    std::vector<veil::Ciphertext> inputs, outputs;
  };
  std::vector<Run> runs;
  for (size_t first = 0; first < set.size(); first += model.batch()) {
    Run r;
    r.first = first;
    r.count = std::min(model.batch(), set.size() - first);
    std::vector<std::vector<double>> images(set.images.begin() + static_cast<std::ptrdiff_t>(first),
                                            set.images.begin() + static_cast<std::ptrdiff_t>(first + r.count));
    auto t1 = clock_type::now();
    for (const auto& slots : model.encode(images)) r.inputs.push_back(encryptor.encrypt(encoder.encode(slots)));
    t.enc_ms += ms_since(t1);
    if (first == 0)  // what the client uploads per run
      for (const auto& ct : r.inputs) t.upload_bytes += veil::serialize(ct).size();
    runs.push_back(std::move(r));
  }
  ctx->backend().synchronize();  // encryption's queued work is not inference time

  std::unique_ptr<veil::RecordedComputation> recorded;
  t.replay = o.replay;
  if (o.replay) {  // once per model and keys, like key generation: not inference time
    auto tr = clock_type::now();
    recorded = std::make_unique<veil::RecordedComputation>(
        [&](const std::vector<veil::Ciphertext>& in) { return model.run(eval, in, rk, gk); }, runs.front().inputs);
    t.record_ms = ms_since(tr);
    t.replay_operations = recorded->operations();
    std::fprintf(log, "recorded one run in %.1f ms (%zu device operations per replay)\n", t.record_ms,
                 t.replay_operations);
  }

  auto t2 = clock_type::now();
  if (recorded) {
    for (Run& r : runs) r.outputs = recorded->run(r.inputs);
  } else if (o.streams == 1) {
    for (Run& r : runs) r.outputs = model.run(eval, r.inputs, rk, gk);
    ctx->backend().synchronize();  // a GPU backend returns before its queued work ends
  } else {
    std::atomic<size_t> next{0};
    std::vector<std::exception_ptr> errors(o.streams);
    std::vector<std::thread> workers;
    for (size_t w = 0; w < o.streams; ++w) {
      workers.emplace_back([&, w] {
        try {
          veil::StreamScope scope(ctx);  // ends after its runs' work is done
          for (size_t i = next++; i < runs.size(); i = next++) runs[i].outputs = model.run(eval, runs[i].inputs, rk, gk);
        } catch (...) {
          errors[w] = std::current_exception();
        }
      });
    }
    for (auto& worker : workers) worker.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
  }
  t.infer_ms = ms_since(t2);

  for (const Run& r : runs) {
    auto t3 = clock_type::now();
    std::vector<std::vector<double>> decoded;
    for (const auto& ct : r.outputs) decoded.push_back(encoder.decode(decryptor.decrypt(ct)));
    auto logits = model.decode(decoded, r.count);
    t.dec_ms += ms_since(t3);
    ++t.runs;

    for (size_t j = 0; j < r.count; ++j) {
      const size_t k = r.first + j;
      const int cls = veil::nn::argmax(logits[j]);
      t.correct += cls == set.labels[k];
      t.agree += cls == set.predicted[k];
      for (size_t i = 0; i < logits[j].size(); ++i) {
        double err = std::fabs(logits[j][i] - set.logits[k][i]);
        t.max_err = std::max(t.max_err, err);
        t.sum_err += err;
      }
      ++t.n;
    }
    std::fprintf(log, "[%zu/%zu] accuracy %.1f%%, agreement %.1f%%, max |err| %.3g\n", t.n, set.size(),
                 100.0 * t.correct / t.n, 100.0 * t.agree / t.n, t.max_err);
    std::fflush(log);
  }
  std::fprintf(log, "inference: %.1f ms for %zu runs (%zu at once), %.2f ms/image\n", t.infer_ms, t.runs, t.streams,
               t.infer_ms / static_cast<double>(t.n));
  if (o.json) print_json(t);
  else print_summary(t, set);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const veil::Error& e) {
    std::fprintf(stderr, "veil-convnet: %s\n", e.what());
    return 1;
  }
}
