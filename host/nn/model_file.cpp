// Model files: the payload layout (docs/models.md, "Model files") and its checks.
// Writing appends to a growing buffer (weights are not secret); reading goes through
// io::Reader, which never reads past the end, and bounds every count before it
// allocates.
#include "veil/nn/model_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>

#include "io/byte_io.hpp"
#include "io/serialization_format.hpp"
#include "veil/error.hpp"

namespace veil::nn {

namespace {

// Bounds that no real model reaches and that keep every product below 2^63.
constexpr uint64_t kMaxSide = 4096;          // input height, width
constexpr uint64_t kMaxFeatures = 1 << 20;   // channels, features
constexpr uint64_t kMaxKernel = 64;          // Sequential's own bound
constexpr uint64_t kMaxChannelBlocks = 1 << 16;
constexpr uint64_t kMaxWeights = 1 << 28;    // per layer (2 GiB of doubles)
constexpr uint32_t kMaxLayers = 256;
constexpr size_t kMaxText = 256;

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCode::Serialization, "model file: " + message);
}
void check(bool ok, const std::string& message) {
  if (!ok) fail(message);
}

class Sink {
 public:
  void u8(uint8_t v) { le(v, 1); }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void i32(int32_t v) { le(static_cast<uint32_t>(v), 4); }
  void f64(double v) { u64(std::bit_cast<uint64_t>(v)); }
  void text(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
  }
  void doubles(const std::vector<double>& v) {
    u64(v.size());
    for (double x : v) f64(x);
  }
  void blob(const Bytes& b) {
    u64(b.size());
    out.insert(out.end(), b.begin(), b.end());
  }
  Bytes out;

 private:
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
};

std::string read_text(io::Reader& r, const char* what) {
  const uint32_t n = r.u32();
  check(n <= kMaxText, std::string(what) + " longer than " + std::to_string(kMaxText) + " bytes");
  const auto b = r.bytes(n);
  return std::string(b.begin(), b.end());
}

uint64_t read_bounded(io::Reader& r, uint64_t lo, uint64_t hi, const std::string& what) {
  const uint64_t v = r.u64();
  check(v >= lo && v <= hi, what + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                std::to_string(v));
  return v;
}

double read_finite(io::Reader& r, const std::string& what) {
  const double v = r.f64();
  check(std::isfinite(v), what + " must be finite");
  return v;
}

// Exactly `count` finite doubles; the count is checked against what is left before allocating.
std::vector<double> read_doubles(io::Reader& r, uint64_t count, const std::string& what) {
  const uint64_t stored = r.u64();
  check(stored == count, what + ": " + std::to_string(stored) + " values stored, the layer needs " +
                             std::to_string(count));
  check(count <= r.remaining() / 8, what + ": truncated");
  std::vector<double> v(count);
  for (auto& x : v) x = read_finite(r, what);
  return v;
}

enum class Kind : uint8_t {
  Conv2d = 1, Square = 2, Activation = 3, AvgPool2d = 4, Flatten = 5, Linear = 6, GlobalAvgPool = 7,
  ResidualBegin = 8, ResidualAdd = 9, Affine = 10, ResidualProjection = 11
};

void write_window(Sink& s, const Layer& l) {
  s.u64(l.kernel), s.u64(l.stride);
  s.u64(l.pad.top), s.u64(l.pad.left), s.u64(l.pad.bottom), s.u64(l.pad.right);
}

// Kernel, stride and pads of a conv2d / avg_pool2d, bounded as Sequential bounds them
// (each pad below the kernel).
struct Window {
  uint64_t kernel, stride;
  Padding pad;
};
Window read_window(io::Reader& r, const std::string& at) {
  Window w{};
  w.kernel = read_bounded(r, 1, kMaxKernel, at + " kernel");
  w.stride = read_bounded(r, 1, kMaxFeatures, at + " stride");
  w.pad.top = read_bounded(r, 0, w.kernel - 1, at + " pad");
  w.pad.left = read_bounded(r, 0, w.kernel - 1, at + " pad");
  w.pad.bottom = read_bounded(r, 0, w.kernel - 1, at + " pad");
  w.pad.right = read_bounded(r, 0, w.kernel - 1, at + " pad");
  return w;
}

