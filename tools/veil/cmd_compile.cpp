// veil compile MODEL.onnx -o MODEL.veil: imports the ONNX model, lets the compiler
// choose CKKS parameters (measured by an encrypted dry run) and writes the model file.
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <tuple>

#include "commands.hpp"
#include "common.hpp"
#include "veil/nn/compile.hpp"
#include "veil/nn/onnx.hpp"

#include <nlohmann/json.hpp>

namespace veil::cli {

namespace {

struct CompileArgs {
  std::string onnx, output, name, packing = "taps", input_range = "0,1", backend = "cpu";
  std::string featurizer, property;
  double precision_bits = 12, activation_bound = 0;
  int activation_degree = 15, threads = 0;
  size_t batch = 0, channel_blocks = 0;
  uint32_t min_log_n = 13, max_log_n = 16;
  bool explain = false;
  Verbosity verbosity;
};

// A featurizer layout (tools/molecules/featurizer.py writes one: {"featurizer", "version",
// "cap", "cells", ...}) for a model of `input_size` inputs.
nn::InputFeaturizer read_featurizer(const std::string& path, const std::string& property, size_t input_size) {
  const Bytes bytes = read_file(path, "featurizer layout", "", uint64_t{16} << 20);
  nn::InputFeaturizer f;
  try {
    const auto j = nlohmann::json::parse(bytes.begin(), bytes.end());
    f.name = j.at("featurizer").get<std::string>();
    f.version = j.at("version").get<uint32_t>();
    f.cap = j.at("cap").get<double>();
    f.cells = j.at("cells").get<std::vector<uint32_t>>();
    f.property = property.empty() ? j.value("property", std::string{}) : property;
    nn::check_featurizer(f, input_size);
  } catch (const nlohmann::json::exception& e) {
    bad_input(path + ": not a featurizer layout (" + e.what() + ")");
  } catch (const Error& e) {
    bad_input(path + ": " + e.what());
  }
  return f;
}

void run_compile(const CompileArgs& a) {
  if (!nn::onnx_import_available())
    bad_input("this build of Veil cannot read ONNX files (rebuild it with libonnx-dev and libprotobuf-dev installed)");
  if (!file_exists(a.onnx)) bad_input("cannot read ONNX model " + a.onnx + ": no such file");
  const std::string name = a.name.empty() ? file_stem(a.output) : a.name;
  if (!nn::valid_model_name(name))
    bad_input("the model name \"" + name + "\"" + (a.name.empty() ? " (the output file's stem)" : "") +
              " must be 1..64 characters of [A-Za-z0-9._-] not starting with '.': pass --name NAME");
  if (a.min_log_n > a.max_log_n)
    throw CLI::ValidationError("--min-log-n", "must not exceed --max-log-n (" + std::to_string(a.max_log_n) + ")");
  if (a.threads > 0) set_cpu_threads(a.threads);

  nn::OnnxImportOptions io;
  io.activation_bound = a.activation_bound;
  io.activation_degree = a.activation_degree;
  std::optional<nn::Sequential> model;
  try {
    model.emplace(nn::import_onnx(a.onnx, io));
  } catch (const Error& e) {
    std::string msg = a.onnx + ": " + e.what();
    const std::string what = e.what();
    if (a.activation_bound == 0 &&
        (what.find("Relu") != std::string::npos || what.find("Sigmoid") != std::string::npos))
      msg +=
          "\nhint: pass --activation-bound B (and --activation-degree D, default 15) to replace Relu / Sigmoid by a "
          "Chebyshev polynomial on [-B, B]; B must bound the values that reach the activation "
          "(docs/nn_activations.md)";
    throw Error(e.code(), msg);
  }
  const Verbosity& v = a.verbosity;
  progress(v, "imported " + a.onnx + ": input " + std::to_string(model->channels()) + "x" + std::to_string(model->height()) + "x" +
                  std::to_string(model->width()) + ", " + std::to_string(model->layers().size()) + " layers");

  nn::AutoCompileOptions o;
  o.precision_bits = a.precision_bits;
  o.batch = a.batch;
  o.packing = nn::parse_packing(a.packing);
  o.channel_blocks = a.channel_blocks;
  std::tie(o.input_min, o.input_max) = parse_range(a.input_range);
  o.min_log_n = a.min_log_n;
  o.max_log_n = a.max_log_n;
  o.backend = parse_backend(a.backend);
  if (v.progress()) o.progress = [](const std::string& line) { std::fprintf(stderr, "  %s\n", line.c_str()); };
  std::optional<nn::ModelFile> compiled;
  try {
    compiled.emplace(nn::compile_model(*model, name, o));
  } catch (const Error& e) {
    if (e.code() != ErrorCode::Unsupported || a.max_log_n >= 16) throw;
    throw Error(e.code(), std::string(e.what()) + ", or allow a larger ring (--max-log-n up to 16)");
  }
  if (!a.featurizer.empty())
    compiled->featurizer = read_featurizer(a.featurizer, a.property.empty() ? name : a.property,
                                           compiled->model.input_size());
  const nn::ModelFile& m = *compiled;
  nn::write_model_file(a.output, m);
  progress(v, "wrote " + a.output + ": model " + m.name + ", N = " + std::to_string(m.params.n()) + ", " +
                  std::to_string(m.options.batch) + " input(s) per query, " + format_double(m.measured_bits, "%.1f") +
                  " bits measured (" + format_double(m.promised_bits, "%g") + " promised)");
  if (a.explain) std::cout << nn::explain(m) << std::flush;
}

}  // namespace

void add_compile_command(CLI::App& app) {
  auto args = std::make_shared<CompileArgs>();
  CLI::App* sub = app.add_subcommand(
      "compile",
      "Compile an ONNX model into a Veil model file: CKKS parameters are chosen automatically and the promised "
      "precision is measured by an encrypted dry run");
  sub->add_option("model", args->onnx, "ONNX model (e.g. from torch.onnx.export)")->required();
  sub->add_option("-o,--output", args->output, "Model file to write (MODEL.veil)")->required();
  sub->add_option("--name", args->name, "Model name (default: the output file's stem)");
  sub->add_option("--precision-bits", args->precision_bits, "Bits of precision the outputs must keep (4..40)")
      ->check(CLI::Range(4.0, 40.0))
      ->capture_default_str();
  sub->add_option("--batch", args->batch, "Inputs per query (a power of two; 0: as many as fit)")
      ->capture_default_str();
  sub->add_option("--packing", args->packing,
                  "Input packing: taps or im2col for a first one-channel conv without padding "
                  "(else spatial), spatial, or slots (one input per slot: N/2 inputs per query, no "
                  "rotation keys; for large batches)")
      ->check(CLI::IsMember({"taps", "im2col", "spatial", "slots"}))
      ->capture_default_str();
  sub->add_option("--channel-blocks", args->channel_blocks,
                  "Channels per ciphertext in spatial layouts (a power of two; 0: automatic)")
      ->check([](const std::string& v) {
        unsigned long long n = 0;
        const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
        const bool ok = r.ec == std::errc() && r.ptr == v.data() + v.size() && (n & (n - 1)) == 0 && n <= 65536;
        return ok ? std::string() : std::string("must be 0 or a power of two <= 65536");
      })
      ->capture_default_str();
  sub->add_option("--input-range", args->input_range, "LO,HI: the range of the input values")->capture_default_str();
  auto* bound = sub->add_option("--activation-bound", args->activation_bound,
                                "Replace Relu / Sigmoid by a Chebyshev polynomial on [-X, X]")
                    ->check(CLI::PositiveNumber);
  sub->add_option("--activation-degree", args->activation_degree, "Degree of that polynomial (1..63)")
      ->check(CLI::Range(1, 63))
      ->needs(bound)
      ->capture_default_str();
  sub->add_option("--min-log-n", args->min_log_n, "Smallest ring degree tried, log2 N")
      ->check(CLI::Range(12, 16))
      ->capture_default_str();
  sub->add_option("--max-log-n", args->max_log_n, "Largest ring degree tried, log2 N")
      ->check(CLI::Range(12, 16))
      ->capture_default_str();
  sub->add_option("--backend", args->backend, "Where the dry run runs")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  sub->add_option("--threads", args->threads, "OpenMP threads of the cpu backend (default: OMP_NUM_THREADS or all)")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--featurizer", args->featurizer,
                  "Record how clients make the inputs: a featurizer layout (e.g. tests/data/molecules/layout.json, "
                  "for `veil query -i molecules.smi`)")
      ->check(CLI::ExistingFile);
  sub->add_option("--property", args->property, "With --featurizer: the name of what the model predicts (default: the model name)");
  sub->add_flag("--explain", args->explain, "Print the plan, parameters, key and query sizes");
  add_verbosity(*sub, args->verbosity);
  add_footer(*sub);
  sub->callback([args] { run_compile(*args); });
}

}  // namespace veil::cli
