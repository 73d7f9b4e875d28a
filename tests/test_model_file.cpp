// Model files (nn::ModelFile): round trips, and hostile files that must end in
// Error(Serialization) before anything is trusted (checksums recomputed so that
// the payload checks, not the checksum, are what refuses them).
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/serialization_format.hpp"
#include "test_util.hpp"
#include "veil/nn/model_file.hpp"

namespace veil::test {
namespace {

using nn::ModelFile;

Parameters small_params() {
  ParameterSpec spec;
  spec.log_n = 13;
  spec.q_bits = {40, 30, 30, 30, 30};
  spec.p_bits = {40};
  spec.default_scale = std::ldexp(1.0, 30);
  return Parameters::create(spec);
}

// Every layer kind, with weights that are not all alike.
ModelFile sample() {
  nn::Sequential m(6, 6);
  std::vector<double> conv(2 * 9), fc(5 * 8);
  for (size_t i = 0; i < conv.size(); ++i) conv[i] = 0.01 * static_cast<double>(i) - 0.05;
  for (size_t i = 0; i < fc.size(); ++i) fc[i] = std::sin(static_cast<double>(i));
  m.conv2d(2, 3, 1, conv, {0.1, -0.2})
      .square()
      .avg_pool2d(2)
      .flatten()
      .linear(5, fc, {1, 2, 3, 4, 5})
      .activation(nn::Polynomial({0.5, 0.25, -0.125}, -3, 2));
  nn::CompileOptions o;
  o.batch = 4;
  return ModelFile{"sample-1.0", m, small_params(), o, -1, 1, 12, 13.5, 42.0, "cpu backend, 2 threads", {}};
}

// Rewrites the blob's checksum after a payload edit.
Bytes resealed(Bytes blob) {
  format::checksum(ByteView(blob.data(), blob.size() - format::kChecksumBytes),
                   blob.data() + blob.size() - format::kChecksumBytes);
  return blob;
}

void expect_refused(const Bytes& blob, const std::string& what) {
  try {
    nn::deserialize_model(blob);
    ADD_FAILURE() << what << ": loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Serialization) << what << ": " << e.what();
  }
}

// Every prefix of the blob, at cuts `step` apart or more (growing with the offset), is refused.
void expect_every_cut_refused(const Bytes& blob, size_t step = 5) {
  for (size_t cut = 0; cut < blob.size(); cut += 1 + cut / step)
    expect_refused(Bytes(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(cut)), "cut at " + std::to_string(cut));
}

// The blob with `bytes` written at `offset`, checksum recomputed.
Bytes edited(const Bytes& blob, size_t offset, const Bytes& bytes) {
  Bytes b = blob;
  std::copy(bytes.begin(), bytes.end(), b.begin() + static_cast<std::ptrdiff_t>(offset));
  return resealed(b);
}

// Refused as Serialization, with `text` in the message.
void expect_refused_with(const Bytes& b, const std::string& text) {
  EXPECT_EQ(error_code_of([&] { nn::deserialize_model(b); }, text), ErrorCode::Serialization) << text;
}

TEST(ModelFile, RoundTripsEveryField) {
  const ModelFile m = sample();
  const Bytes blob = nn::serialize_model(m);
  const ModelFile back = nn::deserialize_model(blob);
  EXPECT_EQ(back.name, m.name);
  EXPECT_EQ(back.compiled_on, m.compiled_on);
  EXPECT_EQ(back.params.fingerprint(), m.params.fingerprint());
  EXPECT_EQ(back.options.batch, 4u);
  EXPECT_EQ(back.options.packing, m.options.packing);
  EXPECT_EQ(back.input_min, -1);
  EXPECT_EQ(back.measured_bits, 13.5);
  EXPECT_EQ(back.dry_run_ms, 42.0);
  ASSERT_EQ(back.model.layers().size(), m.model.layers().size());
  for (size_t i = 0; i < m.model.layers().size(); ++i) {
    EXPECT_EQ(back.model.layers()[i].describe(), m.model.layers()[i].describe());
    EXPECT_EQ(back.model.layers()[i].weight, m.model.layers()[i].weight);
    EXPECT_EQ(back.model.layers()[i].bias, m.model.layers()[i].bias);
  }
  EXPECT_EQ(back.model.forward(std::vector<double>(36, 0.3)), m.model.forward(std::vector<double>(36, 0.3)));
  EXPECT_EQ(nn::serialize_model(back), blob);  // one encoding per model
}

TEST(ModelFile, FilesAreWrittenWholeAndReadBack) {
  const auto dir = std::filesystem::temp_directory_path() / ("veil-model-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.veil").string();
  nn::write_model_file(path, sample());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
  EXPECT_THROW(nn::read_model_file(dir.string()), Error);  // a directory is no model file
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(nn::read_model_file(path).name, "sample-1.0");
  EXPECT_THROW(nn::read_model_file((dir / "missing.veil").string()), Error);
  std::filesystem::remove_all(dir);
}

TEST(ModelFile, NamesAreUrlSafe) {
  EXPECT_TRUE(nn::valid_model_name("digits_v2.1-b"));
  for (const char* bad : {"", ".hidden", "a/b", "a b", "x?y", "..", "%2e"}) EXPECT_FALSE(nn::valid_model_name(bad)) << bad;
  EXPECT_FALSE(nn::valid_model_name(std::string(65, 'a')));
  ModelFile m = sample();
  m.name = "../etc";
  EXPECT_THROW(nn::serialize_model(m), Error);
}

TEST(ModelFile, TruncatedAndCorruptedFilesAreRefused) {
  const Bytes blob = nn::serialize_model(sample());
  expect_every_cut_refused(blob, 7);
  Bytes flipped = blob;
  flipped[blob.size() / 2] ^= 0x10;
  expect_refused(flipped, "one flipped bit");
  // Another object type is not a model, and a model is not a ciphertext.
  expect_refused(serialize(small_params()), "a parameters blob");
  auto ctx = Context::create(small_params(), BackendKind::Cpu);
  EXPECT_THROW(deserialize_ciphertext(ctx, blob), Error);
}

// Payload offsets of the sample (docs/models.md): version at 0, then the name.
constexpr size_t kPayload = format::kHeaderBytes;

TEST(ModelFile, HostilePayloadFieldsAreRefused) {
  const Bytes blob = nn::serialize_model(sample());
  auto edit = [&](size_t offset, const Bytes& bytes) { return edited(blob, offset, bytes); };
  expect_refused(edit(kPayload, {4, 0, 0, 0}), "format version 4");
  expect_refused(edit(kPayload, {2, 0, 0, 0}), "version 2 with version 3's featurizer flag: a trailing byte");
  expect_refused(edit(kPayload + 4, {0xff, 0xff, 0xff, 0x7f}), "a name of 2 GiB");
  expect_refused(edit(kPayload + 4 + 4, {'/'}), "a name with a slash");
  // The layer table sits at the end: find the layer count (6) after the input shape (6 x 6).
  const ModelFile m = sample();
  Bytes shape_and_count(8 + 8 + 4, 0);
  shape_and_count[0] = 6, shape_and_count[8] = 6, shape_and_count[16] = 6;
  auto at = std::search(blob.begin(), blob.end(), shape_and_count.begin(), shape_and_count.end());
  ASSERT_NE(at, blob.end());
  const size_t count_at = static_cast<size_t>(at - blob.begin()) + 16, first_layer = count_at + 4;
  expect_refused(edit(count_at, {0, 0, 0, 0}), "no layers");
  expect_refused(edit(count_at, {0xff, 0xff, 0, 0}), "65535 layers");
  expect_refused(edit(count_at, {7}), "one layer more than stored");
  expect_refused(edit(count_at - 16, {0, 0x10}), "a 4096 x 6 image whose conv no longer fits the plan's shapes");
  expect_refused(edit(first_layer, {99}), "an unknown layer kind");
  expect_refused(edit(first_layer + 1, {0, 0, 0, 0, 0, 0, 0, 0x80}), "2^63 conv channels");
  expect_refused(edit(first_layer + 1 + 8, {0xff}), "a 255 x 255 kernel");
  expect_refused(edit(first_layer + 1 + 24, {3}), "a pad as large as the kernel");
  // The conv weights' count (after channels, kernel, stride and 4 pads), then a NaN among them.
  const size_t weights_at = first_layer + 1 + 56;
  expect_refused(edit(weights_at, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f}), "2^61 weights announced");
  expect_refused(edit(weights_at + 8, {0, 0, 0, 0, 0, 0, 0xf8, 0x7f}), "a NaN weight");
  // Trailing bytes after the last layer.
  Bytes longer = blob;
  longer.insert(longer.end() - format::kChecksumBytes, uint8_t{0});
  const uint64_t len = longer.size() - format::kHeaderBytes - format::kChecksumBytes;
  for (int i = 0; i < 8; ++i) longer[format::kLengthOffset + i] = static_cast<uint8_t>(len >> (8 * i));
  expect_refused(resealed(longer), "a trailing byte");
}

// ---- format version 2: multi-channel inputs, padding, pooling options, packings ----

std::vector<double> ramp(size_t n, double step, double offset) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(step * static_cast<double>(i)) + offset;
  return v;
}

