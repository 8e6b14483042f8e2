// SPDX-License-Identifier: MIT
// The SSE2, SSSE3 and SSE4.1 overloads of the xsimd layer's primitives (F16C's where it is on).
#ifndef KPC_SIMD_ARCH_SSE_HPP
#define KPC_SIMD_ARCH_SSE_HPP

#include "common.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

#if XSIMD_WITH_SSE2

// ---- x * y rounded to f32, never fused into a following addition -------------------------------

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::sse2>) {
  typename fbatch<A>::register_type product = x * y;
  __asm__("" : "+v"(product));
  return product;
}
#endif

// ---- x / y correctly rounded --------------------------------------------------------------------------

template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::sse2>) {
  return _mm_div_ps(x, y);
}

// ---- running extremes that keep the first value on ties and skip NaN -----------------------------

template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::sse2>) {
  return _mm_min_ps(x, m);
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::sse2>) {
  return _mm_max_ps(x, m);
}

// ---- the smallest / largest lane (lanes hold no NaN; which of -0 and +0 wins is unspecified) -------

template <class A>
inline float reduce_min(const fbatch<A>& x, requires_arch<xsimd::sse2>) {
  return _mm_cvtss_f32(x86::min4(x));
}
template <class A>
inline float reduce_max(const fbatch<A>& x, requires_arch<xsimd::sse2>) {
  return _mm_cvtss_f32(x86::max4(x));
}

// ---- a comparison's lanes as bits (lane i -> bit i) ----------------------------------------------------

template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<xsimd::sse2>) {
  return static_cast<std::uint32_t>(_mm_movemask_ps(b));
}

// ---- W bytes widened to W int32 lanes (zero- or sign-extended) -----------------------------------

#if XSIMD_WITH_SSE4_1
template <class A>
inline ibatch<A> widen_u8(const std::byte* p, requires_arch<xsimd::sse4_1>) {
  std::int32_t word;
  std::memcpy(&word, p, 4);
  return _mm_cvtepu8_epi32(_mm_cvtsi32_si128(word));
}
template <class A>
inline ibatch<A> widen_i8(const std::byte* p, requires_arch<xsimd::sse4_1>) {
  std::int32_t word;
  std::memcpy(&word, p, 4);
  return _mm_cvtepi8_epi32(_mm_cvtsi32_si128(word));
}
#endif

// ---- the low byte of each int32 lane stored as W bytes --------------------------------------------

#if XSIMD_WITH_SSSE3
template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<xsimd::ssse3>) {
  const __m128i low = _mm_shuffle_epi8(x, _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
  const std::int32_t word = _mm_cvtsi128_si32(low);
  std::memcpy(p, &word, 4);
}
#endif

// ---- 3-bit groups (code j at bits 3j..3j+2 of 12 bytes) <-> 32 codes as int32 lanes -----------------

#if XSIMD_WITH_SSE4_1
template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes, requires_arch<xsimd::sse4_1>) {
  // Four codes per vector; lane i of codes 4m.. sits at bit 12m + 3i. A multiply by 2^(29 - shift)
  // moves each lane's code to the top three bits (SSE has no per-lane shift).
  for (int m = 0; m < 8; ++m) {
    const int byte = m < 6 ? 12 * m / 8 : 8, shift = 12 * m - 8 * byte;
    const __m128i word = _mm_set1_epi32(static_cast<std::int32_t>(detail::load_u32le(group + byte)));
    const __m128i align = _mm_setr_epi32(1 << (29 - shift), 1 << (26 - shift), 1 << (23 - shift), 1 << (20 - shift));
    codes[m] = _mm_srli_epi32(_mm_mullo_epi32(word, align), 29);
  }
}
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group, requires_arch<xsimd::sse4_1>) {
  std::uint32_t fields[4];
  KPC_UNROLL
  for (int k = 0; k < 4; ++k) {  // two vectors make one 24-bit field
    __m128i v = _mm_or_si128(_mm_mullo_epi32(codes[2 * k], _mm_setr_epi32(1, 8, 64, 512)),
                             _mm_mullo_epi32(codes[2 * k + 1], _mm_setr_epi32(1 << 12, 1 << 15, 1 << 18, 1 << 21)));
    v = _mm_or_si128(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm_or_si128(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
    fields[k] = static_cast<std::uint32_t>(_mm_cvtsi128_si32(v));
  }
  detail::store_u32le(group, fields[0] | fields[1] << 24);
  detail::store_u32le(group + 4, fields[1] >> 8 | fields[2] << 16);
  detail::store_u32le(group + 8, fields[2] >> 16 | fields[3] << 8);
}
#endif

// ---- Bits words of W channels <-> each channel's Bits consecutive words --------------------------------

#if XSIMD_WITH_SSE4_1 && !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
template <int Bits, class A>
inline void store_groups(const ubatch<A>* words, std::byte* first, std::size_t stride, requires_arch<xsimd::sse4_1>) {
  __m128i w[Bits];
  for (int k = 0; k < Bits; ++k) w[k] = words[k];
  std::byte* const p[4] = {first, first + stride, first + 2 * stride, first + 3 * stride};
  x86::store_4<Bits>(w, p);
}
template <int Bits, class A>
inline void load_groups(const std::byte* first, std::size_t stride, ubatch<A>* words, requires_arch<xsimd::sse4_1>) {
  const std::byte* const p[4] = {first, first + stride, first + 2 * stride, first + 3 * stride};
  __m128i w[Bits];
  x86::load_4<Bits>(p, w);
  for (int k = 0; k < Bits; ++k) words[k] = w[k];
}
#endif

// ---- binary16 <-> f32 (round to nearest even, like fp32_to_fp16_bits) ------------------------------

#if defined(__F16C__)
template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<xsimd::sse2>) {
  return f16c_half_to_float(bits);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<xsimd::sse2>) {
  return f16c_float_to_half(value);
}
#endif
#if XSIMD_WITH_SSE4_1
template <class A>
inline ibatch<A> widen_u16(const half* p, requires_arch<xsimd::sse4_1>) {
  return _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
template <class A>
inline void narrow_u16(const ibatch<A>& x, half* p, requires_arch<xsimd::sse4_1>) {
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi32(x, x));
}
#endif
#if defined(__F16C__)
template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<xsimd::sse2>) {
  return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<xsimd::sse2>) {
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}
#endif


