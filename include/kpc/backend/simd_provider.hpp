// SPDX-License-Identifier: MIT
// The xsimd kernels (kpc/simd/) as a kernel provider for backend/slab.hpp, and their kernel_table.
#ifndef KPC_BACKEND_SIMD_PROVIDER_HPP
#define KPC_BACKEND_SIMD_PROVIDER_HPP

#include <cstddef>
#include <type_traits>

#include "../isa.hpp"
#include "../simd/arch.hpp"
#include "../simd/integer_dot.hpp"
#include "../simd/per_channel.hpp"
#include "../simd/per_token.hpp"
#include "../simd/softmax.hpp"
#include "kernel_table.hpp"
#include "slab.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

/// xsimd kernels for arch A, shaped like detail::ref_provider.
template <class A>
struct provider {
  static float scale_max(float* x, std::size_t n, float scale) { return simd::scale_max<A>(x, n, scale); }
  static float exp_sum(float* x, std::size_t n, float shift) { return simd::exp_sum<A>(x, n, shift); }

  template <int Bits, int G, class T>
  static errc encode_k_tile(const T* src, std::size_t stride, int tokens, std::size_t channels, std::byte* tile) {
    return k_tile<A, Bits, G>::encode(src, stride, tokens, channels, tile);
  }
  template <int Bits, int G, class T>
  static errc decode_k_tile(const std::byte* tile, int tokens, std::size_t channels, T* dst, std::size_t stride) {
    return k_tile<A, Bits, G>::decode(tile, tokens, channels, dst, stride);
  }
  template <int Bits, int G>
  static errc scores_k_tile(const float* q, const std::byte* tile, int tokens, std::size_t channels, float* out) {
    return k_tile<A, Bits, G>::scores(q, tile, tokens, channels, out);
  }
  template <int Bits, int G>
  static void scores_k_tile_group(const float* q, std::size_t group, const std::byte* tile, int tokens,
                                  std::size_t channels, float* out, std::size_t out_stride) {
    k_tile<A, Bits, G>::scores_group(q, group, tile, tokens, channels, out, out_stride);
  }
  template <int Bits, int G>
  static void scores_k_tile_group_integer(const float* q, std::size_t group, const std::byte* tile, int tokens,
                                       std::size_t channels, float* out, std::size_t out_stride) {
    static_assert(Bits == 4, "integer scores: 4-bit K tiles");
    k4_tile_integer<A, G>::scores_group(q, group, tile, tokens, channels, out, out_stride);
  }

  template <class Block, class T>
  static errc encode_row(const T* src, std::size_t channels, std::byte* row) {
    return block_kernels<A, Block>::encode_row(src, channels, row);
  }
  template <class Block, class T>
  static errc decode_row(const std::byte* row, std::size_t channels, T* dst) {
    for (std::size_t b = 0; b < channels / Block::values; ++b) {
      const errc status = block_kernels<A, Block>::decode(row + b * Block::bytes, dst + b * Block::values);
      if (status != errc::ok) return status;
    }
    return errc::ok;
  }
  template <class Block>
  static void scores(const float* q, const std::byte* rows, std::size_t tokens, std::size_t channels, float* out) {
    block_kernels<A, Block>::scores(q, rows, tokens, channels, out);
  }
  /// One head at a time, or the block's own group kernel where it has one (f16 rows).
  template <class Block>
  static void scores_group(const float* q, std::size_t group, const std::byte* rows, std::size_t tokens,
                           std::size_t channels, float* out) {
    if constexpr (std::is_same_v<Block, format::f16_block>) {
      block_kernels<A, Block>::scores_group(q, group, rows, tokens, channels, out);
    } else {
      for (std::size_t h = 0; h < group; ++h)
        block_kernels<A, Block>::scores(q + h * channels, rows, tokens, channels, out + h * tokens);
    }
  }
  template <class Block>
  static void accumulate(const float* w, const std::byte* rows, std::size_t tokens, std::size_t channels, float* out) {
    block_kernels<A, Block>::accumulate(w, rows, tokens, channels, out);
  }
  template <class Block>
  static void accumulate_group(const float* w, std::size_t group, const std::byte* rows, std::size_t tokens,
                               std::size_t channels, float* out) {
    block_kernels<A, Block>::accumulate_group(w, group, rows, tokens, channels, out);
  }
  template <class Block>
  static void accumulate_group_integer(const float* w, std::size_t group, const std::byte* rows, std::size_t tokens,
                                    std::size_t channels, float* out) {
    static_assert(std::is_same_v<Block, format::v_block<4>>, "integer accumulate: V4 rows");
    v4_rows_integer<A>::accumulate_group(w, group, rows, tokens, channels, out);
  }
};

/// The kpc::isa level of an xsimd arch: the last level in kpc/isa.hpp's list whose xsimd arch A
/// derives from (xsimd archs inherit from the ones they extend).
template <class A>
constexpr isa isa_of() {
  isa level = isa::scalar;
#define KPC_DETAIL_ISA_OF(name, label, cpu, arch, flags) \
  if constexpr (!std::is_void_v<arch>)                  \
    if (std::is_base_of_v<arch, A>) level = isa::name;
  KPC_ISA_LIST(KPC_DETAIL_ISA_OF)
#undef KPC_DETAIL_ISA_OF
  return level;
}

/// The table of arch A (one per arch and translation-unit namespace).
template <class A>
const detail::kernel_table& table() {
  static const detail::kernel_table kernels = detail::make_table<provider<A>>(isa_of<A>());
  return kernels;
}

/// The table for what this translation unit was compiled for, or null when that is no SIMD at all.
template <class A>
const detail::kernel_table* compile_time_table() {
  if constexpr (isa_of<A>() == isa::scalar) return nullptr;
  else return &table<A>();
}

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_BACKEND_SIMD_PROVIDER_HPP
