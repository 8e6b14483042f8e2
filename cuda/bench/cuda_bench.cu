// SPDX-License-Identifier: MIT
// kpc on the GPU: encode/decode throughput, and decode attention over a kpc cache against the same
// attention over an f16 cache and against a device-to-device copy of the kpc cache's bytes.
// Prints a table and, with --json PATH, writes the figures docs/results/cuda.json records.
//   kpc_cuda_bench [--json PATH] [--quick]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <kpc/cuda/kpc_cuda.cuh>

namespace {

#define KPC_CUDA(call)                                                                                    \
  do {                                                                                                    \
    const cudaError_t kpc_error = (call);                                                                 \
    if (kpc_error != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(kpc_error), __FILE__, __LINE__, #call); \
      std::exit(1);                                                                                       \
    }                                                                                                     \
  } while (0)

using K4 = kpc::cuda::codec<4, kpc::PerChannel<32>>;
using V4 = kpc::cuda::codec<4, kpc::PerToken<32>>;
using V3 = kpc::cuda::codec<3, kpc::PerToken<32>>;
using Q4_0 = kpc::cuda::codec<4, kpc::PerTokenSymmetric<32>>;
using F16 = kpc::cuda::f16_codec;

constexpr std::size_t kv_heads = 8, head_dim = 128, group = 4, max_splits = 1024;

/// Median time in ms of `runs` launches of f (after two warm-up launches).
template <class F>
double median_ms(F f, int runs) {
  cudaEvent_t start, stop;
  KPC_CUDA(cudaEventCreate(&start));
  KPC_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < 2; ++i) f();
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    KPC_CUDA(cudaEventRecord(start));
    f();
    KPC_CUDA(cudaEventRecord(stop));
    KPC_CUDA(cudaEventSynchronize(stop));
    float ms = 0.0f;
    KPC_CUDA(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  KPC_CUDA(cudaEventDestroy(start));
  KPC_CUDA(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

/// A cache of `tokens` tokens (kv_heads x head_dim, random offset keys) in codecs K and V, on the device.
template <class K, class V>
struct device_cache {
  std::size_t tokens, k_slab, v_slab;
  std::byte* k = nullptr;
  std::byte* v = nullptr;
  device_cache(std::size_t n, const kpc::half* rows) : tokens(n) {
    k_slab = kpc::cuda::slab_bytes<K>(n, head_dim);
    v_slab = kpc::cuda::slab_bytes<V>(n, head_dim);
    KPC_CUDA(cudaMalloc(&k, kv_heads * k_slab));
    KPC_CUDA(cudaMalloc(&v, kv_heads * v_slab));
    const kpc::cuda::rows<const kpc::half> src{rows, kv_heads * head_dim};
    KPC_CUDA(kpc::cuda::encode<K>(src, n, 0, {kv_heads, head_dim}, kpc::cuda::slabs<std::byte>{k, k_slab}, nullptr));
    KPC_CUDA(kpc::cuda::encode<V>(src, n, 0, {kv_heads, head_dim}, kpc::cuda::slabs<std::byte>{v, v_slab}, nullptr));
  }
  ~device_cache() {
    cudaFree(k);
    cudaFree(v);
  }
  std::size_t bytes() const { return kv_heads * (k_slab + v_slab); }
};

struct attention_result {
  double ms, gbps;
};

template <class K, class V>
attention_result time_attention(std::size_t tokens, const kpc::half* rows, const float* q, float* out, void* workspace,
                                std::size_t workspace_bytes, int runs) {
  device_cache<K, V> cache(tokens, rows);
  const kpc::cuda::attention_problem problem{q, {cache.k, cache.k_slab}, {cache.v, cache.v_slab}, tokens, {kv_heads, head_dim},
                                             group, out};
  const double ms = median_ms(
      [&] { KPC_CUDA((kpc::cuda::decode_attention<K, V>(problem, {}, workspace, workspace_bytes, max_splits, nullptr))); }, runs);
  return {ms, static_cast<double>(cache.bytes()) / (ms * 1e6)};
}

}  // namespace

int main(int argc, char** argv) {
  const char* json_path = nullptr;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) json_path = argv[++i];
    else if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--json PATH] [--quick]\n", argv[0]);
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("kpc CUDA bench: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp properties{};
  KPC_CUDA(cudaGetDeviceProperties(&properties, 0));
  const int runs = quick ? 5 : 25;
  const std::size_t max_tokens = quick ? 32768 : 131072;

  // Keys with Qwen2-like offsets and plain values share one random f16 source.
  const std::size_t width = kv_heads * head_dim;
  std::vector<kpc::half> host_rows(max_tokens * width);
  std::mt19937_64 gen(2026);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t i = 0; i < host_rows.size(); ++i) {
    const std::size_t c = i % head_dim;
    host_rows[i] = kpc::half(c % 37 == 3 && c < 4 * 37 ? 20.0f + 5.0f * normal(gen) : normal(gen));
  }
  kpc::half* rows = nullptr;
  KPC_CUDA(cudaMalloc(&rows, host_rows.size() * sizeof(kpc::half)));
  KPC_CUDA(cudaMemcpy(rows, host_rows.data(), host_rows.size() * sizeof(kpc::half), cudaMemcpyHostToDevice));
  std::vector<float> host_q(kv_heads * group * head_dim);
  for (float& x : host_q) x = normal(gen);
  float *q = nullptr, *out = nullptr;
  KPC_CUDA(cudaMalloc(&q, host_q.size() * sizeof(float)));
  KPC_CUDA(cudaMalloc(&out, host_q.size() * sizeof(float)));
  KPC_CUDA(cudaMemcpy(q, host_q.data(), host_q.size() * sizeof(float), cudaMemcpyHostToDevice));
  const std::size_t workspace_bytes = kpc::cuda::attention_workspace_bytes({kv_heads, head_dim}, group, max_splits);
  void* workspace = nullptr;
  KPC_CUDA(cudaMalloc(&workspace, workspace_bytes));

