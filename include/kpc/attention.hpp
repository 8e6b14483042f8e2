// SPDX-License-Identifier: MIT
// Fused decode attention straight from the codes: softmax(scale * q K^T) V for one query row, or
// for a GQA group of query heads that share one KV head, with an online softmax (the decoded
// cache never exists in memory).
#ifndef KPC_ATTENTION_HPP
#define KPC_ATTENTION_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <type_traits>
#include <vector>

#include "backend.hpp"
#include "config.hpp"
#include "error.hpp"

KPC_BEGIN_NAMESPACE

/// How attention multiplies the cache's codes. exact: f32 products with every decoded value (the
/// default; agrees with an f64 softmax to f32 rounding). integer: q * scale' is quantized to int8
/// per 16 channels (K scores) and the softmax weights * d to int16 per 64 tokens (V), and the
/// products with the 4-bit codes are summed in integers (pmaddubsw / pmaddwd on x86, multiply-
/// accumulate on NEON); it adds an error with a stated bound (docs/FORMAT.md, "Integer attention
/// path"). It applies to 4-bit K tiles and V4 (q4_1) rows; other formats compute exactly either way.
enum class attention_arithmetic : int { exact = 0, integer = 1 };

/// How logits are formed: logit_t = scale * q.k_t, then softcap * tanh(logit_t / softcap) when
/// softcap > 0 (Gemma 2). sinks, when given, holds one extra logit per query head of the group
/// that joins the softmax's denominator and carries no value (gpt-oss's attention sinks).
struct attention_params {
  float scale = 0.0f;            ///< 0 selects 1 / sqrt(head_dim)
  float softcap = 0.0f;          ///< 0: no cap
  const float* sinks = nullptr;  ///< [group] logits, or null
  attention_arithmetic arithmetic = attention_arithmetic::exact;
};

namespace detail {

/// Tokens per online-softmax step: a multiple of every K tile (32, 64, 128). Each step's codes are
/// read once for the whole group (scores_group / accumulate_group unpack them once for two heads;
/// the step, about 40 KiB for a 128-wide head at 4 bits, stays in L1/L2 for the rest), so the
/// cache crosses the memory bus once per group.
inline constexpr std::size_t attention_chunk = 256;
/// Query heads whose softmax state lives on the stack at once; larger groups take several passes.
inline constexpr std::size_t attention_heads_per_pass = 16;

/// What decode_attention needs of a format: a descriptor (format.hpp), encoded_bytes, and
/// scores_group (K) or accumulate_group (V) with Quantizer's signatures.
template <class Format, class = void>
struct has_descriptor : std::false_type {};
template <class Format>
struct has_descriptor<Format, std::void_t<decltype(Format::format::unit_tokens),
                                          decltype(Format::encoded_bytes(std::size_t{}, std::size_t{}))>>
    : std::true_type {};
template <class Format, class = void>
struct scores_keys : std::false_type {};
template <class Format>
struct scores_keys<Format, std::void_t<decltype(Format::scores_group(
                               static_cast<const float*>(nullptr), std::size_t{}, static_cast<const std::byte*>(nullptr),
                               std::size_t{}, std::size_t{}, std::size_t{}, static_cast<float*>(nullptr)))>>
    : has_descriptor<Format> {};
template <class Format, class = void>
struct accumulates_values : std::false_type {};
template <class Format>
struct accumulates_values<Format, std::void_t<decltype(Format::accumulate_group(
                                      static_cast<const float*>(nullptr), std::size_t{}, static_cast<const std::byte*>(nullptr),
                                      std::size_t{}, std::size_t{}, std::size_t{}, static_cast<float*>(nullptr)))>>
    : has_descriptor<Format> {};

/// One step's scores q.k of `heads` query heads (K codes from `k`), on the arithmetic asked for.
template <class KFormat>
void step_scores(const attention_params& params, const float* q, std::size_t heads, const std::byte* k,
                 std::size_t k_bytes, std::size_t n, std::size_t head_dim, float* out) {
  if constexpr (KFormat::format::integer_dot && !KFormat::format::per_token)  // (V4 rows as keys: exact)
    if (params.arithmetic == attention_arithmetic::integer)
      return KFormat::scores_group_integer(q, heads, k, k_bytes, n, head_dim, out);
  KFormat::scores_group(q, heads, k, k_bytes, n, head_dim, out);
}
/// One step's weights x values added to out, on the arithmetic asked for.
template <class VFormat>
void step_values(const attention_params& params, const float* w, std::size_t heads, const std::byte* v,
                 std::size_t v_bytes, std::size_t n, std::size_t head_dim, float* out) {
  if constexpr (VFormat::format::integer_dot && VFormat::format::per_token)
    if (params.arithmetic == attention_arithmetic::integer)
      return VFormat::accumulate_group_integer(w, heads, v, v_bytes, n, head_dim, out);
  VFormat::accumulate_group(w, heads, v, v_bytes, n, head_dim, out);
}

inline void check_finite(const float* values, std::size_t count, const char* name) {
  for (std::size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i])) raisef(errc::non_finite, "%s holds NaN or Inf", name);
}

