// SPDX-License-Identifier: MIT
// The xsimd layer: version shims and the few primitives xsimd 8.1 lacks or gets inexact (byte
// widening and narrowing, binary16 conversion, correctly rounded division, a fused-multiply-add
// barrier). All instruction-set-specific
// code of kpc is in this file; the kernels in per_channel.hpp / per_token.hpp are generic over
// the xsimd arch. Each primitive has a portable fallback (requires_arch<portable_arch>) and
// overloads for the most derived arch that has a better instruction.
#ifndef KPC_SIMD_ARCH_HPP
#define KPC_SIMD_ARCH_HPP

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

#include "../config.hpp"
#include "../detail/arith.hpp"
#include "../detail/bits.hpp"
#include "../half.hpp"

#if XSIMD_VERSION_MAJOR < 8 || (XSIMD_VERSION_MAJOR == 8 && XSIMD_VERSION_MINOR < 1)
#error "kpc needs xsimd 8.1 or newer (or define KPC_NO_SIMD for the scalar reference only)"
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

// ---- x * y rounded to f32, never fused into a following addition -------------------------------
// (The SIMD twin of detail::mul_rounded: GCC contracts intrinsics into FMA too.)

template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<portable_arch>) {
  alignas(64) float lanes[fbatch<A>::size];
  (x * y).store_aligned(lanes);
  for (float& lane : lanes) lane = detail::mul_rounded(lane, 1.0f);  // opaque per lane
  return fbatch<A>::load_aligned(lanes);
}

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::sse2>) {
  typename fbatch<A>::register_type product = x * y;
  __asm__("" : "+v"(product));
  return product;
}
#if XSIMD_WITH_AVX
template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::avx>) {
  typename fbatch<A>::register_type product = x * y;
  __asm__("" : "+v"(product));
  return product;
}
#endif
#if XSIMD_WITH_AVX512F
template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::avx512f>) {
  typename fbatch<A>::register_type product = x * y;
  __asm__("" : "+v"(product));
  return product;
}
#endif
#endif
#if (defined(__GNUC__) || defined(__clang__)) && XSIMD_WITH_NEON
template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::neon>) {
  typename fbatch<A>::register_type product = x * y;
  __asm__("" : "+w"(product));
  return product;
}
#endif

// ---- x / y correctly rounded --------------------------------------------------------------------------
// The formats divide exactly; xsimd 8.1's NEON float division is a reciprocal estimate refined by
// Newton steps (AArch64 included), which is off by an ulp now and then and flips codes at ties.

template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<portable_arch>) {
  alignas(64) float xs[fbatch<A>::size], ys[fbatch<A>::size];
  x.store_aligned(xs);
  y.store_aligned(ys);
  for (std::size_t i = 0; i < fbatch<A>::size; ++i) xs[i] = detail::div_rounded(xs[i], ys[i]);
  return fbatch<A>::load_aligned(xs);
}
#if XSIMD_WITH_SSE2
template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::sse2>) {
  return _mm_div_ps(x, y);
}
#endif
#if XSIMD_WITH_AVX
template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::avx>) {
  return _mm256_div_ps(x, y);
}
#endif
#if XSIMD_WITH_AVX512F
template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::avx512f>) {
  return _mm512_div_ps(x, y);
}
#endif
#if XSIMD_WITH_NEON64
template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::neon64>) {
  return vdivq_f32(x, y);
}
#endif

// ---- running extremes that keep the first value on ties and skip NaN -----------------------------
// (ref: `if (x < m) m = x`). x86's minps(x, m) is defined as x < m ? x : m, exactly that, in one
// instruction; other instruction sets (NEON's vminq propagates NaN) use compare and select.

