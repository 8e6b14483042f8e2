// SPDX-License-Identifier: MIT
// The arithmetic kpc's CUDA kernels add to the formats (cuda/include/kpc/cuda/detail/math.hpp),
// run on the CPU: every CI run tests it, GPU or not.
#include <kpc/cuda/detail/math.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "support.hpp"

namespace {

using kpc::cuda::detail::ranked;

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

/// Merges values in a random tree (random pairs of neighbours until one is left), as a block
/// reduction does in some order.
template <class Merge>
ranked random_tree(std::vector<ranked> items, Merge merge, std::mt19937_64& gen) {
  while (items.size() > 1) {
    const std::size_t i = std::uniform_int_distribution<std::size_t>(0, items.size() - 2)(gen);
    const bool swap = gen() & 1;  // either operand order
    items[i] = swap ? merge(items[i + 1], items[i]) : merge(items[i], items[i + 1]);
    items.erase(items.begin() + static_cast<std::ptrdiff_t>(i) + 1);
  }
  return items[0];
}

}  // namespace

TEST_CASE("first_min / first_max: any reduction tree gives the reference's walk (ties, -0/+0, NaN)") {
  auto gen = kpc_test::rng(901);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float pool[] = {0.0f, -0.0f, 1.5f, -1.5f, 2.0f, -2.0f, 3.25f, nan, -nan};
  for (int trial = 0; trial < 2000; ++trial) {
    const std::size_t n = 1 + gen() % 40;
    std::vector<ranked> items(n);
    const bool with_nan = trial % 3 == 0;
    for (std::size_t c = 0; c < n; ++c) items[c] = {pool[gen() % (with_nan ? 9 : 7)], static_cast<unsigned>(c)};
    float min = items[0].value, max = items[0].value;  // the reference: strict comparisons in channel order
    for (const ranked& r : items) {
      if (r.value < min) min = r.value;
      if (r.value > max) max = r.value;
    }
    // Reductions may also start from a neutral element (threads without channels).
    std::vector<ranked> with_neutral = items;
    with_neutral.push_back({std::numeric_limits<float>::infinity(), 0xFFFFFFFFu});
    const ranked tree_min = random_tree(with_neutral, kpc::cuda::detail::first_min, gen);
    with_neutral.back() = {-std::numeric_limits<float>::infinity(), 0xFFFFFFFFu};
    const ranked tree_max = random_tree(with_neutral, kpc::cuda::detail::first_max, gen);
    REQUIRE(bits(tree_min.value) == bits(min));
    REQUIRE(bits(tree_max.value) == bits(max));
  }
}

TEST_CASE("split_units covers every unit once, in order, balanced; choose_splits stays in bounds") {
  auto gen = kpc_test::rng(902);
  for (int trial = 0; trial < 500; ++trial) {
    const std::size_t units = gen() % 5000, splits = 1 + gen() % 700;
    std::size_t next = 0, smallest = units, largest = 0;
    for (std::size_t s = 0; s < splits; ++s) {
      const kpc::cuda::detail::unit_range r = kpc::cuda::detail::split_units(units, splits, s);
      REQUIRE(r.begin == next);
      REQUIRE(r.end >= r.begin);
      smallest = std::min(smallest, r.end - r.begin);
      largest = std::max(largest, r.end - r.begin);
      next = r.end;
    }
    CHECK(next == units);
    CHECK(largest - smallest <= 1);
    const std::size_t chosen = kpc::cuda::detail::choose_splits(units, 1 + gen() % 64, static_cast<int>(gen() % 200), 1 + gen() % 300);
    CHECK(chosen >= 1);
    CHECK((chosen <= units || units == 0));
  }
  CHECK(kpc::cuda::detail::choose_splits(1024, 8, 132, 1000) == 66);  // 4 x 132 SMs over 8 KV heads
  CHECK(kpc::cuda::detail::choose_splits(1024, 8, 132, 16) == 16);
  CHECK(kpc::cuda::detail::choose_splits(3, 1, 132, 1000) == 3);
}