// 3 x 9 x 8 input, every new layer: a padded strided conv, a padded conv over 4
// channels, pools with padding (both count_include_pad values) and stride != kernel,
// the global pool; spatial packing with 4 channels per ciphertext.
ModelFile every_layer() {
  nn::Sequential m(3, 9, 8);
  m.conv2d(4, 3, 2, nn::Padding{1, 0, 1, 1}, ramp(4 * 3 * 9, 0.7, 0), ramp(4, 1.1, 0.1))  // 4 x 5 x 4
      .square()
      .conv2d(2, 3, 1, nn::Padding{1, 0, 0, 1}, ramp(2 * 4 * 9, 0.3, -0.1), ramp(2, 0.9, 0))  // 2 x 4 x 3
      .avg_pool2d(2, 1, nn::Padding{1, 1, 0, 0}, false)                                     // 2 x 4 x 3
      .avg_pool2d(2, 3, nn::Padding::same(1), true)                                         // 2 x 2 x 2
      .global_avg_pool()                                                                    // 2 x 1 x 1
      .flatten()
      .linear(3, ramp(6, 0.5, 0), {0.1, 0.2, 0.3});
  nn::CompileOptions o;
  o.packing = nn::Packing::Spatial;
  o.channel_blocks = 4;
  o.batch = 8;
  return ModelFile{"every-layer", m, small_params(), o, -1, 1, 10, 11.5, 7.0, "cpu", {}};
}

