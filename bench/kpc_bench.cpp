// SPDX-License-Identifier: MIT
// kpc's throughput on KV-shaped slabs, for every format and every instruction set this binary and
// CPU can run, beside the yardsticks an engine compares with, measured in the same run:
//   memcpy of the f32 slab; an f32 and an f16 dot scan over the same keys (q . k_t for every t);
//   an f32 axpy over the same values (out += w_t v_t); and ggml's q4_0 (kpc's implementation).
// Every benchmark reports bytes/s of the f32 slab it covers, so any two rates compare directly;
// scripts/bench.py turns the JSON into ratios, docs/results/simd.json and a plot.
// Names: <tokens>x<channels>/<format>/<operation>/<isa>, and <tokens>x<channels>/baseline/<name>.
#include <benchmark/benchmark.h>

#include <cstring>
#include <functional>
#include <kpc/kpc.hpp>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "plain_rows.hpp"

namespace {

struct slab {
  std::size_t tokens, channels;
  std::vector<float> f32;
  std::vector<kpc::half> f16;
  std::vector<float> q, w;
  std::size_t values() const { return tokens * channels; }
  std::string name() const { return std::to_string(tokens) + "x" + std::to_string(channels); }
};

/// Keys as a model has them: N(0,1) with a few channels at 20 + 5 N(0,1) (Qwen2-like offsets).
std::shared_ptr<const slab> make_slab(std::size_t tokens, std::size_t channels) {
  auto s = std::make_shared<slab>();
  s->tokens = tokens;
  s->channels = channels;
  std::mt19937_64 gen(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  s->f32.resize(tokens * channels);
  for (std::size_t i = 0; i < s->f32.size(); ++i)
    s->f32[i] = (i % channels) % 37 == 5 ? 20.0f + 5.0f * normal(gen) : normal(gen);
  s->f16.resize(s->f32.size());
  for (std::size_t i = 0; i < s->f32.size(); ++i) s->f16[i] = kpc::half(s->f32[i]);
  for (std::size_t c = 0; c < channels; ++c) s->q.push_back(normal(gen));
  for (std::size_t t = 0; t < tokens; ++t) s->w.push_back(1.0f / static_cast<float>(tokens));
  return s;
}

void report(benchmark::State& state, const slab& s) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * s.values() * sizeof(float)));
}

// ---- yardsticks (plain_rows.hpp), vectorized for the best instruction set this file is compiled for ----

template <class T>
void dot_scan(const slab& s, const T* keys, float* out) {
  kpc_bench::dot_rows(s.q.data(), keys, s.tokens, s.channels, out);
}
void axpy_scan(const slab& s, float* out) { kpc_bench::axpy_rows(s.w.data(), s.f32.data(), s.tokens, s.channels, out); }

void register_baselines(const std::shared_ptr<const slab>& s) {
  const std::string prefix = s->name() + "/baseline/";
  benchmark::RegisterBenchmark((prefix + "memcpy").c_str(), [s](benchmark::State& state) {
    std::vector<float> out(s->values());
    for (auto _ : state) {
      std::memcpy(out.data(), s->f32.data(), s->values() * sizeof(float));
      benchmark::ClobberMemory();
    }
    report(state, *s);
  });
  benchmark::RegisterBenchmark((prefix + "f32_scan").c_str(), [s](benchmark::State& state) {
    std::vector<float> out(s->tokens);
    for (auto _ : state) {
      dot_scan(*s, s->f32.data(), out.data());
      benchmark::DoNotOptimize(out.data());
    }
    report(state, *s);
  });
  benchmark::RegisterBenchmark((prefix + "f16_scan").c_str(), [s](benchmark::State& state) {
    std::vector<float> out(s->tokens);
    for (auto _ : state) {
      dot_scan(*s, s->f16.data(), out.data());
      benchmark::DoNotOptimize(out.data());
    }
    report(state, *s);
  });
  benchmark::RegisterBenchmark((prefix + "f32_axpy").c_str(), [s](benchmark::State& state) {
    std::vector<float> out(s->channels, 0.0f);
    for (auto _ : state) {
      axpy_scan(*s, out.data());
      benchmark::DoNotOptimize(out.data());
    }
    report(state, *s);
  });
}

// ---- kpc, per format and instruction set ---------------------------------------------------------------

template <class Layout>
struct per_channel_layout : std::false_type {};
template <int G>
struct per_channel_layout<kpc::PerChannel<G>> : std::true_type {};

