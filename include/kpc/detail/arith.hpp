// SPDX-License-Identifier: MIT
// The rounding steps the formats are defined by, written so that no compiler flag changes them.
#ifndef KPC_DETAIL_ARITH_HPP
#define KPC_DETAIL_ARITH_HPP

#include <cstdint>

#include "../config.hpp"
#include "bits.hpp"

KPC_BEGIN_NAMESPACE
namespace detail {

/// a * b rounded to f32 and never fused with a following addition. GCC contracts a*b + c into a
/// fused multiply-add across statements (-ffp-contract=fast is its default in GNU modes, and
/// nvcc's too); a code computed as trunc(a*b + 0.5) would then flip near ties on FMA machines.
/// The empty asm hides the product's origin, so the addition cannot be merged with it.
KPC_HOST_DEVICE inline float mul_rounded(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  float product = a * b;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || (defined(__i386__) && defined(__SSE2_MATH__)))
  __asm__("" : "+x"(product));
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
  __asm__("" : "+w"(product));
#elif defined(__GNUC__) || defined(__clang__)
  __asm__("" : "+m"(product));
#endif
  return product;
#endif
}

/// a / b correctly rounded. Device code asks for it explicitly: nvcc's --use_fast_math and
/// -prec-div=false turn '/' into an approximation without defining any macro to detect.
KPC_HOST_DEVICE inline float div_rounded(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

/// True for finite f32 values, by bits, so -ffinite-math-only cannot fold the test away.
KPC_HOST_DEVICE inline bool is_finite(float value) { return (float_bits(value) & 0x7F800000u) != 0x7F800000u; }

/// trunc(value) clamped to [0, max_code]; NaN gives 0. This is the formats' "round half up"
/// once the caller has added 0.5 (or 8.5 for q4_0). Never converts an out-of-range float to int.
KPC_HOST_DEVICE inline unsigned trunc_clamp(float value, unsigned max_code) {
  if (!(value > 0.0f)) return 0u;
  if (value >= static_cast<float>(max_code)) return max_code;
  return static_cast<unsigned>(value);
}

/// roundf(value) (nearest, ties away from zero) clamped to [-limit, limit]; NaN gives 0.
/// Written out because floor(|v| + 0.5) is wrong just below 0.5 and roundf is not constexpr.
KPC_HOST_DEVICE inline int round_away_clamp(float value, int limit) {
  if (!(value == value)) return 0;
  const float magnitude = value < 0.0f ? -value : value;
  if (magnitude >= static_cast<float>(limit)) return value < 0.0f ? -limit : limit;
  const int whole = static_cast<int>(magnitude);
  const int rounded = whole + ((magnitude - static_cast<float>(whole)) >= 0.5f ? 1 : 0);  // <= limit
  return value < 0.0f ? -rounded : rounded;
}

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_DETAIL_ARITH_HPP
