// The encrypted ConvNet (see include/veil/nn/convnet.hpp): file loaders, the plain
// float64 reference and the encrypted pipeline conv -> x^2 -> fc1 -> x^2 -> fc2.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>

#include "veil/error.hpp"
#include "veil/nn/convnet.hpp"

namespace veil::nn {

namespace {

using S = ConvNetShape;

[[noreturn]] void bad(const std::string& msg) { throw Error(ErrorCode::InvalidArgument, msg); }

// Reads a text file line by line, skipping '#' comments and blank lines.
class LineReader {
 public:
  explicit LineReader(const std::string& path) : path_(path), in_(path) {
    if (!in_) bad("cannot open " + path);
  }
  // The next non-comment line; false at end of file.
  bool next(std::string& line) {
    while (std::getline(in_, line)) {
      ++number_;
      size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string::npos || line[start] == '#') continue;
      return true;
    }
    return false;
  }
  [[noreturn]] void fail(const std::string& msg) const {
    bad(path_ + ":" + std::to_string(number_) + ": " + msg);
  }

 private:
  std::string path_;
  std::ifstream in_;
  size_t number_ = 0;
};

// Parses every whitespace-separated number of `line`: float32 with strtof (the weights'
// exact values) or double with strtod (the reference logits).
std::vector<double> parse_numbers(const std::string& line, const LineReader& r, bool as_float) {
  std::vector<double> out;
  const char* p = line.c_str();
  while (true) {
    while (*p == ' ' || *p == '\t' || *p == '\r') ++p;
    if (*p == '\0') break;
    char* end = nullptr;
    errno = 0;
    double v = as_float ? static_cast<double>(std::strtof(p, &end)) : std::strtod(p, &end);
    if (end == p || (*end != '\0' && *end != ' ' && *end != '\t' && *end != '\r'))
      r.fail("malformed number near '" + std::string(p, std::min<size_t>(20, std::strlen(p))) + "'");
    if (errno == ERANGE || !std::isfinite(v)) r.fail("number out of range or not finite");
    out.push_back(v);
    p = end;
  }
  return out;
}

std::vector<double> read_tensor(LineReader& r, const std::string& name, size_t rows, size_t cols) {
  std::string line;
  if (!r.next(line)) r.fail("missing tensor " + name);
  std::istringstream head(line);
  std::string got_name, extra;
  long long got_rows = -1, got_cols = -1;
  if (!(head >> got_name >> got_rows >> got_cols) || (head >> extra))
    r.fail("expected a header '" + name + " " + std::to_string(rows) + " " + std::to_string(cols) + "'");
  if (got_name != name) r.fail("expected tensor " + name + ", found " + got_name);
  if (got_rows != static_cast<long long>(rows) || got_cols != static_cast<long long>(cols))
    r.fail(name + " has shape " + std::to_string(got_rows) + "x" + std::to_string(got_cols) + ", expected " +
           std::to_string(rows) + "x" + std::to_string(cols));
  std::vector<double> out;
  out.reserve(rows * cols);
  for (size_t i = 0; i < rows; ++i) {
    if (!r.next(line)) r.fail(name + ": missing row " + std::to_string(i));
    auto row = parse_numbers(line, r, true);
    if (row.size() != cols)
      r.fail(name + " row " + std::to_string(i) + " has " + std::to_string(row.size()) + " values, expected " +
             std::to_string(cols));
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

std::string read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One "index label predicted logit0..logit9" line of the expected-logits file.
void parse_expected(const std::string& line, size_t index, ConvNetTestSet& set, const LineReader& r) {
  auto v = parse_numbers(line, r, false);
  if (v.size() != 3 + S::classes) r.fail("expected 13 fields: index label predicted logit0..logit9");
  const double idx = v[0], label = v[1], pred = v[2];
  std::vector<double> logits(v.begin() + 3, v.end());
  if (idx != static_cast<double>(index)) r.fail("bad or out-of-order index");
  if (pred < 0 || pred >= S::classes || pred != std::floor(pred)) r.fail("bad predicted class");
  if (static_cast<int>(label) != set.labels[index]) r.fail("label differs from digits_test_labels.u8");
  set.logits.push_back(std::move(logits));
  set.predicted.push_back(static_cast<int>(pred));
}

ContextPtr checked(ContextPtr ctx, const ConvNetWeights& w) {
  require(ctx != nullptr, ErrorCode::InvalidArgument, "convnet: null context");
  require(ctx->max_level() >= EncryptedConvNet::required_depth(), ErrorCode::LevelMismatch,
          "convnet: needs " + std::to_string(EncryptedConvNet::required_depth()) +
              " levels (conv, square, fc1, square, fc2) but the parameters have max_level " +
              std::to_string(ctx->max_level()));
  (void)convnet_model(w);  // checks the shapes
  return ctx;
}

}  // namespace

ConvNetWeights load_convnet_weights(const std::string& path) {
  LineReader r(path);
  ConvNetWeights w;
  w.conv_weight = read_tensor(r, "conv.weight", S::channels, S::kernel * S::kernel);
  w.conv_bias = read_tensor(r, "conv.bias", 1, S::channels);
  w.fc1_weight = read_tensor(r, "fc1.weight", S::hidden, S::flat);
  w.fc1_bias = read_tensor(r, "fc1.bias", 1, S::hidden);
  w.fc2_weight = read_tensor(r, "fc2.weight", S::classes, S::hidden);
  w.fc2_bias = read_tensor(r, "fc2.bias", 1, S::classes);
  std::string line;
  if (r.next(line)) r.fail("unexpected data after fc2.bias");
  return w;
}

ConvNetTestSet load_convnet_test_set(const std::string& dir, size_t max_images) {
  const size_t pixels = S::image * S::image;
  const std::string images = read_binary(dir + "/digits_test_28x28.u8");
  const std::string labels = read_binary(dir + "/digits_test_labels.u8");
  if (images.empty() || images.size() % pixels != 0 || images.size() / pixels != labels.size())
    bad(dir + ": digits_test_28x28.u8 (" + std::to_string(images.size()) + " bytes) and digits_test_labels.u8 (" +
        std::to_string(labels.size()) + " bytes) do not describe the same number of 28x28 images");
  const size_t count = std::min(max_images, labels.size());
  ConvNetTestSet set;
  for (size_t k = 0; k < count; ++k) {
    std::vector<double> img(pixels);
    for (size_t i = 0; i < pixels; ++i) img[i] = static_cast<unsigned char>(images[k * pixels + i]) / 255.0;
    set.images.push_back(std::move(img));
    int label = static_cast<unsigned char>(labels[k]);
    if (label >= static_cast<int>(S::classes)) bad(dir + ": label " + std::to_string(label) + " out of range");
    set.labels.push_back(label);
  }
  LineReader r(dir + "/convnet_digits_expected.txt");
  std::string line;
  for (size_t k = 0; k < count; ++k) {
    if (!r.next(line)) r.fail("expected logits for " + std::to_string(count) + " images");
    parse_expected(line, k, set, r);
  }
  return set;
}

std::vector<double> plain_convnet_logits(const ConvNetWeights& w, const std::vector<double>& image) {
  require(image.size() == S::image * S::image, ErrorCode::InvalidArgument, "convnet: image must have 784 values");
  const size_t out = 8;
  std::vector<double> flat(S::flat);
  for (size_t c = 0; c < S::channels; ++c)
    for (size_t oy = 0; oy < out; ++oy)
      for (size_t ox = 0; ox < out; ++ox) {
        double v = w.conv_bias[c];
        for (size_t ky = 0; ky < S::kernel; ++ky)
          for (size_t kx = 0; kx < S::kernel; ++kx)
            v += w.conv_weight[c * S::kernel * S::kernel + ky * S::kernel + kx] *
                 image[(S::stride * oy + ky) * S::image + S::stride * ox + kx];
        flat[c * S::windows + oy * out + ox] = v * v;
      }
  std::vector<double> h(S::hidden);
  for (size_t j = 0; j < S::hidden; ++j) {
    double v = w.fc1_bias[j];
    for (size_t i = 0; i < S::flat; ++i) v += w.fc1_weight[j * S::flat + i] * flat[i];
    h[j] = v * v;
  }
  std::vector<double> logits(S::classes);
  for (size_t k = 0; k < S::classes; ++k) {
    double v = w.fc2_bias[k];
    for (size_t j = 0; j < S::hidden; ++j) v += w.fc2_weight[k * S::hidden + j] * h[j];
    logits[k] = v;
  }
  return logits;
}

int argmax(const std::vector<double>& v) {
  require(!v.empty(), ErrorCode::InvalidArgument, "argmax of an empty vector");
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

Parameters convnet_parameters(uint32_t log_n) {
  if (log_n == 14) return Parameters::preset(14);
  require(log_n == 13, ErrorCode::InvalidArgument, "convnet parameters exist for log_n 13 and 14");
  ParameterSpec spec;
  spec.log_n = 13;
  spec.q_bits = {38, 27, 27, 27, 27, 27};
  spec.p_bits = {44};
  spec.default_scale = std::ldexp(1.0, 27);
  return Parameters::create(spec);
}

Sequential convnet_model(const ConvNetWeights& w) {
  require(w.conv_weight.size() == S::channels * S::kernel * S::kernel && w.conv_bias.size() == S::channels &&
              w.fc1_weight.size() == S::hidden * S::flat && w.fc1_bias.size() == S::hidden &&
              w.fc2_weight.size() == S::classes * S::hidden && w.fc2_bias.size() == S::classes,
          ErrorCode::InvalidArgument, "convnet: weights do not have the model's shapes (docs/convnet.md)");
  Sequential m(S::image, S::image);
  m.conv2d(S::channels, S::kernel, S::stride, w.conv_weight, w.conv_bias)
      .square()
      .flatten()
      .linear(S::hidden, w.fc1_weight, w.fc1_bias)
      .square()
      .linear(S::classes, w.fc2_weight, w.fc2_bias);
  return m;
}

EncryptedConvNet::EncryptedConvNet(ContextPtr ctx, const ConvNetWeights& w)
    : model_(checked(ctx, w), convnet_model(w), CompileOptions{Packing::Im2col, 1, -1, 0}) {}

std::vector<double> EncryptedConvNet::encode_input(const std::vector<double>& image) const {
  return model_.encode({image}).front();
}

Ciphertext EncryptedConvNet::infer(const Evaluator& eval, const Ciphertext& x, const RelinKey& rk,
                                   const GaloisKeys& gk) const {
  return model_.run(eval, {x}, rk, gk).front();
}

std::vector<double> EncryptedConvNet::decode_logits(const std::vector<double>& slots) const {
  return model_.decode({slots}, 1).front();
}

}  // namespace veil::nn
