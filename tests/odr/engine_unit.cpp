// SPDX-License-Identifier: MIT
// One engine's use of kpc, compiled twice by tests/CMakeLists.txt: with the build's baseline flags
// and with -mavx2 -mfma -mf16c (KPC_TEST_ENGINE names the functions). Built without optimization
// or inlining, so every call goes to the symbol the linker chose: were kpc's inline functions
// not in a namespace named after the flags, one copy would serve both units, and the baseline
// unit could run AVX2 code (SIGILL on a CPU without it) or report the other unit's state.
#include <kpc/kpc.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine_unit.hpp"

#define KPC_TEST_PASTE2(a, b) a##b
#define KPC_TEST_PASTE(a, b) KPC_TEST_PASTE2(a, b)

using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;

engine_report KPC_TEST_ENGINE(const float* k, std::size_t tokens, std::size_t channels) {
  std::vector<std::byte> bytes(K4::encoded_bytes(tokens, channels));
  void (*encode)(const float*, std::size_t, std::size_t, std::byte*) = &K4::encode<float>;
  encode(k, tokens, channels, bytes.data());
  std::uint32_t checksum = 2166136261u;
  for (std::byte b : bytes) checksum = (checksum ^ static_cast<std::uint32_t>(b)) * 16777619u;
  return {static_cast<int>(kpc::active_isa()), reinterpret_cast<const void*>(encode), checksum};
}

void KPC_TEST_PASTE(KPC_TEST_ENGINE, _set_isa)(int level) { kpc::set_isa(static_cast<kpc::isa>(level)); }
void KPC_TEST_PASTE(KPC_TEST_ENGINE, _reset_isa)() { kpc::reset_isa(); }
