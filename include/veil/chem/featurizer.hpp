// Molecules as model inputs (client side): a SMILES string -> the count-based Morgan
// fingerprint Veil's molecule models read (radius 3, RDKit's feature invariants,
// hashed to 1024 bins) -> the input image a model file's InputFeaturizer describes
// (veil/nn/model_file.hpp: bin b's count k at pixel cells[b], value min(k, cap) / cap).
// The counts are RDKit's own (librdkit-dev, the version python3-rdkit trains with), so
// the client computes the same image the model was trained on; tools/molecules/
// featurizer.py is the Python side and tests/data/molecules/featurizer_cases.txt the
// shared reference. Built into libveil-chem when librdkit-dev is installed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "veil/nn/model_file.hpp"

namespace veil::chem {

// The featurizer this library computes (InputFeaturizer::name / version).
inline constexpr const char* kMorganFeaturizer = "morgan-count-feat-r3-1024";
inline constexpr uint32_t kMorganFeaturizerVersion = 1;
inline constexpr uint32_t kMorganBins = 1024;

// Counts per bin (kMorganBins values) of the SMILES string's molecule: RDKit's
// GetHashedMorganFingerprint(mol, 3, nBits=1024, useFeatures=True) on
// MolFromSmiles(smiles) (default sanitization, no added hydrogens, no chirality).
// Error(InvalidArgument) naming the string when RDKit cannot parse it (or it is empty
// or longer than 100,000 characters). Thread-safe.
std::vector<uint32_t> morgan_counts(const std::string& smiles);

// The model input (f.cells' input size values, zeros elsewhere) of one molecule.
// Error(Unsupported) when `f` is another featurizer or version than this library's,
// InvalidArgument for a bad SMILES string or `input_size` smaller than a cell.
std::vector<double> featurize(const std::string& smiles, const nn::InputFeaturizer& f, size_t input_size);

}  // namespace veil::chem
