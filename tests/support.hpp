// SPDX-License-Identifier: MIT
// Shared test helpers: seeded data, reference math in f64, byte formatting.
#ifndef KPC_TESTS_SUPPORT_HPP
#define KPC_TESTS_SUPPORT_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <kpc/attention.hpp>
#include <kpc/ref/per_channel.hpp>
#include <kpc/ref/per_token.hpp>

namespace kpc_test {

/// The run's seed: KPC_TEST_SEED if set, otherwise fresh; main() prints it.
std::uint64_t run_seed();

/// A generator seeded from the run's seed and a per-test stream id, so tests do not depend on
/// the order they run in.
inline std::mt19937_64 rng(std::uint64_t stream) { return std::mt19937_64(run_seed() ^ (stream * 0x9E3779B97F4A7C15ull)); }

inline std::vector<float> gaussian(std::size_t n, std::mt19937_64& gen, float sigma = 1.0f, float mean = 0.0f) {
  std::normal_distribution<float> dist(mean, sigma);
  std::vector<float> out(n);
  for (float& v : out) v = dist(gen);
  return out;
}

/// [tokens][channels] N(0,1) rows where the channels in `offset_channels` sit at 20 + 5 N(0,1),
/// as Qwen2's K bias makes them.
inline std::vector<float> offset_rows(std::size_t tokens, std::size_t channels, const std::vector<std::size_t>& offset_channels,
                                      std::mt19937_64& gen) {
  std::vector<float> out = gaussian(tokens * channels, gen);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t c : offset_channels) out[t * channels + c] = 20.0f + 5.0f * out[t * channels + c];
  return out;
}

/// ||x - y||^2 / ||x||^2 over the channels where keep[c] is true (all when keep is empty).
inline double relative_mse(const std::vector<float>& x, const std::vector<float>& y, std::size_t channels,
                           const std::vector<bool>& keep = {}) {
  double err = 0.0, ref = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!keep.empty() && !keep[i % channels]) continue;
    const double d = static_cast<double>(x[i]) - static_cast<double>(y[i]);
    err += d * d;
    ref += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  }
  return err / ref;
}

inline std::string hex(const std::byte* p, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned v = static_cast<unsigned>(p[i]);
    if (i) s += ' ';
    s += digits[v >> 4];
    s += digits[v & 15];
  }
  return s;
}

inline std::string hex(const std::vector<std::byte>& v) { return hex(v.data(), v.size()); }

