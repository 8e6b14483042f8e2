// SPDX-License-Identifier: MIT
// What each of the two kpc versions linked into tests/versions' program reports.
#ifndef KPC_TESTS_VERSION_UNIT_HPP
#define KPC_TESTS_VERSION_UNIT_HPP

#include <cstddef>
#include <cstdint>

struct engine_report {
  const char* version;    ///< kpc::version() as the unit's kpc answers it at run time
  int version_macro;      ///< KPC_VERSION the unit was compiled with
  std::uint32_t checksum;  ///< of the K4 bytes the unit's kpc encoded
};

engine_report engine_with_this_kpc(const float* k, std::size_t tokens, std::size_t channels);
engine_report engine_with_other_kpc(const float* k, std::size_t tokens, std::size_t channels);

#endif  // KPC_TESTS_VERSION_UNIT_HPP