template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m, requires_arch<portable_arch>) {
  return xsimd::select(x < m, x, m);
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m, requires_arch<portable_arch>) {
  return xsimd::select(x > m, x, m);
}
#if XSIMD_WITH_SSE2
template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::sse2>) {
  return _mm_min_ps(x, m);
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::sse2>) {
  return _mm_max_ps(x, m);
}
#endif
#if XSIMD_WITH_AVX
template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::avx>) {
  return _mm256_min_ps(x, m);
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::avx>) {
  return _mm256_max_ps(x, m);
}
#endif
#if XSIMD_WITH_AVX512F
template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::avx512f>) {
  return _mm512_min_ps(x, m);
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m, requires_arch<xsimd::avx512f>) {
  return _mm512_max_ps(x, m);
}
#endif

// ---- the smallest / largest lane (lanes hold no NaN; which of -0 and +0 wins is unspecified) -------

template <class A>
inline float reduce_min(const fbatch<A>& x, requires_arch<portable_arch>) {
  alignas(64) float lanes[fbatch<A>::size];
  x.store_aligned(lanes);
  float m = lanes[0];
  for (float lane : lanes) m = lane < m ? lane : m;
  return m;
}
template <class A>
inline float reduce_max(const fbatch<A>& x, requires_arch<portable_arch>) {
  alignas(64) float lanes[fbatch<A>::size];
  x.store_aligned(lanes);
  float m = lanes[0];
  for (float lane : lanes) m = lane > m ? lane : m;
  return m;
}
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
template <class A>
inline float reduce_min(const fbatch<A>& x, requires_arch<xsimd::sse2>) {
  return _mm_cvtss_f32(x86::min4(x));
}
template <class A>
inline float reduce_max(const fbatch<A>& x, requires_arch<xsimd::sse2>) {
  return _mm_cvtss_f32(x86::max4(x));
}
#endif
#if XSIMD_WITH_AVX
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
#endif
#if XSIMD_WITH_AVX512F
template <class A>
inline float reduce_min(const fbatch<A>& x, requires_arch<xsimd::avx512f>) {
  return _mm512_reduce_min_ps(x);
}
template <class A>
inline float reduce_max(const fbatch<A>& x, requires_arch<xsimd::avx512f>) {
  return _mm512_reduce_max_ps(x);
}
#endif
#if XSIMD_WITH_NEON64
template <class A>
inline float reduce_min(const fbatch<A>& x, requires_arch<xsimd::neon64>) {
  return vminvq_f32(x);
}
template <class A>
inline float reduce_max(const fbatch<A>& x, requires_arch<xsimd::neon64>) {
  return vmaxvq_f32(x);
}
#endif

// ---- a comparison's lanes as bits (lane i -> bit i) ----------------------------------------------------

template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<portable_arch>) {
  alignas(64) float lanes[fbatch<A>::size];
  xsimd::select(b, fbatch<A>(1.0f), fbatch<A>(0.0f)).store_aligned(lanes);
  std::uint32_t mask = 0;
  for (std::size_t i = 0; i < fbatch<A>::size; ++i) mask |= (lanes[i] != 0.0f ? 1u : 0u) << i;
  return mask;
}
#if XSIMD_WITH_SSE2
template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<xsimd::sse2>) {
  return static_cast<std::uint32_t>(_mm_movemask_ps(b));
}
#endif
#if XSIMD_WITH_AVX
template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<xsimd::avx>) {
  return static_cast<std::uint32_t>(_mm256_movemask_ps(b));
}
#endif
#if XSIMD_WITH_AVX512F
template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<xsimd::avx512f>) {
  return static_cast<std::uint32_t>(static_cast<__mmask16>(b));
}
#endif
#if XSIMD_WITH_NEON64
template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<xsimd::neon64>) {
  static const int32_t shifts[4] = {0, 1, 2, 3};
  const uint32x4_t bits = vshlq_u32(vshrq_n_u32(b, 31), vld1q_s32(shifts));
  return vaddvq_u32(bits);
}
#endif

// ---- W bytes widened to W int32 lanes (zero- or sign-extended) -----------------------------------

