// SPDX-License-Identifier: MIT
// xsimd kernels of the per-channel K format. They mirror ref/per_channel.hpp step for step and
// write the same bytes: lanes are channels (the tile's rows are channel-contiguous), tokens run in
// order (so min/max ties keep the first value, as in the reference), and the few channels past
// the last full vector go through the reference's own per-channel functions.
#ifndef KPC_SIMD_PER_CHANNEL_HPP
#define KPC_SIMD_PER_CHANNEL_HPP

#include <array>
#include <cfloat>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "../format.hpp"
#include "../ref/per_channel.hpp"
#include "arch.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

/// Calls f(std::integral_constant<int, J>) for J = 0..N-1, so per-token shifts are constants.
template <class F, int... J>
inline void unroll(F&& f, std::integer_sequence<int, J...>) {
  (f(std::integral_constant<int, J>{}), ...);
}
template <int N, class F>
inline void unroll(F&& f) {
  unroll(f, std::make_integer_sequence<int, N>{});
}

/// Calls f(std::integral_constant<int, H>, h) for the query heads of a group two at a time (H = 2,
/// the kernels sharing each unpacked unit between them) and the last one alone (H = 1).
template <class F>
inline void for_head_pairs(std::size_t group, F&& f) {
  std::size_t h = 0;
  for (; h + 2 <= group; h += 2) f(std::integral_constant<int, 2>{}, h);
  if (h < group) f(std::integral_constant<int, 1>{}, h);
}

/// Per-thread scratch of `count` T (grows, never shrinks), one buffer per T. Raw new/delete, no
/// STL template, so nothing here can be shared with a differently compiled translation unit.
template <class T>
inline T* scratch_array(std::size_t count) {
  struct buffer {
    T* data = nullptr;
    std::size_t size = 0;
    ~buffer() { delete[] data; }
  };
  thread_local buffer scratch;
  if (scratch.size < count) {
    delete[] scratch.data;
    scratch.data = new T[count];
    scratch.size = count;
  }
  return scratch.data;
}
/// Scratch for channel statistics.
inline float* scratch_floats(std::size_t count) { return scratch_array<float>(count); }

/// trunc(v) clamped to [0, max_code], NaN to 0 (detail::trunc_clamp, W lanes).
template <class A>
inline ubatch<A> trunc_clamp(const fbatch<A>& v, float max_code) {
  const fbatch<A> positive = xsimd::select(v > fbatch<A>(0.0f), v, fbatch<A>(0.0f));
  return bit_cast<std::uint32_t>(xsimd::to_int(xsimd::min(positive, fbatch<A>(max_code))));
}

/// Channel c's scale' and zero' from the stored u8 codes (ref::k_load_channel, W channels).
template <class A, int Bits, int G>
inline void load_channel_meta(const std::byte* tile, const ref::k_tile_meta& meta, std::size_t channels, std::size_t c,
                              fbatch<A>& scale, fbatch<A>& zero) {
  using layout = format::k_tile<Bits, G>;
  const fbatch<A> scale_code = xsimd::to_float(widen_u8<A>(tile + layout::offset_scale_codes + c));
  const fbatch<A> zero_code = xsimd::to_float(widen_u8<A>(tile + layout::offset_zero_codes(channels) + c));
  const fbatch<A> product = scale_code * fbatch<A>(meta.scale_step);  // exact: 8 x 11 bits
  scale = xsimd::select(product == fbatch<A>(0.0f), fbatch<A>(1.0f), product);
  zero = xsimd::fma(zero_code, fbatch<A>(meta.zero_step), fbatch<A>(meta.zero_min));  // exact product: fusing is moot
}

template <class A, int Bits, int G>
struct k_tile {
  using layout = format::k_tile<Bits, G>;
  using F = fbatch<A>;
  using U = ubatch<A>;
  static constexpr std::size_t W = F::size;
  static constexpr int groups = G / format::group_values;
  static constexpr float max_code = static_cast<float>((1u << Bits) - 1u);

