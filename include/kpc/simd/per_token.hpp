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

  /// ref::encode_v_block / ref::encode_q4_0_block over a token's row of blocks, in two passes:
  /// every block's scale (and minimum) first, so the blocks' divisions overlap, then the codes.
  template <class T>
  static errc encode_row(const T* src, std::size_t channels, std::byte* row) {
    const std::size_t blocks = channels / format::group_values;
    float* const bases = scratch_floats(2 * blocks);  // per block: the value subtracted, and 1/d
    float* const inverses = bases + blocks;
    errc status = errc::ok;
    for (std::size_t b = 0; b < blocks; ++b) {
      const errc block_status = encode_meta(src + b * format::group_values, row + b * Block::bytes, bases[b], inverses[b]);
      if (status == errc::ok) status = block_status;
    }
    for (std::size_t b = 0; b < blocks; ++b) {
      const T* x = src + b * format::group_values;
      std::byte* codes_out = row + b * Block::bytes + Block::offset_codes;
      codes_t codes;
      KPC_UNROLL
      for (std::size_t v = 0; v < per_block; ++v) {
        const F xv = load<A>(x + v * W);
        if constexpr (bits == 8) {
          store_low_bytes<A>(round_away_clamp(xv * F(inverses[b])), codes_out + v * W);
        } else if constexpr (symmetric) {
          codes[v] = code_of(mul_rounded<A>(xv, F(inverses[b])) + F(8.5f), 15u);
        } else {
          codes[v] = code_of(mul_rounded<A>(xv - F(bases[b]), F(inverses[b])) + F(0.5f), Block::max_code);
        }
      }
      if constexpr (bits != 8) pack(codes, codes_out);
    }
    return status;
  }

  /// ref::decode_v_block / ref::decode_q4_0_block.
  template <class T>
  static errc decode(const std::byte* block, T* dst) {
    float scale, offset;
    if (!load_meta(block, scale, offset)) return errc::corrupt_data;
    const codes_t codes = unpack(block);
    KPC_UNROLL
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
      KPC_UNROLL
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
        KPC_UNROLL
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
    accumulate_heads<1>(w, rows, tokens, channels, out);
  }

  /// accumulate for a group (w [group][tokens], out [group][channels]): two heads at a time share
  /// each block's unpacked codes and scale.
  static void accumulate_group(const float* w, std::size_t group, const std::byte* rows, std::size_t tokens,
                               std::size_t channels, float* out) {
    for_head_pairs(group, [&](auto heads, std::size_t h) {
      accumulate_heads<decltype(heads)::value>(w + h * tokens, rows, tokens, channels, out + h * channels);
    });
  }

 private:
  template <int H>
  static void accumulate_heads(const float* w, const std::byte* rows, std::size_t tokens, std::size_t channels,
                               float* out) {
    constexpr std::size_t chunk = 64;
    const std::size_t blocks = channels / format::group_values;
    for (std::size_t first = 0; first < tokens; first += chunk) {
      const std::size_t last = std::min(tokens, first + chunk);
      for (std::size_t b = 0; b < blocks; ++b) {
        std::array<std::array<F, per_block>, H> sum;
        float offsets[H];
        KPC_UNROLL
        for (int h = 0; h < H; ++h) {
          KPC_UNROLL
          for (std::size_t v = 0; v < per_block; ++v)
            sum[h][v] = F::load_unaligned(out + h * channels + b * format::group_values + v * W);
          offsets[h] = 0.0f;
        }
        for (std::size_t t = first; t < last; ++t) {
          const std::byte* block = rows + (t * blocks + b) * Block::bytes;
          float scale, offset;
          load_meta(block, scale, offset);
          const codes_t codes = unpack(block);
          std::array<F, per_block> values;
          KPC_UNROLL
          for (std::size_t v = 0; v < per_block; ++v) values[v] = xsimd::to_float(codes[v]);
          KPC_UNROLL
          for (int h = 0; h < H; ++h) {
            const float wt = w[h * tokens + t];
            const F weighted_scale(wt * scale);
            KPC_UNROLL
            for (std::size_t v = 0; v < per_block; ++v) sum[h][v] = xsimd::fma(weighted_scale, values[v], sum[h][v]);
            offsets[h] += wt * offset;
          }
        }
        KPC_UNROLL
        for (int h = 0; h < H; ++h)
          KPC_UNROLL
          for (std::size_t v = 0; v < per_block; ++v)
            (sum[h][v] + F(offsets[h])).store_unaligned(out + h * channels + b * format::group_values + v * W);
      }
    }
  }

  /// A block's d (and m) as ggml computes them, stored in the block; `base` (min, or 0) and
  /// `inverse` (1/d, or 0) are what its codes need.
  template <class T>
  static errc encode_meta(const T* src, std::byte* block, float& base, float& inverse) {
    std::array<F, per_block> x;
    finite_probe<A> probe;
    KPC_UNROLL
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
      float min = reduce_min<A>(mn), max = reduce_max<A>(mx);
      if (min == 0.0f) min = first_zero(src);
      if (max == 0.0f) max = first_zero(src);
      const float d = detail::div_rounded(max - min, static_cast<float>(Block::max_code));
      base = min;
      inverse = d != 0.0f ? detail::div_rounded(1.0f, d) : 0.0f;
      const std::uint16_t d_h = float_to_half<A>(d);
      const std::uint16_t m_h = float_to_half<A>(min);
      detail::store_u16le(block + Block::offset_scale, d_h);
      detail::store_u16le(block + Block::offset_min, m_h);
      return ref::block_status(finite, fp16_bits_finite(d_h) && fp16_bits_finite(m_h));
    } else {
      F largest(0.0f);
      for (const F& xv : x) largest = running_max<A>(xsimd::abs(xv), largest);
      const float abs_max = reduce_max<A>(largest);
      float d;
      if constexpr (symmetric) {
        // The first value of largest magnitude, as ggml picks it (0 stays +0: ggml's initial max).
        float signed_max = 0.0f;
        if (abs_max != 0.0f) {
          std::uint32_t hits = 0;
          KPC_UNROLL
          for (std::size_t v = 0; v < per_block; ++v) hits |= to_mask<A>(xsimd::abs(x[v]) == F(abs_max)) << (v * W);
#if defined(__GNUC__) || defined(__clang__)
          const int first = __builtin_ctz(hits);  // hits != 0: abs_max is one of the lanes
#else
          int first = 0;
          while (((hits >> first) & 1u) == 0) ++first;
#endif
          signed_max = to_float(src[first]);
        }
        d = detail::div_rounded(signed_max, -8.0f);
      } else {
        d = detail::div_rounded(abs_max, 127.0f);
      }
      base = 0.0f;
      inverse = d != 0.0f ? detail::div_rounded(1.0f, d) : 0.0f;
      const std::uint16_t d_h = float_to_half<A>(d);
      detail::store_u16le(block + Block::offset_scale, d_h);
      return ref::block_status(finite, fp16_bits_finite(d_h));
    }
  }

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
    const std::uint16_t d = detail::load_u16le(block + Block::offset_scale);
    scale = half_to_float<A>(d);
    if constexpr (symmetric) {
      offset = -8.0f * scale;
      return fp16_bits_finite(d);
    } else if constexpr (has_min) {
      const std::uint16_t m = detail::load_u16le(block + Block::offset_min);
      offset = half_to_float<A>(m);
      return fp16_bits_finite(d) && fp16_bits_finite(m);
    } else {
      offset = 0.0f;
      return fp16_bits_finite(d);
    }
  }

  static void pack(const codes_t& codes, std::byte* out) {
    if constexpr (bits == 4) {  // byte j = code j | code j + 16 << 4
      KPC_UNROLL
      for (std::size_t i = 0; i < 16 / W; ++i) store_low_bytes<A>(codes[i] | (codes[16 / W + i] << 4), out + i * W);
    } else {
      pack3<A>(codes.data(), out);
    }
  }

  static codes_t unpack(const std::byte* block) {
    const std::byte* packed = block + Block::offset_codes;
    codes_t codes;
    if constexpr (bits == 8) {
      KPC_UNROLL
      for (std::size_t v = 0; v < per_block; ++v) codes[v] = widen_i8<A>(packed + v * W);
    } else if constexpr (bits == 4) {
      KPC_UNROLL
      for (std::size_t i = 0; i < 16 / W; ++i) {
        const I bytes = widen_u8<A>(packed + i * W);
        codes[i] = bytes & I(0xF);
        codes[16 / W + i] = bytes >> 4;
      }
    } else {
      unpack3<A>(packed, codes.data());
    }
    return codes;
  }
};

