// SPDX-License-Identifier: MIT
// kpc/attention.hpp: fused decode attention against an f64 softmax over the decoded cache (the
// fusion adds only float rounding), against the exact K/V (the quantization error, reported),
// on every backend, GQA groups, causal prefixes, softcap, sinks and bad arguments.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <kpc/backend.hpp>
#include <kpc/cache.hpp>
#include <limits>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;

template <class K, class V>
struct pair_case {
  using k = K;
  using v = V;
};
#define KPC_PAIRS                                                                                                \
  pair_case<K4, kpc::q4_1>, pair_case<K4, kpc::Quantizer<3, kpc::PerToken<32>>>,                                  \
      pair_case<kpc::Quantizer<3, kpc::PerChannel<64>>, kpc::q8_0>, pair_case<kpc::Quantizer<2, kpc::PerChannel<128>>, kpc::q4_0>, \
      pair_case<kpc::f16_rows, kpc::f16_rows>

template <class Q>
std::vector<std::byte> encode(const std::vector<float>& x, std::size_t tokens, std::size_t dim) {
  std::vector<std::byte> bytes(Q::encoded_bytes(tokens, dim));
  Q::encode(x.data(), tokens, dim, bytes.data());
  return bytes;
}
template <class Q>
std::vector<float> decode(const std::vector<std::byte>& bytes, std::size_t tokens, std::size_t dim) {
  std::vector<float> x(tokens * dim);
  Q::decode(bytes.data(), tokens, dim, x.data());
  return x;
}

kpc::errc code_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const kpc::error& e) {
    return e.code();
  }
  return kpc::errc::ok;
}

}  // namespace

TEST_CASE_TEMPLATE("decode attention = f64 softmax over the decoded cache within 1e-5, on every backend", Case,
                   KPC_PAIRS) {
  using KF = typename Case::k;
  using VF = typename Case::v;
  auto gen = kpc_test::rng(3001 + KF::bits * 10 + VF::bits);
  const std::size_t dim = 128, max_tokens = 1100;
  // Keys with an offset channel and queries that align with a few keys: peaked, realistic softmax.
  std::vector<float> k = kpc_test::offset_rows(max_tokens, dim, {5, 77}, gen);
  const std::vector<float> v = kpc_test::gaussian(max_tokens * dim, gen);
  const std::vector<std::byte> k_bytes = encode<KF>(k, max_tokens, dim), v_bytes = encode<VF>(v, max_tokens, dim);
  const std::vector<float> k_hat = decode<KF>(k_bytes, max_tokens, dim), v_hat = decode<VF>(v_bytes, max_tokens, dim);
  double worst = 0.0;
  for (const kpc::isa isa : kpc::available_isas()) {
    kpc::set_isa(isa);
    for (const std::size_t tokens : {std::size_t{1}, std::size_t{31}, std::size_t{255}, std::size_t{256},
                                     std::size_t{257}, std::size_t{1100}}) {
      for (const std::size_t group : {std::size_t{1}, std::size_t{4}, std::size_t{20}}) {
        std::vector<float> q = kpc_test::gaussian(group * dim, gen, 0.3f);
        for (std::size_t g = 0; g < group; ++g) q[g * dim + 5] += 0.5f * static_cast<float>(g % 3);
        std::vector<float> sinks(group);
        for (float& s : sinks) s = std::normal_distribution<float>(2.0f, 1.0f)(gen);
        for (int variant = 0; variant < 3; ++variant) {
          kpc::attention_params p;
          if (variant == 1) p.softcap = 5.0f, p.scale = 0.2f;
          if (variant == 2) p.sinks = sinks.data();
          CAPTURE(kpc::to_string(isa));
          CAPTURE(tokens);
          CAPTURE(group);
          CAPTURE(variant);
          std::vector<float> out(group * dim);
          kpc::decode_attention<KF, VF>(q.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                        tokens, dim, p, out.data());
          const double err = kpc_test::relative_error(out, kpc_test::reference_attention(q, group, k_hat, v_hat, tokens, dim, p));
          CHECK(err <= 1e-5);
          worst = std::max(worst, err);
        }
      }
    }
  }
  kpc::reset_isa();
  MESSAGE("worst relative error against f64 over the decoded cache: " << worst);
}