uint8_t packing_code(Packing p) {
  switch (p) {
    case Packing::Taps: return 0;
    case Packing::Im2col: return 1;
    case Packing::Spatial: return 2;
    case Packing::Slots: return 3;
  }
  throw Error(ErrorCode::InvalidArgument, "model file: unknown packing");
}

// The reader bounds an affine layer's count like other feature counts; a file it would
// refuse is not written.
bool writable_affines(const Sequential& m) {
  return std::all_of(m.layers().begin(), m.layers().end(),
                     [](const Layer& l) { return l.kind != LayerKind::Affine || l.weight.size() <= kMaxFeatures; });
}

bool valid_channel_blocks(uint64_t g) { return g == 0 || (g <= kMaxChannelBlocks && std::has_single_bit(g)); }

// A featurizer's fields against the model's input size; `fail` names what is wrong.
template <class Fail>
void check_featurizer_fields(const InputFeaturizer& f, size_t input_size, Fail fail) {
  if (f.name.empty() || f.name.size() > 64 ||
      !std::all_of(f.name.begin(), f.name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      }))
    fail("the featurizer name must be 1..64 characters of [A-Za-z0-9._-]");
  if (f.version < 1) fail("the featurizer version must be >= 1");
  if (!std::isfinite(f.cap) || !(f.cap > 0)) fail("the featurizer cap must be finite and > 0");
  if (f.cells.empty() || f.cells.size() > kMaxFeatures) fail("the featurizer needs 1..2^20 bins");
  if (f.property.size() > kMaxText) fail("the featurizer's property name is over 256 bytes");
  std::vector<bool> used(input_size, false);
  for (uint32_t c : f.cells) {
    if (c >= input_size) fail("a featurizer cell (" + std::to_string(c) + ") is outside the " +
                              std::to_string(input_size) + "-value input");
    if (used[c]) fail("two featurizer bins share cell " + std::to_string(c));
    used[c] = true;
  }
}

InputFeaturizer read_featurizer(io::Reader& r, size_t input_size) {
  InputFeaturizer f;
  f.name = read_text(r, "featurizer name");
  f.version = r.u32();
  f.cap = r.f64();
  const uint32_t bins = r.u32();
  check(bins >= 1 && bins <= kMaxFeatures && bins <= input_size,
        "the featurizer needs 1.." + std::to_string(std::min<size_t>(kMaxFeatures, input_size)) + " bins, got " +
            std::to_string(bins));
  check(uint64_t{bins} * 4 <= r.remaining(), "featurizer cells: truncated");
  f.cells.resize(bins);
  for (auto& c : f.cells) c = r.u32();
  f.property = read_text(r, "featurizer property");
  check_featurizer_fields(f, input_size, [](const std::string& why) { fail(why); });
  return f;
}

void write_layer(Sink& s, const Layer& l) {
  switch (l.kind) {
    case LayerKind::Conv2d:  // input channels: the current shape's
      s.u8(static_cast<uint8_t>(Kind::Conv2d));
      s.u64(l.out);
      write_window(s, l);
      s.doubles(l.weight), s.doubles(l.bias);
      return;
    case LayerKind::Square: s.u8(static_cast<uint8_t>(Kind::Square)); return;
    case LayerKind::Activation:
      s.u8(static_cast<uint8_t>(Kind::Activation));
      s.f64(l.poly->a()), s.f64(l.poly->b());
      s.doubles(l.poly->coefficients());
      return;
    case LayerKind::AvgPool2d:
      s.u8(static_cast<uint8_t>(Kind::AvgPool2d));
      write_window(s, l);
      s.u8(l.count_include_pad ? 1 : 0);
      return;
    case LayerKind::GlobalAvgPool: s.u8(static_cast<uint8_t>(Kind::GlobalAvgPool)); return;
    case LayerKind::ResidualBegin: s.u8(static_cast<uint8_t>(Kind::ResidualBegin)); return;
    case LayerKind::ResidualAdd:
      if (!l.projects()) {
        s.u8(static_cast<uint8_t>(Kind::ResidualAdd));
        return;
      }
      s.u8(static_cast<uint8_t>(Kind::ResidualProjection));  // input channels: the skip's
      s.u64(l.out);
      write_window(s, l);
      s.doubles(l.weight), s.doubles(l.bias);
      return;
    case LayerKind::Flatten: s.u8(static_cast<uint8_t>(Kind::Flatten)); return;
    case LayerKind::Linear:
      s.u8(static_cast<uint8_t>(Kind::Linear));
      s.u64(l.out);
      s.doubles(l.weight), s.doubles(l.bias);
      return;
    case LayerKind::Affine:  // the count is the current channels / features: stored to check it
      s.u8(static_cast<uint8_t>(Kind::Affine));
      s.u64(l.weight.size());
      s.doubles(l.weight), s.doubles(l.bias);
      return;
  }
}

