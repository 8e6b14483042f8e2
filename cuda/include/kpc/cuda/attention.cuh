// SPDX-License-Identifier: MIT
// Fused decode attention on the GPU, straight from the codes: for every KV head, the GQA group of
// query heads that share it attends over the head's first `tokens` tokens. The key axis is split
// over blocks (split-K / flash-decoding): each block runs an online softmax over its steps of K
// tiles (or 32 rows), writes its unnormalized result, and a second kernel merges the splits.
#ifndef KPC_CUDA_ATTENTION_CUH
#define KPC_CUDA_ATTENTION_CUH

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include <kpc/config.hpp>

#include "codec.cuh"
#include "convert.cuh"
#include "detail/device.cuh"
#include "detail/math.hpp"

KPC_BEGIN_NAMESPACE
namespace cuda {

/// As kpc::attention_params: logit = scale * q.k (scale 0 selects 1/sqrt(head_dim)), then
/// softcap * tanh(logit / softcap) when softcap > 0; sinks (device memory, one logit per query
/// head, or null) join each softmax's denominator and carry no value.
struct attention_params {
  float scale = 0.0f;
  float softcap = 0.0f;
  const float* sinks = nullptr;
};

/// One decode step's attention problem. q and out are [kv_heads * group][head_dim] f32 (query head
/// kv * group + g uses KV head kv); k and v are the per-head slabs of a cache (convert.cuh).
struct attention_problem {
  const float* q;
  slabs<const std::byte> k;
  slabs<const std::byte> v;
  std::size_t tokens;
  heads_shape shape;  ///< kv_heads, head_dim
  std::size_t group;  ///< query heads per KV head
  float* out;
};

namespace detail {

struct attention_layout {
  std::size_t splits;
  std::size_t units;  // attention steps over the key axis
  std::size_t q_heads;
  std::size_t head_dim;
};

/// Workspace: per split and query head, the running maximum, the sum and head_dim accumulators.
inline std::size_t attention_workspace_floats(std::size_t q_heads, std::size_t head_dim, std::size_t splits) {
  return splits * q_heads * (head_dim + 2);
}

template <class K, class V>
struct attention_smem {
  static constexpr int step = K::attention_tokens;
  KPC_HOST_DEVICE static constexpr std::size_t floats(std::size_t head_dim) {
    return max_heads_per_block * head_dim                // q of the block's heads
           + K::scores_scratch_floats(head_dim)          // the K codec's scratch
           + max_heads_per_block * step                  // logits, then weights
           + 3 * max_heads_per_block;                    // running max, sum, correction
  }
  KPC_HOST_DEVICE static constexpr std::size_t bytes(std::size_t head_dim) {
    return (floats(head_dim) * sizeof(float) + 15) / 16 * 16 + staged_bytes(K::slab_bytes(step, head_dim)) +
           staged_bytes(V::slab_bytes(step, head_dim));
  }
};

template <class K, class V>
__global__ void __launch_bounds__(block_threads) attention_splits(attention_problem p, attention_params params,
                                                                  float scale, attention_layout layout, float* workspace) {
  constexpr int step = K::attention_tokens;
  KPC_CUDA_DYNAMIC_SHARED(uint4, shared_words);
  const std::size_t C = p.shape.head_dim;
  float* q = reinterpret_cast<float*>(shared_words);
  float* scratch = q + max_heads_per_block * C;
  float* logits = scratch + K::scores_scratch_floats(C);
  float* running_max = logits + max_heads_per_block * step;
  float* running_sum = running_max + max_heads_per_block;
  float* correction = running_sum + max_heads_per_block;
  std::byte* k_stage = reinterpret_cast<std::byte*>(shared_words) +
                       (attention_smem<K, V>::floats(C) * sizeof(float) + 15) / 16 * 16;
  std::byte* v_stage = k_stage + staged_bytes(K::slab_bytes(step, C));

  const std::size_t split = blockIdx.x, kv = blockIdx.y;
  const std::size_t first_head = kv * p.group + blockIdx.z * max_heads_per_block;
  const std::size_t group_left = p.group - blockIdx.z * max_heads_per_block;
  const int heads = group_left < max_heads_per_block ? static_cast<int>(group_left) : max_heads_per_block;
  for (std::size_t i = threadIdx.x; i < static_cast<std::size_t>(heads) * C; i += blockDim.x) q[i] = p.q[first_head * C + i];
  if (threadIdx.x < static_cast<unsigned>(heads)) {
    running_max[threadIdx.x] = -INFINITY;
    running_sum[threadIdx.x] = 0.0f;
  }
  float acc[max_heads_per_block][max_channels_per_thread] = {};
  const std::byte* k_slab = p.k.data + kv * p.k.head_stride;
  const std::byte* v_slab = p.v.data + kv * p.v.head_stride;
  const unit_range units = split_units(layout.units, layout.splits, split);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;

  for (std::size_t u = units.begin; u < units.end; ++u) {
    const std::size_t t0 = u * step;
    const int n = p.tokens - t0 < static_cast<std::size_t>(step) ? static_cast<int>(p.tokens - t0) : step;
    const std::byte* k_rows = stage_bytes(k_slab + K::slab_bytes(t0, C), K::slab_bytes(n, C), k_stage);
    const std::byte* v_rows = stage_bytes(v_slab + V::slab_bytes(t0, C), V::slab_bytes(n, C), v_stage);
    __syncthreads();
    K::scores(k_rows, n, C, heads, q, scratch, logits);

    // Online softmax, one warp per head: fold this step's logits into the running max and sum.
    for (int h = warp; h < heads; h += warps_per_block) {
      float step_max = -INFINITY;
      for (int t = lane; t < n; t += 32) {
        const float logit = attention_logit(logits[h * step + t], scale, params.softcap);
        logits[h * step + t] = logit;
        step_max = fmaxf(step_max, logit);
      }
      step_max = warp_max(step_max);
      const float new_max = fmaxf(running_max[h], step_max);
      float step_sum = 0.0f;
      for (int t = lane; t < n; t += 32) {
        const float weight = expf(logits[h * step + t] - new_max);
        logits[h * step + t] = weight;
        step_sum += weight;
      }
      step_sum = warp_sum(step_sum);
      if (lane == 0) {
        correction[h] = rescale(running_max[h], new_max);
        running_sum[h] = running_sum[h] * correction[h] + step_sum;
        running_max[h] = new_max;
      }
    }
    __syncthreads();

    KPC_CUDA_UNROLL
    for (int k = 0; k < max_channels_per_thread; ++k) {
      const std::size_t c = threadIdx.x + static_cast<std::size_t>(k) * block_threads;
      if (c >= C) break;
      KPC_CUDA_UNROLL
      for (int h = 0; h < max_heads_per_block; ++h)
        if (h < heads) acc[h][k] *= correction[h];
      for (int t = 0; t < n; ++t) {
        const float x = V::value(v_rows, t, c, C);
        KPC_CUDA_UNROLL
        for (int h = 0; h < max_heads_per_block; ++h)
          if (h < heads) acc[h][k] += logits[h * step + t] * x;
      }
    }
    __syncthreads();  // the next step restages k/v and rewrites the logits
  }

  // This split's unnormalized result: [split][q_head] maxima, sums, then accumulators.
  float* maxima = workspace;
  float* sums = maxima + layout.splits * layout.q_heads;
  float* accumulators = sums + layout.splits * layout.q_heads;
  if (threadIdx.x < static_cast<unsigned>(heads)) {
    maxima[split * layout.q_heads + first_head + threadIdx.x] = running_max[threadIdx.x];
    sums[split * layout.q_heads + first_head + threadIdx.x] = running_sum[threadIdx.x];
  }
  KPC_CUDA_UNROLL
  for (int k = 0; k < max_channels_per_thread; ++k) {
    const std::size_t c = threadIdx.x + static_cast<std::size_t>(k) * block_threads;
    if (c >= C) break;
    KPC_CUDA_UNROLL
    for (int h = 0; h < max_heads_per_block; ++h)
      if (h < heads) accumulators[(split * layout.q_heads + first_head + h) * C + c] = acc[h][k];
  }
}

/// One block per query head: merges the splits (and the sink) into the normalized output. (A
/// template, so that every .cu file of an engine can include this header without a clash.)
template <int = 0>
__global__ void attention_merge(const float* workspace, attention_layout layout, const float* sinks, float* out) {
  const std::size_t head = blockIdx.x;
  const float* maxima = workspace;
  const float* sums = maxima + layout.splits * layout.q_heads;
  const float* accumulators = sums + layout.splits * layout.q_heads;
  // split s's values of this head sit q_heads apart; gather them with strides through a view
  KPC_CUDA_DYNAMIC_SHARED(float, head_state);  // [2][splits]
  for (std::size_t s = threadIdx.x; s < layout.splits; s += blockDim.x) {
    head_state[s] = maxima[s * layout.q_heads + head];
    head_state[layout.splits + s] = sums[s * layout.q_heads + head];
  }
  __syncthreads();
  merge_splits(head_state, head_state + layout.splits, accumulators + head * layout.head_dim,
               layout.q_heads * layout.head_dim, layout.splits, sinks != nullptr ? sinks[head] : -INFINITY,
               threadIdx.x, layout.head_dim, blockDim.x, out + head * layout.head_dim);
}

}  // namespace detail

/// Workspace bytes decode_attention needs for up to max_splits splits of the key axis.
inline std::size_t attention_workspace_bytes(heads_shape shape, std::size_t group, std::size_t max_splits) {
  return detail::attention_workspace_floats(shape.heads * group, shape.head_dim, max_splits) * sizeof(float);
}

/// softmax(scale * q K^T) V for one decode step (see attention_problem), K as codec KCodec (kpc
/// per-channel tiles, or per-token rows) and V as VCodec (per-token rows). The key axis is split
/// in up to max_splits parts (enough to fill the GPU about four times), merged at the end;
/// `workspace` holds attention_workspace_bytes(shape, group, max_splits) device bytes. tokens = 0
/// gives zeros (or the sink alone). cudaErrorInvalidValue for bad shapes (head_dim above 512 or
/// not what the codecs take, group 0), null pointers or a too small workspace; finite q is the
/// caller's duty (NaN propagates to the output). Shared memory grows with head_dim and the K tile:
/// where a GPU has too little for one block (e.g. G=128 keys with f16 values at head_dim 512 on
/// sm_80), the call returns the error of raising the kernel's shared-memory limit.
template <class KCodec, class VCodec>
cudaError_t decode_attention(const attention_problem& p, const attention_params& params, void* workspace,
                             std::size_t workspace_bytes, std::size_t max_splits, cudaStream_t stream) {
  static_assert(!VCodec::per_channel, "kpc::cuda::decode_attention: V must be a per-token codec");
  constexpr int step = KCodec::attention_tokens;
  const heads_shape& shape = p.shape;
  if (!detail::valid<KCodec>(shape) || !detail::valid<VCodec>(shape) || shape.head_dim > detail::max_attention_head_dim ||
      p.group == 0 || p.group > 65535 * static_cast<std::size_t>(detail::max_heads_per_block) ||
      shape.heads * p.group > 0x7FFFFFFFu || p.q == nullptr ||
      p.out == nullptr || workspace == nullptr || max_splits == 0 ||
      (p.tokens != 0 && (p.k.data == nullptr || p.v.data == nullptr)) ||
      !detail::valid_stride<KCodec>(p.k, shape, p.tokens) || !detail::valid_stride<VCodec>(p.v, shape, p.tokens) ||
      workspace_bytes < attention_workspace_bytes(shape, p.group, 1) || !std::isfinite(params.scale) ||
      !std::isfinite(params.softcap) || params.softcap < 0.0f)
    return cudaErrorInvalidValue;
  const std::size_t fitting = workspace_bytes / attention_workspace_bytes(shape, p.group, 1);
  const std::size_t passes = (p.group + detail::max_heads_per_block - 1) / detail::max_heads_per_block;
  const std::size_t units = (p.tokens + step - 1) / step;
  int device = 0, sm_count = 1;
  cudaError_t queried = cudaGetDevice(&device);
  if (queried == cudaSuccess) queried = cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device);
  if (queried != cudaSuccess) return queried;
  const std::size_t splits = detail::choose_splits(units, shape.heads * passes, sm_count,
                                                   max_splits < fitting ? max_splits : fitting);
  const detail::attention_layout layout{splits, units, shape.heads * p.group, shape.head_dim};
  const float scale = params.scale != 0.0f ? params.scale : 1.0f / std::sqrt(static_cast<float>(shape.head_dim));

  const std::size_t smem = detail::attention_smem<KCodec, VCodec>::bytes(shape.head_dim);
  const auto kernel = detail::attention_splits<KCodec, VCodec>;
  if (smem > 48 * 1024) {
    const cudaError_t raised = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (raised != cudaSuccess) return raised;
  }
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(shape.heads), static_cast<unsigned>(passes));
  KPC_CUDA_LAUNCH(kernel, grid, detail::block_threads, smem, stream)(p, params, scale, layout, static_cast<float*>(workspace));
  const std::size_t merge_smem = 2 * splits * sizeof(float);
  const auto merge = detail::attention_merge<>;
  KPC_CUDA_LAUNCH(merge, static_cast<unsigned>(layout.q_heads), detail::block_threads, merge_smem, stream)(
      static_cast<const float*>(workspace), layout, params.sinks, p.out);
  return cudaGetLastError();
}

}  // namespace cuda
KPC_END_NAMESPACE

#endif  // KPC_CUDA_ATTENTION_CUH
