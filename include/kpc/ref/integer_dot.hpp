// SPDX-License-Identifier: MIT
// The integer attention path (kpc::attention_arithmetic::integer), reference arithmetic. The exact
// path multiplies f32 by every code; this one quantizes the f32 side, q * scale' to int8 in runs of
// 16 channels (K scores) and the softmax weights * d to int16 in runs of 64 tokens (V accumulate),
// sums integer x 4-bit code products exactly (so every backend gets the same integer sums) and
// scales each run's sum once.
// The error this adds is bounded per result; docs/FORMAT.md ("Integer attention path") states it.
// Formats: 4-bit K tiles (any G) and V4 (q4_1) rows (format descriptors' int8_dot).
#ifndef KPC_REF_INTEGER_DOT_HPP
#define KPC_REF_INTEGER_DOT_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../config.hpp"
#include "../format.hpp"
#include "per_channel.hpp"
#include "per_token.hpp"

KPC_BEGIN_NAMESPACE
namespace ref {

/// Runs whose largest magnitude is below this quantize to zeros with scale 0 (127 / a would
/// overflow near FLT_MIN; what they drop is below f32 resolution of anything attention adds them to:
/// softmax weights underflow to such values for far-off tokens).
inline constexpr float integer_flush_below = 0x1p-100f;

/// Quantizes n (1..Capacity) values to Code (int8 or int16, M its largest value): a = max |x|,
/// code = round-half-even(clamp(x * (M / a), -M, M)) (the quotient and the product each rounded to
/// f32; the clamp binds only under a non-default rounding mode, as a * fl(M / a) < M + 0.5 when
/// rounding to nearest; kpc assumes that mode, which NEON's conversion uses whatever the mode).
/// Returns the run's scale a / M:
/// 0 (all codes 0) when a < integer_flush_below, NaN when a value is not finite (so the scores or
/// outputs are NaN and attention refuses them). Codes n..Capacity-1 are 0.
template <class Code, int Capacity>
inline float quantize_integer_run(const float* x, int n, Code* codes) {
  constexpr float M = static_cast<float>(std::numeric_limits<Code>::max());
  float a = 0.0f;
  bool finite = true;
  for (int i = 0; i < n; ++i) {
    finite = finite && std::isfinite(x[i]);
    a = std::fmax(a, std::fabs(x[i]));
  }
  for (int i = 0; i < Capacity; ++i) codes[i] = 0;
  if (!finite) return std::numeric_limits<float>::quiet_NaN();
  if (a < integer_flush_below) return 0.0f;
  const float inverse = M / a;
  for (int i = 0; i < n; ++i) codes[i] = static_cast<Code>(std::nearbyint(std::fmin(std::fmax(x[i] * inverse, -M), M)));
  return a / M;
}
inline float quantize_int8_run(const float* x, int n, std::int8_t* codes) {
  return quantize_integer_run<std::int8_t, format::int8_run>(x, n, codes);
}
inline float quantize_int16_run(const float* x, int n, std::int16_t* codes) {
  return quantize_integer_run<std::int16_t, format::int16_run>(x, n, codes);
}

/// Integer scores of one 4-bit K tile: with q'_c = q_c * scale'_c quantized per run r of 16
/// channels to codes s_c and scale d_r, out[t] = sum_r d_r * (sum_{c in r} s_c * code_{t,c})
/// + sum_c q_c * zero'_c. errc::invalid_shape, writing nothing, unless 1 <= tokens <= G.
template <int G>
inline errc scores_k_tile_integer(const float* q, const std::byte* tile, int tokens, std::size_t channels, float* out) {
  using layout = format::k_tile<4, G>;
  if (tokens < 1 || tokens > G) return errc::invalid_shape;
  const k_tile_meta meta = k_load_meta(tile);
  float dot[G] = {};
  float bias = 0.0f;
  for (std::size_t first = 0; first < channels; first += format::int8_run) {
    const int n = static_cast<int>(std::min<std::size_t>(format::int8_run, channels - first));
    float q_scaled[format::int8_run];
    for (int i = 0; i < n; ++i) {
      const k_channel_meta channel = k_load_channel<4, G>(tile, meta, channels, first + i);
      q_scaled[i] = q[first + i] * channel.scale;
      bias += q[first + i] * channel.zero;
    }
    std::int8_t codes[format::int8_run];
    const float scale = quantize_int8_run(q_scaled, n, codes);
    for (int t = 0; t < tokens; ++t) {
      std::int32_t sum = 0;
      for (int i = 0; i < n; ++i) {
        const std::byte* group = tile + layout::offset_channel_codes(channels, first + i) +
                                 (t / format::group_values) * format::group_bytes<4>;
        sum += codes[i] * static_cast<std::int32_t>(format::code_at<4>(group, t % format::group_values));
      }
      dot[t] += scale * static_cast<float>(sum);
    }
  }
  for (int t = 0; t < tokens; ++t) out[t] = dot[t] + bias;
  return errc::ok;
}

/// Integer weighted sum of V4 (q4_1) rows: per block b and run r of 64 tokens (from the first),
/// u_t = w_t * d_{t,b} quantized to int16 codes s_t and scale e_r, then out[c] += sum_r e_r *
/// (sum_{t in r} s_t * code_{t,c}) + sum_t w_t * m_{t,b}. (The weights take 16 bits: at 8, V's
/// share of the error was as large as the 4-bit codes' own on the real model.)
inline void accumulate_v4_rows_integer(const float* w, const std::byte* rows, std::size_t tokens, std::size_t channels,
                                       float* out) {
  using block_layout = format::v_block<4>;
  const std::size_t blocks = channels / format::group_values;
  for (std::size_t b = 0; b < blocks; ++b) {
    float sums[format::group_values] = {};
    float offset = 0.0f;
    for (std::size_t first = 0; first < tokens; first += format::int16_run) {
      const int n = static_cast<int>(std::min<std::size_t>(format::int16_run, tokens - first));
      float weighted_scale[format::int16_run];
      for (int i = 0; i < n; ++i) {
        const block_meta m = load_v_meta<4>(rows + ((first + i) * blocks + b) * block_layout::bytes);
        weighted_scale[i] = w[first + i] * m.scale;
        offset += w[first + i] * m.min;
      }
      std::int16_t codes[format::int16_run];
      const float scale = quantize_int16_run(weighted_scale, n, codes);
      for (int j = 0; j < format::group_values; ++j) {
        std::int32_t sum = 0;  // at most 64 x 32767 x 15 in magnitude
        for (int i = 0; i < n; ++i)
          sum += codes[i] * v_code<4>(rows + ((first + i) * blocks + b) * block_layout::bytes, j);
        sums[j] += scale * static_cast<float>(sum);
      }
    }
    for (int j = 0; j < format::group_values; ++j) out[b * format::group_values + j] += sums[j] + offset;
  }
}

}  // namespace ref
KPC_END_NAMESPACE

#endif  // KPC_REF_INTEGER_DOT_HPP
