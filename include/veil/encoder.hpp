// CKKS canonical-embedding encoder: N/2 complex slots. A vector shorter than
// the slot count is padded with zeros. Values are multiplied by `scale` and
// rounded; |value| * scale must stay below 2^120 (InvalidArgument otherwise).
#pragma once

#include <complex>
#include <span>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/extended.hpp"

namespace veil {

class Encoder {
 public:
  explicit Encoder(ContextPtr ctx);

  // Encodes at `level` (default: top level) and `scale` (default: the parameters' scale).
  Plaintext encode(std::span<const double> values, double scale = 0, int level = -1) const;
  Plaintext encode(std::span<const std::complex<double>> values, double scale = 0,
                   int level = -1) const;
  // The same value in every slot.
  Plaintext encode_constant(double value, double scale = 0, int level = -1) const;
  // encode() over Q_level u P (veil/extended.hpp): the plaintexts of double hoisting.
  // Its Q limbs are encode()'s words; the P limbs hold the same integers mod p_k.
  ExtendedPlaintext encode_extended(std::span<const double> values, double scale = 0, int level = -1) const;

  std::vector<std::complex<double>> decode_complex(const Plaintext& pt) const;
  std::vector<double> decode(const Plaintext& pt) const;  // real parts

  const ContextPtr& context() const { return ctx_; }

 private:
  Plaintext encode_coefficients(const std::vector<double>& coeffs, double scale, int level) const;
  ContextPtr ctx_;
};

}  // namespace veil
