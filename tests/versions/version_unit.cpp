// SPDX-License-Identifier: MIT
// One engine's use of kpc, compiled twice by tests/CMakeLists.txt: against this tree and against a
// copy whose version says 0.99. Built without optimization or inlining, so every call goes to the
// symbol the linker chose: without the versioned inline namespace both units' kpc functions would
// have the same names, one copy would serve both, and main would see one version twice.
#include <kpc/kpc.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "version_unit.hpp"

engine_report KPC_TEST_UNIT_FUNCTION(const float* k, std::size_t tokens, std::size_t channels) {
  using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;
  std::vector<std::byte> bytes(K4::encoded_bytes(tokens, channels));
  K4::encode(k, tokens, channels, bytes.data());
  std::uint32_t checksum = 2166136261u;  // FNV-1a of the encoded bytes
  for (std::byte b : bytes) checksum = (checksum ^ static_cast<std::uint32_t>(b)) * 16777619u;
  return {kpc::version(), KPC_VERSION, checksum};
}