TEST_CASE_TEMPLATE("decode attention against the exact K/V: the quantization error, reported and bounded", Case,
                   KPC_PAIRS) {
  using KF = typename Case::k;
  using VF = typename Case::v;
  auto gen = kpc_test::rng(3002 + KF::bits * 10 + VF::bits);
  const std::size_t dim = 128, tokens = 2000, group = 4;
  const std::vector<float> k = kpc_test::offset_rows(tokens, dim, {5, 77}, gen);
  const std::vector<float> v = kpc_test::gaussian(tokens * dim, gen);
  const std::vector<float> q = kpc_test::gaussian(group * dim, gen, 0.5f);
  const std::vector<std::byte> k_bytes = encode<KF>(k, tokens, dim), v_bytes = encode<VF>(v, tokens, dim);
  std::vector<float> out(group * dim);
  kpc::decode_attention<KF, VF>(q.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                tokens, dim, {}, out.data());
  const double err = kpc_test::relative_error(out, kpc_test::reference_attention(q, group, k, v, tokens, dim, {}));
  MESSAGE("K" << KF::bits << " unit " << KF::format::unit_tokens << " + V" << VF::bits << ": attention output error vs exact K/V " << err);
  // A loose ceiling (K2 + q4_0 is the worst pair); exactly equal outputs would mean no quantization happened.
  CHECK(err < 0.5);
  CHECK(err > 1e-6);
}

// The integer path's attention bound, from its kernel bounds (docs/FORMAT.md): scores off by at most
// delta (scale x the K slack) move each softmax weight by a factor within e^(+-2 delta), and the
// V slack applies to the (normalized) weights.
TEST_CASE_TEMPLATE("integer arithmetic: within its stated bound of f64 over the decoded cache, on every backend", KF,
                   K4, kpc::Quantizer<4, kpc::PerChannel<128>>) {
  using V4 = kpc::q4_1;
  constexpr int G = KF::tile_tokens;
  auto gen = kpc_test::rng(3020 + G);
  const std::size_t dim = 128, max_tokens = 1100;
  const std::vector<float> k = kpc_test::offset_rows(max_tokens, dim, {5, 77}, gen);
  const std::vector<float> v = kpc_test::gaussian(max_tokens * dim, gen);
  const std::vector<std::byte> k_bytes = encode<KF>(k, max_tokens, dim), v_bytes = encode<V4>(v, max_tokens, dim);
  const std::vector<float> k_hat = decode<KF>(k_bytes, max_tokens, dim), v_hat = decode<V4>(v_bytes, max_tokens, dim);
  kpc::attention_params integer;
  integer.arithmetic = kpc::attention_arithmetic::integer;
  double worst_integer = 0.0, worst_exact = 0.0;
  for (const kpc::isa isa : kpc::available_isas()) {
    kpc::set_isa(isa);
    for (const std::size_t tokens : {std::size_t{1}, std::size_t{33}, std::size_t{257}, std::size_t{1100}}) {
      for (const std::size_t group : {std::size_t{1}, std::size_t{5}}) {
        CAPTURE(kpc::to_string(isa));
        CAPTURE(tokens);
        CAPTURE(group);
        std::vector<float> q = kpc_test::gaussian(group * dim, gen, 0.3f);
        for (std::size_t g = 0; g < group; ++g) q[g * dim + 5] += 0.5f * static_cast<float>(g % 3);
        std::vector<float> got(group * dim), exact(group * dim);
        kpc::decode_attention<KF, V4>(q.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                      tokens, dim, integer, got.data());
        kpc::decode_attention<KF, V4>(q.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                      tokens, dim, {}, exact.data());
        const std::vector<double> want = kpc_test::reference_attention(q, group, k_hat, v_hat, tokens, dim, {});
        const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
        for (std::size_t h = 0; h < group; ++h) {
          const float* qh = q.data() + h * dim;
          const std::vector<double> k_slack = kpc_test::integer_scores_slack<G>(qh, k_bytes.data(), tokens, dim);
          const double delta = scale * *std::max_element(k_slack.begin(), k_slack.end());
          // The f64 softmax weights of head h, as floats for the V slack.
          std::vector<double> logits(tokens);
          for (std::size_t t = 0; t < tokens; ++t) {
            double dot = 0.0;
            for (std::size_t c = 0; c < dim; ++c) dot += static_cast<double>(qh[c]) * k_hat[t * dim + c];
            logits[t] = scale * dot;
          }
          const double top = *std::max_element(logits.begin(), logits.end());
          double sum = 0.0;
          for (double& l : logits) sum += (l = std::exp(l - top));
          std::vector<float> weights(tokens);
          for (std::size_t t = 0; t < tokens; ++t) weights[t] = static_cast<float>(logits[t] / sum);
          const std::vector<double> v_slack = kpc_test::integer_accumulate_slack(weights.data(), v_bytes.data(), tokens, dim);
          double largest_out = 0.0;
          for (std::size_t c = 0; c < dim; ++c) largest_out = std::max(largest_out, std::fabs(want[h * dim + c]));
          for (std::size_t c = 0; c < dim; ++c) {
            double largest_v = 0.0;
            for (std::size_t t = 0; t < tokens; ++t) largest_v = std::max(largest_v, std::fabs(static_cast<double>(v_hat[t * dim + c])));
            const double bound = std::expm1(2.0 * delta) * largest_v + std::exp(2.0 * delta) * 1.001 * v_slack[c] +
                                 1e-5 * largest_out;
            CAPTURE(c);
            REQUIRE(std::fabs(got[h * dim + c] - want[h * dim + c]) <= bound);
          }
        }
        worst_integer = std::max(worst_integer, kpc_test::relative_error(got, want));
        worst_exact = std::max(worst_exact, kpc_test::relative_error(exact, want));
      }
    }
  }
  kpc::reset_isa();
  MESSAGE("K4 G" << G << "/V4 integer path: worst relative error vs f64 over the decoded cache " << worst_integer
                 << " (exact path " << worst_exact << ")");
  CHECK(worst_integer > worst_exact);  // it does quantize q and the weights
}

