// SPDX-License-Identifier: MIT
// kpc::Quantizer<Bits, Layout>: encode, decode and fused kernels over [tokens][channels] slabs.
#ifndef KPC_QUANTIZER_HPP
#define KPC_QUANTIZER_HPP

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "config.hpp"
#include "error.hpp"
#include "format.hpp"
#include "half.hpp"
#include "backend.hpp"
#include "span.hpp"

KPC_BEGIN_NAMESPACE

namespace detail {

template <class T>
inline constexpr bool is_element = std::is_same_v<T, float> || std::is_same_v<T, half>;
template <class>
inline constexpr bool always_false = false;

/// The public operations of every format, written once over its descriptor (format.hpp): a slab
/// is a sequence of the format's units (K tiles of G tokens, or one token's row of V blocks).
/// Long forms put each buffer's extent right after it; short forms take contiguous rows and
/// trust the buffer sizes.
template <class Format>
class slab_quantizer {
 protected:
  static constexpr std::size_t units(std::size_t tokens) {
    return tokens / Format::unit_tokens + (tokens % Format::unit_tokens != 0);
  }
  /// f(ops) on the active backend's kernels of this format (backend/select.hpp).
  template <class F>
  static decltype(auto) run(F&& f) {
    return with_format_kernels<Format>(std::forward<F>(f));
  }
  static void report(slab_result result) {
    check_status(static_cast<errc>(result.status), Format::unit_name, result.token);
  }
  static std::size_t unit_bytes(std::size_t channels) {
    check_channels(channels, Format::channel_multiple);
    return Format::unit_bytes(channels);
  }

 public:
  using format = Format;  ///< the format's descriptor (kpc/format.hpp)

  /// Bytes for a [tokens][channels] slab.
  static std::size_t encoded_bytes(std::size_t tokens, std::size_t channels) {
    return checked_mul(units(tokens), unit_bytes(channels));
  }

  /// Sized forms, the documented ones: each span must hold what the shape needs (buffer_too_small
  /// otherwise, before anything is read or written). src / dst rows are contiguous.
  static void encode(span<const float> src, std::size_t tokens, std::size_t channels, span<std::byte> dst) {
    check_elements(src.data(), src.size(), tokens, channels, channels, "src");
    encode(src.data(), channels, tokens, channels, dst.data(), dst.size());
  }
  static void encode(span<const half> src, std::size_t tokens, std::size_t channels, span<std::byte> dst) {
    check_elements(src.data(), src.size(), tokens, channels, channels, "src");
    encode(src.data(), channels, tokens, channels, dst.data(), dst.size());
  }
  static void decode(span<const std::byte> src, std::size_t tokens, std::size_t channels, span<float> dst) {
    check_elements(dst.data(), dst.size(), tokens, channels, channels, "dst");
    decode(src.data(), src.size(), tokens, channels, dst.data(), channels);
  }
  static void decode(span<const std::byte> src, std::size_t tokens, std::size_t channels, span<half> dst) {
    check_elements(dst.data(), dst.size(), tokens, channels, channels, "dst");
    decode(src.data(), src.size(), tokens, channels, dst.data(), channels);
  }
  static void scores(span<const float> q, span<const std::byte> src, std::size_t tokens, std::size_t channels,
                     span<float> out) {
    check_elements(q.data(), q.size(), tokens != 0, channels, channels, "q");
    check_elements(out.data(), out.size(), tokens, 1, 1, "out");
    scores(q.data(), src.data(), src.size(), tokens, channels, out.data());
  }

  /// encode / decode returning the kernels' status (an errc and the failing unit's first token)
  /// instead of throwing; shapes and buffer sizes are the caller's to check (KVCache's own use).
  template <class T>
  static slab_result encode_status(const T* src, std::size_t src_stride, std::size_t tokens, std::size_t channels,
                                   std::byte* dst) {
    if (tokens == 0) return {0, 0};
    return run([&](auto ops) {
      if constexpr (std::is_same_v<T, float>) return ops.encode_f32(src, src_stride, tokens, channels, dst);
      else return ops.encode_f16(reinterpret_cast<const f16_bits*>(src), src_stride, tokens, channels, dst);
    });
  }
  template <class T>
  static slab_result decode_status(const std::byte* src, std::size_t tokens, std::size_t channels, T* dst,
                                   std::size_t dst_stride) {
    if (tokens == 0) return {0, 0};
    return run([&](auto ops) {
      if constexpr (std::is_same_v<T, float>) return ops.decode_f32(src, tokens, channels, dst, dst_stride);
      else return ops.decode_f16(src, tokens, channels, reinterpret_cast<f16_bits*>(dst), dst_stride);
    });
  }

