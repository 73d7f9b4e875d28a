// The model compiler: a Sequential (e.g. from import_onnx) becomes a ModelFile whose
// CKKS parameters Veil chooses itself, with the precision it promises measured by
// an encrypted dry run, not guessed.
//
// Choice (docs/models.md, "Automatic parameters"): the ring degree N from 2^min_log_n
// up; for each, a chain of one first prime q_0 (the scale plus the output's magnitude
// plus a margin), depth() primes of the scale's size and alpha special primes as
// large as the largest q, with alpha as large as the HE Standard's 128-bit bound on
// log2(QP) allows (fewer key-switching digits: faster). The scale starts at an
// estimate of what the precision needs at that N and is corrected from each dry run's
// measured precision (up when below the promise, down once when far above). The first
// N whose plan fits the slots and whose chain fits the bound with a measured
// precision >= precision_bits + 2 wins (the extra bits cover other inputs and keys:
// a re-measurement with fresh keys was seen 1.4 bits below a dry run). A run between
// precision_bits + 1 and + 2 gets a second one (fresh keys, other inputs); the chain
// wins when both reach + 1 and their mean + 2, recording the lower.
// Every prime is as small as the scale and the output's magnitude allow, so chains for
// the usual promises (scales up to about 2^44) stay below 2^50, on the cpu backend's
// AVX-512 IFMA path; the search does not trade precision for that path.
//
// Precision of a run: -log2(max |y_encrypted - y_float64| / max(1, max |y_float64|))
// over every output of every dry-run input: absolute bits for outputs within [-1, 1],
// relative to the largest output beyond that.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "veil/backend.hpp"
#include "veil/nn/model.hpp"
#include "veil/nn/model_file.hpp"

namespace veil::nn {

struct AutoCompileOptions {
  double precision_bits = 12;   // promise: the measured precision is at least this (4..40)
  size_t batch = 0;             // images per run: 0 = as many as fit
  Packing packing = Packing::Taps;
  size_t channel_blocks = 0;  // spatial layouts: channels per ciphertext (0: automatic)
  double input_min = 0, input_max = 1;  // dry-run inputs are uniform in this range
  uint32_t min_log_n = 13, max_log_n = 16;
  BackendKind backend = BackendKind::Cpu;  // where the dry run runs (and is timed)
  uint64_t seed = 1;  // of the dry-run inputs (public test data, not key material)
  // Called with a line of progress ("N = 8192: scale 2^29, dry run ... 11.3 bits").
  std::function<void(const std::string&)> progress;
};

// Levels the plan consumes: conv2d, linear and square 1 each, an activation its
// polynomial's depth(), pooling and flatten none (a spatial plan may spend one more
// to gather sparse features before a wide linear layer; Packing::Slots never does).
uint32_t model_depth(const Sequential& model, Packing packing = Packing::Spatial);

// Chooses the parameters, compiles, dry-runs and returns the model file. Errors:
// InvalidArgument for a bad option or name; Unsupported when no N up to max_log_n
// fits (the message says why: slots, depth or precision), naming what to change.
ModelFile compile_model(const Sequential& model, const std::string& name, const AutoCompileOptions& options = {});

// What one query costs, from the file alone (no keys): bytes of the serialized
// evaluation keys, of one query's input ciphertexts (seeded, as a client sends them)
// and of its output ciphertexts.
struct QueryCost {
  uint64_t relin_key_bytes = 0, galois_key_bytes = 0;
  uint64_t upload_bytes = 0, download_bytes = 0;
  size_t galois_keys = 0, input_ciphertexts = 0, output_ciphertexts = 0;
};
QueryCost query_cost(const ModelFile& m);

// The human-readable plan: per layer (CompiledModel::describe), N, log QP, the chain,
// the key sizes, the promised and measured precision, bytes up and down per query and
// the dry run's time per query.
std::string explain(const ModelFile& m);

}  // namespace veil::nn