TEST_CASE("integer arithmetic: formats without it compute exactly; prefill matches decode; a bad value is refused") {
  using K3 = kpc::Quantizer<3, kpc::PerChannel<32>>;
  using V3 = kpc::Quantizer<3, kpc::PerToken<32>>;
  using V4 = kpc::q4_1;
  auto gen = kpc_test::rng(3021);
  const std::size_t dim = 64, tokens = 600, group = 4;
  const std::vector<float> x = kpc_test::offset_rows(tokens, dim, {3}, gen);
  const std::vector<float> q = kpc_test::gaussian(group * dim, gen, 0.3f);
  kpc::attention_params integer;
  integer.arithmetic = kpc::attention_arithmetic::integer;
  const auto attend = [&](auto k_format, auto v_format, const kpc::attention_params& p) {
    using KF = decltype(k_format);
    using VF = decltype(v_format);
    const auto k = encode<KF>(x, tokens, dim);
    const auto v = encode<VF>(x, tokens, dim);
    std::vector<float> out(group * dim);
    kpc::decode_attention<KF, VF>(q.data(), group, k.data(), k.size(), v.data(), v.size(), tokens, dim, p, out.data());
    return out;
  };
  CHECK(attend(K3{}, V3{}, integer) == attend(K3{}, V3{}, {}));  // neither has an integer kernel
  CHECK(attend(kpc::f16_rows{}, kpc::f16_rows{}, integer) == attend(kpc::f16_rows{}, kpc::f16_rows{}, {}));
  CHECK(attend(K3{}, V4{}, integer) != attend(K3{}, V4{}, {}));  // V4's weights are int16
  CHECK(attend(K4{}, V3{}, integer) != attend(K4{}, V3{}, {}));  // K4's q is int8
  CHECK(attend(V4{}, V3{}, integer) == attend(V4{}, V3{}, {}));  // V4 rows as keys: scores stay exact

  // Prefill on the integer path: each query as decode attention on the integer path gives it (the
  // runs of 64 tokens start at the same steps; masked tokens have weight 0).
  const auto k = encode<K4>(x, tokens, dim);
  const auto v = encode<V4>(x, tokens, dim);
  const std::size_t first = 200, queries = 60;
  const std::vector<float> qs = kpc_test::gaussian(queries * group * dim, gen, 0.3f);
  std::vector<float> out(qs.size());
  kpc::prefill_attention<K4, V4>(qs.data(), queries, group, k.data(), k.size(), v.data(), v.size(), first, dim, integer,
                                 out.data());
  for (std::size_t i = 0; i < queries; ++i) {
    std::vector<float> one(group * dim);
    kpc::decode_attention<K4, V4>(qs.data() + i * group * dim, group, k.data(), k.size(), v.data(), v.size(), first + i + 1,
                                  dim, integer, one.data());
    const std::vector<float> got(out.begin() + i * group * dim, out.begin() + (i + 1) * group * dim);
    CAPTURE(i);
    CHECK(kpc_test::relative_error(got, std::vector<double>(one.begin(), one.end())) <= 1e-5);
  }

  kpc::attention_params bad;
  bad.arithmetic = static_cast<kpc::attention_arithmetic>(2);
  CHECK(code_of([&] { attend(K4{}, V4{}, bad); }) == kpc::errc::out_of_range);
}

