// SPDX-License-Identifier: MIT
// xsimd kernels of the integer attention path (ref/integer_dot.hpp), step for step: the same
// integer codes (the f32 products, the run maximum, 127 / a or 32767 / a and round-half-even are
// the reference's), so the integer sums are identical; only the order of the f32 steps that scale
// and add them differs. The products run on the instruction set's nibble_dot (int8 weights:
// pmaddubsw on x86, 16-bit multiply-accumulate on NEON) and nibble_dot16 (int16 weights: pmaddwd,
// NEON's widening multiply-accumulate), two groups of 32 codes at a time, shared by two heads.
#ifndef KPC_SIMD_INTEGER_DOT_HPP
#define KPC_SIMD_INTEGER_DOT_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../format.hpp"
#include "../ref/integer_dot.hpp"
#include "arch.hpp"
#include "per_channel.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

/// Quantizes one full run (Capacity values, in registers) like ref::quantize_integer_run: codes
/// to `codes`, returns the run's scale.
template <class A, class Code, int Capacity>
inline float quantize_integer_run(const fbatch<A>* x, Code* codes) {
  using F = fbatch<A>;
  constexpr float M = static_cast<float>(std::numeric_limits<Code>::max());
  constexpr std::size_t W = F::size, batches = Capacity / W;
  finite_probe<A> probe;
  F largest(0.0f);
  KPC_UNROLL
  for (std::size_t k = 0; k < batches; ++k) {
    probe.add(x[k]);
    largest = xsimd::max(largest, xsimd::abs(x[k]));
  }
  const float a = reduce_max<A>(largest);
  if (!probe.all_finite() || a < ref::integer_flush_below) {
    std::fill(codes, codes + Capacity, Code{0});
    return probe.all_finite() ? 0.0f : std::numeric_limits<float>::quiet_NaN();
  }
  const F inverse(M / a);
  KPC_UNROLL
  for (std::size_t k = 0; k < batches; ++k) {
    const ibatch<A> code = xsimd::nearbyint_as_int(xsimd::min(xsimd::max(x[k] * inverse, F(-M)), F(M)));
    if constexpr (sizeof(Code) == 1) {
      store_low_bytes<A>(code, reinterpret_cast<std::byte*>(codes + k * W));  // (bytes may alias anything)
    } else {
      half words[W];  // (narrow_u16 writes halves; copied, not aliased, into the int16 codes)
      narrow_u16<A>(code & ibatch<A>(0xFFFF), words, A{});
      std::memcpy(codes + k * W, words, sizeof words);
    }
  }
  return a / M;
}

/// ref::scores_k_tile_integer for a group of query heads, two at a time.
template <class A, int G>
struct k4_tile_integer {
  using F = fbatch<A>;
  using nibble_dot = decltype(nibble_dot_of<A>(A{}));
  using layout = format::k_tile<4, G>;
  static constexpr std::size_t W = F::size;
  static constexpr int run = format::int8_run;

  static void scores_group(const float* q, std::size_t group, const std::byte* tile, int tokens, std::size_t channels,
                           float* out, std::size_t out_stride) {
    const std::size_t runs = (channels + run - 1) / run;
    // scale'[channels], zero'[channels], then per head of a pair: run scales; and the heads' codes.
    float* const scales = scratch_floats(2 * channels + 2 * runs);
    float* const zeros = scales + channels;
    float* const run_scales = zeros + channels;
    std::int8_t* const codes = scratch_array<std::int8_t>(2 * runs * run);
    channel_meta(tile, channels, scales, zeros);
    for_head_pairs(group, [&](auto heads, std::size_t h) {
      float bias[2];
      for (int i = 0; i < heads; ++i)
        bias[i] = quantize_q(q + (h + i) * channels, scales, zeros, channels, codes + i * runs * run, run_scales + i * runs);
      dot_heads<decltype(heads)::value>(tile, tokens, channels, codes, run_scales, bias, out + h * out_stride, out_stride);
    });
  }

