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

// ---- 3-bit groups (code j at bits 3j..3j+2 of 12 bytes) <-> 32 codes as int32 lanes -----------------
// (xsimd's avx512f does not derive from avx2: without these, AVX-512 took the lane-by-lane
// portable path, slower than scalar.)

template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes, requires_arch<xsimd::avx512f>) {
  const __m512i shifts = _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21, 0, 3, 6, 9, 12, 15, 18, 21);
  for (int k = 0; k < 2; ++k) {
    const __m256i low = _mm256_set1_epi32(static_cast<std::int32_t>(code3_field(group, 2 * k)));
    const __m256i high = _mm256_set1_epi32(static_cast<std::int32_t>(code3_field(group, 2 * k + 1)));
    const __m512i word = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
    codes[k] = _mm512_and_si512(_mm512_srlv_epi32(word, shifts), _mm512_set1_epi32(7));
  }
}
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group, requires_arch<xsimd::avx512f>) {
  const __m512i shifts = _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21, 0, 3, 6, 9, 12, 15, 18, 21);
  std::uint32_t fields[4];
  for (int k = 0; k < 2; ++k) {
    const __m512i v = _mm512_sllv_epi32(codes[k], shifts);
    for (int half = 0; half < 2; ++half) {  // each 8-lane half ORs into one 24-bit field
      const __m256i h = half == 0 ? _mm512_castsi512_si256(v) : _mm512_extracti64x4_epi64(v, 1);
      __m128i x = _mm_or_si128(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      x = _mm_or_si128(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
      x = _mm_or_si128(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
      fields[2 * k + half] = static_cast<std::uint32_t>(_mm_cvtsi128_si32(x));
    }
  }
  detail::store_u32le(group, fields[0] | fields[1] << 24);
  detail::store_u32le(group + 4, fields[1] >> 8 | fields[2] << 16);
  detail::store_u32le(group + 8, fields[2] >> 16 | fields[3] << 8);
}

// ---- 2-bit groups (code j in byte j % 8 at bit 2 * (j / 8)) -> 32 codes as int32 lanes -----------------

template <class A>
inline void unpack2(const std::byte* group, ibatch<A>* codes, requires_arch<xsimd::avx512f>) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(group));  // the group's 8 bytes
  const __m512i twice = _mm512_cvtepu8_epi32(_mm_unpacklo_epi64(bytes, bytes));   // lanes 0-7 and 8-15: bytes 0-7
  const __m512i low = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);  // tokens 0-15
  const __m512i high = _mm512_add_epi32(low, _mm512_set1_epi32(4));                      // tokens 16-31
  codes[0] = _mm512_and_si512(_mm512_srlv_epi32(twice, low), _mm512_set1_epi32(3));
  codes[1] = _mm512_and_si512(_mm512_srlv_epi32(twice, high), _mm512_set1_epi32(3));
}


// ---- integer x 4-bit dot products over 32 lanes (see portable.hpp) ----------------------------

// AVX2's (every AVX-512 CPU has AVX2; xsimd's avx512f does not derive from avx2).
template <class A>
avx2_nibble_dot nibble_dot_of(requires_arch<xsimd::avx512f>);

#if XSIMD_WITH_AVX512BW
/// 32 lanes of 32-bit sums in two registers (lane order), flushed into f32 sums.
struct avx512_lane_sums {
  void flush(float scale) {
    const __m512 s = _mm512_set1_ps(scale);
    KPC_UNROLL
    for (int k = 0; k < 2; ++k) {
      sums[k] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(acc[k]), sums[k]);
      acc[k] = _mm512_setzero_si512();
    }
  }
  void store(float* out) const {
    _mm512_storeu_ps(out, sums[0]);
    _mm512_storeu_ps(out + 16, sums[1]);
  }
  __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
  __m512 sums[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
};