Bytes u64_bytes(std::initializer_list<uint64_t> values) {
  Bytes b;
  for (uint64_t v : values)
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  return b;
}

// Where `pattern` starts in `blob` (it must occur exactly once).
size_t find_once(const Bytes& blob, const Bytes& pattern) {
  const auto at = std::search(blob.begin(), blob.end(), pattern.begin(), pattern.end());
  EXPECT_NE(at, blob.end());
  EXPECT_EQ(std::search(at + 1, blob.end(), pattern.begin(), pattern.end()), blob.end());
  return static_cast<size_t>(at - blob.begin());
}

TEST(ModelFile, EveryLayerRoundTripsToTheSameBytesAndOutputs) {
  const ModelFile m = every_layer();
  const Bytes blob = nn::serialize_model(m);
  const ModelFile back = nn::deserialize_model(blob);
  EXPECT_EQ(nn::serialize_model(back), blob);
  EXPECT_EQ(back.options.packing, nn::Packing::Spatial);
  EXPECT_EQ(back.options.channel_blocks, 4u);
  EXPECT_EQ(back.model.channels(), 3u);
  EXPECT_EQ(back.model.height(), 9u);
  EXPECT_EQ(back.model.width(), 8u);
  const auto &want = m.model.layers(), &got = back.model.layers();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].kind, want[i].kind) << i;
    EXPECT_EQ(got[i].describe(), want[i].describe()) << i;
    EXPECT_EQ(got[i].in, want[i].in) << i;
    EXPECT_EQ(got[i].kernel, want[i].kernel) << i;
    EXPECT_EQ(got[i].stride, want[i].stride) << i;
    EXPECT_EQ(got[i].pad, want[i].pad) << i;
    EXPECT_EQ(got[i].count_include_pad, want[i].count_include_pad) << i;
    EXPECT_EQ(got[i].weight, want[i].weight) << i;
    EXPECT_EQ(got[i].bias, want[i].bias) << i;
  }
  EXPECT_EQ(got[0].in, 3u);
  EXPECT_FALSE(got[3].count_include_pad);
  EXPECT_EQ(got[5].kind, nn::LayerKind::GlobalAvgPool);
  for (double x : {0.25, -0.5}) {
    std::vector<double> input = ramp(m.model.input_size(), 0.11, x);
    EXPECT_EQ(back.model.forward(input), m.model.forward(input));
  }
}

