// SPDX-License-Identifier: MIT
// xsimd kernels of the per-token formats (V4 = q4_1, V8 = q8_0, V3, and the q4_0 baseline). They
// mirror ref/per_token.hpp and write the same bytes: extremes are reduced lane-wise and then in
// lane order, which equals ggml's in-order loop except for the sign of a zero extreme, so a zero
// minimum or maximum takes the sign of the block's first zero, as ggml's loop does.
#ifndef KPC_SIMD_PER_TOKEN_HPP
#define KPC_SIMD_PER_TOKEN_HPP

#include <algorithm>
#include <array>
#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../format.hpp"
#include "../ref/per_token.hpp"
#include "arch.hpp"
#include "per_channel.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

/// Kernels for one block type: format::v_block<Bits> or format::q4_0_block.
template <class A, class Block>
struct block_kernels {
  using F = fbatch<A>;
  using I = ibatch<A>;
  static constexpr std::size_t W = F::size;
  static constexpr std::size_t per_block = format::group_values / W;
  static constexpr bool symmetric = std::is_same_v<Block, format::q4_0_block>;
  static constexpr int bits = Block::bits;
  static constexpr bool has_min = !symmetric && bits != 8;
  using codes_t = std::array<I, per_block>;

  /// ref::encode_v_block / ref::encode_q4_0_block.
  template <class T>
  static errc encode(const T* src, std::byte* block) {
    std::array<F, per_block> x;
    finite_probe<A> probe;
    for (std::size_t v = 0; v < per_block; ++v) {
      x[v] = load<A>(src + v * W);
      probe.add(x[v]);
    }
    const bool finite = probe.all_finite();
    if constexpr (has_min) {
      F mn(FLT_MAX), mx(-FLT_MAX);
      for (const F& xv : x) {
        mn = running_min<A>(xv, mn);
        mx = running_max<A>(xv, mx);
      }
      float min = FLT_MAX, max = -FLT_MAX;
      alignas(64) float lanes[W];
      mn.store_aligned(lanes);
      for (float lane : lanes)
        if (lane < min) min = lane;
      mx.store_aligned(lanes);
      for (float lane : lanes)
        if (lane > max) max = lane;
      if (min == 0.0f) min = first_zero(src);
      if (max == 0.0f) max = first_zero(src);
      const float d = detail::div_rounded(max - min, static_cast<float>(Block::max_code));
      const float inverse = d != 0.0f ? detail::div_rounded(1.0f, d) : 0.0f;
      const std::uint16_t d_h = fp32_to_fp16_bits(d);
      const std::uint16_t m_h = fp32_to_fp16_bits(min);
      detail::store_u16le(block + Block::offset_scale, d_h);
      detail::store_u16le(block + Block::offset_min, m_h);
      codes_t codes;
      for (std::size_t v = 0; v < per_block; ++v)
        codes[v] = code_of(mul_rounded<A>(x[v] - F(min), F(inverse)) + F(0.5f), Block::max_code);
      pack(codes, block + Block::offset_codes);
      return ref::block_status(finite, fp16_bits_finite(d_h) && fp16_bits_finite(m_h));
    } else {
      F largest(0.0f);
      for (const F& xv : x) largest = running_max<A>(xsimd::abs(xv), largest);
      float abs_max = 0.0f;
      alignas(64) float lanes[W];
      largest.store_aligned(lanes);
      for (float lane : lanes)
        if (lane > abs_max) abs_max = lane;
      const std::size_t codes_at = symmetric ? format::q4_0_block::offset_codes : Block::offset_codes;
      if constexpr (symmetric) {
        float signed_max = 0.0f;  // the first value of largest magnitude, as ggml picks it
        for (int j = 0; j < format::group_values && abs_max != 0.0f; ++j) {
          const float value = to_float(src[j]);
          if ((value < 0.0f ? -value : value) == abs_max) {
            signed_max = value;
            break;
          }
        }
        const float d = detail::div_rounded(signed_max, -8.0f);
        const float inverse = d != 0.0f ? detail::div_rounded(1.0f, d) : 0.0f;
        const std::uint16_t d_h = fp32_to_fp16_bits(d);
        detail::store_u16le(block + format::q4_0_block::offset_scale, d_h);
        codes_t codes;
        for (std::size_t v = 0; v < per_block; ++v)
          codes[v] = code_of(mul_rounded<A>(x[v], F(inverse)) + F(8.5f), 15u);
        pack(codes, block + codes_at);
        return ref::block_status(finite, fp16_bits_finite(d_h));
      } else {
        const float d = detail::div_rounded(abs_max, 127.0f);
        const float inverse = d != 0.0f ? detail::div_rounded(1.0f, d) : 0.0f;
        const std::uint16_t d_h = fp32_to_fp16_bits(d);
        detail::store_u16le(block + Block::offset_scale, d_h);
        for (std::size_t v = 0; v < per_block; ++v)
          store_low_bytes<A>(round_away_clamp(x[v] * F(inverse)), block + codes_at + v * W);
        return ref::block_status(finite, fp16_bits_finite(d_h));
      }
    }
  }

