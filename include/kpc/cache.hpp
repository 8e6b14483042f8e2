// SPDX-License-Identifier: MIT
// kpc::KVCache: one layer's streaming K/V cache for one sequence, in kpc formats. Appends tokens,
// rolls back, shifts RoPE positions, forks ranges, runs fused decode attention and saves/restores
// itself in a versioned, checksummed container (docs/FORMAT.md, "Cache container").
#ifndef KPC_CACHE_HPP
#define KPC_CACHE_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>
#include <vector>

#include "attention.hpp"
#include "config.hpp"
#include "error.hpp"
#include "detail/crc32.hpp"
#include "format.hpp"
#include "half.hpp"
#include "quantizer.hpp"
#include "ref/per_token.hpp"
#include "rope.hpp"
#include "rotation.hpp"
#include "span.hpp"

KPC_BEGIN_NAMESPACE

/// What a KVCache keeps besides the codes, and how it quantizes keys and values. A value-
/// initialized cache_options{} is the plain cache (exactly what the formats write, as in kpc 0.1);
/// KVCache's default is recommended(). Each option costs the memory memory_bytes() counts.
struct cache_options {
  /// The first sink_tokens tokens (0..16, below the tile size G) are kept as f32 keys and values
  /// and attended from those; they take no part in the first tile's per-channel statistics
  /// (attention sinks: a first token's outlier channels would stretch every range of tile 0).
  std::size_t sink_tokens = 0;
  /// 0: attention reads every other token from its codes. n >= 1: the last n tiles of the tile
  /// grid (the open tile and the n - 1 before it; n * G tokens when the last tile is full) are
  /// attended from their f32 keys and values, which the cache holds (KIVI's full-precision
  /// residual). At most 64.
  std::size_t recent_tiles = 0;
  /// Keys are quantized as k - mu, mu per head and channel the mean of the first tile's keys (the
  /// sinks excluded); attention adds q . mu back, exactly. While the first tile is open, mu follows
  /// its tokens; once sealed, it is fixed. Removes large constant channels (Qwen2's K bias).
  bool center_keys = false;
  /// Keys are quantized after a Walsh-Hadamard rotation per token (kpc/rotation.hpp, blocks of
  /// hadamard_block(head_dim)); queries are rotated once per call. An experiment: per-channel
  /// quantization loses the channels' identity under rotation.
  bool rotate_keys = false;
  /// Values are quantized after the same rotation; attention rotates its output back once.
  bool rotate_values = false;

  /// What a KVCache gets when given no options: 4 sinks, centered keys, rotated values. They cost
  /// about 1 % of the cache's memory and take a third off the KL divergence of K4/V4 on a real
  /// model, and centering makes Qwen2-style key offsets harmless (docs/results/eval.json). The
  /// recent window, which helps most, also holds f32 values: opt in with recent_tiles.
  /// cache_options{} is the plain cache: codes exactly as the formats write them.
  static constexpr cache_options recommended() {
    cache_options o;
    o.sink_tokens = 4;
    o.center_keys = true;
    o.rotate_values = true;
    return o;
  }

  friend bool operator==(const cache_options& a, const cache_options& b) {
    return a.sink_tokens == b.sink_tokens && a.recent_tiles == b.recent_tiles && a.center_keys == b.center_keys &&
           a.rotate_keys == b.rotate_keys && a.rotate_values == b.rotate_values;
  }
  friend bool operator!=(const cache_options& a, const cache_options& b) { return !(a == b); }
};

namespace detail {

/// Little-endian fields of the container, written byte by byte (host byte order does not matter).
inline void put_le(std::byte* dst, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) dst[i] = static_cast<std::byte>((value >> (8 * i)) & 0xFFu);
}
inline std::uint64_t get_le(const std::byte* src, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<std::uint64_t>(src[i]) << (8 * i);
  return value;
}

/// The cache container, version 2 (docs/FORMAT.md): a 64-byte header (formats, shape, options),
/// then per KV head the K tiles, the V rows, the held K (and, with a recent window, V) values,
/// the sink tokens' K and V values and the centering vector, all f32.
struct cache_container {
  static constexpr unsigned char magic[8] = {'K', 'P', 'C', 'C', 'A', 'C', 'H', 'E'};
  static constexpr std::uint16_t version = 2;
  static constexpr std::size_t header_bytes = 64;
  // Header offsets.
  static constexpr std::size_t at_version = 8, at_format_version = 10, at_k_bits = 12, at_k_layout = 13,
                               at_k_group = 14, at_v_bits = 16, at_v_layout = 17, at_v_block = 18,
                               at_kv_heads = 20, at_head_dim = 24, at_sink_tokens = 28, at_flags = 29,
                               at_recent_tiles = 30, at_tokens = 32, at_originals_from = 40, at_payload_bytes = 48,
                               at_reserved = 56, at_crc = 60;
  static constexpr unsigned flag_center_keys = 1, flag_rotate_keys = 2, flag_rotate_values = 4;
};

