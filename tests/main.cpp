// SPDX-License-Identifier: MIT
// Test runner: Debian's doctest has no doctest_with_main, so the main lives here. It picks the
// run's seed (KPC_TEST_SEED overrides) and prints it so a failure can be replayed.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#if defined(__ARM_FEATURE_DOTPROD) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include "support.hpp"

namespace {
std::uint64_t choose_seed() {
  if (const char* env = std::getenv("KPC_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}
const std::uint64_t seed = choose_seed();
}  // namespace

std::uint64_t kpc_test::run_seed() { return seed; }

int main(int argc, char** argv) {
#if defined(__AVX512VNNI__) && (defined(__GNUC__) || defined(__clang__))
  // kpc_tests_avx512_vnni is built for AVX-512 (F, BW, DQ, VL) with VNNI.
  if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq")) {
    std::printf("kpc tests: built for AVX-512 with VNNI, which this CPU lacks; skipped (nothing was checked)\n");
    return 77;
  }
#endif
#if defined(__ARM_FEATURE_DOTPROD) && defined(__linux__)
  // kpc_tests_dotprod is built for AArch64 with the dot-product extension.
  if (!(getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) {
    std::printf("kpc tests: built for AArch64 with the dot-product extension, which this CPU lacks; skipped\n");
    return 77;
  }
#endif
#if defined(__AVX2__) && (defined(__GNUC__) || defined(__clang__))
  // kpc_tests_header_only is built for AVX2 + FMA (+ F16C, which every AVX2 CPU has).
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::printf("kpc tests: built for AVX2 + FMA, which this CPU lacks; skipped (nothing was checked)\n");
    return 77;
  }
#endif
  std::printf("kpc tests: seed %llu (replay with KPC_TEST_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  doctest::Context context(argc, argv);
  return context.run();
}
