// veil.Model: a compiled model file in this process, both halves of a query: the
// client's (keys, encrypt, decrypt) and the server's (run), as `veil keygen / encrypt /
// eval / decrypt` do, with the CLI's files (key directory, QUERY.bin + .json), so
// Python and the CLI or `veil serve` exchange keys and ciphertexts both ways.
#include <fcntl.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>

#include "common.hpp"
#include "veil/nn/compile.hpp"
#include "veil/nn/model.hpp"
#include "veil/recorded_computation.hpp"

using namespace nb::literals;

namespace vpy {
namespace {

struct ModelState {
  explicit ModelState(veil::nn::ModelFile f) : file(std::move(f)) {}
  veil::nn::ModelFile file;
  veil::ContextPtr ctx;
  std::unique_ptr<veil::nn::CompiledModel> plan;
  std::unique_ptr<veil::Encoder> enc;
  std::unique_ptr<veil::Evaluator> eval;
  std::shared_ptr<veil::SecretKey> sk;  // the client's; null on a server
  std::optional<veil::RelinKey> rk;
  std::optional<veil::GaloisKeys> gk;
  // run() recorded once and replayed (cuda: one graph launch per run): made by the
  // first run with these keys, dropped when the keys change. Runs go one at a time
  // through it (its buffers are shared).
  bool replay = false;
  std::mutex recorded_mutex;
  std::unique_ptr<veil::RecordedComputation> recorded;
  void keys_changed() {
    std::lock_guard lock(recorded_mutex);
    recorded.reset();
  }
};

// Ciphertexts of one model: `count` inputs in runs of the model's batch, `per_run`
// ciphertexts each (the plan's input or output ciphertexts).
struct PyBatch {
  std::shared_ptr<ModelState> m;
  std::vector<veil::Ciphertext> cts;
  size_t count = 0, per_run = 0;
  bool outputs = false;
  size_t runs() const { return per_run == 0 ? 0 : cts.size() / per_run; }
};

struct PyModel {
  std::shared_ptr<ModelState> m;
};

[[noreturn]] void fail(veil::ErrorCode code, const std::string& msg) { throw veil::Error(code, "model: " + msg); }

veil::Bytes read_bytes(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(veil::ErrorCode::InvalidArgument, "cannot read " + what + " " + path);
  return veil::Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, veil::ByteView data, bool secret, bool force) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  if (secret && force) ::unlink(path.c_str());
  // A secret key is created exclusively, 0600, never through a link: never readable
  // by others, not even for a moment, and never replacing a file unless forced.
  const std::string& target = secret ? path : tmp;
  const int fd = ::open(target.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0)
    fail(veil::ErrorCode::InvalidArgument,
         "cannot create " + path + ": " + strerror(errno) +
             (secret && errno == EEXIST ? " (keys exist there: load them, or pass force=True to replace them)" : ""));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w <= 0) {
      ::close(fd);
      ::unlink(target.c_str());
      fail(veil::ErrorCode::InvalidArgument, "cannot write " + path);
    }
    done += static_cast<size_t>(w);
  }
  ::fsync(fd);
  ::close(fd);
  if (!secret && ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail(veil::ErrorCode::InvalidArgument, "cannot write " + path + ": " + strerror(errno));
  }
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// f() (a deserialization), its errors prefixed with the file they came from.
template <class F>
auto from_file(const std::string& path, F f) {
  try {
    return f();
  } catch (const veil::Error& e) {
    throw veil::Error(e.code(), path + ": " + e.what());
  }
}

const veil::SecretKey& secret_of(const ModelState& m, const char* what) {
  if (!m.sk)
    fail(veil::ErrorCode::MissingKey, std::string(what) + " needs the secret key: call keygen() or load_keys(dir) "
                                      "with a directory holding secret.key (a server never has one)");
  return *m.sk;
}