TEST(ModelFile, EveryPackingAndChannelBlocksRoundTrip) {
  for (nn::Packing p : {nn::Packing::Taps, nn::Packing::Im2col, nn::Packing::Spatial, nn::Packing::Slots})
    for (size_t g : {size_t{0}, size_t{1}, size_t{64}, size_t{1} << 16}) {
      ModelFile m = every_layer();
      m.options.packing = p;
      m.options.channel_blocks = g;
      const Bytes blob = nn::serialize_model(m);
      const ModelFile back = nn::deserialize_model(blob);
      EXPECT_EQ(back.options.packing, p);
      EXPECT_EQ(back.options.channel_blocks, g);
      EXPECT_EQ(nn::serialize_model(back), blob);
    }
  // A file this build could not read again is not written.
  for (size_t g : {size_t{3}, size_t{1} << 17}) {
    ModelFile m = every_layer();
    m.options.channel_blocks = g;
    EXPECT_EQ(error_code_of([&] { nn::serialize_model(m); }, "channel_blocks"), ErrorCode::InvalidArgument) << g;
  }
}

TEST(ModelFile, PackingNames) {
  for (nn::Packing p : {nn::Packing::Taps, nn::Packing::Im2col, nn::Packing::Spatial, nn::Packing::Slots})
    EXPECT_EQ(nn::parse_packing(nn::packing_name(p)), p);
  EXPECT_EQ(nn::packing_name(nn::Packing::Spatial), "spatial");
  // The message names the valid values.
  EXPECT_EQ(error_code_of([] { nn::parse_packing("Taps"); }, "slots"), ErrorCode::InvalidArgument);
  EXPECT_VEIL_ERROR(nn::parse_packing(""), ErrorCode::InvalidArgument);
}

TEST(ModelFile, HostileVersionTwoFieldsAreRefused) {
  const Bytes blob = nn::serialize_model(every_layer());
  expect_every_cut_refused(blob);
  auto edit = [&](size_t offset, const Bytes& bytes) { return edited(blob, offset, bytes); };
  // Version 1 (the single-channel layout) names both versions.
  expect_refused_with(edit(kPayload, {1, 0, 0, 0}), "unsupported model format version 1 (this build reads versions 2 and 3");

  // The input shape (3 x 9 x 8) and the layer count (8); before it the five f64 fields,
  // channel blocks (4), input scale, level, batch and the packing byte.
  Bytes shape = u64_bytes({3, 9, 8});
  shape.insert(shape.end(), {8, 0, 0, 0});
  const size_t shape_at = find_once(blob, shape), blocks_at = shape_at - 40 - 8, packing_at = blocks_at - 8 - 4 - 8 - 1;
  ASSERT_EQ(blob[packing_at], 2);  // spatial
  ASSERT_EQ(blob[blocks_at], 4);
  expect_refused_with(edit(packing_at, {4}), "unknown packing 4");
  expect_refused_with(edit(blocks_at, {3}), "channel blocks must be 0 or a power of two");
  expect_refused_with(edit(blocks_at, u64_bytes({1 << 17})), "channel blocks");
  expect_refused_with(edit(shape_at, u64_bytes({0})), "input channels");
  expect_refused_with(edit(shape_at, u64_bytes({(1 << 20) + 1})), "input channels");
  expect_refused_with(edit(shape_at, u64_bytes({1 << 20, 4096})), "input shape");  // over 2^28 values
  expect_refused_with(edit(shape_at, u64_bytes({2})), "layer 0 weights");         // 2 channels: fewer weights
  const size_t first_layer = shape_at + 28;
  ASSERT_EQ(blob[first_layer], 1);
  expect_refused_with(edit(first_layer + 1 + 8 + 8 + 8 + 16, u64_bytes({3})), "layer 0 pad");  // bottom = kernel
  expect_refused_with(edit(first_layer + 1 + 8 + 8, u64_bytes({0})), "layer 0 stride");

  // The first pool: kind 4, kernel 2, stride 1, pads 1, 1, 0, 0, count_include_pad 0.
  Bytes pool = {4};
  const Bytes window = u64_bytes({2, 1, 1, 1, 0, 0});
  pool.insert(pool.end(), window.begin(), window.end());
  pool.push_back(0);
  const size_t pool_at = find_once(blob, pool), count_at = pool_at + 1 + 48;
  expect_refused_with(edit(count_at, {2}), "count_include_pad must be 0 or 1");
  // Without its padding, excluding the padding would be a second encoding of the same pool.
  expect_refused_with(edit(pool_at + 1 + 16, u64_bytes({0, 0})), "count_include_pad must be 1 without padding");
  expect_refused_with(edit(pool_at + 1, u64_bytes({65})), "layer 3 kernel");
  expect_refused_with(edit(pool_at + 1, u64_bytes({9})), "layer 3");  // larger than the padded 4 x 3 input
  // Global pool (kind 7) where the flatten was: a global pool of the flat tensor is
  // refused by Sequential; an unknown kind 12 (8, 9 and 11 are the residual blocks', 10 affine).
  const size_t global_at = pool_at + 1 + 48 + 1 + 1 + 48 + 1;
  ASSERT_EQ(blob[global_at], 7);
  ASSERT_EQ(blob[global_at + 1], 5);
  Bytes twice = blob;
  twice[global_at + 1] = 7;  // global pool twice, then a linear on a spatial tensor
  expect_refused(resealed(twice), "linear after two global pools");
  expect_refused_with(edit(global_at, {12}), "unknown layer kind 12");
}

