// SPDX-License-Identifier: MIT
// Slab loops (a [tokens][channels] slab is a run of K tiles or V rows) written once over a kernel
// provider: the scalar reference (ref_provider, here) or xsimd for one instruction set
// (simd::provider<Arch>, backend/simd_provider.hpp). make_table turns a provider into a kernel_table.
#ifndef KPC_BACKEND_SLAB_HPP
#define KPC_BACKEND_SLAB_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "../config.hpp"
#include "../error.hpp"
#include "../format.hpp"
#include "../half.hpp"
#include "../isa.hpp"
#include "../ref/integer_dot.hpp"
#include "../ref/per_channel.hpp"
#include "../ref/per_token.hpp"
#include "kernel_table.hpp"

KPC_BEGIN_NAMESPACE
namespace detail {

/// The reference as a provider: per-unit kernels (a K tile, a V row), the slab-wide scores and
/// accumulate of the per-token formats, and the softmax steps of decode attention.
struct ref_provider {
  static float scale_max(float* x, std::size_t n, float scale) {
    float max = x[0] *= scale;
    for (std::size_t i = 1; i < n; ++i) max = std::max(max, x[i] *= scale);
    return max;
  }
  static float exp_sum(float* x, std::size_t n, float shift) {
    float sum = 0.0f;
    for (std::size_t i = 0; i < n; ++i) sum += x[i] = std::exp(x[i] - shift);
    return sum;
  }

  template <int Bits, int G, class T>
  static errc encode_k_tile(const T* src, std::size_t stride, int tokens, std::size_t channels, std::byte* tile) {
    return ref::encode_k_tile<Bits, G>(src, stride, tokens, channels, tile);
  }
  template <int Bits, int G, class T>
  static errc decode_k_tile(const std::byte* tile, int tokens, std::size_t channels, T* dst, std::size_t stride) {
    return ref::decode_k_tile<Bits, G>(tile, tokens, channels, dst, stride);
  }
  template <int Bits, int G>
  static errc scores_k_tile(const float* q, const std::byte* tile, int tokens, std::size_t channels, float* out) {
    return ref::scores_k_tile<Bits, G>(q, tile, tokens, channels, out);
  }
  /// A group of query heads is the same tile once per head (q [group][channels]).
  template <int Bits, int G>
  static void scores_k_tile_group(const float* q, std::size_t group, const std::byte* tile, int tokens,
                                  std::size_t channels, float* out, std::size_t out_stride) {
    for (std::size_t h = 0; h < group; ++h) ref::scores_k_tile<Bits, G>(q + h * channels, tile, tokens, channels, out + h * out_stride);
  }

  template <int Bits, int G>
  static void scores_k_tile_group_integer(const float* q, std::size_t group, const std::byte* tile, int tokens,
                                       std::size_t channels, float* out, std::size_t out_stride) {
    static_assert(Bits == 4, "integer scores: 4-bit K tiles");
    for (std::size_t h = 0; h < group; ++h) ref::scores_k_tile_integer<G>(q + h * channels, tile, tokens, channels, out + h * out_stride);
  }

  template <class Block, class T>
  static errc encode_row(const T* src, std::size_t channels, std::byte* row) {
    for (std::size_t b = 0; b < channels / Block::values; ++b) {
      const errc status = ref::encode_block<Block>(src + b * Block::values, row + b * Block::bytes);
      if (status != errc::ok) return status;
    }
    return errc::ok;
  }
  template <class Block, class T>
  static errc decode_row(const std::byte* row, std::size_t channels, T* dst) {
    for (std::size_t b = 0; b < channels / Block::values; ++b) {
      const errc status = ref::decode_block<Block>(row + b * Block::bytes, dst + b * Block::values);
      if (status != errc::ok) return status;
    }
    return errc::ok;
  }
  template <class Block>
  static void scores(const float* q, const std::byte* rows, std::size_t tokens, std::size_t channels, float* out) {
    const std::size_t row_size = channels / Block::values * Block::bytes;
    for (std::size_t t = 0; t < tokens; ++t) {
      float dot = 0.0f;
      for (std::size_t b = 0; b < channels / Block::values; ++b)
        dot += ref::dot_block<Block>(q + b * Block::values, rows + t * row_size + b * Block::bytes);
      out[t] = dot;
    }
  }
  template <class Block>
  static void accumulate(const float* w, const std::byte* rows, std::size_t tokens, std::size_t channels, float* out) {
    const std::size_t row_size = channels / Block::values * Block::bytes;
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t b = 0; b < channels / Block::values; ++b)
        ref::axpy_block<Block>(w[t], rows + t * row_size + b * Block::bytes, out + b * Block::values);
  }
  template <class Block>
  static void scores_group(const float* q, std::size_t group, const std::byte* rows, std::size_t tokens,
                           std::size_t channels, float* out) {
    for (std::size_t h = 0; h < group; ++h) scores<Block>(q + h * channels, rows, tokens, channels, out + h * tokens);
  }
  template <class Block>
  static void accumulate_group(const float* w, std::size_t group, const std::byte* rows, std::size_t tokens,
                               std::size_t channels, float* out) {
    for (std::size_t h = 0; h < group; ++h) accumulate<Block>(w + h * tokens, rows, tokens, channels, out + h * channels);
  }
  template <class Block>
  static void accumulate_group_integer(const float* w, std::size_t group, const std::byte* rows, std::size_t tokens,
                                    std::size_t channels, float* out) {
    static_assert(std::is_same_v<Block, format::v_block<4>>, "integer accumulate: V4 rows");
    for (std::size_t h = 0; h < group; ++h)
      ref::accumulate_v4_rows_integer(w + h * tokens, rows, tokens, channels, out + h * channels);
  }
};

