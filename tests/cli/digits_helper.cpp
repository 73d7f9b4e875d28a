// Test helper of tests/cli/cli_test.sh (no python needed on CI):
//   digits_helper make DATA_DIR COUNT OUT.npy OUT.csv CSV_COUNT CLASSES.txt
//     the first COUNT digits test images / 255 as float64 [COUNT, 28, 28] (.npy, written
//     by Veil's tensor_io), the first CSV_COUNT of them as CSV rows of 784 values, and
//     the plaintext model's class of each (tests/data/convnet_digits_expected.txt).
//   digits_helper compare CLASSES.txt PREDICTED.txt MIN_AGREE
//     exit 0 when the files have the same number of lines and at least MIN_AGREE agree.
//   digits_helper relu IN.onnx OUT.onnx   (builds with ONNX only)
//     IN with its first x * x (Mul of a tensor by itself) replaced by Relu(x).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "veil/tensor_io.hpp"

#ifdef VEIL_TEST_ONNX
#include <onnx/onnx_pb.h>
#endif

namespace {

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream f(path);
  if (!f) {
    std::fprintf(stderr, "digits_helper: cannot read %s\n", path.c_str());
    std::exit(1);
  }
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);)
    if (!l.empty()) lines.push_back(l);
  return lines;
}

int make(const std::string& dir, size_t count, const std::string& npy, const std::string& csv, size_t csv_count,
         const std::string& classes) {
  constexpr size_t pixels = 28 * 28;
  std::ifstream f(dir + "/digits_test_28x28.u8", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < count * pixels) {
    std::fprintf(stderr, "digits_helper: %s/digits_test_28x28.u8 holds fewer than %zu images\n", dir.c_str(), count);
    return 1;
  }
  veil::Tensor t;
  t.shape = {count, 28, 28};
  for (size_t i = 0; i < count * pixels; ++i) t.data.push_back(static_cast<unsigned char>(bytes[i]) / 255.0);
  veil::write_npy(npy, t);
  veil::Tensor c;
  c.shape = {csv_count, pixels};
  c.data.assign(t.data.begin(), t.data.begin() + csv_count * pixels);
  veil::write_csv(csv, c);
  // convnet_digits_expected.txt: "index label predicted logits..." after '#' comments.
  std::ofstream out(classes);
  size_t written = 0;
  for (const std::string& l : lines_of(dir + "/convnet_digits_expected.txt")) {
    if (l[0] == '#' || written == count) continue;
    std::istringstream s(l);
    size_t index = 0, label = 0, predicted = 0;
    if (!(s >> index >> label >> predicted) || index != written) {
      std::fprintf(stderr, "digits_helper: unexpected line in convnet_digits_expected.txt: %s\n", l.c_str());
      return 1;
    }
    out << predicted << "\n";
    ++written;
  }
  return written == count ? 0 : 1;
}

int compare(const std::string& expected_path, const std::string& got_path, size_t min_agree) {
  const auto expected = lines_of(expected_path), got = lines_of(got_path);
  if (expected.size() != got.size()) {
    std::fprintf(stderr, "digits_helper: %zu expected classes, %zu predicted\n", expected.size(), got.size());
    return 1;
  }
  size_t agree = 0;
  for (size_t i = 0; i < got.size(); ++i) agree += expected[i] == got[i];
  std::printf("agreement with the plaintext model: %zu / %zu (need %zu)\n", agree, got.size(), min_agree);
  return agree >= min_agree ? 0 : 1;
}

int relu(const std::string& in, const std::string& out) {
#ifdef VEIL_TEST_ONNX
  onnx::ModelProto model;
  std::ifstream f(in, std::ios::binary);
  if (!model.ParseFromIstream(&f)) {
    std::fprintf(stderr, "digits_helper: cannot parse %s\n", in.c_str());
    return 1;
  }
  for (onnx::NodeProto& node : *model.mutable_graph()->mutable_node()) {
    if (node.op_type() == "Mul" && node.input_size() == 2 && node.input(0) == node.input(1)) {
      node.set_op_type("Relu");
      node.mutable_input()->RemoveLast();
      std::ofstream o(out, std::ios::binary);
      return model.SerializeToOstream(&o) ? 0 : 1;
    }
  }
  std::fprintf(stderr, "digits_helper: %s has no x * x node\n", in.c_str());
  return 1;
#else
  (void)in, (void)out;
  std::fprintf(stderr, "digits_helper: built without ONNX\n");
  return 1;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "make" && argc == 8)
      return make(argv[2], std::stoul(argv[3]), argv[4], argv[5], std::stoul(argv[6]), argv[7]);
    if (mode == "compare" && argc == 5) return compare(argv[2], argv[3], std::stoul(argv[4]));
    if (mode == "relu" && argc == 4) return relu(argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "digits_helper: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: digits_helper make DATA_DIR COUNT OUT.npy OUT.csv CSV_COUNT CLASSES.txt\n"
               "       digits_helper compare CLASSES.txt PREDICTED.txt MIN_AGREE\n"
               "       digits_helper relu IN.onnx OUT.onnx\n");
  return 2;
}
