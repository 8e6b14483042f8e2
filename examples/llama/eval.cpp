// SPDX-License-Identifier: MIT
// kpc_llama: runs a Llama-family GGUF model (SmolLM2-135M in kpc's evaluation) over a token file
// with its KV cache in each format, and measures what the format costs in quality against an f16
// cache: perplexity, KL divergence of every next-token distribution, and top-1 agreement.
//
//   kpc_llama --model M.gguf --tokens T.u32 [--window 512] [--max-tokens 8192] [--configs a,b]
//             [--layer-map LAYERS=CONFIG] [--stress off|on|both] [--threads N] [--seed N] [--json out.json]
//
// Configurations (caches.hpp, find_config): f16 (the reference, always first), q8_0, q4_0,
// kpc-k4v4, kpc-k4v3, kpc-k3v3, kpc-k4g64v4, kpc-k4g128v4 by default; any format with the cache's
// options (kpc-k4v4+s4+r1+c+hv: 4 sinks, a recent window of one tile, centered keys, rotated
// values) and per-layer maps (kpc-k4v4|0,-1=kpc-k8v8) when named; --layer-map adds its map to
// every configuration but the reference. bits/value counts all a cache allocates for the model's
// context (codes, held values, sinks, centering, scratch). Memory: the f16 run's next-token
// log-probabilities stay in memory for the KLD, vocab x 4 bytes (192 KiB) per token.
//
// Token ids are little-endian uint32 (scripts/evaldata.py makes them with the GGUF's tokenizer).
// The first floor(min(count, max-tokens) / window) windows of `window` tokens are evaluated, each
// from an empty cache and without a BOS token; within a window, position i predicts token i + 1,
// and every such prediction is scored. Windows run in parallel, one per thread.
//
// The offset stress adds a constant vector to every key after RoPE: on 4 channels per KV head
// (the slowest-turning RoPE pairs), 20-50 x that channel's standard deviation (measured in the f16
// run), random signs: what Qwen2's k_proj bias does to its keys. Softmax ignores a shift common to
// all keys (q.(k + b) = q.k + q.b), so the exact result is unchanged and any change is damage done
// by the cache format.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "caches.hpp"
#include "model.hpp"

namespace {

struct options {
  std::string model, tokens, json;
  std::size_t window = 512, max_tokens = 8192, threads = 0;
  std::vector<std::string> configs;  // empty: the default list
  std::string layer_map;
  bool unstressed = true, stressed = true;
  std::uint64_t seed = 2026;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "kpc_llama: %s\nusage: kpc_llama --model M.gguf --tokens T.u32 [--window 512] [--max-tokens 8192]\n"
               "                 [--configs f16,q8_0,...] [--layer-map LAYERS=CONFIG] [--stress off|on|both]\n"
               "                 [--threads N] [--seed N] [--json out.json]\n",
               why.c_str());
  std::exit(2);
}

std::size_t parse_size(const std::string& flag, const char* text) {
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') usage(flag + " takes a non-negative integer");
  return static_cast<std::size_t>(value);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage(flag + " needs a value");
    const char* value = argv[++i];
    if (flag == "--model") o.model = value;
    else if (flag == "--tokens") o.tokens = value;
    else if (flag == "--json") o.json = value;
    else if (flag == "--layer-map") o.layer_map = value;
    else if (flag == "--window") o.window = parse_size(flag, value);
    else if (flag == "--max-tokens") o.max_tokens = parse_size(flag, value);
    else if (flag == "--threads") o.threads = parse_size(flag, value);
    else if (flag == "--seed") o.seed = parse_size(flag, value);
    else if (flag == "--configs") {
      std::stringstream list(value);
      for (std::string name; std::getline(list, name, ',');) o.configs.push_back(name);
    } else if (flag == "--stress") {
      const std::string mode = value;
      if (mode != "off" && mode != "on" && mode != "both") usage("--stress takes off, on or both");
      o.unstressed = mode != "on";
      o.stressed = mode != "off";
    } else {
      usage("unknown option " + flag);
    }
  }
  if (o.model.empty() || o.tokens.empty()) usage("--model and --tokens are required");
  if (o.window < 2) usage("--window must be at least 2");
  return o;
}

