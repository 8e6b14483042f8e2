// SPDX-License-Identifier: MIT
// The NEON overloads of the xsimd layer's primitives (all but mul_rounded need AArch64's NEON64).
#ifndef KPC_SIMD_ARCH_NEON_HPP
#define KPC_SIMD_ARCH_NEON_HPP

#include "common.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

#if XSIMD_WITH_NEON

// ---- x * y rounded to f32, never fused into a following addition -------------------------------

#if defined(__GNUC__) || defined(__clang__)
template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::neon>) {
  typename fbatch<A>::register_type product = x * y;
  __asm__("" : "+w"(product));
  return product;
}
#endif

#if XSIMD_WITH_NEON64

// ---- x / y correctly rounded --------------------------------------------------------------------------

template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<xsimd::neon64>) {
  return vdivq_f32(x, y);
}

// ---- running extremes that keep the first value on ties and skip NaN -----------------------------

// None: vminq / vmaxq propagate NaN, so the portable compare and select it is.

// ---- the smallest / largest lane (lanes hold no NaN; which of -0 and +0 wins is unspecified) -------

template <class A>
inline float reduce_min(const fbatch<A>& x, requires_arch<xsimd::neon64>) {
  return vminvq_f32(x);
}
template <class A>
inline float reduce_max(const fbatch<A>& x, requires_arch<xsimd::neon64>) {
  return vmaxvq_f32(x);
}

// ---- a comparison's lanes as bits (lane i -> bit i) ----------------------------------------------------

template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<xsimd::neon64>) {
  static const int32_t shifts[4] = {0, 1, 2, 3};
  const uint32x4_t bits = vshlq_u32(vshrq_n_u32(b, 31), vld1q_s32(shifts));
  return vaddvq_u32(bits);
}

// ---- W bytes widened to W int32 lanes (zero- or sign-extended) -----------------------------------

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

// ---- the low byte of each int32 lane stored as W bytes --------------------------------------------

template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<xsimd::neon64>) {
  const uint16x4_t halves = vmovn_u32(vreinterpretq_u32_s32(x));
  const uint8x8_t bytes = vmovn_u16(vcombine_u16(halves, halves));
  const std::uint32_t word = vget_lane_u32(vreinterpret_u32_u8(bytes), 0);
  std::memcpy(p, &word, 4);
}

// ---- 3-bit groups (code j at bits 3j..3j+2 of 12 bytes) <-> 32 codes as int32 lanes -----------------

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
  KPC_UNROLL
  for (int k = 0; k < 4; ++k) {  // disjoint bits: the lane sum is their OR
    fields[k] = vaddvq_u32(vshlq_u32(vreinterpretq_u32_s32(codes[2 * k]), shifts)) |
                vaddvq_u32(vshlq_u32(vreinterpretq_u32_s32(codes[2 * k + 1]), shifts)) << 12;
  }
  detail::store_u32le(group, fields[0] | fields[1] << 24);
  detail::store_u32le(group + 4, fields[1] >> 8 | fields[2] << 16);
  detail::store_u32le(group + 8, fields[2] >> 16 | fields[3] << 8);
}

// ---- Bits words of W channels <-> each channel's Bits consecutive words --------------------------------

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

// ---- binary16 <-> f32 (round to nearest even, like fp32_to_fp16_bits) ------------------------------

template <class A>
inline float half_to_float(std::uint16_t bits, requires_arch<xsimd::neon64>) {
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(bits))), 0);
}
template <class A>
inline std::uint16_t float_to_half(float value, requires_arch<xsimd::neon64>) {
  return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(value))), 0);
}

template <class A>
inline fbatch<A> load_f16(const half* p, requires_arch<xsimd::neon64>) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const std::uint16_t*>(p))));
}
template <class A>
inline void store_f16(const fbatch<A>& x, half* p, requires_arch<xsimd::neon64>) {
  vst1_u16(reinterpret_cast<std::uint16_t*>(p), vreinterpret_u16_f16(vcvt_f16_f32(x)));
}

#endif  // XSIMD_WITH_NEON64

// ---- integer x 4-bit dot products over 32 lanes (see portable.hpp) ----------------------------

