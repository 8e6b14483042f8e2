// SPDX-License-Identifier: MIT
// Bit casts and little-endian byte access, usable from host and device code.
#ifndef KPC_DETAIL_BITS_HPP
#define KPC_DETAIL_BITS_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../config.hpp"

KPC_BEGIN_NAMESPACE
namespace detail {

KPC_HOST_DEVICE inline std::uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

KPC_HOST_DEVICE inline float bits_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Stored fields are assembled byte by byte: independent of host endianness and alignment.
KPC_HOST_DEVICE inline std::uint16_t load_u16le(const std::byte* p) {
  return static_cast<std::uint16_t>(static_cast<unsigned>(p[0]) | (static_cast<unsigned>(p[1]) << 8));
}

KPC_HOST_DEVICE inline void store_u16le(std::byte* p, std::uint16_t v) {
  p[0] = static_cast<std::byte>(v & 0xFFu);
  p[1] = static_cast<std::byte>(v >> 8);
}

/// 32-bit little-endian words, for the SIMD paths that move packed codes a word at a time.
inline std::uint32_t load_u32le(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  return v;
}

inline void store_u32le(std::byte* p, std::uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap32(v);
#endif
  std::memcpy(p, &v, sizeof v);
}

KPC_HOST_DEVICE inline std::uint8_t load_u8(const std::byte* p) { return static_cast<std::uint8_t>(*p); }

KPC_HOST_DEVICE inline void store_u8(std::byte* p, unsigned v) { *p = static_cast<std::byte>(v & 0xFFu); }

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_DETAIL_BITS_HPP
