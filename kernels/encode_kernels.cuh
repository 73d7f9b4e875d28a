// CKKS encoding on the device: the special FFT's butterflies (host/arith/special_fft.cpp)
// with the same roots and the same IEEE operations (explicit _rn intrinsics, so nvcc
// fuses nothing into FMAs), then scaling, rounding and residues.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "device_tables.cuh"

namespace veil::cuda {

// std::complex<double>'s layout: real, imaginary.
struct ComplexDouble {
  double re, im;
};

// v (slots values, in place) -> the host's to_coefficients before its final
// permutation; roots: SpecialFft::encode_roots() (slots - 1 of them).
void special_fft_encode(ComplexDouble* v, const ComplexDouble* roots, uint64_t slots, cudaStream_t stream);
// out (every limb of map) = residues of rint(c_i * inv * scale), c_i the real (i < slots)
// or imaginary (i >= slots) part of v at bit-reversed i mod slots. Every rounded value
// must be below 2^63 in magnitude (the caller checks a bound first).
void encode_round_to_rns(const DeviceTablesView& tv, const LimbMap& map, uint64_t* out, const ComplexDouble* v,
                         double inv, double scale, cudaStream_t stream);

}  // namespace veil::cuda
