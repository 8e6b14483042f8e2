// SPDX-License-Identifier: MIT
// Decode attention (kpc::decode_attention: one KV head of 128 channels, a GQA group of 4 query
// heads, online softmax) over 1k-64k cached tokens, on an f16 cache and on kpc caches, with the
// same routine. Two regimes:
//   hot  - the same KV head every call: it stays in L2/L3 while it fits (up to ~16k tokens here);
//   cold - a pool of KV heads (>= 256 MiB as f16) is walked head after head, as a decode step walks
//          every layer and head of a model: each head's cache comes from DRAM, as in an engine.
// Names: attention/<tokens>/<hot|cold>/<cache>; items/s = cached tokens attended per second.
// <cache>x2: the same on 2 threads (decode_attention's split-K form with a spinning pool).
// <cache>int: the integer attention path (attention_params::arithmetic = integer).
// prefill/4096/<prefill|decode_calls>/K4V4: a 4k prompt's causal attention, one call or 4k calls.
// scripts/attention.py turns the JSON into ratios and docs/results/attention.json.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include <cstring>
#include <kpc/kpc.hpp>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>


namespace {

constexpr std::size_t head_dim = 128, group = 4, max_tokens = 65536;
constexpr std::size_t pool_target_bytes = std::size_t{256} << 20;  // of f16 cache: 8x a large L3

using f16_rows = kpc::f16_rows;
using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;
using V4 = kpc::q4_1;
using V3 = kpc::Quantizer<3, kpc::PerToken<32>>;

/// One KV head's keys and values as a model makes them (keys with Qwen-like offset channels).
struct source {
  std::vector<float> k, v, q;
};
const source& data() {
  static const source s = [] {
    source d;
    std::mt19937_64 gen(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    d.k.resize(max_tokens * head_dim);
    d.v.resize(max_tokens * head_dim);
    for (std::size_t i = 0; i < d.k.size(); ++i) {
      d.k[i] = (i % head_dim) % 37 == 5 ? 20.0f + 5.0f * normal(gen) : normal(gen);
      d.v[i] = normal(gen);
    }
    for (std::size_t i = 0; i < group * head_dim; ++i) d.q.push_back(0.3f * normal(gen));
    return d;
  }();
  return s;
}

template <class F>
std::vector<std::byte> encode_rows(const std::vector<float>& x, std::size_t tokens) {
  std::vector<std::byte> bytes(F::encoded_bytes(tokens, head_dim));
  F::encode(x.data(), tokens, head_dim, bytes.data());
  return bytes;
}

/// `heads` copies of one head's K and V bytes, each head's K and V contiguous.
struct pool {
  std::size_t heads, k_bytes, v_bytes;
  std::vector<std::byte> k, v;
};

template <class KF, class VF>
std::shared_ptr<const pool> make_pool(std::size_t tokens, std::size_t heads) {
  auto p = std::make_shared<pool>();
  const std::vector<std::byte> k = encode_rows<KF>(data().k, tokens), v = encode_rows<VF>(data().v, tokens);
  p->heads = heads;
  p->k_bytes = k.size();
  p->v_bytes = v.size();
  p->k.resize(heads * k.size());
  p->v.resize(heads * v.size());
  for (std::size_t h = 0; h < heads; ++h) {
    std::memcpy(p->k.data() + h * k.size(), k.data(), k.size());
    std::memcpy(p->v.data() + h * v.size(), v.data(), v.size());
  }
  return p;
}

/// A parallel-for on `threads` threads: the caller and threads - 1 workers that spin between
/// calls, as an engine's decode pool does (so a call costs no thread start). Task i runs on
/// thread i % threads.
class spin_pool {
 public:
  explicit spin_pool(std::size_t threads) : threads_(threads) {
    for (std::size_t id = 1; id < threads; ++id) workers_.emplace_back([this, id] { work(id); });
  }
  ~spin_pool() {
    stop_.store(true);
    generation_.fetch_add(1, std::memory_order_release);
    for (std::thread& t : workers_) t.join();
  }
  template <class Task>
  void operator()(std::size_t n, const Task& task) {
    task_ = [&task](std::size_t i) { task(i); };
    n_ = n;
    done_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    for (std::size_t i = 0; i < n; i += threads_) task(i);
    while (done_.load(std::memory_order_acquire) != workers_.size()) std::this_thread::yield();
  }

 private:
  void work(std::size_t id) {
    std::size_t seen = 0;
    for (;;) {
      std::size_t now;
      while ((now = generation_.load(std::memory_order_acquire)) == seen) std::this_thread::yield();
      seen = now;
      if (stop_.load()) return;
      for (std::size_t i = id; i < n_; i += threads_) task_(i);
      done_.fetch_add(1, std::memory_order_release);
    }
  }
  std::size_t threads_, n_ = 0;
  std::function<void(std::size_t)> task_;
  std::atomic<std::size_t> generation_{0}, done_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
};

template <class KF, class VF>
void register_cache(const std::string& name, std::size_t tokens, double bytes_per_token, std::size_t threads = 1,
                    kpc::attention_arithmetic arithmetic = kpc::attention_arithmetic::exact) {
  kpc::attention_params params;
  params.arithmetic = arithmetic;
  const std::size_t f16_head_bytes = 2 * tokens * head_dim * sizeof(kpc::half);
  const std::size_t cold_heads = (pool_target_bytes + f16_head_bytes - 1) / f16_head_bytes;
  for (const bool cold : {false, true}) {
    const std::string label = "attention/" + std::to_string(tokens) + (cold ? "/cold/" : "/hot/") + name;
    benchmark::RegisterBenchmark(label.c_str(), [=](benchmark::State& state) {
      const std::shared_ptr<const pool> p = make_pool<KF, VF>(tokens, cold ? cold_heads : 1);
      std::vector<float> out(group * head_dim);
      std::size_t h = 0;
      spin_pool parallel_for(threads);  // (threads = 1: no workers; the one-range call below)
      for (auto _ : state) {
        if (threads == 1)
          kpc::decode_attention<KF, VF>(data().q.data(), group, p->k.data() + h * p->k_bytes, p->k_bytes,
                                        p->v.data() + h * p->v_bytes, p->v_bytes, tokens, head_dim, params, out.data());
        else  // the key axis split in `threads` ranges (split-K), merged by kpc
          kpc::decode_attention<KF, VF>(data().q.data(), group, p->k.data() + h * p->k_bytes, p->k_bytes,
                                        p->v.data() + h * p->v_bytes, p->v_bytes, tokens, head_dim, params, out.data(),
                                        threads, parallel_for);
        benchmark::DoNotOptimize(out.data());
        if (++h == p->heads) h = 0;
      }
      state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens));
      state.counters["bytes_per_token"] = bytes_per_token;
      state.counters["pool_heads"] = static_cast<double>(p->heads);
    });
  }
}

