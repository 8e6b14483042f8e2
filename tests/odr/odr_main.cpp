// SPDX-License-Identifier: MIT
// A baseline and an AVX2 build of the same engine code in one program (engine_unit.cpp): each
// must run its own kpc (separate definitions, its own instruction set), write the same bytes, and
// follow a set_isa made in either unit.
#include <cstdio>
#include <random>
#include <vector>

#include "engine_unit.hpp"
#include <kpc/isa.hpp>

namespace {
int failures = 0;
void expect(bool condition, const char* what) {
  if (!condition) {
    std::printf("FAILED: %s\n", what);
    ++failures;
  }
}
bool cpu_runs_avx2_unit() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");  // (F16C comes with them)
#else
  return false;
#endif
}
const char* name(int level) { return kpc::to_string(static_cast<kpc::isa>(level)); }
}  // namespace

int main() {
  const std::size_t tokens = 77, channels = 96;
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> k(tokens * channels);
  for (float& x : k) x = normal(gen);

  const engine_report base = engine_baseline(k.data(), tokens, channels);
  std::printf("baseline unit: %s, encode at %p\n", name(base.active_isa), base.encode);
  expect(base.active_isa < static_cast<int>(kpc::isa::avx2), "the baseline unit runs below AVX2 (its own kernels)");
  if (!cpu_runs_avx2_unit()) {
    std::printf("SKIPPED the AVX2 unit's checks: this CPU cannot run AVX2 code\n");
    return failures == 0 ? 0 : 1;
  }
  const engine_report avx2 = engine_avx2(k.data(), tokens, channels);
  std::printf("AVX2 unit: %s, encode at %p\n", name(avx2.active_isa), avx2.encode);
  expect(avx2.active_isa == static_cast<int>(kpc::isa::avx2), "the AVX2 unit runs its AVX2 kernels");
  expect(avx2.encode != base.encode, "each unit has its own definition of Quantizer::encode");
  expect(avx2.checksum == base.checksum, "both units write the same bytes");

  // set_isa in one unit caps every unit.
  engine_baseline_set_isa(static_cast<int>(kpc::isa::scalar));
  const engine_report base_scalar = engine_baseline(k.data(), tokens, channels);
  const engine_report avx2_scalar = engine_avx2(k.data(), tokens, channels);
  expect(base_scalar.active_isa == static_cast<int>(kpc::isa::scalar), "set_isa(scalar) in the baseline unit: it runs scalar");
  expect(avx2_scalar.active_isa == static_cast<int>(kpc::isa::scalar), "set_isa(scalar) in the baseline unit: the AVX2 unit runs scalar");
  expect(base_scalar.checksum == base.checksum && avx2_scalar.checksum == base.checksum, "the scalar reference writes the same bytes");
  engine_baseline_reset_isa();
  expect(engine_avx2(k.data(), tokens, channels).active_isa == static_cast<int>(kpc::isa::avx2), "reset_isa: AVX2 again");
  engine_avx2_set_isa(static_cast<int>(kpc::isa::scalar));
  expect(engine_baseline(k.data(), tokens, channels).active_isa == static_cast<int>(kpc::isa::scalar),
         "set_isa(scalar) in the AVX2 unit: the baseline unit runs scalar");
  engine_baseline_reset_isa();
  expect(engine_baseline(k.data(), tokens, channels).active_isa == base.active_isa, "reset_isa: the baseline's best again");
  std::printf("%s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