PyBatch encrypt(const std::shared_ptr<ModelState>& ms, const std::vector<std::vector<double>>& inputs) {
  const ModelState& m = *ms;
  const veil::SecretKey& sk = secret_of(m, "encrypt()");
  if (inputs.empty()) fail(veil::ErrorCode::InvalidArgument, "encrypt() needs at least one input");
  veil::Encryptor encryptor(m.ctx, sk);  // seeded ciphertexts: half the upload
  const size_t batch = m.plan->batch();
  PyBatch out{ms, {}, inputs.size(), m.plan->input_ciphertexts(), false};
  for (size_t first = 0; first < inputs.size(); first += batch) {
    const size_t n = std::min(batch, inputs.size() - first);
    const std::vector<std::vector<double>> chunk(inputs.begin() + static_cast<std::ptrdiff_t>(first),
                                                 inputs.begin() + static_cast<std::ptrdiff_t>(first + n));
    for (const auto& slots : m.plan->encode(chunk))
      out.cts.push_back(
          encryptor.encrypt(m.enc->encode(slots, m.plan->input_scale(), static_cast<int>(m.plan->input_level()))));
  }
  return out;
}

PyBatch run(const PyBatch& in) {
  const ModelState& m = *in.m;
  if (in.outputs) fail(veil::ErrorCode::InvalidArgument, "run() takes encrypted inputs, not outputs");
  if (!m.rk || !m.gk)
    fail(veil::ErrorCode::MissingKey, "run() needs the evaluation keys: keygen(), or load_keys(dir) with relin.key "
                                      "and galois.key");
  PyBatch out{in.m, {}, in.count, m.plan->output_ciphertexts(), true};
  const veil::RecordedComputation::Function direct = [&m](const std::vector<veil::Ciphertext>& xs) {
    return m.plan->run(*m.eval, xs, *m.rk, *m.gk);
  };
  for (size_t r = 0; r < in.runs(); ++r) {
    const std::vector<veil::Ciphertext> xs(in.cts.begin() + static_cast<std::ptrdiff_t>(r * in.per_run),
                                           in.cts.begin() + static_cast<std::ptrdiff_t>((r + 1) * in.per_run));
    std::vector<veil::Ciphertext> ys;
    if (m.replay) {
      std::lock_guard lock(in.m->recorded_mutex);
      if (!in.m->recorded) in.m->recorded = std::make_unique<veil::RecordedComputation>(direct, xs);
      ys = in.m->recorded->matches(xs) ? in.m->recorded->run(xs) : direct(xs);
    } else {
      ys = direct(xs);
    }
    for (auto& ct : ys) out.cts.push_back(std::move(ct));
  }
  return out;
}

std::vector<std::vector<double>> decrypt(const PyBatch& b) {
  const ModelState& m = *b.m;
  const veil::SecretKey& sk = secret_of(m, "decrypt()");
  if (!b.outputs) fail(veil::ErrorCode::InvalidArgument, "decrypt() takes the outputs of run(), not encrypted inputs");
  veil::Decryptor dec(m.ctx, sk);
  std::vector<std::vector<double>> rows;
  const size_t batch = m.plan->batch();
  for (size_t r = 0; r < b.runs(); ++r) {
    std::vector<std::vector<double>> slots;
    for (size_t k = 0; k < b.per_run; ++k) slots.push_back(m.enc->decode(dec.decrypt(b.cts[r * b.per_run + k])));
    const size_t n = std::min(batch, b.count - r * batch);
    for (auto& row : m.plan->decode(slots, n)) rows.push_back(std::move(row));
  }
  return rows;
}

// Ciphertext blobs back to back (QUERY.bin / ANSWER.bin): each checked against the model.
PyBatch load_batch(const std::shared_ptr<ModelState>& ms, veil::ByteView data, bool outputs, size_t count) {
  const ModelState& m = *ms;
  const size_t per_run = outputs ? m.plan->output_ciphertexts() : m.plan->input_ciphertexts();
  const auto blobs = veil::split_blobs(data, size_t{1} << 20);
  if (blobs.empty() || blobs.size() % per_run != 0)
    fail(veil::ErrorCode::InvalidArgument, "the data holds " + std::to_string(blobs.size()) + " ciphertext(s); model " +
                                               m.file.name + " has " + std::to_string(per_run) + " " +
                                               (outputs ? "output" : "input") + " ciphertext(s) per run");
  const size_t runs = blobs.size() / per_run, batch = m.plan->batch();
  if (count == 0) count = runs * batch;
  if (count > runs * batch || count + batch <= runs * batch)
    fail(veil::ErrorCode::InvalidArgument, std::to_string(count) + " inputs do not fit " + std::to_string(runs) +
                                               " run(s) of " + std::to_string(batch));
  PyBatch b{ms, {}, count, per_run, outputs};
  for (const auto& blob : blobs) b.cts.push_back(veil::deserialize_ciphertext(m.ctx, blob));
  const uint32_t level = outputs ? m.plan->output_level() : m.plan->input_level();
  for (const auto& ct : b.cts)
    if (ct.level() != level)
      fail(veil::ErrorCode::LevelMismatch, "a ciphertext at level " + std::to_string(ct.level()) + ", the model's " +
                                               (outputs ? "outputs are" : "inputs are") + " at " + std::to_string(level));
  return b;
}