  /// Encodes row-major src[tokens][channels] into encoded_bytes(tokens, channels) bytes at dst.
  template <class T>
  static void encode(const T* src, std::size_t tokens, std::size_t channels, std::byte* dst) {
    encode(src, channels, tokens, channels, dst, encoded_bytes(tokens, channels));
  }

  /// As above, with row t at src + t * src_stride, checking dst_bytes. Rejects NaN/Inf
  /// (errc::non_finite) and values the fp16 metadata cannot hold (errc::out_of_range).
  template <class T>
  static void encode(const T* src, std::size_t src_stride, std::size_t tokens, std::size_t channels, std::byte* dst,
                     std::size_t dst_bytes) {
    static_assert(is_element<T>, "kpc: elements are float or kpc::half");
    check_rows(src, tokens, channels, src_stride, sizeof(T), "src");
    check_bytes(dst, dst_bytes, encoded_bytes(tokens, channels), "dst");
    report(encode_status(src, src_stride, tokens, channels, dst));
  }

  /// Decodes a [tokens][channels] slab into row-major dst.
  template <class T>
  static void decode(const std::byte* src, std::size_t tokens, std::size_t channels, T* dst) {
    decode(src, encoded_bytes(tokens, channels), tokens, channels, dst, channels);
  }

  /// As above, checking src_bytes, with row t at dst + t * dst_stride. Rejects a unit (a K tile,
  /// a whole V row) whose fp16 fields are not finite (errc::corrupt_data) before writing any of
  /// its values; the units before it have been written.
  template <class T>
  static void decode(const std::byte* src, std::size_t src_bytes, std::size_t tokens, std::size_t channels, T* dst,
                     std::size_t dst_stride) {
    static_assert(is_element<T>, "kpc: elements are float or kpc::half");
    check_bytes(src, src_bytes, encoded_bytes(tokens, channels), "src");
    check_rows(dst, tokens, channels, dst_stride, sizeof(T), "dst");
    report(decode_status(src, tokens, channels, dst, dst_stride));
  }

  /// Fused scores: out[t] = sum_c q[c] * x[t][c] straight from the codes, t < tokens.
  static void scores(const float* q, const std::byte* src, std::size_t tokens, std::size_t channels, float* out) {
    scores(q, src, encoded_bytes(tokens, channels), tokens, channels, out);
  }

  static void scores(const float* q, const std::byte* src, std::size_t src_bytes, std::size_t tokens,
                     std::size_t channels, float* out) {
    check_bytes(src, src_bytes, encoded_bytes(tokens, channels), "src");
    check_rows(q, tokens != 0, channels, channels, sizeof(float), "q");
    check_rows(out, tokens, 1, 1, sizeof(float), "out");
    if (tokens != 0) run([&](auto ops) { ops.scores(q, src, tokens, channels, out); });
  }
  /// scores for a group of query heads that share the slab (GQA): q [group][channels] ->
  /// out [group][tokens], each row as scores() computes it up to float rounding, with each
  /// unit's codes unpacked once for several heads.
  static void scores_group(const float* q, std::size_t group, const std::byte* src, std::size_t src_bytes,
                           std::size_t tokens, std::size_t channels, float* out) {
    check_bytes(src, src_bytes, encoded_bytes(tokens, channels), "src");
    if (tokens == 0 || group == 0) return;
    check_rows(q, group, channels, channels, sizeof(float), "q");
    check_rows(out, group, tokens, tokens, sizeof(float), "out");
    run([&](auto ops) { ops.scores_group(q, group, src, tokens, channels, out); });
  }
  /// scores_group on the integer attention path (attention_arithmetic::integer; 4-bit K tiles
  /// only): q * scale' quantized to int8 per run of 16 channels, integer dot products with the
  /// codes; the error bound is in docs/FORMAT.md ("Integer attention path").
  static void scores_group_integer(const float* q, std::size_t group, const std::byte* src, std::size_t src_bytes,
                                std::size_t tokens, std::size_t channels, float* out) {
    static_assert(Format::integer_dot && !Format::per_token, "kpc: the integer path has scores for 4-bit K tiles only");
    check_bytes(src, src_bytes, encoded_bytes(tokens, channels), "src");
    if (tokens == 0 || group == 0) return;
    check_rows(q, group, channels, channels, sizeof(float), "q");
    check_rows(out, group, tokens, tokens, sizeof(float), "out");
    run([&](auto ops) { ops.scores_group_integer(q, group, src, tokens, channels, out); });
  }
};

/// Per-token formats: independent blocks of 32 channels; channels must be a multiple of 32.
template <class Format>
class row_quantizer : public slab_quantizer<Format> {
  using Block = typename Format::block;

