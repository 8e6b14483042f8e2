// SPDX-License-Identifier: MIT
// Every primitive's portable fallback (requires_arch<portable_arch>), with what the primitive does.
#ifndef KPC_SIMD_ARCH_PORTABLE_HPP
#define KPC_SIMD_ARCH_PORTABLE_HPP

#include "../../format.hpp"
#include "common.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

// ../arch.hpp includes this file after the instruction sets' files: load_f16 and store_f16 call
// widen_u16 and narrow_u16, and a call in a template sees only the overloads declared before it
// (argument-dependent lookup does not reach kpc::simd). Include ../arch.hpp, not this file.

// ---- x * y rounded to f32, never fused into a following addition -------------------------------
// (The SIMD twin of detail::mul_rounded: GCC contracts intrinsics into FMA too.)

template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y, requires_arch<portable_arch>) {
  alignas(64) float lanes[fbatch<A>::size];
  (x * y).store_aligned(lanes);
  for (float& lane : lanes) lane = detail::mul_rounded(lane, 1.0f);  // opaque per lane
  return fbatch<A>::load_aligned(lanes);
}

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

// ---- a comparison's lanes as bits (lane i -> bit i) ----------------------------------------------------

template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b, requires_arch<portable_arch>) {
  alignas(64) float lanes[fbatch<A>::size];
  xsimd::select(b, fbatch<A>(1.0f), fbatch<A>(0.0f)).store_aligned(lanes);
  std::uint32_t mask = 0;
  for (std::size_t i = 0; i < fbatch<A>::size; ++i) mask |= (lanes[i] != 0.0f ? 1u : 0u) << i;
  return mask;
}

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

// ---- the low byte of each int32 lane stored as W bytes --------------------------------------------

template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[ibatch<A>::size];
  x.store_aligned(lanes);
  for (std::size_t i = 0; i < ibatch<A>::size; ++i) p[i] = static_cast<std::byte>(lanes[i] & 0xFF);
}

// ---- 3-bit groups (code j at bits 3j..3j+2 of 12 bytes) <-> 32 codes as int32 lanes -----------------
// (code3_field: common.hpp)

template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[32];
  KPC_UNROLL
  for (int j = 0; j < 32; ++j) lanes[j] = static_cast<std::int32_t>((code3_field(group, j / 8) >> (3 * (j % 8))) & 7u);
  for (std::size_t v = 0; v < 32 / ibatch<A>::size; ++v) codes[v] = ibatch<A>::load_aligned(lanes + v * ibatch<A>::size);
}

/// A 2-bit group's 32 codes (code j in byte j % 8 at bit 2 * (j / 8)) as int32 lanes; per_channel.hpp
/// unpacks with shifts where a vector holds at most 8 lanes, and calls this for wider ones.
template <class A>
inline void unpack2(const std::byte* group, ibatch<A>* codes, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[32];
  KPC_UNROLL
  for (int j = 0; j < 32; ++j) lanes[j] = static_cast<std::int32_t>(format::code_at<2>(group, j));
  for (std::size_t v = 0; v < 32 / ibatch<A>::size; ++v) codes[v] = ibatch<A>::load_aligned(lanes + v * ibatch<A>::size);
}

/// 32 codes (< 8) into the 12-byte group.
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group, requires_arch<portable_arch>) {
  alignas(64) std::int32_t lanes[32];
  for (std::size_t v = 0; v < 32 / ibatch<A>::size; ++v) codes[v].store_aligned(lanes + v * ibatch<A>::size);
  std::uint32_t fields[4] = {};
  KPC_UNROLL
  for (int j = 0; j < 32; ++j) fields[j / 8] |= static_cast<std::uint32_t>(lanes[j]) << (3 * (j % 8));
  detail::store_u32le(group, fields[0] | fields[1] << 24);
  detail::store_u32le(group + 4, fields[1] >> 8 | fields[2] << 16);
  detail::store_u32le(group + 8, fields[2] >> 16 | fields[3] << 8);
}

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


// ---- integer x 4-bit dot products over 32 lanes (the integer attention path, simd/integer_dot.hpp) ---
// A nibble_dot sums, for 32 lanes j, s8 weight x 4-bit code of packed groups (q4 order: lane j is
// byte j % 16, low nibble for j < 16), `sources` groups (2 or 4) per add(): K channels (lanes =
// tokens). Integer sums are exact (at most 16 groups between flushes keep 16-bit lanes within
// 8 x 2 x 15 x 127); flush(scale) adds scale x sum to 32 f32 sums.

/// 32 lanes of integer sums and the f32 sums they flush into (scaled) and store from.
struct portable_lane_sums {
  void flush(float scale) {
    KPC_UNROLL
    for (int j = 0; j < 32; ++j) {
      sums[j] += scale * static_cast<float>(acc[j]);
      acc[j] = 0;
    }
  }
  void store(float* out) const {
    KPC_UNROLL
    for (int j = 0; j < 32; ++j) out[j] = sums[j];
  }
  std::int32_t acc[32] = {};
  float sums[32] = {};
};

struct portable_nibble_dot : portable_lane_sums {
  static constexpr int sources = 2;  ///< groups per add()
  struct pair {
    std::uint8_t a[32], b[32];
  };
  static pair load_pair(const std::byte* a, const std::byte* b) {
    pair p;
    KPC_UNROLL
    for (int j = 0; j < 16; ++j) {
      p.a[j] = static_cast<std::uint8_t>(static_cast<unsigned>(a[j]) & 0xFu);
      p.a[16 + j] = static_cast<std::uint8_t>(static_cast<unsigned>(a[j]) >> 4);
      p.b[j] = static_cast<std::uint8_t>(static_cast<unsigned>(b[j]) & 0xFu);
      p.b[16 + j] = static_cast<std::uint8_t>(static_cast<unsigned>(b[j]) >> 4);
    }
    return p;
  }
  static pair load(const std::byte* const* groups) { return load_pair(groups[0], groups[1]); }
  /// weights[0] weighs group a's codes, weights[1] group b's.
  void add(const pair& p, const std::int8_t* weights) {
    const int wa = weights[0], wb = weights[1];
    KPC_UNROLL
    for (int j = 0; j < 32; ++j) acc[j] += wa * p.a[j] + wb * p.b[j];
  }
};
template <class A>
portable_nibble_dot nibble_dot_of(requires_arch<portable_arch>);

// A nibble_dot16 is the same with int16 weights (V accumulate) and 32-bit sums (up to 64 adds of
// 2 x 2^15 x 15 fit).
struct portable_nibble_dot16 : portable_lane_sums {
  using pair = portable_nibble_dot::pair;
  static pair load_pair(const std::byte* a, const std::byte* b) { return portable_nibble_dot::load_pair(a, b); }
  void add(const pair& p, const std::int16_t* weights) {
    const std::int32_t wa = weights[0], wb = weights[1];
    KPC_UNROLL
    for (int j = 0; j < 32; ++j) acc[j] += wa * p.a[j] + wb * p.b[j];
  }
};
template <class A>
portable_nibble_dot16 nibble_dot16_of(requires_arch<portable_arch>);

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_PORTABLE_HPP
