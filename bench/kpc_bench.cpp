// SPDX-License-Identifier: MIT
// Throughput of kpc's formats on a KV-shaped slab, beside the yardsticks an engine compares with:
// memcpy of the same f32 slab, an f32 dot scan over the same keys, and ggml's q4_0.
// Every benchmark reports bytes/s of the f32 slab it covers, so rates compare directly.
#include <benchmark/benchmark.h>

#include <cstring>
#include <kpc/kpc.hpp>
#include <random>
#include <vector>

namespace {

constexpr std::size_t kTokens = 4096, kChannels = 128;

const std::vector<float>& slab() {
  static const std::vector<float> data = [] {
    std::mt19937_64 gen(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(kTokens * kChannels);
    for (float& v : x) v = normal(gen);
    return x;
  }();
  return data;
}

void set_rate(benchmark::State& state) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * kTokens * kChannels * sizeof(float));
}

template <class Q>
void encode(benchmark::State& state) {
  std::vector<std::byte> bytes(Q::encoded_bytes(kTokens, kChannels));
  for (auto _ : state) {
    Q::encode(slab().data(), kTokens, kChannels, bytes.data());
    benchmark::DoNotOptimize(bytes.data());
  }
  set_rate(state);
}

template <class Q>
void decode(benchmark::State& state) {
  std::vector<std::byte> bytes(Q::encoded_bytes(kTokens, kChannels));
  Q::encode(slab().data(), kTokens, kChannels, bytes.data());
  std::vector<float> out(kTokens * kChannels);
  for (auto _ : state) {
    Q::decode(bytes.data(), kTokens, kChannels, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state);
}

template <class Q>
void scores(benchmark::State& state) {
  std::vector<std::byte> bytes(Q::encoded_bytes(kTokens, kChannels));
  Q::encode(slab().data(), kTokens, kChannels, bytes.data());
  std::vector<float> q(slab().begin(), slab().begin() + kChannels), out(kTokens);
  for (auto _ : state) {
    Q::scores(q.data(), bytes.data(), kTokens, kChannels, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state);
}

template <class Q>
void accumulate(benchmark::State& state) {
  std::vector<std::byte> bytes(Q::encoded_bytes(kTokens, kChannels));
  Q::encode(slab().data(), kTokens, kChannels, bytes.data());
  std::vector<float> w(kTokens, 1.0f / kTokens), out(kChannels);
  for (auto _ : state) {
    Q::accumulate(w.data(), bytes.data(), kTokens, kChannels, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state);
}

void memcpy_f32(benchmark::State& state) {
  std::vector<float> out(kTokens * kChannels);
  for (auto _ : state) {
    std::memcpy(out.data(), slab().data(), out.size() * sizeof(float));
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state);
}

void f32_dot_scan(benchmark::State& state) {
  std::vector<float> q(slab().begin(), slab().begin() + kChannels), out(kTokens);
  const float* keys = slab().data();
  for (auto _ : state) {
    for (std::size_t t = 0; t < kTokens; ++t) {
      float partial[16] = {};  // independent sums: the compiler vectorizes without reassociating
      for (std::size_t c = 0; c < kChannels; c += 16)
        for (std::size_t j = 0; j < 16; ++j) partial[j] += q[c + j] * keys[t * kChannels + c + j];
      float dot = 0.0f;
      for (float p : partial) dot += p;
      out[t] = dot;
    }
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state);
}

using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;
using V3 = kpc::Quantizer<3, kpc::PerToken<32>>;

}  // namespace

BENCHMARK(memcpy_f32);
BENCHMARK(f32_dot_scan);
BENCHMARK_TEMPLATE(encode, K4);
BENCHMARK_TEMPLATE(decode, K4);
BENCHMARK_TEMPLATE(scores, K4);
BENCHMARK_TEMPLATE(encode, kpc::q4_1);
BENCHMARK_TEMPLATE(decode, kpc::q4_1);
BENCHMARK_TEMPLATE(accumulate, kpc::q4_1);
BENCHMARK_TEMPLATE(encode, V3);
BENCHMARK_TEMPLATE(accumulate, V3);
BENCHMARK_TEMPLATE(encode, kpc::q4_0);
BENCHMARK_TEMPLATE(decode, kpc::q4_0);
BENCHMARK_TEMPLATE(scores, kpc::q4_0);
BENCHMARK_MAIN();
