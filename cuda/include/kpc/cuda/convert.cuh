// SPDX-License-Identifier: MIT
// Encode, decode and streaming append on the GPU. Device buffers hold a cache the way
// kpc::KVCache does: per KV head, a slab of K tiles or V rows (head h's at data + h * head_stride),
// so a cache written here is the CPU's bytes (copy a head's slab to KVCache::k_data(h)'s layout
// and back). Launchers check shapes, enqueue on `stream` and return the launch's cudaError_t;
// kernels record the first errc they meet in *status when status is not null (device memory,
// 0 = ok): non_finite / out_of_range from encoders, corrupt_data from decoders.
#ifndef KPC_CUDA_CONVERT_CUH
#define KPC_CUDA_CONVERT_CUH

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include <kpc/config.hpp>
#include <kpc/format.hpp>
#include <kpc/half.hpp>
#include <kpc/ref/per_channel.hpp>
#include <kpc/ref/per_token.hpp>

#include "codec.cuh"
#include "detail/device.cuh"

KPC_BEGIN_NAMESPACE
namespace cuda {

/// Rows of [tokens][heads][head_dim] elements (float or kpc::half): token t, head h at
/// data + t * row_stride + h * head_dim (row_stride in elements, >= heads * head_dim).
template <class T>
struct rows {
  T* data;
  std::size_t row_stride;
};

/// Per-head slabs of encoded bytes: head h's at data + h * head_stride.
template <class Byte>
struct slabs {
  Byte* data;
  std::size_t head_stride;
};

/// The shape every call shares: KV heads and channels per head.
struct heads_shape {
  std::size_t heads;
  std::size_t head_dim;
};

namespace detail {

template <class Codec>
inline bool valid(const heads_shape& shape) {
  return shape.heads != 0 && shape.heads <= 65535 && Codec::valid_channels(shape.head_dim);
}

/// Heads' slabs must not overlap: the stride holds `end_tokens` tokens (one head needs no stride).
template <class Codec, class Byte>
inline bool valid_stride(const slabs<Byte>& s, const heads_shape& shape, std::size_t end_tokens) {
  return shape.heads == 1 || s.head_stride >= Codec::slab_bytes(end_tokens, shape.head_dim);
}

template <class T>
inline bool valid_rows(const rows<T>& r, const heads_shape& shape, std::size_t tokens) {
  return tokens == 0 || (r.data != nullptr && r.row_stride >= shape.heads * shape.head_dim);
}

/// Where a K tile's tokens come from: tokens before `new_from` from the held values of the open
/// tile (held[(h * G + t - held_first) * head_dim + c], f32), the rest from the caller's rows.
template <class T, int G>
struct tile_source {
  rows<const T> fresh;
  std::size_t new_from;
  const float* held;
  std::size_t held_first;