  /// ref::encode_k_tile.
  template <class T>
  static errc encode(const T* src, std::size_t stride, int tokens, std::size_t channels, std::byte* tile) {
    if (tokens < 1 || tokens > G) return errc::invalid_shape;
    float* const mins = scratch_floats(2 * channels);
    float* const scales = mins + channels;
    const std::size_t vector_channels = channels / W * W;

    // Step 1: each channel's range over the tile's tokens, in token order (so ties keep the first
    // value). Blocks of `block` vectors keep their extremes in registers over all rows.
    finite_probe<A> probe;
    auto ranges = [&](std::size_t first, auto block_constant) {
      constexpr std::size_t block = decltype(block_constant)::value;
      F mn[block], mx[block];
      KPC_UNROLL
      for (std::size_t b = 0; b < block; ++b) {
        mn[b] = mx[b] = load<A>(src + first + b * W);
        probe.add(mn[b]);
      }
      for (int t = 1; t < tokens; ++t) {
        const T* row = src + static_cast<std::size_t>(t) * stride + first;
        KPC_UNROLL
        for (std::size_t b = 0; b < block; ++b) {
          const F x = load<A>(row + b * W);
          probe.add(x);
          mn[b] = running_min<A>(x, mn[b]);
          mx[b] = running_max<A>(x, mx[b]);
        }
      }
      KPC_UNROLL
      for (std::size_t b = 0; b < block; ++b) {
        const F scale = div_rounded<A>(mx[b] - mn[b], F(max_code));
        mn[b].store_unaligned(mins + first + b * W);
        xsimd::select(scale == F(0.0f), F(1.0f), scale).store_unaligned(scales + first + b * W);
      }
    };
    std::size_t c = 0;
    for (; c + 4 * W <= vector_channels; c += 4 * W) ranges(c, std::integral_constant<std::size_t, 4>{});
    for (; c < vector_channels; c += W) ranges(c, std::integral_constant<std::size_t, 1>{});
    bool finite = probe.all_finite();
    for (std::size_t c = vector_channels; c < channels; ++c) {
      const ref::value_range range = ref::channel_range(src, stride, tokens, c);
      finite = finite && range.finite;
      mins[c] = range.min;
      scales[c] = ref::k_channel_scale<Bits>(range.min, range.max);
    }

    // Step 2: supers over the channels, in channel order (so ties keep the first channel).
    float max_scale = scales[0], min_zero = mins[0], max_zero = mins[0];
    for (std::size_t c = 1; c < channels; ++c) {
      if (scales[c] > max_scale) max_scale = scales[c];
      if (mins[c] < min_zero) min_zero = mins[c];
      if (mins[c] > max_zero) max_zero = mins[c];
    }
    const ref::k_supers supers = ref::k_make_supers(max_scale, min_zero, max_zero);
    detail::store_u16le(tile + layout::offset_scale_step, fp32_to_fp16_bits(supers.scale_step));
    detail::store_u16le(tile + layout::offset_zero_min, fp32_to_fp16_bits(supers.zero_min));
    detail::store_u16le(tile + layout::offset_zero_step, fp32_to_fp16_bits(supers.zero_step));
    const ref::k_tile_meta meta = ref::k_load_meta(tile);

    // Steps 3-4: u8 scale and zero codes, and the decoded scale' and zero' (kept in the scratch).
    for (std::size_t c = 0; c < vector_channels; c += W) {
      const U scale_code =
          trunc_clamp<A>(div_rounded<A>(F::load_unaligned(scales + c), F(supers.scale_step)) + F(0.5f), 255.0f);
      const U zero_code =
          trunc_clamp<A>(div_rounded<A>(F::load_unaligned(mins + c) - F(supers.zero_min), F(supers.zero_step)) + F(0.5f), 255.0f);
      store_low_bytes<A>(bit_cast<std::int32_t>(scale_code), tile + layout::offset_scale_codes + c);
      store_low_bytes<A>(bit_cast<std::int32_t>(zero_code), tile + layout::offset_zero_codes(channels) + c);
      F scale, zero;
      load_channel_meta<A, Bits, G>(tile, meta, channels, c, scale, zero);
      scale.store_unaligned(scales + c);
      zero.store_unaligned(mins + c);
    }
    for (std::size_t c = vector_channels; c < channels; ++c) {
      const unsigned scale_code = ref::k_scale_code(scales[c], supers);
      const unsigned zero_code = ref::k_zero_code(mins[c], supers);
      detail::store_u8(tile + layout::offset_scale_codes + c, scale_code);
      detail::store_u8(tile + layout::offset_zero_codes(channels) + c, zero_code);
      scales[c] = ref::k_decoded_scale(scale_code, meta.scale_step);
      mins[c] = ref::k_decoded_zero(zero_code, meta.zero_min, meta.zero_step);
    }

    // Step 5: codes, packed channel-major. Lane l builds channel c + l's group as Bits words.
    for (std::size_t c = 0; c < vector_channels; c += W) {
      const F scale = F::load_unaligned(scales + c), zero = F::load_unaligned(mins + c);
      for (int g = 0; g < groups; ++g) {
        std::array<U, Bits> words;
        words.fill(U(0u));
        const int present = tokens - g * format::group_values;
        auto place = [&](auto j_constant) {
          constexpr int j = decltype(j_constant)::value;
          constexpr int bit = format::code_bit<Bits>(j);
          if (j >= present) return;  // absent tokens keep code 0
          const F x = load<A>(src + static_cast<std::size_t>(g * format::group_values + j) * stride + c);
          const U code = trunc_clamp<A>(div_rounded<A>(x - zero, scale) + F(0.5f), max_code);
          words[bit / 32] |= code << (bit % 32);
          if constexpr (bit % 32 + Bits > 32) words[bit / 32 + 1] |= code >> (32 - bit % 32);
        };
        if (present > 0) unroll<format::group_values>(place);
        simd::store_groups<Bits, A>(words.data(), group_of(tile, channels, c, g), layout::channel_code_bytes);
      }
    }
    for (std::size_t c = vector_channels; c < channels; ++c)
      ref::encode_k_channel_codes<Bits, G>(src, stride, tokens, c, scales[c], mins[c],
                                           tile + layout::offset_channel_codes(channels, c));

    if (!finite) return errc::non_finite;
    if (!meta.finite) return errc::out_of_range;
    return errc::ok;
  }

