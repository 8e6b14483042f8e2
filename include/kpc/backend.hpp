// SPDX-License-Identifier: MIT
// Which kernels kpc runs: the scalar reference, xsimd compiled for this translation unit's
// instruction set (xsimd::default_arch: -march=native builds get AVX2/AVX-512/NEON header-only),
// and, when the program is built with run-time dispatch units (cmake: kpc_add_runtime_dispatch),
// the best unit the CPU supports. Every backend writes the same bytes.
#ifndef KPC_BACKEND_HPP
#define KPC_BACKEND_HPP

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "config.hpp"
#include "detail/kernel_table.hpp"
#include "detail/slab.hpp"
#include "error.hpp"

#if !defined(KPC_NO_SIMD) && defined(__has_include)
#if __has_include(<xsimd/xsimd.hpp>)
#define KPC_SIMD 1
#endif
#endif
#ifndef KPC_SIMD
#define KPC_SIMD 0
#endif

#if KPC_SIMD
#include "simd/kernels.hpp"
#endif

KPC_BEGIN_NAMESPACE

/// Instruction sets kpc's kernels can run on, in order of preference.
enum class isa : int {
  scalar = KPC_KERNELS_ABI::isa_scalar,
  sse2 = KPC_KERNELS_ABI::isa_sse2,
  sse4_2 = KPC_KERNELS_ABI::isa_sse4_2,
  avx = KPC_KERNELS_ABI::isa_avx,
  avx2 = KPC_KERNELS_ABI::isa_avx2,
  avx512 = KPC_KERNELS_ABI::isa_avx512,
  neon = KPC_KERNELS_ABI::isa_neon,
};

constexpr const char* to_string(isa level) noexcept {
  switch (level) {
    case isa::scalar: return "scalar";
    case isa::sse2: return "sse2";
    case isa::sse4_2: return "sse4.2";
    case isa::avx: return "avx";
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
    case isa::neon: return "neon";
  }
  return "unknown";
}

namespace detail {

#if KPC_SIMD
using compile_time_arch = xsimd::default_arch;
#else
struct compile_time_arch {};
#endif

/// Tables this program can run on this CPU, best last. Templated on the translation unit's
/// compile-time arch, so units built with different -m flags never share a definition.
template <class Arch>
std::vector<const kernel_table*> runnable_tables() {
  std::vector<const kernel_table*> tables = {&scalar_table()};
#if KPC_SIMD
  if (const kernel_table* own = simd::compile_time_table<Arch>()) tables.push_back(own);
#if defined(KPC_DISPATCH_SSE4_2) || defined(KPC_DISPATCH_AVX2) || defined(KPC_DISPATCH_AVX512)
  const auto cpu = xsimd::available_architectures();
#endif
#if defined(KPC_DISPATCH_SSE4_2)
  if (cpu.sse4_2) tables.push_back(KPC_KERNELS_ABI::unit_table_sse4_2());
#endif
#if defined(KPC_DISPATCH_AVX2)
  if (cpu.fma3_avx2 && simd::cpu_has_f16c()) tables.push_back(KPC_KERNELS_ABI::unit_table_avx2());
#endif
#if defined(KPC_DISPATCH_AVX512)
  if (cpu.avx512bw && simd::cpu_has_f16c()) tables.push_back(KPC_KERNELS_ABI::unit_table_avx512());
#endif
#endif
  // Best last; on a tie the table compiled into this translation unit wins over a unit's.
  std::stable_sort(tables.begin(), tables.end(), [](const kernel_table* a, const kernel_table* b) { return a->isa < b->isa; });
  return tables;
}

template <class Arch>
struct backend_state {
  static inline std::atomic<const kernel_table*> active{nullptr};
};

template <class Arch>
const kernel_table& active_table() {
  const kernel_table* table = backend_state<Arch>::active.load(std::memory_order_acquire);
  if (table == nullptr) {
    table = runnable_tables<Arch>().back();
    backend_state<Arch>::active.store(table, std::memory_order_release);
  }
  return *table;
}

}  // namespace detail

/// The instruction set kpc's kernels use now.
template <class Arch = detail::compile_time_arch>
isa active_isa() {
  return static_cast<isa>(detail::active_table<Arch>().isa);
}

/// Every instruction set kpc can use in this program on this CPU, scalar first.
template <class Arch = detail::compile_time_arch>
std::vector<isa> available_isas() {
  std::vector<isa> levels;
  for (const auto* table : detail::runnable_tables<Arch>())
    if (levels.empty() || levels.back() != static_cast<isa>(table->isa)) levels.push_back(static_cast<isa>(table->isa));
  return levels;
}

/// Makes kpc use `level` (tests, benchmarks, or to cap an engine's instruction set). Throws
/// kpc::error(errc::unsupported) if this build or CPU cannot run it. Not meant to race with calls
/// that are encoding: set it before starting work.
template <class Arch = detail::compile_time_arch>
void set_isa(isa level) {
  const detail::kernel_table* chosen = nullptr;
  for (const auto* table : detail::runnable_tables<Arch>())
    if (static_cast<isa>(table->isa) == level) chosen = table;
  if (chosen == nullptr)
    detail::raise(errc::unsupported, std::string("instruction set ") + to_string(level) + " is not available here");
  detail::backend_state<Arch>::active.store(chosen, std::memory_order_release);
}

/// Back to the best instruction set available.
template <class Arch = detail::compile_time_arch>
void reset_isa() {
  detail::backend_state<Arch>::active.store(detail::runnable_tables<Arch>().back(), std::memory_order_release);
}

KPC_END_NAMESPACE

#endif  // KPC_BACKEND_HPP
