// veil query -i INPUTS.npy|.csv URL: the client of `veil serve` (docs/serve.md). It
// keeps its keys per server and model in the cache directory (secret key 0600, never
// sent), uploads the evaluation keys once per session, sends the inputs in batches of
// the model's batch size (one round trip each), decrypts and prints one line per input.
#include <cmath>
#include <memory>

#include "commands.hpp"
#include "common.hpp"
#include "veil/serve/client.hpp"

namespace veil::cli {

namespace {

struct QueryArgs {
  std::string url, input, model, output, cache, ca_cert;
  double timeout = 300;
  bool json = false, argmax = false, close = false;
  Verbosity verbosity;
};

void run_query(const QueryArgs& a) {
  Tensor t;
  try {
    t = read_tensor(a.input);
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
  sub->add_option("-i,--input", a->input, "Inputs: .npy ([N,H,W], [N,H*W], ...) or CSV (one input per line)")
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
