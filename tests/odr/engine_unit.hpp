// SPDX-License-Identifier: MIT
// What each build of engine_unit.cpp reports to odr_main.cpp (plain types: kpc's own types are
// distinct types in units built with different flags).
#ifndef KPC_TESTS_ODR_ENGINE_UNIT_HPP
#define KPC_TESTS_ODR_ENGINE_UNIT_HPP

#include <cstddef>
#include <cstdint>

struct engine_report {
  int active_isa;             // kpc::active_isa() as this unit sees it
  const void* encode;         // the address of the kpc encode function this unit calls
  std::uint32_t checksum;     // FNV-1a of the bytes it encoded
};

engine_report engine_baseline(const float* k, std::size_t tokens, std::size_t channels);
engine_report engine_avx2(const float* k, std::size_t tokens, std::size_t channels);
// kpc::set_isa / reset_isa, called from inside each unit (level: a kpc::isa value).
void engine_baseline_set_isa(int level);
void engine_avx2_set_isa(int level);
void engine_baseline_reset_isa();

#endif  // KPC_TESTS_ODR_ENGINE_UNIT_HPP