/// A per-thread float buffer of at least `count` floats (grows, never shrinks): rotated queries,
/// second accumulators, a query that the output overwrites; const members stay free to run
/// concurrently.
inline float* thread_floats(std::size_t count) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

/// Whether two float ranges share memory.
inline bool overlaps(const float* a, std::size_t a_count, const float* b, std::size_t b_count) {
  const auto begin_a = reinterpret_cast<std::uintptr_t>(a), begin_b = reinterpret_cast<std::uintptr_t>(b);
  return begin_a < begin_b + b_count * sizeof(float) && begin_b < begin_a + a_count * sizeof(float);
}

/// The queries to read: q itself, or a copy when the output overlaps it (attention writes out
/// before it has read every query), in `spare` floats of per-thread memory past the first.
inline const float* readable_queries(const float* q, const float* out, std::size_t count, std::size_t spare = 0) {
  if (!overlaps(q, count, out, count)) return q;
  float* copy = thread_floats(spare + count) + spare;
  std::copy(q, q + count, copy);
  return copy;
}

/// Checks what every attention entry point takes the same way; returns the logit scale.
inline float checked_scale(const float* q, std::size_t group, std::size_t head_dim, const attention_params& params,
                           const float* out) {
  if (group == 0) raisef(errc::invalid_shape, "decode_attention: group must be >= 1");
  check_rows(q, group, head_dim, head_dim, sizeof(float), "decode_attention q");
  check_rows(out, group, head_dim, head_dim, sizeof(float), "decode_attention out");
  check_finite(q, group * head_dim, "decode_attention q");
  check_finite(&params.scale, 1, "attention_params::scale");
  check_finite(&params.softcap, 1, "attention_params::softcap");
  if (params.softcap < 0.0f) raisef(errc::out_of_range, "attention_params::softcap must be >= 0");
  if (params.sinks != nullptr) check_finite(params.sinks, group, "attention_params::sinks");
  if (params.arithmetic != attention_arithmetic::exact && params.arithmetic != attention_arithmetic::integer)
    raisef(errc::out_of_range, "attention_params::arithmetic: %d is neither exact nor integer", static_cast<int>(params.arithmetic));
  return params.scale != 0.0f ? params.scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
}

/// The online softmax of up to attention_heads_per_pass query heads, fed in steps of at most
/// attention_chunk tokens: the caller writes each step's raw scores q.k ([heads][n], at scores())
/// from wherever its keys are, calls step(n), which turns them into weights (rescaling what was
/// summed under an older maximum), and adds weights x values to out (and to `rotated`, a second
/// accumulator for values kept in another basis, when given); finish() divides by the sums.
class softmax_pass {
 public:
  softmax_pass(std::size_t heads, std::size_t head_dim, const attention_params& params, float scale, std::size_t first_head,
               float* out, float* rotated)
      : heads_(heads), head_dim_(head_dim), scale_(scale), softcap_(params.softcap), out_(out), rotated_(rotated),
        steps_(active_softmax()) {
    for (std::size_t h = 0; h < heads; ++h) {
      const bool sink = params.sinks != nullptr;
      max_[h] = sink ? params.sinks[first_head + h] : -std::numeric_limits<float>::infinity();
      sum_[h] = sink ? 1.0f : 0.0f;  // the sink's exp(sink - max)
    }
  }
  float* scores() { return weights_; }
  /// Head h's running maximum logit and sum of exp(logit - maximum) (split attention merges these).
  float max(std::size_t h) const { return max_[h]; }
  float sum(std::size_t h) const { return sum_[h]; }
  /// Weights of head h in the last step: weights()[h * n + t].
  const float* weights() const { return weights_; }

