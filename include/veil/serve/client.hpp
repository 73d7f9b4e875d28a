// The client side of the model server (what `veil query` runs): it reads the model's
// description, keeps its own keys (made once per server and model, the secret key in
// a 0600 file of the cache directory, never sent), opens a session by uploading the
// evaluation keys once, encrypts inputs in batches of the model's batch size, sends
// them, and decrypts the answers. One round trip per batch.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "veil/nn/model_file.hpp"

namespace veil::serve {

struct QueryOptions {
  // Keys and the session id live in <cache_dir>/<server>/<model>-<fingerprint>/.
  // Empty: $XDG_CACHE_HOME/veil, else $HOME/.cache/veil.
  std::string cache_dir;
  std::chrono::seconds timeout{300};
  std::string ca_cert;          // https: the CA (or self-signed) certificate to trust; empty: the system's
  std::function<void(const std::string&)> progress;  // a line per step (key generation, batches)
};

class QueryClient {
 public:
  // url: http://HOST:PORT or https://HOST:PORT. Fetches GET /v1/models/{model} and
  // loads or creates the keys. Errors: Error(InvalidArgument) for a bad url or an
  // unknown model (the server's message), Error(Backend) when the server cannot be
  // reached, Error(Serialization) for a malformed description.
  QueryClient(const std::string& url, const std::string& model, QueryOptions options = {});
  ~QueryClient();
  QueryClient(const QueryClient&) = delete;
  QueryClient& operator=(const QueryClient&) = delete;

  size_t batch() const;        // inputs per round trip
  size_t input_size() const;   // values per input (channels x height x width)
  size_t input_channels() const;
  size_t input_height() const;
  size_t input_width() const;
  size_t output_size() const;  // values per output
  double input_min() const;
  double input_max() const;
  // How the model's inputs are made from raw data (e.g. molecules), when the model
  // file records it (nn::InputFeaturizer); checked against the input size.
  const std::optional<nn::InputFeaturizer>& featurizer() const;
  // The outputs of `inputs` (each input_size() values), one round trip per batch.
  // Opens the session on first use (or again when the server has forgotten it).
  // Errors: Error(InvalidArgument) for inputs of the wrong size or non-finite values,
  // Error(Backend) carrying the server's message for a refused request.
  std::vector<std::vector<double>> infer(const std::vector<std::vector<double>>& inputs);
  // Deletes the session on the server (the keys stay cached).
  void close();
  std::string key_dir() const;  // where this client's keys are

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The name of the server's only model (GET /v1/models); Error(InvalidArgument) naming
// the models when there are several or none, Error(Backend) when unreachable.
std::string only_model(const std::string& url, const QueryOptions& options = {});

}  // namespace veil::serve