// Reads one layer and appends it through Sequential's builders (which check shapes
// against the current tensor); their InvalidArgument becomes a Serialization error.
void read_layer(io::Reader& r, Sequential& seq, uint32_t index) {
  const std::string at = "layer " + std::to_string(index);
  const uint8_t kind = r.u8();
  try {
    switch (static_cast<Kind>(kind)) {
      case Kind::Conv2d:
      case Kind::ResidualProjection: {
        const bool projection = static_cast<Kind>(kind) == Kind::ResidualProjection;
        check(!projection || seq.open_residuals() > 0, at + ": a projection without a residual_begin");
        const uint64_t out = read_bounded(r, 1, kMaxFeatures, at + " channels");
        const Window win = read_window(r, at);
        const uint64_t in = projection ? seq.residual_input_shape().channels : seq.output_shape().channels;
        const uint64_t per = in * win.kernel * win.kernel;  // <= 2^40
        check(per <= kMaxWeights / out, at + ": " + std::to_string(out) + " x " + std::to_string(per) +
                                            " weights exceed the limit of " + std::to_string(kMaxWeights));
        auto w = read_doubles(r, out * per, at + " weights");
        auto b = read_doubles(r, out, at + " bias");
        if (projection)
          seq.residual_add(out, win.kernel, win.stride, win.pad, std::move(w), std::move(b));
        else
          seq.conv2d(out, win.kernel, win.stride, win.pad, std::move(w), std::move(b));
        return;
      }
      case Kind::Square: seq.square(); return;
      case Kind::Activation: {
        const double a = read_finite(r, at + " interval"), b = read_finite(r, at + " interval");
        const uint64_t count = r.u64();
        check(count >= 1 && count <= 64, at + ": a polynomial needs 1..64 coefficients");
        std::vector<double> c(count);
        for (auto& x : c) x = read_finite(r, at + " coefficient");
        seq.activation(Polynomial(std::move(c), a, b));
        return;
      }
      case Kind::AvgPool2d: {
        const Window win = read_window(r, at);
        const uint8_t count_pad = r.u8();
        check(count_pad <= 1, at + ": count_include_pad must be 0 or 1");
        seq.avg_pool2d(win.kernel, win.stride, win.pad, count_pad == 1);
        // One encoding per model: Sequential counts the whole window when nothing is padded.
        check(seq.layers().back().count_include_pad == (count_pad == 1),
              at + ": count_include_pad must be 1 without padding");
        return;
      }
      case Kind::GlobalAvgPool: seq.global_avg_pool(); return;
      // No payload: the builders check the pairing and the shapes at the add.
      case Kind::ResidualBegin: seq.residual_begin(); return;
      case Kind::ResidualAdd: seq.residual_add(); return;
      case Kind::Flatten: seq.flatten(); return;
      case Kind::Linear: {
        const uint64_t out = read_bounded(r, 1, kMaxFeatures, at + " features");
        const uint64_t in = seq.output_shape().size();
        check(in <= kMaxWeights / out, at + ": " + std::to_string(out) + " x " + std::to_string(in) +
                                           " weights exceed the limit of " + std::to_string(kMaxWeights));
        auto w = read_doubles(r, out * in, at + " weights");
        auto b = read_doubles(r, out, at + " bias");
        seq.linear(out, std::move(w), std::move(b));
        return;
      }
      case Kind::Affine: {
        const uint64_t count = read_bounded(r, 1, kMaxFeatures, at + " affine count");
        auto scale = read_doubles(r, count, at + " scales");
        auto shift = read_doubles(r, count, at + " shifts");
        seq.affine(std::move(scale), std::move(shift));  // checks the count against the shape
        return;
      }
    }
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Serialization) throw;
    fail(at + ": " + e.what());
  }
  fail(at + ": unknown layer kind " + std::to_string(kind));
}