TEST_CASE("split attention: ranges run by a parallel-for merge to the one-range result") {
  using V4 = kpc::q4_1;
  auto gen = kpc_test::rng(3010);
  const std::size_t dim = 128, max_tokens = 1900, group = 4;
  const std::vector<float> k = kpc_test::offset_rows(max_tokens, dim, {5, 77}, gen);
  const std::vector<float> v = kpc_test::gaussian(max_tokens * dim, gen);
  const std::vector<std::byte> k_bytes = encode<K4>(k, max_tokens, dim), v_bytes = encode<V4>(v, max_tokens, dim);
  const std::vector<float> k_hat = decode<K4>(k_bytes, max_tokens, dim), v_hat = decode<V4>(v_bytes, max_tokens, dim);
  std::vector<float> sinks = {3.0f, -1.0f, 0.5f, 9.0f};
  // A parallel-for on real threads, tasks in reverse order, and a count of the tasks it ran.
  std::size_t tasks_run = 0;
  const auto threads = [&](std::size_t n, const auto& task) {
    std::vector<std::thread> pool;
    for (std::size_t i = n; i-- > 0;) pool.emplace_back([&task, i] { task(i); });
    for (std::thread& t : pool) t.join();
    tasks_run += n;
  };
  for (const std::size_t tokens : {std::size_t{0}, std::size_t{1}, std::size_t{300}, std::size_t{1900}}) {
    for (const std::size_t parts : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{16}}) {
      for (int variant = 0; variant < 3; ++variant) {
        CAPTURE(tokens);
        CAPTURE(parts);
        CAPTURE(variant);
        kpc::attention_params p;
        if (variant == 1) p.softcap = 5.0f, p.scale = 0.2f;
        if (variant == 2) p.sinks = sinks.data();
        std::vector<float> q = kpc_test::gaussian(group * dim, gen, 0.3f);
        std::vector<float> one(group * dim), split(group * dim);
        kpc::decode_attention<K4, V4>(q.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                      tokens, dim, p, one.data());
        tasks_run = 0;
        kpc::decode_attention<K4, V4>(q.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                      tokens, dim, p, split.data(), parts, threads);
        const std::size_t steps = (tokens + 255) / 256;
        CHECK(tasks_run == (std::min(parts, steps) > 1 ? std::min(parts, steps) : 0));  // ranges of whole steps
        if (tokens == 0) {
          CHECK(split == one);
          continue;
        }
        const std::vector<double> want = kpc_test::reference_attention(q, group, k_hat, v_hat, tokens, dim, p);
        CHECK(kpc_test::relative_error(split, want) <= 1e-5);
        CHECK(kpc_test::relative_error(split, std::vector<double>(one.begin(), one.end())) <= 1e-5);  // both f32 roundings
        // In place (out = q), as the one-range call allows.
        kpc::decode_attention<K4, V4>(q.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                      tokens, dim, p, q.data(), parts, threads);
        CHECK(q == split);
      }
    }
  }
  // A logit beyond f32 in one range is thrown by the caller's thread, after every range ran.
  std::vector<float> huge(group * dim, 1e37f);
  std::vector<float> out(group * dim);
  tasks_run = 0;
  const auto attend_huge = [&] {
    kpc::decode_attention<K4, V4>(huge.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                  max_tokens, dim, {}, out.data(), 4, threads);
  };
  CHECK_THROWS_AS(attend_huge(), kpc::error);
  CHECK(tasks_run == 4);
}

