// SPDX-License-Identifier: MIT
// What every file of the xsimd layer shares: includes, types, xsimd version shims, shared helpers.
#ifndef KPC_SIMD_ARCH_COMMON_HPP
#define KPC_SIMD_ARCH_COMMON_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
// GCC 12's avx512fintrin.h initialises undefined vectors as `__m512 __Y = __Y;`, which warns
// -Wmaybe-uninitialized wherever it is inlined (fixed in GCC 13): silenced for the intrinsics
// headers' own lines, which is where GCC reports it, when kpc is the first to include them.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic pop
#endif

#include "../../config.hpp"
#include "../../detail/arith.hpp"
#include "../../detail/bits.hpp"
#include "../../half.hpp"

#if XSIMD_VERSION_MAJOR < 8 || (XSIMD_VERSION_MAJOR == 8 && XSIMD_VERSION_MINOR < 1)
#error "kpc needs xsimd 8.1 or newer (or define KPC_NO_SIMD for the scalar reference only)"
#endif


/// Before a loop over a register array with a constant trip count: unrolled at -O2 too (GCC 12
/// unrolls such loops only at -O3 and otherwise keeps the arrays in memory: 3-4x slower kernels).
#if defined(__CUDACC__)  // (nvcc's front end rejects GCC's pragma in host code; its host pass is not kpc's fast path)
#define KPC_UNROLL
#elif defined(__clang__)
#define KPC_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define KPC_UNROLL _Pragma("GCC unroll 16")
#else
#define KPC_UNROLL
#endif

KPC_BEGIN_NAMESPACE
namespace simd {

template <class A>
using fbatch = xsimd::batch<float, A>;
template <class A>
using ibatch = xsimd::batch<std::int32_t, A>;
template <class A>
using ubatch = xsimd::batch<std::uint32_t, A>;

/// Overload on the most derived arch that offers a primitive (as xsimd's own kernels do).
template <class Arch>
using requires_arch = const Arch&;

/// The base of every xsimd arch: the portable fallback overloads take it. (xsimd 14 renamed it.)
#if XSIMD_VERSION_MAJOR >= 14
using portable_arch = xsimd::common;
#else
using portable_arch = xsimd::generic;
#endif

// ---- xsimd version shims --------------------------------------------------------------------

template <class A>
inline float reduce_add(const fbatch<A>& x) {
#if XSIMD_VERSION_MAJOR >= 9
  return xsimd::reduce_add(x);
#else
  return xsimd::hadd(x);
#endif
}

template <class To, class From, class A>
inline xsimd::batch<To, A> bit_cast(const xsimd::batch<From, A>& x) {
#if XSIMD_VERSION_MAJOR >= 11
  return xsimd::bitwise_cast<To>(x);
#else
  return xsimd::bitwise_cast<xsimd::batch<To, A>>(x);
#endif
}

// ---- helpers of more than one instruction set's file ------------------------------------------

// The last lane steps of reduce_min / reduce_max (sse.hpp, avx.hpp).
#if XSIMD_WITH_SSE2
namespace x86 {
inline __m128 min4(__m128 v) {
  v = _mm_min_ps(v, _mm_movehl_ps(v, v));
  return _mm_min_ss(v, _mm_shuffle_ps(v, v, 1));
}
inline __m128 max4(__m128 v) {
  v = _mm_max_ps(v, _mm_movehl_ps(v, v));
  return _mm_max_ss(v, _mm_shuffle_ps(v, v, 1));
}
}  // namespace x86
#endif

// 3-bit groups (portable.hpp, avx.hpp): eight codes are 24 contiguous bits: broadcast the 32-bit
// word holding them, shift lane i right by 3i, mask. Words are read at byte 3k (k < 3) or at byte 8
// shifted by 8, never past the group.
inline std::uint32_t code3_field(const std::byte* group, int eight) {  // codes 8*eight .. 8*eight+7
  return eight < 3 ? detail::load_u32le(group + 3 * eight) : detail::load_u32le(group + 8) >> 8;
}

// The channel transposes of store_groups / load_groups (sse.hpp, avx.hpp).
#if XSIMD_WITH_SSE4_1 && !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
namespace x86 {
/// Four lanes (channels) of Bits words each: store channel l's words at p[l].
template <int Bits>
inline void store_4(const __m128i* w, std::byte* const* p) {
  const __m128i ab_lo = _mm_unpacklo_epi32(w[0], w[1]);  // a0 b0 a1 b1
  const __m128i ab_hi = _mm_unpackhi_epi32(w[0], w[1]);  // a2 b2 a3 b3
  if constexpr (Bits == 4) {
    const __m128i cd_lo = _mm_unpacklo_epi32(w[2], w[3]);
    const __m128i cd_hi = _mm_unpackhi_epi32(w[2], w[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p[0]), _mm_unpacklo_epi64(ab_lo, cd_lo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p[1]), _mm_unpackhi_epi64(ab_lo, cd_lo));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p[2]), _mm_unpacklo_epi64(ab_hi, cd_hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p[3]), _mm_unpackhi_epi64(ab_hi, cd_hi));
  } else {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p[0]), ab_lo);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p[1]), _mm_unpackhi_epi64(ab_lo, ab_lo));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p[2]), ab_hi);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p[3]), _mm_unpackhi_epi64(ab_hi, ab_hi));
    if constexpr (Bits == 3) {  // the third word of each channel: 4 bytes, no more (the next group follows)
      const std::int32_t c[4] = {_mm_cvtsi128_si32(w[2]), _mm_extract_epi32(w[2], 1), _mm_extract_epi32(w[2], 2),
                                 _mm_extract_epi32(w[2], 3)};
      for (int l = 0; l < 4; ++l) std::memcpy(p[l] + 8, &c[l], 4);
    }
  }
}

