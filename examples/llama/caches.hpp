// SPDX-License-Identifier: MIT
// The KV cache of one layer, in each format the evaluation compares. This is the part an engine
// changes to adopt kpc:
//   - kpc formats (K per channel): kpc::KVCache keeps K tiles, V rows and the open tile's values,
//     and its attend() runs fused decode attention straight from the codes;
//   - per-token formats for both K and V (ggml's q8_0 and q4_0, as engines use today, and plain
//     f16): an engine's usual row-per-token slabs, with kpc::decode_attention over them, so every
//     configuration runs the same attention code.
#ifndef KPC_EXAMPLES_LLAMA_CACHES_HPP
#define KPC_EXAMPLES_LLAMA_CACHES_HPP

#include <cstddef>
#include <cstring>
#include <functional>
#include <kpc/kpc.hpp>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace llama {

/// One layer's cache for one sequence.
class layer_cache {
 public:
  virtual ~layer_cache() = default;
  virtual void clear() = 0;
  /// Appends one token: k and v hold [kv_heads][head_dim].
  virtual void append(const float* k, const float* v) = 0;
  /// out[kv_heads * group][head_dim] = softmax(q K^T / sqrt(head_dim)) V over every cached token;
  /// query heads h * group .. h * group + group - 1 share KV head h (grouped-query attention).
  virtual void attend(const float* q, std::size_t group, float* out) const = 0;
};

/// K and V through kpc::KVCache: K per channel in tiles of G tokens, V per token, with the
/// cache's options (sinks, recent window, centering, rotations).
template <class KFormat, class VFormat>
class kpc_cache final : public layer_cache {
 public:
  using cache_type = kpc::KVCache<KFormat, VFormat>;
  kpc_cache(std::size_t kv_heads, std::size_t head_dim, std::size_t capacity, const kpc::cache_options& options,
            kpc::attention_arithmetic arithmetic)
      : cache_(kv_heads, head_dim, capacity, options) {
    params_.arithmetic = arithmetic;
  }
  /// Everything the cache allocates for `context` tokens of one layer.
  static std::size_t memory_bytes(std::size_t kv_heads, std::size_t head_dim, std::size_t context,
                                  const kpc::cache_options& options) {
    return cache_type::memory_bytes(kv_heads, head_dim, context, options);
  }
  void clear() override { cache_.clear(); }
  void append(const float* k, const float* v) override { cache_.append(k, v, 1); }
  void attend(const float* q, std::size_t group, float* out) const override {
    const std::size_t q_heads = cache_.kv_heads() * group, count = q_heads * cache_.head_dim();
    cache_.attend_all(kpc::span<const float>(q, count), q_heads, params_, kpc::span<float>(out, count));
  }

 private:
  cache_type cache_;
  kpc::attention_params params_;
};

/// K and V as rows per token (one slab per KV head), in any per-token format.
template <class KFormat, class VFormat>
class row_cache final : public layer_cache {
 public:
  row_cache(std::size_t kv_heads, std::size_t head_dim, std::size_t capacity, const kpc::cache_options&,
            kpc::attention_arithmetic arithmetic)
      : kv_heads_(kv_heads),
        head_dim_(head_dim),
        capacity_(capacity),
        k_slab_(KFormat::encoded_bytes(capacity, head_dim)),
        v_slab_(VFormat::encoded_bytes(capacity, head_dim)),
        k_(kv_heads * k_slab_),
        v_(kv_heads * v_slab_) {
    params_.arithmetic = arithmetic;
  }
  static std::size_t memory_bytes(std::size_t kv_heads, std::size_t head_dim, std::size_t context,
                                  const kpc::cache_options&) {
    return kv_heads * (KFormat::encoded_bytes(context, head_dim) + VFormat::encoded_bytes(context, head_dim));
  }
  void clear() override { size_ = 0; }
  void append(const float* k, const float* v) override {
    if (size_ == capacity_) throw std::length_error("row_cache: full");
    const std::size_t k_at = KFormat::encoded_bytes(size_, head_dim_), v_at = VFormat::encoded_bytes(size_, head_dim_);
    for (std::size_t h = 0; h < kv_heads_; ++h) {
      KFormat::encode(k + h * head_dim_, head_dim_, 1, head_dim_, &k_[h * k_slab_ + k_at], k_slab_ - k_at);
      VFormat::encode(v + h * head_dim_, head_dim_, 1, head_dim_, &v_[h * v_slab_ + v_at], v_slab_ - v_at);
    }
    ++size_;
  }
  void attend(const float* q, std::size_t group, float* out) const override {
    const std::size_t stride = group * head_dim_;
    for (std::size_t h = 0; h < kv_heads_; ++h)
      kpc::decode_attention<KFormat, VFormat>(q + h * stride, group, &k_[h * k_slab_], k_slab_, &v_[h * v_slab_],
                                              v_slab_, size_, head_dim_, params_, out + h * stride);
  }