std::vector<std::uint32_t> read_tokens(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path);
  const auto bytes = static_cast<std::size_t>(in.tellg());
  if (bytes % 4 != 0) throw std::runtime_error(path + ": size is not a multiple of 4 (uint32 token ids)");
  std::vector<std::uint32_t> ids(bytes / 4);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(ids.data()), static_cast<std::streamsize>(bytes));
  return ids;
}

/// Sums over scored predictions, kept per window and added in window order (deterministic).
struct tally {
  double nll = 0.0, kld = 0.0;
  std::size_t top1 = 0, count = 0;
};

/// The f16 run's next-token log-probabilities, which every other run is compared with.
struct reference {
  std::size_t vocab = 0, per_window = 0;
  std::vector<float> log_probs;      // [windows][per_window][vocab]
  std::vector<std::uint32_t> top1;   // [windows][per_window]
};

struct run_result {
  std::string config;
  bool stress = false;
  double bits_per_value = 0.0, cache_bytes_per_token = 0.0, ppl = 0.0, kld = 0.0, top1 = 0.0, seconds = 0.0;
};

/// Scores window w's logits: NLL of each next token; against the reference (KLD, top-1 agreement)
/// or, when `record` is set, into it.
tally score(const float* logits, const std::uint32_t* ids, std::size_t window, std::size_t vocab, std::size_t w,
            reference& ref, bool record) {
  tally t;
  for (std::size_t i = 0; i + 1 < window; ++i) {
    const float* row = logits + i * vocab;
    float max = -std::numeric_limits<float>::infinity();
    std::uint32_t best = 0;
    for (std::size_t v = 0; v < vocab; ++v) {
      if (!std::isfinite(row[v])) throw std::runtime_error("non-finite logit at window " + std::to_string(w));
      if (row[v] > max) max = row[v], best = static_cast<std::uint32_t>(v);
    }
    double sum = 0.0;
    for (std::size_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
    const double log_norm = max + std::log(sum);
    t.nll += log_norm - row[ids[i + 1]];
    const std::size_t at = w * ref.per_window + i;
    float* ref_row = &ref.log_probs[at * vocab];
    if (record) {
      for (std::size_t v = 0; v < vocab; ++v) ref_row[v] = static_cast<float>(row[v] - log_norm);
      ref.top1[at] = best;
      t.top1 += 1;
    } else {
      double kld = 0.0;  // sum_v p(v) (log p(v) - log q(v)), p the f16 run's distribution
      for (std::size_t v = 0; v < vocab; ++v)
        kld += std::exp(static_cast<double>(ref_row[v])) * (ref_row[v] - (row[v] - log_norm));
      t.kld += kld;
      t.top1 += best == ref.top1[at] ? 1 : 0;
    }
    t.count += 1;
  }
  return t;
}

/// Runs `windows` windows of `window` tokens in parallel with one cache configuration.
run_result evaluate(const llama::model& m, const llama::cache_config& config, const std::vector<std::uint32_t>& ids,
                    std::size_t window, std::size_t windows, std::size_t threads, const std::vector<float>* offsets,
                    std::vector<double>* moments, reference& ref, bool record) {
  const auto start = std::chrono::steady_clock::now();
  const llama::hparams& hp = m.params();
  std::vector<tally> tallies(windows);
  std::vector<std::vector<double>> window_moments(moments ? windows : 0, std::vector<double>(moments ? moments->size() : 0));
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> pool;
  for (std::size_t thread = 0; thread < threads; ++thread)
    pool.emplace_back([&, thread] {
      try {
        llama::model::workspace ws = m.make_workspace(window);
        std::vector<std::unique_ptr<llama::layer_cache>> caches;
        for (std::size_t l = 0; l < hp.layers; ++l) caches.push_back(config.make(window, l));
        for (std::size_t w; (w = next++) < windows;) {
          const llama::model::key_hooks hooks{offsets, moments ? &window_moments[w] : nullptr};
          m.forward(&ids[w * window], window, caches, hooks, ws);
          tallies[w] = score(ws.logits.data(), &ids[w * window], window, hp.vocab, w, ref, record);
        }
      } catch (...) {
        errors[thread] = std::current_exception();
        next = windows;  // the other threads stop after their current window
      }
    });
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);

  tally total;
  for (std::size_t w = 0; w < windows; ++w) {
    total.nll += tallies[w].nll, total.kld += tallies[w].kld;
    total.top1 += tallies[w].top1, total.count += tallies[w].count;
    if (moments)
      for (std::size_t i = 0; i < moments->size(); ++i) (*moments)[i] += window_moments[w][i];
  }
  run_result r;
  r.config = config.name;
  r.stress = offsets != nullptr;
  double bytes = 0.0;  // everything every layer's cache allocates at the model's context
  for (std::size_t l = 0; l < hp.layers; ++l) bytes += static_cast<double>(config.memory_bytes(hp.context, l));
  r.cache_bytes_per_token = bytes / static_cast<double>(hp.context);
  r.bits_per_value = bytes * 8.0 / static_cast<double>(hp.layers * 2 * hp.kv_dim() * hp.context);
  const double n = static_cast<double>(total.count);
  r.ppl = std::exp(total.nll / n);
  r.kld = total.kld / n;
  r.top1 = 100.0 * static_cast<double>(total.top1) / n;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

/// The stress vector per layer: on the last 4 channels of each KV head, +-(20..50) x the channel's
/// standard deviation over the f16 run's keys.
std::vector<float> stress_offsets(const llama::hparams& hp, const std::vector<double>& moments, double count,
                                  std::uint64_t seed) {
  const std::size_t kv = hp.kv_dim();
  std::vector<float> offsets(hp.layers * kv, 0.0f);
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> multiple(20.0, 50.0);
  for (std::size_t l = 0; l < hp.layers; ++l)
    for (std::size_t h = 0; h < hp.kv_heads; ++h)
      for (std::size_t c = h * hp.head_dim + hp.head_dim - 4; c < (h + 1) * hp.head_dim; ++c) {
        const double mean = moments[2 * l * kv + c] / count;
        const double variance = std::max(0.0, moments[(2 * l + 1) * kv + c] / count - mean * mean);
        const double sign = gen() % 2 ? 1.0 : -1.0;
        offsets[l * kv + c] = static_cast<float>(sign * multiple(gen) * std::sqrt(variance));
      }
  return offsets;
}

void print_table(const std::vector<run_result>& rows, bool stress, double f16_ppl, std::size_t context) {
  std::printf("\n%s\n", stress ? "With the offset stress (4 channels per KV head at 20-50x their spread):"
                               : "Without stress:");
  std::printf("%-30s %9s %10s %13s %9s %8s %10s %8s\n", "config", "bits/val", "KiB/token", "MiB @ctx", "PPL",
              "dPPL %", "KLD", "top-1 %");
  for (const run_result& r : rows) {
    if (r.stress != stress) continue;
    std::printf("%-30s %9.3f %10.2f %13.1f %9.4f %8.3f %10.6f %8.2f\n", r.config.c_str(), r.bits_per_value,
                r.cache_bytes_per_token / 1024.0, r.cache_bytes_per_token * static_cast<double>(context) / 1048576.0,
                r.ppl, 100.0 * (r.ppl / f16_ppl - 1.0), r.kld, r.top1);
  }
}

std::string file_name(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void write_json(const std::string& path, const options& o, const llama::hparams& hp, std::size_t windows,
                std::size_t threads, const std::vector<run_result>& rows, double f16_ppl) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write " + path);
  char line[512];
  out << "{\n  \"model\": \"" << file_name(o.model) << "\",\n  \"tokens\": " << windows * o.window
      << ",\n  \"window\": " << o.window << ",\n  \"windows\": " << windows
      << ",\n  \"scored_predictions\": " << windows * (o.window - 1) << ",\n  \"threads\": " << threads
      << ",\n  \"context_for_cache_bytes\": " << hp.context
      << ",\n  \"stress\": {\"channels_per_kv_head\": 4, \"multiple_of_std\": [20, 50], \"seed\": " << o.seed
      << "},\n  \"rows\": [\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const run_result& r = rows[i];
    std::snprintf(line, sizeof line,
                  "    {\"config\": \"%s\", \"stress\": %s, \"bits_per_value\": %.4f, \"cache_bytes_per_token\": %.1f, "
                  "\"ppl\": %.6f, \"dppl_pct\": %.4f, \"kld\": %.8f, \"top1\": %.4f, \"seconds\": %.1f}%s\n",
                  r.config.c_str(), r.stress ? "true" : "false", r.bits_per_value, r.cache_bytes_per_token, r.ppl,
                  100.0 * (r.ppl / f16_ppl - 1.0), r.kld, r.top1, r.seconds, i + 1 < rows.size() ? "," : "");
    out << line;
  }
  out << "  ],\n  \"peer\": null\n}\n";
}