/// Codes widened to 16 bits once per pair, multiply-accumulated by scalar weights.
struct neon_nibble_dot {
  static constexpr int sources = 2;  ///< groups per add()
  struct pair {
    int16x8_t a[4], b[4];  // lanes 0-7, 8-15, 16-23, 24-31
  };
  static void widen(const std::byte* group, int16x8_t* lanes) {
    const uint8x16_t bytes = vld1q_u8(reinterpret_cast<const std::uint8_t*>(group));
    const uint8x16_t low = vandq_u8(bytes, vdupq_n_u8(0x0F)), high = vshrq_n_u8(bytes, 4);
    lanes[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(low)));
    lanes[1] = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(low)));
    lanes[2] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(high)));
    lanes[3] = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(high)));
  }
  static pair load_pair(const std::byte* a, const std::byte* b) {
    pair p;
    widen(a, p.a);
    widen(b, p.b);
    return p;
  }
  static pair load(const std::byte* const* groups) { return load_pair(groups[0], groups[1]); }
  void add(const pair& p, const std::int8_t* weights) {
    const std::int16_t wa = weights[0], wb = weights[1];
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) acc[k] = vmlaq_n_s16(vmlaq_n_s16(acc[k], p.a[k], wa), p.b[k], wb);
  }
  void flush(float scale) {
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) {
      sums[2 * k] = vmlaq_n_f32(sums[2 * k], vcvtq_f32_s32(vmovl_s16(vget_low_s16(acc[k]))), scale);
      sums[2 * k + 1] = vmlaq_n_f32(sums[2 * k + 1], vcvtq_f32_s32(vmovl_s16(vget_high_s16(acc[k]))), scale);
      acc[k] = vdupq_n_s16(0);
    }
  }
  void store(float* out) const {
    KPC_UNROLL
    for (int k = 0; k < 8; ++k) vst1q_f32(out + 4 * k, sums[k]);
  }
  int16x8_t acc[4] = {vdupq_n_s16(0), vdupq_n_s16(0), vdupq_n_s16(0), vdupq_n_s16(0)};
  float32x4_t sums[8] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                         vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
};
/// 32 lanes of 32-bit sums (four per register, lane order), flushed into f32 sums.
struct neon_lane_sums {
  void flush(float scale) {
    KPC_UNROLL
    for (int k = 0; k < 8; ++k) {
      sums[k] = vmlaq_n_f32(sums[k], vcvtq_f32_s32(acc[k]), scale);
      acc[k] = vdupq_n_s32(0);
    }
  }
  void store(float* out) const {
    KPC_UNROLL
    for (int k = 0; k < 8; ++k) vst1q_f32(out + 4 * k, sums[k]);
  }
  int32x4_t acc[8] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0),
                      vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
  float32x4_t sums[8] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f),
                         vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
};

#if defined(__ARM_FEATURE_DOTPROD) && XSIMD_WITH_NEON64
/// With the dot-product extension: four groups per add, their bytes zipped into (a, b, c, d)
/// quads and multiplied by the four weights with sdot; 32-bit sums.
struct neon_dotprod_nibble_dot : neon_lane_sums {
  static constexpr int sources = 4;  ///< groups per add()
  struct quads {
    int8x16_t q[8];  // lanes 4k .. 4k+3
  };
  static quads load(const std::byte* const* groups) {
    uint8x16_t g[4];
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) g[k] = vld1q_u8(reinterpret_cast<const std::uint8_t*>(groups[k]));
    const uint8x16_t ab_low = vzip1q_u8(g[0], g[1]), ab_high = vzip2q_u8(g[0], g[1]);
    const uint8x16_t cd_low = vzip1q_u8(g[2], g[3]), cd_high = vzip2q_u8(g[2], g[3]);
    const uint8x16_t bytes[4] = {  // quads of bytes 0-3, 4-7, 8-11, 12-15
        vreinterpretq_u8_u16(vzip1q_u16(vreinterpretq_u16_u8(ab_low), vreinterpretq_u16_u8(cd_low))),
        vreinterpretq_u8_u16(vzip2q_u16(vreinterpretq_u16_u8(ab_low), vreinterpretq_u16_u8(cd_low))),
        vreinterpretq_u8_u16(vzip1q_u16(vreinterpretq_u16_u8(ab_high), vreinterpretq_u16_u8(cd_high))),
        vreinterpretq_u8_u16(vzip2q_u16(vreinterpretq_u16_u8(ab_high), vreinterpretq_u16_u8(cd_high)))};
    quads out;
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) {
      out.q[k] = vreinterpretq_s8_u8(vandq_u8(bytes[k], vdupq_n_u8(0x0F)));
      out.q[4 + k] = vreinterpretq_s8_u8(vshrq_n_u8(bytes[k], 4));
    }
    return out;
  }
  void add(const quads& q, const std::int8_t* weights) {
    std::int32_t four;
    std::memcpy(&four, weights, sizeof four);  // (AArch64 here is little-endian: weights[0] first)
    const int8x16_t w = vreinterpretq_s8_s32(vdupq_n_s32(four));
    KPC_UNROLL
    for (int k = 0; k < 8; ++k) acc[k] = vdotq_s32(acc[k], q.q[k], w);
  }
};
template <class A>
neon_dotprod_nibble_dot nibble_dot_of(requires_arch<xsimd::neon>);
#else
template <class A>
neon_nibble_dot nibble_dot_of(requires_arch<xsimd::neon>);
#endif

/// The same 16-bit codes, multiply-accumulated into 32 bits by int16 weights.
struct neon_nibble_dot16 : neon_lane_sums {
  using pair = neon_nibble_dot::pair;
  static pair load_pair(const std::byte* a, const std::byte* b) { return neon_nibble_dot::load_pair(a, b); }
  void add(const pair& p, const std::int16_t* weights) {
    const std::int16_t wa = weights[0], wb = weights[1];
    KPC_UNROLL
    for (int k = 0; k < 4; ++k) {
      acc[2 * k] = vmlal_n_s16(vmlal_n_s16(acc[2 * k], vget_low_s16(p.a[k]), wa), vget_low_s16(p.b[k]), wb);
      acc[2 * k + 1] = vmlal_n_s16(vmlal_n_s16(acc[2 * k + 1], vget_high_s16(p.a[k]), wa), vget_high_s16(p.b[k]), wb);
    }
  }
};
template <class A>
neon_nibble_dot16 nibble_dot16_of(requires_arch<xsimd::neon>);

#endif  // XSIMD_WITH_NEON

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_NEON_HPP
