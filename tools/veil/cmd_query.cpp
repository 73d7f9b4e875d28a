// veil query -i INPUTS.npy|.csv URL: the client of `veil serve` (docs/serve.md). It
// keeps its keys per server and model in the cache directory (secret key 0600, never
// sent), uploads the evaluation keys once per session, sends the inputs in batches of
// the model's batch size (one round trip each), decrypts and prints one line per input.
// Molecules (-i X.smi, a model compiled with --featurizer): each line's SMILES is
// featurized here (veil/chem/featurizer.hpp), never sent; a line RDKit cannot read is
// reported on stderr with its number, the others are answered (exit status 3 then).
#include <cmath>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "veil/serve/client.hpp"

#include <fstream>
#include <sstream>

#ifdef VEIL_HAVE_RDKIT
#include "veil/chem/featurizer.hpp"
#endif

namespace veil::cli {

namespace {

struct QueryArgs {
  std::string url, input, model, output, cache, ca_cert;
  double timeout = 300;
  bool json = false, argmax = false, close = false;
  Verbosity verbosity;
};

bool is_smiles_file(const std::string& path) {
  const std::string ext = output_extension(path);
  return ext == ".smi" || ext == ".smiles";
}

struct Molecule {
  size_t line;
  std::string smiles;
  std::string error;           // non-empty: not featurized
  std::vector<double> output;  // the decrypted answer
};

// One molecule per line: SMILES, then optional whitespace and a name; '#' and empty
// lines are skipped.
std::vector<Molecule> read_molecules(const std::string& path) {
  std::ifstream in(path);
  if (!in) bad_input("cannot read " + path);
  std::vector<Molecule> mols;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream words(line);
    std::string smiles;
    if (!(words >> smiles) || smiles[0] == '#') continue;
    mols.push_back({n, smiles, {}, {}});
    if (mols.size() > 1000000) bad_input(path + ": more than 1,000,000 molecules");
  }
  if (mols.empty()) bad_input(path + " holds no molecule (one SMILES per line)");
  return mols;
}

// The molecule path of run_query; returns the exit status (kBadInput when a line failed).
int query_molecules(const QueryArgs& a, serve::QueryClient& client, const std::string& model) {
  const auto& f = client.featurizer();
  if (!f)
    bad_input("model " + model + " takes " + std::to_string(client.input_channels()) + " x " +
              std::to_string(client.input_height()) + " x " + std::to_string(client.input_width()) +
              " inputs, not molecules: it records no featurizer (veil compile --featurizer LAYOUT.json)");
#ifndef VEIL_HAVE_RDKIT
  bad_input("this build of veil cannot read molecules (install librdkit-dev and rebuild)");
#else
  std::vector<Molecule> mols = read_molecules(a.input);
  std::vector<std::vector<double>> inputs;
  std::vector<size_t> which;
  for (size_t i = 0; i < mols.size(); ++i) {
    try {
      inputs.push_back(chem::featurize(mols[i].smiles, *f, client.input_size()));
      which.push_back(i);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::Unsupported) bad_input(e.what());  // another featurizer: no line can work
      mols[i].error = e.what();
      warn(a.input + " line " + std::to_string(mols[i].line) + ": " + e.what() + "; skipped");
    }
  }
  progress(a.verbosity, std::to_string(inputs.size()) + " of " + std::to_string(mols.size()) +
                            " molecules featurized (" + f->name + " v" + std::to_string(f->version) + ")");
  if (!inputs.empty()) {
    const auto rows = client.infer(inputs);
    for (size_t k = 0; k < which.size(); ++k) mols[which[k]].output = rows[k];
  }
  if (a.close) client.close();
  const std::string property = f->property.empty() ? model : f->property;
  std::string out;
  if (a.json) {
    out = "{\"model\": " + json_string(model) + ", \"property\": " + json_string(property) + ", \"molecules\": [";
    for (size_t i = 0; i < mols.size(); ++i) {
      const Molecule& m = mols[i];
      out += std::string(i ? ", " : "") + "{\"line\": " + std::to_string(m.line) + ", \"smiles\": " +
             json_string(m.smiles);
      if (!m.error.empty()) {
        out += ", \"error\": " + json_string(m.error) + "}";
        continue;
      }
      out += m.output.size() == 1 ? ", \"value\": " + format_double(m.output[0], "%.17g") : ", \"values\": [";
      if (m.output.size() != 1)
        for (size_t k = 0; k < m.output.size(); ++k)
          out += (k ? ", " : "") + format_double(m.output[k], "%.17g") + (k + 1 == m.output.size() ? "]" : "");
      out += "}";
    }
    out += "]}\n";
  } else {  // SMILES, property, value(s): one line per molecule answered
    for (const Molecule& m : mols) {
      if (!m.error.empty()) continue;
      out += m.smiles + "\t" + property + "\t";
      for (size_t k = 0; k < m.output.size(); ++k) out += (k ? " " : "") + format_double(m.output[k], "%.6g");
      out += "\n";
    }
  }
  if (a.output.empty() || a.output == "-")
    std::fwrite(out.data(), 1, out.size(), stdout);
  else
    write_text_atomic(a.output, out);
  size_t failed = 0;
  for (const Molecule& m : mols) failed += m.error.empty() ? 0 : 1;
  if (failed) warn(std::to_string(failed) + " of " + std::to_string(mols.size()) + " molecules could not be read");
  return failed ? kBadInput : kOk;
#endif
}