  /// The `present` values of channel c of head h's tile starting at token `first`, as f32.
  __device__ void load_channel(std::size_t h, std::size_t head_dim, std::size_t first, int present, std::size_t c,
                               float* x) const {
    for (int i = 0; i < present; ++i) {
      const std::size_t t = first + static_cast<std::size_t>(i);
      x[i] = t < new_from ? held[(h * G + (t - held_first)) * head_dim + c]
                          : to_float(fresh.data[(t - new_from) * fresh.row_stride + h * head_dim + c]);
    }
  }
};

/// One block per (tile, head): the reference's steps 1-5 with channels spread over the threads.
/// Steps 1-2 need the tile-wide maximum scale and smallest/largest zero; those are reduced with
/// the reference's first-of-equals rule (detail::first_min/first_max), then every thread derives
/// the same fp16 supers. Each thread holds its channel's G values in registers; the second pass
/// reloads them (as the reference recomputes the range rather than keeping scratch).
template <int Bits, int G, class T>
__global__ void __launch_bounds__(block_threads) encode_k_tiles(tile_source<T, G> src, std::size_t first_tile,
                                                               std::size_t end_token, std::size_t head_dim,
                                                               slabs<std::byte> dst, int* status) {
  using tile = format::k_tile<Bits, G>;
  __shared__ ranked scratch[warps_per_block];
  const std::size_t h = blockIdx.y, j = first_tile + blockIdx.x, first = j * G;
  const int present = end_token - first < static_cast<std::size_t>(G) ? static_cast<int>(end_token - first) : G;
  std::byte* out = dst.data + h * dst.head_stride + j * tile::bytes(head_dim);

  ranked max_scale{0.0f, 0xFFFFFFFFu}, min_zero{INFINITY, 0xFFFFFFFFu}, max_zero{-INFINITY, 0xFFFFFFFFu};
  bool finite = true;
  float x[G];
  for (std::size_t c = threadIdx.x; c < head_dim; c += blockDim.x) {
    src.load_channel(h, head_dim, first, present, c, x);
    const ref::value_range range = ref::channel_range(x, 1, present, 0);
    const unsigned index = static_cast<unsigned>(c);
    finite = finite && range.finite;
    max_scale = first_max(max_scale, {ref::k_channel_scale<Bits>(range.min, range.max), index});
    min_zero = first_min(min_zero, {range.min, index});
    max_zero = first_max(max_zero, {range.min, index});
  }
  max_scale = block_reduce(max_scale, first_max, scratch);
  min_zero = block_reduce(min_zero, first_min, scratch);
  max_zero = block_reduce(max_zero, first_max, scratch);
  finite = __syncthreads_and(finite) != 0;

  const ref::k_supers supers = ref::k_make_supers(max_scale.value, min_zero.value, max_zero.value);
  std::byte header[tile::offset_scale_codes];
  kpc::detail::store_u16le(header + tile::offset_scale_step, fp32_to_fp16_bits(supers.scale_step));
  kpc::detail::store_u16le(header + tile::offset_zero_min, fp32_to_fp16_bits(supers.zero_min));
  kpc::detail::store_u16le(header + tile::offset_zero_step, fp32_to_fp16_bits(supers.zero_step));
  const ref::k_tile_meta meta = ref::k_load_meta(header);
  if (threadIdx.x < tile::offset_scale_codes) out[threadIdx.x] = header[threadIdx.x];

  for (std::size_t c = threadIdx.x; c < head_dim; c += blockDim.x) {
    src.load_channel(h, head_dim, first, present, c, x);
    const ref::value_range range = ref::channel_range(x, 1, present, 0);
    const unsigned scale_code = ref::k_scale_code(ref::k_channel_scale<Bits>(range.min, range.max), supers);
    const unsigned zero_code = ref::k_zero_code(range.min, supers);
    kpc::detail::store_u8(out + tile::offset_scale_codes + c, scale_code);
    kpc::detail::store_u8(out + tile::offset_zero_codes(head_dim) + c, zero_code);
    ref::encode_k_channel_codes<Bits, G>(x, 1, present, 0, ref::k_decoded_scale(scale_code, meta.scale_step),
                                         ref::k_decoded_zero(zero_code, meta.zero_min, meta.zero_step),
                                         out + tile::offset_channel_codes(head_dim, c));
  }
  if (threadIdx.x == 0) report(status, !finite ? errc::non_finite : !meta.finite ? errc::out_of_range : errc::ok);
}

/// Keeps the open tile's values after an append: tokens [open_first, end) that came from the
/// caller's rows (t >= new_from) are copied into held (f32). Runs after encode_k_tiles, which reads held.
template <class T, int G>
__global__ void hold_open_tile(tile_source<T, G> src, std::size_t open_first, std::size_t end_token,
                               heads_shape shape, float* held) {
  const std::size_t first = open_first > src.new_from ? open_first : src.new_from;
  const std::size_t per_head = (end_token - first) * shape.head_dim;
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= per_head * shape.heads) return;
  const std::size_t h = i / per_head, t = first + i % per_head / shape.head_dim, c = i % shape.head_dim;
  held[(h * G + (t - open_first)) * shape.head_dim + c] =
      to_float(src.fresh.data[(t - src.new_from) * src.fresh.row_stride + h * shape.head_dim + c]);
}

/// The 32-value block of a token row that this thread of encode_blocks/decode_blocks handles:
/// threads walk blocks, then heads, then tokens (rows of `tokens` tokens, the first in the slab at
/// first_token). `values`: the block's offset in a row; `bytes`: its offset in the head's slab.
struct row_block {
  bool valid;
  std::size_t token, head, values, bytes;
};

template <class Codec>
__device__ inline row_block this_threads_block(std::size_t tokens, std::size_t first_token, const heads_shape& shape) {
  const std::size_t blocks_per_row = shape.head_dim / format::group_values;
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tokens * shape.heads * blocks_per_row) return {false, 0, 0, 0, 0};
  const std::size_t b = i % blocks_per_row, h = i / blocks_per_row % shape.heads, t = i / blocks_per_row / shape.heads;
  return {true, t, h, h * shape.head_dim + b * format::group_values,
          Codec::slab_bytes(first_token + t, shape.head_dim) + b * Codec::block::bytes};
}

/// One thread per 32-value block of a token row: the reference encoder, as is.
template <class Codec, class T>
__global__ void encode_blocks(rows<const T> src, std::size_t tokens, std::size_t first_token, heads_shape shape,
                              slabs<std::byte> dst, int* status) {
  const row_block at = this_threads_block<Codec>(tokens, first_token, shape);
  if (!at.valid) return;
  report(status, Codec::encode_block(src.data + at.token * src.row_stride + at.values,
                                     dst.data + at.head * dst.head_stride + at.bytes));
}