TEST_CASE("prefill attention: each query position gets what decode attention over its prefix gives") {
  using V4 = kpc::q4_1;
  auto gen = kpc_test::rng(3011);
  const std::size_t dim = 64, max_tokens = 700;
  const std::vector<float> k = kpc_test::offset_rows(max_tokens, dim, {5, 40}, gen);
  const std::vector<float> v = kpc_test::gaussian(max_tokens * dim, gen);
  const std::vector<std::byte> k_bytes = encode<K4>(k, max_tokens, dim), v_bytes = encode<V4>(v, max_tokens, dim);
  const std::vector<float> k_hat = decode<K4>(k_bytes, max_tokens, dim), v_hat = decode<V4>(v_bytes, max_tokens, dim);
  std::vector<float> sinks = {1.0f, -2.0f, 4.0f, 0.5f};  // one per head of the largest group below
  double worst = 0.0;
  // (first, queries, group): a whole prompt, a chunk after cached tokens, one query, query rows
  // that straddle the 16-row passes (group 3) and the 256-token steps.
  struct shape {
    std::size_t first, queries, group;
  };
  for (const shape& s : {shape{0, 300, 1}, shape{0, 37, 3}, shape{250, 20, 4}, shape{699, 1, 3}, shape{200, 500, 3}}) {
    const std::size_t first = s.first, queries = s.queries, group = s.group;  // (clang 14 cannot capture bindings)
    for (int variant = 0; variant < 3; ++variant) {
      CAPTURE(first);
      CAPTURE(queries);
      CAPTURE(group);
      CAPTURE(variant);
      kpc::attention_params p;
      if (variant == 1) p.softcap = 5.0f, p.scale = 0.2f;
      if (variant == 2) p.sinks = sinks.data();
      std::vector<float> q = kpc_test::gaussian(queries * group * dim, gen, 0.3f);
      std::vector<float> out(q.size());
      kpc::prefill_attention<K4, V4>(q.data(), queries, group, k_bytes.data(), k_bytes.size(), v_bytes.data(),
                                     v_bytes.size(), first, dim, p, out.data());
      for (std::size_t i = 0; i < queries; ++i) {
        const std::vector<float> qi(q.begin() + i * group * dim, q.begin() + (i + 1) * group * dim);
        const std::vector<float> got(out.begin() + i * group * dim, out.begin() + (i + 1) * group * dim);
        std::vector<float> decoded(group * dim);
        kpc::decode_attention<K4, V4>(qi.data(), group, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                      first + i + 1, dim, p, decoded.data());
        const double err = kpc_test::relative_error(got, kpc_test::reference_attention(qi, group, k_hat, v_hat, first + i + 1, dim, p));
        worst = std::max(worst, err);
        CHECK(err <= 1e-5);
        CHECK(kpc_test::relative_error(got, std::vector<double>(decoded.begin(), decoded.end())) <= 1e-5);
      }
      // In place.
      kpc::prefill_attention<K4, V4>(q.data(), queries, group, k_bytes.data(), k_bytes.size(), v_bytes.data(),
                                     v_bytes.size(), first, dim, p, q.data());
      CHECK(q == out);
    }
  }
  MESSAGE("prefill attention, worst relative error against f64 over each causal prefix: " << worst);
  // The slabs must hold first + queries tokens.
  std::vector<float> q(4 * dim), out(4 * dim);
  const auto past_the_end = [&] {
    kpc::prefill_attention<K4, V4>(q.data(), 4, 1, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                   max_tokens - 3, dim, {}, out.data());
  };
  CHECK_THROWS_AS(past_the_end(), kpc::error);
}