void run_query(const QueryArgs& a) {
  const bool molecules = is_smiles_file(a.input);
  Tensor t;
  try {
    if (!molecules) t = read_tensor(a.input);
  } catch (const Error& e) {
    bad_input(e.what());
  }
  serve::QueryOptions o;
  o.cache_dir = a.cache;
  o.ca_cert = a.ca_cert;
  o.timeout = std::chrono::seconds(static_cast<int64_t>(a.timeout));
  const Verbosity v = a.verbosity;
  o.progress = [v](const std::string& line) { progress(v, line); };
  std::string model = a.model;
  if (model.empty()) model = serve::only_model(a.url, o);
  serve::QueryClient client(a.url, model, o);
  if (molecules) {
    if (const int status = query_molecules(a, client, model); status != kOk)
      throw CliError(status, "some molecules were not answered (their lines are above)");
    return;
  }
  const auto inputs = images_of(t, client.input_channels(), client.input_height(), client.input_width(), a.input);
  for (size_t i = 0; i < inputs.size(); ++i)
    for (double x : inputs[i])
      if (!std::isfinite(x)) bad_input(a.input + ": input " + std::to_string(i) + " holds a value that is not finite");
  const auto rows = client.infer(inputs);
  if (a.close) client.close();
  const std::string out = a.json ? (a.output.empty() ? "-.json" : a.output) : (a.output.empty() && !a.argmax ? "-" : a.output);
  if (out == "-.json") {  // JSON on stdout
    std::string s = "{\"model\": " + json_string(model) + ", \"outputs\": [";
    for (size_t i = 0; i < rows.size(); ++i) {
      s += i ? ", [" : "[";
      for (size_t k = 0; k < rows[i].size(); ++k) s += (k ? ", " : "") + format_double(rows[i][k], "%.17g");
      s += "]";
    }
    std::printf("%s]}\n", s.c_str());
    return;
  }
  write_outputs(rows, client.output_size(), out, a.argmax, model);
}

}  // namespace

void add_query_command(CLI::App& app) {
  auto a = std::make_shared<QueryArgs>();
  CLI::App* sub = app.add_subcommand("query", "Query a veil server: encrypt inputs, send them, decrypt the answers");
  sub->add_option("url", a->url, "Server address, http://HOST:PORT or https://HOST:PORT")->required();
  sub->add_option("-i,--input", a->input,
                  "Inputs: .npy ([N,H,W], [N,H*W], ...), CSV (one input per line), or .smi (one SMILES per line, "
                  "for a model compiled with --featurizer: featurized here; prints SMILES, property, value)")
      ->required()->check(CLI::ExistingFile);
  sub->add_option("-m,--model", a->model, "Model name (default: the server's only model)");
  sub->add_option("-o,--output", a->output, "Write the outputs to .npy, .csv or .json (default: lines on stdout)");
  sub->add_flag("--json", a->json, "Machine-readable output (JSON on stdout, or in -o)");
  sub->add_flag("--argmax", a->argmax, "Print the class (index of the largest output) of each input");
  sub->add_option("--cache", a->cache, "Key cache directory (default: $XDG_CACHE_HOME/veil)");
  sub->add_option("--ca-cert", a->ca_cert, "https: the server's certificate (or its CA) to trust")
      ->check(CLI::ExistingFile);
  sub->add_option("--timeout", a->timeout, "Seconds to wait for each answer")->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_flag("--close", a->close, "Delete the session on the server afterwards (the keys stay cached)");
  add_verbosity(*sub, a->verbosity);
  add_footer(*sub);
  sub->callback([a] { run_query(*a); });
}

}  // namespace veil::cli