template <class Codec, class T>
__global__ void decode_blocks(slabs<const std::byte> src, std::size_t first_token, std::size_t tokens,
                              heads_shape shape, rows<T> dst, int* status) {
  const row_block at = this_threads_block<Codec>(tokens, first_token, shape);
  if (!at.valid) return;
  report(status, Codec::decode_block(src.data + at.head * src.head_stride + at.bytes,
                                     dst.data + at.token * dst.row_stride + at.values));
}

/// One block per (tile, head), threads over channels: the reference's decode_k_channel.
template <int Bits, int G, class T>
__global__ void __launch_bounds__(block_threads) decode_k_tiles(slabs<const std::byte> src, std::size_t first_tile,
                                                               std::size_t end_token, heads_shape shape, rows<T> dst,
                                                               int* status) {
  using tile = format::k_tile<Bits, G>;
  const std::size_t h = blockIdx.y, j = first_tile + blockIdx.x, first = j * G;
  const int present = end_token - first < static_cast<std::size_t>(G) ? static_cast<int>(end_token - first) : G;
  const std::byte* in = src.data + h * src.head_stride + j * tile::bytes(shape.head_dim);
  const ref::k_tile_meta meta = ref::k_load_meta(in);
  if (!meta.finite) {  // as the reference: refuse, write nothing
    if (threadIdx.x == 0) report(status, errc::corrupt_data);
    return;
  }
  T* out = dst.data + (first - first_tile * G) * dst.row_stride + h * shape.head_dim;
  for (std::size_t c = threadIdx.x; c < shape.head_dim; c += blockDim.x)
    ref::decode_k_channel<Bits, G>(in, meta, present, shape.head_dim, c, out, dst.row_stride);
}

template <class Codec>
inline unsigned tiles_between(std::size_t first_token, std::size_t end_token) {
  const std::size_t first_tile = first_token / Codec::unit_tokens;
  const std::size_t tiles = (end_token + Codec::unit_tokens - 1) / Codec::unit_tokens - first_tile;
  return tiles <= 0x7FFFFFFFu ? static_cast<unsigned>(tiles) : 0u;
}

}  // namespace detail

/// Bytes of one head's slab for `tokens` tokens (equal to kpc::Quantizer's encoded_bytes).
template <class Codec>
KPC_HOST_DEVICE constexpr std::size_t slab_bytes(std::size_t tokens, std::size_t head_dim) {
  return Codec::slab_bytes(tokens, head_dim);
}

/// Encodes `tokens` rows into tokens [first_token, first_token + tokens) of every head's slab, as
/// KVCache would hold them had it got exactly those rows there. first_token must be a multiple of
/// the codec's unit (G for K tiles; any token for rows); a K tile that the rows end inside is
/// written as a partial tile (absent codes 0). cudaErrorInvalidValue for bad shapes, null
/// pointers or an unaligned first_token.
template <class Codec, class T>
cudaError_t encode(rows<const T> src, std::size_t tokens, std::size_t first_token, heads_shape shape,
                   slabs<std::byte> dst, cudaStream_t stream, int* status = nullptr) {
  if (!detail::valid<Codec>(shape) || !detail::valid_rows(src, shape, tokens) || first_token % Codec::unit_tokens != 0 ||
      !detail::valid_stride<Codec>(dst, shape, first_token + tokens))
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  if (dst.data == nullptr) return cudaErrorInvalidValue;
  if constexpr (Codec::per_channel) {
    constexpr int G = Codec::unit_tokens;
    const dim3 grid(detail::tiles_between<Codec>(first_token, first_token + tokens), static_cast<unsigned>(shape.heads));
    if (grid.x == 0) return cudaErrorInvalidValue;
    const detail::tile_source<T, G> source{src, first_token, nullptr, first_token};
    const auto kernel = detail::encode_k_tiles<Codec::tile::bits, G, T>;
    KPC_CUDA_LAUNCH(kernel, grid, detail::block_threads, 0, stream)(source, first_token / G, first_token + tokens, shape.head_dim, dst, status);
  } else {
    const unsigned grid = detail::grid_for(tokens * shape.heads * (shape.head_dim / format::group_values));
    if (grid == 0) return cudaErrorInvalidValue;
    const auto kernel = detail::encode_blocks<Codec, T>;
    KPC_CUDA_LAUNCH(kernel, grid, detail::block_threads, 0, stream)(src, tokens, first_token, shape, dst, status);
  }
  return cudaGetLastError();
}

