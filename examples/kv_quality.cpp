// SPDX-License-Identifier: MIT
// kpc's main job without a download: build a realistic K/V slice of one layer, store it in every
// format, and print what each costs (bits per value) and what it loses (error in values, in
// attention scores and in attention output).
//
// The slice: n_kv_heads heads of head_dim channels, `tokens` positions. Keys are Gaussian with a
// per-channel spread, plus Qwen2's k_proj bias: a large constant (20..50 x the channel's spread, see --offset) on
// 4 channels per head, placed in the slowest RoPE pairs, then rotated by RoPE (NeoX layout, base
// 1e6) so the offset channels stay almost constant over time, as they do in Qwen2/2.5. A constant
// offset changes no attention weight (q.(k+b) = q.k + q.b for every key), so all damage it causes
// is quantization damage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <kpc/kpc.hpp>
#include <random>
#include <string>
#include <vector>

namespace {

struct Slice {
  std::size_t tokens, heads, head_dim;
  std::vector<float> k, v;              // [tokens][heads * head_dim]
  std::vector<bool> offset_channel;     // per channel of a row
  std::size_t channels() const { return heads * head_dim; }
};

Slice make_slice(std::size_t tokens, std::size_t heads, std::size_t head_dim, double offset, std::uint64_t seed) {
  Slice s{tokens, heads, head_dim, {}, {}, std::vector<bool>(heads * head_dim, false)};
  const std::size_t channels = s.channels(), half = head_dim / 2;
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::lognormal_distribution<float> spread(0.0f, 0.5f);
  std::uniform_real_distribution<float> bias_size(0.4f * static_cast<float>(offset), static_cast<float>(offset));
  std::vector<float> k_spread(channels), k_bias(channels, 0.0f), v_spread(channels);
  for (std::size_t c = 0; c < channels; ++c) k_spread[c] = spread(gen), v_spread[c] = spread(gen);
  for (std::size_t h = 0; h < heads; ++h)
    for (std::size_t i = half - 2; i < half; ++i)  // the two slowest pairs: channels i and i + half
      for (std::size_t c : {h * head_dim + i, h * head_dim + i + half}) {
        k_bias[c] = (gen() % 2 ? 1.0f : -1.0f) * bias_size(gen) * k_spread[c];
        s.offset_channel[c] = true;
      }
  s.k.resize(tokens * channels);
  s.v.resize(tokens * channels);
  std::vector<float> pre(channels);
  for (std::size_t t = 0; t < tokens; ++t) {
    for (std::size_t c = 0; c < channels; ++c) pre[c] = k_spread[c] * normal(gen) + k_bias[c];
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < half; ++i) {  // RoPE, NeoX pairs (i, i + half)
        const double angle = static_cast<double>(t) * std::pow(1e6, -2.0 * static_cast<double>(i) / head_dim);
        const float cos_a = static_cast<float>(std::cos(angle)), sin_a = static_cast<float>(std::sin(angle));
        const float a = pre[h * head_dim + i], b = pre[h * head_dim + i + half];
        s.k[t * channels + h * head_dim + i] = a * cos_a - b * sin_a;
        s.k[t * channels + h * head_dim + i + half] = a * sin_a + b * cos_a;
      }
    for (std::size_t c = 0; c < channels; ++c) s.v[t * channels + c] = v_spread[c] * normal(gen);
  }
  return s;
}

// Relative MSE ||x - y||^2 / ||x||^2, over all channels or only the non-offset ones.
double relative_mse(const std::vector<float>& x, const std::vector<float>& y, const Slice& s, bool skip_offset) {
  double err = 0.0, ref = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (skip_offset && s.offset_channel[i % s.channels()]) continue;
    err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    ref += static_cast<double>(x[i]) * x[i];
  }
  return err / ref;
}

struct AttentionError {
  double score;   // RMS of centred score error / RMS of centred scores (softmax ignores a shift)
  double output;  // ||o' - o|| / ||o||, o = softmax(q.K^T / sqrt(d)) V per head
};

