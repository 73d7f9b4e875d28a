#include "veil/params.hpp"

#include <sodium.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "arith/modarith.hpp"
#include "arith/primes.hpp"
#include "veil/error.hpp"

namespace veil {

// Homomorphic Encryption Standard (Albrecht et al., 2018), Table 1, 128-bit
// classical security, uniform ternary secret, sigma ~ 3.2. The N = 65536 row is
// from OpenFHE's extended table (lattice estimator, same distributions).
int he_standard_max_log_qp(uint32_t log_n) {
  switch (log_n) {
    case 10: return 27;
    case 11: return 54;
    case 12: return 109;
    case 13: return 218;
    case 14: return 438;
    case 15: return 881;
    case 16: return 1772;
    default: return 0;
  }
}

ParameterSpec& ParameterSpec::with_dnum(int dnum, int p_bit_size) {
  require(dnum >= 1 && !q_bits.empty() && dnum <= static_cast<int>(q_bits.size()),
          ErrorCode::InvalidArgument, "dnum must be in [1, number of q primes]");
  size_t alpha = (q_bits.size() + dnum - 1) / dnum;
  p_bits.assign(alpha, p_bit_size);
  return *this;
}

Parameters Parameters::create(const ParameterSpec& spec) {
  require(spec.log_n >= 12 && spec.log_n <= 16, ErrorCode::InvalidArgument,
          "log_n must be in [12, 16], got " + std::to_string(spec.log_n));
  require(!spec.q_bits.empty(), ErrorCode::InvalidArgument, "q_bits must name at least one prime");
  require(!spec.p_bits.empty(), ErrorCode::InvalidArgument,
          "p_bits must name at least one special prime (hybrid key switching)");
  require(spec.q_bits.size() + spec.p_bits.size() <= 64, ErrorCode::InvalidArgument,
          "at most 64 primes in total");
  // Check security before spending time on prime generation.
  if (spec.security == Security::HEStandard128) {
    int total = 0;
    for (int b : spec.q_bits) total += b;
    for (int b : spec.p_bits) total += b;
    int bound = he_standard_max_log_qp(spec.log_n);
    require(total <= bound, ErrorCode::InsecureParameters,
            "log2(QP) = " + std::to_string(total) + " bits exceeds the 128-bit HE Standard bound of " +
                std::to_string(bound) + " bits for N = 2^" + std::to_string(spec.log_n) +
                " (use Security::InsecureTestingOnly only for tests)");
  }
  const uint64_t n = uint64_t{1} << spec.log_n;
  std::vector<uint64_t> chosen;
  auto pick = [&](int bits) {
    uint64_t q = arith::generate_ntt_primes(bits, n, 1, chosen).front();
    chosen.push_back(q);
    return q;
  };
  Parameters p;
  p.log_n_ = spec.log_n;
  for (int b : spec.q_bits) p.q_.push_back(pick(b));
  for (int b : spec.p_bits) p.p_.push_back(pick(b));
  p.default_scale_ = spec.default_scale == 0 ? std::ldexp(1.0, 40) : spec.default_scale;
  p.security_ = spec.security;
  p.validate_and_finish();
  return p;
}

Parameters Parameters::from_primes(uint32_t log_n, std::vector<uint64_t> q, std::vector<uint64_t> p,
                                   double default_scale, Security security) {
  Parameters out;
  out.log_n_ = log_n;
  out.q_ = std::move(q);
  out.p_ = std::move(p);
  out.default_scale_ = default_scale;
  out.security_ = security;
  out.validate_and_finish();
  return out;
}

void Parameters::validate_and_finish() {
  require(log_n_ >= 12 && log_n_ <= 16, ErrorCode::InvalidArgument, "log_n must be in [12, 16]");
  require(!q_.empty() && !p_.empty(), ErrorCode::InvalidArgument,
          "need at least one q prime and one special prime");
  require(q_.size() + p_.size() <= 64, ErrorCode::InvalidArgument, "at most 64 primes in total");
  const uint64_t two_n = 2 * n();
  std::vector<uint64_t> all(q_);
  all.insert(all.end(), p_.begin(), p_.end());
  for (size_t i = 0; i < all.size(); ++i) {
    uint64_t v = all[i];
    require(v > (uint64_t{1} << 19) && v < (uint64_t{1} << 61), ErrorCode::InvalidArgument,
            "every prime must lie in (2^19, 2^61)");
    require(v % two_n == 1, ErrorCode::InvalidArgument, "every prime must be 1 mod 2N");
    require(arith::is_prime(v), ErrorCode::InvalidArgument, "modulus " + std::to_string(v) + " is not prime");
    for (size_t j = 0; j < i; ++j)
      require(all[j] != v, ErrorCode::InvalidArgument, "primes must be distinct");
  }
  require(std::isfinite(default_scale_) && default_scale_ >= 2 &&
              std::log2(default_scale_) < std::log2(static_cast<double>(q_[0])) - 1,
          ErrorCode::InvalidArgument, "default scale must be in [2, q_0 / 2)");
  const int bound = he_standard_max_log_qp(log_n_);
  if (security_ == Security::HEStandard128) {
    require(log_qp() <= bound, ErrorCode::InsecureParameters,
            "log2(QP) = " + std::to_string(log_qp()) + " bits exceeds the 128-bit HE Standard bound of " +
                std::to_string(bound) + " bits for N = 2^" + std::to_string(log_n_));
  } else if (log_qp() > bound) {
    std::fprintf(stderr,
                 "*** VEIL WARNING: INSECURE PARAMETERS (log2 QP = %.1f > %d for N = 2^%u). "
                 "Testing only; never protect real data with them. ***\n",
                 log_qp(), bound, log_n_);
  }
  // Fingerprint: BLAKE2b over the defining fields.
  std::vector<uint64_t> words{log_n_, q_.size(), p_.size(), static_cast<uint64_t>(security_)};
  words.insert(words.end(), all.begin(), all.end());
  uint64_t scale_bits;
  std::memcpy(&scale_bits, &default_scale_, sizeof scale_bits);
  words.push_back(scale_bits);
  unsigned char digest[8];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(words.data()),
                     words.size() * sizeof(uint64_t), nullptr, 0);
  std::memcpy(&fingerprint_, digest, sizeof fingerprint_);
}