/// Decodes tokens [first_token, first_token + tokens) of every head's slab into dst rows
/// (first_token a multiple of the unit). Tiles or blocks whose fp16 fields are not finite are
/// left unwritten and reported as errc::corrupt_data.
template <class Codec, class T>
cudaError_t decode(slabs<const std::byte> src, std::size_t first_token, std::size_t tokens, heads_shape shape,
                   rows<T> dst, cudaStream_t stream, int* status = nullptr) {
  if (!detail::valid<Codec>(shape) || first_token % Codec::unit_tokens != 0 ||
      !detail::valid_stride<Codec>(src, shape, first_token + tokens) ||
      (tokens != 0 && (dst.data == nullptr || dst.row_stride < shape.heads * shape.head_dim || src.data == nullptr)))
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  if constexpr (Codec::per_channel) {
    constexpr int G = Codec::unit_tokens;
    const dim3 grid(detail::tiles_between<Codec>(first_token, first_token + tokens), static_cast<unsigned>(shape.heads));
    if (grid.x == 0) return cudaErrorInvalidValue;
    const auto kernel = detail::decode_k_tiles<Codec::tile::bits, G, T>;
    KPC_CUDA_LAUNCH(kernel, grid, detail::block_threads, 0, stream)(src, first_token / G, first_token + tokens, shape, dst, status);
  } else {
    const unsigned grid = detail::grid_for(tokens * shape.heads * (shape.head_dim / format::group_values));
    if (grid == 0) return cudaErrorInvalidValue;
    const auto kernel = detail::decode_blocks<Codec, T>;
    KPC_CUDA_LAUNCH(kernel, grid, detail::block_threads, 0, stream)(src, first_token, tokens, shape, dst, status);
  }
  return cudaGetLastError();
}

/// f32 values a streaming K cache keeps for its open tile: heads * G * head_dim floats.
template <class Codec>
KPC_HOST_DEVICE constexpr std::size_t held_floats(heads_shape shape) {
  static_assert(Codec::per_channel, "kpc::cuda::held_floats: only per-channel K keeps held values");
  return shape.heads * static_cast<std::size_t>(Codec::unit_tokens) * shape.head_dim;
}

/// Streaming append of `count` tokens to a cache that holds `size` tokens, as KVCache::append: for
/// per-channel K the open tile is re-encoded from its held values (`held`, held_floats(shape)
/// floats, kept up to date here) plus the new rows, and every tile the rows reach is written; the
/// bytes equal those of encoding all size + count tokens at once. Per-token codecs write the new
/// rows (held is not used and may be null). `held` must have been written by the appends that
/// brought the cache to `size` (a cache filled by encode() has no held values for its open tile).
/// Two kernels on `stream`; the caller keeps the capacity (the slabs must have room for
/// slab_bytes(size + count)).
template <class Codec, class T>
cudaError_t append(rows<const T> src, std::size_t count, std::size_t size, heads_shape shape, slabs<std::byte> dst,
                   float* held, cudaStream_t stream, int* status = nullptr) {
  if constexpr (!Codec::per_channel) {
    return encode<Codec>(src, count, size, shape, dst, stream, status);
  } else {
    constexpr int G = Codec::unit_tokens;
    if (!detail::valid<Codec>(shape) || !detail::valid_rows(src, shape, count) ||
        !detail::valid_stride<Codec>(dst, shape, size + count))
      return cudaErrorInvalidValue;
    if (count == 0) return cudaSuccess;
    if (dst.data == nullptr || held == nullptr) return cudaErrorInvalidValue;
    const std::size_t open_first = size / G * G, end = size + count;
    const dim3 grid(detail::tiles_between<Codec>(open_first, end), static_cast<unsigned>(shape.heads));
    if (grid.x == 0) return cudaErrorInvalidValue;
    const detail::tile_source<T, G> source{src, size, held, open_first};
    const std::size_t last_first = (end - 1) / G * G;
    const std::size_t first_new = last_first > size ? last_first : size;
    const unsigned hold_grid = detail::grid_for((end - first_new) * shape.heads * shape.head_dim);
    if (hold_grid == 0) return cudaErrorInvalidValue;  // before anything is written
    const auto encode_tiles = detail::encode_k_tiles<Codec::tile::bits, G, T>;
    KPC_CUDA_LAUNCH(encode_tiles, grid, detail::block_threads, 0, stream)(source, open_first / G, end, shape.head_dim, dst, status);
    const auto hold = detail::hold_open_tile<T, G>;
    KPC_CUDA_LAUNCH(hold, hold_grid, detail::block_threads, 0, stream)(source, last_first, end, shape, held);
    return cudaGetLastError();
  }
}

}  // namespace cuda
KPC_END_NAMESPACE

#endif  // KPC_CUDA_CONVERT_CUH
