// veil-info: what this build of Veil can run on: the cpu backend (threads, AVX-512
// IFMA NTT), whether the CUDA backend was compiled in, and every visible CUDA
// device (id, name, memory, compute capability). Exit status 0.
#include <cstdio>
#include <string>

#include "veil/veil.hpp"

#ifndef VEIL_VERSION
#define VEIL_VERSION "unknown"
#endif

int main() {
  std::printf("Veil %s\n", VEIL_VERSION);
#if defined(__x86_64__) && defined(__GNUC__)
  const bool ifma = __builtin_cpu_supports("avx512ifma");
#else
  const bool ifma = false;
#endif
  std::printf("cpu backend:  available, %d OpenMP thread(s), AVX-512 IFMA NTT for primes < 2^50: %s\n",
              veil::cpu_threads(), ifma ? "yes" : "no");
  if (!veil::cuda_built()) {
    std::printf("cuda backend: not built (configure with -DVEIL_CUDA=ON and nvcc)\n");
  } else {
    const auto devices = veil::cuda_devices();
    std::printf("cuda backend: built, %zu device(s)%s\n", devices.size(),
                devices.empty() ? " (no device or driver visible)" : "");
    for (size_t d = 0; d < devices.size(); ++d) std::printf("  device %zu: %s\n", d, devices[d].c_str());
  }
  std::printf("BackendKind::Auto picks: %s\n", veil::cuda_available() ? "cuda (device 0)" : "cpu");
  return 0;
}
