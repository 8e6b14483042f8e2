// SPDX-License-Identifier: MIT
// The stored formats of kpc (version KPC_FORMAT_VERSION), declared once for C++ and CUDA code.
// docs/FORMAT.md describes the same bytes in prose.
#ifndef KPC_FORMAT_HPP
#define KPC_FORMAT_HPP

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "config.hpp"

KPC_BEGIN_NAMESPACE

/// K layout tag: each channel quantized over a tile of G consecutive tokens.
template <int G>
struct PerChannel {
  static_assert(G == 32 || G == 64 || G == 128, "kpc::PerChannel<G>: G must be 32, 64 or 128");
  static constexpr int tile_tokens = G;
};

/// V layout tag: each token's row quantized in blocks of B consecutive channels.
template <int B>
struct PerToken {
  static_assert(B == 32, "kpc::PerToken<B>: B must be 32");
  static constexpr int block_values = B;
};

/// Baseline layout tag: per-token symmetric blocks (ggml q4_0), the format engines use today.
template <int B>
struct PerTokenSymmetric {
  static_assert(B == 32, "kpc::PerTokenSymmetric<B>: B must be 32");
  static constexpr int block_values = B;
};

namespace format {

/// Codes are packed in groups of 32: one V block, or 32 tokens of one K channel.
inline constexpr int group_values = 32;

/// Largest channel count any layout accepts (n_kv_heads * head_dim of one layer).
inline constexpr std::size_t max_channels = std::size_t{1} << 16;

template <int Bits>
inline constexpr std::size_t group_bytes = group_values * Bits / 8;

/// K tile of G tokens x C channels:
///   [0,2) ss fp16 | [2,4) zmin fp16 | [4,6) sz fp16 | [6, 6+C) qs u8 | [6+C, 6+2C) qz u8 |
///   codes: channel 0's G codes, channel 1's, ... each as G/32 packed groups of 32 tokens.
/// A tile always has room for G tokens; codes of absent tokens in a partial tile are 0.
template <int Bits, int G>
struct k_tile {
  static_assert(Bits == 2 || Bits == 3 || Bits == 4, "kpc per-channel K: Bits must be 2, 3 or 4");
  static_assert(G == 32 || G == 64 || G == 128, "kpc per-channel K: G must be 32, 64 or 128");
  static constexpr int bits = Bits;
  static constexpr int tokens = G;
  static constexpr unsigned max_code = (1u << Bits) - 1u;
  static constexpr unsigned max_meta_code = 255u;  // u8 scale and zero codes
  static constexpr std::size_t offset_scale_step = 0;
  static constexpr std::size_t offset_zero_min = 2;
  static constexpr std::size_t offset_zero_step = 4;
  static constexpr std::size_t offset_scale_codes = 6;
  static constexpr std::size_t channel_code_bytes = static_cast<std::size_t>(G) * Bits / 8;