 private:
  std::size_t kv_heads_, head_dim_, capacity_, k_slab_, v_slab_, size_ = 0;
  std::vector<std::byte> k_, v_;
  kpc::attention_params params_;
};

/// Plain binary16 rows, the baseline every engine has (kpc::f16_rows: same interface, same kernels
/// and dispatch as kpc's quantized formats).
using f16_rows = kpc::f16_rows;

/// One cache configuration of the evaluation: a name and, per layer, how to make its cache and
/// what it allocates (everything: codes, held values, sinks, centering, scratch).
struct cache_config {
  std::string name;
  std::function<std::unique_ptr<layer_cache>(std::size_t capacity, std::size_t layer)> make;
  std::function<std::size_t(std::size_t context, std::size_t layer)> memory_bytes;
};

template <class Cache>
cache_config make_config(std::string name, std::size_t kv_heads, std::size_t head_dim, kpc::cache_options options,
                         kpc::attention_arithmetic arithmetic) {
  return {std::move(name),
          [=](std::size_t capacity, std::size_t) {
            return std::make_unique<Cache>(kv_heads, head_dim, capacity, options, arithmetic);
          },
          [=](std::size_t context, std::size_t) { return Cache::memory_bytes(kv_heads, head_dim, context, options); }};
}

template <int Bits, int G>
using k_per_channel = kpc::Quantizer<Bits, kpc::PerChannel<G>>;
using v3 = kpc::Quantizer<3, kpc::PerToken<32>>;

/// The formats by name: per-token rows (f16, q8_0, q4_0, as engines store caches today) and kpc's
/// caches, K per channel with V per token.
inline cache_config base_config(const std::string& name, std::size_t kv_heads, std::size_t head_dim,
                                const kpc::cache_options& o, kpc::attention_arithmetic arithmetic) {
  struct entry {
    const char* name;
    cache_config (*make)(std::string, std::size_t, std::size_t, kpc::cache_options, kpc::attention_arithmetic);
  };
  static const entry table[] = {
      {"f16", make_config<row_cache<f16_rows, f16_rows>>},
      {"q8_0", make_config<row_cache<kpc::q8_0, kpc::q8_0>>},
      {"q4_0", make_config<row_cache<kpc::q4_0, kpc::q4_0>>},
      {"kpc-k4v4", make_config<kpc_cache<k_per_channel<4, 32>, kpc::q4_1>>},
      {"kpc-k4v3", make_config<kpc_cache<k_per_channel<4, 32>, v3>>},
      {"kpc-k3v3", make_config<kpc_cache<k_per_channel<3, 32>, v3>>},
      {"kpc-k4g64v4", make_config<kpc_cache<k_per_channel<4, 64>, kpc::q4_1>>},
      {"kpc-k4g128v4", make_config<kpc_cache<k_per_channel<4, 128>, kpc::q4_1>>},
      {"kpc-k4g64v3", make_config<kpc_cache<k_per_channel<4, 64>, v3>>},
      {"kpc-k3g64v3", make_config<kpc_cache<k_per_channel<3, 64>, v3>>},
      {"kpc-k4v8", make_config<kpc_cache<k_per_channel<4, 32>, kpc::q8_0>>},  // ablation: K4's damage alone
      {"kpc-k8v8", make_config<row_cache<kpc::q8_0, kpc::q8_0>>},             // (8-bit rows, for layer maps)
  };
  for (const entry& e : table)
    if (name == e.name) {
      if (o != kpc::cache_options{} && name.rfind("kpc-", 0) != 0)
        throw std::invalid_argument("cache options (+...) apply to kpc's caches, not to " + name);
      return e.make(name, kv_heads, head_dim, o, arithmetic);
    }
  std::string known;
  for (const entry& e : table) known += std::string(" ") + e.name;
  throw std::invalid_argument("unknown cache format '" + name + "' (known:" + known + ")");
}