template <class A>
inline ibatch<A> widen_u8(const std::byte* p, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[ibatch<A>::size];
  for (std::size_t i = 0; i < ibatch<A>::size; ++i) lanes[i] = static_cast<std::uint8_t>(p[i]);
  return ibatch<A>::load_aligned(lanes);
}

template <class A>
inline ibatch<A> widen_i8(const std::byte* p, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[ibatch<A>::size];
  for (std::size_t i = 0; i < ibatch<A>::size; ++i) lanes[i] = static_cast<std::int8_t>(static_cast<std::uint8_t>(p[i]));
  return ibatch<A>::load_aligned(lanes);
}

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
#if XSIMD_WITH_AVX512F
template <class A>
inline ibatch<A> widen_u8(const std::byte* p, requires_arch<xsimd::avx512f>) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
template <class A>
inline ibatch<A> widen_i8(const std::byte* p, requires_arch<xsimd::avx512f>) {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
#endif
#if XSIMD_WITH_NEON64
template <class A>
inline ibatch<A> widen_u8(const std::byte* p, requires_arch<xsimd::neon64>) {
  std::uint32_t word;
  std::memcpy(&word, p, 4);
  const uint16x8_t halves = vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(word)));
  return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(halves)));
}
template <class A>
inline ibatch<A> widen_i8(const std::byte* p, requires_arch<xsimd::neon64>) {
  std::uint32_t word;
  std::memcpy(&word, p, 4);
  const int16x8_t halves = vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(word)));
  return vmovl_s16(vget_low_s16(halves));
}
#endif

// ---- the low byte of each int32 lane stored as W bytes --------------------------------------------

template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[ibatch<A>::size];
  x.store_aligned(lanes);
  for (std::size_t i = 0; i < ibatch<A>::size; ++i) p[i] = static_cast<std::byte>(lanes[i] & 0xFF);
}

#if XSIMD_WITH_SSSE3
template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<xsimd::ssse3>) {
  const __m128i low = _mm_shuffle_epi8(x, _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
  const std::int32_t word = _mm_cvtsi128_si32(low);
  std::memcpy(p, &word, 4);
}
#endif
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
#if XSIMD_WITH_AVX512F
template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<xsimd::avx512f>) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(x));
}
#endif
#if XSIMD_WITH_NEON64
template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<xsimd::neon64>) {
  const uint16x4_t halves = vmovn_u32(vreinterpretq_u32_s32(x));
  const uint8x8_t bytes = vmovn_u16(vcombine_u16(halves, halves));
  const std::uint32_t word = vget_lane_u32(vreinterpret_u32_u8(bytes), 0);
  std::memcpy(p, &word, 4);
}
#endif

// ---- 3-bit groups (code j at bits 3j..3j+2 of 12 bytes) <-> 32 codes as int32 lanes -----------------
// Eight codes are 24 contiguous bits: broadcast the 32-bit word holding them, shift lane i right by
// 3i, mask. Words are read at byte 3k (k < 3) or at byte 8 shifted by 8, never past the group.

inline std::uint32_t code3_field(const std::byte* group, int eight) {  // codes 8*eight .. 8*eight+7
  return eight < 3 ? detail::load_u32le(group + 3 * eight) : detail::load_u32le(group + 8) >> 8;
}

template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[32];
  for (int j = 0; j < 32; ++j) lanes[j] = static_cast<std::int32_t>((code3_field(group, j / 8) >> (3 * (j % 8))) & 7u);
  for (std::size_t v = 0; v < 32 / ibatch<A>::size; ++v) codes[v] = ibatch<A>::load_aligned(lanes + v * ibatch<A>::size);
}

