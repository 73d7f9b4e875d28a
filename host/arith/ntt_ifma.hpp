// AVX-512 IFMA NTT stages for primes below 2^50 (52-bit multiply-add, the
// technique Intel HEXL builds on). Chosen at run time; the portable scalar NTT
// is the fallback. Outputs are the canonical residues in [0, q), identical to
// the scalar path's.
#pragma once

#include <cstdint>

namespace veil::arith::ifma {

// True when the CPU supports AVX-512F + IFMA (checked once).
bool available();

// Forward (Cooley-Tukey) stages with half-width t >= 8 for m in [m_begin, m_end),
// values kept in [0, 4q). roots / roots52: psi^brev(i) and floor(w 2^52 / q).
void forward_stages(uint64_t* a, uint64_t n, uint64_t q, const uint64_t* roots, const uint64_t* roots52,
                    uint64_t m_begin, uint64_t m_end);
// Inverse (Gentleman-Sande) stages for m from m_begin down to m_end (exclusive),
// half-width t >= 8, values kept in [0, 2q).
void inverse_stages(uint64_t* a, uint64_t n, uint64_t q, const uint64_t* roots, const uint64_t* roots52,
                    uint64_t m_begin, uint64_t m_end);
// The last three forward stages (half-width 4, 2, 1: butterflies inside 8-element
// groups) on 16-element blocks held in registers, lanes regrouped with permutes;
// inputs in [0, 4q), outputs fully reduced to [0, q). n >= 16.
void forward_last_stages(uint64_t* a, uint64_t n, uint64_t q, const uint64_t* roots, const uint64_t* roots52);
// The first three inverse stages (half-width 1, 2, 4), same scheme; [0, 2q) in and out.
void inverse_first_stages(uint64_t* a, uint64_t n, uint64_t q, const uint64_t* roots, const uint64_t* roots52);
// a[i] = a[i] * w mod q for a[i] < 4q (w52 = floor(w 2^52 / q)), output in [0, q).
void multiply_reduce(uint64_t* a, uint64_t n, uint64_t q, uint64_t w, uint64_t w52);

}  // namespace veil::arith::ifma