// ---- residual blocks (kinds 8 and 9, no payload) ----

// 2 x 6 x 6: conv, square, then an outer block [conv, inner block [square], conv]
// (layers 2..8), a pool and a linear.
ModelFile residual() {
  nn::Sequential m(2, 6, 6);
  const nn::Padding same = nn::Padding::same(1);
  m.conv2d(2, 3, 1, same, ramp(2 * 2 * 9, 0.7, 0), ramp(2, 1.1, 0.1))  // 0
      .square()                                                      // 1
      .residual_begin()                                              // 2
      .conv2d(2, 3, 1, same, ramp(2 * 2 * 9, 0.3, -0.1), {0.05, -0.05})
      .residual_begin()                                              // 4
      .square()                                                      // 5
      .residual_add()                                                // 6
      .conv2d(2, 3, 1, same, ramp(2 * 2 * 9, 0.9, 0), {0.1, 0.2})    // 7
      .residual_add()                                                // 8
      .avg_pool2d(2)
      .flatten()
      .linear(3, ramp(3 * 18, 0.5, 0), {0.1, 0.2, 0.3});
  nn::CompileOptions o;
  o.packing = nn::Packing::Spatial;
  o.batch = 8;
  return ModelFile{"residual", m, small_params(), o, 0, 1, 10, 11.5, 7.0, "cpu", {}};
}

TEST(ModelFile, ResidualBlocksRoundTripToTheSameBytesAndOutputs) {
  const ModelFile m = residual();
  const Bytes blob = nn::serialize_model(m);
  const ModelFile back = nn::deserialize_model(blob);
  EXPECT_EQ(nn::serialize_model(back), blob);
  const auto &want = m.model.layers(), &got = back.model.layers();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].kind, want[i].kind) << i;
    EXPECT_EQ(got[i].describe(), want[i].describe()) << i;
    EXPECT_EQ(got[i].weight, want[i].weight) << i;
  }
  EXPECT_EQ(got[2].kind, nn::LayerKind::ResidualBegin);
  EXPECT_EQ(got[6].kind, nn::LayerKind::ResidualAdd);
  EXPECT_EQ(back.model.open_residuals(), 0u);
  for (double x : {0.25, -0.5}) {
    const std::vector<double> input = ramp(m.model.input_size(), 0.11, x);
    EXPECT_EQ(back.model.forward(input), m.model.forward(input));
  }
  // A model with an open block is not written (it could not be read back).
  ModelFile open = residual();
  open.model.residual_begin();
  EXPECT_EQ(error_code_of([&] { nn::serialize_model(open); }, "residual_begin without its residual_add"),
            ErrorCode::InvalidArgument);
}