  /// The first `skip` tokens of the step get weight 0 (positions whose scores come from elsewhere).
  /// With `valid`, head h takes only the first valid[h] of the n scores (a causal mask: the rest,
  /// possibly all, get weight 0).
  void step(std::size_t n, std::size_t skip = 0, const std::size_t* valid = nullptr) {
    for (std::size_t h = 0; h < heads_; ++h) {
      float* const w = weights_ + h * n;
      const std::size_t count = valid != nullptr ? valid[h] : n;
      if (count == 0) {
        std::fill(w, w + n, 0.0f);
        continue;
      }
      for (std::size_t t = skip; t < count; ++t)
        if (!std::isfinite(w[t])) raise_overflow();
      float step_max;
      if (softcap_ > 0.0f) {
        step_max = -std::numeric_limits<float>::infinity();
        for (std::size_t t = 0; t < count; ++t) {
          w[t] = softcap_ * std::tanh(w[t] * scale_ / softcap_);
          step_max = std::max(step_max, w[t]);
        }
      } else {
        step_max = steps_.scale_max(w, count, scale_);
      }
      if (skip != 0) {  // (callers skip only after a step or sink that made the maximum finite)
        std::fill(w, w + skip, -std::numeric_limits<float>::infinity());
        step_max = *std::max_element(w, w + count);
      }
      if (!(step_max < std::numeric_limits<float>::infinity())) raise_overflow();  // scale * q.k beyond f32
      if (step_max > max_[h]) {  // rescale what was summed under the old maximum
        const float correction = std::exp(max_[h] - step_max);
        sum_[h] *= correction;
        rescale(out_ + h * head_dim_, correction);
        if (rotated_ != nullptr) rescale(rotated_ + h * head_dim_, correction);
        max_[h] = step_max;
      }
      sum_[h] += steps_.exp_sum(w, count, max_[h]);
      std::fill(w + count, w + n, 0.0f);
    }
  }

  void finish() {
    for (std::size_t h = 0; h < heads_; ++h) {
      if (sum_[h] == 0.0f) continue;  // no tokens and no sink: zeros
      const float inverse = 1.0f / sum_[h];
      rescale(out_ + h * head_dim_, inverse);
      if (rotated_ != nullptr) rescale(rotated_ + h * head_dim_, inverse);
    }
  }

 private:
  [[noreturn]] KPC_COLD static void raise_overflow() {
    raisef(errc::out_of_range, "decode_attention: a logit scale * q.k is not finite (q, keys or scale beyond f32)");
  }
  void rescale(float* acc, float factor) const {
    for (std::size_t c = 0; c < head_dim_; ++c) acc[c] *= factor;
  }

  std::size_t heads_, head_dim_;
  float scale_, softcap_;
  float* out_;
  float* rotated_;
  softmax_kernels steps_;
  float max_[attention_heads_per_pass];  // softmax state: max logit and sum of exp
  float sum_[attention_heads_per_pass];
  alignas(64) float weights_[attention_heads_per_pass * attention_chunk];  // [heads][n] of the step
};

}  // namespace detail

