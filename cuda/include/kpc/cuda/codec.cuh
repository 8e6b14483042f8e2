// SPDX-License-Identifier: MIT
// The formats as CUDA code sees them: kpc::cuda::codec<Bits, Layout> (the same Bits/Layout pairs as
// kpc::Quantizer) and kpc::cuda::f16_codec (plain binary16 rows, the baseline). Everything that
// touches a value calls the scalar reference (kpc/ref/*.hpp, KPC_HOST_DEVICE), so a device byte
// is the CPU's byte; only the work split across threads is written here.
#ifndef KPC_CUDA_CODEC_CUH
#define KPC_CUDA_CODEC_CUH

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include <kpc/config.hpp>
#include <kpc/format.hpp>
#include <kpc/half.hpp>
#include <kpc/ref/per_channel.hpp>
#include <kpc/ref/per_token.hpp>

#include "detail/device.cuh"

KPC_BEGIN_NAMESPACE
namespace cuda {

namespace detail {

/// Query heads one attention block serves at once (its register accumulators are sized for it).
inline constexpr int max_heads_per_block = 8;
/// Channels per thread of the attention kernel's value accumulators: head_dim <= 4 * 128.
inline constexpr int max_channels_per_thread = 4;
inline constexpr std::size_t max_attention_head_dim = block_threads * max_channels_per_thread;

/// Shared parts of the per-token codecs: a unit is one token's row of 32-value blocks (Format: a
/// descriptor of format.hpp, whose unit sizes the CPU code uses too).
template <class Format>
struct block_rows {
  using block = typename Format::block;
  static constexpr bool per_channel = false;
  static constexpr int unit_tokens = static_cast<int>(Format::unit_tokens);
  static constexpr int attention_tokens = 32;  // tokens per attention step
  KPC_HOST_DEVICE static constexpr bool valid_channels(std::size_t channels) {
    return channels != 0 && channels % Format::channel_multiple == 0 && channels <= format::max_channels;
  }
  KPC_HOST_DEVICE static constexpr std::size_t slab_bytes(std::size_t tokens, std::size_t channels) {
    return tokens * Format::unit_bytes(channels);
  }
};

}  // namespace detail

/// Device view of a format, named like kpc::Quantizer<Bits, Layout>.
template <int Bits, class Layout>
struct codec {
  static_assert(sizeof(Layout) == 0, "kpc::cuda::codec<Bits, Layout>: Layout must be PerChannel<G>, PerToken<32> or PerTokenSymmetric<32>");
};

/// K per channel: tiles of G tokens (format::k_tile<Bits, G>).
template <int Bits, int G>
struct codec<Bits, PerChannel<G>> {
  using descriptor = format::k_tiles<Bits, G>;
  using tile = typename descriptor::tile;
  static constexpr bool per_channel = true;
  static constexpr int unit_tokens = static_cast<int>(descriptor::unit_tokens);
  static constexpr int attention_tokens = G;  // one tile per attention step
  KPC_HOST_DEVICE static constexpr bool valid_channels(std::size_t channels) {
    return channels != 0 && channels <= format::max_channels;
  }
  /// Bytes of a [tokens][channels] slab: whole tiles (as Quantizer::encoded_bytes).
  KPC_HOST_DEVICE static constexpr std::size_t slab_bytes(std::size_t tokens, std::size_t channels) {
    return (tokens + G - 1) / G * descriptor::unit_bytes(channels);
  }

