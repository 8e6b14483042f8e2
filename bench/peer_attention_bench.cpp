// SPDX-License-Identifier: MIT
// llama.cpp's CPU flash attention (ggml_flash_attn_ext, the ggml vendored in llama-cpp-python
// 0.3.36) beside kpc::decode_attention, in one process on one thread, over the same f32 data:
// 1 query token, a GQA group of 4 query heads on 1 KV head, head_dim 128, 1k-64k cached tokens,
// "hot" (the same head every call). Each case is first checked against an f64 softmax attention,
// then the cases are timed round-robin and the median per-call time of each is reported.
// Built and run by scripts/peer_attention.sh: peer_attention_bench OUT.json
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <kpc/kpc.hpp>

#include "ggml-cpu.h"
#include "ggml.h"

namespace {

constexpr std::size_t head_dim = 128;
constexpr std::size_t group = 4;  // query heads per KV head
constexpr std::uint64_t seed = 20261203;
constexpr int rounds = 9;                   // round-robin rounds; the median of these is reported
constexpr double batch_seconds = 0.05;      // each round times a batch of calls this long at least
// A wrong layout or head mapping gives relative errors near 1. Against attention over the case's
// own dequantized K/V, what remains is arithmetic: ggml's f16-V path accumulates the weighted sum
// of V in f16, whose error grows with the tokens (about 2 % at 16k). Against the f32 K/V, q4_0's
// per-token blocks also lose most of a block to the outlier channel that sets its scale (~25 %).
constexpr double max_error_own = 0.1;
constexpr double max_error_exact = 0.5;

using clock_type = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "peer_attention_bench: %s\n", what.c_str());
  std::exit(1);
}

/// The f32 data every case starts from. q [group][head_dim]; keys, values [tokens][head_dim].
struct Data {
  std::size_t tokens;
  std::vector<float> q, keys, values;
};

Data make_data(std::size_t tokens, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Data d{tokens, std::vector<float>(group * head_dim), std::vector<float>(tokens * head_dim),
         std::vector<float>(tokens * head_dim)};
  for (float& x : d.q) x = 0.3f * normal(rng);
  for (std::size_t i = 0; i < d.keys.size(); ++i) {
    // A few channels with a large offset and spread, as Qwen's K bias leaves them: they set the
    // scale of every per-token block that holds them.
    const bool outlier = i % head_dim % 37 == 5;
    d.keys[i] = outlier ? 20.0f + 5.0f * normal(rng) : normal(rng);
  }
  for (float& x : d.values) x = normal(rng);
  return d;
}

/// softmax(q K^T / sqrt(head_dim)) V in f64, per query head: out [group][head_dim].
std::vector<double> reference(const float* q, const float* keys, const float* values, std::size_t tokens) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  std::vector<double> out(group * head_dim, 0.0), logits(tokens);
  for (std::size_t h = 0; h < group; ++h) {
    double top = -INFINITY;
    for (std::size_t t = 0; t < tokens; ++t) {
      double s = 0.0;
      for (std::size_t c = 0; c < head_dim; ++c) s += double(q[h * head_dim + c]) * keys[t * head_dim + c];
      logits[t] = scale * s;
      top = std::max(top, logits[t]);
    }
    double sum = 0.0;
    for (std::size_t t = 0; t < tokens; ++t) {
      const double w = std::exp(logits[t] - top);
      sum += w;
      for (std::size_t c = 0; c < head_dim; ++c) out[h * head_dim + c] += w * values[t * head_dim + c];
    }
    for (std::size_t c = 0; c < head_dim; ++c) out[h * head_dim + c] /= sum;
  }
  return out;
}