inline slab_result ok_result() { return {0, 0}; }
inline slab_result failed(errc status, std::size_t token) { return {static_cast<int>(status), token}; }

/// A per-channel K slab: ceil(tokens / G) tiles.
template <class P, int Bits, int G>
struct k_slab {
  static std::size_t tile_bytes(std::size_t channels) { return format::k_tile<Bits, G>::bytes(channels); }
  static int present(std::size_t tokens, std::size_t first) { return static_cast<int>(std::min<std::size_t>(G, tokens - first)); }

  template <class T>
  static slab_result encode(const T* src, std::size_t stride, std::size_t tokens, std::size_t channels, std::byte* dst) {
    for (std::size_t first = 0; first < tokens; first += G) {
      const errc status = P::template encode_k_tile<Bits, G>(src + first * stride, stride, present(tokens, first), channels,
                                                             dst + first / G * tile_bytes(channels));
      if (status != errc::ok) return failed(status, first);
    }
    return ok_result();
  }
  template <class T>
  static slab_result decode(const std::byte* src, std::size_t tokens, std::size_t channels, T* dst, std::size_t stride) {
    for (std::size_t first = 0; first < tokens; first += G) {
      const errc status = P::template decode_k_tile<Bits, G>(src + first / G * tile_bytes(channels), present(tokens, first),
                                                             channels, dst + first * stride, stride);
      if (status != errc::ok) return failed(status, first);
    }
    return ok_result();
  }
  static void scores(const float* q, const std::byte* src, std::size_t tokens, std::size_t channels, float* out) {
    for (std::size_t first = 0; first < tokens; first += G)
      P::template scores_k_tile<Bits, G>(q, src + first / G * tile_bytes(channels), present(tokens, first), channels,
                                         out + first);
  }
  static void scores_group(const float* q, std::size_t group, const std::byte* src, std::size_t tokens,
                           std::size_t channels, float* out) {
    for (std::size_t first = 0; first < tokens; first += G)
      P::template scores_k_tile_group<Bits, G>(q, group, src + first / G * tile_bytes(channels), present(tokens, first),
                                               channels, out + first, tokens);
  }
  static void scores_group_integer(const float* q, std::size_t group, const std::byte* src, std::size_t tokens,
                                std::size_t channels, float* out) {
    for (std::size_t first = 0; first < tokens; first += G)
      P::template scores_k_tile_group_integer<Bits, G>(q, group, src + first / G * tile_bytes(channels),
                                                    present(tokens, first), channels, out + first, tokens);
  }
};

/// A per-token slab: one row of 32-value blocks per token.
template <class P, class Block>
struct row_slab {
  static std::size_t row_bytes(std::size_t channels) { return channels / Block::values * Block::bytes; }

  template <class T>
  static slab_result encode(const T* src, std::size_t stride, std::size_t tokens, std::size_t channels, std::byte* dst) {
    for (std::size_t t = 0; t < tokens; ++t) {
      const errc status = P::template encode_row<Block>(src + t * stride, channels, dst + t * row_bytes(channels));
      if (status != errc::ok) return failed(status, t);
    }
    return ok_result();
  }
  /// A row with a bad block is refused whole, before any of its values is written.
  template <class T>
  static slab_result decode(const std::byte* src, std::size_t tokens, std::size_t channels, T* dst, std::size_t stride) {
    for (std::size_t t = 0; t < tokens; ++t) {
      const std::byte* row = src + t * row_bytes(channels);
      for (std::size_t b = 0; b < channels / Block::values; ++b)
        if (!ref::block_fields_finite<Block>(row + b * Block::bytes)) return failed(errc::corrupt_data, t);
      const errc status = P::template decode_row<Block>(row, channels, dst + t * stride);
      if (status != errc::ok) return failed(status, t);
    }
    return ok_result();
  }
  static void scores(const float* q, const std::byte* src, std::size_t tokens, std::size_t channels, float* out) {
    P::template scores<Block>(q, src, tokens, channels, out);
  }
  static void accumulate(const float* w, const std::byte* src, std::size_t tokens, std::size_t channels, float* out) {
    P::template accumulate<Block>(w, src, tokens, channels, out);
  }
  static void scores_group(const float* q, std::size_t group, const std::byte* src, std::size_t tokens,
                           std::size_t channels, float* out) {
    P::template scores_group<Block>(q, group, src, tokens, channels, out);
  }
  static void accumulate_group(const float* w, std::size_t group, const std::byte* src, std::size_t tokens,
                               std::size_t channels, float* out) {
    P::template accumulate_group<Block>(w, group, src, tokens, channels, out);
  }
  static void accumulate_group_integer(const float* w, std::size_t group, const std::byte* src, std::size_t tokens,
                                    std::size_t channels, float* out) {
    P::template accumulate_group_integer<Block>(w, group, src, tokens, channels, out);
  }
};

