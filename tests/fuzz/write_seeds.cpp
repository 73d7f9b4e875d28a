// Writes the fuzz harnesses' seed corpora (tests/fuzz/corpus/<harness>/), made by the
// library itself from the shared fixture: run once when a format changes.
//   veil-fuzz-seeds DIR
#include <filesystem>
#include <fstream>

#include "fuzz_fixture.hpp"
#include "veil/nn/model_file.hpp"
#include "veil/tensor_io.hpp"

namespace {
namespace fs = std::filesystem;

void put(const fs::path& dir, const std::string& name, const veil::Bytes& bytes, int selector = -1) {
  fs::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary);
  if (selector >= 0) f.put(static_cast<char>(selector));
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: veil-fuzz-seeds DIR\n");
    return 2;
  }
  const fs::path out = argv[1];
  const auto& f = veil::fuzz::fixture();
  put(out / "fuzz_parameters", "small", veil::serialize(f.params));
  put(out / "fuzz_ciphertext", "full", veil::serialize(f.ct, false));
  veil::Encryptor sk_enc(f.ctx, f.keygen.secret_key(), veil::RandomSource::insecure_deterministic(9));
  put(out / "fuzz_ciphertext", "seeded", veil::serialize(sk_enc.encrypt(f.pt)));
  put(out / "fuzz_plaintext", "plain", veil::serialize(f.pt));
  put(out / "fuzz_keys", "relin", veil::serialize(f.rk), 0);
  put(out / "fuzz_keys", "galois", veil::serialize(f.gk), 1);
  put(out / "fuzz_keys", "public", veil::serialize(f.pk), 2);
  put(out / "fuzz_keys", "secret", veil::serialize_secret_key(f.keygen.secret_key()), 3);
  // Every layer kind and field of the model file: 2x6x6 -> 3x3x3 -> 2x2x2 -> 2x3x3 -> 2x1x1 -> 3,
  // with an affine on the input, a residual block around a square and one with a projection.
  veil::nn::Sequential m(2, 6, 6);
  m.affine({1.5, -0.5}, {0.0, 0.25});
  m.conv2d(3, 3, 2, veil::nn::Padding{1, 1, 0, 1}, std::vector<double>(54, 0.1), {0.1, 0.2, 0.3}).square();
  m.residual_begin().square().residual_add();
  m.residual_begin().square().residual_add(3, 1, 1, veil::nn::Padding{}, std::vector<double>(9, 0.3), {0.1, 0, -0.1});
  m.conv2d(2, 2, 1, std::vector<double>(24, 0.2)).avg_pool2d(2, 1, veil::nn::Padding::same(1), false);
  m.avg_pool2d(2).global_avg_pool().flatten();
  m.linear(3, std::vector<double>(3 * 2, 0.05)).activation(veil::nn::Polynomial({0.1, 0.5, 0.25}, -2, 2));
  veil::nn::CompileOptions o;
  o.packing = veil::nn::Packing::Spatial;
  o.channel_blocks = 2;
  o.batch = 4;
  put(out / "fuzz_model_file", "small",
      veil::nn::serialize_model(veil::nn::ModelFile{"seed", m, f.params, o, 0, 1, 8, 9, 1, "seed", {}}));
  // The same model with a featurizer (version 3's optional section): 16 bins on the 72 inputs.
  veil::nn::InputFeaturizer feat{"morgan-count-feat-r3-1024", 1, 8, {}, "property"};
  for (uint32_t b = 0; b < 16; ++b) feat.cells.push_back((b * 29) % 72);
  put(out / "fuzz_model_file", "featurized",
      veil::nn::serialize_model(veil::nn::ModelFile{"seed", m, f.params, o, 0, 1, 8, 9, 1, "seed", feat}));
  // The slot-wise packing (code 3): one input per slot.
  veil::nn::CompileOptions so;
  so.packing = veil::nn::Packing::Slots;
  so.batch = 4;
  put(out / "fuzz_model_file", "slots",
      veil::nn::serialize_model(veil::nn::ModelFile{"seed", m, f.params, so, 0, 1, 8, 9, 1, "seed", {}}));
  veil::Tensor t;
  t.shape = {2, 3};
  t.data = {0, 1, 2.5, -3, 1e-3, 255};
  put(out / "fuzz_tensor", "npy", veil::format_npy(t), 0);
  const std::string csv = veil::format_csv(t);
  put(out / "fuzz_tensor", "csv", veil::Bytes(csv.begin(), csv.end()), 1);
  {  // fuzz_http: the tiny model of fuzz_http.cpp
    veil::nn::Sequential tiny(2, 2);
    tiny.flatten().linear(2, std::vector<double>(8, 0.25));
    veil::nn::CompileOptions to;
    to.batch = 2;
    veil::nn::CompiledModel plan(f.ctx, tiny, to);
    veil::Bytes keys = veil::serialize(f.rk);
    veil::KeyGenerator kg(f.ctx, f.keygen.secret_key(), veil::RandomSource::insecure_deterministic(3));
    const veil::Bytes gk = veil::serialize(kg.create_galois_keys(plan.rotation_steps(), false));
    keys.insert(keys.end(), gk.begin(), gk.end());
    put(out / "fuzz_http", "session", keys, 0);
    veil::Encoder enc(f.ctx);
    veil::Bytes query;
    for (const auto& slots : plan.encode({std::vector<double>(4, 0.5), std::vector<double>(4, -0.5)})) {
      const veil::Bytes b = veil::serialize(
          sk_enc.encrypt(enc.encode(slots, plan.input_scale(), static_cast<int>(plan.input_level()))));
      query.insert(query.end(), b.begin(), b.end());
    }
    put(out / "fuzz_http", "infer", query, 1);
    const std::string name = "tiny", list = "GET\n/v1/models\n", metrics = "GET\n/metrics\n";
    put(out / "fuzz_http", "model", veil::Bytes(name.begin(), name.end()), 3);
    put(out / "fuzz_http", "list", veil::Bytes(list.begin(), list.end()), 5);
    put(out / "fuzz_http", "metrics", veil::Bytes(metrics.begin(), metrics.end()), 5);
  }
  return 0;
}