/// 32 codes (< 8) into the 12-byte group.
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[32];
  for (std::size_t v = 0; v < 32 / ibatch<A>::size; ++v) codes[v].store_aligned(lanes + v * ibatch<A>::size);
  std::uint32_t fields[4] = {};
  for (int j = 0; j < 32; ++j) fields[j / 8] |= static_cast<std::uint32_t>(lanes[j]) << (3 * (j % 8));
  detail::store_u32le(group, fields[0] | fields[1] << 24);
  detail::store_u32le(group + 4, fields[1] >> 8 | fields[2] << 16);
  detail::store_u32le(group + 8, fields[2] >> 16 | fields[3] << 8);
}

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
#if XSIMD_WITH_AVX2
template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes, requires_arch<xsimd::avx2>) {
  const __m256i shifts = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
  for (int k = 0; k < 4; ++k) {
    const __m256i word = _mm256_set1_epi32(static_cast<std::int32_t>(code3_field(group, k)));
    codes[k] = _mm256_and_si256(_mm256_srlv_epi32(word, shifts), _mm256_set1_epi32(7));
  }
}
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group, requires_arch<xsimd::avx2>) {
  const __m256i shifts = _mm256_setr_epi32(0, 3, 6, 9, 12, 15, 18, 21);
  std::uint32_t fields[4];
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
#if XSIMD_WITH_NEON64
template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes, requires_arch<xsimd::neon64>) {
  static const std::int32_t lane_shifts[4] = {0, -3, -6, -9};
  const int32x4_t shifts = vld1q_s32(lane_shifts);
  for (int m = 0; m < 8; ++m) {  // codes 4m.. at bit 12m of the little-endian field
    const int byte = m < 6 ? 12 * m / 8 : 8, shift = 12 * m - 8 * byte;
    const uint32x4_t word = vdupq_n_u32(detail::load_u32le(group + byte) >> shift);
    codes[m] = vreinterpretq_s32_u32(vandq_u32(vshlq_u32(word, shifts), vdupq_n_u32(7)));
  }
}
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group, requires_arch<xsimd::neon64>) {
  static const std::int32_t lane_shifts[4] = {0, 3, 6, 9};
  const int32x4_t shifts = vld1q_s32(lane_shifts);
  std::uint32_t fields[4];
  for (int k = 0; k < 4; ++k) {  // disjoint bits: the lane sum is their OR
    fields[k] = vaddvq_u32(vshlq_u32(vreinterpretq_u32_s32(codes[2 * k]), shifts)) |
                vaddvq_u32(vshlq_u32(vreinterpretq_u32_s32(codes[2 * k + 1]), shifts)) << 12;
  }
  detail::store_u32le(group, fields[0] | fields[1] << 24);
  detail::store_u32le(group + 4, fields[1] >> 8 | fields[2] << 16);
  detail::store_u32le(group + 8, fields[2] >> 16 | fields[3] << 8);
}
#endif

// ---- Bits words of W channels <-> each channel's Bits consecutive words --------------------------------
// A K tile stores each channel's packed group as Bits little-endian words; the kernels build them
// with channels as lanes. store_groups/load_groups transpose between the two in registers (going
// through memory costs a store-forwarding stall per word). Lane l's group is at first + l * stride.

template <int Bits, class A>
inline void store_groups(const ubatch<A>* words, std::byte* first, std::size_t stride, requires_arch<portable_arch>) {
  alignas(64) std::uint32_t lanes[Bits][ubatch<A>::size];
  for (int k = 0; k < Bits; ++k) words[k].store_aligned(lanes[k]);
  for (std::size_t l = 0; l < ubatch<A>::size; ++l)
    for (int k = 0; k < Bits; ++k) detail::store_u32le(first + l * stride + 4 * k, lanes[k][l]);
}

