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
  std::printf("kpc %d.%d.%d consumer: largest error %.4f (%s)\n", KPC_VERSION_MAJOR, KPC_VERSION_MINOR,
              KPC_VERSION_PATCH, worst, kpc::to_string(kpc::active_isa()));
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // With the AVX2 unit linked, a CPU that has AVX2 runs it (or better).
  constexpr bool avx2_unit = (KPC_DISPATCH_UNITS >> static_cast<int>(kpc::isa::avx2) & 1) != 0;
  const bool avx2_cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");  // (F16C comes with AVX2)
  if (avx2_unit && avx2_cpu && static_cast<int>(kpc::active_isa()) < static_cast<int>(kpc::isa::avx2)) {
    std::printf("the AVX2 dispatch unit is linked but %s runs\n", kpc::to_string(kpc::active_isa()));
    return 1;
  }
#endif
  return worst < 2.0 / 15 / 2 + 0.01 ? 0 : 1;  // range 2 over 15 steps: half a step plus metadata rounding
}