TEST_CASE("large logits: the online softmax neither overflows nor loses the peak") {
  auto gen = kpc_test::rng(3003);
  const std::size_t dim = 64, tokens = 700;
  std::vector<float> k = kpc_test::gaussian(tokens * dim, gen), v = kpc_test::gaussian(tokens * dim, gen);
  const auto k_bytes = encode<K4>(k, tokens, dim);
  const auto v_bytes = encode<kpc::q4_1>(v, tokens, dim);
  const auto k_hat = decode<K4>(k_bytes, tokens, dim), v_hat = decode<kpc::q4_1>(v_bytes, tokens, dim);
  std::vector<float> q(dim);
  for (std::size_t c = 0; c < dim; ++c) q[c] = 40.0f * k_hat[600 * dim + c];  // logits in the thousands
  std::vector<float> out(dim);
  kpc::decode_attention<K4, kpc::q4_1>(q.data(), 1, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                       tokens, dim, {1.0f, 0.0f, nullptr}, out.data());
  for (float x : out) REQUIRE(std::isfinite(x));
  CHECK(kpc_test::relative_error(out, kpc_test::reference_attention(q, 1, k_hat, v_hat, tokens, dim, {1.0f, 0.0f, nullptr})) <= 1e-5);
}

TEST_CASE("the cache's attend covers the open tile and causal prefixes") {
  using Cache = kpc::KVCache<K4, kpc::q4_1>;
  auto gen = kpc_test::rng(3004);
  const std::size_t heads = 2, dim = 64, tokens = 300, group = 3;
  const std::vector<float> rows = kpc_test::gaussian(tokens * heads * dim, gen);
  Cache c(heads, dim, tokens);
  const std::vector<float> q = kpc_test::gaussian(group * dim, gen);
  for (std::size_t t = 0; t < tokens; ++t) {
    c.append(rows.data() + t * heads * dim, rows.data() + t * heads * dim, 1);
    if (t % 37 != 5) continue;
    for (std::size_t h = 0; h < heads; ++h) {
      for (const std::size_t prefix : {c.size(), c.size() / 2 + 1}) {
        std::vector<float> k_hat(prefix * dim), v_hat(prefix * dim), out(group * dim);
        c.decode_k(h, 0, prefix, k_hat.data());
        c.decode_v(h, 0, prefix, v_hat.data());
        c.attend_prefix(h, prefix, q.data(), group, {}, out.data());
        CHECK(kpc_test::relative_error(out, kpc_test::reference_attention(q, group, k_hat, v_hat, prefix, dim, {})) <= 1e-5);
      }
    }
  }
}

TEST_CASE("no tokens give zeros, with or without a sink") {
  const std::vector<float> q(64, 1.0f), sink(1, 3.0f);
  std::vector<float> out(64, 7.0f);
  kpc::decode_attention<K4, kpc::q4_1>(q.data(), 1, nullptr, 0, nullptr, 0, 0, 64, {}, out.data());
  CHECK(std::all_of(out.begin(), out.end(), [](float x) { return x == 0.0f; }));
  std::fill(out.begin(), out.end(), 7.0f);
  kpc::decode_attention<K4, kpc::q4_1>(q.data(), 1, nullptr, 0, nullptr, 0, 0, 64, {0.0f, 0.0f, sink.data()}, out.data());
  CHECK(std::all_of(out.begin(), out.end(), [](float x) { return x == 0.0f; }));
}

