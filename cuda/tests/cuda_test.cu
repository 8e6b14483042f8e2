// SPDX-License-Identifier: MIT
// kpc's CUDA kernels against the CPU: encode gives the scalar reference's bytes, decode its
// floats, streaming append the bytes of kpc::KVCache, and decode attention matches an f64
// attention over the decoded cache. Needs a GPU to run (exit 77, "skipped", without one); CI
// compiles it for sm_80 and sm_90 on every run. KPC_TEST_SEED replays a run.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <kpc/cuda/kpc_cuda.cuh>
#include <kpc/kpc.hpp>

namespace {

int failures = 0, checks = 0;

#define KPC_CHECK(condition, ...)                                        \
  do {                                                                   \
    ++checks;                                                            \
    if (!(condition)) {                                                  \
      ++failures;                                                        \
      std::printf("FAILED %s:%d: %s: ", __FILE__, __LINE__, #condition); \
      std::printf(__VA_ARGS__);                                          \
      std::printf("\n");                                                 \
    }                                                                    \
  } while (0)

#define KPC_CUDA(call)                                                                                    \
  do {                                                                                                    \
    const cudaError_t kpc_error = (call);                                                                 \
    if (kpc_error != cudaSuccess) {                                                                       \
      std::printf("CUDA error %s at %s:%d: %s\n", cudaGetErrorString(kpc_error), __FILE__, __LINE__, #call); \
      std::exit(1);                                                                                       \
    }                                                                                                     \
  } while (0)

std::uint64_t seed;

// The CPU emulator runs blocks one by one; with --light (the quick suite, ASan) it runs fewer shapes.
#if defined(KPC_CUDA_EMULATION)
std::size_t large_tokens = 2048;
#else
std::size_t large_tokens = 8192;
#endif
bool light = false;

/// A device buffer of n elements, freed on scope exit.
template <class T>
struct device_buffer {
  T* data = nullptr;
  std::size_t size = 0;
  explicit device_buffer(std::size_t n) : size(n) { KPC_CUDA(cudaMalloc(&data, std::max<std::size_t>(n, 1) * sizeof(T))); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { cudaFree(data); }
  void upload(const std::vector<T>& host) { KPC_CUDA(cudaMemcpy(data, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> download() const {
    std::vector<T> host(size);
    KPC_CUDA(cudaMemcpy(host.data(), data, size * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
};

enum class data_kind { gaussian, offset, tiny, huge, ties };
const char* name(data_kind kind) {
  switch (kind) {
    case data_kind::gaussian: return "gaussian";
    case data_kind::offset: return "offset";
    case data_kind::tiny: return "tiny";
    case data_kind::huge: return "huge";
    case data_kind::ties: return "ties";
  }
  return "?";
}

/// [tokens][heads * head_dim] values: N(0,1); 4 channels per head at 20 + 5N (Qwen2's K bias);
/// 1e-6 N (fp16 subnormal scales); spread up to +-3e4 (the fp16 range's top); or drawn from
/// {-1, -0, +0, 1, 2} (ties everywhere: the first-of-equals rule and the sign of zero).
std::vector<float> make_rows(std::size_t tokens, std::size_t width, std::size_t head_dim, data_kind kind, std::mt19937_64& gen) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> rows(tokens * width);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const float z = normal(gen);
    const std::size_t c = i % width % head_dim;
    switch (kind) {
      case data_kind::gaussian: rows[i] = z; break;
      case data_kind::offset: rows[i] = c % 37 == 3 && c < 4 * 37 ? 20.0f + 5.0f * z : z; break;
      case data_kind::tiny: rows[i] = 1e-6f * z; break;
      case data_kind::huge: rows[i] = std::max(-3e4f, std::min(3e4f, 8000.0f * z)); break;
      case data_kind::ties: {
        const float pool[] = {-1.0f, -0.0f, 0.0f, 1.0f, 2.0f};
        rows[i] = pool[gen() % 5];
        break;
      }
    }
  }
  return rows;
}

std::vector<kpc::half> to_half(const std::vector<float>& x) {
  std::vector<kpc::half> h(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) h[i] = kpc::half(x[i]);
  return h;
}

// The CPU side: one head's [tokens][head_dim] rows (strided) through kpc::Quantizer.
template <class Quantizer, class T>
std::vector<std::byte> cpu_encode(const T* rows, std::size_t stride, std::size_t tokens, std::size_t head_dim) {
  std::vector<std::byte> out(Quantizer::encoded_bytes(tokens, head_dim));
  Quantizer::encode(rows, stride, tokens, head_dim, out.data(), out.size());
  return out;
}

/// Plain f16 rows: the CPU side of kpc::cuda::f16_codec.
using f16_rows = kpc::f16_rows;

/// Encode and decode of one format: device bytes == CPU bytes, device floats == CPU floats.
template <class Quantizer, class Codec, class T>
void check_convert(const char* label, std::size_t tokens, std::size_t heads, std::size_t head_dim, data_kind kind) {
  std::mt19937_64 gen(seed ^ (tokens * 131 + heads * 17 + head_dim * 7 + static_cast<int>(kind)));
  const std::size_t width = heads * head_dim;
  const std::vector<float> values = make_rows(tokens, width, head_dim, kind, gen);
  std::vector<T> input(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) input[i] = kpc::from_float<T>(values[i]);

  const std::size_t slab = kpc::cuda::slab_bytes<Codec>(tokens, head_dim);
  KPC_CHECK(slab == Quantizer::encoded_bytes(tokens, head_dim), "%s: slab bytes differ from Quantizer::encoded_bytes", label);
  device_buffer<T> d_input(input.size());
  d_input.upload(input);
  device_buffer<std::byte> d_slabs(heads * slab);
  device_buffer<int> d_status(1);
  KPC_CUDA(cudaMemset(d_status.data, 0, sizeof(int)));
  const kpc::cuda::heads_shape shape{heads, head_dim};
  KPC_CUDA(kpc::cuda::encode<Codec>(kpc::cuda::rows<const T>{d_input.data, width}, tokens, 0, shape,
                                    kpc::cuda::slabs<std::byte>{d_slabs.data, slab}, nullptr, d_status.data));
  device_buffer<float> d_decoded(tokens * width);
  KPC_CUDA(kpc::cuda::decode<Codec>(kpc::cuda::slabs<const std::byte>{d_slabs.data, slab}, 0, tokens, shape,
                                    kpc::cuda::rows<float>{d_decoded.data, width}, nullptr, d_status.data));
  KPC_CUDA(cudaDeviceSynchronize());
  const std::vector<std::byte> device_bytes = d_slabs.download();
  const std::vector<float> device_decoded = d_decoded.download();
  KPC_CHECK(d_status.download()[0] == 0, "%s: status %d", label, d_status.download()[0]);

  for (std::size_t h = 0; h < heads; ++h) {
    const std::vector<std::byte> expected = cpu_encode<Quantizer>(input.data() + h * head_dim, width, tokens, head_dim);
    const std::size_t mismatch =
        std::mismatch(expected.begin(), expected.end(), device_bytes.begin() + h * slab).first - expected.begin();
    KPC_CHECK(mismatch == expected.size(), "%s %s tokens %zu heads %zu head_dim %zu: head %zu byte %zu of %zu differs",
              label, name(kind), tokens, heads, head_dim, h, mismatch, expected.size());
    std::vector<float> decoded(tokens * head_dim);
    Quantizer::decode(expected.data(), expected.size(), tokens, head_dim, decoded.data(), head_dim);
    std::size_t differing = 0;
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t c = 0; c < head_dim; ++c)
        differing += std::memcmp(&decoded[t * head_dim + c], &device_decoded[t * width + h * head_dim + c], 4) != 0;
    KPC_CHECK(differing == 0, "%s %s: head %zu: %zu decoded floats differ", label, name(kind), h, differing);
  }
}

template <class Quantizer, class Codec>
void check_format(const char* label, bool per_channel) {
  const std::size_t dims_channel[] = {1, 5, 64, 128, 576};
  const std::size_t dims_block[] = {32, 64, 128, 576};
  const std::size_t token_counts[] = {1, 31, 33, 129, 300};
  for (data_kind kind : {data_kind::gaussian, data_kind::offset, data_kind::tiny, data_kind::huge, data_kind::ties})
    for (std::size_t tokens : token_counts) {
      if (light && (tokens == 31 || tokens == 300 || kind == data_kind::tiny || kind == data_kind::huge)) continue;
      if (per_channel)
        for (std::size_t dim : dims_channel) check_convert<Quantizer, Codec, float>(label, tokens, 3, dim, kind);
      else
        for (std::size_t dim : dims_block) check_convert<Quantizer, Codec, float>(label, tokens, 3, dim, kind);
      check_convert<Quantizer, Codec, kpc::half>(label, tokens, 2, 128, kind);
    }
  check_convert<Quantizer, Codec, kpc::half>(label, large_tokens, 8, 128, data_kind::gaussian);  // thousands of blocks
}

/// Input with NaN and Inf: the CPU API refuses it, but the reference defines the bytes anyway, and
/// the device must write the same ones (its reductions follow the reference's walk order rules).
template <int Bits, int G>
void check_non_finite_tiles() {
  using Codec = kpc::cuda::codec<Bits, kpc::PerChannel<G>>;
  using tile = kpc::format::k_tile<Bits, G>;
  std::mt19937_64 gen(seed ^ 0xBADF10A7u);
  const std::size_t head_dim = 70, tiles = 40, tokens = tiles * G;
  std::vector<float> rows = make_rows(tokens, head_dim, head_dim, data_kind::ties, gen);
  const float specials[] = {NAN, -NAN, INFINITY, -INFINITY};
  for (std::size_t j = 0; j < tiles; ++j)  // tile j: j % 4 + 1 specials, some in channel 0
    for (std::size_t k = 0; k <= j % 4; ++k) {
      const std::size_t t = j * G + gen() % G, c = k == 0 && j % 3 == 0 ? 0 : gen() % head_dim;
      rows[t * head_dim + c] = specials[gen() % 4];
    }
  device_buffer<float> d_rows(rows.size());
  d_rows.upload(rows);
  device_buffer<std::byte> d_tiles(tiles * tile::bytes(head_dim));
  KPC_CUDA(kpc::cuda::encode<Codec>(kpc::cuda::rows<const float>{d_rows.data, head_dim}, tokens, 0, {1, head_dim},
                                    kpc::cuda::slabs<std::byte>{d_tiles.data, 0}, nullptr));
  KPC_CUDA(cudaDeviceSynchronize());
  const std::vector<std::byte> device = d_tiles.download();
  std::vector<std::byte> expected(tile::bytes(head_dim));
  for (std::size_t j = 0; j < tiles; ++j) {
    kpc::ref::encode_k_tile<Bits, G>(rows.data() + j * G * head_dim, head_dim, G, head_dim, expected.data());
    KPC_CHECK(std::memcmp(expected.data(), device.data() + j * expected.size(), expected.size()) == 0,
              "K%d G%d: tile %zu with NaN/Inf differs from the reference", Bits, G, j);
  }
}

/// Streaming: random append sizes through kpc::cuda::append give kpc::KVCache's bytes per head.
template <class K, class KCodec, class V, class VCodec>
void check_append(const char* label) {
  std::mt19937_64 gen(seed ^ 0xA99E4Du);
  const std::size_t heads = 2, head_dim = 128, width = heads * head_dim, total = light ? 450 : 700;
  std::vector<float> values = make_rows(total, width, head_dim, data_kind::offset, gen);
  const std::vector<float> ties = make_rows(total, width, head_dim, data_kind::ties, gen);
  std::copy(ties.begin() + 300 * width, ties.begin() + 400 * width, values.begin() + 300 * width);  // a stretch of ties
  const std::vector<kpc::half> input = to_half(values);
  kpc::KVCache<K, V> cpu(heads, head_dim, total, kpc::cache_options{});  // plain: the device appends no options
  const kpc::cuda::heads_shape shape{heads, head_dim};
  const std::size_t k_slab = kpc::cuda::slab_bytes<KCodec>(total, head_dim), v_slab = kpc::cuda::slab_bytes<VCodec>(total, head_dim);
  device_buffer<std::byte> d_k(heads * k_slab), d_v(heads * v_slab);
  device_buffer<float> d_held(kpc::cuda::held_floats<KCodec>(shape));
  device_buffer<kpc::half> d_input(input.size());
  d_input.upload(input);
  device_buffer<int> d_status(1);
  KPC_CUDA(cudaMemset(d_status.data, 0, sizeof(int)));
  std::uniform_int_distribution<std::size_t> chunk(1, 80);
  for (std::size_t size = 0; size < total;) {
    const std::size_t count = std::min(total - size, size % 3 == 0 ? std::size_t{1} : chunk(gen));
    const kpc::cuda::rows<const kpc::half> rows{d_input.data + size * width, width};
    KPC_CUDA(kpc::cuda::append<KCodec>(rows, count, size, shape, kpc::cuda::slabs<std::byte>{d_k.data, k_slab}, d_held.data,
                                       nullptr, d_status.data));
    KPC_CUDA(kpc::cuda::append<VCodec>(rows, count, size, shape, kpc::cuda::slabs<std::byte>{d_v.data, v_slab}, nullptr,
                                       nullptr, d_status.data));
    cpu.append(input.data() + size * width, input.data() + size * width, count);
    size += count;
    KPC_CUDA(cudaDeviceSynchronize());
    const std::vector<std::byte> k = d_k.download(), v = d_v.download();
    for (std::size_t h = 0; h < heads; ++h) {
      KPC_CHECK(std::memcmp(cpu.k_data(h), k.data() + h * k_slab, cpu.k_bytes()) == 0, "%s: K of head %zu after %zu tokens", label, h, size);
      KPC_CHECK(std::memcmp(cpu.v_data(h), v.data() + h * v_slab, cpu.v_bytes()) == 0, "%s: V of head %zu after %zu tokens", label, h, size);
    }
  }
  KPC_CHECK(d_status.download()[0] == 0, "%s: status", label);
}

/// f64 attention over decoded K/V ([tokens][head_dim] per KV head).
std::vector<double> reference_attention(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                                        std::size_t kv_heads, std::size_t group, std::size_t tokens, std::size_t head_dim,
                                        double scale, double softcap, const std::vector<float>& sinks) {
  std::vector<double> out(kv_heads * group * head_dim, 0.0), logits(tokens);
  for (std::size_t kv = 0; kv < kv_heads; ++kv)
    for (std::size_t g = 0; g < group; ++g) {
      const std::size_t head = kv * group + g;
      double max = sinks.empty() ? -INFINITY : sinks[head];
      for (std::size_t t = 0; t < tokens; ++t) {
        double dot = 0.0;
        for (std::size_t c = 0; c < head_dim; ++c)
          dot += static_cast<double>(q[head * head_dim + c]) * k[(kv * tokens + t) * head_dim + c];
        logits[t] = softcap > 0.0 ? softcap * std::tanh(dot * scale / softcap) : dot * scale;
        max = std::max(max, logits[t]);
      }
      double sum = sinks.empty() ? 0.0 : std::exp(sinks[head] - max);
      for (std::size_t t = 0; t < tokens; ++t) {
        const double w = std::exp(logits[t] - max);
        sum += w;
        for (std::size_t c = 0; c < head_dim; ++c) out[head * head_dim + c] += w * v[(kv * tokens + t) * head_dim + c];
      }
      for (std::size_t c = 0; c < head_dim; ++c) out[head * head_dim + c] = sum > 0.0 ? out[head * head_dim + c] / sum : 0.0;
    }
  return out;
}

/// Device decode attention vs the f64 reference over the CPU-decoded cache: relative L2 error
/// below 5e-5 (f32 sums over thousands of tokens in another order than the reference's).
template <class K, class KCodec, class V, class VCodec>
void check_attention(const char* label, std::size_t tokens, std::size_t kv_heads, std::size_t group, std::size_t head_dim,
                     float softcap, bool sinks_on, std::size_t max_splits) {
  std::mt19937_64 gen(seed ^ (tokens * 7919 + group * 31 + head_dim));
  const std::size_t width = kv_heads * head_dim, q_heads = kv_heads * group;
  const std::vector<float> keys = make_rows(tokens, width, head_dim, data_kind::offset, gen);
  const std::vector<float> values = make_rows(tokens, width, head_dim, data_kind::gaussian, gen);
  const std::vector<float> q = make_rows(q_heads, head_dim, head_dim, data_kind::gaussian, gen);
  std::vector<float> sinks;
  if (sinks_on) sinks = make_rows(1, q_heads, q_heads, data_kind::gaussian, gen);

  const kpc::cuda::heads_shape shape{kv_heads, head_dim};
  const std::size_t k_slab = std::max<std::size_t>(1, kpc::cuda::slab_bytes<KCodec>(tokens, head_dim));
  const std::size_t v_slab = std::max<std::size_t>(1, kpc::cuda::slab_bytes<VCodec>(tokens, head_dim));
  device_buffer<float> d_keys(keys.size()), d_values(values.size()), d_q(q.size()), d_out(q.size()), d_sinks(q_heads);
  d_keys.upload(keys);
  d_values.upload(values);
  d_q.upload(q);
  if (sinks_on) d_sinks.upload(sinks);
  device_buffer<std::byte> d_k(kv_heads * k_slab), d_v(kv_heads * v_slab);
  KPC_CUDA(kpc::cuda::encode<KCodec>(kpc::cuda::rows<const float>{d_keys.data, width}, tokens, 0, shape,
                                     kpc::cuda::slabs<std::byte>{d_k.data, k_slab}, nullptr));
  KPC_CUDA(kpc::cuda::encode<VCodec>(kpc::cuda::rows<const float>{d_values.data, width}, tokens, 0, shape,
                                     kpc::cuda::slabs<std::byte>{d_v.data, v_slab}, nullptr));
  device_buffer<std::byte> workspace(kpc::cuda::attention_workspace_bytes(shape, group, max_splits));
  const kpc::cuda::attention_problem problem{d_q.data, {d_k.data, k_slab}, {d_v.data, v_slab}, tokens, shape, group, d_out.data};
  kpc::cuda::attention_params params;
  params.softcap = softcap;
  params.sinks = sinks_on ? d_sinks.data : nullptr;
  KPC_CUDA((kpc::cuda::decode_attention<KCodec, VCodec>(problem, params, workspace.data, workspace.size, max_splits, nullptr)));
  KPC_CUDA(cudaDeviceSynchronize());
  const std::vector<float> out = d_out.download();

  // The reference reads what the CPU decodes from the same bytes (the kernel must not re-quantize).
  std::vector<float> k_decoded(kv_heads * tokens * head_dim), v_decoded(kv_heads * tokens * head_dim);
  for (std::size_t h = 0; h < kv_heads && tokens > 0; ++h) {
    const std::vector<std::byte> kb = cpu_encode<K>(keys.data() + h * head_dim, width, tokens, head_dim);
    const std::vector<std::byte> vb = cpu_encode<V>(values.data() + h * head_dim, width, tokens, head_dim);
    K::decode(kb.data(), kb.size(), tokens, head_dim, k_decoded.data() + h * tokens * head_dim, head_dim);
    V::decode(vb.data(), vb.size(), tokens, head_dim, v_decoded.data() + h * tokens * head_dim, head_dim);
  }
  const std::vector<double> expected = reference_attention(q, k_decoded, v_decoded, kv_heads, group, tokens, head_dim,
                                                           1.0 / std::sqrt(static_cast<double>(head_dim)), softcap, sinks);
  double err = 0.0, norm = 0.0;
  bool finite = true;
  for (std::size_t i = 0; i < out.size(); ++i) {
    finite = finite && std::isfinite(out[i]);
    err += (out[i] - expected[i]) * (out[i] - expected[i]);
    norm += expected[i] * expected[i];
  }
  const double relative = norm > 0.0 ? std::sqrt(err / norm) : std::sqrt(err);
  KPC_CHECK(finite && relative < 5e-5, "%s: tokens %zu group %zu head_dim %zu softcap %g sinks %d splits<=%zu: rel err %.3g",
            label, tokens, group, head_dim, softcap, sinks_on, max_splits, relative);
}

template <class K, class KCodec, class V, class VCodec>
void check_attention_shapes(const char* label) {
  for (std::size_t tokens : {std::size_t{0}, std::size_t{1}, std::size_t{33}, light ? std::size_t{300} : std::size_t{1000}, large_tokens / 2})
    for (std::size_t group : {1, 4, 9})
      if (!light || group != 4) check_attention<K, KCodec, V, VCodec>(label, tokens, 2, group, 128, 0.0f, false, 64);
  check_attention<K, KCodec, V, VCodec>(label, 777, 3, 2, 64, 0.0f, false, 1);     // one split: no merge work
  check_attention<K, KCodec, V, VCodec>(label, light ? 300 : 3000, 2, 4, 256, 30.0f, true, 64);  // softcap, sinks
  check_attention<K, KCodec, V, VCodec>(label, 300, 1, 8, 512, 0.0f, true, 7);     // largest head_dim
}

/// The launchers refuse bad shapes; the kernels report bad data instead of writing garbage.
void check_errors() {
  using K4 = kpc::cuda::codec<4, kpc::PerChannel<32>>;
  using V4 = kpc::cuda::codec<4, kpc::PerToken<32>>;
  device_buffer<float> rows(64 * 128);
  device_buffer<std::byte> slab(kpc::cuda::slab_bytes<K4>(64, 128));
  device_buffer<int> status(1);
  const kpc::cuda::rows<const float> src{rows.data, 128};
  const kpc::cuda::slabs<std::byte> dst{slab.data, slab.size};
  KPC_CHECK(kpc::cuda::encode<K4>(src, 64, 0, {1, 0}, dst, nullptr) == cudaErrorInvalidValue, "head_dim 0");
  KPC_CHECK(kpc::cuda::encode<V4>(src, 64, 0, {1, 48}, dst, nullptr) == cudaErrorInvalidValue, "V head_dim 48");
  KPC_CHECK(kpc::cuda::encode<K4>(src, 64, 5, {1, 128}, dst, nullptr) == cudaErrorInvalidValue, "unaligned first token");
  KPC_CHECK(kpc::cuda::encode<K4>(kpc::cuda::rows<const float>{nullptr, 128}, 64, 0, {1, 128}, dst, nullptr) == cudaErrorInvalidValue, "null rows");
  KPC_CHECK(kpc::cuda::encode<K4>(kpc::cuda::rows<const float>{rows.data, 100}, 64, 0, {1, 128}, dst, nullptr) == cudaErrorInvalidValue, "short stride");
  KPC_CHECK(kpc::cuda::encode<K4>(src, 0, 0, {1, 128}, dst, nullptr) == cudaSuccess, "zero tokens is a no-op");

  std::vector<float> host(64 * 128, 1.0f);
  host[77] = NAN;
  rows.upload(host);
  KPC_CUDA(cudaMemset(status.data, 0, sizeof(int)));
  KPC_CUDA(kpc::cuda::encode<K4>(src, 64, 0, {1, 128}, dst, nullptr, status.data));
  KPC_CUDA(cudaDeviceSynchronize());
  KPC_CHECK(status.download()[0] == static_cast<int>(kpc::errc::non_finite), "NaN input: status %d", status.download()[0]);
  host[77] = 1.0f;
  for (std::size_t t = 0; t < 64; ++t) host[t * 128 + 5] = -1e5f;  // a zero below fp16's range
  rows.upload(host);
  KPC_CUDA(cudaMemset(status.data, 0, sizeof(int)));
  KPC_CUDA(kpc::cuda::encode<K4>(src, 64, 0, {1, 128}, dst, nullptr, status.data));
  KPC_CUDA(cudaDeviceSynchronize());
  KPC_CHECK(status.download()[0] == static_cast<int>(kpc::errc::out_of_range), "huge input: status %d", status.download()[0]);

  // A tile whose ss field is Inf: decode reports corrupt_data and leaves that tile's rows alone.
  const std::uint16_t inf_bits = 0x7C00;
  KPC_CUDA(cudaMemcpy(slab.data, &inf_bits, 2, cudaMemcpyHostToDevice));
  device_buffer<float> decoded(64 * 128);
  KPC_CUDA(cudaMemset(decoded.data, 0, decoded.size * sizeof(float)));
  KPC_CUDA(cudaMemset(status.data, 0, sizeof(int)));
  KPC_CUDA(kpc::cuda::decode<K4>(kpc::cuda::slabs<const std::byte>{slab.data, slab.size}, 0, 64, {1, 128},
                                 kpc::cuda::rows<float>{decoded.data, 128}, nullptr, status.data));
  KPC_CUDA(cudaDeviceSynchronize());
  KPC_CHECK(status.download()[0] == static_cast<int>(kpc::errc::corrupt_data), "corrupt tile: status %d", status.download()[0]);
  const std::vector<float> out = decoded.download();
  KPC_CHECK(std::all_of(out.begin(), out.begin() + 32 * 128, [](float x) { return x == 0.0f; }), "corrupt tile was written");

  device_buffer<float> q(128), result(128);
  device_buffer<std::byte> workspace(kpc::cuda::attention_workspace_bytes({1, 128}, 1, 4));
  kpc::cuda::attention_problem problem{q.data, {slab.data, slab.size}, {slab.data, slab.size}, 64, {1, 128}, 1, result.data};
  KPC_CHECK((kpc::cuda::decode_attention<K4, V4>(problem, {}, workspace.data, 8, 4, nullptr)) == cudaErrorInvalidValue, "small workspace");
  problem.group = 0;
  KPC_CHECK((kpc::cuda::decode_attention<K4, V4>(problem, {}, workspace.data, workspace.size, 4, nullptr)) == cudaErrorInvalidValue, "group 0");
  problem.group = 1;
  problem.shape.head_dim = 1024;
  KPC_CHECK((kpc::cuda::decode_attention<K4, V4>(problem, {}, workspace.data, workspace.size, 4, nullptr)) == cudaErrorInvalidValue, "head_dim 1024");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--light") == 0) {
      light = true;
      large_tokens = 256;
    } else {
      std::printf("usage: %s [--light]   (--light: fewer and smaller shapes)\n", argv[0]);
      return 2;
    }
  }
  const char* fixed = std::getenv("KPC_TEST_SEED");
  seed = fixed != nullptr ? std::strtoull(fixed, nullptr, 10)
                          : static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::printf("kpc CUDA tests: seed %llu (replay with KPC_TEST_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("kpc CUDA tests: no CUDA device; skipped (nothing was checked)\n");
    return 77;
  }
  cudaDeviceProp properties{};
  KPC_CUDA(cudaGetDeviceProperties(&properties, 0));
  std::printf("kpc CUDA tests on %s (sm_%d%d)\n", properties.name, properties.major, properties.minor);

  using namespace kpc;
  check_format<Quantizer<4, PerChannel<32>>, cuda::codec<4, PerChannel<32>>>("K4 G32", true);
  check_format<Quantizer<4, PerChannel<64>>, cuda::codec<4, PerChannel<64>>>("K4 G64", true);
  check_format<Quantizer<4, PerChannel<128>>, cuda::codec<4, PerChannel<128>>>("K4 G128", true);
  check_format<Quantizer<3, PerChannel<32>>, cuda::codec<3, PerChannel<32>>>("K3 G32", true);
  check_format<Quantizer<2, PerChannel<64>>, cuda::codec<2, PerChannel<64>>>("K2 G64", true);
  check_format<Quantizer<8, PerToken<32>>, cuda::codec<8, PerToken<32>>>("V8", false);
  check_format<Quantizer<4, PerToken<32>>, cuda::codec<4, PerToken<32>>>("V4", false);
  check_format<Quantizer<3, PerToken<32>>, cuda::codec<3, PerToken<32>>>("V3", false);
  check_format<q4_0, cuda::codec<4, PerTokenSymmetric<32>>>("q4_0", false);
  check_format<f16_rows, cuda::f16_codec>("f16", false);
  check_non_finite_tiles<4, 32>();
  check_non_finite_tiles<3, 128>();
  std::printf("encode/decode: %d checks, %d failed\n", checks, failures);

  check_append<Quantizer<4, PerChannel<32>>, cuda::codec<4, PerChannel<32>>, Quantizer<4, PerToken<32>>,
               cuda::codec<4, PerToken<32>>>("append K4 G32 / V4");
  check_append<Quantizer<3, PerChannel<128>>, cuda::codec<3, PerChannel<128>>, Quantizer<3, PerToken<32>>,
               cuda::codec<3, PerToken<32>>>("append K3 G128 / V3");
  std::printf("append: %d checks, %d failed\n", checks, failures);

  check_attention_shapes<Quantizer<4, PerChannel<32>>, cuda::codec<4, PerChannel<32>>, Quantizer<4, PerToken<32>>,
                         cuda::codec<4, PerToken<32>>>("attention K4 G32 / V4");
  check_attention_shapes<Quantizer<4, PerChannel<128>>, cuda::codec<4, PerChannel<128>>, Quantizer<3, PerToken<32>>,
                         cuda::codec<3, PerToken<32>>>("attention K4 G128 / V3");
  check_attention_shapes<Quantizer<2, PerChannel<64>>, cuda::codec<2, PerChannel<64>>, Quantizer<8, PerToken<32>>,
                         cuda::codec<8, PerToken<32>>>("attention K2 G64 / V8");
  check_attention_shapes<q4_0, cuda::codec<4, PerTokenSymmetric<32>>, q4_0, cuda::codec<4, PerTokenSymmetric<32>>>(
      "attention q4_0 / q4_0");
  check_attention_shapes<f16_rows, cuda::f16_codec, f16_rows, cuda::f16_codec>("attention f16 / f16");
  std::printf("attention: %d checks, %d failed\n", checks, failures);

  check_errors();
  std::printf("kpc CUDA tests: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