namespace detail {
/// The online softmax of `group` query heads over tokens [first, last) of a K and a V slab into
/// out[group][head_dim]. Without maxima/sums it finishes (divides by the sums); with them it leaves
/// out unnormalized and stores each head's maximum logit and sum there (split attention).
template <class KFormat, class VFormat>
void attend_range(const float* q, std::size_t group, const std::byte* k, std::size_t k_bytes, const std::byte* v,
                  std::size_t v_bytes, std::size_t first, std::size_t last, std::size_t head_dim,
                  const attention_params& params, float scale, float* out, float* maxima, float* sums) {
  for (std::size_t first_head = 0; first_head < group; first_head += attention_heads_per_pass) {
    const std::size_t heads = std::min(attention_heads_per_pass, group - first_head);
    const float* queries = q + first_head * head_dim;
    float* outputs = out + first_head * head_dim;
    softmax_pass pass(heads, head_dim, params, scale, first_head, outputs, nullptr);
    for (std::size_t t0 = first; t0 < last; t0 += attention_chunk) {
      const std::size_t n = std::min(attention_chunk, last - t0);
      const std::size_t k_offset = KFormat::encoded_bytes(t0, head_dim);
      const std::size_t v_offset = VFormat::encoded_bytes(t0, head_dim);
      step_scores<KFormat>(params, queries, heads, k + k_offset, k_bytes - k_offset, n, head_dim, pass.scores());
      pass.step(n);
      step_values<VFormat>(params, pass.weights(), heads, v + v_offset, v_bytes - v_offset, n, head_dim, outputs);
    }
    if (maxima == nullptr) {
      pass.finish();
      continue;
    }
    for (std::size_t h = 0; h < heads; ++h) {
      maxima[first_head + h] = pass.max(h);
      sums[first_head + h] = pass.sum(h);
    }
  }
}
}  // namespace detail

/// Attention of `group` query heads (q: [group][head_dim] f32) over the first `tokens` tokens of
/// one KV head: K as a KFormat slab (k, k_bytes), V as a VFormat slab (v, v_bytes). Writes
/// out[group][head_dim] (out may be q itself: attention in place). KFormat/VFormat are kpc::Quantizer
/// types (V per token; kpc::f16_rows for plain f16), checked at compile time.
/// tokens = 0 gives zeros. Errors: invalid_shape (group 0, channels the formats cannot take),
/// buffer_too_small, null_pointer, non_finite (q, scale, softcap or sinks), out_of_range
/// (softcap < 0; a logit scale * q.k beyond f32, e.g. q of 1e37: the softmax would be NaN).
/// Bytes that no encoder wrote give unspecified values, never an out-of-bounds access.
template <class KFormat, class VFormat>
void decode_attention(const float* q, std::size_t group, const std::byte* k, std::size_t k_bytes,
                      const std::byte* v, std::size_t v_bytes, std::size_t tokens, std::size_t head_dim,
                      const attention_params& params, float* out) {
  static_assert(detail::scores_keys<KFormat>::value,
                "kpc::decode_attention: KFormat must be a kpc::Quantizer (kpc::f16_rows for plain f16): a type "
                "with a format descriptor, encoded_bytes(tokens, channels) and scores_group");
  static_assert(detail::accumulates_values<VFormat>::value,
                "kpc::decode_attention: VFormat must be a per-token kpc::Quantizer (q4_1, q8_0, ..., kpc::f16_rows): "
                "a type with a format descriptor, encoded_bytes(tokens, channels) and accumulate_group");
  constexpr std::size_t chunk = detail::attention_chunk;
  if constexpr (detail::scores_keys<KFormat>::value && detail::accumulates_values<VFormat>::value)
    static_assert(chunk % KFormat::format::unit_tokens == 0 && chunk % VFormat::format::unit_tokens == 0,
                  "kpc::decode_attention: a format's unit must divide the 256-token step");
  if (group == 0) detail::raisef(errc::invalid_shape, "decode_attention: group must be >= 1");
  const std::size_t k_needed = KFormat::encoded_bytes(tokens, head_dim);  // both shapes before any size
  const std::size_t v_needed = VFormat::encoded_bytes(tokens, head_dim);
  detail::check_bytes(k, k_bytes, k_needed, "decode_attention k");
  detail::check_bytes(v, v_bytes, v_needed, "decode_attention v");
  const float scale = detail::checked_scale(q, group, head_dim, params, out);
  q = detail::readable_queries(q, out, group * head_dim);  // out may be q itself

  std::fill(out, out + group * head_dim, 0.0f);
  detail::attend_range<KFormat, VFormat>(q, group, k, k_bytes, v, v_bytes, 0, tokens, head_dim, params, scale, out,
                                         nullptr, nullptr);
}

