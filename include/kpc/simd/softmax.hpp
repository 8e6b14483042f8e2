// SPDX-License-Identifier: MIT
// xsimd versions of the online-softmax steps of decode attention (detail::ref_provider's
// scale_max and exp_sum). exp is xsimd's (within a few ulp of std::exp), so results agree with
// the scalar path to float rounding, not bit for bit.
#ifndef KPC_SIMD_SOFTMAX_HPP
#define KPC_SIMD_SOFTMAX_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "arch.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

/// x *= scale; returns max(x) (n >= 1).
template <class A>
float scale_max(float* x, std::size_t n, float scale) {
  using F = fbatch<A>;
  constexpr std::size_t W = F::size;
  F lanes(-std::numeric_limits<float>::infinity());
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const F v = F::load_unaligned(x + i) * F(scale);
    v.store_unaligned(x + i);
    lanes = xsimd::max(lanes, v);
  }
  float max = reduce_max<A>(lanes);
  for (; i < n; ++i) max = std::max(max, x[i] *= scale);
  return max;
}

/// x = exp(x - shift); returns sum(x).
template <class A>
float exp_sum(float* x, std::size_t n, float shift) {
  using F = fbatch<A>;
  constexpr std::size_t W = F::size;
  F lanes(0.0f);
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const F v = xsimd::exp(F::load_unaligned(x + i) - F(shift));
    v.store_unaligned(x + i);
    lanes += v;
  }
  float sum = reduce_add<A>(lanes);
  for (; i < n; ++i) sum += x[i] = std::exp(x[i] - shift);
  return sum;
}

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_SOFTMAX_HPP