 public:
  using block = Block;  ///< the 32-value block's layout (kpc/format.hpp)
  /// Bytes of one token's row: channels / 32 blocks.
  static std::size_t row_bytes(std::size_t channels) { return row_quantizer::unit_bytes(channels); }

  static constexpr double bits_per_value() { return Block::bits_per_value; }

  /// Fused weighted sum: out[c] += sum_t w[t] * x[t][c] straight from the blocks (sized form).
  static void accumulate(span<const float> w, span<const std::byte> src, std::size_t tokens, std::size_t channels,
                         span<float> out) {
    check_elements(w.data(), w.size(), tokens, 1, 1, "w");
    check_elements(out.data(), out.size(), tokens != 0, channels, channels, "out");
    accumulate(w.data(), src.data(), src.size(), tokens, channels, out.data());
  }
  static void accumulate(const float* w, const std::byte* src, std::size_t tokens, std::size_t channels, float* out) {
    accumulate(w, src, row_quantizer::encoded_bytes(tokens, channels), tokens, channels, out);
  }

  static void accumulate(const float* w, const std::byte* src, std::size_t src_bytes, std::size_t tokens,
                         std::size_t channels, float* out) {
    check_bytes(src, src_bytes, row_quantizer::encoded_bytes(tokens, channels), "src");
    check_rows(w, tokens, 1, 1, sizeof(float), "w");
    check_rows(out, tokens != 0, channels, channels, sizeof(float), "out");
    if (tokens != 0) row_quantizer::run([&](auto ops) { ops.accumulate(w, src, tokens, channels, out); });
  }
  /// accumulate for a group of query heads: w [group][tokens], out [group][channels] (+=).
  static void accumulate_group(const float* w, std::size_t group, const std::byte* src, std::size_t src_bytes,
                               std::size_t tokens, std::size_t channels, float* out) {
    check_bytes(src, src_bytes, row_quantizer::encoded_bytes(tokens, channels), "src");
    if (tokens == 0 || group == 0) return;
    check_rows(w, group, tokens, tokens, sizeof(float), "w");
    check_rows(out, group, channels, channels, sizeof(float), "out");
    row_quantizer::run([&](auto ops) { ops.accumulate_group(w, group, src, tokens, channels, out); });
  }
  /// accumulate_group on the integer attention path (attention_arithmetic::integer; V4 = q4_1
  /// rows only): w * d quantized to int16 per block and run of 64 tokens (counted from the
  /// first), integer dot products with the codes; the error bound is in docs/FORMAT.md.
  static void accumulate_group_integer(const float* w, std::size_t group, const std::byte* src, std::size_t src_bytes,
                                    std::size_t tokens, std::size_t channels, float* out) {
    static_assert(Format::integer_dot, "kpc: the integer path accumulates V4 (q4_1) rows only");
    check_bytes(src, src_bytes, row_quantizer::encoded_bytes(tokens, channels), "src");
    if (tokens == 0 || group == 0) return;
    check_rows(w, group, tokens, tokens, sizeof(float), "w");
    check_rows(out, group, channels, channels, sizeof(float), "out");
    row_quantizer::run([&](auto ops) { ops.accumulate_group_integer(w, group, src, tokens, channels, out); });
  }
};

}  // namespace detail

