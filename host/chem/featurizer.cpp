// SMILES -> Morgan count fingerprint -> model input, with RDKit (include/veil/chem/featurizer.hpp).
#include "veil/chem/featurizer.hpp"

#include <GraphMol/Fingerprints/FingerprintUtil.h>
#include <GraphMol/Fingerprints/MorganFingerprints.h>
#include <GraphMol/GraphMol.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <RDGeneral/RDLog.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>

#include "veil/error.hpp"

namespace veil::chem {

namespace {

constexpr unsigned kRadius = 3;
constexpr size_t kMaxSmiles = 100000;

// RDKit reports parse errors on its own log (stderr); the caller gets them as a
// veil::Error instead, once per bad line, not twice.
void quiet_rdkit() {
  static std::once_flag once;
  std::call_once(once, [] { boost::logging::disable_logs("rdApp.*"); });
}

std::string shown(const std::string& smiles) {
  return smiles.size() <= 80 ? smiles : smiles.substr(0, 77) + "...";
}

}  // namespace

std::vector<uint32_t> morgan_counts(const std::string& smiles) {
  require(!smiles.empty(), ErrorCode::InvalidArgument, "molecule: an empty SMILES string");
  require(smiles.size() <= kMaxSmiles, ErrorCode::InvalidArgument,
          "molecule: a SMILES string of " + std::to_string(smiles.size()) + " characters (at most 100000)");
  quiet_rdkit();
  std::unique_ptr<RDKit::ROMol> mol;
  std::string why;
  try {
    mol.reset(RDKit::SmilesToMol(smiles));
  } catch (const std::exception& e) {  // sanitization failures (valence, kekulization) throw
    why = e.what();
  }
  if (!mol)
    throw Error(ErrorCode::InvalidArgument, "molecule: RDKit cannot read the SMILES '" + shown(smiles) + "'" +
                                                (why.empty() ? "" : " (" + why + ")"));
  std::vector<std::uint32_t> invariants(mol->getNumAtoms());
  RDKit::MorganFingerprints::getFeatureInvariants(*mol, invariants);
  std::unique_ptr<RDKit::SparseIntVect<std::uint32_t>> fp(
      RDKit::MorganFingerprints::getHashedFingerprint(*mol, kRadius, kMorganBins, &invariants));
  std::vector<uint32_t> counts(kMorganBins, 0);
  for (const auto& [bin, count] : fp->getNonzeroElements())
    counts.at(static_cast<size_t>(bin)) = static_cast<uint32_t>(count);
  return counts;
}

std::vector<double> featurize(const std::string& smiles, const nn::InputFeaturizer& f, size_t input_size) {
  require(f.name == kMorganFeaturizer && f.version == kMorganFeaturizerVersion, ErrorCode::Unsupported,
          "molecule: the model's featurizer is " + f.name + " version " + std::to_string(f.version) +
              "; this build computes " + kMorganFeaturizer + " version " + std::to_string(kMorganFeaturizerVersion));
  require(f.cells.size() == kMorganBins && std::isfinite(f.cap) && f.cap > 0, ErrorCode::InvalidArgument,
          "molecule: the featurizer needs 1024 cells and a cap > 0");
  std::vector<double> image(input_size, 0.0);
  const std::vector<uint32_t> counts = morgan_counts(smiles);
  for (size_t b = 0; b < kMorganBins; ++b) {
    require(f.cells[b] < input_size, ErrorCode::InvalidArgument, "molecule: a featurizer cell outside the input");
    image[f.cells[b]] = std::min(static_cast<double>(counts[b]), f.cap) / f.cap;
  }
  return image;
}

}  // namespace veil::chem
