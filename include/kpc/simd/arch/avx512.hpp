// SPDX-License-Identifier: MIT
// The AVX-512 (AVX512F) overloads of the xsimd layer's primitives (F16C's where it is on).
#ifndef KPC_SIMD_ARCH_AVX512_HPP
#define KPC_SIMD_ARCH_AVX512_HPP

#include "common.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

#if XSIMD_WITH_AVX512F

// ---- x * y rounded to f32, never fused into a following addition -------------------------------

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::avx512f>) {
  typename fbatch<A>::register_type product = x * y;
  __asm__("" : "+v"(product));
  return product;
}
#endif

// ---- x / y correctly rounded --------------------------------------------------------------------------

template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::avx512f>) {
  return _mm512_div_ps(x, y);
}

// ---- running extremes that keep the first value on ties and skip NaN -----------------------------

template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::avx512f>) {
  return _mm512_min_ps(x, m);
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::avx512f>) {
  return _mm512_max_ps(x, m);
}

// ---- the smallest / largest lane (lanes hold no NaN; which of -0 and +0 wins is unspecified) -------

template <class A>
inline float reduce_min(const fbatch<A>& x, requires_arch<xsimd::avx512f>) {
  return _mm512_reduce_min_ps(x);
}
template <class A>
inline float reduce_max(const fbatch<A>& x, requires_arch<xsimd::avx512f>) {
  return _mm512_reduce_max_ps(x);
}

// ---- a comparison's lanes as bits (lane i -> bit i) ----------------------------------------------------

template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<xsimd::avx512f>) {
  return static_cast<std::uint32_t>(static_cast<__mmask16>(b));
}

// ---- W bytes widened to W int32 lanes (zero- or sign-extended) -----------------------------------

template <class A>
inline ibatch<A> widen_u8(const std::byte* p, requires_arch<xsimd::avx512f>) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
template <class A>
inline ibatch<A> widen_i8(const std::byte* p, requires_arch<xsimd::avx512f>) {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// ---- the low byte of each int32 lane stored as W bytes --------------------------------------------

template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<xsimd::avx512f>) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(x));
}

// ---- binary16 <-> f32 (round to nearest even, like fp32_to_fp16_bits) ------------------------------

#if defined(__F16C__)
template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<xsimd::avx512f>) {
  return f16c_half_to_float(bits);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<xsimd::avx512f>) {
  return f16c_float_to_half(value);
}

template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<xsimd::avx512f>) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<xsimd::avx512f>) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}
#endif

#endif  // XSIMD_WITH_AVX512F

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_AVX512_HPP