TEST_CASE("plan_staging reads exactly the caller's bytes, words inside, bytes at the ends") {
  for (std::uintptr_t address = 4096; address < 4096 + 16; ++address)
    for (std::size_t n = 0; n < 80; ++n) {
      const kpc::cuda::detail::staging_plan plan = kpc::cuda::detail::plan_staging(address, n);
      std::vector<int> copies(plan.total + 32, 0);
      for (std::size_t w = plan.words_begin; w < plan.words_end; ++w)
        for (std::size_t i = 16 * w; i < 16 * w + 16; ++i) ++copies[i];
      for (std::size_t i = plan.lead; i < plan.head_end; ++i) ++copies[i];
      for (std::size_t i = plan.tail_begin; i < plan.total; ++i) ++copies[i];
      for (std::size_t i = 0; i < copies.size(); ++i) {
        const int expected = i >= plan.lead && i < plan.lead + n ? 1 : 0;
        REQUIRE_MESSAGE(copies[i] == expected, "address % 16 = " << address % 16 << ", n = " << n << ", byte " << i);
      }
      CHECK(plan.lead == address % 16);
      CHECK(plan.total + 16 <= (n + 31) / 16 * 16 + 16);  // fits staged_bytes(n) with the lead
    }
}

TEST_CASE("merge_splits: split softmax results merge into the whole softmax") {
  auto gen = kpc_test::rng(903);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t tokens = gen() % 300, channels = 1 + gen() % 40, splits = 1 + gen() % 12;
    const bool sink_on = gen() & 1;
    const float sink = sink_on ? normal(gen) : -std::numeric_limits<float>::infinity();
    std::vector<float> logits(tokens), values(tokens * channels);
    for (float& l : logits) l = normal(gen);
    for (float& v : values) v = normal(gen);

    // Each split: its own max, sum of exp and unnormalized accumulators (as the kernel writes them).
    std::vector<float> max(splits), sum(splits), acc(splits * channels, 0.0f);
    for (std::size_t s = 0; s < splits; ++s) {
      const kpc::cuda::detail::unit_range r = kpc::cuda::detail::split_units(tokens, splits, s);
      max[s] = -std::numeric_limits<float>::infinity();
      for (std::size_t t = r.begin; t < r.end; ++t) max[s] = std::max(max[s], logits[t]);
      sum[s] = 0.0f;
      for (std::size_t t = r.begin; t < r.end; ++t) {
        const float w = std::exp(logits[t] - max[s]);
        sum[s] += w;
        for (std::size_t c = 0; c < channels; ++c) acc[s * channels + c] += w * values[t * channels + c];
      }
    }
    std::vector<float> out(channels, -1.0f);
    kpc::cuda::detail::merge_splits(max.data(), sum.data(), acc.data(), channels, splits, sink, 0, channels, 1, out.data());

    double overall = sink_on ? sink : -INFINITY;
    for (float l : logits) overall = std::max(overall, static_cast<double>(l));
    double denominator = sink_on ? std::exp(sink - overall) : 0.0;
    std::vector<double> expected(channels, 0.0);
    for (std::size_t t = 0; t < tokens; ++t) {
      const double w = std::exp(logits[t] - overall);
      denominator += w;
      for (std::size_t c = 0; c < channels; ++c) expected[c] += w * values[t * channels + c];
    }
    for (std::size_t c = 0; c < channels; ++c) {
      const double e = denominator > 0.0 ? expected[c] / denominator : 0.0;
      REQUIRE_MESSAGE(std::abs(out[c] - e) <= 1e-5 * (1.0 + std::abs(e)) * std::sqrt(1.0 + tokens),
                      "tokens " << tokens << " splits " << splits << " channel " << c);
    }
  }
}

TEST_CASE("rescale and attention_logit") {
  CHECK(kpc::cuda::detail::rescale(-std::numeric_limits<float>::infinity(), 3.0f) == 0.0f);
  CHECK(kpc::cuda::detail::rescale(-std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(kpc::cuda::detail::rescale(2.0f, 2.0f) == 1.0f);
  CHECK(kpc::cuda::detail::rescale(1.0f, 2.0f) == doctest::Approx(std::exp(-1.0)));
  CHECK(kpc::cuda::detail::attention_logit(3.0f, 0.5f, 0.0f) == 1.5f);
  CHECK(kpc::cuda::detail::attention_logit(300.0f, 1.0f, 30.0f) == doctest::Approx(30.0 * std::tanh(10.0)));
  // No tokens and no sink: zeros, not NaN.
  float out[3] = {1, 1, 1};
  kpc::cuda::detail::merge_splits(nullptr, nullptr, nullptr, 3, 0, -std::numeric_limits<float>::infinity(), 0, 3, 1, out);
  CHECK(out[0] == 0.0f);
  CHECK(out[2] == 0.0f);
}
