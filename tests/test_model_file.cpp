// Model files (nn::ModelFile): round trips, and hostile files that must end in
// Error(Serialization) before anything is trusted (checksums recomputed so that
// the payload checks, not the checksum, are what refuses them).
#include <sys/stat.h>

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
  return ModelFile{"sample-1.0", m, small_params(), o, -1, 1, 12, 13.5, 42.0, "cpu backend, 2 threads"};
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
  for (size_t cut = 0; cut < blob.size(); cut += 1 + cut / 7) {
    Bytes t(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(cut));
    expect_refused(t, "cut at " + std::to_string(cut));
  }
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
  auto edit = [&](size_t offset, std::initializer_list<uint8_t> bytes) {
    Bytes b = blob;
    size_t i = offset;
    for (uint8_t v : bytes) b[i++] = v;
    return resealed(b);
  };
  expect_refused(edit(kPayload, {2, 0, 0, 0}), "format version 2");
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
  // The conv weights' count, then a NaN among them.
  const size_t weights_at = first_layer + 1 + 24;
  expect_refused(edit(weights_at, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f}), "2^61 weights announced");
  expect_refused(edit(weights_at + 8, {0, 0, 0, 0, 0, 0, 0xf8, 0x7f}), "a NaN weight");
  // Trailing bytes after the last layer.
  Bytes longer = blob;
  longer.insert(longer.end() - format::kChecksumBytes, uint8_t{0});
  const uint64_t len = longer.size() - format::kHeaderBytes - format::kChecksumBytes;
  for (int i = 0; i < 8; ++i) longer[format::kLengthOffset + i] = static_cast<uint8_t>(len >> (8 * i));
  expect_refused(resealed(longer), "a trailing byte");
}

// A linear layer announcing more weights than any size arithmetic can hold is refused
// before allocation (the overflow the fuzzing issue found in the ONNX importer).
TEST(ModelFile, HugeLinearLayersAreRefusedBeforeAllocation) {
  nn::Sequential m(4, 4);
  m.flatten().linear(2, std::vector<double>(32, 0.5));
  nn::CompileOptions o;
  o.batch = 1;
  const Bytes blob = nn::serialize_model(ModelFile{"lin", m, small_params(), o, 0, 1, 8, 9, 1, ""});
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