/// Plain binary16 rows (format::f16_block): conversions and f32 arithmetic, four accumulators per
/// dot product; two query heads share each converted row (ref::*_f16_block up to float rounding,
/// identical bytes for encode and decode).
template <class A>
struct block_kernels<A, format::f16_block> {
  using F = fbatch<A>;
  static constexpr std::size_t W = F::size;

  template <class T>
  static errc encode_row(const T* src, std::size_t channels, std::byte* row) {
    half* out = reinterpret_cast<half*>(row);  // half may alias the bytes; formats are little-endian
    finite_probe<A> input, output;
    for (std::size_t c = 0; c < channels; c += W) {
      const F x = load<A>(src + c);
      input.add(x);
      store<A>(x, out + c);
      output.add(load<A>(out + c));
    }
    if (!input.all_finite()) return errc::non_finite;
    return output.all_finite() ? errc::ok : errc::out_of_range;
  }

  template <class T>
  static errc decode(const std::byte* block, T* dst) {
    const half* values = reinterpret_cast<const half*>(block);
    finite_probe<A> probe;
    for (std::size_t v = 0; v < format::group_values; v += W) probe.add(load<A>(values + v));
    if (!probe.all_finite()) return errc::corrupt_data;
    for (std::size_t v = 0; v < format::group_values; v += W) store<A>(load<A>(values + v), dst + v);
    return errc::ok;
  }

