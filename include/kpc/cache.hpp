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
#include <string>
#include <type_traits>
#include <vector>

#include "attention.hpp"
#include "config.hpp"
#include "detail/checks.hpp"
#include "detail/crc32.hpp"
#include "error.hpp"
#include "format.hpp"
#include "half.hpp"
#include "quantizer.hpp"
#include "rope.hpp"

KPC_BEGIN_NAMESPACE

namespace detail {

template <class Layout>
struct layout_code;  // the container's byte for each layout tag
template <int G>
struct layout_code<PerChannel<G>> : std::integral_constant<int, 1> {};
template <int B>
struct layout_code<PerToken<B>> : std::integral_constant<int, 2> {};
template <int B>
struct layout_code<PerTokenSymmetric<B>> : std::integral_constant<int, 3> {};

template <class Layout>
struct layout_unit;  // G for K tiles, B for V blocks
template <int G>
struct layout_unit<PerChannel<G>> : std::integral_constant<int, G> {};
template <int B>
struct layout_unit<PerToken<B>> : std::integral_constant<int, B> {};
template <int B>
struct layout_unit<PerTokenSymmetric<B>> : std::integral_constant<int, B> {};

/// Little-endian fields of the container, written byte by byte (host byte order does not matter).
inline void put_le(std::byte* dst, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) dst[i] = static_cast<std::byte>((value >> (8 * i)) & 0xFFu);
}
inline std::uint64_t get_le(const std::byte* src, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<std::uint64_t>(src[i]) << (8 * i);
  return value;
}

/// The cache container, version 1: a 64-byte header, then per KV head the K tiles, then per KV
/// head the V rows, then per KV head the held values of the tokens from originals_from on (f32).
struct cache_container {
  static constexpr unsigned char magic[8] = {'K', 'P', 'C', 'C', 'A', 'C', 'H', 'E'};
  static constexpr std::uint16_t version = 1;
  static constexpr std::size_t header_bytes = 64;
  // Header offsets.
  static constexpr std::size_t at_version = 8, at_format_version = 10, at_k_bits = 12, at_k_layout = 13,
                               at_k_group = 14, at_v_bits = 16, at_v_layout = 17, at_v_block = 18,
                               at_kv_heads = 20, at_head_dim = 24, at_reserved0 = 28, at_tokens = 32,
                               at_originals_from = 40, at_payload_bytes = 48, at_reserved1 = 56, at_crc = 60;
};

}  // namespace detail

/// One layer's K/V cache for one sequence: kv_heads heads of head_dim channels, up to capacity
/// tokens, all allocated by the constructor (memory_bytes() says how much, before allocating).
///
/// K is kept per channel (KFormat = Quantizer<Bits, PerChannel<G>>) in tiles of G tokens per KV
/// head; V per token (VFormat = Quantizer<8|4|3, PerToken<32>> or kpc::q4_0) in rows per KV head.
/// Each head's K tiles and V rows are contiguous, so attention for one KV head reads two
/// contiguous slabs (k_data/v_data give them to engines with kernels of their own).
///
/// Streaming: the open tile (the last, partial one) is re-encoded on every append from the values
/// the cache holds for its tokens, so attention always reads codes and errors never compound;
/// appending in any chunking gives the bytes of encoding all tokens at once. The cache holds the
/// f32 values of the open tile and of the tile before it (tokens originals_from() .. size()), so
/// rolling back up to G tokens is exact; older tiles keep only their codes.
///
/// Exactness: after truncate(n) the bytes equal those of a cache that only ever got the first n
/// tokens when n >= originals_from() or n % G == 0. Otherwise the tile that reopens takes its
/// decoded values as its held values (one more rounding: |error| <= scale/2 + scale'/2). The
/// same holds for shift_positions on tiles before originals_from() and copy_range from a start
/// that is not a multiple of G. V rows are exact in every case.
///
/// Memory: one allocation of memory_bytes() by the constructor; append, truncate, clear and attend
/// allocate nothing more (the SIMD kernels' per-thread scratch aside: up to 2 x channels floats,
/// made once per thread); copy_range, shift_positions, save and restore use temporary buffers.
///
/// Errors throw kpc::error (see error.hpp). append and restore change nothing when they throw;
/// other operations leave a valid cache. Not thread-safe for writes; const members may run
/// concurrently.
template <class KFormat, class VFormat>
class KVCache {
  using k_layout = typename KFormat::layout;
  using v_layout = typename VFormat::layout;
  static_assert(detail::layout_code<k_layout>::value == 1, "kpc::KVCache: K must use a PerChannel<G> layout");
  static_assert(detail::layout_code<v_layout>::value != 1,
                "kpc::KVCache: V must use a per-token layout (PerToken<32> or PerTokenSymmetric<32>)");
  using container = detail::cache_container;

