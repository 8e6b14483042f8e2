// SPDX-License-Identifier: MIT
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <kpc/kpc.hpp>
#include <vector>

int main() {
  const std::size_t tokens = 40, channels = 64;
  std::vector<float> k(tokens * channels);
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::sin(static_cast<float>(i));
  using KQ = kpc::Quantizer<4, kpc::PerChannel<32>>;
  std::vector<std::byte> bytes(KQ::encoded_bytes(tokens, channels));
  KQ::encode(k.data(), tokens, channels, bytes.data());
  std::vector<float> back(k.size());
  KQ::decode(bytes.data(), tokens, channels, back.data());
  double worst = 0.0;
  for (std::size_t i = 0; i < k.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(k[i] - back[i])));
  std::printf("kpc %d.%d.%d consumer: largest error %.4f\n", KPC_VERSION_MAJOR, KPC_VERSION_MINOR, KPC_VERSION_PATCH, worst);
  return worst < 2.0 / 15 / 2 + 0.01 ? 0 : 1;  // range 2 over 15 steps: half a step plus metadata rounding
}
