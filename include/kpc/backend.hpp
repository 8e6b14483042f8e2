// SPDX-License-Identifier: MIT
// Which instruction set kpc's kernels use, and how to choose one (kpc/backend/ holds the plumbing:
// kernel tables, slab loops, dispatch units).
#ifndef KPC_BACKEND_HPP
#define KPC_BACKEND_HPP

#include <vector>

#include "backend/select.hpp"
#include "config.hpp"
#include "error.hpp"
#include "isa.hpp"

KPC_BEGIN_NAMESPACE

/// The instruction set kpc's kernels use now (in this translation unit: one built with fewer
/// instruction-set flags may run a lower one, see set_isa).
inline isa active_isa() { return detail::active_backend().level; }

/// Every instruction set kpc can use in this translation unit on this CPU, scalar first.
inline std::vector<isa> available_isas() {
  std::vector<isa> levels;
  for (const detail::backend* candidate : detail::runnable_backends())
    if (levels.empty() || levels.back() != candidate->level) levels.push_back(candidate->level);
  return levels;
}

/// Makes kpc use `level` (tests, benchmarks, or to cap an engine's instruction set), in every
/// translation unit of the program: each then runs the best it has at or below `level`. Throws
/// kpc::error(errc::unsupported) if the calling translation unit cannot run `level` on this CPU.
/// Not meant to race with calls that are encoding: set it before starting work.
inline void set_isa(isa level) {
  bool runnable = false;
  for (const detail::backend* candidate : detail::runnable_backends()) runnable = runnable || candidate->level == level;
  if (!runnable) detail::raisef(errc::unsupported, "instruction set %s is not available here", to_string(level));
  shared_detail::isa_request::level.store(static_cast<int>(level), std::memory_order_release);
}

/// Back to the best instruction set available, everywhere.
inline void reset_isa() { shared_detail::isa_request::level.store(-1, std::memory_order_release); }

KPC_END_NAMESPACE

#endif  // KPC_BACKEND_HPP