TEST(ModelFile, HostileResidualBlocksAreRefused) {
  const Bytes blob = nn::serialize_model(residual());
  expect_every_cut_refused(blob);
  auto edit = [&](size_t offset, uint8_t kind) { return edited(blob, offset, {kind}); };
  // The inner block: begin (8), square (2), add (9), then the conv (kind 1, 2 channels).
  const size_t inner = find_once(blob, {8, 2, 9, 1, 2, 0, 0, 0, 0, 0, 0, 0});
  ASSERT_NO_THROW(nn::deserialize_model(resealed(blob)));
  // Its begin made a square: the inner add closes the outer block, the outer add has none.
  expect_refused_with(edit(inner, 2), "layer 8: residual_add without a residual_begin");
  // Its add made a square: the outer add closes the inner block, the outer one stays open.
  expect_refused_with(edit(inner + 2, 2), "the model ends with 1 residual block(s) open");
  // A global pool inside the block: 2 x 1 x 1 added to 2 x 6 x 6.
  expect_refused_with(edit(inner + 1, 7), "layer 6: residual_add");
  expect_refused_with(edit(inner + 1, 7), "the shapes must match");
  // Every layer's kind byte turned into a begin or an add, one at a time: either a
  // model that re-serializes identically and runs, or a Serialization error.
  const size_t outer = find_once(blob, {2, 8, 1, 2, 0, 0, 0, 0, 0, 0, 0});   // square, begin, conv(2)
  const size_t outer_add = find_once(blob, {9, 4, 2, 0, 0, 0, 0, 0, 0, 0});  // add, avg_pool2d(2)
  const size_t last = find_once(blob, {5, 6, 3, 0, 0, 0, 0, 0, 0, 0});       // flatten, linear(3)
  const std::vector<size_t> kind_at = {outer,     outer + 1, outer + 2, inner,    inner + 1,
                                       inner + 2, inner + 3, outer_add, last,     last + 1};
  for (size_t at : kind_at)
    for (uint8_t kind : {uint8_t{8}, uint8_t{9}}) {
      const Bytes b = edit(at, kind);
      try {
        const ModelFile m = nn::deserialize_model(b);
        EXPECT_EQ(nn::serialize_model(m), b) << at;
        EXPECT_NO_THROW(m.model.forward(std::vector<double>(m.model.input_size(), 0.5))) << at;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Serialization) << at << ": " << e.what();
      }
    }
}

// A projection shortcut (kind 11: the conv's payload, its input channels the skip's).
TEST(ModelFile, ProjectionShortcutsRoundTripAndHostileOnesAreRefused) {
  nn::Sequential m(2, 6, 6);
  m.conv2d(3, 3, 1, nn::Padding::same(1), ramp(3 * 2 * 9, 0.4, 0), ramp(3, 0.3, 0.1))  // 0
      .square()                                                                     // 1
      .residual_begin()                                                             // 2
      .conv2d(4, 3, 2, nn::Padding::same(1), ramp(4 * 3 * 9, 0.2, -0.1))            // 3
      .square()                                                                     // 4
      .residual_add(4, 1, 2, nn::Padding{}, ramp(4 * 3, 0.5, -0.2), ramp(4, 0.1, 0))  // 5
      .flatten()
      .linear(2, ramp(2 * 36, 0.05, 0));
  nn::CompileOptions o;
  o.packing = nn::Packing::Spatial;
  o.batch = 4;
  const ModelFile file{"projection", m, small_params(), o, 0, 1, 10, 11.5, 7.0, "cpu"};
  const Bytes blob = nn::serialize_model(file);
  const ModelFile back = nn::deserialize_model(blob);
  EXPECT_EQ(nn::serialize_model(back), blob);
  ASSERT_TRUE(back.model.layers()[5].projects());
  EXPECT_EQ(back.model.layers()[5].describe(), m.layers()[5].describe());
  EXPECT_EQ(back.model.layers()[5].weight, m.layers()[5].weight);
  const std::vector<double> input = ramp(m.input_size(), 0.01, -0.3);
  EXPECT_EQ(back.model.forward(input), m.forward(input));
  expect_every_cut_refused(blob);
  // kind 11, 4 channels, kernel 1, stride 2, no pads
  Bytes head = {11};
  const Bytes fields = u64_bytes({4, 1, 2, 0, 0, 0, 0});
  head.insert(head.end(), fields.begin(), fields.end());
  const size_t at = find_once(blob, head);
  auto edit = [&](size_t offset, const Bytes& bytes) { return edited(blob, offset, bytes); };
  expect_refused_with(edit(at + 1, u64_bytes({3})), "layer 5");  // 3 channels against the branch's 4
  expect_refused_with(edit(at + 1 + 16, u64_bytes({1})), "the shapes must match");  // stride 1: 6x6
  // The begin made a square: the projection has no block to close.
  const size_t begin_at = find_once(blob, {2, 8, 1, 4, 0, 0, 0, 0, 0, 0, 0});  // square, begin, conv(4)
  expect_refused_with(edit(begin_at + 1, {2}), "a projection without a residual_begin");
}