/// A configuration by name: FORMAT[+OPTION...][|LAYERS=FORMAT[+OPTION...]...], where OPTION is
/// sN (N sink tokens), rN (a recent window of N tiles), c (centered keys), hk / hv (Hadamard-
/// rotated keys / values), int (attention on the integer path, attention_arithmetic::integer), and
/// LAYERS a comma list of layer indices (negative: from the last) whose cache takes the other
/// configuration, e.g. "kpc-k4v4+s4+c|0,-1=kpc-k8v8".
inline cache_config find_config(const std::string& name, std::size_t kv_heads, std::size_t head_dim, std::size_t layers) {
  const std::size_t bar = name.find('|');
  const std::string main = name.substr(0, bar);
  const std::size_t plus = main.find('+');
  kpc::cache_options o;
  kpc::attention_arithmetic arithmetic = kpc::attention_arithmetic::exact;
  for (std::size_t at = plus; at != std::string::npos;) {
    const std::size_t next = main.find('+', at + 1);
    const std::string option = main.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    const auto number = [&](std::size_t from) {
      if (option.size() <= from || option.find_first_not_of("0123456789", from) != std::string::npos)
        throw std::invalid_argument("option '" + option + "' of '" + name + "' needs a number");
      return static_cast<std::size_t>(std::stoul(option.substr(from)));
    };
    if (option == "c") o.center_keys = true;
    else if (option == "hk") o.rotate_keys = true;
    else if (option == "hv") o.rotate_values = true;
    else if (option == "int") arithmetic = kpc::attention_arithmetic::integer;
    else if (option[0] == 's') o.sink_tokens = number(1);
    else if (option[0] == 'r') o.recent_tiles = number(1);
    else throw std::invalid_argument("unknown cache option '" + option + "' in '" + name + "' (s<N> r<N> c hk hv int)");
    at = next;
  }
  cache_config base = base_config(main.substr(0, plus), kv_heads, head_dim, o, arithmetic);
  if (bar == std::string::npos) {
    base.name = name;
    return base;
  }
  // Per-layer overrides: layer -> index into `others` (-1: the main configuration).
  std::vector<cache_config> others;
  std::vector<int> choice(layers, -1);
  std::stringstream maps(name.substr(bar + 1));
  for (std::string map; std::getline(maps, map, '|');) {
    const std::size_t eq = map.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("layer map '" + map + "' needs LAYERS=FORMAT");
    others.push_back(find_config(map.substr(eq + 1), kv_heads, head_dim, layers));
    std::stringstream list(map.substr(0, eq));
    for (std::string item; std::getline(list, item, ',');) {
      const long index = std::stol(item);
      const long layer = index < 0 ? static_cast<long>(layers) + index : index;
      if (layer < 0 || layer >= static_cast<long>(layers))
        throw std::invalid_argument("layer " + item + " is not one of the model's " + std::to_string(layers));
      choice[static_cast<std::size_t>(layer)] = static_cast<int>(others.size() - 1);
    }
  }
  const auto pick = [base, others, choice](std::size_t layer) -> const cache_config& {
    return choice[layer] < 0 ? base : others[static_cast<std::size_t>(choice[layer])];
  };
  return {name, [pick](std::size_t capacity, std::size_t layer) { return pick(layer).make(capacity, layer); },
          [pick](std::size_t context, std::size_t layer) { return pick(layer).memory_bytes(context, layer); }};
}

/// What the evaluation compares when no --configs are given.
/// Each cache option alone on K4/V4, kpc::KVCache's defaults (+s4+c+hv), the best combinations
/// per budget, and a per-layer map.
inline std::vector<std::string> default_configs() {
  return {"f16",
          "q8_0",
          "q4_0",
          "kpc-k4v4",
          "kpc-k4v4+s4",
          "kpc-k4v4+r1",
          "kpc-k4v4+c",
          "kpc-k4v4+hv",
          "kpc-k4v4+hk",
          "kpc-k4v4+s4+c+hv",
          "kpc-k4v4+int",        // the integer attention path, against the two rows it shares bytes with
          "kpc-k4v4+s4+c+hv+int",
          "kpc-k4v4+s4+c+hv+r1",
          "kpc-k4v4+s4+c+hv|0,-1=kpc-k8v8",
          "kpc-k4g64v4+s4+c+hv",
          "kpc-k4v3+s4+c+hv",
          "kpc-k4v3+s4+c+hv+r1",
          "kpc-k3v3",
          "kpc-k3v3+s4+c+hv",
          "kpc-k3v3+s4+c+hv+r1"};
}

}  // namespace llama

#endif  // KPC_EXAMPLES_LLAMA_CACHES_HPP
