// SPDX-License-Identifier: MIT
// The instruction sets kpc's kernels run on: one list, from which the kpc::isa enum, its names,
// the run-time dispatch units (kpc/backend/) and CMake's unit flags (cmake/kpcDispatch.cmake
// reads the X(...) lines below) are all derived. Adding an instruction set: a line here, its
// overloads in kpc/simd/arch/, and (for a dispatch unit) its CPU check in kpc/detail/cpu.hpp.
#ifndef KPC_ISA_HPP
#define KPC_ISA_HPP

#include "config.hpp"

// X(name, label, cpu, xsimd_arch, unit_flags), in order of preference on one machine:
//   name        the kpc::isa enumerator (its value is the line's index)
//   label       what to_string returns
//   cpu         the detail::cpu_features member saying the CPU can run its dispatch unit
//   xsimd_arch  the least xsimd arch whose kernels belong to this level (void: none)
//   unit_flags  compiler flags of its run-time dispatch unit; "" when it has none (x86-64 only)
// clang-format off
#define KPC_ISA_LIST(X)                                                                                        \
  X(scalar, "scalar", always, void, "")                                                                        \
  X(sse2, "sse2", always, xsimd::sse2, "")                                                                     \
  X(sse4_2, "sse4.2", sse4_2, xsimd::sse4_1, "-msse4.2")                                                       \
  X(avx, "avx", always, xsimd::avx, "")                                                                        \
  X(avx2, "avx2", avx2_fma_f16c, xsimd::avx2, "-mavx2 -mfma -mf16c")                                           \
  X(avx512, "avx512", avx512, xsimd::avx512f, "-mavx512f -mavx512bw -mavx512dq -mavx512cd -mavx512vl -mfma -mf16c") \
  X(neon, "neon", always, xsimd::neon, "")
// clang-format on

KPC_BEGIN_SHARED_NAMESPACE

/// Instruction sets kpc's kernels can run on, in order of preference.
enum class isa : int {
#define KPC_DETAIL_ISA_ENUMERATOR(name, label, cpu, arch, flags) name,
  KPC_ISA_LIST(KPC_DETAIL_ISA_ENUMERATOR)
#undef KPC_DETAIL_ISA_ENUMERATOR
};

constexpr const char* to_string(isa level) noexcept {
  switch (level) {
#define KPC_DETAIL_ISA_LABEL(name, label, cpu, arch, flags) \
  case isa::name: return label;
    KPC_ISA_LIST(KPC_DETAIL_ISA_LABEL)
#undef KPC_DETAIL_ISA_LABEL
  }
  return "unknown";
}

// (Not `detail`: kpc::detail would then name two namespaces, this one and the per-flags one.)
namespace shared_detail {
#define KPC_DETAIL_ISA_COUNT(name, label, cpu, arch, flags) +1
/// How many instruction sets the list holds.
inline constexpr int isa_count = 0 KPC_ISA_LIST(KPC_DETAIL_ISA_COUNT);
#undef KPC_DETAIL_ISA_COUNT

/// Whether an instruction set has a run-time dispatch unit.
constexpr bool has_unit(isa level) noexcept {
  switch (level) {
#define KPC_DETAIL_ISA_HAS_UNIT(name, label, cpu, arch, flags) \
  case isa::name: return sizeof(flags) > 1;
    KPC_ISA_LIST(KPC_DETAIL_ISA_HAS_UNIT)
#undef KPC_DETAIL_ISA_HAS_UNIT
  }
  return false;
}

}  // namespace shared_detail

KPC_END_SHARED_NAMESPACE

#endif  // KPC_ISA_HPP