/// A quantizer for one format. Supported: Quantizer<4|3|2, PerChannel<32|64|128>> (K, per channel),
/// Quantizer<8|4|3, PerToken<32>> (V, per token), Quantizer<4, PerTokenSymmetric<32>> (q4_0) and
/// Quantizer<16, PerToken<32>> (f16_rows: plain binary16).
/// All members are static and thread-safe. Element type T is float or kpc::half. Errors throw
/// kpc::error (see error.hpp); on an error, parts of dst may have been written, never more than
/// the shape needs. Source and destination must not overlap. The fused kernels (scores,
/// accumulate) check shapes and sizes but trust the encoded bytes: bytes no encoder wrote give
/// unspecified (possibly non-finite) results, never an out-of-bounds access.
template <int Bits, class Layout>
class Quantizer {
  static_assert(detail::always_false<Layout>,
                "kpc::Quantizer<Bits, Layout>: Layout must be PerChannel<G>, PerToken<B> or PerTokenSymmetric<B>");
};

/// K per channel: tiles of G tokens x all channels; any channel count 1..format::max_channels.
/// The last tile may be partial: its statistics come from the tokens present, and it occupies a
/// whole tile's bytes (absent tokens' codes are 0), so a growing cache never moves a tile.
template <int Bits, int G>
class Quantizer<Bits, PerChannel<G>> : public detail::slab_quantizer<typename format::of<Bits, PerChannel<G>>::type> {
  static_assert(sizeof(PerChannel<G>) != 0);  // instantiates the tag, whose static_assert checks G

 public:
  using layout = PerChannel<G>;
  static constexpr int bits = Bits;
  static constexpr int tile_tokens = G;

  /// Bytes of one tile of `channels` channels: 6 + 2 * channels + G * channels * Bits / 8.
  static std::size_t tile_bytes(std::size_t channels) { return Quantizer::unit_bytes(channels); }

  /// Stored bits per value of full tiles.
  static double bits_per_value(std::size_t channels) {
    return static_cast<double>(tile_bytes(channels)) * 8.0 / (static_cast<double>(G) * static_cast<double>(channels));
  }
};

/// V per token (Bits 4: ggml q4_1 bytes; 8: ggml q8_0 bytes; 3: 4.0 bits/value; 16: binary16).
template <int Bits, int B>
class Quantizer<Bits, PerToken<B>> : public detail::row_quantizer<typename format::of<Bits, PerToken<B>>::type> {
  static_assert(sizeof(PerToken<B>) != 0);  // instantiates the tag, whose static_assert checks B

 public:
  using layout = PerToken<B>;
  static constexpr int bits = Bits;
};

/// The q4_0 baseline (ggml bytes): the per-token symmetric format engines use today.
template <int Bits, int B>
class Quantizer<Bits, PerTokenSymmetric<B>> : public detail::row_quantizer<typename format::of<Bits, PerTokenSymmetric<B>>::type> {
  static_assert(sizeof(PerTokenSymmetric<B>) != 0);  // instantiates the tag, whose static_assert checks B

 public:
  using layout = PerTokenSymmetric<B>;
  static constexpr int bits = Bits;
};

/// ggml's names for the per-token formats kpc writes byte for byte.
using q4_0 = Quantizer<4, PerTokenSymmetric<32>>;
using q4_1 = Quantizer<4, PerToken<32>>;
using q8_0 = Quantizer<8, PerToken<32>>;
/// Plain binary16 rows (ggml f16, an engine's unquantized cache) with the same operations: encode
/// rounds to nearest even (out_of_range beyond +-65504, non_finite for NaN/Inf), and decode,
/// scores, accumulate and decode_attention read the rows as they are.
using f16_rows = Quantizer<16, PerToken<32>>;

KPC_END_NAMESPACE

#endif  // KPC_QUANTIZER_HPP
