// veil decrypt MODEL.veil --keys KEYDIR -i ANSWER.bin -o OUT: the client decrypts the
// server's answer and decodes one row of outputs per input (.npy float64 [N, outputs],
// .csv, .json, or text lines on stdout with -o -); --argmax prints the class of each.
#include <string.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "veil/tensor_io.hpp"

namespace veil::cli {

namespace {

struct DecryptArgs {
  std::string model, keydir, input, output;
  size_t count = 0;
  bool argmax = false;
  Verbosity verbosity;
};

void run_decrypt(const DecryptArgs& a) {
  std::string output = a.output.empty() && !a.argmax ? "-" : a.output;
  const std::string ext = output_extension(output);
  if (!output.empty() && output != "-" && ext != ".npy" && ext != ".csv" && ext != ".json")
    throw CLI::ValidationError("-o", "the output must end in .npy, .csv or .json, or be - (stdout), got " + output);
  if (output == "-" && a.argmax)
    throw CLI::ValidationError("--argmax", "--argmax and -o - both write to stdout: write the outputs to a file");

  const nn::ModelFile m = load_model(a.model);
  auto ctx = Context::create(m.params, BackendKind::Cpu);
  const nn::CompiledModel plan(ctx, m.model, m.options);
  const Bytes answer = read_file(a.input, "answer", "the server makes it with `veil eval " + a.model + " ...`");
  const auto blobs = split_blobs(answer, a.input);
  const size_t per_run = plan.output_ciphertexts();
  if (blobs.empty() || blobs.size() % per_run != 0)
    bad_input(a.input + " holds " + std::to_string(blobs.size()) + " ciphertext(s); model " + m.name +
              " answers with " + std::to_string(per_run) + " per run: is it an answer of another model?");
  for (size_t i = 0; i < blobs.size(); ++i)
    check_fingerprint(blobs[i], m.params, a.input + " (ciphertext " + std::to_string(i) + ")",
                      "it is an answer of another model");
  const size_t runs = blobs.size() / per_run, capacity = runs * plan.batch();
  size_t count = capacity;
  const std::string sidecar_path = a.input + ".json";
  if (const auto side = read_sidecar(sidecar_path)) {
    const auto name = side->find("model");
    if (name != side->end() && name->second != m.name)
      bad_input(a.input + " is an answer of model " + name->second + ", not " + m.name + " (" + sidecar_path + ")");
    if (side->count("inputs")) count = json_uint(*side, "inputs", sidecar_path);
  }
  if (a.count) count = a.count;
  if (count == 0 || count > capacity)
    bad_input(std::to_string(count) + " inputs requested, but " + a.input + " holds " + std::to_string(runs) +
              " run(s) of at most " + std::to_string(plan.batch()) + " (" + std::to_string(capacity) + ")");

  const SecretKey sk = load_secret_key(a.keydir, a.model, ctx);
  Encoder encoder(ctx);
  Decryptor decryptor(ctx, sk);

  std::vector<std::vector<double>> rows;
  for (size_t r = 0; r < runs && rows.size() < count; ++r) {
    std::vector<std::vector<double>> decoded;
    for (size_t k = 0; k < per_run; ++k) {
      Ciphertext ct;
      try {
        ct = deserialize_ciphertext(ctx, blobs[r * per_run + k]);
      } catch (const Error& e) {
        bad_input(a.input + ": ciphertext " + std::to_string(r * per_run + k) + ": " + e.what());
      }
      decoded.push_back(encoder.decode(decryptor.decrypt(ct)));
    }
    for (auto& row : plan.decode(decoded, std::min(plan.batch(), count - rows.size()))) rows.push_back(std::move(row));
  }

  const size_t outputs = plan.output_size();
  write_outputs(rows, outputs, output, a.argmax, m.name);
  progress(a.verbosity, "decrypted " + std::to_string(rows.size()) + " input(s) of model " + m.name + " (" +
                            std::to_string(outputs) + " outputs each)" +
                            (output.empty() || output == "-" ? "" : " to " + output));
}

}  // namespace

void add_decrypt_command(CLI::App& app) {
  auto args = std::make_shared<DecryptArgs>();
  CLI::App* sub = app.add_subcommand(
      "decrypt", "Decrypt an answer with the secret key (client side): one row of model outputs per input");
  sub->add_option("model", args->model, "Model file (from veil compile)")->required();
  sub->add_option("--keys", args->keydir, "Key directory with secret.key (from veil keygen)")->required();
  sub->add_option("-i,--input", args->input, "Answer (from veil eval)")->required();
  sub->add_option("-o,--output", args->output,
                  "Outputs: OUT.npy (float64 [N, outputs]), OUT.csv, OUT.json, or - for text lines on stdout "
                  "(the default without --argmax)");
  sub->add_option("--count", args->count, "Inputs to decode (default: the query's count, else every slot)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--argmax", args->argmax, "Print the index of the largest output (the class) per input on stdout");
  add_verbosity(*sub, args->verbosity);
  add_footer(*sub);
  sub->callback([args] { run_decrypt(*args); });
}

}  // namespace veil::cli