 private:
  /// Every channel's scale' and zero' (once per tile for all heads).
  static void channel_meta(const std::byte* tile, std::size_t channels, float* scales, float* zeros) {
    const ref::k_tile_meta meta = ref::k_load_meta(tile);
    const std::size_t vector_channels = channels / W * W;
    for (std::size_t c = 0; c < vector_channels; c += W) {
      F scale, zero;
      load_channel_meta<A, 4, G>(tile, meta, channels, c, scale, zero);
      scale.store_unaligned(scales + c);
      zero.store_unaligned(zeros + c);
    }
    for (std::size_t c = vector_channels; c < channels; ++c) {
      const ref::k_channel_meta m = ref::k_load_channel<4, G>(tile, meta, channels, c);
      scales[c] = m.scale;
      zeros[c] = m.zero;
    }
  }

  /// One head's int8 codes and run scales; returns its bias sum_c q_c * zero'_c.
  static float quantize_q(const float* q, const float* scales, const float* zeros, std::size_t channels, std::int8_t* codes,
                          float* run_scales) {
    F bias_lanes(0.0f);
    float bias = 0.0f;
    std::size_t first = 0, r = 0;
    if constexpr (W <= static_cast<std::size_t>(run)) {
      for (; first + run <= channels; first += run, ++r) {
        F x[run / W];
        KPC_UNROLL
        for (std::size_t k = 0; k < run / W; ++k) {
          const F qc = F::load_unaligned(q + first + k * W);
          x[k] = qc * F::load_unaligned(scales + first + k * W);
          bias_lanes = xsimd::fma(qc, F::load_unaligned(zeros + first + k * W), bias_lanes);
        }
        run_scales[r] = quantize_integer_run<A, std::int8_t, run>(x, codes + r * run);
      }
    }
    for (; first < channels; first += run, ++r) {
      const int n = static_cast<int>(std::min<std::size_t>(run, channels - first));
      float x[run];
      for (int i = 0; i < n; ++i) {
        x[i] = q[first + i] * scales[first + i];
        bias += q[first + i] * zeros[first + i];
      }
      run_scales[r] = ref::quantize_int8_run(x, n, codes + r * run);
    }
    return reduce_add<A>(bias_lanes) + bias;
  }

  template <int H>
  static void dot_heads(const std::byte* tile, int tokens, std::size_t channels, const std::int8_t* codes,
                        const float* run_scales, const float* bias, float* out, std::size_t out_stride) {
    const std::size_t runs = (channels + run - 1) / run;
    for (int g = 0; g < G / format::group_values && g * format::group_values < tokens; ++g) {
      const std::byte* const groups = tile + layout::offset_channel_codes(channels, 0) + g * format::group_bytes<4>;
      nibble_dot dot[H];
      for (std::size_t r = 0; r < runs; ++r) {
        const int n = static_cast<int>(std::min<std::size_t>(run, channels - r * run));
        constexpr int sources = nibble_dot::sources;  // channels per add (a run holds a whole number of them)
        for (int i = 0; i < n; i += sources) {
          const std::byte* channel[sources];
          KPC_UNROLL
          for (int k = 0; k < sources; ++k)  // channels past the end reread the first, with weight 0
            channel[k] = groups + (r * run + (i + k < n ? i + k : i)) * layout::channel_code_bytes;
          const auto loaded = nibble_dot::load(channel);
          KPC_UNROLL
          for (int h = 0; h < H; ++h) dot[h].add(loaded, codes + (h * runs + r) * run + i);  // (codes past n are 0)
        }
        KPC_UNROLL
        for (int h = 0; h < H; ++h) dot[h].flush(run_scales[h * runs + r]);
      }
      const int present = std::min(tokens - g * format::group_values, format::group_values);
      KPC_UNROLL
      for (int h = 0; h < H; ++h) {
        alignas(64) float sums[format::group_values];
        dot[h].store(sums);
        float* const group_out = out + h * out_stride + g * format::group_values;
        for (int j = 0; j < present; ++j) group_out[j] = sums[j] + bias[h];
      }
    }
  }
};

/// ref::accumulate_v4_rows_integer for a group of query heads, two at a time, one run of 64 tokens
/// at a time (the blocks' scales and minimums of the run converted together first).
template <class A>
struct v4_rows_integer {
  using F = fbatch<A>;
  using nibble_dot16 = decltype(nibble_dot16_of<A>(A{}));
  using block = format::v_block<4>;
  static constexpr std::size_t W = F::size;
  static constexpr std::size_t run = format::int16_run;