// The empty model; Sequential's bound on the input's size becomes a Serialization error.
Sequential input_model(uint64_t c, uint64_t h, uint64_t w) {
  try {
    return Sequential(c, h, w);
  } catch (const Error& e) {
    fail(std::string("input shape: ") + e.what());
  }
}

}  // namespace

bool valid_model_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void check_featurizer(const InputFeaturizer& f, size_t input_size) {
  check_featurizer_fields(f, input_size, [](const std::string& why) {
    throw Error(ErrorCode::InvalidArgument, "model featurizer: " + why);
  });
}

Bytes serialize_model(const ModelFile& m) {
  require(valid_model_name(m.name), ErrorCode::InvalidArgument,
          "model name must be 1..64 characters of [A-Za-z0-9._-], got \"" + m.name + "\"");
  require(m.options.batch >= 1, ErrorCode::InvalidArgument, "model file: the batch must be resolved (>= 1)");
  require(m.compiled_on.size() <= kMaxText, ErrorCode::InvalidArgument, "model file: compiled_on is too long");
  require(valid_channel_blocks(m.options.channel_blocks), ErrorCode::InvalidArgument,
          "model file: channel_blocks must be 0 or a power of two <= " + std::to_string(kMaxChannelBlocks));
  require(m.model.open_residuals() == 0, ErrorCode::InvalidArgument,
          "model file: the model has a residual_begin without its residual_add");
  require(writable_affines(m.model), ErrorCode::InvalidArgument,
          "model file: an affine layer has more than " + std::to_string(kMaxFeatures) + " values (a flattened "
          "tensor that wide): the file could not be read back");
  Sink s;
  s.u32(kModelFileVersion);
  s.text(m.name);
  s.text(m.compiled_on);
  s.blob(serialize(m.params));
  s.u8(packing_code(m.options.packing));
  s.u64(m.options.batch);
  s.i32(m.options.level);
  s.f64(m.options.scale);
  s.u64(m.options.channel_blocks);
  s.f64(m.input_min), s.f64(m.input_max);
  s.f64(m.promised_bits), s.f64(m.measured_bits), s.f64(m.dry_run_ms);
  s.u64(m.model.channels()), s.u64(m.model.height()), s.u64(m.model.width());
  s.u32(static_cast<uint32_t>(m.model.layers().size()));
  for (const Layer& l : m.model.layers()) write_layer(s, l);
  s.u8(m.featurizer ? 1 : 0);
  if (m.featurizer) {
    check_featurizer(*m.featurizer, m.model.input_size());
    const InputFeaturizer& f = *m.featurizer;
    s.text(f.name);
    s.u32(f.version);
    s.f64(f.cap);
    s.u32(static_cast<uint32_t>(f.cells.size()));
    for (uint32_t c : f.cells) s.u32(c);
    s.text(f.property);
  }
  return format::seal(format::ObjectType::Model, m.params.fingerprint(), s.out);
}