/// The inverse: load four channels' Bits words from p[l] into word vectors.
template <int Bits>
inline void load_4(const std::byte* const* p, __m128i* w) {
  if constexpr (Bits == 4) {
    const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[0]));
    const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[1]));
    const __m128i r2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[2]));
    const __m128i r3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p[3]));
    const __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);
    const __m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);
    w[0] = _mm_unpacklo_epi64(t0, t2);
    w[1] = _mm_unpackhi_epi64(t0, t2);
    w[2] = _mm_unpacklo_epi64(t1, t3);
    w[3] = _mm_unpackhi_epi64(t1, t3);
  } else {
    const __m128i r01 = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p[0])),
                                           _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p[1])));  // a0 b0 a1 b1
    const __m128i r23 = _mm_unpacklo_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p[2])),
                                           _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p[3])));  // a2 b2 a3 b3
    const __m128i a = _mm_shuffle_epi32(r01, _MM_SHUFFLE(3, 1, 2, 0));  // a0 a1 b0 b1
    const __m128i b = _mm_shuffle_epi32(r23, _MM_SHUFFLE(3, 1, 2, 0));  // a2 a3 b2 b3
    w[0] = _mm_unpacklo_epi64(a, b);
    w[1] = _mm_unpackhi_epi64(a, b);
    if constexpr (Bits == 3) {
      std::int32_t c[4];
      for (int l = 0; l < 4; ++l) std::memcpy(&c[l], p[l] + 8, 4);
      w[2] = _mm_setr_epi32(c[0], c[1], c[2], c[3]);
    }
  }
}
}  // namespace x86
#endif

// binary16 scalars through F16C (sse.hpp, avx.hpp, avx512.hpp).
#if defined(__F16C__)
// The vector forms, not _cvtss_sh: clang's macro for that one uses a compound literal (-Wpedantic).
inline float f16c_half_to_float(std::uint16_t bits) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)));
}
inline std::uint16_t f16c_float_to_half(float value) {
  return static_cast<std::uint16_t>(
      _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(value), _MM_FROUND_TO_NEAREST_INT), 0));
}
#endif

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_COMMON_HPP
