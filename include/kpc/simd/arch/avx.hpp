// SPDX-License-Identifier: MIT
// The AVX and AVX2 overloads of the xsimd layer's primitives (F16C's where it is on).
#ifndef KPC_SIMD_ARCH_AVX_HPP
#define KPC_SIMD_ARCH_AVX_HPP

#include "common.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

#if XSIMD_WITH_AVX

// ---- x * y rounded to f32, never fused into a following addition -------------------------------

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::avx>) {
  typename fbatch<A>::register_type product = x * y;
  __asm__("" : "+v"(product));
  return product;
}
#endif

// ---- x / y correctly rounded --------------------------------------------------------------------------

template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::avx>) {
  return _mm256_div_ps(x, y);
}

// ---- running extremes that keep the first value on ties and skip NaN -----------------------------

template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::avx>) {
  return _mm256_min_ps(x, m);
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::avx>) {
  return _mm256_max_ps(x, m);
}

// ---- the smallest / largest lane (lanes hold no NaN; which of -0 and +0 wins is unspecified) -------

template <class A>
inline float reduce_min(const fbatch<A>& x, requires_arch<xsimd::avx>) {
  const __m256 v = x;
  return _mm_cvtss_f32(x86::min4(_mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))));
}
template <class A>
inline float reduce_max(const fbatch<A>& x, requires_arch<xsimd::avx>) {
  const __m256 v = x;
  return _mm_cvtss_f32(x86::max4(_mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))));
}

// ---- a comparison's lanes as bits (lane i -> bit i) ----------------------------------------------------

template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<xsimd::avx>) {
  return static_cast<std::uint32_t>(_mm256_movemask_ps(b));
}

// ---- W bytes widened to W int32 lanes (zero- or sign-extended) -----------------------------------

#if XSIMD_WITH_AVX2
template <class A>
inline ibatch<A> widen_u8(const std::byte* p, requires_arch<xsimd::avx2>) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
template <class A>
inline ibatch<A> widen_i8(const std::byte* p, requires_arch<xsimd::avx2>) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
#endif

// ---- the low byte of each int32 lane stored as W bytes --------------------------------------------

#if XSIMD_WITH_AVX2
template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<xsimd::avx2>) {
  const __m128i pick = _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i v = x;
  const __m128i lo = _mm_shuffle_epi8(_mm256_castsi256_si128(v), pick);
  const __m128i hi = _mm_shuffle_epi8(_mm256_extracti128_si256(v, 1), pick);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_unpacklo_epi32(lo, hi));
}
#endif

// ---- 3-bit groups (code j at bits 3j..3j+2 of 12 bytes) <-> 32 codes as int32 lanes -----------------

#if XSIMD_WITH_AVX2
template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes, requires_arch<xsimd::avx2>) {
  const __m256i shifts = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
  KPC_UNROLL
  for (int k = 0; k < 4; ++k) {
    const __m256i word = _mm256_set1_epi32(static_cast<std::int32_t>(code3_field(group, k)));
    codes[k] = _mm256_and_si256(_mm256_srlv_epi32(word, shifts), _mm256_set1_epi32(7));
  }
}
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group, requires_arch<xsimd::avx2>) {
  const __m256i shifts = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
  std::uint32_t fields[4];
  KPC_UNROLL
  for (int k = 0; k < 4; ++k) {
    const __m256i v = _mm256_sllv_epi32(codes[k], shifts);
    __m128i x = _mm_or_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_or_si128(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
    x = _mm_or_si128(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
    fields[k] = static_cast<std::uint32_t>(_mm_cvtsi128_si32(x));
  }
  detail::store_u32le(group, fields[0] | fields[1] << 24);
  detail::store_u32le(group + 4, fields[1] >> 8 | fields[2] << 16);
  detail::store_u32le(group + 8, fields[2] >> 16 | fields[3] << 8);
}
#endif

// ---- Bits words of W channels <-> each channel's Bits consecutive words --------------------------------

#if XSIMD_WITH_SSE4_1 && !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)  // as x86::store_4 / load_4 (common.hpp)
#if XSIMD_WITH_AVX2
template <int Bits, class A>
inline void store_groups(const ubatch<A>* words, std::byte* first, std::size_t stride, requires_arch<xsimd::avx2>) {
  __m128i lo[Bits], hi[Bits];
  for (int k = 0; k < Bits; ++k) {
    const __m256i v = words[k];
    lo[k] = _mm256_castsi256_si128(v);
    hi[k] = _mm256_extracti128_si256(v, 1);
  }
  std::byte* const p[8] = {first,              first + stride,     first + 2 * stride, first + 3 * stride,
                           first + 4 * stride, first + 5 * stride, first + 6 * stride, first + 7 * stride};
  x86::store_4<Bits>(lo, p);
  x86::store_4<Bits>(hi, p + 4);
}
template <int Bits, class A>
inline void load_groups(const std::byte* first, std::size_t stride, ubatch<A>* words, requires_arch<xsimd::avx2>) {
  const std::byte* const p[8] = {first,              first + stride,     first + 2 * stride, first + 3 * stride,
                                 first + 4 * stride, first + 5 * stride, first + 6 * stride, first + 7 * stride};
  __m128i lo[Bits], hi[Bits];
  x86::load_4<Bits>(p, lo);
  x86::load_4<Bits>(p + 4, hi);
  for (int k = 0; k < Bits; ++k) words[k] = _mm256_setr_m128i(lo[k], hi[k]);
}
#endif
#endif

// ---- binary16 <-> f32 (round to nearest even, like fp32_to_fp16_bits) ------------------------------

#if defined(__F16C__)
template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<xsimd::avx>) {
  return f16c_half_to_float(bits);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<xsimd::avx>) {
  return f16c_float_to_half(value);
}

template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<xsimd::avx>) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<xsimd::avx>) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}
#endif