inline std::vector<std::byte> bytes(std::initializer_list<unsigned> values) {
  std::vector<std::byte> out;
  for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

/// n copies of a byte appended to v.
inline void append(std::vector<std::byte>& v, std::size_t n, unsigned value) { v.insert(v.end(), n, static_cast<std::byte>(value)); }

/// Bound on |f32 dot - exact dot| for a sum of n products: ~n ulps of the sum of magnitudes, with
/// room for the folded scale (one more rounding per term).
inline double dot_tolerance(std::size_t n, double magnitude_sum) {
  return 2.0 * static_cast<double>(n + 2) * std::ldexp(1.0, -24) * magnitude_sum + 1e-30;
}

/// The integer attention path's quantization term for the scores of one query over a 4-bit K slab of
/// G-token tiles (docs/FORMAT.md): per token t, sum over runs r of 16 channels of
/// (d_r / 2) * sum_{c in r} code_{t,c}, d_r = max_{c in r} |q_c * scale'_c| / 127 (of t's tile).
template <int G>
std::vector<double> integer_scores_slack(const float* q, const std::byte* slab, std::size_t tokens, std::size_t channels) {
  using tile = kpc::format::k_tile<4, G>;
  std::vector<double> slack(tokens, 0.0);
  for (std::size_t t = 0; t < tokens; ++t) {
    const std::byte* bytes = slab + t / G * tile::bytes(channels);
    const kpc::ref::k_tile_meta meta = kpc::ref::k_load_meta(bytes);
    const int j = static_cast<int>(t % G);
    for (std::size_t first = 0; first < channels; first += kpc::format::int8_run) {
      const std::size_t last = std::min(channels, first + kpc::format::int8_run);
      double largest = 0.0, codes = 0.0;
      for (std::size_t c = first; c < last; ++c) {
        const float q_scaled = q[c] * kpc::ref::k_load_channel<4, G>(bytes, meta, channels, c).scale;
        largest = std::max(largest, std::fabs(static_cast<double>(q_scaled)));
        codes += kpc::format::code_at<4>(bytes + tile::offset_channel_codes(channels, c) +
                                             j / kpc::format::group_values * kpc::format::group_bytes<4>,
                                         j % kpc::format::group_values);
      }
      slack[t] += largest / 127.0 / 2.0 * codes;
    }
  }
  return slack;
}

/// The same for weights w over V4 (q4_1) rows: per channel c of block b, sum over runs r of 64
/// tokens of (e_r / 2) * sum_{t in r} code_{t,c}, e_r = max_{t in r} |w_t * d_{t,b}| / 32767.
inline std::vector<double> integer_accumulate_slack(const float* w, const std::byte* rows, std::size_t tokens,
                                                 std::size_t channels) {
  using block = kpc::format::v_block<4>;
  const std::size_t blocks = channels / 32;
  std::vector<double> slack(channels, 0.0);
  for (std::size_t b = 0; b < blocks; ++b)
    for (std::size_t first = 0; first < tokens; first += kpc::format::int16_run) {
      const std::size_t last = std::min(tokens, first + kpc::format::int16_run);
      double largest = 0.0;
      for (std::size_t t = first; t < last; ++t)
        largest = std::max(largest, std::fabs(static_cast<double>(
                                        w[t] * kpc::ref::load_v_meta<4>(rows + (t * blocks + b) * block::bytes).scale)));
      for (int j = 0; j < 32; ++j) {
        double codes = 0.0;
        for (std::size_t t = first; t < last; ++t) codes += kpc::ref::v_code<4>(rows + (t * blocks + b) * block::bytes, j);
        slack[b * 32 + j] += largest / 32767.0 / 2.0 * codes;
      }
    }
  return slack;
}

/// softmax(scale * q.k) v in f64 over f32 K/V rows ([tokens][dim]), with the same softcap and sink.
inline std::vector<double> reference_attention(const std::vector<float>& q, std::size_t group, const std::vector<float>& k,
                                        const std::vector<float>& v, std::size_t tokens, std::size_t dim,
                                        const kpc::attention_params& p) {
  const double scale = p.scale != 0.0f ? p.scale : 1.0 / std::sqrt(static_cast<double>(dim));
  std::vector<double> out(group * dim, 0.0);
  for (std::size_t g = 0; g < group; ++g) {
    std::vector<double> logits(tokens);
    double top = p.sinks ? p.sinks[g] : -std::numeric_limits<double>::infinity();
    for (std::size_t t = 0; t < tokens; ++t) {
      double dot = 0.0;
      for (std::size_t c = 0; c < dim; ++c) dot += static_cast<double>(q[g * dim + c]) * k[t * dim + c];
      double logit = dot * scale;
      if (p.softcap > 0.0f) logit = p.softcap * std::tanh(logit / p.softcap);
      logits[t] = logit;
      top = std::max(top, logit);
    }
    double sum = p.sinks ? std::exp(p.sinks[g] - top) : 0.0;
    for (std::size_t t = 0; t < tokens; ++t) sum += std::exp(logits[t] - top);
    for (std::size_t t = 0; t < tokens; ++t) {
      const double w = std::exp(logits[t] - top) / sum;
      for (std::size_t c = 0; c < dim; ++c) out[g * dim + c] += w * v[t * dim + c];
    }
  }
  return out;
}

inline double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0.0, ref = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    err += (got[i] - want[i]) * (got[i] - want[i]);
    ref += want[i] * want[i];
  }
  return std::sqrt(err / std::max(ref, 1e-300));
}

}  // namespace kpc_test

#endif  // KPC_TESTS_SUPPORT_HPP
