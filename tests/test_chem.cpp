// Molecule inputs: RDKit's Morgan count fingerprint from C++ equals Python's
// (tests/data/molecules/featurizer_cases.txt, written by tools/molecules/featurizer.py
// with python3-rdkit), the featurizer's image (and the Python featurizer's golden images
// of known molecules, tests/data/molecules/golden_images.txt, bit for bit), and the model
// file's featurizer record (round trip, hostile fields, version-2 files without one).
#include <bit>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <sstream>

#include "test_util.hpp"
#include "veil/nn/model_file.hpp"
#ifdef VEIL_TEST_RDKIT
#include <nlohmann/json.hpp>

#include "veil/chem/featurizer.hpp"
#endif

namespace veil::test {
namespace {

namespace fs = std::filesystem;
const std::string kMolecules = (fs::path(__FILE__).parent_path() / "data" / "molecules").string();

// A 1x32x32 model (flatten, linear 1024 -> 1) and a featurizer with a shuffled layout.
nn::ModelFile molecule_model(std::optional<nn::InputFeaturizer> f) {
  nn::Sequential m(1, 32, 32);
  m.flatten().linear(1, random_reals(1024, 801, -0.1, 0.1), {0.5});
  nn::CompileOptions o;
  o.batch = 4;
  return nn::ModelFile{"mol", m, Parameters::preset(13), o, 0, 1, 10, 11, 1, "test", std::move(f)};
}

nn::InputFeaturizer shuffled_featurizer() {
  nn::InputFeaturizer f;
  f.name = "morgan-count-feat-r3-1024";
  f.version = 1;
  f.cap = 8;
  f.cells.resize(1024);
  std::iota(f.cells.begin(), f.cells.end(), 0u);
  std::mt19937 rng(802);
  std::shuffle(f.cells.begin(), f.cells.end(), rng);
  f.property = "SA score";
  return f;
}

TEST(ModelFileFeaturizer, RoundTripsAndVersionTwoFilesStillLoad) {
  const nn::ModelFile m = molecule_model(shuffled_featurizer());
  const Bytes blob = nn::serialize_model(m);
  const nn::ModelFile back = nn::deserialize_model(blob);
  ASSERT_TRUE(back.featurizer.has_value());
  EXPECT_EQ(*back.featurizer, *m.featurizer);
  EXPECT_EQ(nn::serialize_model(back), blob);
  const nn::ModelFile plain = nn::deserialize_model(nn::serialize_model(molecule_model(std::nullopt)));
  EXPECT_FALSE(plain.featurizer.has_value());
}

TEST(ModelFileFeaturizer, BadFeaturizersAreRefusedOnWriteAndRead) {
  auto refused = [](const std::function<void(nn::InputFeaturizer&)>& edit, const std::string& what) {
    nn::InputFeaturizer f = shuffled_featurizer();
    edit(f);
    EXPECT_EQ(error_code_of([&] { nn::serialize_model(molecule_model(f)); }, what), ErrorCode::InvalidArgument);
    EXPECT_EQ(error_code_of([&] { nn::check_featurizer(f, 1024); }, what), ErrorCode::InvalidArgument);
  };
  refused([](auto& f) { f.cells[5] = 1024; }, "outside the 1024-value input");
  refused([](auto& f) { f.cells[5] = f.cells[6]; }, "two featurizer bins share cell");
  refused([](auto& f) { f.cap = std::nan(""); }, "cap must be finite and > 0");
  refused([](auto& f) { f.cap = 0; }, "cap must be finite and > 0");
  refused([](auto& f) { f.version = 0; }, "version must be >= 1");
  refused([](auto& f) { f.name = "morgan count"; }, "featurizer name");
  refused([](auto& f) { f.cells.clear(); }, "1..2^20 bins");
  refused([](auto& f) { f.property.assign(300, 'x'); }, "over 256 bytes");
  // Every truncation of a file with a featurizer is a Serialization error.
  const Bytes blob = nn::serialize_model(molecule_model(shuffled_featurizer()));
  for (size_t cut : {blob.size() - 1, blob.size() - 20, blob.size() - 2000, blob.size() - 4200})
    EXPECT_VEIL_ERROR(nn::deserialize_model(ByteView(blob.data(), cut)), ErrorCode::Serialization) << cut;
}

#ifdef VEIL_TEST_RDKIT

// featurizer_cases.txt: SMILES <TAB> bin:count ... (or "invalid"), from Python's RDKit.
TEST(ChemFeaturizer, MorganCountsEqualPythonRdkit) {
  std::ifstream in(kMolecules + "/featurizer_cases.txt");
  ASSERT_TRUE(in.good()) << kMolecules;
  size_t valid = 0, invalid = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    const std::string smiles = line.substr(0, tab), rest = line.substr(tab + 1);
    if (rest == "invalid") {
      EXPECT_EQ(error_code_of([&] { chem::morgan_counts(smiles); }, "'" + smiles + "'"), ErrorCode::InvalidArgument);
      ++invalid;
      continue;
    }
    std::vector<uint32_t> want(chem::kMorganBins, 0);
    std::istringstream pairs(rest);
    for (std::string p; pairs >> p;) want.at(std::stoul(p.substr(0, p.find(':')))) = std::stoul(p.substr(p.find(':') + 1));
    EXPECT_EQ(chem::morgan_counts(smiles), want) << smiles;
    ++valid;
  }
  EXPECT_GE(valid, 30u);
  EXPECT_GE(invalid, 3u);
}

TEST(ChemFeaturizer, ImageHoldsCappedCountsAtTheCells) {
  const nn::InputFeaturizer f = shuffled_featurizer();
  const std::string smiles = "CC(=O)Oc1ccccc1C(=O)O";  // aspirin: bin 4 counts 6, bin 2 counts 3
  const auto counts = chem::morgan_counts(smiles);
  const auto image = chem::featurize(smiles, f, 1024);
  ASSERT_EQ(image.size(), 1024u);
  size_t nonzero = 0;
  for (size_t b = 0; b < 1024; ++b) {
    EXPECT_DOUBLE_EQ(image[f.cells[b]], std::min(counts[b], 8u) / 8.0) << b;
    nonzero += counts[b] ? 1 : 0;
  }
  EXPECT_EQ(static_cast<size_t>(std::count_if(image.begin(), image.end(), [](double v) { return v != 0; })), nonzero);
  nn::InputFeaturizer other = f;
  other.version = 2;
  EXPECT_EQ(error_code_of([&] { chem::featurize(smiles, other, 1024); }, "version 2"), ErrorCode::Unsupported);
  EXPECT_EQ(error_code_of([&] { chem::morgan_counts(""); }, "empty"), ErrorCode::InvalidArgument);
  EXPECT_EQ(error_code_of([&] { chem::morgan_counts(std::string(100001, 'C')); }, "100001"), ErrorCode::InvalidArgument);
}

// ---- golden images (tools/molecules/make_golden.py; its --check is the ctest test
// featurizer_golden_images, so both featurizers are pinned to the same file) ----

// The committed layout (tests/data/molecules/layout.json), the one the golden images use.
nn::InputFeaturizer committed_layout() {
  std::ifstream in(kMolecules + "/layout.json");
  EXPECT_TRUE(in.good()) << kMolecules << "/layout.json";
  const auto j = nlohmann::json::parse(in);
  nn::InputFeaturizer f;
  f.name = j.at("featurizer").get<std::string>();
  f.version = j.at("version").get<uint32_t>();
  f.cap = j.at("cap").get<double>();
  f.cells = j.at("cells").get<std::vector<uint32_t>>();
  EXPECT_EQ(j.at("height").get<int>() * j.at("width").get<int>(), 1024);
  nn::check_featurizer(f, 1024);
  return f;
}

struct GoldenImage {
  std::string name, smiles;
  std::vector<double> pixels;  // 1024, row-major 32x32
};

// golden_images.txt: '#' comments; `molecule <name> <nonzero> <SMILES>` then <nonzero>
// lines `<index> <value>` (increasing index, value exact as Python's repr); zeros elsewhere.
std::vector<GoldenImage> read_golden_images() {
  const std::string path = kMolecules + "/golden_images.txt";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::vector<GoldenImage> images;
  size_t expected = 0, line_no = 0;
  long last = -1;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    const std::string where = path + ":" + std::to_string(line_no) + ": '" + line + "'";
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    if (line.rfind("molecule ", 0) == 0) {
      EXPECT_EQ(expected, 0u) << where << ": the previous molecule has too few pixels";
      GoldenImage g;
      std::string word, extra;
      EXPECT_TRUE(fields >> word >> g.name >> expected >> g.smiles && !(fields >> extra)) << where;
      g.pixels.assign(1024, 0.0);
      images.push_back(std::move(g));
      last = -1;
      continue;
    }
    std::string index_text, value_text, extra;
    const bool ok = static_cast<bool>(fields >> index_text >> value_text) && !(fields >> extra);
    if (!ok || images.empty() || expected == 0) {
      ADD_FAILURE() << where << ": not a pixel line of a molecule";
      continue;
    }
    char* end = nullptr;
    const long index = std::strtol(index_text.c_str(), &end, 10);
    const bool index_ok = *end == '\0' && index > last && index < 1024;
    const double value = std::strtod(value_text.c_str(), &end);
    const bool value_ok = *end == '\0' && value > 0 && value <= 1;
    if (!index_ok || !value_ok) {
      ADD_FAILURE() << where << ": bad index or value";
      continue;
    }
    images.back().pixels[static_cast<size_t>(index)] = value;
    last = index;
    --expected;
  }
  EXPECT_EQ(expected, 0u) << path << ": the last molecule has too few pixels";
  return images;
}