  /// ref::decode_v_block / ref::decode_q4_0_block.
  template <class T>
  static errc decode(const std::byte* block, T* dst) {
    float scale, offset;
    if (!load_meta(block, scale, offset)) return errc::corrupt_data;
    const codes_t codes = unpack(block);
    for (std::size_t v = 0; v < per_block; ++v) {
      // Products are exact (a code times an fp16 scale), as in ref::v_value.
      const I code = symmetric ? codes[v] - I(8) : codes[v];
      F value = xsimd::to_float(code) * F(scale);
      if constexpr (has_min) value += F(offset);
      store<A>(value, dst + v * W);
    }
    return errc::ok;
  }

  /// out[t] = q . x_t over `tokens` rows of `channels` values (ref::dot_v_block per block).
  static void scores(const float* q, const std::byte* rows, std::size_t tokens, std::size_t channels, float* out) {
    const std::size_t blocks = channels / format::group_values;
    float* const q_sums = scratch_floats(blocks);
    for (std::size_t b = 0; b < blocks; ++b) {
      F sum(0.0f);
      for (std::size_t v = 0; v < per_block; ++v) sum += F::load_unaligned(q + b * format::group_values + v * W);
      q_sums[b] = reduce_add<A>(sum);
    }
    for (std::size_t t = 0; t < tokens; ++t) {
      const std::byte* row = rows + t * blocks * Block::bytes;
      F dot(0.0f);
      float offsets = 0.0f;
      for (std::size_t b = 0; b < blocks; ++b) {
        const std::byte* block = row + b * Block::bytes;
        float scale, offset;
        load_meta(block, scale, offset);
        const codes_t codes = unpack(block);
        F block_dot(0.0f);
        for (std::size_t v = 0; v < per_block; ++v)
          block_dot = xsimd::fma(F::load_unaligned(q + b * format::group_values + v * W), xsimd::to_float(codes[v]), block_dot);
        dot = xsimd::fma(F(scale), block_dot, dot);
        offsets += offset * q_sums[b];
      }
      out[t] = reduce_add<A>(dot) + offsets;
    }
  }

  /// out[c] += sum_t w[t] x[t][c] (ref::axpy_v_block per block), 64 tokens at a time so the
  /// blocks' accumulators stay in registers and the rows in L1.
  static void accumulate(const float* w, const std::byte* rows, std::size_t tokens, std::size_t channels, float* out) {
    constexpr std::size_t chunk = 64;
    const std::size_t blocks = channels / format::group_values;
    for (std::size_t first = 0; first < tokens; first += chunk) {
      const std::size_t last = std::min(tokens, first + chunk);
      for (std::size_t b = 0; b < blocks; ++b) {
        std::array<F, per_block> sum;
        for (std::size_t v = 0; v < per_block; ++v) sum[v] = F::load_unaligned(out + b * format::group_values + v * W);
        float offsets = 0.0f;
        for (std::size_t t = first; t < last; ++t) {
          const std::byte* block = rows + (t * blocks + b) * Block::bytes;
          float scale, offset;
          load_meta(block, scale, offset);
          const codes_t codes = unpack(block);
          const F weighted_scale(w[t] * scale);
          for (std::size_t v = 0; v < per_block; ++v) sum[v] = xsimd::fma(weighted_scale, xsimd::to_float(codes[v]), sum[v]);
          offsets += w[t] * offset;
        }
        for (std::size_t v = 0; v < per_block; ++v)
          (sum[v] + F(offsets)).store_unaligned(out + b * format::group_values + v * W);
      }
    }
  }

