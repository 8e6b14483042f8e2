// SPDX-License-Identifier: MIT
// Two engines that bundle different kpc versions, linked into one program: each must run its own
// kpc (version() and KPC_VERSION agree within each unit and differ between them), and both write
// the same bytes (the format did not change between the two).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "version_unit.hpp"

int main() {
  constexpr std::size_t tokens = 40, channels = 48;
  std::vector<float> k(tokens * channels);
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  const engine_report mine = engine_with_this_kpc(k.data(), tokens, channels);
  const engine_report other = engine_with_other_kpc(k.data(), tokens, channels);
  std::printf("this kpc: %s (%d), other kpc: %s (%d), checksums %08x %08x\n", mine.version, mine.version_macro,
              other.version, other.version_macro, mine.checksum, other.checksum);
  const auto matches = [](const engine_report& r) {
    char expected[32];
    std::snprintf(expected, sizeof expected, "%d.%d.%d", r.version_macro / 10000, r.version_macro / 100 % 100,
                  r.version_macro % 100);
    return std::strcmp(r.version, expected) == 0;
  };
  const bool ok = matches(mine) && matches(other) && mine.version_macro != other.version_macro &&
                  mine.checksum == other.checksum;
  std::printf("%s\n", ok ? "two kpc versions coexist" : "FAILED: the two kpc versions interfered");
  return ok ? 0 : 1;
}
