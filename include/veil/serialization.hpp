// Versioned binary serialization (format: docs/serialization.md).
//
// Every blob: magic "VEIL", format version, object type, the parameter
// fingerprint, payload length, payload, and a BLAKE2b-128 checksum over all
// of it. Loading checks everything (magic, version, type, fingerprint against
// the context, sizes against the parameters and the limits below, every
// coefficient < its prime, the checksum) and throws Error(Serialization) on
// any mismatch; it never reads out of bounds or allocates more than the
// limits allow.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "veil/ciphertext.hpp"
#include "veil/keys.hpp"
#include "veil/params.hpp"

namespace veil {

struct SerializationLimits {
  uint64_t max_blob_bytes = uint64_t{16} << 30;  // refuse larger blobs
  uint32_t max_galois_keys = 1024;
  // Parameters blobs marked Security::InsecureTestingOnly load only when the caller
  // says so: a security level is never taken from the data itself (a peer could lower it).
  bool allow_insecure_parameters = false;
};

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

Bytes serialize(const Parameters& params);
Parameters deserialize_parameters(ByteView blob, const SerializationLimits& limits = {});

// `compress`: send the seed instead of the uniform half when the object has one
// (secret-key ciphertexts, public keys, switching keys).
Bytes serialize(const Ciphertext& ct, bool compress = true);
Ciphertext deserialize_ciphertext(const ContextPtr& ctx, ByteView blob,
                                  const SerializationLimits& limits = {});

Bytes serialize(const Plaintext& pt);
Plaintext deserialize_plaintext(const ContextPtr& ctx, ByteView blob,
                                const SerializationLimits& limits = {});

Bytes serialize(const PublicKey& pk, bool compress = true);
PublicKey deserialize_public_key(const ContextPtr& ctx, ByteView blob,
                                 const SerializationLimits& limits = {});

Bytes serialize(const RelinKey& rk, bool compress = true);
RelinKey deserialize_relin_key(const ContextPtr& ctx, ByteView blob,
                               const SerializationLimits& limits = {});

Bytes serialize(const GaloisKeys& gk, bool compress = true);
GaloisKeys deserialize_galois_keys(const ContextPtr& ctx, ByteView blob,
                                   const SerializationLimits& limits = {});

// Splits a concatenation of blobs (a request body, a query file) at the lengths in
// their headers. Checks the framing only (magic and lengths): each blob must still be
// loaded by its own deserialize_*. Error(Serialization), naming the blob and its byte
// offset, when the data does not split exactly into at most max_blobs blobs.
std::vector<ByteView> split_blobs(ByteView data, size_t max_blobs);

// The secret key is for the client's own storage only: never send it.
Bytes serialize_secret_key(const SecretKey& sk);
SecretKey deserialize_secret_key(const ContextPtr& ctx, ByteView blob,
                                 const SerializationLimits& limits = {});

}  // namespace veil