/// decode_attention with the key axis cut into up to `parts` ranges (whole 256-token steps) that
/// parallel_for runs, possibly at once: each range keeps its own online-softmax state, and the
/// states merge as the online softmax rescales, so the result equals the one-range call up to
/// float rounding. parallel_for(n, task) must call task(i) once for each i < n, on any threads,
/// and return when all have run (a thread pool's parallel-for; a plain loop works too). kpc
/// creates no thread. An error in a range (a logit beyond f32) is thrown here, after all ran.
/// Needs parts x (2 + head_dim) x group floats of heap memory.
template <class KFormat, class VFormat, class ParallelFor>
void decode_attention(const float* q, std::size_t group, const std::byte* k, std::size_t k_bytes,
                      const std::byte* v, std::size_t v_bytes, std::size_t tokens, std::size_t head_dim,
                      const attention_params& params, float* out, std::size_t parts, ParallelFor&& parallel_for) {
  constexpr std::size_t chunk = detail::attention_chunk;
  const std::size_t steps = tokens / chunk + (tokens % chunk != 0);
  parts = std::min(std::max<std::size_t>(parts, 1), std::max<std::size_t>(steps, 1));
  if (parts == 1) return decode_attention<KFormat, VFormat>(q, group, k, k_bytes, v, v_bytes, tokens, head_dim, params, out);
  if (group == 0) detail::raisef(errc::invalid_shape, "decode_attention: group must be >= 1");
  detail::check_bytes(k, k_bytes, KFormat::encoded_bytes(tokens, head_dim), "decode_attention k");
  detail::check_bytes(v, v_bytes, VFormat::encoded_bytes(tokens, head_dim), "decode_attention v");
  const float scale = detail::checked_scale(q, group, head_dim, params, out);
  std::vector<float> queries(q, q + group * head_dim);  // out may be q itself
  // Per range: [group][head_dim] unnormalized outputs, then [group] maxima and [group] sums.
  const std::size_t stride = group * (head_dim + 2);
  std::vector<float> state(parts * stride, 0.0f);
  std::vector<std::exception_ptr> failures(parts);
  parallel_for(parts, [&](std::size_t i) {
    const std::size_t first = steps * i / parts * chunk, last = std::min(tokens, steps * (i + 1) / parts * chunk);
    float* range_out = state.data() + i * stride;
    attention_params range_params = params;
    if (i != 0) range_params.sinks = nullptr;  // a sink joins the softmax once
#if KPC_HAS_EXCEPTIONS
    try {
#endif
      detail::attend_range<KFormat, VFormat>(queries.data(), group, k, k_bytes, v, v_bytes, first, last, head_dim,
                                             range_params, scale, range_out, range_out + group * head_dim,
                                             range_out + group * (head_dim + 1));
#if KPC_HAS_EXCEPTIONS
    } catch (...) {
      failures[i] = std::current_exception();
    }
#endif
  });
#if KPC_HAS_EXCEPTIONS
  for (const std::exception_ptr& failure : failures)
    if (failure) std::rethrow_exception(failure);
#endif
  for (std::size_t h = 0; h < group; ++h) {
    float top = -std::numeric_limits<float>::infinity();
    for (std::size_t i = 0; i < parts; ++i) top = std::max(top, state[i * stride + group * head_dim + h]);
    float total = 0.0f;
    float* o = out + h * head_dim;
    std::fill(o, o + head_dim, 0.0f);
    for (std::size_t i = 0; i < parts; ++i) {
      const float* range = state.data() + i * stride;
      const float range_sum = range[group * (head_dim + 1) + h];
      if (range_sum == 0.0f) continue;  // no tokens (and no sink) in it
      const float factor = std::exp(range[group * head_dim + h] - top);
      total += range_sum * factor;
      for (std::size_t c = 0; c < head_dim; ++c) o[c] += range[h * head_dim + c] * factor;
    }
    if (total != 0.0f)
      for (std::size_t c = 0; c < head_dim; ++c) o[c] /= total;
  }
}