// Blocks nest at most 64 deep (Sequential's bound), named by the layer that exceeds it.
TEST(ModelFile, ResidualNestingIsBounded) {
  nn::Sequential m(2, 2);
  for (int i = 0; i < 70; ++i) m.square();
  nn::CompileOptions o;
  o.batch = 1;
  const Bytes blob = nn::serialize_model(ModelFile{"deep", m, small_params(), o, 0, 1, 8, 9, 1, "", {}});
  Bytes squares(70, 2);
  const size_t first = find_once(blob, squares);
  Bytes b = blob;
  for (size_t i = 0; i < 70; ++i) b[first + i] = 8;
  EXPECT_EQ(error_code_of([&] { nn::deserialize_model(resealed(b)); }, "layer 64"), ErrorCode::Serialization);
  // 35 begins, then 35 adds: nested blocks of nothing, which load and run.
  for (size_t i = 35; i < 70; ++i) b[first + i] = 9;
  const ModelFile nested = nn::deserialize_model(resealed(b));
  EXPECT_EQ(nested.model.forward({1, 2, 3, 4}), (std::vector<double>{36, 72, 108, 144}));  // x + 35 x
}

// ---- affine layers (kind 10: count, scales, shifts) ----

// 2 x 6 x 6: an affine on the input, a conv, a pool, an affine after it (per channel),
// then one on the flat tensor (per feature) before the linear layer.
ModelFile affine() {
  nn::Sequential m(2, 6, 6);
  m.affine({0.5, -2}, {0.25, 1})                                                   // 0: per channel, the input
      .conv2d(3, 3, 1, nn::Padding::same(1), ramp(3 * 2 * 9, 0.4, 0), ramp(3, 0.8, 0))
      .avg_pool2d(2)                                                               // 3 x 3 x 3
      .affine({1.5, -0.75, 3}, {-0.5, 0, 0.125})                                   // 3: per channel, after a pool
      .square()
      .flatten()
      .affine(ramp(27, 0.9, 1), ramp(27, 0.3, -0.2))                               // 6: per feature
      .linear(2, ramp(2 * 27, 0.6, 0), {0.1, -0.1});
  nn::CompileOptions o;
  o.packing = nn::Packing::Spatial;
  o.batch = 4;
  return ModelFile{"affine", m, small_params(), o, -1, 1, 10, 11, 3.0, "cpu", {}};
}

TEST(ModelFile, AffineLayersRoundTripToTheSameBytesAndOutputs) {
  const ModelFile m = affine();
  const Bytes blob = nn::serialize_model(m);
  const ModelFile back = nn::deserialize_model(blob);
  EXPECT_EQ(nn::serialize_model(back), blob);
  const auto &want = m.model.layers(), &got = back.model.layers();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].kind, want[i].kind) << i;
    EXPECT_EQ(got[i].describe(), want[i].describe()) << i;
    EXPECT_EQ(got[i].weight, want[i].weight) << i;
    EXPECT_EQ(got[i].bias, want[i].bias) << i;
  }
  for (size_t i : {0u, 3u, 6u}) EXPECT_EQ(got[i].kind, nn::LayerKind::Affine) << i;
  EXPECT_EQ(got[0].weight, (std::vector<double>{0.5, -2}));
  EXPECT_EQ(got[3].bias, (std::vector<double>{-0.5, 0, 0.125}));
  EXPECT_EQ(got[6].weight.size(), 27u);
  for (double x : {0.25, -0.5}) {
    const std::vector<double> input = ramp(m.model.input_size(), 0.17, x);
    EXPECT_EQ(back.model.forward(input), m.model.forward(input));
  }
}