 private:
  /// The block's first zero (ggml's loop keeps it among equal extremes: -0 and +0 compare equal).
  template <class T>
  static float first_zero(const T* src) {
    for (int j = 0; j < format::group_values; ++j)
      if (to_float(src[j]) == 0.0f) return to_float(src[j]);
    return 0.0f;
  }

  /// detail::trunc_clamp on W lanes, as int32.
  static I code_of(const F& v, unsigned max_code) {
    return bit_cast<std::int32_t>(trunc_clamp<A>(v, static_cast<float>(max_code)));
  }

  /// detail::round_away_clamp(v, 127) on W lanes: nearest, ties away from zero; NaN to 0.
  static I round_away_clamp(const F& v) {
    const F magnitude = xsimd::abs(v);
    const F whole = xsimd::to_float(xsimd::to_int(xsimd::min(magnitude, F(127.0f))));
    F rounded = whole + xsimd::select(magnitude - whole >= F(0.5f), F(1.0f), F(0.0f));
    rounded = xsimd::select(magnitude >= F(127.0f), F(127.0f), rounded);
    rounded = xsimd::select(v < F(0.0f), -rounded, rounded);
    return xsimd::to_int(xsimd::select(v == v, rounded, F(0.0f)));
  }

  /// The block's scale and its additive term per code: m (V4, V3), 0 (V8), -8 d (q4_0).
  static bool load_meta(const std::byte* block, float& scale, float& offset) {
    if constexpr (symmetric) {
      const std::uint16_t d = detail::load_u16le(block + format::q4_0_block::offset_scale);
      scale = fp16_bits_to_fp32(d);
      offset = -8.0f * scale;
      return fp16_bits_finite(d);
    } else {
      const ref::block_meta meta = ref::load_v_meta<bits>(block);
      scale = meta.scale;
      offset = meta.min;
      return meta.finite;
    }
  }

  static void pack(const codes_t& codes, std::byte* out) {
    if constexpr (bits == 4) {  // byte j = code j | code j + 16 << 4
      for (std::size_t i = 0; i < 16 / W; ++i) store_low_bytes<A>(codes[i] | (codes[16 / W + i] << 4), out + i * W);
    } else {
      alignas(64) std::int32_t lanes[format::group_values];
      for (std::size_t v = 0; v < per_block; ++v) codes[v].store_aligned(lanes + v * W);
      std::uint8_t bytes[format::group_values];
      for (int j = 0; j < format::group_values; ++j) bytes[j] = static_cast<std::uint8_t>(lanes[j]);
      format::pack_group<bits>(bytes, out);
    }
  }

  static codes_t unpack(const std::byte* block) {
    const std::byte* packed = block + Block::offset_codes;
    codes_t codes;
    if constexpr (bits == 8) {
      for (std::size_t v = 0; v < per_block; ++v) codes[v] = widen_i8<A>(packed + v * W);
    } else if constexpr (bits == 4) {
      for (std::size_t i = 0; i < 16 / W; ++i) {
        const I bytes = widen_u8<A>(packed + i * W);
        codes[i] = bytes & I(0xF);
        codes[16 / W + i] = bytes >> 4;
      }
    } else {
      alignas(64) std::int32_t lanes[format::group_values];
      for (int j = 0; j < format::group_values; ++j) lanes[j] = static_cast<std::int32_t>(format::code_at<bits>(packed, j));
      for (std::size_t v = 0; v < per_block; ++v) codes[v] = I::load_aligned(lanes + v * W);
    }
    return codes;
  }
};

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_PER_TOKEN_HPP
