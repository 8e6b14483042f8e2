// SPDX-License-Identifier: MIT
// A run-time dispatch unit: compile a .cpp that defines KPC_DISPATCH_UNIT and includes this header,
// once per instruction set, with that set's compiler flags, and define KPC_DISPATCH_<SET> in the
// rest of the program; kpc then picks the best unit the CPU runs (kpc/backend.hpp).
//   KPC_DISPATCH_UNIT 0: baseline flags of the build: the scalar reference and the SIMD kernels
//                        those flags allow; with it, define KPC_PRECOMPILED_KERNELS in the rest of
//                        the program, whose translation units then instantiate no kernel at all
//   KPC_DISPATCH_UNIT 1: SSE4.2   flags -msse4.2
//   KPC_DISPATCH_UNIT 2: AVX2     flags -mavx2 -mfma -mf16c
//   KPC_DISPATCH_UNIT 3: AVX-512  flags -mavx512f -mavx512bw -mavx512dq -mavx512cd -mavx512vl -mfma -mf16c
// CMake does all of this: kpc_add_runtime_dispatch(<target>) (cmake/kpcDispatch.cmake).
// The whole of kpc is compiled here inside kpc::v<major>_<minor>_<set>, so none of its inline
// functions, built with these flags, can replace the baseline ones at link time.
#ifndef KPC_SIMD_DISPATCH_UNIT_HPP
#define KPC_SIMD_DISPATCH_UNIT_HPP

#if !defined(KPC_DISPATCH_UNIT)
#error "define KPC_DISPATCH_UNIT (0 = baseline, 1 = SSE4.2, 2 = AVX2, 3 = AVX-512) before including kpc/simd/dispatch_unit.hpp"
#elif defined(KPC_CONFIG_HPP)
#error "kpc/simd/dispatch_unit.hpp must be the first kpc header of its translation unit"
#elif defined(KPC_PRECOMPILED_KERNELS)
#error "a dispatch unit defines the precompiled kernels: compile it without KPC_PRECOMPILED_KERNELS"
#endif

#if KPC_DISPATCH_UNIT == 0
#define KPC_ABI_SUFFIX _baseline
#elif KPC_DISPATCH_UNIT == 1
#define KPC_ABI_SUFFIX _sse4_2
#elif KPC_DISPATCH_UNIT == 2
#define KPC_ABI_SUFFIX _avx2
#elif KPC_DISPATCH_UNIT == 3
#define KPC_ABI_SUFFIX _avx512
#else
#error "KPC_DISPATCH_UNIT must be 0 (baseline), 1 (SSE4.2), 2 (AVX2) or 3 (AVX-512)"
#endif

#include "../backend.hpp"

#if KPC_DISPATCH_UNIT == 0
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
#elif KPC_DISPATCH_UNIT == 1
#if !XSIMD_WITH_SSE4_2
#error "the SSE4.2 dispatch unit must be compiled with -msse4.2"
#endif
const KPC_KERNELS_ABI::kernel_table* KPC_KERNELS_ABI::unit_table_sse4_2() { return &kpc::simd::table<xsimd::sse4_2>(); }
#elif KPC_DISPATCH_UNIT == 2
#if !XSIMD_WITH_AVX2 || !XSIMD_WITH_FMA3_AVX2 || !defined(__F16C__)
#error "the AVX2 dispatch unit must be compiled with -mavx2 -mfma -mf16c"
#endif
const KPC_KERNELS_ABI::kernel_table* KPC_KERNELS_ABI::unit_table_avx2() {
  return &kpc::simd::table<xsimd::fma3<xsimd::avx2>>();
}
#else
#if !XSIMD_WITH_AVX512BW || !defined(__F16C__)
#error "the AVX-512 dispatch unit must be compiled with -mavx512f -mavx512bw -mavx512dq -mavx512cd -mavx512vl -mfma -mf16c"
#endif
const KPC_KERNELS_ABI::kernel_table* KPC_KERNELS_ABI::unit_table_avx512() { return &kpc::simd::table<xsimd::avx512bw>(); }
#endif

#endif  // KPC_SIMD_DISPATCH_UNIT_HPP
