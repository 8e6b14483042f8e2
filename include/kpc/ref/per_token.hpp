// SPDX-License-Identifier: MIT
// Scalar reference of the per-token block formats (docs/FORMAT.md, "V blocks" and "q4_0"):
// V4 = ggml q4_1, V8 = ggml q8_0, V3 = llama.cpp q3v_1, the q4_0 baseline, byte for byte, and
// plain binary16 rows.
#ifndef KPC_REF_PER_TOKEN_HPP
#define KPC_REF_PER_TOKEN_HPP

#include <cfloat>
#include <cstddef>
#include <cstdint>

#include <type_traits>

#include "../config.hpp"
#include "../detail/arith.hpp"
#include "../detail/bits.hpp"
#include "../error.hpp"
#include "../format.hpp"
#include "../half.hpp"

KPC_BEGIN_NAMESPACE
namespace ref {

/// The status of an encoded block: non_finite input first, then fp16 fields that overflowed.
KPC_HOST_DEVICE inline errc block_status(bool input_finite, bool fields_finite) {
  if (!input_finite) return errc::non_finite;
  return fields_finite ? errc::ok : errc::out_of_range;
}

/// Encodes 32 values into one format::v_block<Bits>. Bits 4 and 3: d = (max - min) / (2^Bits - 1),
/// m = min, code = min(2^Bits - 1, trunc((x - min) * (1/d) + 0.5)) with the unrounded d and min.
/// Bits 8: d = max|x| / 127, code = round(x * (1/d)), ties away from zero. 1/d is 0 when d is 0.
/// min and max start at +-FLT_MAX and move only on a strictly smaller/larger value, as in ggml,
/// so among equal values (-0 and +0) the first one wins.
/// Returns errc::ok, non_finite or out_of_range; the bytes are defined in every case.
template <int Bits, class T>
KPC_HOST_DEVICE inline errc encode_v_block(const T* x, std::byte* block) {
  using layout = format::v_block<Bits>;
  bool finite = true;
  if constexpr (Bits == 8) {
    float abs_max = 0.0f;
    for (int j = 0; j < layout::values; ++j) {
      const float v = to_float(x[j]);
      finite = finite && detail::is_finite(v);
      const float magnitude = v < 0.0f ? -v : v;
      if (magnitude > abs_max) abs_max = magnitude;
    }
    const float d = detail::div_rounded(abs_max, 127.0f);
    const float inverse = d != 0.0f ? detail::div_rounded(1.0f, d) : 0.0f;
    const std::uint16_t d_h = fp32_to_fp16_bits(d);
    detail::store_u16le(block + layout::offset_scale, d_h);
    for (int j = 0; j < layout::values; ++j) {
      const int code = detail::round_away_clamp(to_float(x[j]) * inverse, 127);
      block[layout::offset_codes + j] = static_cast<std::byte>(static_cast<std::uint8_t>(static_cast<std::int8_t>(code)));
    }
    return block_status(finite, fp16_bits_finite(d_h));
  } else {
    float min = FLT_MAX, max = -FLT_MAX;  // as ggml: both start at the extremes
    for (int j = 0; j < layout::values; ++j) {
      const float v = to_float(x[j]);
      finite = finite && detail::is_finite(v);
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const float d = detail::div_rounded(max - min, static_cast<float>(layout::max_code));
    const float inverse = d != 0.0f ? detail::div_rounded(1.0f, d) : 0.0f;
    const std::uint16_t d_h = fp32_to_fp16_bits(d);
    const std::uint16_t m_h = fp32_to_fp16_bits(min);
    detail::store_u16le(block + layout::offset_scale, d_h);
    detail::store_u16le(block + layout::offset_min, m_h);
    std::uint8_t codes[format::group_values];
    for (int j = 0; j < layout::values; ++j)
      codes[j] = static_cast<std::uint8_t>(
          detail::trunc_clamp(detail::mul_rounded(to_float(x[j]) - min, inverse) + 0.5f, layout::max_code));
    format::pack_group<Bits>(codes, block + layout::offset_codes);
    return block_status(finite, fp16_bits_finite(d_h) && fp16_bits_finite(m_h));
  }
}

/// Scale (and minimum) of a block, as stored.
struct block_meta {
  float scale;
  float min;
  bool finite;
};

template <int Bits>
KPC_HOST_DEVICE inline block_meta load_v_meta(const std::byte* block) {
  using layout = format::v_block<Bits>;
  const std::uint16_t d = detail::load_u16le(block + layout::offset_scale);
  if constexpr (layout::has_min) {
    const std::uint16_t m = detail::load_u16le(block + layout::offset_min);
    return {fp16_bits_to_fp32(d), fp16_bits_to_fp32(m), fp16_bits_finite(d) && fp16_bits_finite(m)};
  } else {
    return {fp16_bits_to_fp32(d), 0.0f, fp16_bits_finite(d)};
  }
}

/// The signed (Bits 8) or unsigned code of value j of a V block.
template <int Bits>
KPC_HOST_DEVICE inline int v_code(const std::byte* block, int j) {
  using layout = format::v_block<Bits>;
  if constexpr (Bits == 8) {
    return static_cast<std::int8_t>(static_cast<std::uint8_t>(block[layout::offset_codes + j]));
  } else {
    return static_cast<int>(format::code_at<Bits>(block + layout::offset_codes, j));
  }
}

/// x = code * d + m (Bits 4, 3) or code * d (Bits 8); the product is exact in f32.
template <int Bits>
KPC_HOST_DEVICE inline float v_value(int code, const block_meta& meta) {
  const float scaled = static_cast<float>(code) * meta.scale;
  if constexpr (format::v_block<Bits>::has_min) {
    return scaled + meta.min;
  } else {
    return scaled;
  }
}

/// Decodes one V block into 32 values. Returns errc::corrupt_data, writing nothing, when its fp16
/// fields are not finite.
template <int Bits, class T>
KPC_HOST_DEVICE inline errc decode_v_block(const std::byte* block, T* x) {
  const block_meta meta = load_v_meta<Bits>(block);
  if (!meta.finite) return errc::corrupt_data;
  for (int j = 0; j < format::group_values; ++j) x[j] = from_float<T>(v_value<Bits>(v_code<Bits>(block, j), meta));
  return errc::ok;
}

/// Encodes 32 values into binary16, rounded to nearest even: non_finite for NaN/Inf input,
/// out_of_range for a finite value beyond what binary16 holds (|x| >= 65520).
template <class T>
KPC_HOST_DEVICE inline errc encode_f16_block(const T* x, std::byte* block) {
  bool input_finite = true, fields_finite = true;
  for (int j = 0; j < format::group_values; ++j) {
    const float v = to_float(x[j]);
    const std::uint16_t h = fp32_to_fp16_bits(v);
    input_finite = input_finite && detail::is_finite(v);
    fields_finite = fields_finite && fp16_bits_finite(h);
    detail::store_u16le(block + 2 * j, h);
  }
  return block_status(input_finite, fields_finite);
}

/// The values; corrupt_data when one is not finite (no encoder writes it).
template <class T>
KPC_HOST_DEVICE inline errc decode_f16_block(const std::byte* block, T* x) {
  for (int j = 0; j < format::group_values; ++j)
    if (!fp16_bits_finite(detail::load_u16le(block + 2 * j))) return errc::corrupt_data;
  for (int j = 0; j < format::group_values; ++j) x[j] = from_float<T>(fp16_bits_to_fp32(detail::load_u16le(block + 2 * j)));
  return errc::ok;
}

KPC_HOST_DEVICE inline float dot_f16_block(const float* q, const std::byte* block) {
  float dot = 0.0f;
  for (int j = 0; j < format::group_values; ++j) dot += q[j] * fp16_bits_to_fp32(detail::load_u16le(block + 2 * j));
  return dot;
}

KPC_HOST_DEVICE inline void axpy_f16_block(float w, const std::byte* block, float* out) {
  for (int j = 0; j < format::group_values; ++j) out[j] += w * fp16_bits_to_fp32(detail::load_u16le(block + 2 * j));
}

/// Whether a per-token block's fp16 fields are finite (what decoding it requires).
template <class Block>
KPC_HOST_DEVICE inline bool block_fields_finite(const std::byte* block) {
  if constexpr (std::is_same_v<Block, format::f16_block>) {
    for (int j = 0; j < format::group_values; ++j)
      if (!fp16_bits_finite(detail::load_u16le(block + 2 * j))) return false;
    return true;
  } else {
    if (!fp16_bits_finite(detail::load_u16le(block + Block::offset_scale))) return false;
    if constexpr (!std::is_same_v<Block, format::q4_0_block>) {
      if constexpr (Block::has_min) return fp16_bits_finite(detail::load_u16le(block + Block::offset_min));
    }
    return true;
  }
}

/// sum_j q_j * x_j over one V block: d * sum_j q_j * code_j (+ m * sum_j q_j).
template <int Bits>
KPC_HOST_DEVICE inline float dot_v_block(const float* q, const std::byte* block) {
  const block_meta meta = load_v_meta<Bits>(block);
  float dot = 0.0f, q_sum = 0.0f;
  for (int j = 0; j < format::group_values; ++j) {
    dot += q[j] * static_cast<float>(v_code<Bits>(block, j));
    q_sum += q[j];
  }
  return format::v_block<Bits>::has_min ? dot * meta.scale + q_sum * meta.min : dot * meta.scale;
}

/// out_j += w * x_j over one V block, as (w * d) * code_j + w * m.
template <int Bits>
KPC_HOST_DEVICE inline void axpy_v_block(float w, const std::byte* block, float* out) {
  const block_meta meta = load_v_meta<Bits>(block);
  const float w_scale = w * meta.scale;
  const float w_min = w * meta.min;
  for (int j = 0; j < format::group_values; ++j) out[j] += w_scale * static_cast<float>(v_code<Bits>(block, j)) + w_min;
}

/// Encodes 32 values into one q4_0 block (ggml): d = m / -8 where m is the first value of largest
/// magnitude, code = min(15, trunc(x * (1/d) + 8.5)), 1/d = 0 when d = 0.
template <class T>
KPC_HOST_DEVICE inline errc encode_q4_0_block(const T* x, std::byte* block) {
  using layout = format::q4_0_block;
  bool finite = true;
  float abs_max = 0.0f, signed_max = 0.0f;
  for (int j = 0; j < layout::values; ++j) {
    const float v = to_float(x[j]);
    finite = finite && detail::is_finite(v);
    const float magnitude = v < 0.0f ? -v : v;
    if (abs_max < magnitude) {
      abs_max = magnitude;
      signed_max = v;
    }
  }
  const float d = detail::div_rounded(signed_max, -8.0f);
  const float inverse = d != 0.0f ? detail::div_rounded(1.0f, d) : 0.0f;
  const std::uint16_t d_h = fp32_to_fp16_bits(d);
  detail::store_u16le(block + layout::offset_scale, d_h);
  std::uint8_t codes[format::group_values];
  for (int j = 0; j < layout::values; ++j)
    codes[j] = static_cast<std::uint8_t>(
        detail::trunc_clamp(detail::mul_rounded(to_float(x[j]), inverse) + 8.5f, layout::max_code));
  format::pack_group<4>(codes, block + layout::offset_codes);
  return block_status(finite, fp16_bits_finite(d_h));
}

/// x = (code - 8) * d.
template <class T>
KPC_HOST_DEVICE inline errc decode_q4_0_block(const std::byte* block, T* x) {
  using layout = format::q4_0_block;
  const std::uint16_t d_h = detail::load_u16le(block + layout::offset_scale);
  if (!fp16_bits_finite(d_h)) return errc::corrupt_data;
  const float d = fp16_bits_to_fp32(d_h);
  for (int j = 0; j < layout::values; ++j) {
    const int code = static_cast<int>(format::code_at<4>(block + layout::offset_codes, j)) - 8;
    x[j] = from_float<T>(static_cast<float>(code) * d);
  }
  return errc::ok;
}

/// sum_j q_j * x_j over one q4_0 block.
KPC_HOST_DEVICE inline float dot_q4_0_block(const float* q, const std::byte* block) {
  using layout = format::q4_0_block;
  const float d = fp16_bits_to_fp32(detail::load_u16le(block + layout::offset_scale));
  float dot = 0.0f;
  for (int j = 0; j < layout::values; ++j)
    dot += q[j] * static_cast<float>(static_cast<int>(format::code_at<4>(block + layout::offset_codes, j)) - 8);
  return dot * d;
}

/// out_j += w * x_j over one q4_0 block.
KPC_HOST_DEVICE inline void axpy_q4_0_block(float w, const std::byte* block, float* out) {
  using layout = format::q4_0_block;
  const float w_scale = w * fp16_bits_to_fp32(detail::load_u16le(block + layout::offset_scale));
  for (int j = 0; j < layout::values; ++j)
    out[j] += w_scale * static_cast<float>(static_cast<int>(format::code_at<4>(block + layout::offset_codes, j)) - 8);
}

/// The operations of one block type (format::v_block<Bits>, q4_0_block, f16_block), as the slab
/// loops of kpc/backend/ call them.
template <class Block, class T>
KPC_HOST_DEVICE inline errc encode_block(const T* x, std::byte* block) {
  if constexpr (std::is_same_v<Block, format::q4_0_block>) return encode_q4_0_block(x, block);
  else if constexpr (std::is_same_v<Block, format::f16_block>) return encode_f16_block(x, block);
  else return encode_v_block<Block::bits>(x, block);
}
template <class Block, class T>
KPC_HOST_DEVICE inline errc decode_block(const std::byte* block, T* x) {
  if constexpr (std::is_same_v<Block, format::q4_0_block>) return decode_q4_0_block(block, x);
  else if constexpr (std::is_same_v<Block, format::f16_block>) return decode_f16_block(block, x);
  else return decode_v_block<Block::bits>(block, x);
}
template <class Block>
KPC_HOST_DEVICE inline float dot_block(const float* q, const std::byte* block) {
  if constexpr (std::is_same_v<Block, format::q4_0_block>) return dot_q4_0_block(q, block);
  else if constexpr (std::is_same_v<Block, format::f16_block>) return dot_f16_block(q, block);
  else return dot_v_block<Block::bits>(q, block);
}
template <class Block>
KPC_HOST_DEVICE inline void axpy_block(float w, const std::byte* block, float* out) {
  if constexpr (std::is_same_v<Block, format::q4_0_block>) axpy_q4_0_block(w, block, out);
  else if constexpr (std::is_same_v<Block, format::f16_block>) axpy_f16_block(w, block, out);
  else axpy_v_block<Block::bits>(w, block, out);
}

}  // namespace ref
KPC_END_NAMESPACE

#endif  // KPC_REF_PER_TOKEN_HPP