 public:
  using k_format = KFormat;
  using v_format = VFormat;
  static constexpr std::size_t tile_tokens = KFormat::tile_tokens;

  /// Errors: invalid_shape (kv_heads or head_dim 0, head_dim not a multiple of 32, kv_heads *
  /// head_dim > format::max_channels, sizes beyond any buffer).
  KVCache(std::size_t kv_heads, std::size_t head_dim, std::size_t capacity)
      : plan_(make_plan(kv_heads, head_dim, capacity)), storage_(plan_.total) {}

  std::size_t kv_heads() const noexcept { return plan_.kv_heads; }
  std::size_t head_dim() const noexcept { return plan_.head_dim; }
  std::size_t capacity() const noexcept { return plan_.capacity; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// First token whose f32 values the cache holds (a multiple of G; see the class comment).
  std::size_t originals_from() const noexcept { return originals_from_; }

  // ---- memory -----------------------------------------------------------------------------

  /// Bytes the constructor allocates for this configuration: K tiles for capacity tokens rounded
  /// up to whole tiles, V rows, the held values of two tiles (f32) and one scratch tile per KV
  /// head; each region starts on a 64-byte boundary.
  static std::size_t memory_bytes(std::size_t kv_heads, std::size_t head_dim, std::size_t capacity) {
    return make_plan(kv_heads, head_dim, capacity).total;
  }
  /// Bytes this cache holds allocated (equal to memory_bytes of its configuration).
  std::size_t allocated_bytes() const noexcept { return storage_.capacity(); }
  /// Stored bytes per token in full tiles: kv_heads * (K tile bytes / G + V row bytes).
  static double bytes_per_token(std::size_t kv_heads, std::size_t head_dim) {
    const plan p = make_plan(kv_heads, head_dim, 0);
    return static_cast<double>(kv_heads) *
           (static_cast<double>(p.tile_bytes) / static_cast<double>(tile_tokens) + static_cast<double>(p.row_bytes));
  }

  // ---- streaming --------------------------------------------------------------------------

  /// Appends `tokens` tokens; k and v hold [tokens][kv_heads][head_dim] (float or kpc::half).
  template <class T>
  void append(const T* k, const T* v, std::size_t tokens) {
    append(k, kv_width(), v, kv_width(), tokens);
  }
  /// As above, token t's heads at k + t * k_stride (and v + t * v_stride), head h at + h * head_dim.
  /// Errors: buffer_too_small (past capacity), invalid_shape (stride < kv_heads * head_dim),
  /// null_pointer, non_finite, out_of_range (as the formats' encoders). Nothing changes on error.
  template <class T>
  void append(const T* k, std::size_t k_stride, const T* v, std::size_t v_stride, std::size_t tokens) {
    static_assert(detail::is_element<T>, "kpc: elements are float or kpc::half");
    const std::size_t width = kv_width(), dim = head_dim(), G = tile_tokens;
    detail::check_rows(k, tokens, width, k_stride, sizeof(T), "append k");
    detail::check_rows(v, tokens, width, v_stride, sizeof(T), "append v");
    if (tokens == 0) return;
    if (tokens > capacity() - size_)
      detail::raisef(errc::buffer_too_small, "KVCache::append: %zu tokens do not fit (size %zu, capacity %zu)", tokens,
                     size_, capacity());
    const std::size_t end = size_ + tokens, open = size_ / G, filled = size_ % G, last = (end - 1) / G;
    const std::size_t first_new_tile = filled != 0 ? open + 1 : open;
    // Phase 1, everything that can fail, touching only unused rows and tiles, unused held-value
    // rows and the scratch tiles: V rows, the open tile (into scratch) and the new tiles.
    for (std::size_t h = 0; h < kv_heads(); ++h)
      VFormat::encode(v + h * dim, v_stride, tokens, dim, row(h, size_), (capacity() - size_) * plan_.row_bytes);
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      const T* src = k + h * dim;
      if (filled != 0) {
        const std::size_t take = std::min(G - filled, tokens);
        store_values(src, k_stride, take, held(h, open) + filled * dim);
        KFormat::encode(held(h, open), dim, filled + take, dim, scratch(h), plan_.tile_bytes);
      }
      for (std::size_t j = first_new_tile; j <= last; ++j) {
        const std::size_t from = j * G - size_;  // index within this call
        KFormat::encode(src + from * k_stride, k_stride, std::min(G, tokens - from), dim, tile(h, j),
                        plan_.tile_bytes);
      }
    }
    // Phase 2, which cannot fail: publish the open tile, keep the values of the last two tiles.
    const std::size_t window = end / G == 0 ? 0 : end / G - 1;
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      if (filled != 0) std::memcpy(tile(h, open), scratch(h), plan_.tile_bytes);
      for (std::size_t j = std::max(window, first_new_tile); j * G < end; ++j) {
        const std::size_t from = j * G - size_;
        store_values(k + h * dim + from * k_stride, k_stride, std::min(G, tokens - from), held(h, j));
      }
    }
    originals_from_ = std::max(originals_from_, window * G);
    size_ = end;
  }

  /// Keeps the first n tokens (speculative-decoding rollback). Exact for n >= originals_from()
  /// or n % G == 0; see the class comment for the rest. Errors: out_of_range (n > size()).
  void truncate(std::size_t n) {
    if (n > size_)
      detail::raisef(errc::out_of_range, "KVCache::truncate: %zu > size %zu", n, size_);
    if (n == size_) return;
    const std::size_t G = tile_tokens, tile_index = n / G, kept = n % G;
    if (kept != 0) {
      for (std::size_t h = 0; h < kv_heads(); ++h) {
        if (n < originals_from_)  // a sealed tile reopens: its decoded values become its held values
          KFormat::decode(tile(h, tile_index), plan_.tile_bytes, tokens_in_tile(tile_index), head_dim(),
                          held(h, tile_index), head_dim());
        KFormat::encode(held(h, tile_index), head_dim(), kept, head_dim(), tile(h, tile_index), plan_.tile_bytes);
      }
      originals_from_ = std::min(originals_from_, tile_index * G);
    } else {
      originals_from_ = std::min(originals_from_, n);
    }
    size_ = n;
  }

  /// Forgets every token (the allocation stays).
  void clear() noexcept { size_ = originals_from_ = 0; }

  /// Rotates the keys of tokens [first, size()) by `delta` RoPE positions (decode, rotate,
  /// encode; held values are rotated directly). Every tile that holds such a token is re-encoded.
  /// Errors: out_of_range (first > size(), bad rope parameters), invalid_shape (rotary_dims).
  void shift_positions(std::size_t first, double delta, const rope_config& rope) {
    if (first > size_)
      detail::raisef(errc::out_of_range, "KVCache::shift_positions: first %zu > size %zu", first, size_);
    float probe[2] = {0.0f, 0.0f};  // validates the parameters before any tile changes
    rope_shift(probe, 0, head_dim(), head_dim(), delta, rope);
    if (first == size_) return;
    const std::size_t G = tile_tokens, dim = head_dim();
    std::vector<float> decoded;
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      for (std::size_t j = first / G; j * G < size_; ++j) {
        const std::size_t count = tokens_in_tile(j), skip = std::max(first, j * G) - j * G;
        float* values = held(h, j);
        if (j * G < originals_from_) {
          decoded.resize(G * dim);
          values = decoded.data();
          KFormat::decode(tile(h, j), plan_.tile_bytes, count, dim, values, dim);
        }
        rope_shift(values + skip * dim, count - skip, dim, dim, delta, rope);
        KFormat::encode(values, dim, count, dim, tile(h, j), plan_.tile_bytes);
      }
    }
  }

  /// A new cache (capacity: `capacity`, or this cache's when 0) holding tokens [first, last): a
  /// fork of a prefix (first = 0) or of any range. K tiles and V rows are copied byte for byte
  /// when first % G == 0, except the new open tile, which is re-encoded from the held or decoded
  /// values of its tokens. Errors: out_of_range (bad range), buffer_too_small (capacity < range).
  KVCache copy_range(std::size_t first, std::size_t last, std::size_t capacity = 0) const {
    if (first > last || last > size_)
      detail::raisef(errc::out_of_range, "KVCache::copy_range: [%zu, %zu) is not within [0, %zu)", first, last, size_);
    const std::size_t n = last - first, G = tile_tokens, dim = head_dim();
    if (capacity == 0) capacity = this->capacity();
    if (capacity < n)
      detail::raisef(errc::buffer_too_small, "KVCache::copy_range: capacity %zu < %zu tokens", capacity, n);
    KVCache out(kv_heads(), dim, capacity);
    const std::size_t copied_tiles = first % G == 0 ? n / G : 0;
    const std::size_t window = n / G == 0 ? 0 : n / G - 1;
    std::vector<float> values(G * dim);
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      if (n != 0) std::memcpy(out.row(h, 0), row(h, first), n * plan_.row_bytes);
      if (copied_tiles != 0) std::memcpy(out.tile(h, 0), tile(h, first / G), copied_tiles * plan_.tile_bytes);
      for (std::size_t j = copied_tiles; j * G < n; ++j) {
        const std::size_t count = std::min(G, n - j * G);
        values_of(h, first + j * G, count, values.data());
        KFormat::encode(values.data(), dim, count, dim, out.tile(h, j), plan_.tile_bytes);
      }
      for (std::size_t j = window; j * G < n; ++j) values_of(h, first + j * G, std::min(G, n - j * G), out.held(h, j));
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

  /// Decodes tokens [first, first + count) of head h's keys (or values) into dst[count][head_dim].
  template <class T>
  void decode_k(std::size_t h, std::size_t first, std::size_t count, T* dst) const {
    check_range(first, count, "decode_k");
    checked_head(h);
    const std::size_t G = tile_tokens, dim = head_dim();
    std::vector<float> values(G * dim);
    for (std::size_t t = first; t < first + count;) {
      const std::size_t j = t / G, n = std::min((j + 1) * G, first + count) - t;
      KFormat::decode(tile(h, j), plan_.tile_bytes, tokens_in_tile(j), dim, values.data(), dim);
      for (std::size_t i = 0; i < n * dim; ++i)
        dst[(t - first) * dim + i] = from_float<T>(values[(t - j * G) * dim + i]);
      t += n;
    }
  }
  template <class T>
  void decode_v(std::size_t h, std::size_t first, std::size_t count, T* dst) const {
    check_range(first, count, "decode_v");
    VFormat::decode(row(checked_head(h), first), count * plan_.row_bytes, count, head_dim(), dst, head_dim());
  }

  /// decode_attention (attention.hpp) of a group of query heads, q [group][head_dim] -> out
  /// [group][head_dim], over KV head h's tokens: all of them, or the first `tokens` (a causal
  /// prefix; out_of_range past size()).
  void attend(std::size_t h, const float* q, std::size_t group, const attention_params& params, float* out) const {
    attend(h, q, group, params, out, size_);
  }
  void attend(std::size_t h, const float* q, std::size_t group, const attention_params& params, float* out,
              std::size_t tokens) const {
    check_range(0, tokens, "attend");
    decode_attention<KFormat, VFormat>(q, group, k_data(h), k_bytes(), v_data(h), v_bytes(), tokens, head_dim(),
                                       params, out);
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
    put(header, container::at_k_layout, detail::layout_code<k_layout>::value, 1);
    put(header, container::at_k_group, tile_tokens, 2);
    put(header, container::at_v_bits, VFormat::bits, 1);
    put(header, container::at_v_layout, detail::layout_code<v_layout>::value, 1);
    put(header, container::at_v_block, detail::layout_unit<v_layout>::value, 2);
    put(header, container::at_kv_heads, kv_heads(), 4);
    put(header, container::at_head_dim, head_dim(), 4);
    put(header, container::at_tokens, size_, 8);
    put(header, container::at_originals_from, originals_from_, 8);
    put(header, container::at_payload_bytes, payload, 8);
    std::byte* p = dst + container::header_bytes;
    const std::size_t tiles_bytes = KFormat::encoded_bytes(size_, head_dim()), rows_bytes = size_ * plan_.row_bytes;
    for (std::size_t h = 0; h < kv_heads(); ++h, p += tiles_bytes) std::memcpy(p, tile(h, 0), tiles_bytes);
    for (std::size_t h = 0; h < kv_heads(); ++h, p += rows_bytes) std::memcpy(p, row(h, 0), rows_bytes);
    for (std::size_t h = 0; h < kv_heads(); ++h)
      for (std::size_t t = originals_from_; t < size_; ++t)
        for (std::size_t c = 0; c < head_dim(); ++c, p += 4) {
          std::uint32_t bits;
          std::memcpy(&bits, held(h, t / tile_tokens) + (t % tile_tokens) * head_dim() + c, 4);
          detail::put_le(p, bits, 4);
        }
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
  /// the same formats, kv_heads and head_dim, and fit the capacity. Errors (nothing changes):
  /// corrupt_data (not a container, truncated, trailing bytes, checksum mismatch, inconsistent
  /// fields, non-finite held values, an open tile that differs from its held values),
  /// unsupported (another container or format version), invalid_shape (other formats or shape),
  /// buffer_too_small (more tokens than capacity()), null_pointer.
  void restore(const std::byte* data, std::size_t size) {
    const image in = parse(data, size);
    if (in.kv_heads != kv_heads() || in.head_dim != head_dim())
      detail::raisef(errc::invalid_shape, "KVCache::restore: the image holds %zu x %zu channels, this cache %zu x %zu",
                     in.kv_heads, in.head_dim, kv_heads(), head_dim());
    if (in.tokens > capacity())
      detail::raisef(errc::buffer_too_small, "KVCache::restore: the image holds %zu tokens, the capacity is %zu",
                     in.tokens, capacity());
    const std::size_t G = tile_tokens, dim = head_dim();
    const std::size_t tiles_bytes = KFormat::encoded_bytes(in.tokens, dim), rows_bytes = in.tokens * plan_.row_bytes;
    const std::byte* k_in = data + container::header_bytes;
    const std::byte* v_in = k_in + kv_heads() * tiles_bytes;
    const std::byte* held_in = v_in + kv_heads() * rows_bytes;
    const std::size_t held_tokens = in.tokens - in.originals_from;
    std::vector<float> values(held_tokens * dim * kv_heads());
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::uint32_t bits = static_cast<std::uint32_t>(detail::get_le(held_in + 4 * i, 4));
      std::memcpy(&values[i], &bits, 4);
      if (!std::isfinite(values[i])) detail::raise(errc::corrupt_data, "KVCache::restore: a held value is not finite");
    }
    if (in.tokens % G != 0) {  // the open tile must be what its held values encode to
      const std::size_t open = in.tokens / G, count = in.tokens % G, offset = open * G - in.originals_from;
      for (std::size_t h = 0; h < kv_heads(); ++h) {
        KFormat::encode(values.data() + (h * held_tokens + offset) * dim, dim, count, dim, scratch(h),
                        plan_.tile_bytes);
        if (std::memcmp(scratch(h), k_in + h * tiles_bytes + open * plan_.tile_bytes, plan_.tile_bytes) != 0)
          detail::raise(errc::corrupt_data, "KVCache::restore: the open K tile does not match its held values");
      }
    }
    for (std::size_t h = 0; h < kv_heads(); ++h) {
      std::memcpy(tile(h, 0), k_in + h * tiles_bytes, tiles_bytes);
      std::memcpy(row(h, 0), v_in + h * rows_bytes, rows_bytes);
      for (std::size_t t = in.originals_from; t < in.tokens; ++t)
        std::memcpy(held(h, t / G) + (t % G) * dim, values.data() + (h * held_tokens + t - in.originals_from) * dim,
                    dim * sizeof(float));
    }
    size_ = in.tokens;
    originals_from_ = in.originals_from;
  }

  /// A new cache from a container, with the container's shape and capacity max(capacity, tokens).
  static KVCache load(const std::byte* data, std::size_t size, std::size_t capacity = 0) {
    const image in = parse(data, size);
    KVCache cache(in.kv_heads, in.head_dim, std::max(capacity, in.tokens));
    cache.restore(data, size);
    return cache;
  }

 private:
  struct plan {
    std::size_t kv_heads = 0, head_dim = 0, capacity = 0;
    std::size_t tile_bytes = 0, row_bytes = 0;
    std::size_t k_head = 0, v_head = 0, held_tile = 0;  // per-head region strides (64-byte multiples)
    std::size_t k_at = 0, v_at = 0, held_at = 0, scratch_at = 0, total = 0;
  };
  struct image {
    std::size_t kv_heads, head_dim, tokens, originals_from;
  };

  static std::size_t round64(std::size_t n) {
    if (n > detail::max_bytes - 63) detail::raise(errc::invalid_shape, "KVCache: size exceeds any buffer");
    return (n + 63) / 64 * 64;
  }
  static std::size_t add(std::size_t a, std::size_t b) {
    if (b > detail::max_bytes - a) detail::raise(errc::invalid_shape, "KVCache: size exceeds any buffer");
    return a + b;
  }
  static plan make_plan(std::size_t kv_heads, std::size_t head_dim, std::size_t capacity) {
    if (kv_heads == 0 || head_dim == 0 || kv_heads > format::max_channels / head_dim)
      detail::raisef(errc::invalid_shape, "KVCache: kv_heads %zu x head_dim %zu must be in [1, %zu] channels", kv_heads,
                     head_dim, format::max_channels);
    plan p;
    p.kv_heads = kv_heads;
    p.head_dim = head_dim;
    p.capacity = capacity;
    p.tile_bytes = KFormat::tile_bytes(head_dim);
    p.row_bytes = VFormat::row_bytes(head_dim);
    const std::size_t tiles = capacity / tile_tokens + (capacity % tile_tokens != 0);
    p.k_head = round64(detail::checked_mul(tiles, p.tile_bytes));
    p.v_head = round64(detail::checked_mul(capacity, p.row_bytes));
    p.held_tile = round64(tile_tokens * head_dim * sizeof(float));
    p.k_at = 0;
    p.v_at = add(p.k_at, detail::checked_mul(kv_heads, p.k_head));
    p.held_at = add(p.v_at, detail::checked_mul(kv_heads, p.v_head));
    p.scratch_at = add(p.held_at, detail::checked_mul(2 * kv_heads, p.held_tile));
    p.total = add(p.scratch_at, round64(detail::checked_mul(kv_heads, p.tile_bytes)));
    return p;
  }

  std::size_t kv_width() const noexcept { return kv_heads() * head_dim(); }
  std::size_t tokens_in_tile(std::size_t j) const { return std::min(tile_tokens, size_ - j * tile_tokens); }
  std::size_t checked_head(std::size_t h) const {
    if (h >= kv_heads())
      detail::raisef(errc::out_of_range, "KVCache: head %zu >= kv_heads %zu", h, kv_heads());
    return h;
  }
  void check_range(std::size_t first, std::size_t count, const char* what) const {
    if (first > size_ || count > size_ - first)
      detail::raisef(errc::out_of_range, "KVCache::%s: tokens [%zu, +%zu) exceed size %zu", what, first, count, size_);
  }

  std::byte* tile(std::size_t h, std::size_t j) { return storage_.data() + plan_.k_at + h * plan_.k_head + j * plan_.tile_bytes; }
  const std::byte* tile(std::size_t h, std::size_t j) const {
    return storage_.data() + plan_.k_at + h * plan_.k_head + j * plan_.tile_bytes;
  }
  std::byte* row(std::size_t h, std::size_t t) { return storage_.data() + plan_.v_at + h * plan_.v_head + t * plan_.row_bytes; }
  const std::byte* row(std::size_t h, std::size_t t) const {
    return storage_.data() + plan_.v_at + h * plan_.v_head + t * plan_.row_bytes;
  }
  /// Held f32 values of tile j (two slots: tile j lives in slot j % 2) of head h, [G][head_dim].
  float* held(std::size_t h, std::size_t j) {
    return reinterpret_cast<float*>(storage_.data() + plan_.held_at + ((j % 2) * kv_heads() + h) * plan_.held_tile);
  }
  const float* held(std::size_t h, std::size_t j) const {
    return reinterpret_cast<const float*>(storage_.data() + plan_.held_at +
                                          ((j % 2) * kv_heads() + h) * plan_.held_tile);
  }
  std::byte* scratch(std::size_t h) { return storage_.data() + plan_.scratch_at + h * plan_.tile_bytes; }

  template <class T>
  void store_values(const T* src, std::size_t stride, std::size_t tokens, float* dst) const {
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t c = 0; c < head_dim(); ++c) dst[t * head_dim() + c] = to_float(src[t * stride + c]);
  }
  /// The values the cache holds for tokens [first, first + count) of head h's keys: held values
  /// from originals_from() on, decoded values before.
  void values_of(std::size_t h, std::size_t first, std::size_t count, float* dst) const {
    const std::size_t G = tile_tokens, dim = head_dim();
    std::vector<float> decoded;
    for (std::size_t t = first; t < first + count;) {
      const std::size_t j = t / G, n = std::min((j + 1) * G, first + count) - t;
      const float* values = held(h, j);
      if (j * G < originals_from_) {
        decoded.resize(G * dim);
        KFormat::decode(tile(h, j), plan_.tile_bytes, tokens_in_tile(j), dim, decoded.data(), dim);
        values = decoded.data();
      }
      std::memcpy(dst + (t - first) * dim, values + (t - j * G) * dim, n * dim * sizeof(float));
      t += n;
    }
  }

  std::size_t payload_bytes(std::size_t tokens, std::size_t originals_from) const {
    return kv_heads() * (KFormat::encoded_bytes(tokens, head_dim()) + tokens * plan_.row_bytes +
                         (tokens - originals_from) * head_dim() * sizeof(float));
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
    const std::uint64_t expected[6] = {KFormat::bits, detail::layout_code<k_layout>::value, tile_tokens,
                                       VFormat::bits, detail::layout_code<v_layout>::value,
                                       detail::layout_unit<v_layout>::value};
    if (!std::equal(formats, formats + 6, expected)) {
      std::string found, wanted;
      for (int i = 0; i < 6; ++i) {
        found += (i ? "," : "") + std::to_string(formats[i]);
        wanted += (i ? "," : "") + std::to_string(expected[i]);
      }
      detail::raise(errc::invalid_shape, "KVCache: the image's formats (k bits,layout,G, v bits,layout,block) are " +
                                             found + ", this cache's " + wanted);
    }
    if (get(data, container::at_reserved0, 4) != 0 || get(data, container::at_reserved1, 4) != 0)
      corrupt("reserved header fields are not zero");
    const std::uint64_t kv_heads = get(data, container::at_kv_heads, 4), head_dim = get(data, container::at_head_dim, 4);
    const std::uint64_t tokens = get(data, container::at_tokens, 8);
    const std::uint64_t originals_from = get(data, container::at_originals_from, 8);
    if (kv_heads == 0 || head_dim == 0 || kv_heads > format::max_channels / head_dim ||
        head_dim % detail::layout_unit<v_layout>::value != 0)
      corrupt("kv_heads " + std::to_string(kv_heads) + " x head_dim " + std::to_string(head_dim) + " is not a shape");
    const std::uint64_t G = tile_tokens, tiles = tokens / G + (tokens % G != 0), open = tokens / G;
    if (originals_from % G != 0 || originals_from > open * G || originals_from + G < open * G)
      corrupt("originals_from " + std::to_string(originals_from) + " does not fit " + std::to_string(tokens) +
              " tokens");
    // Expected payload, in 64-bit arithmetic bounded by the input size (every token costs bytes).
    const std::uint64_t width = kv_heads * head_dim;
    const std::uint64_t row_bytes = width / detail::layout_unit<v_layout>::value * VFormat::row_bytes(32);
    const std::uint64_t tile_bytes = kv_heads * KFormat::tile_bytes(static_cast<std::size_t>(head_dim));
    if (tokens > size / row_bytes) corrupt("truncated: " + std::to_string(tokens) + " tokens need more than " +
                                           std::to_string(size) + " bytes");
    const std::uint64_t payload = tiles * tile_bytes + tokens * row_bytes + (tokens - originals_from) * width * 4;
    if (get(data, container::at_payload_bytes, 8) != payload)
      corrupt("payload_bytes " + std::to_string(get(data, container::at_payload_bytes, 8)) + " != " +
              std::to_string(payload) + " for the shape in the header");
    if (size - container::header_bytes != payload)
      corrupt(std::string(size - container::header_bytes < payload ? "truncated" : "trailing bytes") + ": " +
              std::to_string(size) + " bytes, the header says " + std::to_string(container::header_bytes + payload));
    if (get(data, container::at_crc, 4) != checksum(data, size)) corrupt("checksum mismatch");
    return {static_cast<std::size_t>(kv_heads), static_cast<std::size_t>(head_dim), static_cast<std::size_t>(tokens),
            static_cast<std::size_t>(originals_from)};
  }

  plan plan_;
  std::vector<std::byte> storage_;
  std::size_t size_ = 0;
  std::size_t originals_from_ = 0;
};

KPC_END_NAMESPACE

#endif  // KPC_CACHE_HPP
