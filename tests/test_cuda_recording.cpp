// Recorded computations on the cuda backend (Backend::begin_recording, CUDA graphs):
// a replay gives, word for word, what running the computation again gives, for new
// inputs; calls that need the host while recording are refused with a clear error and
// leave the backend usable. Skips without a device (tools/cuda_sim runs it here).
#include <filesystem>
#include <random>

#include "cuda_test_util.hpp"
#include "test_util.hpp"
#include "veil/nn/convnet.hpp"
#include "veil/recorded_computation.hpp"

namespace veil::test {
namespace {

template <class F>
void expect_error(ErrorCode code, F&& f) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
  }
}

Parameters small_params() {
  ParameterSpec spec;
  spec.log_n = 13;
  spec.q_bits = {40, 30, 30};
  spec.p_bits = {40};
  spec.default_scale = 0x1p30;
  return Parameters::create(spec);
}

void expect_same_ciphertexts(const std::vector<Ciphertext>& a, const std::vector<Ciphertext>& b,
                             const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size()) << what << ", output " << i;
    ASSERT_EQ(a[i].level(), b[i].level()) << what << ", output " << i;
    ASSERT_EQ(a[i].scale(), b[i].scale()) << what << ", output " << i;
    ASSERT_TRUE(same_words(words_of(a[i]), words_of(b[i]), a[i].context()->n())) << what << ", output " << i;
  }
}

// Multiply + relinearize, rescale, rotations (one hoisted pair), additions, a
// plaintext product and scalars: every kind of kernel an evaluation uses.
TEST(CudaRecording, EvaluatorChainReplaysMatchDirectRuns) {
  VEIL_REQUIRE_CUDA();
  Keyed k(small_params(), 71, true, BackendKind::Cuda, {1, 3});
  const Plaintext mask = k.encoder->encode(random_reals(k.slots(), 5), k.ctx->params().default_scale(), 1);
  const auto f = [&](const std::vector<Ciphertext>& in) {
    const Evaluator& ev = *k.eval;
    Ciphertext p = ev.rescale(ev.multiply(in[0], in[1], k.rk));
    const auto r = ev.rotate_hoisted(p, {1, 3}, k.gk);
    Ciphertext s = ev.add(ev.add(p, r[0]), r[1]);
    s = ev.rescale(ev.multiply_plain(s, mask));
    return std::vector<Ciphertext>{ev.add_scalar(s, 0.25), ev.multiply_scalar(p, -1.5),
                                   ev.multiply_constant(p, 0.3, 0x1p20)};
  };
  const std::vector<Ciphertext> a = {k.encrypt(random_reals(k.slots(), 1)), k.encrypt(random_reals(k.slots(), 2))};
  const std::vector<Ciphertext> b = {k.encrypt(random_reals(k.slots(), 3)), k.encrypt(random_reals(k.slots(), 4))};
  RecordedComputation rec(f, a);
  ASSERT_TRUE(rec.replayed());
  EXPECT_GT(rec.operations(), 10u);
  expect_same_ciphertexts(rec.run(b), f(b), "replay on new inputs");
  expect_same_ciphertexts(rec.run(a), f(a), "replay on the example");
  const auto again = rec.run(b);
  expect_same_ciphertexts(again, f(b), "second replay");
  // The results are the caller's: they outlive the recording.
  const auto kept = rec.run(a);
  { RecordedComputation gone(f, b); }
  expect_same_ciphertexts(kept, f(a), "results after another recording came and went");
}

// The digits ConvNet (taps packing, 8 images): the model's whole run() replayed on
// another batch gives the words of a direct run, hence the same classes.
TEST(CudaRecording, ConvNetReplayMatchesDirectRun) {
  VEIL_REQUIRE_CUDA();
  const std::string data = (std::filesystem::path(__FILE__).parent_path() / "data").string();
  const auto weights = nn::load_convnet_weights(data + "/convnet_digits.weights");
  const auto set = nn::load_convnet_test_set(data, 16);
  const Parameters params = nn::convnet_parameters(13);
  Keyed k(params, 71, false, BackendKind::Cuda);
  nn::CompiledModel model(k.ctx, nn::convnet_model(weights));
  k.gk = k.keygen->create_galois_keys(model.rotation_steps(), false);
  const auto encrypt = [&](size_t first) {
    const std::vector<std::vector<double>> images(set.images.begin() + first, set.images.begin() + first + 8);
    std::vector<Ciphertext> in;
    for (const auto& slots : model.encode(images)) in.push_back(k.pk_encryptor->encrypt(k.encoder->encode(slots)));
    return in;
  };
  const auto first = encrypt(0), second = encrypt(8);
  const auto f = [&](const std::vector<Ciphertext>& in) { return model.run(*k.eval, in, k.rk, k.gk); };
  RecordedComputation rec(f, first);
  ASSERT_TRUE(rec.replayed());
  const auto replayed = rec.run(second);
  expect_same_ciphertexts(replayed, f(second), "ConvNet replay");
  std::vector<std::vector<double>> decoded;
  for (const auto& ct : replayed) decoded.push_back(k.decrypt(ct));
  const auto logits = model.decode(decoded, 8);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(nn::argmax(logits[i]), set.predicted[8 + i]) << "image " << 8 + i;
}