// Attention of `queries` random queries per head over the whole slice, with keys k2/values v2
// against the exact k/v, in f64. Queries are N(0, 2.5^2) per channel, so the centred logits spread
// by about 3 and the softmax is peaked, as in trained heads, rather than a flat average of V.
AttentionError attention_error(const Slice& s, const std::vector<float>& k2, const std::vector<float>& v2,
                               std::size_t queries, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 2.5);
  const std::size_t channels = s.channels(), d = s.head_dim;
  double score_err = 0.0, score_ref = 0.0, out_err = 0.0, out_ref = 0.0;
  std::vector<double> q(d), exact(s.tokens), approx(s.tokens), o(d), o2(d);
  for (std::size_t h = 0; h < s.heads; ++h)
    for (std::size_t n = 0; n < queries; ++n) {
      for (double& x : q) x = normal(gen);
      for (std::size_t t = 0; t < s.tokens; ++t) {
        double a = 0.0, b = 0.0;
        for (std::size_t i = 0; i < d; ++i) {
          a += q[i] * s.k[t * channels + h * d + i];
          b += q[i] * k2[t * channels + h * d + i];
        }
        exact[t] = a / std::sqrt(static_cast<double>(d));
        approx[t] = b / std::sqrt(static_cast<double>(d));
      }
      double mean_exact = 0.0, mean_diff = 0.0;
      for (std::size_t t = 0; t < s.tokens; ++t) mean_exact += exact[t], mean_diff += approx[t] - exact[t];
      mean_exact /= static_cast<double>(s.tokens);
      mean_diff /= static_cast<double>(s.tokens);
      for (std::size_t t = 0; t < s.tokens; ++t) {
        score_err += std::pow(approx[t] - exact[t] - mean_diff, 2);
        score_ref += std::pow(exact[t] - mean_exact, 2);
      }
      auto attend = [&](const std::vector<double>& scores, const std::vector<float>& values, std::vector<double>& out) {
        const double top = *std::max_element(scores.begin(), scores.end());
        double total = 0.0;
        std::fill(out.begin(), out.end(), 0.0);
        for (std::size_t t = 0; t < s.tokens; ++t) {
          const double w = std::exp(scores[t] - top);
          total += w;
          for (std::size_t i = 0; i < d; ++i) out[i] += w * values[t * channels + h * d + i];
        }
        for (double& x : out) x /= total;
      };
      attend(exact, s.v, o);
      attend(approx, v2, o2);
      for (std::size_t i = 0; i < d; ++i) out_err += std::pow(o2[i] - o[i], 2), out_ref += o[i] * o[i];
    }
  return {std::sqrt(score_err / score_ref), std::sqrt(out_err / out_ref)};
}

struct Row {
  std::string format, tensor;
  double bits, mse_all, mse_normal;
  AttentionError attention;
};

template <class Q>
std::vector<float> round_trip(const std::vector<float>& x, const Slice& s, double& bits) {
  std::vector<std::byte> bytes(Q::encoded_bytes(s.tokens, s.channels()));
  Q::encode(x.data(), s.tokens, s.channels(), bytes.data());
  std::vector<float> y(x.size());
  Q::decode(bytes.data(), s.tokens, s.channels(), y.data());
  bits = static_cast<double>(bytes.size()) * 8.0 / static_cast<double>(x.size());
  return y;
}