// `b` as ciphertexts of model `m` (another veil.Model of the same file: the objects
// move to its context; the model's name and parameters must match).
PyBatch adopt(const std::shared_ptr<ModelState>& m, const PyBatch& b) {
  if (b.m->file.params.fingerprint() != m->file.params.fingerprint() || b.m->file.name != m->file.name)
    fail(veil::ErrorCode::InvalidArgument, "the ciphertexts belong to model " + b.m->file.name + ", not " +
                                               m->file.name);
  PyBatch out = b;
  out.m = m;
  if (b.m != m)
    for (auto& ct : out.cts) ct = ct.to(m->ctx);
  return out;
}

std::string sidecar(const PyBatch& b) {
  std::string name;
  for (char c : b.m->file.name) name += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return "{\"model\": \"" + name + "\", \"inputs\": " + std::to_string(b.count) + ", \"runs\": " +
         std::to_string(b.runs()) + ", \"ciphertexts_per_run\": " + std::to_string(b.per_run) + ", \"format\": 1}\n";
}

nb::bytes to_bytes(const veil::Bytes& b) { return nb::bytes(reinterpret_cast<const char*>(b.data()), b.size()); }

}  // namespace

void bind_model(nb::module_& mod) {
  nb::class_<PyBatch>(mod, "EncryptedBatch",
                      "Ciphertexts of a veil.Model: `count` inputs (or their outputs) in runs of the model's batch "
                      "(the CLI's QUERY.bin / ANSWER.bin).")
      .def_prop_ro("count", [](const PyBatch& b) { return b.count; }, "Inputs it holds.")
      .def_prop_ro("runs", &PyBatch::runs, "Runs of the model's batch.")
      .def_prop_ro("ciphertexts", [](const PyBatch& b) { return b.cts.size(); })
      .def_prop_ro("outputs", [](const PyBatch& b) { return b.outputs; }, "True for run()'s result.")
      .def(
          "serialize",
          [](const PyBatch& b) {
            veil::Bytes out;
            {
              nb::gil_scoped_release release;
              for (const auto& ct : b.cts) {
                const veil::Bytes one = veil::serialize(ct, true);
                out.insert(out.end(), one.begin(), one.end());
              }
            }
            return to_bytes(out);
          },
          "The ciphertext blobs back to back (what `veil encrypt` / `veil eval` write).")
      .def("sidecar", &sidecar, "The JSON the CLI writes next to the file (FILE.json).")
      .def("__len__", [](const PyBatch& b) { return b.count; });

  nb::class_<PyModel>(mod, "Model",
                      "A compiled model (a .veil file from `veil compile` or veil.compile_onnx) in this process: "
                      "keys, encrypt, run, decrypt.")
      .def(
          "__init__",
          [](PyModel* self, nb::handle model, const std::string& backend, bool insecure, const std::string& replay) {
            if (replay != "auto" && replay != "always" && replay != "never")
              throw nb::value_error(("replay must be \"auto\", \"always\" or \"never\", not \"" + replay + "\"").c_str());
            auto m = std::make_shared<ModelState>(load_model(model, insecure));
            nb::gil_scoped_release release;
            m->ctx = veil::Context::create(m->file.params, parse_backend(backend));
            m->replay = replay == "always" || (replay == "auto" && m->ctx->backend().name() == "cuda");
            m->plan = std::make_unique<veil::nn::CompiledModel>(m->ctx, m->file.model, m->file.options);
            m->enc = std::make_unique<veil::Encoder>(m->ctx);
            m->eval = std::make_unique<veil::Evaluator>(m->ctx);
            new (self) PyModel{std::move(m)};
          },
          "model"_a, "backend"_a = "cpu", "insecure"_a = false, "replay"_a = "auto",
          "replay: \"auto\" (on the cuda backend), \"always\" or \"never\": the first run() with a set of keys is "
          "recorded and later runs replay it (cuda: one CUDA graph launch per run instead of a launch per kernel; "
          "cpu: the same run). Results are the same words either way.")
      .def_prop_ro(
          "replays",
          [](const PyModel& p) {
            std::lock_guard lock(p.m->recorded_mutex);
            return p.m->recorded != nullptr && p.m->recorded->replayed();
          },
          "True once run() has recorded a run that it replays on the device (cuda).")
      .def_prop_ro("name", [](const PyModel& p) { return p.m->file.name; })
      .def_prop_ro("input_shape",
                   [](const PyModel& p) {
                     const auto& s = p.m->file.model;
                     return nb::make_tuple(s.channels(), s.height(), s.width());
                   })
      .def_prop_ro("input_size", [](const PyModel& p) { return p.m->file.model.input_size(); })
      .def_prop_ro("output_size", [](const PyModel& p) { return p.m->file.model.output_shape().size(); })
      .def_prop_ro("batch", [](const PyModel& p) { return p.m->plan->batch(); }, "Inputs per run (per ciphertext set).")
      .def_prop_ro("input_range", [](const PyModel& p) { return nb::make_tuple(p.m->file.input_min, p.m->file.input_max); })
      .def_prop_ro("promised_bits", [](const PyModel& p) { return p.m->file.promised_bits; })
      .def_prop_ro("measured_bits", [](const PyModel& p) { return p.m->file.measured_bits; })
      .def_prop_ro("log_n", [](const PyModel& p) { return p.m->file.params.log_n(); })
      .def_prop_ro("rotation_steps", [](const PyModel& p) { return p.m->plan->rotation_steps(); })
      .def_prop_ro("has_secret_key", [](const PyModel& p) { return p.m->sk != nullptr; })
      .def_prop_ro("has_evaluation_keys", [](const PyModel& p) { return p.m->rk.has_value() && p.m->gk.has_value(); })
      .def("describe", [](const PyModel& p) { return p.m->plan->describe(); }, "The plan, layer by layer.")
      .def("explain", [](const PyModel& p) { return veil::nn::explain(p.m->file); },
           "Parameters, keys, precision and bytes per query (`veil info`).")
      .def(
          "serialize",
          [](const PyModel& p) {
            veil::Bytes b;
            {
              nb::gil_scoped_release release;
              b = veil::nn::serialize_model(p.m->file);
            }
            return to_bytes(b);
          },
          "The model file's bytes (write them to NAME.veil).")
      .def(
          "forward",
          [](const PyModel& p, nb::handle inputs) {
            const auto in = rows_of(inputs, p.m->file.model.input_size());
            std::vector<std::vector<double>> out;
            {
              nb::gil_scoped_release release;
              for (const auto& x : in) out.push_back(p.m->file.model.forward(x));
            }
            return to_rows(out);
          },
          "inputs"_a, "Plain float64 outputs (one row per input): what the encrypted run approximates.")
      .def(
          "keygen",
          [](PyModel& p) {
            nb::gil_scoped_release release;
            ModelState& m = *p.m;
            veil::KeyGenerator kg(m.ctx);  // the OS's CSPRNG
            m.sk = std::make_shared<veil::SecretKey>(kg.secret_key());
            m.keys_changed();
            m.rk = kg.create_relin_key();
            m.gk = kg.create_galois_keys(m.plan->rotation_steps(), false);
          },
          "A fresh secret key and the evaluation keys this model needs (what `veil keygen` makes).")
      .def(
          "save_keys",
          [](const PyModel& p, const std::string& dir, bool force) {
            const ModelState& m = *p.m;
            const veil::SecretKey& sk = secret_of(m, "save_keys()");
            if (!m.rk || !m.gk) fail(veil::ErrorCode::MissingKey, "save_keys(): no evaluation keys");
            nb::gil_scoped_release release;
            if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
              fail(veil::ErrorCode::InvalidArgument, "cannot make " + dir + ": " + strerror(errno));
            veil::Bytes s = veil::serialize_secret_key(sk);
            try {
              write_bytes(join(dir, "secret.key"), s, true, force);
            } catch (...) {
              explicit_bzero(s.data(), s.size());
              throw;
            }
            explicit_bzero(s.data(), s.size());
            veil::KeyGenerator kg(m.ctx, sk, veil::RandomSource::os());
            write_bytes(join(dir, "public.key"), veil::serialize(kg.create_public_key()), false, false);
            write_bytes(join(dir, "relin.key"), veil::serialize(*m.rk), false, false);
            write_bytes(join(dir, "galois.key"), veil::serialize(*m.gk), false, false);
          },
          "dir"_a, "force"_a = false,
          "Writes the keys as `veil keygen` does: dir/secret.key (0600, never replaced unless force=True), "
          "public.key, and the evaluation keys relin.key and galois.key (all a server needs).")
      .def(
          "evaluation_keys",
          [](const PyModel& p) {
            const ModelState& m = *p.m;
            if (!m.rk || !m.gk) fail(veil::ErrorCode::MissingKey, "evaluation_keys(): call keygen() or load_keys() first");
            veil::Bytes out;
            {
              nb::gil_scoped_release release;
              out = veil::serialize(*m.rk);
              const veil::Bytes g = veil::serialize(*m.gk);
              out.insert(out.end(), g.begin(), g.end());
            }
            return to_bytes(out);
          },
          "The relinearization and Galois key blobs back to back: the body of `POST /v1/sessions` (docs/serve.md).")
      .def(
          "load_keys",
          [](PyModel& p, const std::string& dir, bool secret) {
            ModelState& m = *p.m;
            nb::gil_scoped_release release;
            if (secret) {
              const std::string path = join(dir, "secret.key");
              veil::Bytes b = read_bytes(path, "the secret key");
              try {
                m.sk = std::make_shared<veil::SecretKey>(
                    from_file(path, [&] { return veil::deserialize_secret_key(m.ctx, b); }));
              } catch (...) {
                explicit_bzero(b.data(), b.size());
                throw;
              }
              explicit_bzero(b.data(), b.size());
            }
            const std::string rpath = join(dir, "relin.key"), gpath = join(dir, "galois.key");
            const veil::Bytes r = read_bytes(rpath, "the relinearization key");
            const veil::Bytes g = read_bytes(gpath, "the Galois keys");
            m.keys_changed();
            m.rk = from_file(rpath, [&] { return veil::deserialize_relin_key(m.ctx, r); });
            m.gk = from_file(gpath, [&] { return veil::deserialize_galois_keys(m.ctx, g); });
          },
          "dir"_a, "secret"_a = true,
          "Loads keys `veil keygen` (or save_keys) wrote: secret.key unless secret=False (a server), relin.key and "
          "galois.key.")
      .def(
          "encrypt",
          [](const PyModel& p, nb::handle inputs) {
            const auto in = rows_of(inputs, p.m->file.model.input_size());
            nb::gil_scoped_release release;
            return encrypt(p.m, in);
          },
          "inputs"_a, "Encrypts inputs (one row per input, or one input) in runs of the model's batch (client).")
      .def(
          "run",
          [](const PyModel& p, const PyBatch& b) {
            nb::gil_scoped_release release;
            return run(adopt(p.m, b));
          },
          "batch"_a, "Runs the model on encrypted inputs (server side: evaluation keys only).")
      .def(
          "decrypt",
          [](const PyModel& p, const PyBatch& b) {
            std::vector<std::vector<double>> rows;
            {
              nb::gil_scoped_release release;
              rows = decrypt(adopt(p.m, b));
            }
            return to_rows(rows);
          },
          "batch"_a, "Decrypts run()'s outputs: one row per input (client).")
      .def(
          "load_batch",
          [](const PyModel& p, nb::bytes data, bool outputs, size_t count) {
            const veil::ByteView v(static_cast<const uint8_t*>(data.data()), data.size());
            nb::gil_scoped_release release;
            return load_batch(p.m, v, outputs, count);
          },
          "data"_a, "outputs"_a = false, "count"_a = 0,
          "Ciphertexts from bytes (QUERY.bin from `veil encrypt`, ANSWER.bin from `veil eval`); count: the inputs "
          "(the .json's \"inputs\"; 0: every slot of every run).");
}

}  // namespace vpy