  /// ref::decode_k_tile.
  template <class T>
  static errc decode(const std::byte* tile, int tokens, std::size_t channels, T* dst, std::size_t stride) {
    if (tokens < 1 || tokens > G) return errc::invalid_shape;
    const ref::k_tile_meta meta = ref::k_load_meta(tile);
    if (!meta.finite) return errc::corrupt_data;
    const std::size_t vector_channels = channels / W * W;
    for (std::size_t c = 0; c < vector_channels; c += W) {
      F scale, zero;
      load_channel_meta<A, Bits, G>(tile, meta, channels, c, scale, zero);
      for (int g = 0; g < groups; ++g) {
        const int present = tokens - g * format::group_values;
        if (present <= 0) break;
        std::array<U, Bits> words;
        simd::load_groups<Bits, A>(group_of(tile, channels, c, g), layout::channel_code_bytes, words.data());
        auto emit = [&](auto j_constant) {
          constexpr int j = decltype(j_constant)::value;
          if (j >= present) return;
          const F value = xsimd::fma(xsimd::to_float(bit_cast<std::int32_t>(code_of<j>(words))), scale, zero);
          store<A>(value, dst + static_cast<std::size_t>(g * format::group_values + j) * stride + c);
        };
        unroll<format::group_values>(emit);
      }
    }
    for (std::size_t c = vector_channels; c < channels; ++c)
      ref::decode_k_channel<Bits, G>(tile, meta, tokens, channels, c, dst, stride);
    return errc::ok;
  }

  /// ref::scores_k_tile, with tokens as lanes: each channel's 32 codes unpack to 32/W vectors
  /// that accumulate q'_c * code per token, so no horizontal sums are needed.
  static errc scores(const float* q, const std::byte* tile, int tokens, std::size_t channels, float* out) {
    if (tokens < 1 || tokens > G) return errc::invalid_shape;
    scores_heads<1>(q, tile, tokens, channels, out, 0);
    return errc::ok;
  }

  /// scores for a group of query heads (q [group][channels], head h's out at out + h * out_stride):
  /// two heads at a time share each channel's unpacked codes.
  static void scores_group(const float* q, std::size_t group, const std::byte* tile, int tokens,
                           std::size_t channels, float* out, std::size_t out_stride) {
    for_head_pairs(group, [&](auto heads, std::size_t h) {
      scores_heads<decltype(heads)::value>(q + h * channels, tile, tokens, channels, out + h * out_stride, out_stride);
    });
  }

