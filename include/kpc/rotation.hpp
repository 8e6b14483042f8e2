// SPDX-License-Identifier: MIT
// Walsh-Hadamard rotation of a head's rows, in power-of-two blocks: spreads a few large channels
// over the block before per-token quantization (QuaRot, and llama.cpp's rotated KV caches).
// The normalized transform is orthonormal and its own inverse: H (H x) = x up to f32 rounding,
// and (H q) . (H k) = q . k, so attention can run on rotated keys and values exactly.
#ifndef KPC_ROTATION_HPP
#define KPC_ROTATION_HPP

#include <cmath>
#include <cstddef>

#include "config.hpp"

KPC_BEGIN_NAMESPACE

/// The block a head of head_dim channels is rotated in: the largest power of two dividing it.
constexpr std::size_t hadamard_block(std::size_t head_dim) noexcept {
  return head_dim == 0 ? 0 : head_dim & (~head_dim + 1);
}

/// x[0, n) := H x, block by block (`block` a power of two dividing n), H the Walsh-Hadamard matrix
/// scaled by 1/sqrt(block): fast transform, n log2(block) additions.
inline void hadamard_rotate(float* x, std::size_t n, std::size_t block) noexcept {
  const float norm = 1.0f / std::sqrt(static_cast<float>(block));
  for (std::size_t base = 0; base < n; base += block) {
    float* b = x + base;
    for (std::size_t half = 1; half < block; half *= 2)
      for (std::size_t i = 0; i < block; i += 2 * half)
        for (std::size_t j = i; j < i + half; ++j) {
          const float u = b[j], v = b[j + half];
          b[j] = u + v;
          b[j + half] = u - v;
        }
    for (std::size_t j = 0; j < block; ++j) b[j] *= norm;
  }
}

KPC_END_NAMESPACE

#endif  // KPC_ROTATION_HPP