std::string pixel_text(double v) {
  std::ostringstream s;
  s << std::setprecision(17) << v << " (" << std::hexfloat << v << ")";
  return s.str();
}

// Index of the first pixel whose bits differ (-1: identical images of the same size).
long first_difference(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::bit_cast<uint64_t>(a[i]) != std::bit_cast<uint64_t>(b[i])) return static_cast<long>(i);
  return -1;
}

std::string difference_text(const GoldenImage& g, const std::vector<double>& got, long i) {
  if (got.size() != g.pixels.size())
    return g.name + " (" + g.smiles + "): " + std::to_string(got.size()) + " pixels, expected 1024";
  return g.name + " (" + g.smiles + "): first differing pixel " + std::to_string(i) + " (row " +
         std::to_string(i / 32) + ", col " + std::to_string(i % 32) + "): C++ " + pixel_text(got[i]) +
         ", golden " + pixel_text(g.pixels[i]);
}

TEST(ChemFeaturizer, ImagesEqualGoldenImages) {
  const nn::InputFeaturizer f = committed_layout();
  const std::vector<GoldenImage> golden = read_golden_images();
  ASSERT_GE(golden.size(), 8u);
  for (const GoldenImage& g : golden) {
    const std::vector<double> got = chem::featurize(g.smiles, f, 1024);
    const long i = first_difference(got, g.pixels);
    EXPECT_EQ(i, -1) << difference_text(g, got, i);
  }
}

TEST(ChemFeaturizer, FeaturizingTwiceGivesIdenticalImages) {
  const nn::InputFeaturizer f = committed_layout();
  const std::vector<GoldenImage> golden = read_golden_images();
  ASSERT_GE(golden.size(), 8u);
  std::vector<std::vector<double>> first;
  for (const GoldenImage& g : golden) first.push_back(chem::featurize(g.smiles, f, 1024));
  for (size_t k = golden.size(); k-- > 0;) {  // again, in the reverse order
    const std::vector<double> again = chem::featurize(golden[k].smiles, f, 1024);
    const long i = first_difference(again, first[k]);
    EXPECT_EQ(i, -1) << "second run of " << golden[k].name << " (" << golden[k].smiles << ") differs at pixel " << i;
  }
}

#endif  // VEIL_TEST_RDKIT

}  // namespace
}  // namespace veil::test