/// A 4k-token prompt's attention for one KV head (group 4): prefill_attention in one call against
/// one decode_attention call per position (what an engine without a prefill kernel does).
template <class KF, class VF>
void register_prefill(const std::string& name, std::size_t tokens,
                      kpc::attention_arithmetic arithmetic = kpc::attention_arithmetic::exact) {
  kpc::attention_params params;
  params.arithmetic = arithmetic;
  for (const bool one_call : {true, false}) {
    const std::string label = "prefill/" + std::to_string(tokens) + (one_call ? "/prefill/" : "/decode_calls/") + name;
    benchmark::RegisterBenchmark(label.c_str(), [=](benchmark::State& state) {
      const std::shared_ptr<const pool> p = make_pool<KF, VF>(tokens, 1);
      std::vector<float> q(tokens * group * head_dim), out(q.size());
      for (std::size_t i = 0; i < tokens; ++i) std::copy(data().q.begin(), data().q.end(), q.begin() + i * group * head_dim);
      for (auto _ : state) {
        if (one_call) {
          kpc::prefill_attention<KF, VF>(q.data(), tokens, group, p->k.data(), p->k_bytes, p->v.data(), p->v_bytes, 0,
                                         head_dim, params, out.data());
        } else {
          for (std::size_t i = 0; i < tokens; ++i)
            kpc::decode_attention<KF, VF>(q.data() + i * group * head_dim, group, p->k.data(), p->k_bytes, p->v.data(),
                                          p->v_bytes, i + 1, head_dim, params, out.data() + i * group * head_dim);
        }
        benchmark::DoNotOptimize(out.data());
      }
      state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * tokens));
      state.counters["bytes_per_token"] = 0.0;
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  // KPC_BENCH_ISA=avx2 (any kpc::to_string name) measures that instruction set on a CPU with more.
  if (const char* wanted = std::getenv("KPC_BENCH_ISA")) {
    for (const kpc::isa level : kpc::available_isas())
      if (std::string(kpc::to_string(level)) == wanted) kpc::set_isa(level);
    if (std::string(kpc::to_string(kpc::active_isa())) != wanted) {
      std::fprintf(stderr, "KPC_BENCH_ISA=%s: not available here\n", wanted);
      return 1;
    }
  }
  constexpr auto integer = kpc::attention_arithmetic::integer;
  register_prefill<K4, V4>("K4V4", 4096);
  register_prefill<K4, V4>("K4V4int", 4096, integer);
  for (const std::size_t tokens : {std::size_t{1024}, std::size_t{4096}, std::size_t{16384}, std::size_t{65536}}) {
    register_cache<f16_rows, f16_rows>("f16", tokens, 2.0 * f16_rows::encoded_bytes(1, head_dim));
    register_cache<K4, V4>("K4V4", tokens, kpc::KVCache<K4, V4>::bytes_per_token(1, head_dim));
    register_cache<K4, V4>("K4V4int", tokens, kpc::KVCache<K4, V4>::bytes_per_token(1, head_dim), 1, integer);
    register_cache<K4, V3>("K4V3", tokens, kpc::KVCache<K4, V3>::bytes_per_token(1, head_dim));
    register_cache<kpc::q4_0, kpc::q4_0>("q4_0", tokens, 2.0 * static_cast<double>(kpc::q4_0::row_bytes(head_dim)));
    if (tokens >= 16384) {  // 2 threads (a caller's parallel-for over split-K ranges)
      register_cache<f16_rows, f16_rows>("f16x2", tokens, 2.0 * f16_rows::encoded_bytes(1, head_dim), 2);
      register_cache<K4, V4>("K4V4x2", tokens, kpc::KVCache<K4, V4>::bytes_per_token(1, head_dim), 2);
      register_cache<K4, V4>("K4V4intx2", tokens, kpc::KVCache<K4, V4>::bytes_per_token(1, head_dim), 2, integer);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