// ---- integer x 4-bit dot products over 32 lanes (see portable.hpp) ----------------------------

#if XSIMD_WITH_SSE4_1
/// Byte pairs (group a's code, group b's code) feed pmaddubsw: u8 codes x s8 weights, summed in
/// pairs to 16 bits.
struct sse_nibble_dot {
  static constexpr int sources = 2;  ///< groups per add()
  struct pair {
    __m128i codes[4];  // lanes 0-7, 8-15, 16-23, 24-31
  };
  static pair load_pair(const std::byte* a, const std::byte* b) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const __m128i low = _mm_unpacklo_epi8(va, vb), high = _mm_unpackhi_epi8(va, vb);
    const __m128i mask = _mm_set1_epi8(0x0F);
    return {{_mm_and_si128(low, mask), _mm_and_si128(high, mask), _mm_and_si128(_mm_srli_epi16(low, 4), mask),
             _mm_and_si128(_mm_srli_epi16(high, 4), mask)}};
  }
  static pair load(const std::byte* const* groups) { return load_pair(groups[0], groups[1]); }
  void add(const pair& p, const std::int8_t* weights) {  // (x86 is little-endian: weights[0] is the low byte)
    std::int16_t both;
    std::memcpy(&both, weights, sizeof both);
    const __m128i w = _mm_set1_epi16(both);
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) acc[k] = _mm_add_epi16(acc[k], _mm_maddubs_epi16(p.codes[k], w));
  }
  void flush(float scale) {
    const __m128 s = _mm_set1_ps(scale);
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) {
      const __m128i low = _mm_cvtepi16_epi32(acc[k]), high = _mm_cvtepi16_epi32(_mm_srli_si128(acc[k], 8));
      sums[2 * k] = _mm_add_ps(sums[2 * k], _mm_mul_ps(s, _mm_cvtepi32_ps(low)));
      sums[2 * k + 1] = _mm_add_ps(sums[2 * k + 1], _mm_mul_ps(s, _mm_cvtepi32_ps(high)));
      acc[k] = _mm_setzero_si128();
    }
  }
  void store(float* out) const {
    KPC_UNROLL
    for (int k = 0; k < 8; ++k) _mm_storeu_ps(out + 4 * k, sums[k]);
  }
  __m128i acc[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
  __m128 sums[8] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(),
                    _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
};
template <class A>
sse_nibble_dot nibble_dot_of(requires_arch<xsimd::sse4_1>);

/// Codes widened to 16-bit (a, b) pairs for pmaddwd: int16 x int16, summed in pairs to 32 bits.
struct sse_nibble_dot16 {
  struct pair {
    __m128i codes[8];  // lanes 0-3, 4-7, ..., 28-31
  };
  static pair load_pair(const std::byte* a, const std::byte* b) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
    const __m128i bytes[2] = {_mm_unpacklo_epi8(va, vb), _mm_unpackhi_epi8(va, vb)};  // bytes 0-7, 8-15
    const __m128i zero = _mm_setzero_si128(), mask = _mm_set1_epi16(0x0F);
    pair p;
    KPC_UNROLL
    for (int k = 0; k < 2; ++k) {
      const __m128i low = _mm_unpacklo_epi8(bytes[k], zero), high = _mm_unpackhi_epi8(bytes[k], zero);
      p.codes[2 * k] = _mm_and_si128(low, mask);        // lanes 8k .. 8k+3
      p.codes[2 * k + 1] = _mm_and_si128(high, mask);   // lanes 8k+4 .. 8k+7
      p.codes[4 + 2 * k] = _mm_srli_epi16(low, 4);      // lanes 16+8k ..
      p.codes[4 + 2 * k + 1] = _mm_srli_epi16(high, 4);
    }
    return p;
  }
  void add(const pair& p, const std::int16_t* weights) {
    std::int32_t both;
    std::memcpy(&both, weights, sizeof both);
    const __m128i w = _mm_set1_epi32(both);
    KPC_UNROLL
    for (int k = 0; k < 8; ++k) acc[k] = _mm_add_epi32(acc[k], _mm_madd_epi16(p.codes[k], w));
  }
  void flush(float scale) {
    const __m128 s = _mm_set1_ps(scale);
    KPC_UNROLL
    for (int k = 0; k < 8; ++k) {
      sums[k] = _mm_add_ps(sums[k], _mm_mul_ps(s, _mm_cvtepi32_ps(acc[k])));
      acc[k] = _mm_setzero_si128();
    }
  }
  void store(float* out) const {
    KPC_UNROLL
    for (int k = 0; k < 8; ++k) _mm_storeu_ps(out + 4 * k, sums[k]);
  }
  __m128i acc[8] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(),
                    _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
  __m128 sums[8] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(),
                    _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
};
template <class A>
sse_nibble_dot16 nibble_dot16_of(requires_arch<xsimd::sse4_1>);
#endif

#endif  // XSIMD_WITH_SSE2

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_SSE_HPP
