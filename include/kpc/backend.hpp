// SPDX-License-Identifier: MIT
// Which kernels kpc runs: the scalar reference, xsimd compiled for this translation unit's
// instruction set (xsimd::default_arch: -march=native builds get AVX2/AVX-512/NEON header-only),
// and, when the program is built with run-time dispatch units (cmake: kpc_add_runtime_dispatch),
// the best unit the CPU supports. Every backend writes the same bytes.
// A translation unit instantiates only the kernels of the operations it calls, for the formats it
// uses; the units hold every format's. With KPC_PRECOMPILED_KERNELS (and a baseline unit, see
// simd/dispatch_unit.hpp) it instantiates none and calls the units' tables.
#ifndef KPC_BACKEND_HPP
#define KPC_BACKEND_HPP

#include <atomic>
#include <cstddef>
#include <vector>

#include "config.hpp"
#include "detail/cpu.hpp"
#include "detail/kernel_table.hpp"
#include "error.hpp"

// KPC_SIMD: this translation unit compiles kpc's xsimd kernels (xsimd on the include path, no
// KPC_NO_SIMD, and no KPC_PRECOMPILED_KERNELS, with which it needs no SIMD headers at all).
#if !defined(KPC_NO_SIMD) && !defined(KPC_PRECOMPILED_KERNELS) && defined(__has_include)
#if __has_include(<xsimd/xsimd.hpp>)
#define KPC_SIMD 1
#endif
#endif
#ifndef KPC_SIMD
#define KPC_SIMD 0
#endif

#if !defined(KPC_PRECOMPILED_KERNELS)
#include "detail/slab.hpp"
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

/// A set of kernels this program can run: a dispatch unit's table, or (table null) the kernels
/// this translation unit instantiates itself, at its compile-time level, for the formats it uses.
struct backend {
  int isa;                    ///< an isa_level
  const kernel_table* table;  ///< null: this translation unit's own kernels
};

/// The level of this translation unit's own SIMD kernels (scalar when it has none).
template <class Arch>
constexpr int own_simd_level() {
#if KPC_SIMD
  return simd::isa_of<Arch>();
#else
  return KPC_KERNELS_ABI::isa_scalar;
#endif
}

/// The backends a program can run, best last; on a tie, this translation unit's own kernels come
/// after (and so win over) a unit's. A fixed array: nothing to allocate, nothing to instantiate.
struct backend_list {
  const backend* items[8] = {};
  std::size_t count = 0;
  void add(const backend* candidate) {
    const auto key = [](const backend* b) { return 2 * b->isa + (b->table == nullptr ? 1 : 0); };
    std::size_t at = count++;
    for (; at > 0 && key(items[at - 1]) > key(candidate); --at) items[at] = items[at - 1];
    items[at] = candidate;
  }
  const backend* const* begin() const { return items; }
  const backend* const* end() const { return items + count; }
  const backend* best() const { return items[count - 1]; }
};

/// Backends this program can run on this CPU. Templated on the translation unit's compile-time
/// arch, so units built with different -m flags never share a definition. Nothing here
/// instantiates a kernel: a translation unit builds only the operations it calls.
template <class Arch>
backend_list runnable_backends() {
  backend_list backends;
#if defined(KPC_PRECOMPILED_KERNELS)
  // Every kernel comes from the precompiled units (cmake: kpc_add_runtime_dispatch(... PRECOMPILED)).
  static const backend scalar{KPC_KERNELS_ABI::isa_scalar, KPC_KERNELS_ABI::unit_table_scalar()};
  backends.add(&scalar);
  if (const kernel_table* baseline = KPC_KERNELS_ABI::unit_table_baseline()) {
    static const backend own{baseline->isa, baseline};
    backends.add(&own);
  }
#else
  static const backend scalar{KPC_KERNELS_ABI::isa_scalar, nullptr};
  backends.add(&scalar);
  if constexpr (own_simd_level<Arch>() != KPC_KERNELS_ABI::isa_scalar) {
    static const backend own{own_simd_level<Arch>(), nullptr};
    backends.add(&own);
  }
#endif
#if defined(KPC_DISPATCH_SSE4_2) || defined(KPC_DISPATCH_AVX2) || defined(KPC_DISPATCH_AVX512)
  const cpu_features cpu = detect_cpu();
#endif
#if defined(KPC_DISPATCH_SSE4_2)
  static const backend sse4_2{KPC_KERNELS_ABI::isa_sse4_2, KPC_KERNELS_ABI::unit_table_sse4_2()};
  if (cpu.sse4_2) backends.add(&sse4_2);
#endif
#if defined(KPC_DISPATCH_AVX2)
  static const backend avx2{KPC_KERNELS_ABI::isa_avx2, KPC_KERNELS_ABI::unit_table_avx2()};
  if (cpu.avx2_fma_f16c) backends.add(&avx2);
#endif
#if defined(KPC_DISPATCH_AVX512)
  static const backend avx512{KPC_KERNELS_ABI::isa_avx512, KPC_KERNELS_ABI::unit_table_avx512()};
  if (cpu.avx512) backends.add(&avx512);
#endif
  return backends;
}