// ---- integer x 4-bit dot products over 32 lanes (see portable.hpp) ----------------------------

#if XSIMD_WITH_AVX2
/// sse_nibble_dot's byte pairs, 16 lanes per register.
struct avx2_nibble_dot {
  static constexpr int sources = 2;  ///< groups per add()
  struct pair {
    __m256i low, high;  // lanes 0-15 (low nibbles), 16-31 (high nibbles)
  };
  static pair load_pair(const std::byte* a, const std::byte* b) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const __m256i x = _mm256_set_m128i(_mm_unpackhi_epi8(va, vb), _mm_unpacklo_epi8(va, vb));
    const __m256i mask = _mm256_set1_epi8(0x0F);
    return {_mm256_and_si256(x, mask), _mm256_and_si256(_mm256_srli_epi16(x, 4), mask)};
  }
  static pair load(const std::byte* const* groups) { return load_pair(groups[0], groups[1]); }
  void add(const pair& p, const std::int8_t* weights) {  // (x86 is little-endian: weights[0] is the low byte)
    std::int16_t both;
    std::memcpy(&both, weights, sizeof both);
    const __m256i w = _mm256_set1_epi16(both);
    acc[0] = _mm256_add_epi16(acc[0], _mm256_maddubs_epi16(p.low, w));
    acc[1] = _mm256_add_epi16(acc[1], _mm256_maddubs_epi16(p.high, w));
  }
  void flush(float scale) {
    const __m256 s = _mm256_set1_ps(scale);
    KPC_UNROLL
    for (int k = 0; k < 2; ++k) {
      const __m256 low = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[k])));
      const __m256 high = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[k], 1)));
#ifdef __FMA__
      sums[2 * k] = _mm256_fmadd_ps(s, low, sums[2 * k]);
      sums[2 * k + 1] = _mm256_fmadd_ps(s, high, sums[2 * k + 1]);
#else
      sums[2 * k] = _mm256_add_ps(sums[2 * k], _mm256_mul_ps(s, low));
      sums[2 * k + 1] = _mm256_add_ps(sums[2 * k + 1], _mm256_mul_ps(s, high));
#endif
      acc[k] = _mm256_setzero_si256();
    }
  }
  void store(float* out) const {
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) _mm256_storeu_ps(out + 8 * k, sums[k]);
  }
  __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  __m256 sums[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
};
template <class A>
avx2_nibble_dot nibble_dot_of(requires_arch<xsimd::avx2>);

/// sse_nibble_dot16's pairs, 8 lanes per register. Unpacking within 128-bit halves leaves register
/// k holding lanes {4k'..} of both halves; store() puts them back in order.
struct avx2_nibble_dot16 {
  struct pair {
    __m256i codes[4];  // lanes [0-3 | 8-11], [4-7 | 12-15], [16-19 | 24-27], [20-23 | 28-31]
  };
  static pair load_pair(const std::byte* a, const std::byte* b) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const __m256i bytes = _mm256_set_m128i(_mm_unpackhi_epi8(va, vb), _mm_unpacklo_epi8(va, vb));
    const __m256i zero = _mm256_setzero_si256(), mask = _mm256_set1_epi16(0x0F);
    const __m256i low = _mm256_unpacklo_epi8(bytes, zero), high = _mm256_unpackhi_epi8(bytes, zero);
    return {{_mm256_and_si256(low, mask), _mm256_and_si256(high, mask), _mm256_srli_epi16(low, 4),
             _mm256_srli_epi16(high, 4)}};
  }
  void add(const pair& p, const std::int16_t* weights) {
    std::int32_t both;
    std::memcpy(&both, weights, sizeof both);
    const __m256i w = _mm256_set1_epi32(both);
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) acc[k] = _mm256_add_epi32(acc[k], _mm256_madd_epi16(p.codes[k], w));
  }
  void flush(float scale) {
    const __m256 s = _mm256_set1_ps(scale);
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) {
#ifdef __FMA__
      sums[k] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(acc[k]), sums[k]);
#else
      sums[k] = _mm256_add_ps(sums[k], _mm256_mul_ps(s, _mm256_cvtepi32_ps(acc[k])));
#endif
      acc[k] = _mm256_setzero_si256();
    }
  }
  void store(float* out) const {
    KPC_UNROLL
    for (int k = 0; k < 2; ++k) {
      _mm256_storeu_ps(out + 16 * k, _mm256_permute2f128_ps(sums[2 * k], sums[2 * k + 1], 0x20));
      _mm256_storeu_ps(out + 16 * k + 8, _mm256_permute2f128_ps(sums[2 * k], sums[2 * k + 1], 0x31));
    }
  }
  __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  __m256 sums[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
};
template <class A>
avx2_nibble_dot16 nibble_dot16_of(requires_arch<xsimd::avx2>);
#endif

#endif  // XSIMD_WITH_AVX

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_AVX_HPP
