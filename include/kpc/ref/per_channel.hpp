// SPDX-License-Identifier: MIT
// Scalar reference of the per-channel K format (docs/FORMAT.md, "K tile"): the spec in code.
// Every SIMD and CUDA path must write the same bytes and decode the same floats.
#ifndef KPC_REF_PER_CHANNEL_HPP
#define KPC_REF_PER_CHANNEL_HPP

#include <cstddef>
#include <cstdint>

#include "../config.hpp"
#include "../detail/arith.hpp"
#include "../detail/bits.hpp"
#include "../error.hpp"
#include "../format.hpp"
#include "../half.hpp"

KPC_BEGIN_NAMESPACE
namespace ref {

/// The three f32 super values of a tile, before they are stored as fp16.
struct k_supers {
  float scale_step;  ///< ss
  float zero_min;    ///< zmin
  float zero_step;   ///< sz
};

/// Smallest and largest value of one channel over a tile's tokens, and whether all were finite.
struct value_range {
  float min;
  float max;
  bool finite;
};

template <class T>
KPC_HOST_DEVICE inline value_range channel_range(const T* src, std::size_t row_stride, int tokens, std::size_t channel) {
  value_range range{to_float(src[channel]), to_float(src[channel]), true};
  for (int t = 0; t < tokens; ++t) {
    const float x = to_float(src[static_cast<std::size_t>(t) * row_stride + channel]);
    range.finite = range.finite && detail::is_finite(x);
    if (x < range.min) range.min = x;
    if (x > range.max) range.max = x;
  }
  return range;
}

/// Step 1: scale_c = (mx - mn) / (2^Bits - 1), 1.0 if that is 0. (zero_c is mn.)
template <int Bits>
KPC_HOST_DEVICE inline float k_channel_scale(float min, float max) {
  const float scale = detail::div_rounded(max - min, static_cast<float>((1u << Bits) - 1u));
  return scale == 0.0f ? 1.0f : scale;
}

/// Step 2: ss = max scale / 255, zmin = min zero, sz = (max zero - zmin) / 255; 1.0 replaces 0.
KPC_HOST_DEVICE inline k_supers k_make_supers(float max_scale, float min_zero, float max_zero) {
  const float scale_step = detail::div_rounded(max_scale, 255.0f);
  const float zero_step = detail::div_rounded(max_zero - min_zero, 255.0f);
  return {scale_step == 0.0f ? 1.0f : scale_step, min_zero, zero_step == 0.0f ? 1.0f : zero_step};
}

/// Step 3: the u8 codes of one channel's scale and zero, against the unrounded f32 supers.
KPC_HOST_DEVICE inline unsigned k_scale_code(float scale, const k_supers& supers) {
  return detail::trunc_clamp(detail::div_rounded(scale, supers.scale_step) + 0.5f, 255u);
}
KPC_HOST_DEVICE inline unsigned k_zero_code(float zero, const k_supers& supers) {
  return detail::trunc_clamp(detail::div_rounded(zero - supers.zero_min, supers.zero_step) + 0.5f, 255u);
}

/// Step 4: decoded metadata from what is stored. Both products are exact in f32 (8-bit code times
/// an 11-bit fp16 significand), so a fused multiply-add gives the same bits.
KPC_HOST_DEVICE inline float k_decoded_scale(unsigned scale_code, float scale_step_h) {
  const float scale = static_cast<float>(scale_code) * scale_step_h;
  return scale == 0.0f ? 1.0f : scale;
}
KPC_HOST_DEVICE inline float k_decoded_zero(unsigned zero_code, float zero_min_h, float zero_step_h) {
  return zero_min_h + static_cast<float>(zero_code) * zero_step_h;
}

/// Step 5: code = clamp(trunc((x - zero') / scale' + 0.5), 0, 2^Bits - 1), a true division.
template <int Bits>
KPC_HOST_DEVICE inline unsigned k_code(float x, float zero, float scale) {
  return detail::trunc_clamp(detail::div_rounded(x - zero, scale) + 0.5f, (1u << Bits) - 1u);
}

/// Step 6: x = code * scale' + zero'. The product is exact (<= 4 + 8 + 11 significant bits), so
/// the result is the same with or without a fused multiply-add.
KPC_HOST_DEVICE inline float k_value(unsigned code, float scale, float zero) {
  return static_cast<float>(code) * scale + zero;
}

/// Decoded scale' and zero' of every channel come from these stored fields.
struct k_tile_meta {
  float scale_step;  ///< ss as stored (fp16 -> f32)
  float zero_min;    ///< zmin as stored
  float zero_step;   ///< sz as stored
  bool finite;       ///< false for bytes no encoder writes
};

KPC_HOST_DEVICE inline k_tile_meta k_load_meta(const std::byte* tile) {
  const std::uint16_t ss = detail::load_u16le(tile + 0);
  const std::uint16_t zmin = detail::load_u16le(tile + 2);
  const std::uint16_t sz = detail::load_u16le(tile + 4);
  return {fp16_bits_to_fp32(ss), fp16_bits_to_fp32(zmin), fp16_bits_to_fp32(sz),
          fp16_bits_finite(ss) && fp16_bits_finite(zmin) && fp16_bits_finite(sz)};
}

/// Decoded scale' and zero' of one channel.
struct k_channel_meta {
  float scale;
  float zero;
};

template <int Bits, int G>
KPC_HOST_DEVICE inline k_channel_meta k_load_channel(const std::byte* tile, const k_tile_meta& meta, std::size_t channels,
                                                     std::size_t channel) {
  using layout = format::k_tile<Bits, G>;
  const unsigned scale_code = detail::load_u8(tile + layout::offset_scale_codes + channel);
  const unsigned zero_code = detail::load_u8(tile + layout::offset_zero_codes(channels) + channel);
  return {k_decoded_scale(scale_code, meta.scale_step), k_decoded_zero(zero_code, meta.zero_min, meta.zero_step)};
}

/// Step 5 for one channel: its codes against scale' and zero', packed as G/32 groups at
/// `channel_codes` (codes of absent tokens are 0).
template <int Bits, int G, class T>
KPC_HOST_DEVICE inline void encode_k_channel_codes(const T* src, std::size_t row_stride, int tokens, std::size_t channel,
                                                   float scale, float zero, std::byte* channel_codes) {
  for (int g = 0; g < G / format::group_values; ++g) {
    std::uint8_t codes[format::group_values];
    for (int j = 0; j < format::group_values; ++j) {
      const int t = g * format::group_values + j;
      codes[j] = t < tokens ? static_cast<std::uint8_t>(
                                  k_code<Bits>(to_float(src[static_cast<std::size_t>(t) * row_stride + channel]), zero, scale))
                            : std::uint8_t{0};
    }
    format::pack_group<Bits>(codes, channel_codes + g * format::group_bytes<Bits>);
  }
}

/// Step 6 for one channel: its first `tokens` values into column `channel` of dst.
template <int Bits, int G, class T>
KPC_HOST_DEVICE inline void decode_k_channel(const std::byte* tile, const k_tile_meta& meta, int tokens, std::size_t channels,
                                             std::size_t channel, T* dst, std::size_t row_stride) {
  using layout = format::k_tile<Bits, G>;
  const k_channel_meta m = k_load_channel<Bits, G>(tile, meta, channels, channel);
  const std::byte* channel_codes = tile + layout::offset_channel_codes(channels, channel);
  for (int t = 0; t < tokens; ++t) {
    const unsigned code = format::code_at<Bits>(channel_codes + (t / format::group_values) * format::group_bytes<Bits>,
                                                t % format::group_values);
    dst[static_cast<std::size_t>(t) * row_stride + channel] = from_float<T>(k_value(code, m.scale, m.zero));
  }
}

/// Encodes one tile: `tokens` (1..G) rows of `channels` values, row t at src + t * row_stride,
/// into format::k_tile<Bits, G>::bytes(channels) bytes at `tile`. Always writes the whole tile
/// (codes of absent tokens are 0) and never reads outside the rows given. Returns errc::ok,
/// errc::non_finite (NaN/Inf input) or errc::out_of_range (an fp16 super overflowed); the bytes
/// are defined either way, but only ok tiles decode to meaningful values. Ties in min/max keep the
/// first value in token order, then channel order (so -0 vs +0 is decided by position).
/// errc::invalid_shape, touching nothing, unless 1 <= tokens <= G.
template <int Bits, int G, class T>
KPC_HOST_DEVICE inline errc encode_k_tile(const T* src, std::size_t row_stride, int tokens, std::size_t channels,
                                          std::byte* tile) {
  using layout = format::k_tile<Bits, G>;
  if (tokens < 1 || tokens > G) return errc::invalid_shape;
  // Steps 1-2: the tile's super values from every channel's range.
  bool finite = true;
  float max_scale = 0.0f, min_zero = 0.0f, max_zero = 0.0f;
  for (std::size_t c = 0; c < channels; ++c) {
    const value_range range = channel_range(src, row_stride, tokens, c);
    const float scale = k_channel_scale<Bits>(range.min, range.max);
    finite = finite && range.finite;
    if (c == 0 || scale > max_scale) max_scale = scale;
    if (c == 0 || range.min < min_zero) min_zero = range.min;
    if (c == 0 || range.min > max_zero) max_zero = range.min;
  }
  const k_supers supers = k_make_supers(max_scale, min_zero, max_zero);
  const std::uint16_t scale_step_h = fp32_to_fp16_bits(supers.scale_step);
  const std::uint16_t zero_min_h = fp32_to_fp16_bits(supers.zero_min);
  const std::uint16_t zero_step_h = fp32_to_fp16_bits(supers.zero_step);
  detail::store_u16le(tile + layout::offset_scale_step, scale_step_h);
  detail::store_u16le(tile + layout::offset_zero_min, zero_min_h);
  detail::store_u16le(tile + layout::offset_zero_step, zero_step_h);
  const k_tile_meta meta = k_load_meta(tile);

  // Steps 3-5, channel by channel (the range is recomputed rather than kept: no scratch memory).
  for (std::size_t c = 0; c < channels; ++c) {
    const value_range range = channel_range(src, row_stride, tokens, c);
    const unsigned scale_code = k_scale_code(k_channel_scale<Bits>(range.min, range.max), supers);
    const unsigned zero_code = k_zero_code(range.min, supers);
    detail::store_u8(tile + layout::offset_scale_codes + c, scale_code);
    detail::store_u8(tile + layout::offset_zero_codes(channels) + c, zero_code);
    encode_k_channel_codes<Bits, G>(src, row_stride, tokens, c, k_decoded_scale(scale_code, meta.scale_step),
                                    k_decoded_zero(zero_code, meta.zero_min, meta.zero_step),
                                    tile + layout::offset_channel_codes(channels, c));
  }
  if (!finite) return errc::non_finite;
  if (!meta.finite) return errc::out_of_range;
  return errc::ok;
}

/// Decodes the first `tokens` (1..G) rows of a tile into dst (row t at dst + t * row_stride).
/// Returns errc::corrupt_data, writing nothing, when the tile's fp16 supers are not finite
/// (errc::invalid_shape unless 1 <= tokens <= G).
template <int Bits, int G, class T>
KPC_HOST_DEVICE inline errc decode_k_tile(const std::byte* tile, int tokens, std::size_t channels, T* dst,
                                          std::size_t row_stride) {
  if (tokens < 1 || tokens > G) return errc::invalid_shape;
  const k_tile_meta meta = k_load_meta(tile);
  if (!meta.finite) return errc::corrupt_data;
  for (std::size_t c = 0; c < channels; ++c) decode_k_channel<Bits, G>(tile, meta, tokens, channels, c, dst, row_stride);
  return errc::ok;
}

/// Fused scores of one tile: out[t] = sum_c q_c * x_{t,c} for its first `tokens` rows, computed as
/// sum_c (q_c * scale'_c) * code_{t,c} + sum_c q_c * zero'_c: the scales fold into q once per tile.
/// Trusts the bytes (no finiteness check: this is the attention hot path); errc::invalid_shape,
/// writing nothing, unless 1 <= tokens <= G.
template <int Bits, int G>
KPC_HOST_DEVICE inline errc scores_k_tile(const float* q, const std::byte* tile, int tokens, std::size_t channels,
                                          float* out) {
  using layout = format::k_tile<Bits, G>;
  if (tokens < 1 || tokens > G) return errc::invalid_shape;
  const k_tile_meta meta = k_load_meta(tile);
  float dot[G] = {};
  float bias = 0.0f;
  for (std::size_t c = 0; c < channels; ++c) {
    const k_channel_meta channel = k_load_channel<Bits, G>(tile, meta, channels, c);
    const float q_scaled = q[c] * channel.scale;
    bias += q[c] * channel.zero;
    const std::byte* channel_codes = tile + layout::offset_channel_codes(channels, c);
    for (int t = 0; t < tokens; ++t) {
      const unsigned code = format::code_at<Bits>(channel_codes + (t / format::group_values) * format::group_bytes<Bits>,
                                                  t % format::group_values);
      dot[t] += q_scaled * static_cast<float>(code);
    }
  }
  for (int t = 0; t < tokens; ++t) out[t] = dot[t] + bias;
  return errc::ok;
}

}  // namespace ref
KPC_END_NAMESPACE

#endif  // KPC_REF_PER_CHANNEL_HPP