int run(const options& o) {
  const std::vector<std::uint32_t> ids = read_tokens(o.tokens);
  const std::size_t windows = std::min(ids.size(), o.max_tokens) / o.window;
  if (windows == 0)
    throw std::runtime_error(std::to_string(ids.size()) + " tokens (max " + std::to_string(o.max_tokens) +
                             ") do not fill one window of " + std::to_string(o.window));
  const auto load_start = std::chrono::steady_clock::now();
  const llama::model m(o.model);
  const llama::hparams& hp = m.params();
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  std::vector<llama::cache_config> configs;
  const std::vector<std::string> names = o.configs.empty() ? llama::default_configs() : o.configs;
  if (names.front() != "f16") usage("--configs must start with f16, the reference");
  try {
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string name = i > 0 && !o.layer_map.empty() ? names[i] + "|" + o.layer_map : names[i];
      configs.push_back(llama::find_config(name, hp.kv_heads, hp.head_dim, hp.layers));
    }
  } catch (const std::invalid_argument& e) {
    usage(e.what());
  }

  const std::size_t threads =
      std::max<std::size_t>(1, std::min(windows, o.threads ? o.threads : std::thread::hardware_concurrency()));
  std::printf("model %s: %zu layers, %zu heads / %zu KV heads of %zu, vocab %zu, RoPE base %g (loaded in %.1f s)\n",
              file_name(o.model).c_str(), hp.layers, hp.heads, hp.kv_heads, hp.head_dim, hp.vocab, hp.rope_base,
              load_seconds);
  std::printf("tokens %s: %zu windows of %zu (%zu scored predictions), %zu threads, kpc SIMD: %s\n",
              file_name(o.tokens).c_str(), windows, o.window, windows * (o.window - 1), threads,
              kpc::to_string(kpc::active_isa()));

  const std::size_t runs = (o.unstressed ? configs.size() : 1) + (o.stressed ? configs.size() : 0);
  reference ref;
  ref.vocab = hp.vocab;
  ref.per_window = o.window - 1;
  ref.log_probs.resize(windows * ref.per_window * hp.vocab);
  ref.top1.resize(windows * ref.per_window);
  std::vector<double> moments(2 * hp.layers * hp.kv_dim(), 0.0);
  std::vector<run_result> rows;
  const auto progress = [&](const run_result& r) {
    std::printf("[%zu/%zu] %-30s %-9s ppl %9.4f  kld %.6f  top-1 %6.2f %%  (%.0f s)\n", rows.size(), runs,
                r.config.c_str(), r.stress ? "stress" : "no stress", r.ppl, r.kld, r.top1, r.seconds);
    std::fflush(stdout);
  };

  rows.push_back(evaluate(m, configs.front(), ids, o.window, windows, threads, nullptr, &moments, ref, true));
  progress(rows.back());
  const double f16_ppl = rows.front().ppl;
  if (o.unstressed)
    for (std::size_t i = 1; i < configs.size(); ++i) {
      rows.push_back(evaluate(m, configs[i], ids, o.window, windows, threads, nullptr, nullptr, ref, false));
      progress(rows.back());
    }
  if (o.stressed) {
    const std::vector<float> offsets =
        stress_offsets(hp, moments, static_cast<double>(windows * o.window), o.seed);
    for (const llama::cache_config& c : configs) {
      rows.push_back(evaluate(m, c, ids, o.window, windows, threads, &offsets, nullptr, ref, false));
      progress(rows.back());
    }
  }
  if (!o.unstressed) rows.erase(rows.begin());  // the reference run was only the stress's yardstick

  std::printf("\nKV cache formats on %s, %zu tokens in windows of %zu; KLD and top-1 against the f16 cache; "
              "MiB @ctx = the whole cache at the model's %zu-token context\n",
              file_name(o.model).c_str(), windows * o.window, o.window, hp.context);
  if (o.unstressed) print_table(rows, false, f16_ppl, hp.context);
  if (o.stressed) print_table(rows, true, f16_ppl, hp.context);
  if (!o.json.empty()) {
    write_json(o.json, o, hp, windows, threads, rows, f16_ppl);
    std::printf("\nwrote %s\n", o.json.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kpc_llama: %s\n", e.what());
    return 1;
  }
}