enum operation : unsigned { encode = 1, encode_f16 = 2, decode = 4, decode_f16 = 8, scores = 16, accumulate = 32 };
constexpr unsigned all_operations = encode | encode_f16 | decode | decode_f16 | scores | accumulate;

/// Registers `ops` of quantizer Q on slab s at instruction set `level`; the ISA is set inside each
/// benchmark, so each runs on the kernels its name says.
template <class Q>
void register_format(const std::shared_ptr<const slab>& s, const std::string& format, kpc::isa level, unsigned ops) {
  const std::string prefix = s->name() + "/" + format + "/";
  const std::string suffix = std::string("/") + kpc::to_string(level);
  auto encoded = std::make_shared<std::vector<std::byte>>(Q::encoded_bytes(s->tokens, s->channels));
  auto add = [&](unsigned op, const char* name, std::function<void(benchmark::State&)> body) {
    if ((ops & op) == 0) return;
    benchmark::RegisterBenchmark((prefix + name + suffix).c_str(), [s, level, encoded, body](benchmark::State& state) {
      kpc::set_isa(level);
      Q::encode(s->f32.data(), s->tokens, s->channels, encoded->data());
      body(state);
      report(state, *s);
      kpc::reset_isa();
    });
  };
  add(encode, "encode", [s, encoded](benchmark::State& state) {
    for (auto _ : state) {
      Q::encode(s->f32.data(), s->tokens, s->channels, encoded->data());
      benchmark::ClobberMemory();
    }
  });
  add(encode_f16, "encode_f16", [s, encoded](benchmark::State& state) {
    for (auto _ : state) {
      Q::encode(s->f16.data(), s->tokens, s->channels, encoded->data());
      benchmark::ClobberMemory();
    }
  });
  add(decode, "decode", [s, encoded](benchmark::State& state) {
    std::vector<float> out(s->values());
    for (auto _ : state) {
      Q::decode(encoded->data(), s->tokens, s->channels, out.data());
      benchmark::ClobberMemory();
    }
  });
  add(decode_f16, "decode_f16", [s, encoded](benchmark::State& state) {
    std::vector<kpc::half> out(s->values());
    for (auto _ : state) {
      Q::decode(encoded->data(), s->tokens, s->channels, out.data());
      benchmark::ClobberMemory();
    }
  });
  add(scores, "scores", [s, encoded](benchmark::State& state) {
    std::vector<float> out(s->tokens);
    for (auto _ : state) {
      Q::scores(s->q.data(), encoded->data(), s->tokens, s->channels, out.data());
      benchmark::DoNotOptimize(out.data());
    }
  });
  if constexpr (!per_channel_layout<typename Q::layout>::value) {
    add(accumulate, "accumulate", [s, encoded](benchmark::State& state) {
      std::vector<float> out(s->channels, 0.0f);
      for (auto _ : state) {
        Q::accumulate(s->w.data(), encoded->data(), s->tokens, s->channels, out.data());
        benchmark::DoNotOptimize(out.data());
      }
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  // 4096 x 128: one KV head's keys in L2/L3. 262144 x 128 (128 MiB of f32): larger than any L3.
  const auto small = make_slab(4096, 128);
  const auto large = make_slab(262144, 128);
  for (const auto& s : {small, large}) register_baselines(s);
  for (kpc::isa level : kpc::available_isas()) {
    register_format<kpc::Quantizer<4, kpc::PerChannel<32>>>(small, "K4G32", level, all_operations);
    register_format<kpc::Quantizer<4, kpc::PerChannel<64>>>(small, "K4G64", level, encode | decode | scores);
    register_format<kpc::Quantizer<4, kpc::PerChannel<128>>>(small, "K4G128", level, encode | decode | scores);
    register_format<kpc::Quantizer<3, kpc::PerChannel<32>>>(small, "K3G32", level, encode | decode | scores);
    register_format<kpc::Quantizer<2, kpc::PerChannel<32>>>(small, "K2G32", level, encode | decode | scores);
    register_format<kpc::q4_1>(small, "V4", level, all_operations);
    register_format<kpc::Quantizer<3, kpc::PerToken<32>>>(small, "V3", level, encode | decode | accumulate);
    register_format<kpc::q8_0>(small, "q8_0", level, encode | decode | scores | accumulate);
    register_format<kpc::q4_0>(small, "q4_0", level, encode | decode | scores | accumulate);
    register_format<kpc::Quantizer<4, kpc::PerChannel<32>>>(large, "K4G32", level, encode | decode | scores);
    register_format<kpc::q4_1>(large, "V4", level, encode | accumulate);
    register_format<kpc::q4_0>(large, "q4_0", level, encode | scores);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
