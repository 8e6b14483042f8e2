// SPDX-License-Identifier: MIT
// Rotary position embedding (RoPE) shifts: rotate keys already embedded at position p so they
// read as if embedded at p + delta, which is what an engine does when it moves tokens in its
// cache (context shift, prompt reuse at another offset).
#ifndef KPC_ROPE_HPP
#define KPC_ROPE_HPP

#include <cmath>
#include <cstddef>

#include "config.hpp"
#include "error.hpp"

KPC_BEGIN_NAMESPACE

/// Which channels form a rotated pair (ggml's names).
enum class rope_style {
  normal,  ///< pairs (2i, 2i + 1): GPT-J, ggml's default (LLaMA after conversion)
  neox,    ///< pairs (i, i + n/2): GPT-NeoX, Qwen2, Phi, most Hugging Face checkpoints
};

/// The RoPE a model uses. Pair i of the first rotary_dims channels turns by
/// position * freq_scale * theta_base^(-2i / rotary_dims); channels past rotary_dims are not rotated.
/// YaRN/LongRoPE corrections are not modelled.
struct rope_config {
  rope_style style = rope_style::normal;
  double theta_base = 10000.0;
  std::size_t rotary_dims = 0;  ///< 0: all channels of the head
  double freq_scale = 1.0;      ///< linear position interpolation factor (1 = none)
};

/// Rotates `tokens` rows of one head (`head_dim` channels, row t at rows + t * stride) by `delta`
/// positions, in place. Angles and products are computed in double and rounded once to float.
/// Errors: invalid_shape (head_dim 0, stride < head_dim, rotary_dims odd or > head_dim),
/// out_of_range (non-finite or non-positive theta_base, non-finite freq_scale or delta).
inline void rope_shift(float* rows, std::size_t tokens, std::size_t head_dim, std::size_t stride, double delta,
                       const rope_config& rope) {
  const std::size_t dims = rope.rotary_dims == 0 ? head_dim : rope.rotary_dims;
  if (head_dim == 0 || dims > head_dim || dims % 2 != 0)
    detail::raisef(errc::invalid_shape, "rope_shift: head_dim %zu, rotary_dims %zu (must be even and <= head_dim)",
                   head_dim, dims);
  detail::check_rows(rows, tokens, head_dim, stride, sizeof(float), "rope_shift rows");
  if (!(std::isfinite(rope.theta_base) && rope.theta_base > 0.0) || !std::isfinite(rope.freq_scale) ||
      !std::isfinite(delta))
    detail::raise(errc::out_of_range, "rope_shift: theta_base must be finite and > 0, freq_scale and delta finite");
  const std::size_t pairs = dims / 2;
  const std::size_t partner = rope.style == rope_style::normal ? 1 : pairs;  // channel distance within a pair
  for (std::size_t i = 0; i < pairs; ++i) {
    const double angle = delta * rope.freq_scale *
                         std::pow(rope.theta_base, -2.0 * static_cast<double>(i) / static_cast<double>(dims));
    const double cos_a = std::cos(angle), sin_a = std::sin(angle);
    const std::size_t first = rope.style == rope_style::normal ? 2 * i : i;
    for (std::size_t t = 0; t < tokens; ++t) {
      float* row = rows + t * stride;
      const double x0 = row[first], x1 = row[first + partner];
      row[first] = static_cast<float>(x0 * cos_a - x1 * sin_a);
      row[first + partner] = static_cast<float>(x0 * sin_a + x1 * cos_a);
    }
  }
}

KPC_END_NAMESPACE

#endif  // KPC_ROPE_HPP