// Encoding inside a recorded computation needs the host: refused, named, and the
// backend goes on (direct work, and a new recording) as if nothing happened.
TEST(CudaRecording, HostWorkWhileRecordingIsRefusedAndTheBackendGoesOn) {
  VEIL_REQUIRE_CUDA();
  Keyed k(small_params(), 71, false, BackendKind::Cuda);
  const std::vector<Ciphertext> a = {k.encrypt(random_reals(k.slots(), 1))};
  const auto encodes = [&](const std::vector<Ciphertext>& in) {
    static int calls = 0;
    if (++calls > 1)  // the first (unrecorded) run is allowed to encode; the recorded one is not
      return std::vector<Ciphertext>{k.eval->add_plain(in[0], k.encoder->encode(random_reals(k.slots(), 9)))};
    return std::vector<Ciphertext>{k.eval->add(in[0], in[0])};
  };
  try {
    RecordedComputation rec(encodes, a);
    FAIL() << "encoding while recording was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported);
    EXPECT_NE(std::string(e.what()).find("encod"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("while recording"), std::string::npos) << e.what();
  }
  const auto twice = [&](const std::vector<Ciphertext>& in) { return std::vector<Ciphertext>{k.eval->add(in[0], in[0])}; };
  RecordedComputation rec(twice, a);
  expect_same_ciphertexts(rec.run(a), twice(a), "a recording after a refused one");
  const auto back = k.decrypt(rec.run(a)[0]);
  const auto x = k.decrypt(a[0]);
  EXPECT_NEAR(back[3], 2 * x[3], 1e-3);
}

// A combination with more pointers than a launch's parameters hold (600 columns):
// its table travels from pinned memory the recording keeps, at every replay.
TEST(CudaRecording, LargeCombinationTablesAreReplayed) {
  VEIL_REQUIRE_CUDA();
  const auto tables = RnsTables::build(small_params());
  const auto gpu = make_backend(BackendKind::Cuda, tables);
  const Basis b{tables->max_level + 1, false};
  const size_t n = tables->n, limbs = tables->limbs(b), words = limbs * n, columns = 600, rows = 3;
  std::mt19937_64 rng(5);
  std::vector<uint64_t> matrix{0};  // row_start, cols, weights[limb][entry]
  std::vector<uint64_t> cols;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t e = 0; e < 40; ++e) cols.push_back(rng() % columns);
    matrix.push_back(cols.size());
  }
  const size_t entries = cols.size();
  matrix.insert(matrix.end(), cols.begin(), cols.end());
  for (size_t limb = 0; limb < limbs; ++limb)
    for (size_t e = 0; e < entries; ++e) matrix.push_back(rng() % tables->primes[limb]);
  Buffer m(gpu, matrix.size());
  m.from_host(matrix.data(), matrix.size());
  const CombineMatrix cm{rows, entries, columns, static_cast<uint32_t>(limbs), m.data(), m.data() + rows + 1,
                         m.data() + rows + 1 + entries};
  std::vector<Buffer> in;
  std::vector<uint64_t> host(words);
  for (size_t i = 0; i < 4; ++i) {
    for (size_t w = 0; w < words; ++w) host[w] = rng() % tables->primes[w / n];
    in.emplace_back(gpu, words);
    in.back().from_host(host.data(), words);
  }
  std::vector<const uint64_t*> inputs;
  for (size_t c = 0; c < columns; ++c) inputs.push_back(in[c % 4].data());
  std::vector<Buffer> direct, replayed;
  std::vector<uint64_t*> d_out, r_out;
  for (size_t r = 0; r < rows; ++r) {
    direct.emplace_back(gpu, words);
    replayed.emplace_back(gpu, words);
    d_out.push_back(direct.back().data());
    r_out.push_back(replayed.back().data());
  }
  ASSERT_TRUE(gpu->begin_recording());
  gpu->combine(b, 1, cm, inputs.data(), r_out.data(), false);
  const auto recording = gpu->end_recording();
  inputs.assign(columns, nullptr);  // the host table is gone: replays read the recording's copy
  gpu->replay(*recording);
  for (size_t c = 0; c < columns; ++c) inputs[c] = in[c % 4].data();
  gpu->combine(b, 1, cm, inputs.data(), d_out.data(), false);
  for (size_t r = 0; r < rows; ++r) EXPECT_TRUE(same_words(direct[r].to_host(), replayed[r].to_host(), n)) << "row " << r;
}

TEST(CudaRecording, BackendMisuseIsRefused) {
  VEIL_REQUIRE_CUDA();
  const auto tables = RnsTables::build(small_params());
  const auto one = make_backend(BackendKind::Cuda, tables), two = make_backend(BackendKind::Cuda, tables);
  const std::vector<uint64_t> ones(16, 1);
  Buffer before(one, 16);
  before.from_host(ones.data(), 16);
  expect_error(ErrorCode::InvalidArgument, [&] { one->end_recording(); });
  ASSERT_TRUE(one->begin_recording());
  expect_error(ErrorCode::InvalidArgument, [&] { one->begin_recording(); });
  one->set_zero(before.data(), 16);  // recorded, not run
  {
    Buffer buf(one, 16);  // the recording's memory
    expect_error(ErrorCode::Unsupported, [&] { buf.from_host(ones.data(), 16); });
    expect_error(ErrorCode::Unsupported, [&] { buf.to_host(); });
    expect_error(ErrorCode::Unsupported, [&] { one->synchronize(); });
  }
  const auto recording = one->end_recording();
  ASSERT_NE(recording, nullptr);
  EXPECT_EQ(recording->operations(), 2u);  // the two zero fills
  expect_error(ErrorCode::InvalidArgument, [&] { two->replay(*recording); });
  EXPECT_EQ(before.to_host(), ones) << "recorded work ran before its replay";
  one->replay(*recording);
  EXPECT_EQ(before.to_host(), std::vector<uint64_t>(16, 0)) << "the replay did not run the recorded work";
}

}  // namespace
}  // namespace veil::test
