// The model server: compiled model files (nn::ModelFile) served over HTTP on a
// loopback or public address. It never holds a secret key: the protocol has no way to
// send one, and a secret-key blob is refused like any other wrong object.
//
// Protocol (docs/serve.md): binary bodies are Veil blobs (docs/serialization.md),
// several concatenated where a request carries several objects; metadata and errors
// are JSON ({"error": message, "status": code}).
//   GET    /healthz                      "ok"
//   GET    /v1/models                    [{name, ...}] (description as below)
//   GET    /v1/models/{name}             input shape, batch, input/output ciphertexts,
//                                        parameters (blob, base64), rotation steps,
//                                        input level and scale, precision: never weights
//   POST   /v1/sessions?model={name}     body: relinearization key blob, then Galois
//                                        keys blob (every step the model needs) ->
//                                        {session, model, expires_in}
//   POST   /v1/sessions/{id}/infer       body: the input ciphertexts -> the output
//                                        ciphertexts (application/octet-stream)
//   DELETE /v1/sessions/{id}
//   GET    /metrics                      Prometheus text
// Failures: 400 malformed body or wrong object (another parameter set, another type, a
// secret key, missing Galois steps, wrong ciphertext count/level/scale), 404 unknown
// model or session (expired ones too), 413 body over the limit, 503 (Retry-After) when
// the inference queue is full or the session limit is reached; the server keeps serving.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "veil/backend.hpp"
#include "veil/nn/model_file.hpp"
#include "veil/serve/key_store.hpp"

namespace veil::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                       // 0: any free port (ModelServer::port() tells)
  size_t threads = 2;                 // HTTP worker threads
  BackendKind backend = BackendKind::Cpu;
  // Largest request body; raised, when below it, to what the largest model's query
  // needs (nn::query_cost's upload plus 1 MiB), so every model can be queried.
  size_t max_body_bytes = size_t{256} << 20;
  size_t max_sessions = 1000;
  size_t max_inflight = 4;            // concurrent inferences; more get 503
  std::chrono::seconds session_ttl{3600};
  std::chrono::seconds io_timeout{60};  // reading a request / writing a response
  size_t key_cache = 16;              // sessions whose keys stay deserialized in memory
  // Recorded runs (veil::RecordedComputation): a cached session's first inference is
  // recorded with its keys, and its later ones (inputs of the same level and scale)
  // replay it, on cuda as one CUDA graph launch. The recording lives with the cached
  // keys (at most key_cache of them; on cuda each holds its run's memory, at least
  // 64 MiB). Auto: on backends that record (cuda); Always: also elsewhere, where the
  // first inference runs twice and nothing is saved (for tests); Never.
  enum class Replay { Auto, Always, Never };
  Replay replay = Replay::Auto;
  bool allow_insecure_parameters = false;  // models with Security::InsecureTestingOnly
  // HTTPS: PEM certificate (chain) and private key files; both or neither.
  std::string tls_cert, tls_key;
};

class ModelServer {
 public:
  // Loads the models (names must be unique) and prepares their plans. Errors:
  // InvalidArgument (duplicate names, no models, insecure parameters not allowed),
  // plus the plans' own errors.
  ModelServer(std::vector<nn::ModelFile> models, std::shared_ptr<KeyStore> store, ServerOptions options = {});
  ~ModelServer();  // stops
  ModelServer(const ModelServer&) = delete;
  ModelServer& operator=(const ModelServer&) = delete;

  // Binds and serves on a background thread; returns once listening. Error(Backend)
  // when the address cannot be bound.
  void start();
  int port() const;
  // Stops accepting, finishes the requests in flight, joins. Idempotent.
  void stop();

  // Answers one request exactly as the HTTP routes do, without a socket (no start()
  // needed): what the fuzz harness and tests drive. target: path and query, e.g.
  // "/v1/sessions?model=digits". Never throws for a bad request: the answer says.
  struct Answer {
    int status = 0;
    std::string body;
  };
  Answer respond(const std::string& method, const std::string& target, const std::string& body);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace veil::serve
