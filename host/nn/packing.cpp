// Packing names, as the CLI, model files' descriptions and the server spell them.
#include "veil/error.hpp"
#include "veil/nn/model.hpp"

namespace veil::nn {

std::string packing_name(Packing p) {
  switch (p) {
    case Packing::Taps: return "taps";
    case Packing::Im2col: return "im2col";
    case Packing::Spatial: return "spatial";
    case Packing::Slots: return "slots";
  }
  return "?";
}

Packing parse_packing(const std::string& name) {
  if (name == "taps") return Packing::Taps;
  if (name == "im2col") return Packing::Im2col;
  if (name == "spatial") return Packing::Spatial;
  if (name == "slots") return Packing::Slots;
  throw Error(ErrorCode::InvalidArgument, "unknown packing \"" + name + "\": use taps, im2col, spatial or slots");
}

}  // namespace veil::nn
