// SPDX-License-Identifier: MIT
// kpc: KV-cache compression for LLM inference engines. The umbrella header.
#ifndef KPC_KPC_HPP
#define KPC_KPC_HPP

#include "config.hpp"
#include "error.hpp"
#include "format.hpp"
#include "half.hpp"
#include "backend.hpp"
#include "quantizer.hpp"
#include "rope.hpp"
#include "attention.hpp"
#include "cache.hpp"
#include "ref/per_channel.hpp"
#include "ref/per_token.hpp"

#endif  // KPC_KPC_HPP