template <int Bits, class A>
inline void load_groups(const std::byte* first, std::size_t stride, ubatch<A>* words, requires_arch<portable_arch>) {
  alignas(64) std::uint32_t lanes[Bits][ubatch<A>::size];
  for (std::size_t l = 0; l < ubatch<A>::size; ++l)
    for (int k = 0; k < Bits; ++k) lanes[k][l] = detail::load_u32le(first + l * stride + 4 * k);
  for (int k = 0; k < Bits; ++k) words[k] = ubatch<A>::load_aligned(lanes[k]);
}

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
#if XSIMD_WITH_NEON64
template <int Bits, class A>
inline void store_groups(const ubatch<A>* words, std::byte* first, std::size_t stride, requires_arch<xsimd::neon64>) {
  const uint32x4x2_t ab = vtrnq_u32(words[0], words[1]);  // a0 b0 a2 b2 | a1 b1 a3 b3
  auto at = [&](int l) { return reinterpret_cast<std::uint32_t*>(first + l * stride); };
  if constexpr (Bits == 4) {
    const uint32x4x2_t cd = vtrnq_u32(words[2], words[3]);
    vst1q_u32(at(0), vcombine_u32(vget_low_u32(ab.val[0]), vget_low_u32(cd.val[0])));
    vst1q_u32(at(1), vcombine_u32(vget_low_u32(ab.val[1]), vget_low_u32(cd.val[1])));
    vst1q_u32(at(2), vcombine_u32(vget_high_u32(ab.val[0]), vget_high_u32(cd.val[0])));
    vst1q_u32(at(3), vcombine_u32(vget_high_u32(ab.val[1]), vget_high_u32(cd.val[1])));
  } else {
    vst1_u32(at(0), vget_low_u32(ab.val[0]));
    vst1_u32(at(1), vget_low_u32(ab.val[1]));
    vst1_u32(at(2), vget_high_u32(ab.val[0]));
    vst1_u32(at(3), vget_high_u32(ab.val[1]));
    if constexpr (Bits == 3) {
      const uint32x4_t c = words[2];
      vst1q_lane_u32(at(0) + 2, c, 0);
      vst1q_lane_u32(at(1) + 2, c, 1);
      vst1q_lane_u32(at(2) + 2, c, 2);
      vst1q_lane_u32(at(3) + 2, c, 3);
    }
  }
}
template <int Bits, class A>
inline void load_groups(const std::byte* first, std::size_t stride, ubatch<A>* words, requires_arch<xsimd::neon64>) {
  auto at = [&](int l) { return reinterpret_cast<const std::uint32_t*>(first + l * stride); };
  if constexpr (Bits == 4) {
    const uint32x4x2_t r01 = vtrnq_u32(vld1q_u32(at(0)), vld1q_u32(at(1)));  // a0 b0 a2 b2 | a1 b1 a3 b3 (lane-wise)
    const uint32x4x2_t r23 = vtrnq_u32(vld1q_u32(at(2)), vld1q_u32(at(3)));
    words[0] = vcombine_u32(vget_low_u32(r01.val[0]), vget_low_u32(r23.val[0]));
    words[1] = vcombine_u32(vget_low_u32(r01.val[1]), vget_low_u32(r23.val[1]));
    words[2] = vcombine_u32(vget_high_u32(r01.val[0]), vget_high_u32(r23.val[0]));
    words[3] = vcombine_u32(vget_high_u32(r01.val[1]), vget_high_u32(r23.val[1]));
  } else {
    const uint32x4x2_t r01 = vtrnq_u32(vcombine_u32(vld1_u32(at(0)), vld1_u32(at(2))),
                                       vcombine_u32(vld1_u32(at(1)), vld1_u32(at(3))));
    words[0] = r01.val[0];  // a0 a1 a2 a3
    words[1] = r01.val[1];  // b0 b1 b2 b3
    if constexpr (Bits == 3) {
      uint32x4_t c = vdupq_n_u32(0);
      c = vld1q_lane_u32(at(0) + 2, c, 0);
      c = vld1q_lane_u32(at(1) + 2, c, 1);
      c = vld1q_lane_u32(at(2) + 2, c, 2);
      c = vld1q_lane_u32(at(3) + 2, c, 3);
      words[2] = c;
    }
  }
}
#endif