/// Causal attention of `queries` consecutive positions against one KV head, in one call: query
/// i (q + i * group * head_dim: `group` heads, [queries][group][head_dim] in all) sees tokens
/// [0, first + i + 1) of the slabs, what decode_attention over first + i + 1 tokens gives it (up
/// to float rounding): a prompt's prefill (first = 0), or a chunk of it after `first` cached
/// tokens. The slabs hold at least first + queries tokens. Each 256-token step of the cache is
/// read once for up to 16 query rows (queries x heads) instead of once per query. out
/// [queries][group][head_dim] (may be q). Errors as decode_attention's.
template <class KFormat, class VFormat>
void prefill_attention(const float* q, std::size_t queries, std::size_t group, const std::byte* k, std::size_t k_bytes,
                       const std::byte* v, std::size_t v_bytes, std::size_t first, std::size_t head_dim,
                       const attention_params& params, float* out) {
  static_assert(detail::scores_keys<KFormat>::value && detail::accumulates_values<VFormat>::value,
                "kpc::prefill_attention: KFormat and VFormat must be kpc::Quantizer formats (see decode_attention)");
  if (group == 0) detail::raisef(errc::invalid_shape, "prefill_attention: group must be >= 1");
  if (queries == 0) return;
  const std::size_t rows = detail::checked_mul(queries, group), tokens = first + queries;
  detail::check_bytes(k, k_bytes, KFormat::encoded_bytes(tokens, head_dim), "prefill_attention k");
  detail::check_bytes(v, v_bytes, VFormat::encoded_bytes(tokens, head_dim), "prefill_attention v");
  attention_params row_params = params;
  row_params.sinks = nullptr;  // checked per group below, and given per row
  const float scale = detail::checked_scale(q, rows, head_dim, row_params, out);
  if (params.sinks != nullptr) detail::check_finite(params.sinks, group, "attention_params::sinks");
  std::vector<float> queries_copy;
  if (detail::overlaps(q, rows * head_dim, out, rows * head_dim)) {  // out may be q
    queries_copy.assign(q, q + rows * head_dim);
    q = queries_copy.data();
  }
  std::fill(out, out + rows * head_dim, 0.0f);
  constexpr std::size_t chunk = detail::attention_chunk;
  for (std::size_t r0 = 0; r0 < rows; r0 += detail::attention_heads_per_pass) {
    const std::size_t heads = std::min(detail::attention_heads_per_pass, rows - r0);
    float row_sinks[detail::attention_heads_per_pass];
    std::size_t limit[detail::attention_heads_per_pass], valid[detail::attention_heads_per_pass];
    for (std::size_t h = 0; h < heads; ++h) {
      limit[h] = first + (r0 + h) / group + 1;  // row r0 + h is query (r0 + h) / group
      if (params.sinks != nullptr) row_sinks[h] = params.sinks[(r0 + h) % group];
    }
    row_params.sinks = params.sinks != nullptr ? row_sinks : nullptr;
    float* outputs = out + r0 * head_dim;
    detail::softmax_pass pass(heads, head_dim, row_params, scale, 0, outputs, nullptr);
    const std::size_t last = limit[heads - 1];  // rows are in query order: the last sees the most
    for (std::size_t t0 = 0; t0 < last; t0 += chunk) {
      const std::size_t n = std::min(chunk, last - t0);
      for (std::size_t h = 0; h < heads; ++h) valid[h] = limit[h] <= t0 ? 0 : std::min(n, limit[h] - t0);
      const std::size_t k_offset = KFormat::encoded_bytes(t0, head_dim);
      const std::size_t v_offset = VFormat::encoded_bytes(t0, head_dim);
      detail::step_scores<KFormat>(params, q + r0 * head_dim, heads, k + k_offset, k_bytes - k_offset, n, head_dim,
                                   pass.scores());
      pass.step(n, 0, valid);
      detail::step_values<VFormat>(params, pass.weights(), heads, v + v_offset, v_bytes - v_offset, n, head_dim, outputs);
    }
    pass.finish();
  }
}

KPC_END_NAMESPACE

#endif  // KPC_ATTENTION_HPP