double Parameters::log_qp() const {
  double bits = 0;
  for (uint64_t v : q_) bits += std::log2(static_cast<double>(v));
  for (uint64_t v : p_) bits += std::log2(static_cast<double>(v));
  return bits;
}

Parameters Parameters::preset(uint32_t log_n) {
  ParameterSpec spec;
  spec.log_n = log_n;
  // Special primes are chosen so P exceeds every key-switching digit by >= 10
  // bits: key-switching noise is then far below the encoding noise.
  switch (log_n) {
    case 13:  // 190 bits: depth 2, dnum 3
      spec.q_bits = {50, 40, 40};
      spec.p_bits = {60};
      break;
    case 14:  // 438 bits: depth 7, dnum 4
      spec.q_bits = {50, 40, 40, 40, 40, 40, 40, 40};
      spec.p_bits = {54, 54};
      break;
    case 15:  // 880 bits: depth 16, dnum 6
      spec.q_bits.assign(17, 40);
      spec.q_bits[0] = 60;
      spec.p_bits = {60, 60, 60};
      break;
    case 16:  // 1770 bits: depth 34, dnum 5
      // Seven 50-bit special primes (P: 350 bits, the largest digit 300) instead of
      // five of 60 bits: the fewest digits the bound allows for this Q, so a key
      // switch converts and transforms 5 digits instead of 7 and its keys are 25%
      // smaller (docs/parameters.md). Below 2^50, P stays on the cpu's IFMA path.
      spec.q_bits.assign(35, 40);
      spec.q_bits[0] = 60;
      spec.p_bits.assign(7, 50);
      break;
    default:
      throw Error(ErrorCode::InvalidArgument, "presets exist for log_n 13..16");
  }
  return create(spec);
}

std::string Parameters::describe() const {
  std::ostringstream os;
  os << "N = 2^" << log_n_ << ", L = " << max_level() << " (" << q_.size() << " q primes), alpha = "
     << alpha() << ", dnum = " << dnum() << ", log2(QP) = " << log_qp()
     << ", scale = 2^" << std::log2(default_scale_)
     << (security_ == Security::HEStandard128 ? ", 128-bit secure" : ", INSECURE testing mode");
  return os.str();
}

}  // namespace veil