template <class Arch>
struct backend_state {
  static inline std::atomic<const backend*> active{nullptr};
};

template <class Arch>
const backend& active_backend() {
  const backend* chosen = backend_state<Arch>::active.load(std::memory_order_acquire);
  if (chosen == nullptr) {
    chosen = runnable_backends<Arch>().best();
    backend_state<Arch>::active.store(chosen, std::memory_order_release);
  }
  return *chosen;
}

/// Runs f on the active backend's kernels for one format: f(ops) calls ops.encode_f32(...),
/// ops.scores(...) and so on, given a dispatch unit's format_kernels or this translation unit's
/// own slab_ops (Units::slab<Provider>: only what f calls gets instantiated).
template <class Units, class Arch = compile_time_arch, class F>
decltype(auto) with_format_kernels(F&& f) {
  const backend& active = active_backend<Arch>();
#if !defined(KPC_PRECOMPILED_KERNELS)
  if (active.table == nullptr) {
#if KPC_SIMD
    if constexpr (own_simd_level<Arch>() != KPC_KERNELS_ABI::isa_scalar)
      if (active.isa != KPC_KERNELS_ABI::isa_scalar) return f(slab_ops<typename Units::template slab<simd::provider<Arch>>>{});
#endif
    return f(slab_ops<typename Units::template slab<ref_provider>>{});
  }
#endif
  return f(Units::kernels(*active.table));
}

/// The active backend's online-softmax steps.
template <class Arch = compile_time_arch>
softmax_kernels active_softmax() {
  const backend& active = active_backend<Arch>();
#if !defined(KPC_PRECOMPILED_KERNELS)
  if (active.table == nullptr) {
#if KPC_SIMD
    if constexpr (own_simd_level<Arch>() != KPC_KERNELS_ABI::isa_scalar)
      if (active.isa != KPC_KERNELS_ABI::isa_scalar) return softmax_of<simd::provider<Arch>>();
#endif
    return softmax_of<ref_provider>();
  }
#endif
  return active.table->softmax;
}

}  // namespace detail

/// The instruction set kpc's kernels use now.
template <class Arch = detail::compile_time_arch>
isa active_isa() {
  return static_cast<isa>(detail::active_backend<Arch>().isa);
}

/// Every instruction set kpc can use in this program on this CPU, scalar first.
template <class Arch = detail::compile_time_arch>
std::vector<isa> available_isas() {
  std::vector<isa> levels;
  for (const detail::backend* candidate : detail::runnable_backends<Arch>())
    if (levels.empty() || levels.back() != static_cast<isa>(candidate->isa)) levels.push_back(static_cast<isa>(candidate->isa));
  return levels;
}

/// Makes kpc use `level` (tests, benchmarks, or to cap an engine's instruction set). Throws
/// kpc::error(errc::unsupported) if this build or CPU cannot run it. Not meant to race with calls
/// that are encoding: set it before starting work.
template <class Arch = detail::compile_time_arch>
void set_isa(isa level) {
  const detail::backend* chosen = nullptr;
  for (const detail::backend* candidate : detail::runnable_backends<Arch>())
    if (static_cast<isa>(candidate->isa) == level) chosen = candidate;
  if (chosen == nullptr)
    detail::raisef(errc::unsupported, "instruction set %s is not available here", to_string(level));
  detail::backend_state<Arch>::active.store(chosen, std::memory_order_release);
}

/// Back to the best instruction set available.
template <class Arch = detail::compile_time_arch>
void reset_isa() {
  detail::backend_state<Arch>::active.store(detail::runnable_backends<Arch>().best(), std::memory_order_release);
}

KPC_END_NAMESPACE

#endif  // KPC_BACKEND_HPP
