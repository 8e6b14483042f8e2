// SPDX-License-Identifier: MIT
// The yardsticks kpc is measured against: unquantized f32/f16 rows scanned the way a good engine
// does it, vectorized for the instruction set this file is compiled for (-march=native in bench/).
// plain_rows<T> has the static members decode_attention needs, so the same attention routine
// runs over an f16 cache.
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
/// dot_rows for two query heads (q0, q1) at once: each key vector is loaded (and converted) once.
template <class T>
void dot_rows_pair(const float* q0, const float* q1, const T* keys, std::size_t tokens, std::size_t channels,
                   float* out0, float* out1) {
  const std::size_t C = channels, W = fb::size;
  for (std::size_t t = 0; t < tokens; ++t) {
    const T* k = keys + t * C;
    fb a0(0.0f), a1(0.0f), b0(0.0f), b1(0.0f);
    std::size_t c = 0;
    for (; c + 2 * W <= C; c += 2 * W) {
      const fb k0 = kpc::simd::load<arch>(k + c), k1 = kpc::simd::load<arch>(k + c + W);
      a0 = xsimd::fma(fb::load_unaligned(q0 + c), k0, a0);
      a1 = xsimd::fma(fb::load_unaligned(q0 + c + W), k1, a1);
      b0 = xsimd::fma(fb::load_unaligned(q1 + c), k0, b0);
      b1 = xsimd::fma(fb::load_unaligned(q1 + c + W), k1, b1);
    }
    float dot0 = kpc::simd::reduce_add<arch>(a0 + a1), dot1 = kpc::simd::reduce_add<arch>(b0 + b1);
    for (; c < C; ++c) {
      dot0 += q0[c] * kpc::to_float(k[c]);
      dot1 += q1[c] * kpc::to_float(k[c]);
    }
    out0[t] = dot0;
    out1[t] = dot1;
  }
}

/// axpy_rows for two heads' weights (w0, w1) into their outputs at once.
template <class T>
void axpy_rows_pair(const float* w0, const float* w1, const T* values, std::size_t tokens, std::size_t channels,
                    float* out0, float* out1) {
  const std::size_t C = channels, W = fb::size;
  for (std::size_t t = 0; t < tokens; ++t) {
    const fb s0(w0[t]), s1(w1[t]);
    const T* v = values + t * C;
    std::size_t c = 0;
    for (; c + W <= C; c += W) {
      const fb x = kpc::simd::load<arch>(v + c);
      xsimd::fma(s0, x, fb::load_unaligned(out0 + c)).store_unaligned(out0 + c);
      xsimd::fma(s1, x, fb::load_unaligned(out1 + c)).store_unaligned(out1 + c);
    }
    for (; c < C; ++c) {
      out0[c] += w0[t] * kpc::to_float(v[c]);
      out1[c] += w1[t] * kpc::to_float(v[c]);
    }
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
template <class T>
void dot_rows_pair(const float* q0, const float* q1, const T* keys, std::size_t tokens, std::size_t channels,
                   float* out0, float* out1) {
  dot_rows(q0, keys, tokens, channels, out0);
  dot_rows(q1, keys, tokens, channels, out1);
}
template <class T>
void axpy_rows_pair(const float* w0, const float* w1, const T* values, std::size_t tokens, std::size_t channels,
                    float* out0, float* out1) {
  axpy_rows(w0, values, tokens, channels, out0);
  axpy_rows(w1, values, tokens, channels, out1);
}
#endif

/// An unquantized cache of T rows ([tokens][channels]) with the static members decode_attention
/// uses; like kpc's formats, a group's heads go through the rows two at a time.
template <class T>
struct plain_rows {
  static std::size_t encoded_bytes(std::size_t tokens, std::size_t channels) { return tokens * channels * sizeof(T); }
  static void scores_group(const float* q, std::size_t group, const std::byte* src, std::size_t, std::size_t tokens,
                           std::size_t channels, float* out) {
    const T* keys = reinterpret_cast<const T*>(src);
    std::size_t h = 0;
    for (; h + 2 <= group; h += 2)
      dot_rows_pair(q + h * channels, q + (h + 1) * channels, keys, tokens, channels, out + h * tokens,
                    out + (h + 1) * tokens);
    if (h < group) dot_rows(q + h * channels, keys, tokens, channels, out + h * tokens);
  }
  static void accumulate_group(const float* w, std::size_t group, const std::byte* src, std::size_t, std::size_t tokens,
                               std::size_t channels, float* out) {
    const T* values = reinterpret_cast<const T*>(src);
    std::size_t h = 0;
    for (; h + 2 <= group; h += 2)
      axpy_rows_pair(w + h * tokens, w + (h + 1) * tokens, values, tokens, channels, out + h * channels,
                     out + (h + 1) * channels);
    if (h < group) axpy_rows(w + h * tokens, values, tokens, channels, out + h * channels);
  }
};

}  // namespace kpc_bench

#endif  // KPC_BENCH_PLAIN_ROWS_HPP
