// Device NTT in two passes per transform, each pass a tile of up to 2^11 words
// per block, worked in rounds of up to three radix-2 stages held in registers.
//
// The forward transform is the CPU's radix-2 Cooley-Tukey sequence: stage s
// (s = 0 .. log N - 1) has 2^s groups of half-width t = N >> (s + 1), and
// group i uses the twiddle root[2^s + i]. With C = min(2^11, N / 2) and
// R = N / C:
//  * the first log R stages (t >= C) only combine elements that are C apart:
//    element j of every run of C is an independent R-point problem. The
//    "strided" pass takes a tile of R rows x (2^11 / R) adjacent columns
//    (coalesced rows) and runs those stages;
//  * the remaining log C stages (t < C) stay inside aligned runs of C
//    elements: the "contiguous" pass runs them on one run per block and
//    reduces the output from [0, 4q) to [0, q).
// The inverse runs the Gentleman-Sande stages in the opposite order
// (contiguous pass first) and folds 1/N into its last stage, as the CPU does.
//
// Inside a pass, stage k of the tile pairs elements 2^(log len - 1 - k) apart
// in tile order, whichever pass it is. A round of r <= 3 consecutive stages
// splits the tile into units of 2^r elements (spaced by the round's smallest
// distance); each thread loads its units into registers, runs all r stages on
// them (7 twiddle pairs, 12 butterflies for r = 3) and stores them back, so a
// transform of 2^16 needs 2 + 4 rounds and as many barriers instead of 16
// stages with one barrier each. The first round of a pass reads global memory
// directly and the last one writes it directly when their units are coalesced
// (spacing >= 32 words); otherwise the tile goes through shared memory, whose
// word order is XOR-swizzled so that both unit shapes are free of bank conflicts.
// Butterflies are Harvey's lazy ones with the same Shoup twiddles and both
// outputs are fully reduced, so the results are the CPU's canonical words.
#include "ntt_kernels.cuh"
#include "ntt_passes.cuh"

namespace veil::cuda {
namespace {

void check_size(uint32_t log_n) {
  require(log_n >= kNttMinLogN && log_n <= kNttMaxLogN, ErrorCode::Unsupported,
          "cuda NTT: N must be 2^11 .. 2^17");
}

InPlaceIo in_place(const DeviceTablesView& tv, const LimbMap& map, uint64_t* data) {
  return InPlaceIo{data, map.poly_stride, tv.log_n};
}

}  // namespace

void ntt_forward(const DeviceTablesView& tv, const LimbMap& map, uint64_t* data, cudaStream_t stream) {
  check_size(tv.log_n);
  const InPlaceIo io = in_place(tv, map, data);
  launch_forward(tv, map, io, io, stream, "ntt_forward");
}

void ntt_inverse(const DeviceTablesView& tv, const LimbMap& map, uint64_t* data, cudaStream_t stream) {
  check_size(tv.log_n);
  const InPlaceIo io = in_place(tv, map, data);
  launch_inverse(tv, map, io, io, stream, "ntt_inverse");
}

}  // namespace veil::cuda
