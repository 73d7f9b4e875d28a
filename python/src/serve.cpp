// The compiler, the model server and its client: veil.compile_onnx, veil.Server
// (serve::ModelServer), veil.Client / veil.query (serve::QueryClient).
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>

#include "common.hpp"
#include "veil/nn/compile.hpp"
#include "veil/nn/model_file.hpp"
#include "veil/nn/onnx.hpp"
#include "veil/serve/client.hpp"
#include "veil/serve/key_store.hpp"
#include "veil/serve/server.hpp"

using namespace nb::literals;

namespace vpy {

static veil::ByteView view(const nb::bytes& b) { return {static_cast<const uint8_t*>(b.data()), b.size()}; }

veil::nn::ModelFile load_model(nb::handle m, bool insecure) {
  veil::SerializationLimits lim;
  lim.allow_insecure_parameters = insecure;
  if (nb::isinstance<nb::bytes>(m)) {
    nb::bytes b = nb::borrow<nb::bytes>(m);
    nb::gil_scoped_release release;
    return veil::nn::deserialize_model(view(b), lim);
  }
  const std::string path = nb::cast<std::string>(nb::str(nb::module_::import_("os").attr("fspath")(m)));
  nb::gil_scoped_release release;
  return veil::nn::read_model_file(path, lim);
}

std::vector<std::vector<double>> rows_of(nb::handle inputs, size_t width) {
  size_t rows = 0, cols = 0;
  nb::object arr = nb::module_::import_("numpy").attr("asarray")(inputs, "dtype"_a = "float64");
  if (nb::cast<int>(arr.attr("ndim")) == 1) arr = arr.attr("reshape")(1, -1);
  if (nb::cast<int>(arr.attr("ndim")) > 2) arr = arr.attr("reshape")(arr.attr("shape")[0], -1);
  const std::vector<double> flat = to_matrix(arr, "inputs", rows, cols);
  if (width != 0 && cols != width)
    throw nb::value_error(("inputs: " + std::to_string(cols) + " values per input, the model takes " +
                           std::to_string(width)).c_str());
  std::vector<std::vector<double>> out(rows);
  for (size_t r = 0; r < rows; ++r) out[r].assign(flat.begin() + r * cols, flat.begin() + (r + 1) * cols);
  return out;
}

nb::object to_rows(const std::vector<std::vector<double>>& rows) {
  const size_t cols = rows.empty() ? 0 : rows[0].size();
  std::vector<double> flat;
  flat.reserve(rows.size() * cols);
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return to_numpy_2d(std::move(flat), rows.size(), cols);
}

namespace {

struct PyServer {
  std::unique_ptr<veil::serve::ModelServer> server;
};

struct PyClient {
  std::unique_ptr<veil::serve::QueryClient> client;
};

}  // namespace

void bind_serve(nb::module_& m) {
  m.def("onnx_available", &veil::nn::onnx_import_available, "True when this build imports ONNX models.");
  m.def(
      "compile_onnx",
      [](nb::handle source, const std::string& name, double promise_bits, size_t batch, const std::string& packing,
         double input_min, double input_max, uint32_t min_log_n, uint32_t max_log_n, double activation_bound,
         int activation_degree) {
        veil::nn::OnnxImportOptions io;
        io.activation_bound = activation_bound;
        io.activation_degree = activation_degree;
        veil::nn::AutoCompileOptions o;
        o.precision_bits = promise_bits;
        o.batch = batch;
        o.packing = veil::nn::parse_packing(packing);
        o.input_min = input_min;
        o.input_max = input_max;
        o.min_log_n = min_log_n;
        o.max_log_n = max_log_n;
        veil::Bytes out;
        if (nb::isinstance<nb::bytes>(source)) {
          nb::bytes b = nb::borrow<nb::bytes>(source);
          const std::string data(static_cast<const char*>(b.data()), b.size());
          nb::gil_scoped_release release;
          out = veil::nn::serialize_model(veil::nn::compile_model(veil::nn::import_onnx_bytes(data, io), name, o));
        } else {
          const std::string path = nb::cast<std::string>(nb::str(nb::module_::import_("os").attr("fspath")(source)));
          nb::gil_scoped_release release;
          out = veil::nn::serialize_model(veil::nn::compile_model(veil::nn::import_onnx(path, io), name, o));
        }
        return nb::bytes(reinterpret_cast<const char*>(out.data()), out.size());
      },
      "source"_a, "name"_a = "model", "promise_bits"_a = 12.0, "batch"_a = 0, "packing"_a = "taps",
      "input_min"_a = 0.0, "input_max"_a = 1.0, "min_log_n"_a = 13, "max_log_n"_a = 16, "activation_bound"_a = 0.0,
      "activation_degree"_a = 15,
      "Imports an ONNX model (path or bytes) and compiles it with automatic parameters (what `veil "
      "compile` does): returns the model file's bytes (write them to NAME.veil, or pass them to Server).");
  m.def(
      "model_info",
      [](nb::handle model, bool insecure) {
        const veil::nn::ModelFile f = load_model(model, insecure);
        nb::dict d;
        d["name"] = f.name;
        d["input_shape"] = nb::make_tuple(f.model.channels(), f.model.height(), f.model.width());
        d["output_size"] = f.model.output_shape().size();
        d["log_n"] = f.params.log_n();
        d["batch"] = f.options.batch;
        d["packing"] = veil::nn::packing_name(f.options.packing);
        d["promised_bits"] = f.promised_bits;
        d["measured_bits"] = f.measured_bits;
        d["input_range"] = nb::make_tuple(f.input_min, f.input_max);
        d["explain"] = veil::nn::explain(f);
        return d;
      },
      "model"_a, "insecure"_a = false, "A compiled model file's description (path or bytes).");
  m.def(
      "model_forward",
      [](nb::handle model, nb::handle inputs, bool insecure) {
        const veil::nn::ModelFile f = load_model(model, insecure);
        const auto in = rows_of(inputs, f.model.input_size());
        std::vector<std::vector<double>> out;
        {
          nb::gil_scoped_release release;
          for (const auto& x : in) out.push_back(f.model.forward(x));
        }
        return to_rows(out);
      },
      "model"_a, "inputs"_a, "insecure"_a = false,
      "The model's plain float64 outputs for `inputs` (one row per input): the reference for query().");

  nb::class_<PyServer>(m, "_Server")
      .def(
          "__init__",
          [](PyServer* self, nb::list models, const std::string& key_store, const std::string& host, int port,
             size_t threads, const std::string& backend, bool insecure) {
            std::vector<veil::nn::ModelFile> files;
            for (nb::handle h : models) files.push_back(load_model(h, insecure));
            veil::serve::ServerOptions o;
            o.host = host;
            o.port = port;
            o.threads = threads;
            o.backend = parse_backend(backend);
            o.allow_insecure_parameters = insecure;
            nb::gil_scoped_release release;
            auto store = veil::serve::open_key_store(key_store);
            new (self) PyServer{std::make_unique<veil::serve::ModelServer>(std::move(files), store, o)};
          },
          "models"_a, "key_store"_a, "host"_a = "127.0.0.1", "port"_a = 0, "threads"_a = 2, "backend"_a = "cpu",
          "insecure"_a = false)
      .def("start",
           [](PyServer& s) {
             nb::gil_scoped_release release;
             s.server->start();
           })
      .def("stop",
           [](PyServer& s) {
             nb::gil_scoped_release release;
             s.server->stop();
           })
      .def_prop_ro("port", [](const PyServer& s) { return s.server->port(); });

  nb::class_<PyClient>(m, "Client",
                       "The model server's client (what `veil query` runs): keys made once per server "
                       "and model and cached in cache_dir, one session, one round trip per batch.")
      .def(
          "__init__",
          [](PyClient* self, const std::string& url, std::string model, const std::string& cache_dir, int timeout_s,
             const std::string& ca_cert) {
            veil::serve::QueryOptions o;
            o.cache_dir = cache_dir;
            o.timeout = std::chrono::seconds(timeout_s);
            o.ca_cert = ca_cert;
            nb::gil_scoped_release release;
            if (model.empty()) model = veil::serve::only_model(url, o);
            new (self) PyClient{std::make_unique<veil::serve::QueryClient>(url, model, o)};
          },
          "url"_a, "model"_a = "", "cache_dir"_a = "", "timeout"_a = 300, "ca_cert"_a = "")
      .def_prop_ro("batch", [](const PyClient& c) { return c.client->batch(); })
      .def_prop_ro("input_size", [](const PyClient& c) { return c.client->input_size(); })
      .def_prop_ro("output_size", [](const PyClient& c) { return c.client->output_size(); })
      .def_prop_ro("input_shape", [](const PyClient& c) {
        return nb::make_tuple(c.client->input_channels(), c.client->input_height(), c.client->input_width());
      })
      .def_prop_ro("key_dir", [](const PyClient& c) { return c.client->key_dir(); })
      .def(
          "infer",
          [](PyClient& c, nb::handle inputs) {
            const auto in = rows_of(inputs, c.client->input_size());
            std::vector<std::vector<double>> out;
            {
              nb::gil_scoped_release release;
              out = c.client->infer(in);
            }
            return to_rows(out);
          },
          "inputs"_a, "Encrypts, sends and decrypts: one output row per input row (numpy float64).")
      .def("close", [](PyClient& c) {
        nb::gil_scoped_release release;
        c.client->close();
      });
}

}  // namespace vpy
