// SPDX-License-Identifier: MIT
// The arithmetic the CUDA kernels add on top of the formats' reference (order-independent min/max,
// splitting the key axis, merging split softmax results), as plain KPC_HOST_DEVICE C++: the CPU
// tests (tests/cuda_math_test.cpp) run exactly this code every CI run, GPU or not.
#ifndef KPC_CUDA_DETAIL_MATH_HPP
#define KPC_CUDA_DETAIL_MATH_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>

#include <kpc/config.hpp>

KPC_BEGIN_NAMESPACE
namespace cuda {
namespace detail {

/// A value and where it was seen (a channel index). The reference walks channels in order: it
/// takes channel 0's value, then moves only on a strictly smaller (larger) value. So among equal
/// values the first wins (which decides -0 against +0), a NaN at channel 0 stays and any later NaN
/// is passed over. Ranking by these rules gives the same answer from any reduction tree.
struct ranked {
  float value;
  unsigned index;
};

namespace merge_rules {
KPC_HOST_DEVICE inline bool is_nan(float x) { return !(x == x); }
/// The NaN rules above, or null when neither value is NaN.
KPC_HOST_DEVICE inline const ranked* nan_winner(const ranked& a, const ranked& b) {
  if (is_nan(a.value) && a.index == 0) return &a;
  if (is_nan(b.value) && b.index == 0) return &b;
  if (is_nan(a.value)) return &b;
  if (is_nan(b.value)) return &a;
  return nullptr;
}
}  // namespace merge_rules

KPC_HOST_DEVICE inline ranked first_min(ranked a, ranked b) {
  if (const ranked* winner = merge_rules::nan_winner(a, b)) return *winner;
  if (b.value < a.value) return b;
  if (a.value < b.value) return a;
  return b.index < a.index ? b : a;
}

KPC_HOST_DEVICE inline ranked first_max(ranked a, ranked b) {
  if (const ranked* winner = merge_rules::nan_winner(a, b)) return *winner;
  if (b.value > a.value) return b;
  if (a.value > b.value) return a;
  return b.index < a.index ? b : a;
}

/// How stage_bytes copies n bytes at `address` into 16-byte-aligned shared memory: bytes
/// [lead, head_end) and [tail_begin, total) one by one, 16-byte words [words_begin, words_end)
/// whole (offsets from address rounded down to 16). Together exactly [lead, total): nothing outside
/// the caller's range is read, nothing twice.
struct staging_plan {
  std::size_t lead, total, words_begin, words_end, head_end, tail_begin;
};

KPC_HOST_DEVICE inline staging_plan plan_staging(std::uintptr_t address, std::size_t n) {
  staging_plan plan;
  plan.lead = static_cast<std::size_t>(address % 16);
  plan.total = plan.lead + n;
  plan.words_begin = plan.lead != 0 ? 1 : 0;
  plan.words_end = plan.total / 16 > plan.words_begin ? plan.total / 16 : plan.words_begin;
  plan.head_end = plan.total < plan.words_begin * 16 ? plan.total : plan.words_begin * 16;
  plan.tail_begin = plan.head_end > plan.words_end * 16 ? plan.head_end : plan.words_end * 16;
  return plan;
}

/// Units [begin, end) that split s of `splits` takes out of `units`: contiguous, in order, sizes
/// differing by at most one, together covering every unit once.
struct unit_range {
  std::size_t begin;
  std::size_t end;
};

KPC_HOST_DEVICE inline unit_range split_units(std::size_t units, std::size_t splits, std::size_t s) {
  return {units * s / splits, units * (s + 1) / splits};
}

/// How many splits of the key axis a launch uses: enough blocks to fill `sm_count` multiprocessors
/// about four times over, never more splits than units (or than `max_splits`), at least one.
KPC_HOST_DEVICE inline std::size_t choose_splits(std::size_t units, std::size_t blocks_per_split, int sm_count,
                                                 std::size_t max_splits) {
  const std::size_t target_blocks = 4 * static_cast<std::size_t>(sm_count > 0 ? sm_count : 1);
  std::size_t splits = (target_blocks + blocks_per_split - 1) / blocks_per_split;
  if (splits > units) splits = units;
  if (splits > max_splits) splits = max_splits;
  return splits > 0 ? splits : 1;
}

/// logit = scale * dot, or softcap * tanh(scale * dot / softcap) when softcap > 0 (as the CPU's
/// decode_attention).
KPC_HOST_DEVICE inline float attention_logit(float dot, float scale, float softcap) {
  return softcap > 0.0f ? softcap * tanhf(dot * scale / softcap) : dot * scale;
}

/// exp(partial_max - max): the weight of a softmax part whose logits were exponentiated against
/// partial_max, once the overall maximum is `max`. A part that saw nothing (-inf) weighs 0.
KPC_HOST_DEVICE inline float rescale(float partial_max, float max) {
  return partial_max == -INFINITY ? 0.0f : expf(partial_max - max);
}

/// One query head's split results: split s has maximum max[s], sum of exp(logit - max[s]) sum[s]
/// and unnormalized output acc[s * acc_stride + c]. Merges them (and a sink logit, -inf for none)
/// into out[c] for c in [c_begin, c_end), c_step apart; zeros when nothing contributed.
KPC_HOST_DEVICE inline void merge_splits(const float* max, const float* sum, const float* acc, std::size_t acc_stride,
                                         std::size_t splits, float sink, std::size_t c_begin, std::size_t c_end,
                                         std::size_t c_step, float* out) {
  float overall = sink;
  for (std::size_t s = 0; s < splits; ++s) overall = max[s] > overall ? max[s] : overall;
  float denominator = rescale(sink, overall);
  for (std::size_t s = 0; s < splits; ++s) denominator += rescale(max[s], overall) * sum[s];
  const float inverse = denominator > 0.0f ? 1.0f / denominator : 0.0f;
  for (std::size_t c = c_begin; c < c_end; c += c_step) {
    float value = 0.0f;
    for (std::size_t s = 0; s < splits; ++s) value += rescale(max[s], overall) * acc[s * acc_stride + c];
    out[c] = value * inverse;
  }
}

}  // namespace detail
}  // namespace cuda
KPC_END_NAMESPACE

#endif  // KPC_CUDA_DETAIL_MATH_HPP