 private:
  /// The scores of H query heads. With one head, even and odd channels accumulate separately
  /// (two independent FMA chains); with two, each head is a chain of its own.
  template <int H>
  static void scores_heads(const float* q, const std::byte* tile, int tokens, std::size_t channels, float* out,
                           std::size_t out_stride) {
    const ref::k_tile_meta meta = ref::k_load_meta(tile);
    float* const q_scaled = scratch_floats(H * channels);  // head h's q_c * scale'_c at h * channels
    float bias[H];
    const std::size_t vector_channels = channels / W * W;
    KPC_UNROLL
    for (int h = 0; h < H; ++h) {
      const float* qh = q + h * channels;
      F bias_lanes(0.0f);
      for (std::size_t c = 0; c < vector_channels; c += W) {
        F scale, zero;
        load_channel_meta<A, Bits, G>(tile, meta, channels, c, scale, zero);
        const F qc = F::load_unaligned(qh + c);
        (qc * scale).store_unaligned(q_scaled + h * channels + c);
        bias_lanes = xsimd::fma(qc, zero, bias_lanes);
      }
      bias[h] = reduce_add<A>(bias_lanes);
      for (std::size_t c = vector_channels; c < channels; ++c) {
        const ref::k_channel_meta m = ref::k_load_channel<Bits, G>(tile, meta, channels, c);
        q_scaled[h * channels + c] = qh[c] * m.scale;
        bias[h] += qh[c] * m.zero;
      }
    }
    constexpr int per_group = format::group_values / static_cast<int>(W);
    constexpr int chains = H == 1 ? 2 : 1;
    for (int g = 0; g < groups && g * format::group_values < tokens; ++g) {
      std::array<std::array<std::array<F, per_group>, H>, chains> dot;
      for (auto& chain : dot)
        for (auto& head : chain) head.fill(F(0.0f));
      auto add_channel = [&](std::size_t c, int chain) {
        const std::array<ibatch<A>, per_group> codes =
            unpack_group(tile + layout::offset_channel_codes(channels, c) + g * format::group_bytes<Bits>);
        std::array<F, per_group> values;
        KPC_UNROLL
        for (int v = 0; v < per_group; ++v) values[v] = xsimd::to_float(codes[v]);
        KPC_UNROLL
        for (int h = 0; h < H; ++h) {
          const F qc(q_scaled[h * channels + c]);
          KPC_UNROLL
          for (int v = 0; v < per_group; ++v) dot[chain][h][v] = xsimd::fma(qc, values[v], dot[chain][h][v]);
        }
      };
      std::size_t c = 0;
      for (; c + chains <= channels; c += chains)
        KPC_UNROLL
        for (int chain = 0; chain < chains; ++chain) add_channel(c + chain, chain);
      if (c < channels) add_channel(c, 0);
      const int present = tokens - g * format::group_values;
      KPC_UNROLL
      for (int h = 0; h < H; ++h) {
        float* const group_out = out + h * out_stride + g * format::group_values;
        std::array<F, per_group> sum = dot[0][h];
        KPC_UNROLL
        for (int chain = 1; chain < chains; ++chain)
          KPC_UNROLL
          for (int v = 0; v < per_group; ++v) sum[v] = sum[v] + dot[chain][h][v];
        if (present >= format::group_values) {
          KPC_UNROLL
          for (int v = 0; v < per_group; ++v) (sum[v] + F(bias[h])).store_unaligned(group_out + v * W);
        } else {
          alignas(64) float sums[format::group_values];
          KPC_UNROLL
          for (int v = 0; v < per_group; ++v) (sum[v] + F(bias[h])).store_aligned(sums + v * W);
          for (int j = 0; j < present; ++j) group_out[j] = sums[j];
        }
      }
    }
  }

  /// Code j of a group held as Bits little-endian words per lane (format::code_at, W lanes).
  template <int j>
  static U code_of(const std::array<U, Bits>& words) {
    constexpr int bit = format::code_bit<Bits>(j);
    U code = words[bit / 32] >> (bit % 32);
    if constexpr (bit % 32 + Bits > 32) code |= words[bit / 32 + 1] << (32 - bit % 32);
    return code & U((1u << Bits) - 1u);
  }

  /// Channel c's group g.
  template <class Byte>
  static Byte* group_of(Byte* tile, std::size_t channels, std::size_t c, int g) {
    return tile + layout::offset_channel_codes(channels, c) + g * format::group_bytes<Bits>;
  }

  /// One group's 32 codes as int32 vectors of W consecutive tokens.
  static std::array<ibatch<A>, format::group_values / W> unpack_group(const std::byte* group) {
    constexpr std::size_t per_group = format::group_values / W;
    std::array<ibatch<A>, per_group> codes;
    if constexpr (Bits == 4 && W <= 16) {
      // Byte j holds tokens j (low nibble) and j + 16 (high nibble).
      KPC_UNROLL
      for (std::size_t i = 0; i < 16 / W; ++i) {
        const ibatch<A> bytes = widen_u8<A>(group + i * W);
        codes[i] = bytes & ibatch<A>(0xF);
        codes[16 / W + i] = bytes >> 4;
      }
    } else if constexpr (Bits == 2 && W <= 8) {
      // Byte j holds tokens j, j + 8, j + 16, j + 24 at bits 0, 2, 4, 6.
      KPC_UNROLL
      for (std::size_t i = 0; i < 8 / W; ++i) {
        const ibatch<A> bytes = widen_u8<A>(group + i * W);
        KPC_UNROLL
        for (std::size_t m = 0; m < 4; ++m)
          codes[m * (8 / W) + i] = (bytes >> static_cast<std::int32_t>(2 * m)) & ibatch<A>(0x3);
      }
    } else if constexpr (Bits == 2) {
      unpack2<A>(group, codes.data());
    } else if constexpr (Bits == 3) {
      unpack3<A>(group, codes.data());
    } else {
      alignas(64) std::int32_t lanes[format::group_values];
      for (int j = 0; j < format::group_values; ++j) lanes[j] = static_cast<std::int32_t>(format::code_at<Bits>(group, j));
      for (std::size_t v = 0; v < per_group; ++v) codes[v] = ibatch<A>::load_aligned(lanes + v * W);
    }
    return codes;
  }
};

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_PER_CHANNEL_HPP