  KPC_HOST_DEVICE static constexpr std::size_t offset_zero_codes(std::size_t channels) { return 6 + channels; }
  KPC_HOST_DEVICE static constexpr std::size_t offset_codes(std::size_t channels) { return 6 + 2 * channels; }
  KPC_HOST_DEVICE static constexpr std::size_t offset_channel_codes(std::size_t channels, std::size_t channel) {
    return offset_codes(channels) + channel * channel_code_bytes;
  }
  KPC_HOST_DEVICE static constexpr std::size_t bytes(std::size_t channels) { return offset_channel_codes(channels, channels); }
  KPC_HOST_DEVICE static constexpr double bits_per_value(std::size_t channels) {
    return static_cast<double>(bytes(channels)) * 8.0 / (static_cast<double>(G) * static_cast<double>(channels));
  }
};

/// V block of 32 values of one token. Bits 4 (ggml q4_1) and 3: [0,2) d fp16 | [2,4) m fp16 | codes.
/// Bits 8 (ggml q8_0): [0,2) d fp16 | 32 signed bytes.
template <int Bits>
struct v_block {
  static_assert(Bits == 3 || Bits == 4 || Bits == 8, "kpc per-token V: Bits must be 3, 4 or 8");
  static constexpr int bits = Bits;
  static constexpr int values = group_values;
  static constexpr bool has_min = Bits != 8;
  static constexpr unsigned max_code = Bits == 8 ? 127u : (1u << Bits) - 1u;
  static constexpr std::size_t offset_scale = 0;
  static constexpr std::size_t offset_min = 2;  // only when has_min
  static constexpr std::size_t offset_codes = has_min ? 4 : 2;
  static constexpr std::size_t bytes = offset_codes + group_bytes<Bits>;
  static constexpr double bits_per_value = bytes * 8.0 / values;
};

/// Baseline block (ggml q4_0): [0,2) d fp16 | 16 bytes of 4-bit codes, value = (code - 8) * d.
struct q4_0_block {
  static constexpr int bits = 4;
  static constexpr int values = group_values;
  static constexpr unsigned max_code = 15u;
  static constexpr std::size_t offset_scale = 0;
  static constexpr std::size_t offset_codes = 2;
  static constexpr std::size_t bytes = offset_codes + group_bytes<4>;
  static constexpr double bits_per_value = bytes * 8.0 / values;
};

/// Plain binary16 values, 32 to a block (kpc::f16_rows, the unquantized baseline): 64 bytes,
/// value j at [2j, 2j+2) little-endian.
struct f16_block {
  static constexpr int bits = 16;
  static constexpr int values = group_values;
  static constexpr std::size_t bytes = 2 * group_values;
  static constexpr double bits_per_value = 16.0;
};

static_assert(group_bytes<2> == 8 && group_bytes<3> == 12 && group_bytes<4> == 16 && group_bytes<8> == 32);
static_assert(k_tile<4, 32>::bytes(128) == 6 + 256 + 2048, "K4 G32 tile, 128 channels");
static_assert(k_tile<3, 64>::bytes(1) == 6 + 2 + 24, "K3 G64 tile, 1 channel");
static_assert(k_tile<2, 128>::channel_code_bytes == 32);
static_assert(v_block<4>::bytes == 20 && v_block<8>::bytes == 34 && v_block<3>::bytes == 16);
static_assert(q4_0_block::bytes == 18);

// ---- format descriptors ---------------------------------------------------------------------
// One per stored format, with what every layer derives from it: the unit a slab is made of (a K
// tile of G tokens, or one token's row of 32-value blocks) and its bytes, the channel counts it
// takes, and its codes in the KVCache container. `all` lists them; a kernel table holds one entry
// per element, in that order (kpc/backend/). Adding a format: a descriptor here, in `all`, and its
// kernels (ref/, simd/).

/// K per channel: tiles of G tokens x all channels.
template <int Bits, int G>
struct k_tiles {
  using tile = k_tile<Bits, G>;
  static constexpr int bits = Bits;
  static constexpr bool per_token = false;
  static constexpr std::size_t unit_tokens = G;
  static constexpr std::size_t channel_multiple = 1;
  static constexpr int container_layout = 1;  ///< the KVCache container's layout byte
  static constexpr int container_unit = G;    ///< and its unit byte
  static constexpr const char* unit_name = "K tile";
  static constexpr bool integer_dot = Bits == 4;  ///< has integer scores (ref/integer_dot.hpp)
  KPC_HOST_DEVICE static constexpr std::size_t unit_bytes(std::size_t channels) { return tile::bytes(channels); }
};

/// Per-token rows of 32-value blocks (Block: v_block<Bits>, q4_0_block, f16_block).
template <class Block, int ContainerLayout>
struct block_rows {
  using block = Block;
  static constexpr int bits = Block::bits;
  static constexpr bool per_token = true;
  static constexpr std::size_t unit_tokens = 1;
  static constexpr std::size_t channel_multiple = Block::values;
  static constexpr int container_layout = ContainerLayout;
  static constexpr int container_unit = Block::values;
  static constexpr const char* unit_name = "block row";
  static constexpr bool integer_dot = std::is_same_v<Block, v_block<4>>;  ///< has integer accumulate (as V)
  KPC_HOST_DEVICE static constexpr std::size_t unit_bytes(std::size_t channels) {
    return channels / Block::values * Block::bytes;
  }
};
template <int Bits>
using v_rows = block_rows<v_block<Bits>, 2>;
using q4_0_rows = block_rows<q4_0_block, 3>;
using f16_rows = block_rows<f16_block, 4>;

template <class... Formats>
struct list {
  static constexpr std::size_t size = sizeof...(Formats);
};

/// Every format kpc compiles kernels for.
using all = list<k_tiles<4, 32>, k_tiles<4, 64>, k_tiles<4, 128>, k_tiles<3, 32>, k_tiles<3, 64>, k_tiles<3, 128>,
                 k_tiles<2, 32>, k_tiles<2, 64>, k_tiles<2, 128>, v_rows<8>, v_rows<4>, v_rows<3>, q4_0_rows, f16_rows>;

/// The position of Format in a list (a compile error when it is not there).
template <class Format, class List>
struct index_of;
template <class Format, class... Rest>
struct index_of<Format, list<Format, Rest...>> {
  static constexpr std::size_t value = 0;
};
template <class Format, class First, class... Rest>
struct index_of<Format, list<First, Rest...>> {
  static constexpr std::size_t value = 1 + index_of<Format, list<Rest...>>::value;
};
template <class Format>
struct index_of<Format, list<>> {
  static_assert(sizeof(Format) == 0, "kpc: this format is not in format::all");
};

/// The descriptor of the format Quantizer<Bits, Layout> reads and writes.
template <int Bits, class Layout>
struct of;
template <int Bits, int G>
struct of<Bits, PerChannel<G>> {
  using type = k_tiles<Bits, G>;
};
template <int Bits, int B>
struct of<Bits, PerToken<B>> {
  using type = v_rows<Bits>;
};
template <int B>
struct of<16, PerToken<B>> {
  using type = f16_rows;
};
template <int Bits, int B>
struct of<Bits, PerTokenSymmetric<B>> {
  static_assert(Bits == 4, "kpc::Quantizer<Bits, PerTokenSymmetric<32>>: only Bits = 4 (ggml q4_0)");
  using type = q4_0_rows;
};

/// The integer attention path (attention_arithmetic::integer) quantizes q * scale' (K scores) to
/// int8 in runs of int8_run channels, and the weights * d (V accumulate) to int16 in runs of
/// int16_run tokens, one f32 scale per run (ref/integer_dot.hpp).
inline constexpr int int8_run = 16;
inline constexpr int int16_run = 64;

/// Bit order inside a packed group of 32 codes, the format's definition: code j occupies bits
/// [code_bit(j), code_bit(j) + Bits) of the group read as one little-endian bit string.
///   4 bits: code j in byte j % 16, low nibble for j < 16, high nibble for j >= 16 (ggml q4_0/q4_1);
///   2 bits: code j in byte j % 8 at bit 2 * (j / 8);
///   3 bits: code j at bit 3j (LSB-first, llama.cpp q3v_1).
/// The 4- and 2-bit orders unpack eight or sixteen codes with one shift and one mask.
template <int Bits>
KPC_HOST_DEVICE constexpr int code_bit(int j) {
  static_assert(Bits == 2 || Bits == 3 || Bits == 4, "packed codes are 2, 3 or 4 bits");
  if constexpr (Bits == 4) return 8 * (j % 16) + 4 * (j / 16);
  else if constexpr (Bits == 2) return 8 * (j % 8) + 2 * (j / 8);
  else return 3 * j;
}

/// Code j of a packed group.
template <int Bits>
KPC_HOST_DEVICE inline unsigned code_at(const std::byte* group, int j) {
  const int bit = code_bit<Bits>(j);
  unsigned window = static_cast<unsigned>(group[bit / 8]);
  if (bit % 8 + Bits > 8) window |= static_cast<unsigned>(group[bit / 8 + 1]) << 8;  // straddles two bytes
  return (window >> (bit % 8)) & ((1u << Bits) - 1u);
}

/// Packs 32 codes (each < 2^Bits) into group_bytes<Bits> bytes in the order code_at reads.
template <int Bits>
KPC_HOST_DEVICE inline void pack_group(const std::uint8_t* codes, std::byte* group) {
  std::uint8_t bytes[group_bytes<Bits>] = {};
  for (int j = 0; j < group_values; ++j) {
    const int bit = code_bit<Bits>(j);
    const unsigned shifted = static_cast<unsigned>(codes[j]) << (bit % 8);
    bytes[bit / 8] = static_cast<std::uint8_t>(bytes[bit / 8] | (shifted & 0xFFu));
    if (shifted > 0xFFu) bytes[bit / 8 + 1] = static_cast<std::uint8_t>(bytes[bit / 8 + 1] | (shifted >> 8));
  }
  for (std::size_t i = 0; i < group_bytes<Bits>; ++i) group[i] = static_cast<std::byte>(bytes[i]);
}

}  // namespace format
KPC_END_NAMESPACE

#endif  // KPC_FORMAT_HPP
