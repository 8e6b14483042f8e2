// SPDX-License-Identifier: MIT
// What the CPU (and the operating system, for the wide registers' state) lets the run-time
// dispatch units run. Plain CPUID, no xsimd: a translation unit that takes its kernels from
// precompiled units needs no SIMD headers at all.
#ifndef KPC_DETAIL_CPU_HPP
#define KPC_DETAIL_CPU_HPP

#include "../config.hpp"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define KPC_X86_CPUID 1
#else
#define KPC_X86_CPUID 0
#endif

KPC_BEGIN_NAMESPACE
namespace detail {

/// Instruction sets of the x86 dispatch units, each with every extension its unit is compiled for
/// (the cpu column of kpc/isa.hpp names these members).
struct cpu_features {
  bool always = true;  ///< levels without a unit
  bool sse4_2 = false;
  bool avx2_fma_f16c = false;  ///< -mavx2 -mfma -mf16c
  bool avx512 = false;         ///< -mavx512f -mavx512bw -mavx512dq -mavx512cd -mavx512vl (+ FMA, F16C)
};

inline cpu_features detect_cpu() noexcept {
  cpu_features found;
#if KPC_X86_CPUID
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return found;
  const auto bit = [](unsigned reg, int b) { return ((reg >> b) & 1u) != 0; };
  found.sse4_2 = bit(ecx, 20);
  const bool fma = bit(ecx, 12), osxsave = bit(ecx, 27), avx = bit(ecx, 28), f16c = bit(ecx, 29);
  // The OS must save the registers: XCR0 bits 1-2 (SSE, AVX state), 5-7 (AVX-512 state).
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned low = 0, high = 0;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(high) << 32) | low;
  }
  const bool avx_state = (xcr0 & 0x6u) == 0x6u, avx512_state = (xcr0 & 0xE6u) == 0xE6u;
  unsigned ebx7 = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx7, &ecx, &edx) == 0) return found;
  found.avx2_fma_f16c = avx && avx_state && fma && f16c && bit(ebx7, 5);
  found.avx512 = found.avx2_fma_f16c && avx512_state && bit(ebx7, 16) /* F */ && bit(ebx7, 17) /* DQ */ &&
                 bit(ebx7, 28) /* CD */ && bit(ebx7, 30) /* BW */ && bit(ebx7, 31) /* VL */;
#endif
  return found;
}

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_DETAIL_CPU_HPP