// ---- binary16 <-> f32 (round to nearest even, like fp32_to_fp16_bits) ------------------------------

/// One binary16 field (a block's d or m) as f32, and back (round to nearest even).
template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<portable_arch>) {
  return fp16_bits_to_fp32(bits);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<portable_arch>) {
  return fp32_to_fp16_bits(value);
}
#if defined(__F16C__)
// The vector forms, not _cvtss_sh: clang's macro for that one uses a compound literal (-Wpedantic).
inline float f16c_half_to_float(std::uint16_t bits) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits)));
}
inline std::uint16_t f16c_float_to_half(float value) {
  return static_cast<std::uint16_t>(
      _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(value), _MM_FROUND_TO_NEAREST_INT), 0));
}
template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<xsimd::sse2>) {
  return f16c_half_to_float(bits);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<xsimd::sse2>) {
  return f16c_float_to_half(value);
}
template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<xsimd::avx>) {
  return f16c_half_to_float(bits);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<xsimd::avx>) {
  return f16c_float_to_half(value);
}
template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<xsimd::avx512f>) {
  return f16c_half_to_float(bits);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<xsimd::avx512f>) {
  return f16c_float_to_half(value);
}
#endif
#if XSIMD_WITH_NEON64
template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<xsimd::neon64>) {
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(bits))), 0);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<xsimd::neon64>) {
  return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(value))), 0);
}
#endif

// W binary16 values <-> W u32 lanes.
template <class A>
inline ibatch<A> widen_u16(const half* p, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[ibatch<A>::size];
  for (std::size_t i = 0; i < ibatch<A>::size; ++i) lanes[i] = p[i].bits;
  return ibatch<A>::load_aligned(lanes);
}
template <class A>
inline void narrow_u16(const ibatch<A>& x, half* p, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[ibatch<A>::size];
  x.store_aligned(lanes);
  for (std::size_t i = 0; i < ibatch<A>::size; ++i) p[i] = half::from_bits(static_cast<std::uint16_t>(lanes[i]));
}
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

/// fp16_bits_to_fp32 on W lanes, in integers (exact, and independent of DAZ): normals rebias the
/// exponent, subnormals are m * 2^-24 (m < 1024 converts exactly), Inf and NaN keep all-ones.
template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<portable_arch>) {
  using I = ibatch<A>;
  const I bits = widen_u16<A>(p, A{});
  const I magnitude = bits & I(0x7FFF);
  const I normal = (magnitude << 13) + I(0x38000000);
  const I subnormal = bit_cast<std::int32_t>(xsimd::to_float(magnitude) * fbatch<A>(5.9604644775390625e-8f));
  const I special = (magnitude << 13) | I(0x7F800000);
  I out = xsimd::select(magnitude < I(0x0400), subnormal, xsimd::select(magnitude >= I(0x7C00), special, normal));
  out = out | ((bits & I(0x8000)) << 16);
  return bit_cast<float>(out);
}

/// fp32_to_fp16_bits on W lanes: round to nearest even; overflow to Inf; NaN stays NaN. Results
/// below 2^-14 come from adding 0.5f (whose ulp is 2^-24, the binary16 subnormal step): the
/// hardware's own round-to-nearest-even then rounds, and f32 denormal inputs give 0 either way.
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<portable_arch>) {
  using I = ibatch<A>;
  const I bits = bit_cast<std::int32_t>(x);
  const I magnitude = bits & I(0x7FFFFFFF);
  const I nan = I(0x7E00) | ((magnitude >> 13) & I(0x3FF));
  I rebiased = magnitude - I(0x38000000);
  rebiased = (rebiased + I(0x0FFF) + ((rebiased >> 13) & I(1))) >> 13;
  const I subnormal = bit_cast<std::int32_t>(bit_cast<float>(magnitude) + fbatch<A>(0.5f)) - I(0x3F000000);
  I out = xsimd::select(magnitude >= I(0x38800000), rebiased, subnormal);
  out = xsimd::select(magnitude >= I(0x477FF000), I(0x7C00), out);
  out = xsimd::select(magnitude > I(0x7F800000), nan, out);
  out = out | ((bits >> 16) & I(0x8000));
  narrow_u16<A>(out, p, A{});
}

