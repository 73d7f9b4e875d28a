// What the CUDA backend (kernels/) exports to host code. Compiled only when
// VEIL_HAVE_CUDA is defined.
#pragma once

#include <memory>
#include <string>

#include "veil/backend.hpp"

namespace veil::cuda {

int device_count();                   // 0 when no usable device / driver
std::string device_description(int);  // name, memory, compute capability, peak bandwidth
double peak_bandwidth_gbs(int);       // memory clock x bus width x 2, GB/s (0 if unknown)
std::shared_ptr<Backend> make_backend(std::shared_ptr<const RnsTables> tables, int device);

}  // namespace veil::cuda
