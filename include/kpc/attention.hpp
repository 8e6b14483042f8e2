// SPDX-License-Identifier: MIT
// Fused decode attention straight from the codes: softmax(scale * q K^T) V for one query row, or
// for a GQA group of query heads that share one KV head, with an online softmax (the decoded
// cache never exists in memory).
#ifndef KPC_ATTENTION_HPP
#define KPC_ATTENTION_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include "backend.hpp"
#include "config.hpp"
#include "detail/checks.hpp"
#include "error.hpp"

KPC_BEGIN_NAMESPACE

/// How logits are formed: logit_t = scale * q.k_t, then softcap * tanh(logit_t / softcap) when
/// softcap > 0 (Gemma 2). sinks, when given, holds one extra logit per query head of the group
/// that joins the softmax's denominator and carries no value (gpt-oss's attention sinks).
struct attention_params {
  float scale = 0.0f;            ///< 0 selects 1 / sqrt(head_dim)
  float softcap = 0.0f;          ///< 0: no cap
  const float* sinks = nullptr;  ///< [group] logits, or null
};

namespace detail {

/// Tokens per online-softmax step: a multiple of every K tile (32, 64, 128). Each step's codes are
/// read once for the whole group (scores_group / accumulate_group unpack them once for two heads;
/// the step, about 40 KiB for a 128-wide head at 4 bits, stays in L1/L2 for the rest), so the
/// cache crosses the memory bus once per group.
inline constexpr std::size_t attention_chunk = 256;
/// Query heads whose softmax state lives on the stack at once; larger groups take several passes.
inline constexpr std::size_t attention_heads_per_pass = 16;

template <class Format, class = void>
struct tokens_per_unit : std::integral_constant<std::size_t, 1> {};
template <class Format>
struct tokens_per_unit<Format, std::void_t<decltype(Format::tile_tokens)>>
    : std::integral_constant<std::size_t, static_cast<std::size_t>(Format::tile_tokens)> {};

inline void check_finite(const float* values, std::size_t count, const char* name) {
  for (std::size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i])) raisef(errc::non_finite, "%s holds NaN or Inf", name);
}

}  // namespace detail

/// Attention of `group` query heads (q: [group][head_dim] f32) over the first `tokens` tokens of
/// one KV head: K as a KFormat slab (k, k_bytes), V as a VFormat slab (v, v_bytes). Writes
/// out[group][head_dim] (must not overlap q). KFormat/VFormat are kpc::Quantizer types, or any
/// type with the same static encoded_bytes, scores_group (K) and accumulate_group (V) members.
/// tokens = 0 gives zeros. Errors: invalid_shape (group 0, channels the formats cannot take),
/// buffer_too_small, null_pointer, non_finite (q, scale, softcap or sinks), out_of_range
/// (softcap < 0). Bytes that no encoder wrote give unspecified values, never an out-of-bounds access.
template <class KFormat, class VFormat>
void decode_attention(const float* q, std::size_t group, const std::byte* k, std::size_t k_bytes,
                      const std::byte* v, std::size_t v_bytes, std::size_t tokens, std::size_t head_dim,
                      const attention_params& params, float* out) {
  constexpr std::size_t chunk = detail::attention_chunk;
  static_assert(chunk % detail::tokens_per_unit<KFormat>::value == 0 &&
                    chunk % detail::tokens_per_unit<VFormat>::value == 0,
                "kpc::decode_attention: a format's unit must divide the 256-token step");
  if (group == 0) detail::raise(errc::invalid_shape, "decode_attention: group must be >= 1");
  const std::size_t k_needed = KFormat::encoded_bytes(tokens, head_dim);  // both shapes before any size
  const std::size_t v_needed = VFormat::encoded_bytes(tokens, head_dim);
  detail::check_bytes(k, k_bytes, k_needed, "decode_attention k");
  detail::check_bytes(v, v_bytes, v_needed, "decode_attention v");
  detail::check_rows(q, group, head_dim, head_dim, sizeof(float), "decode_attention q");
  detail::check_rows(out, group, head_dim, head_dim, sizeof(float), "decode_attention out");
  detail::check_finite(q, group * head_dim, "decode_attention q");
  detail::check_finite(&params.scale, 1, "attention_params::scale");
  detail::check_finite(&params.softcap, 1, "attention_params::softcap");
  if (params.softcap < 0.0f) detail::raise(errc::out_of_range, "attention_params::softcap must be >= 0");
  if (params.sinks != nullptr) detail::check_finite(params.sinks, group, "attention_params::sinks");
  const float scale = params.scale != 0.0f ? params.scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  const float softcap = params.softcap;

  const detail::softmax_kernels softmax = detail::active_softmax();
  std::fill(out, out + group * head_dim, 0.0f);
  for (std::size_t first_head = 0; first_head < group; first_head += detail::attention_heads_per_pass) {
    const std::size_t heads = std::min(detail::attention_heads_per_pass, group - first_head);
    float running_max[detail::attention_heads_per_pass];  // softmax state: max logit and sum of exp
    float running_sum[detail::attention_heads_per_pass];
    for (std::size_t h = 0; h < heads; ++h) {
      const bool sink = params.sinks != nullptr;
      running_max[h] = sink ? params.sinks[first_head + h] : -std::numeric_limits<float>::infinity();
      running_sum[h] = sink ? 1.0f : 0.0f;  // the sink's exp(sink - max)
    }
    // Logits, then weights, of every head of the pass: head h's at weights + h * n.
    alignas(64) float weights[detail::attention_heads_per_pass * chunk];
    const float* queries = q + first_head * head_dim;
    float* outputs = out + first_head * head_dim;
    for (std::size_t t0 = 0; t0 < tokens; t0 += chunk) {
      const std::size_t n = std::min(chunk, tokens - t0);
      const std::size_t k_offset = KFormat::encoded_bytes(t0, head_dim);
      const std::size_t v_offset = VFormat::encoded_bytes(t0, head_dim);
      KFormat::scores_group(queries, heads, k + k_offset, k_bytes - k_offset, n, head_dim, weights);
      for (std::size_t h = 0; h < heads; ++h) {
        float* const w = weights + h * n;
        float* const acc = outputs + h * head_dim;
        float step_max;
        if (softcap > 0.0f) {
          step_max = -std::numeric_limits<float>::infinity();
          for (std::size_t t = 0; t < n; ++t) {
            w[t] = softcap * std::tanh(w[t] * scale / softcap);
            step_max = std::max(step_max, w[t]);
          }
        } else {
          step_max = softmax.scale_max(w, n, scale);
        }
        if (step_max > running_max[h]) {  // rescale what was summed under the old maximum
          const float correction = std::exp(running_max[h] - step_max);
          running_sum[h] *= correction;
          for (std::size_t c = 0; c < head_dim; ++c) acc[c] *= correction;
          running_max[h] = step_max;
        }
        running_sum[h] += softmax.exp_sum(w, n, running_max[h]);
      }
      VFormat::accumulate_group(weights, heads, v + v_offset, v_bytes - v_offset, n, head_dim, outputs);
    }
    for (std::size_t h = 0; h < heads; ++h) {
      if (running_sum[h] == 0.0f) continue;  // no tokens and no sink: zeros
      const float inverse = 1.0f / running_sum[h];
      float* acc = out + (first_head + h) * head_dim;
      for (std::size_t c = 0; c < head_dim; ++c) acc[c] *= inverse;
    }
  }
}

KPC_END_NAMESPACE

#endif  // KPC_ATTENTION_HPP
