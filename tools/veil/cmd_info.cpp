// veil info MODEL.veil [--json]: what a model file holds and what a query costs.
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"
#include "veil/nn/compile.hpp"

namespace veil::cli {

namespace {

struct InfoArgs {
  std::string model;
  bool json = false;
};

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  return format_double(v, "%.17g");
}

std::string info_json(const nn::ModelFile& m) {
  auto ctx = Context::create(m.params, BackendKind::Cpu);
  const nn::CompiledModel plan(ctx, m.model, m.options);
  const nn::QueryCost c = nn::query_cost(m);
  const Parameters& p = m.params;
  std::ostringstream s;
  s << "{\n";
  s << "  \"name\": " << json_string(m.name) << ",\n";
  s << "  \"input_shape\": [" << m.model.channels() << ", " << m.model.height() << ", " << m.model.width() << "],\n";
  s << "  \"input_range\": [" << json_number(m.input_min) << ", " << json_number(m.input_max) << "],\n";
  s << "  \"outputs\": " << plan.output_size() << ",\n";
  s << "  \"layers\": " << m.model.layers().size() << ",\n";
  s << "  \"batch\": " << plan.batch() << ",\n";
  s << "  \"packing\": \"" << nn::packing_name(plan.packing()) << "\",\n";  // as the plan resolved it
  s << "  \"channel_blocks\": " << plan.channel_blocks() << ",\n";
  s << "  \"N\": " << p.n() << ",\n";
  s << "  \"log_n\": " << p.log_n() << ",\n";
  s << "  \"log_qp\": " << json_number(p.log_qp()) << ",\n";
  s << "  \"max_log_qp\": " << he_standard_max_log_qp(p.log_n()) << ",\n";
  s << "  \"q_primes\": " << p.q().size() << ",\n";
  s << "  \"special_primes\": " << p.alpha() << ",\n";
  s << "  \"dnum\": " << p.dnum() << ",\n";
  s << "  \"scale_bits\": " << json_number(std::log2(plan.input_scale())) << ",\n";
  s << "  \"depth\": " << plan.depth() << ",\n";
  s << "  \"input_level\": " << plan.input_level() << ",\n";
  s << "  \"rotation_steps\": [";
  const auto steps = plan.rotation_steps();
  for (size_t i = 0; i < steps.size(); ++i) s << (i ? ", " : "") << steps[i];
  s << "],\n";
  s << "  \"promised_bits\": " << json_number(m.promised_bits) << ",\n";
  s << "  \"measured_bits\": " << json_number(m.measured_bits) << ",\n";
  s << "  \"dry_run_ms\": " << json_number(m.dry_run_ms) << ",\n";
  s << "  \"compiled_on\": " << json_string(m.compiled_on) << ",\n";
  s << "  \"relin_key_bytes\": " << c.relin_key_bytes << ",\n";
  s << "  \"galois_keys\": " << c.galois_keys << ",\n";
  s << "  \"galois_key_bytes\": " << c.galois_key_bytes << ",\n";
  s << "  \"input_ciphertexts\": " << c.input_ciphertexts << ",\n";
  s << "  \"output_ciphertexts\": " << c.output_ciphertexts << ",\n";
  s << "  \"upload_bytes\": " << c.upload_bytes << ",\n";
  s << "  \"download_bytes\": " << c.download_bytes << "\n";
  s << "}\n";
  return s.str();
}

void run_info(const InfoArgs& a) {
  const nn::ModelFile m = load_model(a.model);
  std::cout << (a.json ? info_json(m) : nn::explain(m)) << std::flush;
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* sub =
      app.add_subcommand("info", "Describe a model file: plan, CKKS parameters, precision, key and query sizes");
  sub->add_option("model", args->model, "Model file (from veil compile)")->required();
  sub->add_flag("--json", args->json, "One JSON object instead of text");
  add_footer(*sub);
  sub->callback([args] { run_info(*args); });
}

}  // namespace veil::cli