double relative_error(const float* got, const std::vector<double>& want) {
  double diff = 0.0, norm = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

/// One timed case at one token count: run() computes the attention of d.q into out().
struct Case {
  std::string name;
  std::function<void()> run;
  std::function<const float*()> out;
  std::vector<float> dequant_keys, dequant_values;  // what the case attends over, for the check
  std::shared_ptr<void> state;                      // keeps the case's buffers alive
};

// ---- ggml ------------------------------------------------------------------------------------

struct GgmlState {
  ggml_context* ctx = nullptr;
  ggml_cgraph* graph = nullptr;
  ggml_tensor* result = nullptr;
  ggml_cplan plan{};
  std::vector<std::uint8_t> work;
  ~GgmlState() { ggml_free(ctx); }
};

// Writes tokens rows of head_dim f32 values as `type` (ggml_quantize_chunk also does f16).
void ggml_fill(ggml_tensor* t, const std::vector<float>& src, std::size_t tokens) {
  const std::size_t written = ggml_quantize_chunk(t->type, src.data(), t->data, 0, static_cast<std::int64_t>(tokens),
                                                  static_cast<std::int64_t>(head_dim), nullptr);
  if (written != ggml_nbytes(t)) fail("ggml_quantize_chunk wrote an unexpected number of bytes");
}

std::vector<float> ggml_dequantize(const ggml_tensor* t, std::size_t tokens) {
  std::vector<float> out(tokens * head_dim);
  ggml_get_type_traits(t->type)->to_float(t->data, out.data(), static_cast<std::int64_t>(out.size()));
  return out;
}

Case ggml_case(ggml_type type, const Data& d, ggml_threadpool* pool) {
  auto s = std::make_shared<GgmlState>();
  const std::size_t tokens = d.tokens;
  const std::size_t kv_bytes = ggml_row_size(type, head_dim) * tokens;
  ggml_init_params init{};
  init.mem_size = 2 * kv_bytes + 2 * group * head_dim * sizeof(float) + 8 * ggml_tensor_overhead() +
                  ggml_graph_overhead() + (1 << 16);
  init.no_alloc = false;
  s->ctx = ggml_init(init);
  if (s->ctx == nullptr) fail("ggml_init failed");

  // ggml's order is innermost first: q [head_dim, 1 token, group heads], K/V [head_dim, tokens,
  // 1 KV head]; V is not transposed. The result is [head_dim, group heads, 1 token]: the same
  // [group][head_dim] floats as kpc's out.
  ggml_tensor* q = ggml_new_tensor_3d(s->ctx, GGML_TYPE_F32, head_dim, 1, group);
  ggml_tensor* k = ggml_new_tensor_3d(s->ctx, type, head_dim, tokens, 1);
  ggml_tensor* v = ggml_new_tensor_3d(s->ctx, type, head_dim, tokens, 1);
  std::copy(d.q.begin(), d.q.end(), static_cast<float*>(q->data));
  ggml_fill(k, d.keys, tokens);
  ggml_fill(v, d.values, tokens);

  // No mask: one query token sees every cached token, and the CPU kernel takes a null mask.
  s->result = ggml_flash_attn_ext(s->ctx, q, k, v, nullptr, 1.0f / std::sqrt(float(head_dim)), 0.0f, 0.0f);
  s->graph = ggml_new_graph(s->ctx);
  ggml_build_forward_expand(s->graph, s->result);
  // Planned once with a threadpool that lives through the run (ggml_graph_compute_with_ctx would
  // allocate a work buffer in the context on every call).
  s->plan = ggml_graph_plan(s->graph, 1, pool);
  s->work.resize(s->plan.work_size);
  s->plan.work_data = s->work.data();

  Case c;
  c.name = std::string("ggml_") + ggml_type_name(type);
  GgmlState* raw = s.get();
  c.run = [raw] {
    if (ggml_graph_compute(raw->graph, &raw->plan) != GGML_STATUS_SUCCESS) fail("ggml_graph_compute failed");
  };
  c.out = [raw] { return static_cast<const float*>(raw->result->data); };
  c.dequant_keys = ggml_dequantize(k, tokens);
  c.dequant_values = ggml_dequantize(v, tokens);
  c.state = s;
  return c;
}

// ---- kpc -------------------------------------------------------------------------------------

struct KpcState {
  std::vector<std::byte> k, v;
  std::vector<float> out = std::vector<float>(group * head_dim);
};

template <class KF, class VF, kpc::attention_arithmetic Arithmetic = kpc::attention_arithmetic::exact>
Case kpc_case(const Data& d) {
  auto s = std::make_shared<KpcState>();
  const std::size_t tokens = d.tokens;
  s->k.resize(KF::encoded_bytes(tokens, head_dim));
  s->v.resize(VF::encoded_bytes(tokens, head_dim));
  KF::encode(d.keys.data(), tokens, head_dim, s->k.data());
  VF::encode(d.values.data(), tokens, head_dim, s->v.data());

  Case c;
  KpcState* raw = s.get();
  const float* q = d.q.data();
  c.run = [raw, q, tokens] {
    kpc::attention_params params;  // scale 1 / sqrt(head_dim)
    params.arithmetic = Arithmetic;
    kpc::decode_attention<KF, VF>(q, group, raw->k.data(), raw->k.size(), raw->v.data(), raw->v.size(), tokens,
                                  head_dim, params, raw->out.data());
  };
  c.out = [raw] { return raw->out.data(); };
  c.dequant_keys.resize(tokens * head_dim);
  c.dequant_values.resize(tokens * head_dim);
  KF::decode(s->k.data(), tokens, head_dim, c.dequant_keys.data());
  VF::decode(s->v.data(), tokens, head_dim, c.dequant_values.data());
  c.state = s;
  return c;
}

using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;
using V4 = kpc::q4_1;

// kpc's variants: one line each.
const std::vector<std::pair<std::string, std::function<Case(const Data&)>>> kpc_variants = {
    {"kpc_K4V4", kpc_case<K4, V4>},
    {"kpc_K4V4int", kpc_case<K4, V4, kpc::attention_arithmetic::integer>},  // the integer path
    {"kpc_f16", kpc_case<kpc::f16_rows, kpc::f16_rows>},
};

const ggml_type ggml_types[] = {GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};

// ---- timing ----------------------------------------------------------------------------------

double seconds_of(const std::function<void()>& f, std::size_t calls) {
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < calls; ++i) f();
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) fail("usage: peer_attention_bench OUT.json");
  ggml_cpu_init();
  std::printf("seed %llu; 1 thread; 1 query token, %zu query heads on 1 KV head, head_dim %zu; hot\n",
              static_cast<unsigned long long>(seed), group, head_dim);
  std::printf("ggml CPU features: avx2 %d avx512 %d avx512_vnni %d f16c %d fma %d\n", ggml_cpu_has_avx2(),
              ggml_cpu_has_avx512(), ggml_cpu_has_avx512_vnni(), ggml_cpu_has_f16c(), ggml_cpu_has_fma());

  ggml_threadpool_params pool_params = ggml_threadpool_params_default(1);
  ggml_threadpool* pool = ggml_threadpool_new(&pool_params);  // 1 thread: the caller's, none started
  if (pool == nullptr) fail("ggml_threadpool_new failed");

  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::string, double>> results;  // "case/tokens" -> median us per call
  for (const std::size_t tokens : {1024, 4096, 16384, 65536}) {
    const Data d = make_data(tokens, rng);
    const std::vector<double> exact = reference(d.q.data(), d.keys.data(), d.values.data(), tokens);

    std::vector<Case> cases;
    for (const ggml_type type : ggml_types) cases.push_back(ggml_case(type, d, pool));
    for (const auto& [name, make] : kpc_variants) {
      cases.push_back(make(d));
      cases.back().name = name;
    }

    // Correctness first.
    for (Case& c : cases) {
      c.run();
      const double own = relative_error(
          c.out(), reference(d.q.data(), c.dequant_keys.data(), c.dequant_values.data(), tokens));
      const double err = relative_error(c.out(), exact);
      std::printf("  check %6zu %-10s relative error vs f64 over its own K/V %.4f, over the f32 K/V %.4f\n", tokens,
                  c.name.c_str(), own, err);
      if (!(own <= max_error_own) || !(err <= max_error_exact))
        fail(c.name + " at " + std::to_string(tokens) + " tokens disagrees with the f64 reference");
      c.dequant_keys = {};
      c.dequant_values = {};
    }

    // Batch sizes from a short calibration (which also warms every case up).
    std::vector<std::size_t> batch(cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i) {
      std::size_t calls = 1;
      double t = seconds_of(cases[i].run, calls);
      while (t < 0.01) t = seconds_of(cases[i].run, calls *= 2);
      batch[i] = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(batch_seconds * calls / t)));
    }
    std::vector<std::vector<double>> us(cases.size());
    for (int r = 0; r < rounds; ++r)
      for (std::size_t i = 0; i < cases.size(); ++i)
        us[i].push_back(1e6 * seconds_of(cases[i].run, batch[i]) / double(batch[i]));
    for (std::size_t i = 0; i < cases.size(); ++i)
      results.emplace_back(cases[i].name + "/" + std::to_string(tokens), median(us[i]));
  }
  ggml_threadpool_free(pool);

  std::printf("\n%-10s", "tokens");
  const std::size_t per_count = std::size(ggml_types) + kpc_variants.size();
  for (std::size_t i = 0; i < per_count; ++i) {
    const std::string& key = results[i].first;
    std::printf(" %12s", key.substr(0, key.find('/')).c_str());
  }
  std::printf("   (median us per call)\n");
  for (std::size_t row = 0; row < results.size() / per_count; ++row) {
    const std::string& key = results[row * per_count].first;
    std::printf("%-10s", key.substr(key.find('/') + 1).c_str());
    for (std::size_t i = 0; i < per_count; ++i) std::printf(" %12.1f", results[row * per_count + i].second);
    std::printf("\n");
  }

  std::FILE* f = std::fopen(argv[1], "w");
  if (f == nullptr) fail(std::string("cannot write ") + argv[1]);
  std::fprintf(f, "{\n");
  for (std::size_t i = 0; i < results.size(); ++i)
    std::fprintf(f, "  \"%s\": %.2f%s\n", results[i].first.c_str(), results[i].second,
                 i + 1 < results.size() ? "," : "");
  std::fprintf(f, "}\n");
  std::fclose(f);
  return 0;
}
