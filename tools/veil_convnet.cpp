// veil-convnet: encrypted inference of the digits ConvNet (docs/convnet.md) on the
// test images: key generation (minimal Galois keys), then per image encrypt, infer on
// the ciphertext, decrypt, and compare with the float64 reference logits.
//
//   veil-convnet [--images N] [--log-n 13|14] [--data DIR]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "veil/nn/convnet.hpp"
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
  bool json = false;  // progress to stderr, a JSON summary on stdout (bench/convnet_compare.py)
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr, "veil-convnet: %s\nusage: veil-convnet [--images N] [--log-n 13|14] [--data DIR] [--json]\n", msg);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") usage("encrypted ConvNet inference on the digits test set");
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
    } else if (a == "--data") {
      o.data = v;
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  return o;
}

struct Totals {
  size_t n = 0, correct = 0, agree = 0, ciphertext_bytes = 0;
  double max_err = 0, sum_err = 0, enc_ms = 0, infer_ms = 0, dec_ms = 0, keygen_s = 0;
};

void print_json(const Totals& t) {
  const double n = static_cast<double>(t.n);
  std::printf("{\"library\": \"Veil\", \"images\": %zu, \"accuracy\": %.6f, \"agreement\": %.6f, "
              "\"max_logit_error\": %.6g, \"encrypt_ms\": %.4f, \"infer_ms\": %.4f, \"decrypt_ms\": %.4f, "
              "\"ciphertext_bytes\": %zu, \"keygen_s\": %.4f}\n",
              t.n, t.correct / n, t.agree / n, t.max_err, t.enc_ms / n, t.infer_ms / n, t.dec_ms / n,
              t.ciphertext_bytes, t.keygen_s);
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
  std::printf("time per image               encrypt %.1f ms, infer %.1f ms, decrypt %.1f ms\n", t.enc_ms / n,
              t.infer_ms / n, t.dec_ms / n);
}

int run(const Options& o) {
  auto weights = veil::nn::load_convnet_weights(o.data + "/convnet_digits.weights");
  auto set = veil::nn::load_convnet_test_set(o.data, o.images);
  auto params = veil::nn::convnet_parameters(o.log_n);
  FILE* log = o.json ? stderr : stdout;
  std::fprintf(log, "veil-convnet: %s\n", params.describe().c_str());
  auto ctx = veil::Context::create(params);
  veil::nn::EncryptedConvNet net(ctx, weights);

  auto t0 = clock_type::now();
  veil::KeyGenerator keygen(ctx);
  auto pk = keygen.create_public_key();
  auto rk = keygen.create_relin_key();
  auto steps = net.rotation_steps();
  auto gk = keygen.create_galois_keys(steps, false);
  Totals t;
  t.keygen_s = ms_since(t0) / 1000;
  std::fprintf(log, "key generation: %.1f ms (%zu Galois keys, backend %s)\n", t.keygen_s * 1000, steps.size(),
               ctx->backend().name().c_str());

  veil::Encoder encoder(ctx);
  veil::Encryptor encryptor(ctx, pk);
  veil::Decryptor decryptor(ctx, keygen.secret_key());
  veil::Evaluator eval(ctx);
  for (size_t k = 0; k < set.size(); ++k) {
    auto t1 = clock_type::now();
    auto ct = encryptor.encrypt(encoder.encode(net.encode_input(set.images[k])));
    t.enc_ms += ms_since(t1);
    if (k == 0) t.ciphertext_bytes = veil::serialize(ct).size();  // what the client uploads
    auto t2 = clock_type::now();
    auto out = net.infer(eval, ct, rk, gk);
    t.infer_ms += ms_since(t2);
    auto t3 = clock_type::now();
    auto logits = net.decode_logits(encoder.decode(decryptor.decrypt(out)));
    t.dec_ms += ms_since(t3);

    const int cls = veil::nn::argmax(logits);
    t.correct += cls == set.labels[k];
    t.agree += cls == set.predicted[k];
    for (size_t i = 0; i < logits.size(); ++i) {
      double err = std::fabs(logits[i] - set.logits[k][i]);
      t.max_err = std::max(t.max_err, err);
      t.sum_err += err;
    }
    ++t.n;
    if (t.n % 10 == 0 || t.n == set.size())
      std::fprintf(log, "[%zu/%zu] accuracy %.1f%%, agreement %.1f%%, max |err| %.3g, infer %.0f ms/image\n", t.n,
                   set.size(), 100.0 * t.correct / t.n, 100.0 * t.agree / t.n, t.max_err, t.infer_ms / t.n);
    std::fflush(log);
  }
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
