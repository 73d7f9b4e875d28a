// veil encrypt MODEL.veil --keys KEYDIR -i INPUTS.npy|.csv -o QUERY.bin: the client
// encrypts its inputs with its secret key (seeded ciphertexts: half the upload), in
// runs of the model's batch. QUERY.bin holds the ciphertext blobs back to back;
// QUERY.bin.json says for which model, how many inputs and runs.
#include <string.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "veil/tensor_io.hpp"

namespace veil::cli {

namespace {

struct EncryptArgs {
  std::string model, keydir, input, output;
  Verbosity verbosity;
};

void check_values(const std::vector<std::vector<double>>& images, const nn::ModelFile& m, const std::string& path) {
  size_t outside = 0;
  double lo = images[0][0], hi = images[0][0];
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t k = 0; k < images[i].size(); ++k) {
      const double x = images[i][k];
      if (!std::isfinite(x))
        bad_input(path + ": input " + std::to_string(i) + ", value " + std::to_string(k) + " is not a finite number");
      outside += x < m.input_min || x > m.input_max;
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
  const bool pixels = m.input_max <= 1 && lo >= 0 && hi > 1 && hi <= 255;
  if (outside)
    warn(path + ": " + std::to_string(outside) + " value(s) lie outside the model's input range [" +
         format_double(m.input_min) + ", " + format_double(m.input_max) + "] (the inputs span [" + format_double(lo) +
         ", " + format_double(hi) + "]); the compiled precision is only promised inside it (recompile with " +
         "--input-range)" + (pixels ? "; 8-bit pixels? divide them by 255" : ""));
}


void run_encrypt(const EncryptArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const nn::ModelFile m = load_model(a.model);
  Tensor t;
  try {
    t = read_tensor(a.input);
  } catch (const Error& e) {
    bad_input(e.what());
  }
  const auto images = images_of(t, m.model.channels(), m.model.height(), m.model.width(), a.input);
  check_values(images, m, a.input);

  auto ctx = Context::create(m.params, BackendKind::Cpu);
  const nn::CompiledModel plan(ctx, m.model, m.options);
  const SecretKey sk = load_secret_key(a.keydir, a.model, ctx);
  Encoder encoder(ctx);
  Encryptor encryptor(ctx, sk);

  const size_t batch = plan.batch();
  const size_t runs = (images.size() + batch - 1) / batch;
  AtomicFile out(a.output);
  for (size_t r = 0; r < runs; ++r) {
    const size_t first = r * batch, count = std::min(batch, images.size() - first);
    const std::vector<std::vector<double>> chunk(images.begin() + first, images.begin() + first + count);
    for (const auto& slots : plan.encode(chunk)) {
      const Ciphertext ct =
          encryptor.encrypt(encoder.encode(slots, plan.input_scale(), static_cast<int>(plan.input_level())));
      out.write(serialize(ct, true));
    }
  }
  out.commit();
  write_text_atomic(a.output + ".json", "{\"model\": " + json_string(m.name) + ", \"inputs\": " +
                                            std::to_string(images.size()) + ", \"runs\": " + std::to_string(runs) +
                                            ", \"ciphertexts_per_run\": " + std::to_string(plan.input_ciphertexts()) +
                                            ", \"format\": 1}\n");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress(a.verbosity, "encrypted " + std::to_string(images.size()) + " input(s) for model " + m.name + " in " +
                            std::to_string(runs) + " run(s) of " + std::to_string(plan.input_ciphertexts()) +
                            " ciphertext(s): " + a.output + " (" + format_bytes(out.bytes_written()) + ", " +
                            format_double(s, "%.1f") + " s)");
}

}  // namespace

void add_encrypt_command(CLI::App& app) {
  auto args = std::make_shared<EncryptArgs>();
  CLI::App* sub = app.add_subcommand(
      "encrypt", "Encrypt inputs for a model with the secret key (client side); writes QUERY.bin and QUERY.bin.json");
  sub->add_option("model", args->model, "Model file (from veil compile)")->required();
  sub->add_option("--keys", args->keydir, "Key directory (from veil keygen)")->required();
  sub->add_option("-i,--input", args->input,
                  "Inputs: .npy ([N,H,W], [N,1,H,W], [N,H*W] or [H*W]; float64/32, int64/32, uint8) or .csv "
                  "(one input per line)")
      ->required();
  sub->add_option("-o,--output", args->output, "Query file to write (QUERY.bin)")->required();
  add_verbosity(*sub, args->verbosity);
  add_footer(*sub);
  sub->callback([args] { run_encrypt(*args); });
}

}  // namespace veil::cli