  static void scores(const float* q, const std::byte* rows, std::size_t tokens, std::size_t channels, float* out) {
    for (std::size_t t = 0; t < tokens; ++t) out[t] = dot(q, reinterpret_cast<const half*>(rows) + t * channels, channels);
  }
  /// scores for a group: two heads at a time share each converted key row.
  static void scores_group(const float* q, std::size_t group, const std::byte* rows, std::size_t tokens,
                           std::size_t channels, float* out) {
    const half* keys = reinterpret_cast<const half*>(rows);
    std::size_t h = 0;
    for (; h + 2 <= group; h += 2) {
      const float *q0 = q + h * channels, *q1 = q0 + channels;
      for (std::size_t t = 0; t < tokens; ++t) {
        const half* k = keys + t * channels;
        F a0(0.0f), a1(0.0f), b0(0.0f), b1(0.0f);
        std::size_t c = 0;
        for (; c + 2 * W <= channels; c += 2 * W) {
          const F k0 = load<A>(k + c), k1 = load<A>(k + c + W);
          a0 = xsimd::fma(F::load_unaligned(q0 + c), k0, a0);
          a1 = xsimd::fma(F::load_unaligned(q0 + c + W), k1, a1);
          b0 = xsimd::fma(F::load_unaligned(q1 + c), k0, b0);
          b1 = xsimd::fma(F::load_unaligned(q1 + c + W), k1, b1);
        }
        for (; c < channels; c += W) {
          const F k0 = load<A>(k + c);
          a0 = xsimd::fma(F::load_unaligned(q0 + c), k0, a0);
          b0 = xsimd::fma(F::load_unaligned(q1 + c), k0, b0);
        }
        out[h * tokens + t] = reduce_add<A>(a0 + a1);
        out[(h + 1) * tokens + t] = reduce_add<A>(b0 + b1);
      }
    }
    if (h < group) scores(q + h * channels, rows, tokens, channels, out + h * tokens);
  }
  static void accumulate(const float* w, const std::byte* rows, std::size_t tokens, std::size_t channels, float* out) {
    accumulate_group(w, 1, rows, tokens, channels, out);
  }
  /// accumulate for a group: two heads at a time share each converted value row.
  static void accumulate_group(const float* w, std::size_t group, const std::byte* rows, std::size_t tokens,
                               std::size_t channels, float* out) {
    for_head_pairs(group, [&](auto heads, std::size_t h) {
      accumulate_heads<decltype(heads)::value>(w + h * tokens, rows, tokens, channels, out + h * channels);
    });
  }

 private:
  template <int H>
  static void accumulate_heads(const float* w, const std::byte* rows, std::size_t tokens, std::size_t channels,
                               float* out) {
    const half* values = reinterpret_cast<const half*>(rows);
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t c = 0; c < channels; c += W) {
        const F x = load<A>(values + t * channels + c);
        KPC_UNROLL
        for (int h = 0; h < H; ++h)
          xsimd::fma(F(w[h * tokens + t]), x, F::load_unaligned(out + h * channels + c)).store_unaligned(out + h * channels + c);
      }
  }
  static float dot(const float* q, const half* k, std::size_t channels) {
    F a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
    std::size_t c = 0;
    for (; c + 4 * W <= channels; c += 4 * W) {
      a0 = xsimd::fma(F::load_unaligned(q + c), load<A>(k + c), a0);
      a1 = xsimd::fma(F::load_unaligned(q + c + W), load<A>(k + c + W), a1);
      a2 = xsimd::fma(F::load_unaligned(q + c + 2 * W), load<A>(k + c + 2 * W), a2);
      a3 = xsimd::fma(F::load_unaligned(q + c + 3 * W), load<A>(k + c + 3 * W), a3);
    }
    for (; c < channels; c += W) a0 = xsimd::fma(F::load_unaligned(q + c), load<A>(k + c), a0);
    return reduce_add<A>((a0 + a1) + (a2 + a3));
  }
};

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_PER_TOKEN_HPP
