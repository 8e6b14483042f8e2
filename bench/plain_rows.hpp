// SPDX-License-Identifier: MIT
// The yardsticks kpc is measured against: unquantized f32/f16 rows scanned the way a good engine
// does it, vectorized for the instruction set this file is compiled for (-march=native in bench/).
// (The f16 cache decode attention runs over is kpc::f16_rows.)
#ifndef KPC_BENCH_PLAIN_ROWS_HPP
#define KPC_BENCH_PLAIN_ROWS_HPP

#include <cstddef>
#include <kpc/kpc.hpp>
#if !defined(KPC_NO_SIMD) && __has_include(<xsimd/xsimd.hpp>)
#include <kpc/simd/arch.hpp>  // the benchmark's own vectors (kpc's kernels come from its units)
#define KPC_BENCH_SIMD 1
#else
#define KPC_BENCH_SIMD 0
#endif

namespace kpc_bench {

#if KPC_BENCH_SIMD
using arch = xsimd::default_arch;
using fb = xsimd::batch<float, arch>;

/// out[t] = q . k_t for every t, keys in f32 or f16 (four accumulators, one horizontal sum per token).
template <class T>
void dot_rows(const float* q, const T* keys, std::size_t tokens, std::size_t channels, float* out) {
  const std::size_t C = channels, W = fb::size;
  for (std::size_t t = 0; t < tokens; ++t) {
    const T* k = keys + t * C;
    fb a0(0.0f), a1(0.0f), a2(0.0f), a3(0.0f);
    std::size_t c = 0;
    for (; c + 4 * W <= C; c += 4 * W) {
      a0 = xsimd::fma(fb::load_unaligned(q + c), kpc::simd::load<arch>(k + c), a0);
      a1 = xsimd::fma(fb::load_unaligned(q + c + W), kpc::simd::load<arch>(k + c + W), a1);
      a2 = xsimd::fma(fb::load_unaligned(q + c + 2 * W), kpc::simd::load<arch>(k + c + 2 * W), a2);
      a3 = xsimd::fma(fb::load_unaligned(q + c + 3 * W), kpc::simd::load<arch>(k + c + 3 * W), a3);
    }
    for (; c + W <= C; c += W) a0 = xsimd::fma(fb::load_unaligned(q + c), kpc::simd::load<arch>(k + c), a0);
    float dot = kpc::simd::reduce_add<arch>((a0 + a1) + (a2 + a3));
    for (; c < C; ++c) dot += q[c] * kpc::to_float(k[c]);
    out[t] = dot;
  }
}

/// out += w_t v_t over all t, values in f32 or f16.
template <class T>
void axpy_rows(const float* w, const T* values, std::size_t tokens, std::size_t channels, float* out) {
  const std::size_t C = channels, W = fb::size;
  for (std::size_t t = 0; t < tokens; ++t) {
    const fb wt(w[t]);
    const T* v = values + t * C;
    std::size_t c = 0;
    for (; c + W <= C; c += W)
      xsimd::fma(wt, kpc::simd::load<arch>(v + c), fb::load_unaligned(out + c)).store_unaligned(out + c);
    for (; c < C; ++c) out[c] += w[t] * kpc::to_float(v[c]);
  }
}
#else
template <class T>
void dot_rows(const float* q, const T* keys, std::size_t tokens, std::size_t channels, float* out) {
  for (std::size_t t = 0; t < tokens; ++t) {
    float partial[16] = {};  // independent sums so the compiler can vectorize without reassociating
    for (std::size_t c = 0; c < channels; c += 16)
      for (std::size_t j = 0; j < 16 && c + j < channels; ++j) partial[j] += q[c + j] * kpc::to_float(keys[t * channels + c + j]);
    float dot = 0.0f;
    for (float p : partial) dot += p;
    out[t] = dot;
  }
}
template <class T>
void axpy_rows(const float* w, const T* values, std::size_t tokens, std::size_t channels, float* out) {
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t c = 0; c < channels; ++c) out[c] += w[t] * kpc::to_float(values[t * channels + c]);
}
#endif

}  // namespace kpc_bench

#endif  // KPC_BENCH_PLAIN_ROWS_HPP
