// SPDX-License-Identifier: MIT
// Encodes and decodes a K tile with kpc from the Conan package; non-zero exit on any failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <kpc/kpc.hpp>
#include <string>
#include <vector>

int main() {
  const std::string version = std::to_string(KPC_VERSION_MAJOR) + "." + std::to_string(KPC_VERSION_MINOR) + "." +
                              std::to_string(KPC_VERSION_PATCH);
#ifdef KPC_EXPECTED_VERSION
  if (version != KPC_EXPECTED_VERSION) {
    std::printf("kpc conan test_package: FAILED: headers say %s, the package is %s\n", version.c_str(), KPC_EXPECTED_VERSION);
    return 1;
  }
#endif
#if !KPC_SIMD
  std::printf("kpc conan test_package: FAILED: xsimd's headers were not found (the package requires xsimd)\n");
  return 1;
#endif

  const std::size_t tokens = 40, channels = 64;  // one whole tile of 32 tokens and a partial one
  std::vector<float> k(tokens * channels);
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::sin(static_cast<float>(i));
  using KQ = kpc::Quantizer<4, kpc::PerChannel<32>>;
  std::vector<std::byte> bytes(KQ::encoded_bytes(tokens, channels));
  KQ::encode(k.data(), tokens, channels, bytes.data());
  std::vector<float> back(k.size());
  KQ::decode(bytes.data(), tokens, channels, back.data());
  double worst = 0.0;
  for (std::size_t i = 0; i < k.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(k[i] - back[i])));
  const bool ok = worst < 2.0 / 15 / 2 + 0.01;  // range 2 over 15 steps: half a step plus metadata rounding
  std::printf("kpc conan test_package: %s: kpc %s, %s kernels, %zu bytes for %zux%zu, largest error %.4f\n",
              ok ? "OK" : "FAILED", version.c_str(), kpc::to_string(kpc::active_isa()), bytes.size(), tokens, channels, worst);
  return ok ? 0 : 1;
}
