// SPDX-License-Identifier: MIT
// A run-time dispatch unit: compile a .cpp that defines KPC_DISPATCH_UNIT and includes this header
// with that unit's compiler flags, and define KPC_DISPATCH_UNITS (one bit per kpc::isa value of
// the units linked) in the rest of the program; kpc then picks the best unit the CPU runs.
//   KPC_DISPATCH_UNIT baseline  the build's own flags: the scalar reference and the SIMD kernels
//                               those flags allow; with it, define KPC_PRECOMPILED_KERNELS in the
//                               rest of the program, whose translation units then instantiate no
//                               kernel at all
//   KPC_DISPATCH_UNIT <isa>     an instruction set of kpc/isa.hpp that has unit flags (sse4_2,
//                               avx2, avx512), compiled with exactly those flags
// CMake does all of this: kpc_add_runtime_dispatch(<target>) (cmake/kpcDispatch.cmake).
// Like every kpc translation unit, the unit's code lives in a namespace named after its flags
// (config.hpp), so none of its inline functions can replace another unit's at link time.
#ifndef KPC_BACKEND_DISPATCH_UNIT_HPP
#define KPC_BACKEND_DISPATCH_UNIT_HPP

#if !defined(KPC_DISPATCH_UNIT)
#error "define KPC_DISPATCH_UNIT (baseline, or an instruction set of kpc/isa.hpp such as avx2) before including kpc/backend/dispatch_unit.hpp"
#elif defined(KPC_PRECOMPILED_KERNELS)
#error "a dispatch unit defines the precompiled kernels: compile it without KPC_PRECOMPILED_KERNELS"
#endif

#include "select.hpp"

#define KPC_DETAIL_UNIT_IS_BASELINE_baseline 1
#if KPC_DETAIL_PASTE2(KPC_DETAIL_UNIT_IS_BASELINE_, KPC_DISPATCH_UNIT)
const KPC_KERNELS_ABI::kernel_table* KPC_KERNELS_ABI::unit_table_scalar() { return &kpc::detail::scalar_table(); }
const KPC_KERNELS_ABI::kernel_table* KPC_KERNELS_ABI::unit_table_baseline() {
#if KPC_SIMD
  return kpc::simd::compile_time_table<xsimd::default_arch>();
#else
  return nullptr;
#endif
}
#elif !KPC_SIMD
#error "an instruction-set dispatch unit needs xsimd (and no KPC_NO_SIMD)"
#else
static_assert(kpc::shared_detail::has_unit(kpc::isa::KPC_DISPATCH_UNIT),
              "KPC_DISPATCH_UNIT names an instruction set without a dispatch unit (see kpc/isa.hpp)");
static_assert(kpc::simd::isa_of<xsimd::default_arch>() == kpc::isa::KPC_DISPATCH_UNIT,
              "compile this dispatch unit with its instruction set's flags (the unit_flags column of kpc/isa.hpp)");
const KPC_KERNELS_ABI::kernel_table* KPC_KERNELS_ABI::KPC_DETAIL_PASTE2(unit_table_, KPC_DISPATCH_UNIT)() {
  return &kpc::simd::table<xsimd::default_arch>();
}
#endif

#endif  // KPC_BACKEND_DISPATCH_UNIT_HPP