  static void accumulate_group(const float* w, std::size_t group, const std::byte* rows, std::size_t tokens,
                               std::size_t channels, float* out) {
    const std::size_t blocks = channels / format::group_values;
    // Per block: d and m of the run's tokens (f32), and their fp16 fields.
    float* const scales = scratch_floats(2 * blocks * run);
    float* const mins = scales + blocks * run;
    half* const fields = scratch_array<half>(blocks * run);
    for (std::size_t first = 0; first < tokens; first += run) {
      const std::size_t n = std::min(run, tokens - first);
      const std::byte* const run_rows = rows + first * blocks * block::bytes;
      load_meta(run_rows, n, blocks, fields, scales, mins);
      for_head_pairs(group, [&](auto pair, std::size_t h) {
        heads<decltype(pair)::value>(w + h * tokens + first, tokens, run_rows, n, blocks, scales, mins, out + h * channels, channels);
      });
    }
  }

 private:
  static void load_meta(const std::byte* rows, std::size_t n, std::size_t blocks, half* fields, float* scales,
                        float* mins) {
    for (int field = 0; field < 2; ++field) {
      float* const values = field == 0 ? scales : mins;
      const std::size_t offset = field == 0 ? block::offset_scale : block::offset_min;
      for (std::size_t b = 0; b < blocks; ++b) {
        half* const column = fields + b * run;
        for (std::size_t t = 0; t < n; ++t)
          column[t] = half::from_bits(detail::load_u16le(rows + (t * blocks + b) * block::bytes + offset));
        std::fill(column + n, column + run, half::from_bits(0));
        for (std::size_t t = 0; t < n; t += W) load<A>(column + t).store_unaligned(values + b * run + t);
      }
    }
  }

  /// One head's run: u = w * d quantized to int16 codes (ref::quantize_int16_run, in registers
  /// for a whole run); returns the run's scale and adds sum w * m to `offset`.
  static float quantize_weights(const float* w, std::size_t n, const float* d, const float* m, std::int16_t* codes,
                                float& offset) {
    if (n != run || W > run) {
      float x[run];
      for (std::size_t i = 0; i < n; ++i) {
        x[i] = w[i] * d[i];
        offset += w[i] * m[i];
      }
      return ref::quantize_int16_run(x, static_cast<int>(n), codes);
    }
    constexpr std::size_t batches = W <= run ? run / W : 1;
    F x[batches];
    F offsets(0.0f);
    KPC_UNROLL
    for (std::size_t k = 0; k < batches; ++k) {
      const F wk = F::load_unaligned(w + k * W);
      x[k] = wk * F::load_unaligned(d + k * W);
      offsets = xsimd::fma(wk, F::load_unaligned(m + k * W), offsets);
    }
    offset += reduce_add<A>(offsets);
    return quantize_integer_run<A, std::int16_t, run>(x, codes);
  }

  template <int H>
  static void heads(const float* w, std::size_t w_stride, const std::byte* rows, std::size_t n, std::size_t blocks,
                    const float* scales, const float* mins, float* out, std::size_t out_stride) {
    for (std::size_t b = 0; b < blocks; ++b) {
      alignas(64) std::int16_t codes[H][run];  // (codes past n are 0: an odd n's last pair weighs 0)
      float run_scale[H], offset[H];
      KPC_UNROLL
      for (int h = 0; h < H; ++h) {
        offset[h] = 0.0f;
        run_scale[h] = quantize_weights(w + h * w_stride, n, scales + b * run, mins + b * run, codes[h], offset[h]);
      }
      nibble_dot16 dot[H];
      const std::byte* const first_codes = rows + b * block::bytes + block::offset_codes;
      const std::size_t row_bytes = blocks * block::bytes;
      for (std::size_t i = 0; i < n; i += 2) {
        const std::byte* a = first_codes + i * row_bytes;
        const std::byte* c = i + 1 < n ? a + row_bytes : a;  // (its weight is 0)
        const typename nibble_dot16::pair pair = nibble_dot16::load_pair(a, c);
        KPC_UNROLL
        for (int h = 0; h < H; ++h) dot[h].add(pair, codes[h] + i);
      }
      KPC_UNROLL
      for (int h = 0; h < H; ++h) {
        dot[h].flush(run_scale[h]);
        alignas(64) float sums[format::group_values];
        dot[h].store(sums);
        float* const o = out + h * out_stride + b * format::group_values;
        for (int j = 0; j < format::group_values; ++j) o[j] += sums[j] + offset[h];
      }
    }
  }
};

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_INTEGER_DOT_HPP