std::vector<float> round_trip_f16(const std::vector<float>& x, double& bits) {
  std::vector<float> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = static_cast<float>(kpc::half(x[i]));
  bits = 16.0;
  return y;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t tokens = 4096, heads = 4, head_dim = 128, queries = 16;
  double offset = 50.0;  // offsets uniform in [0.4, 1] x this many channel spreads
  std::uint64_t seed = 2026;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const unsigned long long value = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--tokens") tokens = value;
    else if (flag == "--heads") heads = value;
    else if (flag == "--head-dim") head_dim = value;
    else if (flag == "--seed") seed = value;
    else if (flag == "--offset") offset = std::strtod(argv[i + 1], nullptr);
    else {
      std::fprintf(stderr, "usage: %s [--tokens N] [--heads N] [--head-dim N (multiple of 32)] [--offset X] [--seed N]\n", argv[0]);
      return 2;
    }
  }
  if (head_dim % 32 != 0 || head_dim < 32 || tokens == 0 || heads == 0) {
    std::fprintf(stderr, "kv_quality: head-dim must be a positive multiple of 32, tokens and heads positive\n");
    return 2;
  }
  const Slice s = make_slice(tokens, heads, head_dim, offset, seed);
  std::printf("K/V slice: %zu tokens x %zu KV heads x %zu channels, RoPE (NeoX, base 1e6), 4 offset channels per head "
              "at %g-%gx their spread (Qwen2-style K bias); seed %llu\n\n",
              tokens, heads, head_dim, 0.4 * offset, offset, static_cast<unsigned long long>(seed));

  std::vector<Row> rows;
  auto add_k = [&](const char* name, auto quantize) {
    Row r{name, "K", 0, 0, 0, {}};
    const std::vector<float> k2 = quantize(s.k, r.bits);
    r.mse_all = relative_mse(s.k, k2, s, false);
    r.mse_normal = relative_mse(s.k, k2, s, true);
    r.attention = attention_error(s, k2, s.v, queries, seed + 1);
    rows.push_back(r);
  };
  auto add_v = [&](const char* name, auto quantize) {
    Row r{name, "V", 0, 0, 0, {}};
    const std::vector<float> v2 = quantize(s.v, r.bits);
    r.mse_all = r.mse_normal = relative_mse(s.v, v2, s, false);
    r.attention = attention_error(s, s.k, v2, queries, seed + 1);
    rows.push_back(r);
  };
  auto with = [&](auto quantizer) {
    return [&s](const std::vector<float>& x, double& bits) { return round_trip<decltype(quantizer)>(x, s, bits); };
  };
  add_k("f16", round_trip_f16);
  add_k("q8_0 (ggml)", with(kpc::q8_0{}));
  add_k("q4_0 (ggml)", with(kpc::q4_0{}));
  add_k("q4_1 (ggml)", with(kpc::q4_1{}));
  add_k("kpc K4 G32", with(kpc::Quantizer<4, kpc::PerChannel<32>>{}));
  add_k("kpc K4 G64", with(kpc::Quantizer<4, kpc::PerChannel<64>>{}));
  add_k("kpc K4 G128", with(kpc::Quantizer<4, kpc::PerChannel<128>>{}));
  add_k("kpc K3 G32", with(kpc::Quantizer<3, kpc::PerChannel<32>>{}));
  add_k("kpc K2 G32", with(kpc::Quantizer<2, kpc::PerChannel<32>>{}));
  add_v("f16", round_trip_f16);
  add_v("q8_0 (ggml)", with(kpc::q8_0{}));
  add_v("q4_0 (ggml)", with(kpc::q4_0{}));
  add_v("kpc V4 (=q4_1)", with(kpc::q4_1{}));
  add_v("kpc V3", with(kpc::Quantizer<3, kpc::PerToken<32>>{}));

  std::printf("%-16s %-3s %9s %13s %16s %13s %14s\n", "format", "of", "bits/val", "rel MSE all", "rel MSE non-off",
              "score err", "attn out err");
  for (const Row& r : rows) {
    char score[32] = "-";  // V rows keep K exact
    if (r.tensor == "K") std::snprintf(score, sizeof score, "%.3e", r.attention.score);
    std::printf("%-16s %-3s %9.3f %13.3e %16.3e %13s %14.3e\n", r.format.c_str(), r.tensor.c_str(), r.bits, r.mse_all,
                r.mse_normal, score, r.attention.output);
  }
  std::printf("\nscore err: RMS of the centred score error over the RMS of the centred scores (a shift common to all "
              "keys does not matter to softmax);\nattn out err: ||o' - o|| / ||o|| with only that tensor quantized; "
              "%zu random queries per head, f64 reference.\n",
              queries);
  return 0;
}
