// SPDX-License-Identifier: MIT
// IEEE binary16 storage type and exact conversions (round to nearest, ties to even).
#ifndef KPC_HALF_HPP
#define KPC_HALF_HPP

#include <cstdint>

#include "config.hpp"
#include "detail/bits.hpp"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

KPC_BEGIN_NAMESPACE

/// Converts f32 to the bits of the nearest binary16 (ties to even). Overflow gives ±Inf,
/// NaN stays NaN (quiet, top payload bits kept). Integer-only: independent of FTZ/DAZ modes.
KPC_HOST_DEVICE inline std::uint16_t fp32_to_fp16_bits(float value) {
  const std::uint32_t x = detail::float_bits(value);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t magnitude = x & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
  // 65520 lies halfway between 65504 (odd mantissa) and 2^16, so ties-to-even rounds it to Inf.
  if (magnitude >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
  if (magnitude >= 0x38800000u) {  // normal binary16: rebias the exponent (127 -> 15), round 13 bits
    std::uint32_t rebiased = magnitude - 0x38000000u;
    rebiased += 0x0FFFu + ((rebiased >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | (rebiased >> 13));
  }
  // Subnormal binary16 (or zero): count units of 2^-24. The f32 value is significand * 2^(e-150).
  const std::uint32_t exponent = magnitude >> 23;
  const std::uint32_t significand = (magnitude & 0x7FFFFFu) | (exponent != 0 ? 0x800000u : 0u);
  const std::uint32_t shift = 126u - (exponent != 0 ? exponent : 1u);  // >= 14
  if (shift > 24) return static_cast<std::uint16_t>(sign);               // below 2^-25: rounds to 0
  std::uint32_t units = significand >> shift;
  const std::uint32_t remainder = significand & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1);
  if (remainder > halfway || (remainder == halfway && (units & 1u))) ++units;  // may carry into 0x400
  return static_cast<std::uint16_t>(sign | units);
}

/// Converts binary16 bits to f32 exactly (every binary16 value is an f32 value).
KPC_HOST_DEVICE inline float fp16_bits_to_fp32(std::uint16_t bits) {
#if defined(__CUDA_ARCH__)
  // One instruction for finite values (attention's hot path); NaN keeps its payload below.
  if ((bits & 0x7C00u) != 0x7C00u) return __half2float(__ushort_as_half(bits));
#endif
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  std::uint32_t exponent = (bits >> 10) & 0x1Fu;
  std::uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) return detail::bits_float(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return detail::bits_float(sign);
    exponent = 1;  // subnormal: normalise so the implicit bit is set
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    mantissa &= 0x3FFu;
  }
  return detail::bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

/// True for binary16 bits that encode a finite value.
KPC_HOST_DEVICE constexpr bool fp16_bits_finite(std::uint16_t bits) { return (bits & 0x7C00u) != 0x7C00u; }

// Engines hold f16 caches as uint16_t (ggml_fp16_t) or __half; may_alias lets them pass such a
// buffer as kpc::half* without breaking GCC/Clang's type-based aliasing rules.
#if defined(__GNUC__) || defined(__clang__)
#define KPC_MAY_ALIAS __attribute__((__may_alias__))
#else
#define KPC_MAY_ALIAS
#endif

/// A binary16 value as engines store it (layout-compatible with uint16_t, ggml_fp16_t, __half).
struct KPC_MAY_ALIAS half {
  std::uint16_t bits;

  half() = default;
  KPC_HOST_DEVICE explicit half(float value) : bits(fp32_to_fp16_bits(value)) {}
  KPC_HOST_DEVICE static half from_bits(std::uint16_t raw) {
    half h;
    h.bits = raw;
    return h;
  }
  KPC_HOST_DEVICE explicit operator float() const { return fp16_bits_to_fp32(bits); }
};

static_assert(sizeof(half) == 2 && alignof(half) == alignof(std::uint16_t), "kpc::half must be 2 bytes");

/// Element types the quantizers read and write.
KPC_HOST_DEVICE inline float to_float(float value) { return value; }
KPC_HOST_DEVICE inline float to_float(half value) { return fp16_bits_to_fp32(value.bits); }

template <class T>
KPC_HOST_DEVICE inline T from_float(float value);
template <>
KPC_HOST_DEVICE inline float from_float<float>(float value) {
  return value;
}
template <>
KPC_HOST_DEVICE inline half from_float<half>(float value) {
  return half(value);
}

KPC_END_NAMESPACE

#endif  // KPC_HALF_HPP
