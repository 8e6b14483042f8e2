// SPDX-License-Identifier: MIT
// Which kernels run: the scalar reference, xsimd compiled for this translation unit's instruction
// set (xsimd::default_arch: -march=native builds get AVX2/AVX-512/NEON header-only), and, when the
// program links run-time dispatch units (cmake: kpc_add_runtime_dispatch), the best unit the CPU
// supports. Every backend writes the same bytes.
// A translation unit instantiates only the kernels of the operations it calls, for the formats it
// uses; the units hold every format's. With KPC_PRECOMPILED_KERNELS (and a baseline unit, see
// backend/dispatch_unit.hpp) it instantiates none and calls the units' tables.
#ifndef KPC_BACKEND_SELECT_HPP
#define KPC_BACKEND_SELECT_HPP

#include <atomic>
#include <cstddef>

#include "../config.hpp"
#include "../detail/cpu.hpp"
#include "../error.hpp"
#include "../isa.hpp"
#include "kernel_table.hpp"

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
#include "slab.hpp"
#endif
#if KPC_SIMD
#include "simd_provider.hpp"
#endif

KPC_BEGIN_SHARED_NAMESPACE
namespace shared_detail {
/// The instruction set set_isa asked for (-1: the best each translation unit can run), shared by
/// every translation unit whatever its flags, so that one call caps them all.
struct isa_request {
  static inline std::atomic<int> level{-1};
};
}  // namespace shared_detail
KPC_END_SHARED_NAMESPACE

KPC_BEGIN_NAMESPACE
namespace detail {

#if KPC_SIMD
using compile_time_arch = xsimd::default_arch;
#endif

/// A set of kernels this program can run: a dispatch unit's table, or (table null) the kernels
/// this translation unit instantiates itself, at its compile-time level, for the formats it uses.
struct backend {
  isa level;
  const kernel_table* table;  ///< null: this translation unit's own kernels
};

/// The level of this translation unit's own SIMD kernels (scalar when it has none).
constexpr isa own_simd_level() {
#if KPC_SIMD
  return simd::isa_of<compile_time_arch>();
#else
  return isa::scalar;
#endif
}

/// The backends a program can run, best last; on a tie, this translation unit's own kernels come
/// after (and so win over) a unit's. A fixed array: nothing to allocate, nothing to instantiate.
struct backend_list {
  const backend* items[shared_detail::isa_count + 2] = {};
  std::size_t count = 0;
  void add(const backend* candidate) {
    const auto key = [](const backend* b) { return 2 * static_cast<int>(b->level) + (b->table == nullptr ? 1 : 0); };
    std::size_t at = count++;
    for (; at > 0 && key(items[at - 1]) > key(candidate); --at) items[at] = items[at - 1];
    items[at] = candidate;
  }
  const backend* const* begin() const { return items; }
  const backend* const* end() const { return items + count; }
  const backend* best() const { return items[count - 1]; }
  /// The best backend at or below `level` (the scalar one is always there).
  const backend* best_up_to(int level) const {
    const backend* chosen = items[0];
    for (const backend* b : *this)
      if (static_cast<int>(b->level) <= level) chosen = b;
    return chosen;
  }
};

/// Backends this program can run on this CPU: this translation unit's own, and each dispatch unit
/// of kpc/isa.hpp that KPC_DISPATCH_UNITS says is linked. A template so that the tables of units
/// not linked are never referenced. Nothing here instantiates a kernel.
#ifndef KPC_DISPATCH_UNITS  // one bit per kpc::isa value of the dispatch units linked (cmake sets it)
#define KPC_DISPATCH_UNITS 0
#endif
template <int LinkedUnits = (KPC_DISPATCH_UNITS)>
backend_list runnable_backends() {
  backend_list backends;
#if defined(KPC_PRECOMPILED_KERNELS)
  // Every kernel comes from the precompiled units (cmake: kpc_add_runtime_dispatch(... PRECOMPILED)).
  static const backend scalar{isa::scalar, KPC_KERNELS_ABI::unit_table_scalar()};
  backends.add(&scalar);
  if (const kernel_table* baseline = KPC_KERNELS_ABI::unit_table_baseline()) {
    static const backend own{static_cast<isa>(baseline->isa), baseline};
    backends.add(&own);
  }
#else
  static const backend scalar{isa::scalar, nullptr};
  backends.add(&scalar);
  if constexpr (own_simd_level() != isa::scalar) {
    static const backend own{own_simd_level(), nullptr};
    backends.add(&own);
  }
#endif
  if constexpr (LinkedUnits != 0) {
    const cpu_features cpu = detect_cpu();
#define KPC_DETAIL_ADD_UNIT(name, label, feature, arch, flags)                            \
  if constexpr (shared_detail::has_unit(isa::name) && (LinkedUnits >> static_cast<int>(isa::name) & 1)) { \
    static const backend unit{isa::name, KPC_KERNELS_ABI::unit_table_##name()};          \
    if (cpu.feature) backends.add(&unit);                                                 \
  }
    KPC_ISA_LIST(KPC_DETAIL_ADD_UNIT)
#undef KPC_DETAIL_ADD_UNIT
  }
  return backends;
}

/// The backend in use: the best at or below the level set_isa asked for. Cached per requested
/// level, so a set_isa made in any translation unit takes effect here at the next call.
inline const backend& active_backend() {
  static std::atomic<const backend*> chosen[shared_detail::isa_count + 1];  // zero: not chosen yet
  const int requested = shared_detail::isa_request::level.load(std::memory_order_acquire);
  std::atomic<const backend*>& slot = chosen[requested < 0 ? shared_detail::isa_count : requested];
  const backend* b = slot.load(std::memory_order_acquire);
  if (b == nullptr) {
    const backend_list backends = runnable_backends();
    b = requested < 0 ? backends.best() : backends.best_up_to(requested);
    slot.store(b, std::memory_order_release);
  }
  return *b;
}

/// Runs f on the active backend's kernels for one format: f(ops) calls ops.encode_f32(...),
/// ops.scores(...) and so on, given a dispatch unit's format_kernels or this translation unit's
/// own slab_ops (slab_for<Provider, Format>: only what f calls gets instantiated).
template <class Format, class F>
decltype(auto) with_format_kernels(F&& f) {
  const backend& active = active_backend();
#if !defined(KPC_PRECOMPILED_KERNELS)
  if (active.table == nullptr) {
#if KPC_SIMD
    if constexpr (own_simd_level() != isa::scalar)
      if (active.level != isa::scalar) return f(slab_ops<slab_for<simd::provider<compile_time_arch>, Format>>{});
#endif
    return f(slab_ops<slab_for<ref_provider, Format>>{});
  }
#endif
  return f(active.table->formats[format::index_of<Format, format::all>::value]);
}

/// The active backend's online-softmax steps.
inline softmax_kernels active_softmax() {
  const backend& active = active_backend();
#if !defined(KPC_PRECOMPILED_KERNELS)
  if (active.table == nullptr) {
#if KPC_SIMD
    if constexpr (own_simd_level() != isa::scalar)
      if (active.level != isa::scalar) return softmax_of<simd::provider<compile_time_arch>>();
#endif
    return softmax_of<ref_provider>();
  }
#endif
  return active.table->softmax;
}

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_BACKEND_SELECT_HPP