ModelFile deserialize_model(ByteView blob, const SerializationLimits& limits) {
  uint64_t fingerprint = 0;
  io::Reader r(format::open(blob, format::ObjectType::Model, limits, fingerprint));
  const uint32_t version = r.u32();
  check(version == 2 || version == kModelFileVersion,
        "unsupported model format version " + std::to_string(version) + " (this build reads versions 2 and " +
            std::to_string(kModelFileVersion) + (version < 2 ? "; compile the model again" : "") + ")");
  std::string name = read_text(r, "name");
  check(valid_model_name(name), "invalid model name");
  std::string compiled_on = read_text(r, "compiled_on");
  const uint64_t params_bytes = r.u64();
  check(params_bytes <= r.remaining(), "parameters: truncated");
  Parameters params = deserialize_parameters(r.bytes(params_bytes), limits);
  check(params.fingerprint() == fingerprint, "the parameters do not match the file's fingerprint");
  CompileOptions options;
  const uint8_t packing = r.u8();
  check(packing <= 3, "unknown packing " + std::to_string(packing) + " (0 taps, 1 im2col, 2 spatial, 3 slots)");
  constexpr Packing kPackings[] = {Packing::Taps, Packing::Im2col, Packing::Spatial, Packing::Slots};
  options.packing = kPackings[packing];
  options.batch = read_bounded(r, 1, params.slots(), "batch");
  options.level = static_cast<int32_t>(r.u32());
  check(options.level >= -1 && options.level <= static_cast<int>(params.max_level()), "input level out of range");
  options.scale = r.f64();
  check(std::isfinite(options.scale) && options.scale >= 0, "input scale must be finite and >= 0");
  options.channel_blocks = r.u64();
  check(valid_channel_blocks(options.channel_blocks),
        "channel blocks must be 0 or a power of two <= " + std::to_string(kMaxChannelBlocks) + ", got " +
            std::to_string(options.channel_blocks));
  const double lo = read_finite(r, "input range"), hi = read_finite(r, "input range");
  check(lo <= hi, "input range is empty");
  const double promised = r.f64(), measured = r.f64(), run_ms = r.f64();
  check(!std::isnan(promised) && !std::isnan(measured) && std::isfinite(run_ms) && run_ms >= 0,
        "precision or time fields are not numbers");
  const uint64_t c = read_bounded(r, 1, kMaxFeatures, "input channels");
  const uint64_t h = read_bounded(r, 1, kMaxSide, "input height");
  const uint64_t w = read_bounded(r, 1, kMaxSide, "input width");
  Sequential seq = input_model(c, h, w);
  const uint32_t layers = r.u32();
  check(layers >= 1 && layers <= kMaxLayers, "layer count must be in [1, " + std::to_string(kMaxLayers) + "]");
  for (uint32_t i = 0; i < layers; ++i) read_layer(r, seq, i);
  // A model with an open block cannot run (forward() and the compiler refuse it).
  check(seq.open_residuals() == 0, "the model ends with " + std::to_string(seq.open_residuals()) +
                                       " residual block(s) open (a residual_begin without its residual_add)");
  std::optional<InputFeaturizer> featurizer;
  if (version >= 3) {
    const uint8_t has = r.u8();
    check(has <= 1, "the featurizer flag must be 0 or 1");
    if (has == 1) featurizer = read_featurizer(r, seq.input_size());
  }
  check(r.remaining() == 0, "trailing bytes after the last layer");
  return ModelFile{std::move(name), std::move(seq), std::move(params), options, lo, hi, promised, measured,
                   run_ms, std::move(compiled_on), std::move(featurizer)};
}

void write_model_file(const std::string& path, const ModelFile& m) {
  const Bytes bytes = serialize_model(m);
  // A name of this process's own, so two writers never share a temporary file.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  bool ok = false;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    ok = f.good();
  }
  ok = ok && ::chmod(tmp.c_str(), 0644) == 0 && std::rename(tmp.c_str(), path.c_str()) == 0;
  if (!ok) {
    std::remove(tmp.c_str());
    throw Error(ErrorCode::InvalidArgument, "cannot write " + path);
  }
}

ModelFile read_model_file(const std::string& path, const SerializationLimits& limits) {
  struct stat st {};
  require(::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode), ErrorCode::InvalidArgument,
          "cannot read model file " + path + " (missing, or not a regular file)");
  std::ifstream f(path, std::ios::binary);
  require(f.good(), ErrorCode::InvalidArgument, "cannot read model file " + path);
  f.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(f.tellg());
  require(size <= limits.max_blob_bytes, ErrorCode::Serialization,
          "model file " + path + " is larger than the limit of " + std::to_string(limits.max_blob_bytes) + " bytes");
  f.seekg(0);
  Bytes bytes(size);
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  require(f.good(), ErrorCode::InvalidArgument, "cannot read model file " + path);
  return deserialize_model(bytes, limits);
}

}  // namespace veil::nn