TEST(ModelFile, HostileAffineLayersAreRefused) {
  const Bytes blob = nn::serialize_model(affine());
  expect_every_cut_refused(blob);
  auto edit = [&](size_t offset, const Bytes& bytes) { return edited(blob, offset, bytes); };
  // The first layer: kind 10, count 2, then the scales (count 2, 0.5, -2) and the shifts.
  Bytes first = {10};
  const Bytes fields = u64_bytes({2, 2, std::bit_cast<uint64_t>(0.5), std::bit_cast<uint64_t>(-2.0), 2});
  first.insert(first.end(), fields.begin(), fields.end());
  const size_t at = find_once(blob, first), scales_at = at + 1 + 8;
  // Counts: none, beyond the feature bound, 2^63, a count its stored values do not match.
  expect_refused_with(edit(at + 1, u64_bytes({0})), "layer 0 affine count must be in [1, 1048576]");
  expect_refused_with(edit(at + 1, u64_bytes({(1 << 20) + 1})), "layer 0 affine count");
  expect_refused_with(edit(at + 1, u64_bytes({uint64_t{1} << 63})), "layer 0 affine count");
  expect_refused_with(edit(at + 1, u64_bytes({3})), "layer 0 scales: 2 values stored, the layer needs 3");
  expect_refused_with(edit(scales_at, u64_bytes({uint64_t{1} << 61})), "layer 0 scales");
  // Non-finite scales and shifts.
  expect_refused_with(edit(scales_at + 8, u64_bytes({std::bit_cast<uint64_t>(std::nan(""))})),
               "layer 0 scales must be finite");
  expect_refused_with(edit(scales_at + 8 + 16 + 8, u64_bytes({std::bit_cast<uint64_t>(-HUGE_VAL)})),
               "layer 0 shifts must be finite");
  // The input made 3 channels (the count 2 no longer matches): Sequential's check, named.
  Bytes shape = u64_bytes({2, 6, 6});
  shape.insert(shape.end(), {8, 0, 0, 0});
  const size_t shape_at = find_once(blob, shape);
  expect_refused_with(edit(shape_at, u64_bytes({3})), "layer 0: ");
  expect_refused_with(edit(shape_at, u64_bytes({3})), "affine needs 3 scales and shifts (one per channel), got 2 and 2");
  // The flat affine (27 features) read as one per channel would need 3.
  Bytes flat = {10};
  const Bytes flat_count = u64_bytes({27, 27});
  flat.insert(flat.end(), flat_count.begin(), flat_count.end());
  const size_t flat_at = find_once(blob, flat);
  ASSERT_EQ(blob[flat_at - 1], 5);  // after the flatten
  expect_refused_with(edit(flat_at - 1, {2}), "layer 6: affine needs 3");  // a square instead: 27 values for 3 channels
  // A model whose flat affine is wider than the reader's bound is not written.
  nn::Sequential wide(2, 1024, 513);  // 2^20 + 1024 features once flat
  wide.flatten().affine(std::vector<double>(wide.input_size(), 1.0), std::vector<double>(wide.input_size(), 0.0));
  nn::CompileOptions o;
  o.batch = 1;
  EXPECT_EQ(error_code_of([&] { nn::serialize_model(ModelFile{"wide", wide, small_params(), o, 0, 1, 8, 9, 1, "", {}}); },
                          "affine layer has more than 1048576 values"),
            ErrorCode::InvalidArgument);
}

// A linear layer announcing more weights than any size arithmetic can hold is refused
// before allocation (the overflow the fuzzing issue found in the ONNX importer).
TEST(ModelFile, HugeLinearLayersAreRefusedBeforeAllocation) {
  nn::Sequential m(4, 4);
  m.flatten().linear(2, std::vector<double>(32, 0.5));
  nn::CompileOptions o;
  o.batch = 1;
  const Bytes blob = nn::serialize_model(ModelFile{"lin", m, small_params(), o, 0, 1, 8, 9, 1, "", {}});
  // The linear layer: kind 6, u64 out features, then the weight count.
  const uint8_t pattern[] = {6, 2, 0, 0, 0, 0, 0, 0, 0};
  auto at = std::search(blob.begin(), blob.end(), std::begin(pattern), std::end(pattern));
  ASSERT_NE(at, blob.end());
  Bytes b = blob;
  const size_t out_at = static_cast<size_t>(at - blob.begin()) + 1;
  b[out_at + 2] = 0x10;  // 2^20 + 2 features: 2^24 + 32 weights announced, 32 stored
  expect_refused(resealed(b), "2^20 output features with 32 weights stored");
  b = blob;
  b[out_at + 7] = 0x01;  // 2^56 + 2 features: beyond the feature bound
  expect_refused(resealed(b), "2^56 output features");
}

}  // namespace
}  // namespace veil::test
