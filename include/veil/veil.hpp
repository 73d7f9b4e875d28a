// Umbrella header: everything a Veil user needs.
#pragma once

#include "veil/backend.hpp"
#include "veil/ciphertext.hpp"
#include "veil/context.hpp"
#include "veil/encoder.hpp"
#include "veil/encryptor.hpp"
#include "veil/error.hpp"
#include "veil/evaluator.hpp"
#include "veil/keygen.hpp"
#include "veil/keys.hpp"
#include "veil/params.hpp"
#include "veil/random.hpp"
#include "veil/recorded_computation.hpp"
#include "veil/serialization.hpp"
#include "veil/stream_scope.hpp"