  // Encode and decode: f16 bytes in (or out) per second, K4 G32 keys and V4 values of 32k tokens.
  const std::size_t convert_tokens = 32768;
  const double f16_bytes = static_cast<double>(convert_tokens * width * sizeof(kpc::half));
  device_cache<K4, V4> cache(convert_tokens, rows);
  kpc::half* decoded_rows = nullptr;
  KPC_CUDA(cudaMalloc(&decoded_rows, convert_tokens * width * sizeof(kpc::half)));
  const kpc::cuda::rows<const kpc::half> src{rows, width};
  const double encode_ms = median_ms([&] {
    KPC_CUDA(kpc::cuda::encode<K4>(src, convert_tokens, 0, {kv_heads, head_dim}, kpc::cuda::slabs<std::byte>{cache.k, cache.k_slab}, nullptr));
    KPC_CUDA(kpc::cuda::encode<V4>(src, convert_tokens, 0, {kv_heads, head_dim}, kpc::cuda::slabs<std::byte>{cache.v, cache.v_slab}, nullptr));
  }, runs);
  const double decode_ms = median_ms([&] {
    const kpc::cuda::rows<kpc::half> dst{decoded_rows, width};
    KPC_CUDA(kpc::cuda::decode<K4>(kpc::cuda::slabs<const std::byte>{cache.k, cache.k_slab}, 0, convert_tokens, {kv_heads, head_dim}, dst, nullptr));
    KPC_CUDA(kpc::cuda::decode<V4>(kpc::cuda::slabs<const std::byte>{cache.v, cache.v_slab}, 0, convert_tokens, {kv_heads, head_dim}, dst, nullptr));
  }, runs);
  const double encode_gbps = 2.0 * f16_bytes / (encode_ms * 1e6), decode_gbps = 2.0 * f16_bytes / (decode_ms * 1e6);

  std::printf("kpc CUDA bench on %s (sm_%d%d, %d SMs), %zu KV heads x %zu channels, GQA group %zu\n", properties.name,
              properties.major, properties.minor, properties.multiProcessorCount, kv_heads, head_dim, group);
  std::printf("encode K4 G32 + V4: %.1f GB/s of f16 input; decode: %.1f GB/s of f16 output\n", encode_gbps, decode_gbps);

