// SPDX-License-Identifier: MIT
// A program built with nothing but `pkg-config --cflags kpc`: K round trip through the 4-bit
// per-channel format. Prints the header version for pkgconfig_test.sh to compare.
#include <kpc/kpc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const std::size_t tokens = 40, channels = 64;  // a partial second tile of 8 tokens
  std::vector<float> k(tokens * channels);
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.37f * static_cast<float>(i));
  using KQ = kpc::Quantizer<4, kpc::PerChannel<32>>;
  std::vector<std::byte> bytes(KQ::encoded_bytes(tokens, channels));
  KQ::encode(k.data(), tokens, channels, bytes.data());
  std::vector<float> back(k.size());
  KQ::decode(bytes.data(), tokens, channels, back.data());
  double worst = 0.0;
  for (std::size_t i = 0; i < k.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(k[i] - back[i])));
  std::printf("version %d.%d.%d simd %d isa %s error %.4f\n", KPC_VERSION_MAJOR, KPC_VERSION_MINOR, KPC_VERSION_PATCH,
              KPC_SIMD, kpc::to_string(kpc::active_isa()), worst);
  return worst < 2.0 / 15 / 2 + 0.01 ? 0 : 1;  // range 2 over 15 steps: half a step plus metadata rounding
}
