// CKKS parameters: ring degree, modulus chain, special primes for hybrid key
// switching, default scale, and the security check against the Homomorphic
// Encryption Standard (128-bit classical, ternary secret, sigma = 3.2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace veil {

enum class Security {
  HEStandard128,        // refuse parameters above the 128-bit log2(QP) bound
  InsecureTestingOnly,  // accept anything; prints a loud warning. Never deploy.
};

// What a caller asks for. Bit sizes are the sizes of primes to generate:
// a b-bit prime q satisfies 2^(b-1) < q < 2^b and q = 1 (mod 2N).
struct ParameterSpec {
  uint32_t log_n = 14;             // N = 2^log_n, 12 <= log_n <= 16
  std::vector<int> q_bits;         // q_0 .. q_L (q_0 is the decryption prime); each 20..61 bits
  std::vector<int> p_bits;         // special primes P (alpha of them); each 20..61 bits, >= 1 prime
  double default_scale = 0;        // 0 means 2^40; must be > 1 and < q_0
  Security security = Security::HEStandard128;

  // Fills p_bits with alpha = ceil((L+1) / dnum) primes of `p_bit_size` bits,
  // so key switching uses `dnum` digits at the top level.
  ParameterSpec& with_dnum(int dnum, int p_bit_size = 60);
};

// Immutable, validated parameters with concrete primes.
class Parameters {
 public:
  // Generates primes for `spec` and validates them. Throws Error
  // (InvalidArgument or InsecureParameters).
  static Parameters create(const ParameterSpec& spec);
  // Builds parameters from explicit primes (used by deserialization). Checks
  // that every value is an NTT-friendly prime below 2^61, all distinct.
  static Parameters from_primes(uint32_t log_n, std::vector<uint64_t> q, std::vector<uint64_t> p,
                                double default_scale, Security security);
  // Ready 128-bit presets for log_n = 13, 14, 15, 16 (scale 2^40). See docs/parameters.md.
  static Parameters preset(uint32_t log_n);

  uint32_t log_n() const { return log_n_; }
  uint64_t n() const { return uint64_t{1} << log_n_; }
  uint64_t slots() const { return n() / 2; }
  const std::vector<uint64_t>& q() const { return q_; }
  const std::vector<uint64_t>& p() const { return p_; }
  uint32_t max_level() const { return static_cast<uint32_t>(q_.size()) - 1; }  // L
  uint32_t alpha() const { return static_cast<uint32_t>(p_.size()); }
  // Number of key-switching digits at the top level: ceil((L+1) / alpha).
  uint32_t dnum() const { return (max_level() + 1 + alpha() - 1) / alpha(); }
  double default_scale() const { return default_scale_; }
  Security security() const { return security_; }
  double log_qp() const;  // log2(Q * P), bits
  // 64-bit digest of (log_n, primes, scale, security): identifies a parameter set in blobs.
  uint64_t fingerprint() const { return fingerprint_; }
  std::string describe() const;

 private:
  Parameters() = default;
  void validate_and_finish();
  uint32_t log_n_ = 0;
  std::vector<uint64_t> q_, p_;
  double default_scale_ = 0;
  Security security_ = Security::HEStandard128;
  uint64_t fingerprint_ = 0;
};

// Largest log2(Q*P) with 128-bit classical security for ternary secrets and
// sigma = 3.2 (HE Standard 2018, Table 1; N = 65536 from OpenFHE's extended
// table). Returns 0 for unsupported log_n.
int he_standard_max_log_qp(uint32_t log_n);

}  // namespace veil