/// One slab type's operations as static members named and shaped like format_kernels' pointers,
/// so code written against a format_kernels works on either: a dispatch unit's table, or these,
/// which instantiate only the operations a translation unit calls. f16 crosses as bits and is
/// read back as kpc::half.
template <class Slab>
struct slab_ops {
  static slab_result encode_f32(const float* src, std::size_t stride, std::size_t tokens, std::size_t channels,
                                std::byte* dst) {
    return Slab::encode(src, stride, tokens, channels, dst);
  }
  static slab_result encode_f16(const f16_bits* src, std::size_t stride, std::size_t tokens, std::size_t channels,
                                std::byte* dst) {
    return Slab::encode(reinterpret_cast<const half*>(src), stride, tokens, channels, dst);
  }
  static slab_result decode_f32(const std::byte* src, std::size_t tokens, std::size_t channels, float* dst,
                                std::size_t stride) {
    return Slab::decode(src, tokens, channels, dst, stride);
  }
  static slab_result decode_f16(const std::byte* src, std::size_t tokens, std::size_t channels, f16_bits* dst,
                                std::size_t stride) {
    return Slab::decode(src, tokens, channels, reinterpret_cast<half*>(dst), stride);
  }
  static void scores(const float* q, const std::byte* src, std::size_t tokens, std::size_t channels, float* out) {
    Slab::scores(q, src, tokens, channels, out);
  }
  static void scores_group(const float* q, std::size_t group, const std::byte* src, std::size_t tokens,
                           std::size_t channels, float* out) {
    Slab::scores_group(q, group, src, tokens, channels, out);
  }
  static void accumulate(const float* w, const std::byte* src, std::size_t tokens, std::size_t channels, float* out) {
    Slab::accumulate(w, src, tokens, channels, out);
  }
  static void accumulate_group(const float* w, std::size_t group, const std::byte* src, std::size_t tokens,
                               std::size_t channels, float* out) {
    Slab::accumulate_group(w, group, src, tokens, channels, out);
  }
  static void scores_group_integer(const float* q, std::size_t group, const std::byte* src, std::size_t tokens,
                                std::size_t channels, float* out) {
    Slab::scores_group_integer(q, group, src, tokens, channels, out);
  }
  static void accumulate_group_integer(const float* w, std::size_t group, const std::byte* src, std::size_t tokens,
                                    std::size_t channels, float* out) {
    Slab::accumulate_group_integer(w, group, src, tokens, channels, out);
  }
};

/// The table entry of one slab type: every operation, instantiated (dispatch units, precompiled kernels).
template <class Slab, bool HasAccumulate, bool HasInteger>
format_kernels slab_kernels() {
  using ops = slab_ops<Slab>;
  format_kernels k{};
  k.encode_f32 = &ops::encode_f32;
  k.encode_f16 = &ops::encode_f16;
  k.decode_f32 = &ops::decode_f32;
  k.decode_f16 = &ops::decode_f16;
  k.scores = &ops::scores;
  k.scores_group = &ops::scores_group;
  if constexpr (HasAccumulate) {
    k.accumulate = &ops::accumulate;
    k.accumulate_group = &ops::accumulate_group;
  }
  if constexpr (HasInteger) {
    if constexpr (HasAccumulate) k.accumulate_group_integer = &ops::accumulate_group_integer;
    else k.scores_group_integer = &ops::scores_group_integer;
  }
  return k;
}

/// A provider's softmax steps (two small functions: taken by address, they cost little to build).
template <class P>
constexpr softmax_kernels softmax_of() {
  return {&P::scale_max, &P::exp_sum};
}

/// The slab loop of a format descriptor (format.hpp) over provider P.
template <class P, class Format, bool PerToken = Format::per_token>
struct slab_of {
  using type = row_slab<P, typename Format::block>;
};
template <class P, class Format>
struct slab_of<P, Format, false> {
  using type = k_slab<P, Format::bits, static_cast<int>(Format::unit_tokens)>;
};
template <class P, class Format>
using slab_for = typename slab_of<P, Format>::type;

template <class P, class... Formats>
void fill_formats(format_kernels* entries, format::list<Formats...>) {
  std::size_t i = 0;
  ((entries[i++] = slab_kernels<slab_for<P, Formats>, Formats::per_token, Formats::integer_dot>()), ...);
}

/// Every format's kernels from one provider.
template <class P>
kernel_table make_table(isa level) {
  kernel_table table{};
  table.isa = static_cast<int>(level);
  fill_formats<P>(table.formats, format::all{});
  table.softmax = softmax_of<P>();
  return table;
}

/// The scalar reference's table.
inline const kernel_table& scalar_table() {
  static const kernel_table table = make_table<ref_provider>(isa::scalar);
  return table;
}

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_BACKEND_SLAB_HPP