/// Four groups per add: their bytes transposed into (a, b, c, d) quads per lane (vpermd, then
/// vpshufb), multiplied by the four weights with vpdpbusd where the build has AVX512-VNNI, else
/// vpmaddubsw + vpmaddwd; 32-bit sums.
struct avx512_nibble_dot : avx512_lane_sums {
  static constexpr int sources = 4;  ///< groups per add()
  struct quads {
    __m512i low, high;  // lanes 0-15, 16-31
  };
  static quads load(const std::byte* const* groups) {
    __m512i bytes = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(groups[0])));
    bytes = _mm512_inserti32x4(bytes, _mm_loadu_si128(reinterpret_cast<const __m128i*>(groups[1])), 1);
    bytes = _mm512_inserti32x4(bytes, _mm_loadu_si128(reinterpret_cast<const __m128i*>(groups[2])), 2);
    bytes = _mm512_inserti32x4(bytes, _mm_loadu_si128(reinterpret_cast<const __m128i*>(groups[3])), 3);
    // 128-bit lane L: dword L of each group, then bytes reordered so dword i holds byte 4L + i of a, b, c, d.
    const __m512i dwords = _mm512_permutexvar_epi32(
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), bytes);
    const __m512i quad = _mm512_shuffle_epi8(
        dwords, _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)));
    const __m512i mask = _mm512_set1_epi8(0x0F);
    return {_mm512_and_si512(quad, mask), _mm512_and_si512(_mm512_srli_epi16(quad, 4), mask)};
  }
  void add(const quads& q, const std::int8_t* weights) {  // (x86 is little-endian: weights[0] is the low byte)
    std::int32_t four;
    std::memcpy(&four, weights, sizeof four);
    const __m512i w = _mm512_set1_epi32(four);
#if defined(__AVX512VNNI__)
    acc[0] = _mm512_dpbusd_epi32(acc[0], q.low, w);
    acc[1] = _mm512_dpbusd_epi32(acc[1], q.high, w);
#else
    const __m512i ones = _mm512_set1_epi16(1);
    acc[0] = _mm512_add_epi32(acc[0], _mm512_madd_epi16(_mm512_maddubs_epi16(q.low, w), ones));
    acc[1] = _mm512_add_epi32(acc[1], _mm512_madd_epi16(_mm512_maddubs_epi16(q.high, w), ones));
#endif
  }
};
template <class A>
avx512_nibble_dot nibble_dot_of(requires_arch<xsimd::avx512bw>);
#endif

#if XSIMD_WITH_AVX512BW
/// avx2_nibble_dot16 with the 32 (a, b) pairs of 16-bit codes in two registers, in lane order.
struct avx512_nibble_dot16 : avx512_lane_sums {
  struct pair {
    __m512i low, high;  // lanes 0-15, 16-31
  };
  static pair load_pair(const std::byte* a, const std::byte* b) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const __m512i words = _mm512_cvtepu8_epi16(_mm256_set_m128i(_mm_unpackhi_epi8(va, vb), _mm_unpacklo_epi8(va, vb)));
    return {_mm512_and_si512(words, _mm512_set1_epi16(0x0F)), _mm512_srli_epi16(words, 4)};
  }
  void add(const pair& p, const std::int16_t* weights) {
    std::int32_t both;
    std::memcpy(&both, weights, sizeof both);
    const __m512i w = _mm512_set1_epi32(both);
    acc[0] = _mm512_add_epi32(acc[0], _mm512_madd_epi16(p.low, w));
    acc[1] = _mm512_add_epi32(acc[1], _mm512_madd_epi16(p.high, w));
  }
};
template <class A>
avx512_nibble_dot16 nibble_dot16_of(requires_arch<xsimd::avx512bw>);
#endif
template <class A>
avx2_nibble_dot16 nibble_dot16_of(requires_arch<xsimd::avx512f>);

#endif  // XSIMD_WITH_AVX512F

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_AVX512_HPP