#if defined(__F16C__)
template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<xsimd::sse2>) {
  return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<xsimd::sse2>) {
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}
#if XSIMD_WITH_AVX
template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<xsimd::avx>) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<xsimd::avx>) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}
#endif
#if XSIMD_WITH_AVX512F
template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<xsimd::avx512f>) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<xsimd::avx512f>) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}
#endif
#endif
#if XSIMD_WITH_NEON64
template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<xsimd::neon64>) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const std::uint16_t*>(p))));
}
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<xsimd::neon64>) {
  vst1_u16(reinterpret_cast<std::uint16_t*>(p), vreinterpret_u16_f16(vcvt_f16_f32(x)));
}
#endif

// ---- entry points: pick the overload for A -----------------------------------------------------------

template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y) {
  return mul_rounded<A>(x, y, A{});
}
template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b) {
  return to_mask<A>(b, A{});
}
template <class A>
inline float reduce_min(const fbatch<A>& x) {
  return reduce_min<A>(x, A{});
}
template <class A>
inline float reduce_max(const fbatch<A>& x) {
  return reduce_max<A>(x, A{});
}
template <class A>
inline float half_to_float(std::uint16_t bits) {
  return half_to_float<A>(bits, A{});
}
template <class A>
inline std::uint16_t float_to_half(float value) {
  return float_to_half<A>(value, A{});
}
template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes) {
  unpack3<A>(group, codes, A{});
}
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group) {
  pack3<A>(codes, group, A{});
}
template <int Bits, class A>
inline void store_groups(const ubatch<A>* words, std::byte* first, std::size_t stride) {
  store_groups<Bits, A>(words, first, stride, A{});
}
template <int Bits, class A>
inline void load_groups(const std::byte* first, std::size_t stride, ubatch<A>* words) {
  load_groups<Bits, A>(first, stride, words, A{});
}
template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y) {
  return div_rounded<A>(x, y, A{});
}
template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m) {
  return running_min<A>(x, m, A{});
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m) {
  return running_max<A>(x, m, A{});
}
template <class A>
inline ibatch<A> widen_u8(const std::byte* p) {
  return widen_u8<A>(p, A{});
}

/// Tracks whether every value seen is finite: x - x is +0 for finite x and NaN otherwise, so
/// OR-ing its bits stays 0 exactly while all values are finite (one cheap instruction per vector).
template <class A>
struct finite_probe {
  ubatch<A> bits = ubatch<A>(0u);
  void add(const fbatch<A>& x) { bits |= bit_cast<std::uint32_t>(x - x); }
  bool all_finite() const { return xsimd::all(bits == ubatch<A>(0u)); }
};
template <class A>
inline ibatch<A> widen_i8(const std::byte* p) {
  return widen_i8<A>(p, A{});
}
template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p) {
  store_low_bytes<A>(x, p, A{});
}

/// Loads W row elements as f32.
template <class A>
inline fbatch<A> load(const float* p) {
  return fbatch<A>::load_unaligned(p);
}
template <class A>
inline fbatch<A> load(const half* p) {
  return load_f16<A>(p, A{});
}

/// Stores W f32 lanes as row elements.
template <class A>
inline void store(const fbatch<A>& x, float* p) {
  x.store_unaligned(p);
}
template <class A>
inline void store(const fbatch<A>& x, half* p) {
  store_f16<A>(x, p, A{});
}

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_HPP