TEST_CASE("decode attention refuses bad arguments") {
  auto gen = kpc_test::rng(3005);
  const std::size_t dim = 32, tokens = 40;
  const std::vector<float> x = kpc_test::gaussian(tokens * dim, gen);
  const auto k = encode<K4>(x, tokens, dim);
  const auto v = encode<kpc::q4_1>(x, tokens, dim);
  std::vector<float> q(2 * dim, 0.5f), out(2 * dim);
  const auto run = [&](std::size_t group, std::size_t k_size, std::size_t channels, kpc::attention_params p) {
    return code_of([&] {
      kpc::decode_attention<K4, kpc::q4_1>(q.data(), group, k.data(), k_size, v.data(), v.size(), tokens, channels, p,
                                           out.data());
    });
  };
  CHECK(run(1, k.size(), dim, {}) == kpc::errc::ok);
  CHECK(run(0, k.size(), dim, {}) == kpc::errc::invalid_shape);
  CHECK(run(1, k.size() - 1, dim, {}) == kpc::errc::buffer_too_small);
  CHECK(run(1, k.size(), 48, {}) == kpc::errc::invalid_shape);
  CHECK(run(1, k.size(), dim, {0.0f, -1.0f, nullptr}) == kpc::errc::out_of_range);
  CHECK(run(1, k.size(), dim, {std::numeric_limits<float>::infinity(), 0.0f, nullptr}) == kpc::errc::non_finite);
  const float nan_sink = std::nanf("");
  CHECK(run(1, k.size(), dim, {0.0f, 0.0f, &nan_sink}) == kpc::errc::non_finite);
  q[3] = std::nanf("");
  CHECK(run(1, k.size(), dim, {}) == kpc::errc::non_finite);
}

TEST_CASE("huge but finite q or scale: a clear out_of_range, never NaN; out may be q") {
  const std::size_t tokens = 40, dim = 64;
  auto gen = kpc_test::rng(3101);
  const std::vector<float> k = kpc_test::gaussian(tokens * dim, gen, 1.0f, 2.0f), v = kpc_test::gaussian(tokens * dim, gen);
  const auto kb = encode<K4>(k, tokens, dim);
  const auto vb = encode<kpc::q4_1>(v, tokens, dim);
  std::vector<float> q(dim, 1e37f), out(dim);
  CHECK(code_of([&] {
          kpc::decode_attention<K4, kpc::q4_1>(q.data(), 1, kb.data(), kb.size(), vb.data(), vb.size(), tokens, dim, {},
                                               out.data());
        }) == kpc::errc::out_of_range);
  q.assign(dim, 0.5f);
  CHECK(code_of([&] {
          kpc::decode_attention<K4, kpc::q4_1>(q.data(), 1, kb.data(), kb.size(), vb.data(), vb.size(), tokens, dim,
                                               {3e38f, 0.0f, nullptr}, out.data());
        }) == kpc::errc::out_of_range);
  // In place: out = q gives what separate buffers give.
  const std::vector<float> q2 = kpc_test::gaussian(2 * dim, gen);
  std::vector<float> separate(2 * dim), in_place = q2;
  kpc::decode_attention<K4, kpc::q4_1>(q2.data(), 2, kb.data(), kb.size(), vb.data(), vb.size(), tokens, dim, {},
                                       separate.data());
  kpc::decode_attention<K4, kpc::q4_1>(in_place.data(), 2, kb.data(), kb.size(), vb.data(), vb.size(), tokens, dim, {},
                                       in_place.data());
  CHECK(in_place == separate);
  kpc::KVCache<K4, kpc::q4_1> cache(1, dim, tokens);  // the cache's options path too
  cache.append(k, v, tokens);
  std::vector<float> from_cache(2 * dim), cache_in_place = q2;
  cache.attend(0, q2, 2, {}, from_cache);
  cache.attend(0, cache_in_place, 2, {}, cache_in_place);
  CHECK(cache_in_place == from_cache);
}