  struct row {
    std::size_t tokens;
    double copy_gbps, k4v4_ms, k4v4_gbps, k4v3_ms, q4_0_ms, f16_ms;
  };
  std::vector<row> table;
  for (std::size_t tokens : {std::size_t{4096}, std::size_t{32768}, std::size_t{131072}}) {
    if (tokens > max_tokens) break;
    row r{};
    r.tokens = tokens;
    // Copy bandwidth: bytes read + written per second by a device-to-device copy of the K4/V4 cache's size.
    const std::size_t copy_bytes = kv_heads * (kpc::cuda::slab_bytes<K4>(tokens, head_dim) + kpc::cuda::slab_bytes<V4>(tokens, head_dim));
    void *from = nullptr, *to = nullptr;
    KPC_CUDA(cudaMalloc(&from, copy_bytes));
    KPC_CUDA(cudaMalloc(&to, copy_bytes));
    const double copy_ms = median_ms([&] { KPC_CUDA(cudaMemcpyAsync(to, from, copy_bytes, cudaMemcpyDeviceToDevice)); }, runs);
    KPC_CUDA(cudaFree(from));
    KPC_CUDA(cudaFree(to));
    r.copy_gbps = 2.0 * static_cast<double>(copy_bytes) / (copy_ms * 1e6);
    const attention_result k4v4 = time_attention<K4, V4>(tokens, rows, q, out, workspace, workspace_bytes, runs);
    r.k4v4_ms = k4v4.ms;
    r.k4v4_gbps = k4v4.gbps;
    r.k4v3_ms = time_attention<K4, V3>(tokens, rows, q, out, workspace, workspace_bytes, runs).ms;
    r.q4_0_ms = time_attention<Q4_0, Q4_0>(tokens, rows, q, out, workspace, workspace_bytes, runs).ms;
    r.f16_ms = time_attention<F16, F16>(tokens, rows, q, out, workspace, workspace_bytes, runs).ms;
    table.push_back(r);
  }

  std::printf("\n| tokens | copy GB/s (r+w) | K4/V4 us | K4/V4 GB/s read | of copy BW | K4/V3 us | q4_0 us | f16 us | K4/V4 vs f16 |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (const row& r : table)
    std::printf("| %zu | %.0f | %.1f | %.0f | %.0f %% | %.1f | %.1f | %.1f | %.2fx |\n", r.tokens, r.copy_gbps, 1e3 * r.k4v4_ms,
                r.k4v4_gbps, 100.0 * r.k4v4_gbps / r.copy_gbps, 1e3 * r.k4v3_ms, 1e3 * r.q4_0_ms, 1e3 * r.f16_ms,
                r.f16_ms / r.k4v4_ms);

  if (json_path != nullptr) {
    const row* at_32k = nullptr;
    for (const row& r : table)
      if (r.tokens == 32768) at_32k = &r;
    std::FILE* f = std::fopen(json_path, "w");
    if (f == nullptr || at_32k == nullptr) {
      std::fprintf(stderr, "kpc CUDA bench: cannot write %s\n", json_path);
      return 1;
    }
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    std::fprintf(f, "{\n  \"gpu\": \"%s\",\n  \"date\": \"%s\",\n", properties.name, date);
    std::fprintf(f, "  \"attention_fraction_of_copy_bw_32k\": %.4f,\n", at_32k->k4v4_gbps / at_32k->copy_gbps);
    std::fprintf(f, "  \"attention_vs_f16_32k\": %.4f,\n", at_32k->f16_ms / at_32k->k4v4_ms);
    std::fprintf(f, "  \"encode_gbps\": %.2f,\n  \"decode_gbps\": %.2f,\n", encode_gbps, decode_gbps);
    std::fprintf(f, "  \"shape\": {\"kv_heads\": %zu, \"head_dim\": %zu, \"group\": %zu},\n  \"rows\": [", kv_heads, head_dim, group);
    for (std::size_t i = 0; i < table.size(); ++i)
      std::fprintf(f, "%s\n    {\"tokens\": %zu, \"copy_gbps\": %.1f, \"k4v4_us\": %.2f, \"k4v4_gbps\": %.1f, \"k4v3_us\": %.2f, \"q4_0_us\": %.2f, \"f16_us\": %.2f}",
                   i ? "," : "", table[i].tokens, table[i].copy_gbps, 1e3 * table[i].k4v4_ms, table[i].k4v4_gbps,
                   1e3 * table[i].k4v3_ms, 1e3 * table[i].q4_0_ms, 1e3 * table[i].f16_ms);
    std::fprintf(f, "\n  ]\n}\n");
    std::fclose(f);
  }
  KPC_CUDA(cudaFree(rows));
  KPC_CUDA(cudaFree(q));
  KPC_CUDA(cudaFree(out));
  KPC_CUDA(cudaFree(workspace));
  KPC_CUDA(cudaFree(decoded_rows));
  return 0;
}
