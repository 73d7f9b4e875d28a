// A compiled model file (".veil"): everything a server needs to run a model and a
// client needs to query it, and nothing secret. It holds the layers (weights), the
// CKKS parameters the compiler chose, the compile options that fix the plan (packing,
// batch, input level and scale), the input range and the precision the compiler
// promised and measured. It never holds a key.
//
// Format: one Veil blob (docs/serialization.md) of object type 8 whose fingerprint is
// the parameters' and whose payload is described in docs/models.md ("Model files").
// Loading validates everything before use (frame, checksum, version, every size
// bounded before allocation, weights finite, layer shapes through Sequential's own
// checks, the nested parameters through deserialize_parameters) and throws
// Error(Serialization) for any mismatch, so a hostile file ends in an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "veil/nn/model.hpp"
#include "veil/params.hpp"
#include "veil/serialization.hpp"

namespace veil::nn {

// How a client turns its raw inputs into the model's input tensor, recorded with the
// model so that client and server always agree (docs/molecules.md). The only kind
// today is a count fingerprint laid out on the input image: feature bin b (0..bins-1)
// with count k becomes pixel cells[b] (an index into the C x H x W input) with value
// min(k, cap) / cap; every other pixel is 0. Computing the counts (e.g. from a SMILES
// string) is the client's job (veil/chem/featurizer.hpp); the model file holds only
// this description, so the server needs no chemistry library.
struct InputFeaturizer {
  std::string name;             // e.g. "morgan-count-feat-r3-1024" (1..64 characters of [A-Za-z0-9._-])
  uint32_t version = 0;         // of that featurizer, >= 1
  double cap = 1;               // finite, > 0
  std::vector<uint32_t> cells;  // one per bin: distinct pixels of the input (1..2^20 bins)
  std::string property;         // what the model's output is, e.g. "SA score" (<= 256 bytes; may be empty)
  bool operator==(const InputFeaturizer&) const = default;
};

struct ModelFile {
  std::string name;  // 1..64 characters of [A-Za-z0-9._-] (a URL path segment)
  Sequential model;
  Parameters params;
  CompileOptions options;  // batch resolved (never 0), level and scale as compiled
  double input_min = 0, input_max = 1;  // the range the dry run drew inputs from
  double promised_bits = 0;  // what compile was asked for
  double measured_bits = 0;  // compile's encrypted dry run (nn/compile.hpp: precision_bits)
  double dry_run_ms = 0;     // one encrypted run() there, wall clock
  std::string compiled_on;   // backend and machine of the dry run (free text, <= 256 bytes)
  std::optional<InputFeaturizer> featurizer;  // the client's input preparation, when it has one
};

// Throws Error(InvalidArgument) naming the first field of `f` that is wrong for a model
// input of `input_size` values (what the model file's reader and writer check).
void check_featurizer(const InputFeaturizer& f, size_t input_size);

// Version 3 added the optional featurizer; version 2 files (none) are still read.
inline constexpr uint32_t kModelFileVersion = 3;

Bytes serialize_model(const ModelFile& m);
ModelFile deserialize_model(ByteView blob, const SerializationLimits& limits = {});

// Files: written whole (to a temporary name, then renamed), mode 0644 (no secrets).
// Errors: Error(InvalidArgument) when the file cannot be read or written, plus the
// deserialization errors.
void write_model_file(const std::string& path, const ModelFile& m);
ModelFile read_model_file(const std::string& path, const SerializationLimits& limits = {});

// True for 1..64 characters of [A-Za-z0-9._-], not starting with '.'.
bool valid_model_name(const std::string& name);

}  // namespace veil::nn
