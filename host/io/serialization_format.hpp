// Blob layout constants shared by host/serialization.cpp and the tests (which
// craft hostile blobs). The format is described in docs/serialization.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "veil/serialization.hpp"

namespace veil::format {

inline constexpr uint8_t kMagic[4] = {'V', 'E', 'I', 'L'};
inline constexpr uint16_t kVersion = 2;  // 2: bit-packed coefficients
// magic, u16 version, u16 type, u64 fingerprint, u64 payload length
inline constexpr size_t kHeaderBytes = 4 + 2 + 2 + 8 + 8;
inline constexpr size_t kVersionOffset = 4;
inline constexpr size_t kTypeOffset = 6;
inline constexpr size_t kFingerprintOffset = 8;
inline constexpr size_t kLengthOffset = 16;
inline constexpr size_t kChecksumBytes = 16;  // BLAKE2b-128

enum class ObjectType : uint16_t {
  Parameters = 1,
  Ciphertext = 2,
  Plaintext = 3,
  PublicKey = 4,
  RelinKey = 5,
  GaloisKeys = 6,
  SecretKey = 7,
  Model = 8,  // nn::ModelFile (include/veil/nn/model_file.hpp)
};

// How the uniform half of an object is stored.
// How a polynomial that is uniform under a seed is stored: whole, or as the seed.
// 1 was the sequential rejection sampler of Veil before the counter-based one
// (arith/sampling_rules.hpp); such blobs are refused with a message, not misread.
enum Encoding : uint8_t { kFull = 0, kSeededSequential = 1, kSeeded = 2 };

// BLAKE2b with a 16-byte output over `data` (libsodium crypto_generichash).
void checksum(std::span<const uint8_t> data, uint8_t out[kChecksumBytes]);

// A whole blob around `payload` (header, payload, checksum), for objects written by
// other layers (the model file).
Bytes seal(ObjectType type, uint64_t fingerprint, ByteView payload);
// The payload of a blob after every frame check (size limit, magic, version, length,
// checksum, type: Error(Serialization) otherwise); its fingerprint in `fingerprint`.
ByteView open(ByteView blob, ObjectType want, const SerializationLimits& limits, uint64_t& fingerprint);

}  // namespace veil::format