inline float dot(const float* a, const float* b, std::size_t n) {
  float sum = 0.0f;
  for (std::size_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace detail

/// One layer's K/V cache for one sequence: kv_heads heads of head_dim channels, up to capacity
/// tokens, all allocated by the constructor (memory_bytes() says how much, before allocating).
///
/// K is kept per channel (KFormat = Quantizer<Bits, PerChannel<G>>) in tiles of G tokens per KV
/// head; V per token (VFormat = Quantizer<8|4|3, PerToken<32>> or kpc::q4_0) in rows per KV head.
/// Each head's K tiles and V rows are contiguous, so attention for one KV head reads two
/// contiguous slabs (k_data/v_data give them to engines with kernels of their own; with
/// cache_options they hold the codes of centered or rotated keys and values, see there).
///
/// Streaming: the open tile (the last, partial one) is re-encoded on every append from the values
/// the cache holds for its tokens, so attention always reads codes (or, with a recent window,
/// those held values) and errors never compound; appending in any chunking gives the bytes of
/// encoding all tokens at once. The cache holds the f32 keys (and, with a recent window, values)
/// of tokens originals_from() .. size(): after appends, the open tile and the tile before it (or
/// recent_tiles + 1 tiles when that is more), so rolling back up to G tokens is exact; older tiles
/// keep only their codes. A truncate cannot bring back values the cache no longer has: it leaves
/// originals_from() where it was (or lowers it to the tile it reopens), so after rolling back,
/// only a later rollback to originals_from() or beyond is exact, until appends refill the held
/// tiles. originals_from() always says how far exact rollback reaches.
///
/// Exactness: after truncate(n) the bytes equal those of a cache that only ever got the first n
/// tokens when n >= originals_from() or n % G == 0 (and, with center_keys, n >= G). Otherwise the
/// tile that reopens takes its decoded values as its held values (one more rounding: |error| <=
/// scale/2 + scale'/2). The same holds for shift_positions on tiles before originals_from() and
/// copy_range from a start that is not a multiple of G. V rows are exact in every case.
///
/// Memory: one allocation of memory_bytes() by the constructor; append, truncate, clear and attend
/// allocate nothing more (the SIMD kernels' per-thread scratch aside: up to 2 x channels floats,
/// made once per thread; with rotate_keys or rotate_values, attend keeps a per-thread buffer of
/// 2 x group x head_dim floats); copy_range, shift_positions, save and restore use temporary buffers.
///
/// Errors throw kpc::error (see error.hpp). Every operation that changes the cache (append,
/// truncate, shift_positions, restore) changes nothing when it throws: it prepares its result in
/// scratch space and commits only once nothing can fail. Not thread-safe for writes; const
/// members may run concurrently.
template <class KFormat, class VFormat>
class KVCache {
  using k_desc = typename KFormat::format;  // the formats' descriptors (format.hpp)
  using v_desc = typename VFormat::format;
  static_assert(!k_desc::per_token, "kpc::KVCache: K must use a PerChannel<G> layout");
  static_assert(v_desc::per_token, "kpc::KVCache: V must use a per-token layout (PerToken<32> or PerTokenSymmetric<32>)");
  using container = detail::cache_container;
  using v_block = typename VFormat::block;

 public:
  using k_format = KFormat;
  using v_format = VFormat;
  static constexpr std::size_t tile_tokens = KFormat::tile_tokens;

  /// Errors: invalid_shape (kv_heads or head_dim 0, head_dim not a multiple of 32, kv_heads *
  /// head_dim > format::max_channels, sizes beyond any buffer, options out of their ranges).
  KVCache(std::size_t kv_heads, std::size_t head_dim, std::size_t capacity,
          const cache_options& options = cache_options::recommended())
      : plan_(make_plan(kv_heads, head_dim, capacity, options)), storage_(plan_.total) {}

  std::size_t kv_heads() const noexcept { return plan_.kv_heads; }
  std::size_t head_dim() const noexcept { return plan_.head_dim; }
  std::size_t capacity() const noexcept { return plan_.capacity; }
  const cache_options& options() const noexcept { return plan_.options; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// First token whose f32 values the cache holds (a multiple of G; see the class comment).
  std::size_t originals_from() const noexcept { return originals_from_; }
  /// First token attention reads from held f32 values rather than codes (size() without a recent
  /// window); tokens before sinks() are the sinks.
  std::size_t recent_from() const noexcept { return recent_from(size_); }
  std::size_t sinks() const noexcept { return std::min(plan_.options.sink_tokens, size_); }

  // ---- memory -----------------------------------------------------------------------------

  /// Bytes the constructor allocates for this configuration: K tiles for capacity tokens rounded
  /// up to whole tiles, V rows, the held values (f32 keys, and values with a recent window, of
  /// max(2, recent_tiles + 1) tiles), the sinks' keys and values, the centering vector, one
  /// scratch tile per KV head and, with any option, a tile of f32 work space; each region starts
  /// on a 64-byte boundary.
  static std::size_t memory_bytes(std::size_t kv_heads, std::size_t head_dim, std::size_t capacity,
                                  const cache_options& options = cache_options::recommended()) {
    return make_plan(kv_heads, head_dim, capacity, options).total;
  }
  /// Bytes this cache holds allocated (equal to memory_bytes of its configuration).
  std::size_t allocated_bytes() const noexcept { return storage_.capacity(); }
  /// Stored bytes per token in full tiles: kv_heads * (K tile bytes / G + V row bytes).
  static double bytes_per_token(std::size_t kv_heads, std::size_t head_dim) {
    const plan p = make_plan(kv_heads, head_dim, 0, {});
    return static_cast<double>(kv_heads) *
           (static_cast<double>(p.tile_bytes) / static_cast<double>(tile_tokens) + static_cast<double>(p.row_bytes));
  }

  // ---- streaming --------------------------------------------------------------------------

  /// Appends `tokens` tokens; k and v hold [tokens][kv_heads][head_dim] (float or kpc::half) and
  /// must hold at least that many elements (the sized forms check it: buffer_too_small).
  void append(span<const float> k, span<const float> v, std::size_t tokens) { append_checked(k, kv_width(), v, kv_width(), tokens); }
  void append(span<const half> k, span<const half> v, std::size_t tokens) { append_checked(k, kv_width(), v, kv_width(), tokens); }
  /// As above, token t's heads at k + t * k_stride (and v + t * v_stride), head h at + h * head_dim.
  void append(span<const float> k, std::size_t k_stride, span<const float> v, std::size_t v_stride, std::size_t tokens) {
    append_checked(k, k_stride, v, v_stride, tokens);
  }
  void append(span<const half> k, std::size_t k_stride, span<const half> v, std::size_t v_stride, std::size_t tokens) {
    append_checked(k, k_stride, v, v_stride, tokens);
  }
  /// Unsized forms: the caller vouches for the buffers' sizes.
  template <class T>
  void append(const T* k, const T* v, std::size_t tokens) {
    append(k, kv_width(), v, kv_width(), tokens);
  }
  /// Errors: buffer_too_small (past capacity, or a span shorter than the rows), invalid_shape
  /// (stride < kv_heads * head_dim), null_pointer, non_finite (NaN or Inf: the head, cache
  /// position and channel are named), out_of_range (values the formats' fp16 scale/minimum cannot
  /// hold). Nothing changes on error.
  template <class T>
  void append(const T* k, std::size_t k_stride, const T* v, std::size_t v_stride, std::size_t tokens) {
    append_tokens(k, k_stride, v, v_stride, tokens, nullptr, 0);
  }

  /// Keeps the first n tokens (speculative-decoding rollback). Exact for n >= originals_from()
  /// or n % G == 0; see the class comment for the rest. Below originals_from() it uses a
  /// temporary buffer for the tile that reopens. Errors: out_of_range (n > size(); a reopened
  /// tile whose decoded values the format cannot hold again); nothing changes on error.
  void truncate(std::size_t n) {
    if (n > size_) detail::raisef(errc::out_of_range, "KVCache::truncate: %zu > size %zu", n, size_);
    if (n == size_) return;
    const std::size_t G = tile_tokens, tile_index = n / G, kept = n % G, dim = head_dim(), heads = kv_heads();
    if (kept != 0) {
      // Phase 1, into scratch space: the reopened tile's keys (held, or decoded below the held
      // values), its centering vector while it is tile 0, and its codes.
      const bool reopen = n < originals_from_;
      std::vector<float> decoded(reopen ? heads * G * dim * (holds_values() ? 2 : 1) : 0);
      for (std::size_t h = 0; h < heads; ++h) {
        float* keys = reopen ? decoded.data() + h * G * dim : held_k(h, tile_index);
        if (reopen) {
          require_decoded(decoded_k_tile(h, tile_index, keys), "truncate", h, tile_index * G, "keys");
          if (holds_values())
            require_decoded(decoded_v_rows(h, tile_index * G, tokens_in_tile(tile_index), decoded.data() + (heads + h) * G * dim),
                            "truncate", h, tile_index * G, "values");
        }
        const float* mu = mu_of_or_null(h);
        if (plan_.options.center_keys && tile_index == 0) {
          live_mean(keys, n, mu_work(h));
          mu = mu_work(h);
        }
        require(encode_k_tile(tile_index, keys, dim, kept, mu, scratch(h)), "truncate", h, tile_index * G, "keys");
      }
      // Phase 2, which cannot fail.
      for (std::size_t h = 0; h < heads; ++h) {
        std::memcpy(tile(h, tile_index), scratch(h), plan_.tile_bytes);
        if (reopen) {
          std::memcpy(held_k(h, tile_index), decoded.data() + h * G * dim, G * dim * sizeof(float));
          if (holds_values())
            std::memcpy(held_v(h, tile_index), decoded.data() + (heads + h) * G * dim, G * dim * sizeof(float));
        }
        if (plan_.options.center_keys && tile_index == 0) std::memcpy(mu_of(h), mu_work(h), dim * sizeof(float));
      }
      originals_from_ = std::min(originals_from_, tile_index * G);
    } else {
      originals_from_ = std::min(originals_from_, n);
      if (n == 0) reset_mu();
    }
    size_ = n;
  }

  /// Forgets every token (the allocation stays).
  void clear() noexcept {
    size_ = originals_from_ = 0;
    reset_mu();
  }

  /// Rotates the keys of tokens [first, size()) by `delta` RoPE positions (decode, rotate,
  /// encode; held values and sinks are rotated directly). Every tile that holds such a token is
  /// re-encoded; the new tiles and values are prepared in temporary buffers first. Errors:
  /// out_of_range (first > size(), bad rope parameters, rotated keys the format cannot hold),
  /// invalid_shape (rotary_dims); nothing changes on error.
  void shift_positions(std::size_t first, double delta, const rope_config& rope) {
    if (first > size_) detail::raisef(errc::out_of_range, "KVCache::shift_positions: first %zu > size %zu", first, size_);
    float probe[2] = {0.0f, 0.0f};  // validates the parameters before any tile changes
    rope_shift(probe, 0, head_dim(), head_dim(), delta, rope);
    if (first == size_) return;
    const std::size_t G = tile_tokens, dim = head_dim(), S = sinks(), heads = kv_heads();
    const std::size_t first_tile = first / G, tiles = (size_ + G - 1) / G - first_tile;
    const bool live_mu = plan_.options.center_keys && size_ < G;
    // Phase 1: every touched tile's keys (held, or decoded), rotated, re-encoded, into buffers.
    std::vector<float> values(heads * tiles * G * dim), sinks_out(heads * S * dim), mu_out(live_mu ? heads * dim : 0);
    std::vector<std::byte> tiles_out(heads * tiles * plan_.tile_bytes);
    for (std::size_t h = 0; h < heads; ++h) {
      float* sink_rows = sinks_out.data() + h * S * dim;
      std::copy(sink_k(h), sink_k(h) + S * dim, sink_rows);
      if (first < S) rope_shift(sink_rows + first * dim, S - first, dim, dim, delta, rope);
      for (std::size_t i = 0; i < tiles; ++i) {
        const std::size_t j = first_tile + i, count = tokens_in_tile(j), skip = std::max(first, j * G) - j * G;
        float* keys = values.data() + (h * tiles + i) * G * dim;
        if (j * G >= originals_from_) std::copy(held_k(h, j), held_k(h, j) + count * dim, keys);
        else require_decoded(decoded_k_tile(h, j, keys), "shift_positions", h, j * G, "keys");
        rope_shift(keys + skip * dim, count - skip, dim, dim, delta, rope);
        const float* mu = mu_of_or_null(h);
        if (live_mu && j == 0) {
          live_mean(keys, size_, mu_out.data() + h * dim);
          mu = mu_out.data() + h * dim;
        }
        require(encode_k_tile(j, keys, dim, count, mu, tiles_out.data() + (h * tiles + i) * plan_.tile_bytes),
                "shift_positions", h, j * G, "shifted keys");
      }
    }
    // Phase 2, which cannot fail.
    for (std::size_t h = 0; h < heads; ++h) {
      std::copy(sinks_out.data() + h * S * dim, sinks_out.data() + (h + 1) * S * dim, sink_k(h));
      if (live_mu) std::copy(mu_out.data() + h * dim, mu_out.data() + (h + 1) * dim, mu_of(h));
      for (std::size_t i = 0; i < tiles; ++i) {
        const std::size_t j = first_tile + i;
        std::memcpy(tile(h, j), tiles_out.data() + (h * tiles + i) * plan_.tile_bytes, plan_.tile_bytes);
        if (j * G >= originals_from_) {
          const float* keys = values.data() + (h * tiles + i) * G * dim;
          std::copy(keys, keys + tokens_in_tile(j) * dim, held_k(h, j));
        }
      }
    }
  }

  /// A new cache (capacity: `capacity`, or this cache's when 0; the same options) holding tokens
  /// [first, last): a fork of a prefix (first = 0) or of any range. V rows are copied byte for
  /// byte; so are K tiles when first % G == 0 (and first = 0 with sinks), except the new open
  /// tile, which is re-encoded from the held or decoded values of its tokens; from any other start
  /// the range's keys (held, or decoded) are encoded anew, as an append of them would. Errors:
  /// out_of_range (bad range, or keys re-encoded from a damaged image the encoder cannot hold),
  /// buffer_too_small (capacity < range).
  KVCache copy_range(std::size_t first, std::size_t last, std::size_t capacity = 0) const {
    if (first > last || last > size_)
      detail::raisef(errc::out_of_range, "KVCache::copy_range: [%zu, %zu) is not within [0, %zu)", first, last, size_);
    const std::size_t n = last - first, G = tile_tokens, dim = head_dim();
    if (capacity == 0) capacity = this->capacity();
    if (capacity < n) detail::raisef(errc::buffer_too_small, "KVCache::copy_range: capacity %zu < %zu tokens", capacity, n);
    KVCache out(kv_heads(), dim, capacity, plan_.options);
    if (first % G != 0 || (first != 0 && plan_.options.sink_tokens != 0)) {
      std::vector<float> k_rows(n * kv_width()), v_rows(n * kv_width());
      for (std::size_t h = 0; h < kv_heads(); ++h) {
        read_values(h, first, n, k_rows.data() + h * dim, kv_width(), true, true);
        read_values(h, first, n, v_rows.data() + h * dim, kv_width(), false, true);
      }
      out.append_tokens(k_rows.data(), kv_width(), v_rows.data(), kv_width(), n, this, first);  // a V row depends on its token alone
      return out;
    }
    const std::size_t copied_tiles = n / G;
    const std::size_t window = out.held_window(n);
    std::vector<float> values(G * dim);
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      if (n != 0) std::memcpy(out.row(h, 0), row(h, first), n * plan_.row_bytes);
      if (copied_tiles != 0) std::memcpy(out.tile(h, 0), tile(h, first / G), copied_tiles * plan_.tile_bytes);
      if (plan_.options.sink_tokens != 0) {  // first == 0: the same sinks
        std::memcpy(out.sink_k(h), sink_k(h), std::min(n, sinks()) * dim * sizeof(float));
        std::memcpy(out.sink_v(h), sink_v(h), std::min(n, sinks()) * dim * sizeof(float));
      }
      if (plan_.options.center_keys) std::memcpy(out.mu_of(h), mu_of(h), dim * sizeof(float));
      for (std::size_t j = window; j * G < n; ++j) {
        const std::size_t count = std::min(G, n - j * G);
        read_values(h, first + j * G, count, out.held_k(h, j), dim, true, true);
        if (holds_values()) read_values(h, first + j * G, count, out.held_v(h, j), dim, false, true);
      }
      if (n % G != 0) {  // the open tile, from its held values
        const std::size_t j = n / G;
        if (plan_.options.center_keys && j == 0) out.live_mean(out.held_k(h, 0), n, out.mu_of(h));
        require(out.encode_k_tile(j, out.held_k(h, j), dim, n - j * G, out.mu_of_or_null(h), out.tile(h, j)),
                "copy_range", h, first + j * G, "keys");
      }
    }
    out.size_ = n;
    out.originals_from_ = window * G;
    return out;
  }

  // ---- reading ----------------------------------------------------------------------------

  /// Head h's K tiles (k_bytes(h) bytes: KFormat::encoded_bytes(size(), head_dim())) and V rows.
  const std::byte* k_data(std::size_t h) const { return tile(checked_head(h), 0); }
  std::size_t k_bytes() const { return KFormat::encoded_bytes(size_, head_dim()); }
  const std::byte* v_data(std::size_t h) const { return row(checked_head(h), 0); }
  std::size_t v_bytes() const { return VFormat::encoded_bytes(size_, head_dim()); }
  /// The centering vector of head h (head_dim floats; zeros without center_keys).
  void centering(std::size_t h, float* dst) const {
    checked_head(h);
    for (std::size_t c = 0; c < head_dim(); ++c) dst[c] = plan_.options.center_keys ? mu_of(h)[c] : 0.0f;
  }

  /// The keys (or values) of tokens [first, first + count) of head h as attention uses them, into
  /// dst[count][head_dim] (row t at dst + t * dst_stride): the sinks' and the recent window's
  /// held values, the other tokens' codes decoded (rotated back, centering added back).
  /// Sized forms: dst must hold count * head_dim elements.
  void decode_k(std::size_t h, std::size_t first, std::size_t count, span<float> dst) const { decode_checked(h, first, count, dst, true); }
  void decode_k(std::size_t h, std::size_t first, std::size_t count, span<half> dst) const { decode_checked(h, first, count, dst, true); }
  void decode_v(std::size_t h, std::size_t first, std::size_t count, span<float> dst) const { decode_checked(h, first, count, dst, false); }
  void decode_v(std::size_t h, std::size_t first, std::size_t count, span<half> dst) const { decode_checked(h, first, count, dst, false); }
  template <class T>
  void decode_k(std::size_t h, std::size_t first, std::size_t count, T* dst) const {
    decode_k(h, first, count, dst, head_dim());
  }
  template <class T>
  void decode_k(std::size_t h, std::size_t first, std::size_t count, T* dst, std::size_t dst_stride) const {
    check_range(first, count, "decode_k");
    checked_head(h);
    read_values(h, first, count, dst, dst_stride, true, false);
  }
  template <class T>
  void decode_v(std::size_t h, std::size_t first, std::size_t count, T* dst) const {
    decode_v(h, first, count, dst, head_dim());
  }
  template <class T>
  void decode_v(std::size_t h, std::size_t first, std::size_t count, T* dst, std::size_t dst_stride) const {
    check_range(first, count, "decode_v");
    checked_head(h);
    read_values(h, first, count, dst, dst_stride, false, false);
  }

  /// decode_attention (attention.hpp) of a group of query heads, q [group][head_dim] -> out
  /// [group][head_dim], over KV head h's tokens. With options: the sinks and the recent window
  /// from their held values, the rest from the codes (plus q . mu with center_keys), one online
  /// softmax. out may be q (in place). Sized form: q and out must hold group * head_dim floats.
  void attend(std::size_t h, span<const float> q, std::size_t group, const attention_params& params,
              span<float> out) const {
    check_query(q.data(), q.size(), out.data(), out.size(), group);
    attend_prefix(h, size_, q.data(), group, params, out.data());
  }
  void attend(std::size_t h, const float* q, std::size_t group, const attention_params& params, float* out) const {
    attend_prefix(h, size_, q, group, params, out);
  }
  /// attend over the first `tokens` tokens only (a causal prefix; out_of_range past size()).
  void attend_prefix(std::size_t h, std::size_t tokens, span<const float> q, std::size_t group,
                     const attention_params& params, span<float> out) const {
    check_query(q.data(), q.size(), out.data(), out.size(), group);
    attend_prefix(h, tokens, q.data(), group, params, out.data());
  }
  /// Every KV head of the layer at once, as an engine's attention step does: q holds q_heads
  /// query heads of head_dim (f32 or kpc::half; q_heads a multiple of kv_heads, query heads
  /// h * group .. h * group + group - 1 sharing KV head h, group = q_heads / kv_heads), out the
  /// same shape; params.sinks, when given, has q_heads logits. out may be q.
  void attend_all(span<const float> q, std::size_t q_heads, const attention_params& params, span<float> out) const {
    attend_all_of(q, q_heads, params, out);
  }
  void attend_all(span<const half> q, std::size_t q_heads, const attention_params& params, span<half> out) const {
    attend_all_of(q, q_heads, params, out);
  }
  /// attend_all with the KV heads spread over the caller's parallel-for: parallel_for(n, task)
  /// calls task(i) once for each i < n, on any threads, and returns when all have run (kpc creates
  /// no thread). An error in a head is thrown here, after all ran.
  template <class ParallelFor>
  void attend_all(span<const float> q, std::size_t q_heads, const attention_params& params, span<float> out,
                  ParallelFor&& parallel_for) const {
    attend_all_of(q, q_heads, params, out, parallel_for);
  }
  template <class ParallelFor>
  void attend_all(span<const half> q, std::size_t q_heads, const attention_params& params, span<half> out,
                  ParallelFor&& parallel_for) const {
    attend_all_of(q, q_heads, params, out, parallel_for);
  }
  void attend_prefix(std::size_t h, std::size_t tokens, const float* q, std::size_t group,
                     const attention_params& params, float* out) const {
    check_range(0, tokens, "attend");
    checked_head(h);
    const cache_options& o = plan_.options;
    if (o == cache_options{}) {
      decode_attention<KFormat, VFormat>(q, group, k_data(h), k_bytes(), v_data(h), v_bytes(), tokens, head_dim(),
                                         params, out);
      return;
    }
    const float scale = detail::checked_scale(q, group, head_dim(), params, out);
    q = detail::readable_queries(q, out, group * head_dim(), 2 * group * head_dim());  // out may be q
    const std::size_t dim = head_dim(), sinks_seen = std::min(sinks(), tokens);
    const std::size_t coded_end = std::max(sinks_seen, std::min(recent_from(), tokens));
    const std::size_t block = hadamard_block(dim);
    float* scratch = o.rotate_keys || o.rotate_values ? detail::thread_floats(2 * group * dim) : nullptr;
    float* rotated_q = o.rotate_keys ? scratch : nullptr;
    float* rotated_out = o.rotate_values ? scratch + group * dim : nullptr;
    if (rotated_q != nullptr) {
      std::memcpy(rotated_q, q, group * dim * sizeof(float));
      hadamard_rotate(rotated_q, group * dim, block);
    }
    std::fill(out, out + group * dim, 0.0f);
    if (rotated_out != nullptr) std::fill(rotated_out, rotated_out + group * dim, 0.0f);
    constexpr std::size_t chunk = detail::attention_chunk;
    for (std::size_t first_head = 0; first_head < group; first_head += detail::attention_heads_per_pass) {
      const std::size_t heads = std::min(detail::attention_heads_per_pass, group - first_head);
      const float* queries = q + first_head * dim;
      float* outputs = out + first_head * dim;
      float* rotated_outputs = rotated_out != nullptr ? rotated_out + first_head * dim : nullptr;
      detail::softmax_pass pass(heads, dim, params, scale, first_head, outputs, rotated_outputs);
      // The sinks, then the codes (tiles from token 0, the sinks' positions skipped), then the
      // recent window: keys and values in f32 for the first and last.
      attend_held(pass, queries, heads, sink_k(h), sink_v(h), 0, sinks_seen, outputs);
      float mu_dot[detail::attention_heads_per_pass] = {};
      if (o.center_keys)
        for (std::size_t g = 0; g < heads; ++g) mu_dot[g] = detail::dot(queries + g * dim, mu_of(h), dim);
      const float* key_queries = rotated_q != nullptr ? rotated_q + first_head * dim : queries;
      float* value_outputs = rotated_outputs != nullptr ? rotated_outputs : outputs;
      for (std::size_t t0 = 0; sinks_seen < coded_end && t0 < coded_end; t0 += chunk) {
        const std::size_t n = std::min(chunk, coded_end - t0);
        const std::size_t k_offset = KFormat::encoded_bytes(t0, dim), v_offset = VFormat::encoded_bytes(t0, dim);
        detail::step_scores<KFormat>(params, key_queries, heads, tile(h, 0) + k_offset, k_bytes() - k_offset, n, dim,
                                     pass.scores());
        if (o.center_keys)
          for (std::size_t g = 0; g < heads; ++g)
            for (std::size_t t = 0; t < n; ++t) pass.scores()[g * n + t] += mu_dot[g];
        pass.step(n, t0 < sinks_seen ? sinks_seen - t0 : 0);
        detail::step_values<VFormat>(params, pass.weights(), heads, row(h, 0) + v_offset, v_bytes() - v_offset, n, dim,
                                     value_outputs);
      }
      for (std::size_t t = coded_end; t < tokens;) {  // the recent window, tile by tile
        const std::size_t j = t / tile_tokens, n = std::min((j + 1) * tile_tokens, tokens) - t;
        attend_held(pass, queries, heads, held_k(h, j) + (t - j * tile_tokens) * dim,
                    held_v(h, j) + (t - j * tile_tokens) * dim, 0, n, outputs);
        t += n;
      }
      pass.finish();
    }
    if (rotated_out != nullptr)
      for (std::size_t g = 0; g < group; ++g) {
        hadamard_rotate(rotated_out + g * dim, dim, block);
        for (std::size_t c = 0; c < dim; ++c) out[g * dim + c] += rotated_out[g * dim + c];
      }
  }

  // ---- save / restore ---------------------------------------------------------------------

  /// Bytes save() writes for the current contents.
  std::size_t saved_bytes() const { return container::header_bytes + payload_bytes(size_, originals_from_); }
  /// Writes the container (docs/FORMAT.md) to dst. Errors: buffer_too_small, null_pointer.
  void save(std::byte* dst, std::size_t dst_bytes) const {
    const std::size_t payload = payload_bytes(size_, originals_from_);
    detail::check_bytes(dst, dst_bytes, container::header_bytes + payload, "KVCache::save dst");
    std::byte* header = dst;
    std::memset(header, 0, container::header_bytes);
    std::memcpy(header, container::magic, sizeof(container::magic));
    put(header, container::at_version, container::version, 2);
    put(header, container::at_format_version, KPC_FORMAT_VERSION, 2);
    put(header, container::at_k_bits, KFormat::bits, 1);
    put(header, container::at_k_layout, k_desc::container_layout, 1);
    put(header, container::at_k_group, tile_tokens, 2);
    put(header, container::at_v_bits, VFormat::bits, 1);
    put(header, container::at_v_layout, v_desc::container_layout, 1);
    put(header, container::at_v_block, v_desc::container_unit, 2);
    put(header, container::at_kv_heads, kv_heads(), 4);
    put(header, container::at_head_dim, head_dim(), 4);
    put(header, container::at_sink_tokens, plan_.options.sink_tokens, 1);
    put(header, container::at_flags, flags_of(plan_.options), 1);
    put(header, container::at_recent_tiles, plan_.options.recent_tiles, 2);
    put(header, container::at_tokens, size_, 8);
    put(header, container::at_originals_from, originals_from_, 8);
    put(header, container::at_payload_bytes, payload, 8);
    std::byte* p = dst + container::header_bytes;
    const std::size_t tiles_bytes = KFormat::encoded_bytes(size_, head_dim()), rows_bytes = size_ * plan_.row_bytes;
    for (std::size_t h = 0; h < kv_heads(); ++h, p += tiles_bytes) std::memcpy(p, tile(h, 0), tiles_bytes);
    for (std::size_t h = 0; h < kv_heads(); ++h, p += rows_bytes) std::memcpy(p, row(h, 0), rows_bytes);
    const auto put_floats = [&p](const float* values, std::size_t count) {
      for (std::size_t i = 0; i < count; ++i, p += 4) {
        std::uint32_t bits;
        std::memcpy(&bits, values + i, 4);
        detail::put_le(p, bits, 4);
      }
    };
    const std::size_t dim = head_dim(), G = tile_tokens;
    for (std::size_t h = 0; h < kv_heads(); ++h)
      for (std::size_t t = originals_from_; t < size_; ++t) put_floats(held_k(h, t / G) + (t % G) * dim, dim);
    if (holds_values())
      for (std::size_t h = 0; h < kv_heads(); ++h)
        for (std::size_t t = originals_from_; t < size_; ++t) put_floats(held_v(h, t / G) + (t % G) * dim, dim);
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      put_floats(sink_k(h), sinks() * dim);
      put_floats(sink_v(h), sinks() * dim);
    }
    if (plan_.options.center_keys)
      for (std::size_t h = 0; h < kv_heads(); ++h) put_floats(mu_of(h), dim);
    put(header, container::at_crc, checksum(dst, container::header_bytes + payload), 4);
  }
  std::vector<std::byte> save() const {
    std::vector<std::byte> bytes(saved_bytes());
    save(bytes.data(), bytes.size());
    return bytes;
  }
  /// The container of tokens [first, last) alone: copy_range(first, last).save().
  std::vector<std::byte> save_range(std::size_t first, std::size_t last) const {
    return copy_range(first, last, std::max<std::size_t>(last - std::min(first, last), 1)).save();
  }

  /// Replaces the contents with a saved container. The container must come from a cache with
  /// the same formats, options, kv_heads and head_dim, and fit the capacity. Errors (nothing
  /// changes): corrupt_data (not a container, truncated, trailing bytes, checksum mismatch,
  /// inconsistent fields, non-finite held values, an open tile that differs from its held
  /// values, a live centering vector that is not the mean it must be), unsupported (another
  /// container or format version), invalid_shape (other formats, options or shape),
  /// buffer_too_small (more tokens than capacity()), null_pointer.
  void restore(const std::byte* data, std::size_t size) {
    const image in = parse(data, size);
    if (in.kv_heads != kv_heads() || in.head_dim != head_dim())
      detail::raisef(errc::invalid_shape, "KVCache::restore: the image holds %zu x %zu channels, this cache %zu x %zu",
                     in.kv_heads, in.head_dim, kv_heads(), head_dim());
    if (in.options != plan_.options)
      detail::raisef(errc::invalid_shape, "KVCache::restore: the image was saved with other cache_options");
    if (in.tokens > capacity())
      detail::raisef(errc::buffer_too_small, "KVCache::restore: the image holds %zu tokens, the capacity is %zu",
                     in.tokens, capacity());
    const std::size_t G = tile_tokens, dim = head_dim(), heads = kv_heads();
    const std::size_t tiles_bytes = KFormat::encoded_bytes(in.tokens, dim), rows_bytes = in.tokens * plan_.row_bytes;
    const std::byte* k_in = data + container::header_bytes;
    const std::byte* v_in = k_in + heads * tiles_bytes;
    const std::byte* floats_in = v_in + heads * rows_bytes;
    const std::size_t held_tokens = in.tokens - in.originals_from, sink_count = std::min(plan_.options.sink_tokens, in.tokens);
    const std::size_t held_floats = held_tokens * dim * heads * (holds_values() ? 2 : 1);
    std::vector<float> values(held_floats + 2 * sink_count * dim * heads + (plan_.options.center_keys ? dim * heads : 0));
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::uint32_t bits = static_cast<std::uint32_t>(detail::get_le(floats_in + 4 * i, 4));
      std::memcpy(&values[i], &bits, 4);
      if (!std::isfinite(values[i])) detail::raise(errc::corrupt_data, "KVCache::restore: a held value is not finite");
    }
    const float* held_k_in = values.data();
    const float* held_v_in = held_k_in + held_tokens * dim * heads;
    const float* sinks_in = values.data() + held_floats;  // per head: K then V
    const float* mu_in = sinks_in + 2 * sink_count * dim * heads;
    if (plan_.options.center_keys && in.tokens < G) {  // a live centering vector is the mean it must be
      std::vector<float> mean(dim);
      for (std::size_t h = 0; h < heads; ++h) {
        live_mean(held_k_in + h * held_tokens * dim, in.tokens, mean.data());
        if (std::memcmp(mean.data(), mu_in + h * dim, dim * sizeof(float)) != 0)
          detail::raise(errc::corrupt_data, "KVCache::restore: the centering vector is not its tile's mean");
      }
    }
    // What later operations will need: every code decodes (finite fp16 fields), every held tile
    // encodes again (truncate and shift re-encode them), and the open tile is what its held
    // values encode to.
    for (std::size_t h = 0; h < heads; ++h) {
      for (std::size_t j = 0; j * G < in.tokens; ++j)
        if (!k_fields_finite(k_in + h * tiles_bytes + j * plan_.tile_bytes))
          detail::raisef(errc::corrupt_data, "KVCache::restore: the K tile of head %zu at cache position %zu has non-finite fp16 fields", h, j * G);
      for (std::size_t t = 0; t < in.tokens; ++t)
        for (std::size_t b = 0; b < plan_.row_bytes / v_block::bytes; ++b)
          if (!ref::block_fields_finite<v_block>(v_in + h * rows_bytes + t * plan_.row_bytes + b * v_block::bytes))
            detail::raisef(errc::corrupt_data, "KVCache::restore: the V row of head %zu at cache position %zu has non-finite fp16 fields", h, t);
      for (std::size_t j = in.originals_from / G; j * G < in.tokens; ++j) {
        const std::size_t count = std::min(G, in.tokens - j * G);
        const detail::slab_result r = encode_k_tile(j, held_k_in + (h * held_tokens + j * G - in.originals_from) * dim, dim,
                                                    count, plan_.options.center_keys ? mu_in + h * dim : nullptr, scratch(h));
        if (r.status != 0)
          detail::raisef(errc::corrupt_data, "KVCache::restore: the held keys of head %zu from cache position %zu cannot be encoded", h, j * G);
        if (count < G && std::memcmp(scratch(h), k_in + h * tiles_bytes + j * plan_.tile_bytes, plan_.tile_bytes) != 0)
          detail::raisef(errc::corrupt_data, "KVCache::restore: the open K tile of head %zu does not match its held values", h);
      }
    }
    for (std::size_t h = 0; h < heads; ++h) {
      std::memcpy(tile(h, 0), k_in + h * tiles_bytes, tiles_bytes);
      std::memcpy(row(h, 0), v_in + h * rows_bytes, rows_bytes);
      for (std::size_t t = in.originals_from; t < in.tokens; ++t) {
        const std::size_t at = (h * held_tokens + t - in.originals_from) * dim;
        std::memcpy(held_k(h, t / G) + (t % G) * dim, held_k_in + at, dim * sizeof(float));
        if (holds_values()) std::memcpy(held_v(h, t / G) + (t % G) * dim, held_v_in + at, dim * sizeof(float));
      }
      if (sink_count != 0) {
        std::memcpy(sink_k(h), sinks_in + 2 * h * sink_count * dim, sink_count * dim * sizeof(float));
        std::memcpy(sink_v(h), sinks_in + (2 * h + 1) * sink_count * dim, sink_count * dim * sizeof(float));
      }
      if (plan_.options.center_keys) std::memcpy(mu_of(h), mu_in + h * dim, dim * sizeof(float));
    }
    size_ = in.tokens;
    originals_from_ = in.originals_from;
  }

  /// A new cache from a container, with the container's shape and options and room for
  /// `capacity` tokens (which must hold the container's: buffer_too_small otherwise). It
  /// allocates memory_bytes(kv_heads, head_dim, capacity, options) of the container's shape (up
  /// to 65536 channels: a 64-byte container may ask for tens of MiB); a container whose cache
  /// would exceed max_bytes is refused (buffer_too_small) before anything is allocated.
  static KVCache load(const std::byte* data, std::size_t size, std::size_t capacity,
                      std::size_t max_bytes = static_cast<std::size_t>(-1)) {
    const image in = parse(data, size);
    if (capacity < in.tokens)
      detail::raisef(errc::buffer_too_small, "KVCache::load: capacity %zu < the container's %zu tokens", capacity, in.tokens);
    const std::size_t bytes = memory_bytes(in.kv_heads, in.head_dim, capacity, in.options);
    if (bytes > max_bytes)
      detail::raisef(errc::buffer_too_small, "KVCache::load: the cache would take %zu bytes, more than max_bytes %zu", bytes,
                     max_bytes);
    KVCache cache(in.kv_heads, in.head_dim, capacity, in.options);
    cache.restore(data, size);
    return cache;
  }

 private:
  struct plan {
    std::size_t kv_heads = 0, head_dim = 0, capacity = 0;
    cache_options options;
    std::size_t tile_bytes = 0, row_bytes = 0, slots = 2;
    std::size_t k_head = 0, v_head = 0, held_tile = 0, sink_head = 0, mu_head = 0;  // per-head strides (64-byte multiples)
    std::size_t k_at = 0, v_at = 0, held_k_at = 0, held_v_at = 0, sink_k_at = 0, sink_v_at = 0, mu_at = 0,
                scratch_at = 0, work_at = 0, total = 0;
  };
  struct image {
    std::size_t kv_heads, head_dim, tokens, originals_from;
    cache_options options;
  };

  static std::size_t round64(std::size_t n) {
    if (n > detail::max_bytes - 63) detail::raise(errc::invalid_shape, "KVCache: size exceeds any buffer");
    return (n + 63) / 64 * 64;
  }
  static std::size_t add(std::size_t a, std::size_t b) {
    if (b > detail::max_bytes - a) detail::raise(errc::invalid_shape, "KVCache: size exceeds any buffer");
    return a + b;
  }
  static bool any_option(const cache_options& o) { return o != cache_options{}; }
  static unsigned flags_of(const cache_options& o) {
    return (o.center_keys ? container::flag_center_keys : 0u) | (o.rotate_keys ? container::flag_rotate_keys : 0u) |
           (o.rotate_values ? container::flag_rotate_values : 0u);
  }
  static void check_options(const cache_options& o) {
    if (o.sink_tokens > 16 || o.sink_tokens >= tile_tokens)
      detail::raisef(errc::invalid_shape, "KVCache: sink_tokens %zu must be at most 16 and below the tile's %zu tokens",
                     o.sink_tokens, tile_tokens);
    if (o.recent_tiles > 64) detail::raisef(errc::invalid_shape, "KVCache: recent_tiles %zu must be at most 64", o.recent_tiles);
  }
  static plan make_plan(std::size_t kv_heads, std::size_t head_dim, std::size_t capacity, const cache_options& options) {
    if (kv_heads == 0 || head_dim == 0 || kv_heads > format::max_channels / head_dim)
      detail::raisef(errc::invalid_shape, "KVCache: kv_heads %zu x head_dim %zu must be in [1, %zu] channels", kv_heads,
                     head_dim, format::max_channels);
    if (head_dim % v_desc::container_unit != 0)
      detail::raisef(errc::invalid_shape, "KVCache: head_dim %zu must be a multiple of %d (V's blocks)", head_dim,
                     v_desc::container_unit);
    check_options(options);
    plan p;
    p.kv_heads = kv_heads;
    p.head_dim = head_dim;
    p.capacity = capacity;
    p.options = options;
    p.tile_bytes = KFormat::tile_bytes(head_dim);
    p.row_bytes = VFormat::row_bytes(head_dim);
    p.slots = std::max<std::size_t>(2, options.recent_tiles + 1);
    const std::size_t tiles = capacity / tile_tokens + (capacity % tile_tokens != 0);
    const std::size_t row_floats = head_dim * sizeof(float);
    p.k_head = round64(detail::checked_mul(tiles, p.tile_bytes));
    p.v_head = round64(detail::checked_mul(capacity, p.row_bytes));
    p.held_tile = round64(tile_tokens * row_floats);
    p.sink_head = round64(options.sink_tokens * row_floats);
    p.mu_head = options.center_keys ? round64(row_floats) : 0;
    const std::size_t held_region = detail::checked_mul(detail::checked_mul(p.slots, kv_heads), p.held_tile);
    p.k_at = 0;
    p.v_at = add(p.k_at, detail::checked_mul(kv_heads, p.k_head));
    p.held_k_at = add(p.v_at, detail::checked_mul(kv_heads, p.v_head));
    p.held_v_at = add(p.held_k_at, held_region);
    p.sink_k_at = add(p.held_v_at, options.recent_tiles != 0 ? held_region : 0);
    p.sink_v_at = add(p.sink_k_at, kv_heads * p.sink_head);
    p.mu_at = add(p.sink_v_at, kv_heads * p.sink_head);
    p.scratch_at = add(p.mu_at, 2 * kv_heads * p.mu_head);  // mu and the next mu of an append
    p.work_at = add(p.scratch_at, round64(detail::checked_mul(kv_heads, p.tile_bytes)));
    const bool transforms = options.sink_tokens != 0 || options.center_keys || options.rotate_keys || options.rotate_values;
    p.total = add(p.work_at, transforms ? round64(tile_tokens * row_floats) : 0);
    return p;
  }

  std::size_t kv_width() const noexcept { return kv_heads() * head_dim(); }
  std::size_t tokens_in_tile(std::size_t j) const { return std::min(tile_tokens, size_ - j * tile_tokens); }
  bool holds_values() const noexcept { return plan_.options.recent_tiles != 0; }
  /// The first tile whose values are held once the cache holds `tokens` tokens.
  std::size_t held_window(std::size_t tokens) const {
    const std::size_t full = tokens / tile_tokens, back = plan_.slots - 1;
    return full > back ? full - back : 0;
  }
  std::size_t recent_from(std::size_t tokens) const {
    const std::size_t n = plan_.options.recent_tiles, grid = (tokens + tile_tokens - 1) / tile_tokens;
    if (n == 0) return tokens;
    const std::size_t from = std::max(grid > n ? (grid - n) * tile_tokens : 0, originals_from_);
    return std::max(std::min(from, tokens), std::min(plan_.options.sink_tokens, tokens));
  }
  std::size_t checked_head(std::size_t h) const {
    if (h >= kv_heads()) detail::raisef(errc::out_of_range, "KVCache: head %zu >= kv_heads %zu", h, kv_heads());
    return h;
  }
  void check_range(std::size_t first, std::size_t count, const char* what) const {
    if (first > size_ || count > size_ - first)
      detail::raisef(errc::out_of_range, "KVCache::%s: tokens [%zu, +%zu) exceed size %zu", what, first, count, size_);
  }
  /// Whether a K tile's fp16 fields (scale step, smallest minimum, minimum step) are finite.
  static bool k_fields_finite(const std::byte* tile) {
    using layout = format::k_tile<KFormat::bits, KFormat::tile_tokens>;
    for (std::size_t at : {layout::offset_scale_step, layout::offset_zero_min, layout::offset_zero_step})
      if (!fp16_bits_finite(detail::load_u16le(tile + at))) return false;
    return true;
  }
  void check_query(const float* q, std::size_t q_size, const float* out, std::size_t out_size, std::size_t group) const {
    detail::check_elements(q, q_size, group, head_dim(), head_dim(), "attend q");
    detail::check_elements(out, out_size, group, head_dim(), head_dim(), "attend out");
  }
  template <class T>
  void decode_checked(std::size_t h, std::size_t first, std::size_t count, span<T> dst, bool keys) const {
    detail::check_elements(dst.data(), dst.size(), count, head_dim(), head_dim(), keys ? "decode_k dst" : "decode_v dst");
    check_range(first, count, keys ? "decode_k" : "decode_v");
    checked_head(h);
    read_values(h, first, count, dst.data(), head_dim(), keys, false);
  }
  /// One head after another on this thread (attend_all without a parallel-for).
  struct serial_for {
    template <class Task>
    void operator()(std::size_t n, const Task& task) const {
      for (std::size_t i = 0; i < n; ++i) task(i);
    }
  };
  template <class T, class ParallelFor = serial_for>
  void attend_all_of(span<const T> q, std::size_t q_heads, const attention_params& params, span<T> out,
                     ParallelFor&& parallel_for = {}) const {
    const std::size_t dim = head_dim(), heads = kv_heads();
    if (q_heads == 0 || q_heads % heads != 0)
      detail::raisef(errc::invalid_shape, "KVCache::attend_all: %zu query heads are not a multiple of kv_heads %zu", q_heads, heads);
    detail::check_elements(q.data(), q.size(), q_heads, dim, dim, "attend_all q");
    detail::check_elements(out.data(), out.size(), q_heads, dim, dim, "attend_all out");
    const std::size_t group = q_heads / heads;
    const auto one_head = [&](std::size_t h) {  // reads and writes head h's rows only
      attention_params p = params;
      if (params.sinks != nullptr) p.sinks = params.sinks + h * group;
      if constexpr (std::is_same_v<T, float>) {
        attend_prefix(h, size_, q.data() + h * group * dim, group, p, out.data() + h * group * dim);
      } else {  // f16 queries and output through f32 (a per-thread buffer past attention's own)
        float* buffer = detail::thread_floats(5 * group * dim) + 3 * group * dim;
        for (std::size_t i = 0; i < group * dim; ++i) buffer[i] = to_float(q.data()[h * group * dim + i]);
        attend_prefix(h, size_, buffer, group, p, buffer + group * dim);
        for (std::size_t i = 0; i < group * dim; ++i) out.data()[h * group * dim + i] = from_float<half>(buffer[group * dim + i]);
      }
    };
    if constexpr (std::is_same_v<std::decay_t<ParallelFor>, serial_for>) {
      for (std::size_t h = 0; h < heads; ++h) one_head(h);
    } else {
#if KPC_HAS_EXCEPTIONS
      std::vector<std::exception_ptr> failures(heads);
      parallel_for(heads, [&](std::size_t h) {
        try {
          one_head(h);
        } catch (...) {
          failures[h] = std::current_exception();
        }
      });
      for (const std::exception_ptr& failure : failures)
        if (failure) std::rethrow_exception(failure);
#else
      parallel_for(heads, one_head);
#endif
    }
  }
  /// Rows of [tokens][kv_heads][head_dim] must be finite; the error names the first bad one.
  template <class T>
  void check_finite_rows(const T* rows, std::size_t stride, std::size_t tokens, const char* what) const {
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t i = 0; i < kv_width(); ++i)
        if (!std::isfinite(to_float(rows[t * stride + i])))
          detail::raisef(errc::non_finite, "KVCache::append: the %s of head %zu at cache position %zu, channel %zu, is NaN or Inf",
                         what, i / head_dim(), size_ + t, i % head_dim());
  }
  /// append's body. With v_rows_from, the V rows are that cache's rows from v_first, copied byte
  /// for byte (v still supplies the held values and the sinks): a fork's rows stay exact and never
  /// go through an encoder that could refuse them.
  template <class T>
  void append_tokens(const T* k, std::size_t k_stride, const T* v, std::size_t v_stride, std::size_t tokens,
                     const KVCache* v_rows_from, std::size_t v_first) {
    static_assert(detail::is_element<T>, "kpc: elements are float or kpc::half");
    const std::size_t width = kv_width(), dim = head_dim(), G = tile_tokens;
    detail::check_rows(k, tokens, width, k_stride, sizeof(T), "append k");
    detail::check_rows(v, tokens, width, v_stride, sizeof(T), "append v");
    if (tokens == 0) return;
    if (tokens > capacity() - size_)
      detail::raisef(errc::buffer_too_small, "KVCache::append: %zu tokens do not fit (size %zu, capacity %zu)", tokens,
                     size_, capacity());
    check_finite_rows(k, k_stride, tokens, "key");
    check_finite_rows(v, v_stride, tokens, "value");
    const std::size_t end = size_ + tokens, open = size_ / G, filled = size_ % G, last = (end - 1) / G;
    const std::size_t first_new_tile = filled != 0 ? open + 1 : open;
    const std::size_t S = plan_.options.sink_tokens;
    // Phase 1, everything that can fail, touching only unused rows and tiles, unused held-value
    // rows and the scratch space: V rows, the centering vector, the open tile (into scratch) and
    // the new tiles.
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      if (v_rows_from != nullptr) {
        std::memcpy(row(h, size_), v_rows_from->row(h, v_first), tokens * plan_.row_bytes);
        continue;
      }
      const detail::slab_result r = encode_v_rows(v + h * dim, v_stride, tokens, row(h, size_));
      require(r, "append", h, size_ + r.token, "values");
    }
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      const T* src = k + h * dim;
      if (filled != 0) store_values(src, k_stride, std::min(G - filled, tokens), held_k(h, open) + filled * dim);
      const float* mu = next_mu(h, src, k_stride, end);
      if (filled != 0)
        require(encode_k_tile(open, held_k(h, open), dim, filled + std::min(G - filled, tokens), mu, scratch(h)), "append",
                h, open * G, "keys");
      for (std::size_t j = first_new_tile; j <= last; ++j) {
        const std::size_t from = j * G - size_;  // index within this call
        require(encode_k_tile(j, src + from * k_stride, k_stride, std::min(G, tokens - from), mu, tile(h, j)), "append",
                h, j * G, "keys");
      }
    }
    // Phase 2, which cannot fail: publish the open tile and the centering vector, keep the values
    // of the held tiles and of the sinks.
    const std::size_t window = held_window(end);
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      if (filled != 0) std::memcpy(tile(h, open), scratch(h), plan_.tile_bytes);
      if (plan_.options.center_keys) std::memcpy(mu_of(h), mu_work(h), dim * sizeof(float));
      for (std::size_t j = std::max(window, first_new_tile); j * G < end; ++j) {
        const std::size_t from = j * G - size_;
        store_values(k + h * dim + from * k_stride, k_stride, std::min(G, tokens - from), held_k(h, j));
      }
      if (holds_values()) {
        for (std::size_t j = std::max(window, open); j * G < end; ++j) {
          const std::size_t t0 = std::max(j * G, size_);
          store_values(v + h * dim + (t0 - size_) * v_stride, v_stride, std::min((j + 1) * G, end) - t0,
                       held_v(h, j) + (t0 - j * G) * dim);
        }
      }
      for (std::size_t t = size_; t < std::min(end, S); ++t) {
        store_values(k + h * dim + (t - size_) * k_stride, k_stride, 1, sink_k(h) + t * dim);
        store_values(v + h * dim + (t - size_) * v_stride, v_stride, 1, sink_v(h) + t * dim);
      }
    }
    originals_from_ = std::max(originals_from_, window * G);
    size_ = end;
  }
  template <class T>
  void append_checked(span<const T> k, std::size_t k_stride, span<const T> v, std::size_t v_stride, std::size_t tokens) {
    detail::check_elements(k.data(), k.size(), tokens, kv_width(), k_stride, "append k");
    detail::check_elements(v.data(), v.size(), tokens, kv_width(), v_stride, "append v");
    append(k.data(), k_stride, v.data(), v_stride, tokens);
  }
  /// Raises a kernel's failure with where it happened: head, cache position, keys or values.
  static void require(detail::slab_result r, const char* what, std::size_t h, std::size_t position, const char* part) {
    if (r.status != 0) raise_at(static_cast<errc>(r.status), what, h, position, part);
  }
  /// A decode that fails means damaged codes (corrupt_data), whatever the kernel said.
  static void require_decoded(detail::slab_result r, const char* what, std::size_t h, std::size_t position,
                              const char* part) {
    if (r.status != 0) raise_at(errc::corrupt_data, what, h, position + r.token, part);
  }
  [[noreturn]] KPC_COLD static void raise_at(errc code, const char* what, std::size_t h, std::size_t position,
                                             const char* part) {
    const char* why = code == errc::out_of_range ? "need an fp16 scale or minimum beyond +-65504"
                      : code == errc::corrupt_data ? "are stored with non-finite fp16 fields"
                      : code == errc::non_finite   ? "hold NaN or Inf"
                                                   : "were refused";
    detail::raisef(code, "KVCache::%s: the %s of head %zu from cache position %zu %s", what, part, h, position, why);
  }
  std::byte* region(std::size_t at) { return storage_.data() + at; }
  const std::byte* region(std::size_t at) const { return storage_.data() + at; }
  std::byte* tile(std::size_t h, std::size_t j) { return region(plan_.k_at + h * plan_.k_head + j * plan_.tile_bytes); }
  const std::byte* tile(std::size_t h, std::size_t j) const {
    return region(plan_.k_at + h * plan_.k_head + j * plan_.tile_bytes);
  }
  std::byte* row(std::size_t h, std::size_t t) { return region(plan_.v_at + h * plan_.v_head + t * plan_.row_bytes); }
  const std::byte* row(std::size_t h, std::size_t t) const {
    return region(plan_.v_at + h * plan_.v_head + t * plan_.row_bytes);
  }
  /// Held f32 keys (values) of tile j of head h, [G][head_dim]: tile j lives in slot j % slots.
  float* held_k(std::size_t h, std::size_t j) { return floats_at(plan_.held_k_at + held_offset(h, j)); }
  const float* held_k(std::size_t h, std::size_t j) const { return floats_at(plan_.held_k_at + held_offset(h, j)); }
  float* held_v(std::size_t h, std::size_t j) { return floats_at(plan_.held_v_at + held_offset(h, j)); }
  const float* held_v(std::size_t h, std::size_t j) const { return floats_at(plan_.held_v_at + held_offset(h, j)); }
  std::size_t held_offset(std::size_t h, std::size_t j) const {
    return ((j % plan_.slots) * kv_heads() + h) * plan_.held_tile;
  }
  float* sink_k(std::size_t h) { return floats_at(plan_.sink_k_at + h * plan_.sink_head); }
  const float* sink_k(std::size_t h) const { return floats_at(plan_.sink_k_at + h * plan_.sink_head); }
  float* sink_v(std::size_t h) { return floats_at(plan_.sink_v_at + h * plan_.sink_head); }
  const float* sink_v(std::size_t h) const { return floats_at(plan_.sink_v_at + h * plan_.sink_head); }
  float* mu_of(std::size_t h) { return floats_at(plan_.mu_at + h * plan_.mu_head); }
  const float* mu_of(std::size_t h) const { return floats_at(plan_.mu_at + h * plan_.mu_head); }
  const float* mu_of_or_null(std::size_t h) const { return plan_.options.center_keys ? mu_of(h) : nullptr; }
  /// An append's next centering vector, published only once nothing can fail any more.
  float* mu_work(std::size_t h) { return floats_at(plan_.mu_at + (kv_heads() + h) * plan_.mu_head); }
  std::byte* scratch(std::size_t h) { return region(plan_.scratch_at + h * plan_.tile_bytes); }
  float* work() { return floats_at(plan_.work_at); }
  float* floats_at(std::size_t at) { return reinterpret_cast<float*>(region(at)); }
  const float* floats_at(std::size_t at) const { return reinterpret_cast<const float*>(region(at)); }

  template <class T>
  void store_values(const T* src, std::size_t stride, std::size_t tokens, float* dst) const {
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t c = 0; c < head_dim(); ++c) dst[t * head_dim() + c] = to_float(src[t * stride + c]);
  }

  /// An empty cache's centering vector: the mean of no keys.
  void reset_mu() noexcept {
    if (plan_.options.center_keys)
      for (std::size_t h = 0; h < kv_heads(); ++h) std::fill(mu_of(h), mu_of(h) + head_dim(), 0.0f);
  }
  /// mu over the non-sink tokens [sink_tokens, tokens) of tile 0, from their keys (rows of dim).
  void live_mean(const float* tile0, std::size_t tokens, float* mu) const {
    const std::size_t dim = head_dim(), from = std::min(plan_.options.sink_tokens, tokens);
    for (std::size_t c = 0; c < dim; ++c) {
      double sum = 0.0;
      for (std::size_t t = from; t < tokens; ++t) sum += tile0[t * dim + c];
      mu[c] = tokens > from ? static_cast<float>(sum / static_cast<double>(tokens - from)) : 0.0f;
    }
  }
  /// The centering vector an append of rows up to token `end` encodes with: while tile 0 is open,
  /// the mean of its keys so far (the held ones and the new rows), computed into mu_work; once
  /// sealed, the current one. Null without center_keys.
  template <class T>
  const float* next_mu(std::size_t h, const T* src, std::size_t stride, std::size_t end) {
    if (!plan_.options.center_keys) return nullptr;
    if (size_ >= tile_tokens) {
      std::memcpy(mu_work(h), mu_of(h), head_dim() * sizeof(float));
      return mu_work(h);
    }
    const std::size_t dim = head_dim(), tile0_end = std::min(end, tile_tokens), from = plan_.options.sink_tokens;
    float* mu = mu_work(h);
    for (std::size_t c = 0; c < dim; ++c) {
      double sum = 0.0;
      for (std::size_t t = from; t < tile0_end; ++t)
        sum += t < size_ ? held_k(h, 0)[t * dim + c] : to_float(src[(t - size_) * stride + c]);
      mu[c] = tile0_end > from ? static_cast<float>(sum / static_cast<double>(tile0_end - from)) : 0.0f;
    }
    return mu;
  }

  /// Encodes tokens [j * G, j * G + count) of a head from their keys (rows `stride` apart) into
  /// `dst`: as given without options; otherwise minus mu, rotated, with the sinks' rows of tile 0
  /// replaced by the first other token's (or zeros), so that they take no part in its statistics.
  template <class T>
  detail::slab_result encode_k_tile(std::size_t j, const T* keys, std::size_t stride, std::size_t count, const float* mu,
                                    std::byte* dst) {
    const std::size_t dim = head_dim(), first = j * tile_tokens, S = plan_.options.sink_tokens;
    if (!plan_.options.center_keys && !plan_.options.rotate_keys && (S == 0 || first >= S))
      return KFormat::encode_status(keys, stride, count, dim, dst);
    float* x = work();
    const std::size_t placeholders = first < S ? std::min(S - first, count) : 0;
    for (std::size_t t = placeholders; t < count; ++t) {
      float* r = x + t * dim;
      for (std::size_t c = 0; c < dim; ++c) r[c] = to_float(keys[t * stride + c]) - (mu != nullptr ? mu[c] : 0.0f);
      if (plan_.options.rotate_keys) hadamard_rotate(r, dim, hadamard_block(dim));
    }
    for (std::size_t t = 0; t < placeholders; ++t) {
      if (placeholders < count) std::memcpy(x + t * dim, x + placeholders * dim, dim * sizeof(float));
      else std::fill(x + t * dim, x + (t + 1) * dim, 0.0f);
    }
    return KFormat::encode_status(x, dim, count, dim, dst);
  }

  /// Encodes `tokens` value rows of a head into V rows at dst, rotated with rotate_values.
  template <class T>
  detail::slab_result encode_v_rows(const T* values, std::size_t stride, std::size_t tokens, std::byte* dst) {
    const std::size_t dim = head_dim();
    if (!plan_.options.rotate_values) return VFormat::encode_status(values, stride, tokens, dim, dst);
    float* x = work();
    for (std::size_t t0 = 0; t0 < tokens; t0 += tile_tokens) {
      const std::size_t n = std::min(tile_tokens, tokens - t0);
      for (std::size_t t = 0; t < n; ++t) {
        for (std::size_t c = 0; c < dim; ++c) x[t * dim + c] = to_float(values[(t0 + t) * stride + c]);
        hadamard_rotate(x + t * dim, dim, hadamard_block(dim));
      }
      const detail::slab_result r = VFormat::encode_status(x, dim, n, dim, dst + t0 * plan_.row_bytes);
      if (r.status != 0) return {r.status, t0 + r.token};
    }
    return {0, 0};
  }

  /// Tile j of head h decoded to keys (rotated back, mu added; the sinks' rows from the sinks).
  detail::slab_result decoded_k_tile(std::size_t h, std::size_t j, float* dst) const {
    const std::size_t dim = head_dim(), count = tokens_in_tile(j);
    const detail::slab_result r = KFormat::decode_status(tile(h, j), count, dim, dst, dim);
    if (r.status != 0) return r;
    for (std::size_t t = 0; t < count; ++t) {
      float* r = dst + t * dim;
      if (plan_.options.rotate_keys) hadamard_rotate(r, dim, hadamard_block(dim));
      if (plan_.options.center_keys)
        for (std::size_t c = 0; c < dim; ++c) r[c] += mu_of(h)[c];
    }
    const std::size_t first = j * tile_tokens;
    for (std::size_t t = first; t < std::min(sinks(), first + count); ++t)
      std::memcpy(dst + (t - first) * dim, sink_k(h) + t * dim, dim * sizeof(float));
    return {0, 0};
  }
  /// V rows [first, first + count) of head h decoded (rotated back), into rows of head_dim floats.
  detail::slab_result decoded_v_rows(std::size_t h, std::size_t first, std::size_t count, float* dst) const {
    const std::size_t dim = head_dim();
    const detail::slab_result r = VFormat::decode_status(row(h, first), count, dim, dst, dim);
    if (r.status != 0) return {r.status, first + r.token};
    if (plan_.options.rotate_values)
      for (std::size_t t = 0; t < count; ++t) hadamard_rotate(dst + t * dim, dim, hadamard_block(dim));
    for (std::size_t t = first; t < std::min(sinks(), first + count); ++t)
      std::memcpy(dst + (t - first) * dim, sink_v(h) + t * dim, dim * sizeof(float));
    return {0, 0};
  }

  /// Keys (or values) of tokens [first, first + count) into rows `stride` apart: the sinks' values,
  /// then held values where attention reads them (the recent window) or, with prefer_held, wherever
  /// the cache holds them, and the decoded codes (rotated back, mu added back) for the rest.
  template <class T>
  void read_values(std::size_t h, std::size_t first, std::size_t count, T* dst, std::size_t stride, bool keys,
                   bool prefer_held) const {
    const std::size_t G = tile_tokens, dim = head_dim(), recent = recent_from();
    const bool values_held = keys || holds_values();
    std::vector<float> decoded;
    for (std::size_t t = first; t < first + count;) {  // runs within a tile, split where the window starts
      const std::size_t j = t / G, stop = std::min((j + 1) * G, first + count);
      const std::size_t n = (t < recent && recent < stop ? recent : stop) - t;
      const bool held = values_held && j * G >= originals_from_ && (prefer_held || t >= recent);
      const float* values = keys ? held_k(h, j) : held_v(h, j);
      if (!held) {
        decoded.resize(G * dim);
        if (keys) require_decoded(decoded_k_tile(h, j, decoded.data()), "decode_k", h, j * G, "keys");
        else require_decoded(decoded_v_rows(h, j * G, tokens_in_tile(j), decoded.data()), "decode_v", h, j * G, "values");
        values = decoded.data();
      }
      for (std::size_t token = t; token < t + n; ++token) {
        const float* src = token < sinks() ? (keys ? sink_k(h) : sink_v(h)) + token * dim : values + (token - j * G) * dim;
        for (std::size_t c = 0; c < dim; ++c) dst[(token - first) * stride + c] = from_float<T>(src[c]);
      }
      t += n;
    }
  }

  /// Attention over held f32 tokens [first, first + count) of keys/values rows (head_dim floats each).
  void attend_held(detail::softmax_pass& pass, const float* queries, std::size_t heads, const float* keys,
                   const float* values, std::size_t first, std::size_t count, float* outputs) const {
    const std::size_t dim = head_dim();
    for (std::size_t t0 = first; t0 < first + count; t0 += detail::attention_chunk) {
      const std::size_t n = std::min(detail::attention_chunk, first + count - t0);
      for (std::size_t g = 0; g < heads; ++g)
        for (std::size_t t = 0; t < n; ++t) pass.scores()[g * n + t] = detail::dot(queries + g * dim, keys + (t0 + t) * dim, dim);
      pass.step(n);
      for (std::size_t g = 0; g < heads; ++g)
        for (std::size_t t = 0; t < n; ++t) {
          const float w = pass.weights()[g * n + t];
          const float* v = values + (t0 + t) * dim;
          float* o = outputs + g * dim;
          for (std::size_t c = 0; c < dim; ++c) o[c] += w * v[c];
        }
    }
  }

  std::size_t payload_bytes(std::size_t tokens, std::size_t originals_from) const {
    const std::size_t dim = head_dim(), held = (tokens - originals_from) * dim * (holds_values() ? 2 : 1);
    const std::size_t sink = 2 * std::min(plan_.options.sink_tokens, tokens) * dim;
    return kv_heads() * (KFormat::encoded_bytes(tokens, dim) + tokens * plan_.row_bytes +
                         (held + sink + (plan_.options.center_keys ? dim : 0)) * sizeof(float));
  }
  static void put(std::byte* header, std::size_t at, std::uint64_t value, int bytes) {
    detail::put_le(header + at, value, bytes);
  }
  static std::uint64_t get(const std::byte* header, std::size_t at, int bytes) { return detail::get_le(header + at, bytes); }
  /// CRC-32 of the whole container except its crc field.
  static std::uint32_t checksum(const std::byte* data, std::size_t size) {
    const std::uint32_t head = detail::crc32_update(0, data, container::at_crc);
    return detail::crc32_update(head, data + container::header_bytes, size - container::header_bytes);
  }

  /// A container's formats in words: "K4 G32 / V4 (q4_1)" (from its K bits, layout, G, V bits,
  /// layout, block fields; unknown codes as numbers).
  static std::string format_words(const std::uint64_t (&f)[6]) {
    std::string k = f[1] == 1 ? "K" + std::to_string(f[0]) + " G" + std::to_string(f[2])
                              : "K layout " + std::to_string(f[1]);
    std::string v = f[4] == 3 ? "q4_0" : "V" + std::to_string(f[3]);
    if (f[4] == 2 && f[3] == 8) v += " (q8_0)";
    if (f[4] == 2 && f[3] == 4) v += " (q4_1)";
    if (f[4] != 2 && f[4] != 3) v = "V layout " + std::to_string(f[4]);
    if (f[5] != 32) v += " in blocks of " + std::to_string(f[5]);
    return k + " / " + v;
  }

  /// Checks everything about a container that does not depend on the receiving cache.
  static image parse(const std::byte* data, std::size_t size) {
    const auto corrupt = [](const std::string& why) { detail::raise(errc::corrupt_data, "KVCache: " + why); };
    if (size >= container::header_bytes && data == nullptr) detail::raise(errc::null_pointer, "KVCache image is null");
    if (size < container::header_bytes || std::memcmp(data, container::magic, sizeof(container::magic)) != 0)
      corrupt("not a kpc cache image (" + std::to_string(size) + " bytes, no KPCCACHE header)");
    if (get(data, container::at_version, 2) != container::version)
      detail::raise(errc::unsupported, "KVCache: container version " + std::to_string(get(data, container::at_version, 2)) +
                                           ", this kpc reads version " + std::to_string(container::version));
    if (get(data, container::at_format_version, 2) != KPC_FORMAT_VERSION)
      detail::raise(errc::unsupported, "KVCache: format version " +
                                           std::to_string(get(data, container::at_format_version, 2)) +
                                           ", this kpc writes version " + std::to_string(KPC_FORMAT_VERSION));
    const std::uint64_t formats[6] = {get(data, container::at_k_bits, 1), get(data, container::at_k_layout, 1),
                                      get(data, container::at_k_group, 2), get(data, container::at_v_bits, 1),
                                      get(data, container::at_v_layout, 1), get(data, container::at_v_block, 2)};
    const std::uint64_t expected[6] = {KFormat::bits, k_desc::container_layout, tile_tokens,
                                       VFormat::bits, v_desc::container_layout,
                                       v_desc::container_unit};
    if (!std::equal(formats, formats + 6, expected))
      detail::raise(errc::invalid_shape, "KVCache: the image holds " + format_words(formats) + " caches, this cache is " +
                                             format_words(expected));
    if (get(data, container::at_reserved, 4) != 0) corrupt("reserved header fields are not zero");
    const std::uint64_t flags = get(data, container::at_flags, 1);
    if ((flags & ~std::uint64_t{7}) != 0) corrupt("unknown option flags");
    cache_options options;
    options.sink_tokens = static_cast<std::size_t>(get(data, container::at_sink_tokens, 1));
    options.recent_tiles = static_cast<std::size_t>(get(data, container::at_recent_tiles, 2));
    options.center_keys = (flags & container::flag_center_keys) != 0;
    options.rotate_keys = (flags & container::flag_rotate_keys) != 0;
    options.rotate_values = (flags & container::flag_rotate_values) != 0;
    if (options.sink_tokens > 16 || options.sink_tokens >= tile_tokens || options.recent_tiles > 64)
      corrupt("options out of their ranges");
    const std::uint64_t kv_heads = get(data, container::at_kv_heads, 4), head_dim = get(data, container::at_head_dim, 4);
    const std::uint64_t tokens = get(data, container::at_tokens, 8);
    const std::uint64_t originals_from = get(data, container::at_originals_from, 8);
    if (kv_heads == 0 || head_dim == 0 || kv_heads > format::max_channels / head_dim ||
        head_dim % v_desc::container_unit != 0)
      corrupt("kv_heads " + std::to_string(kv_heads) + " x head_dim " + std::to_string(head_dim) + " is not a shape");
    const std::uint64_t G = tile_tokens, tiles = tokens / G + (tokens % G != 0), open = tokens / G;
    const std::uint64_t back = std::max<std::uint64_t>(1, options.recent_tiles);  // slots - 1
    if (originals_from % G != 0 || originals_from > open * G || originals_from + back * G < open * G)
      corrupt("originals_from " + std::to_string(originals_from) + " does not fit " + std::to_string(tokens) +
              " tokens");
    // Expected payload, in 64-bit arithmetic bounded by the input size (every token costs bytes).
    const std::uint64_t width = kv_heads * head_dim;
    const std::uint64_t row_bytes = width / v_desc::container_unit * VFormat::row_bytes(32);
    const std::uint64_t tile_bytes = kv_heads * KFormat::tile_bytes(static_cast<std::size_t>(head_dim));
    if (tokens > size / row_bytes) corrupt("truncated: " + std::to_string(tokens) + " tokens need more than " +
                                           std::to_string(size) + " bytes");
    const std::uint64_t held = (tokens - originals_from) * (options.recent_tiles != 0 ? 2 : 1);
    const std::uint64_t sink = 2 * std::min<std::uint64_t>(options.sink_tokens, tokens);
    const std::uint64_t payload = tiles * tile_bytes + tokens * row_bytes +
                                  (held + sink + (options.center_keys ? 1 : 0)) * width * 4;
    if (get(data, container::at_payload_bytes, 8) != payload)
      corrupt("payload_bytes " + std::to_string(get(data, container::at_payload_bytes, 8)) + " != " +
              std::to_string(payload) + " for the shape in the header");
    if (size - container::header_bytes != payload)
      corrupt(std::string(size - container::header_bytes < payload ? "truncated" : "trailing bytes") + ": " +
              std::to_string(size) + " bytes, the header says " + std::to_string(container::header_bytes + payload));
    if (get(data, container::at_crc, 4) != checksum(data, size)) corrupt("checksum mismatch");
    return {static_cast<std::size_t>(kv_heads), static_cast<std::size_t>(head_dim), static_cast<std::size_t>(tokens),
            static_cast<std::size_t>(originals_from), options};
  }

  plan plan_;
  std::vector<std::byte> storage_;
  std::size_t size_ = 0;
  std::size_t originals_from_ = 0;
};

KPC_END_NAMESPACE

#endif  // KPC_CACHE_HPP