  /// Attention scores of one tile staged in shared memory: logits[h * G + t] = q_h . k_t for its
  /// first n tokens, as the reference's scores_k_tile: the scales fold into q once per tile (qs),
  /// then each thread walks the channels for one token. `scratch` holds
  /// max_heads_per_block * (channels + G * block_threads / G + warps_per_block) floats.
  __device__ static void scores(const std::byte* staged, int n, std::size_t channels, int heads, const float* q,
                                float* scratch, float* logits) {
    constexpr int parts = detail::block_threads / G;  // threads per token, each over every parts-th channel
    const ref::k_tile_meta meta = ref::k_load_meta(staged);
    float* qs = scratch;                                          // [heads][channels]: q_c * scale'_c
    float* bias_parts = qs + detail::max_heads_per_block * channels;  // [warps][heads]: sum q_c * zero'_c
    float* dot_parts = bias_parts + detail::warps_per_block * detail::max_heads_per_block;  // [parts][heads][G]
    float bias[detail::max_heads_per_block] = {};
    for (std::size_t c = threadIdx.x; c < channels; c += blockDim.x) {
      const ref::k_channel_meta m = ref::k_load_channel<Bits, G>(staged, meta, channels, c);
      KPC_CUDA_UNROLL
      for (int h = 0; h < detail::max_heads_per_block; ++h) {
        if (h >= heads) break;
        qs[h * channels + c] = q[h * channels + c] * m.scale;
        bias[h] += q[h * channels + c] * m.zero;
      }
    }
    const int warp = static_cast<int>(threadIdx.x) / 32;
    KPC_CUDA_UNROLL
    for (int h = 0; h < detail::max_heads_per_block; ++h) {
      if (h >= heads) break;
      const float total = detail::warp_sum(bias[h]);
      if (threadIdx.x % 32 == 0) bias_parts[warp * detail::max_heads_per_block + h] = total;
    }
    __syncthreads();

    const int t = static_cast<int>(threadIdx.x) % G, part = static_cast<int>(threadIdx.x) / G;
    float dot[detail::max_heads_per_block] = {};
    if (t < n) {
      const std::byte* group = staged + tile::offset_codes(channels) + (t / format::group_values) * format::group_bytes<Bits>;
      for (std::size_t c = static_cast<std::size_t>(part); c < channels; c += parts) {
        const float code = static_cast<float>(format::code_at<Bits>(group + c * tile::channel_code_bytes, t % format::group_values));
        KPC_CUDA_UNROLL
        for (int h = 0; h < detail::max_heads_per_block; ++h) {
          if (h >= heads) break;
          dot[h] += qs[h * channels + c] * code;
        }
      }
    }
    KPC_CUDA_UNROLL
    for (int h = 0; h < detail::max_heads_per_block; ++h) {
      if (h >= heads) break;
      dot_parts[(part * detail::max_heads_per_block + h) * G + t] = dot[h];
    }
    __syncthreads();
    for (int i = static_cast<int>(threadIdx.x); i < heads * G; i += static_cast<int>(blockDim.x)) {
      const int h = i / G, token = i % G;
      if (token >= n) continue;
      float total = 0.0f;
      for (int w = 0; w < detail::warps_per_block; ++w) total += bias_parts[w * detail::max_heads_per_block + h];
      for (int p = 0; p < parts; ++p) total += dot_parts[(p * detail::max_heads_per_block + h) * G + token];
      logits[h * G + token] = total;
    }
    __syncthreads();
  }
  KPC_HOST_DEVICE static constexpr std::size_t scores_scratch_floats(std::size_t channels) {
    return detail::max_heads_per_block * (channels + detail::warps_per_block + static_cast<std::size_t>(G) * (detail::block_threads / G));
  }
};

/// Per-token rows that attention reads value by value: V blocks, q4_0 and f16 rows.
namespace detail {

template <class Codec>
struct row_attention {
  /// Scores of n rows staged in shared memory: one warp per token, lanes over channels.
  __device__ static void scores(const std::byte* staged, int n, std::size_t channels, int heads, const float* q,
                                float* /*scratch*/, float* logits) {
    const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
    for (int t = warp; t < n; t += warps_per_block) {
      float dot[max_heads_per_block] = {};
      for (std::size_t c = static_cast<std::size_t>(lane); c < channels; c += 32) {
        const float x = Codec::value(staged, t, c, channels);
        KPC_CUDA_UNROLL
        for (int h = 0; h < max_heads_per_block; ++h) {
          if (h >= heads) break;
          dot[h] += q[h * channels + c] * x;
        }
      }
      KPC_CUDA_UNROLL
      for (int h = 0; h < max_heads_per_block; ++h) {
        if (h >= heads) break;
        const float total = warp_sum(dot[h]);
        if (lane == 0) logits[h * Codec::attention_tokens + t] = total;
      }
    }
    __syncthreads();
  }
  KPC_HOST_DEVICE static constexpr std::size_t scores_scratch_floats(std::size_t) { return 0; }
};

}  // namespace detail

/// V per token: ggml q8_0 (Bits 8), q4_1 (Bits 4) and kpc's 3-bit blocks.
template <int Bits, int B>
struct codec<Bits, PerToken<B>> : detail::block_rows<format::v_rows<Bits>>,
                                  detail::row_attention<codec<Bits, PerToken<B>>> {
  using block = format::v_block<Bits>;  // (a dependent base's members need naming)
  template <class T>
  KPC_HOST_DEVICE static errc encode_block(const T* x, std::byte* out) { return ref::encode_v_block<Bits>(x, out); }
  template <class T>
  KPC_HOST_DEVICE static errc decode_block(const std::byte* in, T* x) { return ref::decode_v_block<Bits>(in, x); }
  /// Value c of row t of rows staged at `rows` (trusts the bytes, as the CPU's fused kernels).
  __device__ static float value(const std::byte* rows, int t, std::size_t c, std::size_t channels) {
    const std::byte* b = rows + (static_cast<std::size_t>(t) * (channels / format::group_values) + c / format::group_values) * block::bytes;
    return ref::v_value<Bits>(ref::v_code<Bits>(b, static_cast<int>(c % format::group_values)), ref::load_v_meta<Bits>(b));
  }
};

/// The ggml q4_0 baseline.
template <int B>
struct codec<4, PerTokenSymmetric<B>> : detail::block_rows<format::q4_0_rows>,
                                        detail::row_attention<codec<4, PerTokenSymmetric<B>>> {
  template <class T>
  KPC_HOST_DEVICE static errc encode_block(const T* x, std::byte* out) { return ref::encode_q4_0_block(x, out); }
  template <class T>
  KPC_HOST_DEVICE static errc decode_block(const std::byte* in, T* x) { return ref::decode_q4_0_block(in, x); }
  __device__ static float value(const std::byte* rows, int t, std::size_t c, std::size_t channels) {
    const std::byte* b = rows + (static_cast<std::size_t>(t) * (channels / format::group_values) + c / format::group_values) * block::bytes;
    const int code = static_cast<int>(format::code_at<4>(b + block::offset_codes, static_cast<int>(c % format::group_values))) - 8;
    return static_cast<float>(code) * fp16_bits_to_fp32(kpc::detail::load_u16le(b + block::offset_scale));
  }
};

/// Plain binary16 rows (2 bytes per value, no scale): the f16 cache engines keep today
/// (kpc::f16_rows on the CPU).
struct f16_codec : detail::block_rows<format::f16_rows>, detail::row_attention<f16_codec> {
  template <class T>
  KPC_HOST_DEVICE static errc encode_block(const T* x, std::byte* out) {
    return ref::encode_f16_block(x, out);
  }
  template <class T>
  KPC_HOST_DEVICE static errc decode_block(const std::byte* in, T* x) {
    return ref::decode_f16_block(in, x);
  }
  __device__ static float value(const std::byte* rows, int t, std::size_t c, std::size_t channels) {
    return fp16_bits_to_fp32(kpc::detail::load_u16le(rows + 2 * (static_cast<std::size_t>(t) * channels + c)));
  }
};

}  // namespace cuda
KPC_END_NAMESPACE

#endif  // KPC_CUDA_CODEC_CUH
