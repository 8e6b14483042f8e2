// SPDX-License-Identifier: MIT
// kpc/backend.hpp: every instruction set this binary and CPU can run (the binary carries the
// run-time dispatch units, so x86 tests SSE4.2, AVX2 and, where the CPU has it, AVX-512; AArch64
// tests NEON) writes the scalar reference's bytes and decodes to its floats, bit for bit, and its
// fused kernels stay within the stated float bound.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <kpc/kpc.hpp>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "support.hpp"

#if !defined(KPC_NO_SIMD) && __has_include(<xsimd/xsimd.hpp>)
#include <xsimd/config/xsimd_config.hpp>
#define KPC_TEST_XSIMD 1
#endif

namespace {

template <class Layout>
struct tile_of : std::integral_constant<int, 0> {};
template <int G>
struct tile_of<kpc::PerChannel<G>> : std::integral_constant<int, G> {};

// Restores the best instruction set when a test ends, whatever it forced.
struct isa_guard {
  ~isa_guard() { kpc::reset_isa(); }
};

enum class data { gaussian, offset, wide, tiny, zeros, integers };
const data all_data[] = {data::gaussian, data::offset, data::wide, data::tiny, data::zeros, data::integers};

const char* name(data kind) {
  switch (kind) {
    case data::gaussian: return "gaussian";
    case data::offset: return "offset";
    case data::wide: return "wide";
    case data::tiny: return "tiny";
    case data::zeros: return "signed zeros";
    case data::integers: return "integers (ties)";
  }
  return "?";
}

std::vector<float> make(data kind, std::size_t tokens, std::size_t channels, std::mt19937_64& gen) {
  std::vector<float> x = kpc_test::gaussian(tokens * channels, gen);
  std::uniform_int_distribution<int> small(-8, 8);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const std::size_t c = i % channels;
    switch (kind) {
      case data::gaussian: break;
      case data::offset: if (c % 37 == 3) x[i] = 20.0f + 5.0f * x[i]; break;
      case data::wide: x[i] *= std::ldexp(1.0f, static_cast<int>(c % 23) - 11) * 100.0f; break;  // 2^-11..2^11 x 100
      case data::tiny: x[i] *= 1e-39f; break;                                                   // f32 denormals
      case data::zeros: x[i] = (gen() % 3 == 0) ? 0.5f * x[i] : ((gen() & 1) ? 0.0f : -0.0f); break;
      case data::integers: x[i] = static_cast<float>(small(gen)) * 0.5f; break;  // lands on rounding ties
    }
  }
  return x;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class Q, class T>
kpc::errc encode_status(const std::vector<T>& x, std::size_t tokens, std::size_t channels, std::vector<std::byte>& out,
                        std::string& message) {
  out.assign(Q::encoded_bytes(tokens, channels), std::byte{0});
  try {
    Q::encode(x.data(), tokens, channels, out.data());
  } catch (const kpc::error& e) {
    message = e.what();
    return e.code();
  }
  return kpc::errc::ok;
}

// The integer attention path (4-bit K scores, V4 accumulate) on one backend: the reference within
// the stated bound of f64 over the decoded values, and the backend within f32 rounding of the
// reference (it must find the same integer codes and sums: one code apart is ~d x 15, far above
// that tolerance).
template <class Q>
void check_integer(kpc::isa level, const std::vector<std::byte>& bytes, const std::vector<float>& decoded, std::size_t tokens,
                std::size_t channels, double largest, std::mt19937_64& gen) {
  constexpr std::size_t group = 3;
  constexpr int G = tile_of<typename Q::layout>::value;
  if constexpr (G != 0) {
    auto q = kpc_test::gaussian(group * channels, gen);
    // Head 1's channels 16-31 below 2^-100 (a run the integer path flushes to zero; 127 / a would overflow).
    for (std::size_t c = 16; c < std::min<std::size_t>(32, channels); ++c) q[channels + c] *= 0x1p-130f;
    std::vector<float> ref_scores(group * tokens), simd_scores(group * tokens);
    kpc::set_isa(kpc::isa::scalar);
    Q::scores_group_integer(q.data(), group, bytes.data(), bytes.size(), tokens, channels, ref_scores.data());
    kpc::set_isa(level);
    Q::scores_group_integer(q.data(), group, bytes.data(), bytes.size(), tokens, channels, simd_scores.data());
    for (std::size_t h = 0; h < group; ++h) {
      const float* qh = q.data() + h * channels;
      const std::vector<double> slack = kpc_test::integer_scores_slack<G>(qh, bytes.data(), tokens, channels);
      double q_sum = 0.0;
      for (std::size_t c = 0; c < channels; ++c) q_sum += std::fabs(qh[c]);
      for (std::size_t t = 0; t < tokens; ++t) {
        double exact = 0.0, magnitude = 0.0;
        for (std::size_t c = 0; c < channels; ++c) {
          exact += static_cast<double>(qh[c]) * decoded[t * channels + c];
          magnitude += std::fabs(qh[c]) * std::fabs(decoded[t * channels + c]);
        }
        const double rounding = 2.0 * kpc_test::dot_tolerance(channels, magnitude + q_sum * largest);
        CAPTURE(t);
        REQUIRE(std::fabs(ref_scores[h * tokens + t] - exact) <= 1.001 * slack[t] + rounding);
        REQUIRE(std::fabs(simd_scores[h * tokens + t] - ref_scores[h * tokens + t]) <= rounding);
      }
    }
  } else {
    auto w = kpc_test::gaussian(group * tokens, gen);
    // Head 1's tokens 64-127 below 2^-100, as softmax weights of far-off tokens underflow (flushed).
    for (std::size_t t = 64; t < std::min<std::size_t>(128, tokens); ++t) w[tokens + t] *= 0x1p-130f;
    std::vector<float> ref_out(group * channels, 0.5f), simd_out(group * channels, 0.5f);
    kpc::set_isa(kpc::isa::scalar);
    Q::accumulate_group_integer(w.data(), group, bytes.data(), bytes.size(), tokens, channels, ref_out.data());
    kpc::set_isa(level);
    Q::accumulate_group_integer(w.data(), group, bytes.data(), bytes.size(), tokens, channels, simd_out.data());
    for (std::size_t h = 0; h < group; ++h) {
      const float* wh = w.data() + h * tokens;
      const std::vector<double> slack = kpc_test::integer_accumulate_slack(wh, bytes.data(), tokens, channels);
      for (std::size_t c = 0; c < channels; ++c) {
        double exact = 0.5, magnitude = 0.5;
        for (std::size_t t = 0; t < tokens; ++t) {
          exact += static_cast<double>(wh[t]) * decoded[t * channels + c];
          magnitude += std::fabs(wh[t]) * (std::fabs(decoded[t * channels + c]) + largest);
        }
        const double rounding = 2.0 * kpc_test::dot_tolerance(tokens, magnitude);
        CAPTURE(c);
        REQUIRE(std::fabs(ref_out[h * channels + c] - exact) <= 1.001 * slack[c] + rounding);
        REQUIRE(std::fabs(simd_out[h * channels + c] - ref_out[h * channels + c]) <= rounding);
      }
    }
  }
}

// Compares one format on one backend against the scalar reference, on one slab.
template <class Q>
void check_against_reference(kpc::isa level, const std::vector<float>& x, std::size_t tokens, std::size_t channels) {
  using kpc_test::hex;
  std::vector<std::byte> ref_bytes, simd_bytes;
  std::string ref_message, simd_message;
  kpc::set_isa(kpc::isa::scalar);
  const kpc::errc ref_status = encode_status<Q>(x, tokens, channels, ref_bytes, ref_message);
  kpc::set_isa(level);
  const kpc::errc simd_status = encode_status<Q>(x, tokens, channels, simd_bytes, simd_message);
  REQUIRE(simd_status == ref_status);
  CHECK(simd_message == ref_message);
  if (ref_status != kpc::errc::ok) return;
  REQUIRE(simd_bytes == ref_bytes);

  // f16 input: the same bytes (or error) as the scalar path on the same halves.
  std::vector<kpc::half> x_half(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x_half[i] = kpc::half(x[i]);
  std::vector<std::byte> half_ref, half_simd;
  kpc::set_isa(kpc::isa::scalar);
  const kpc::errc half_ref_status = encode_status<Q>(x_half, tokens, channels, half_ref, ref_message);
  kpc::set_isa(level);
  REQUIRE(encode_status<Q>(x_half, tokens, channels, half_simd, simd_message) == half_ref_status);
  CHECK(simd_message == ref_message);
  if (half_ref_status == kpc::errc::ok) REQUIRE(half_simd == half_ref);

  // Decoding: identical floats (f32 and f16), strided rows included.
  std::vector<float> ref_out(tokens * channels), simd_out(tokens * channels);
  kpc::set_isa(kpc::isa::scalar);
  Q::decode(ref_bytes.data(), tokens, channels, ref_out.data());
  kpc::set_isa(level);
  Q::decode(ref_bytes.data(), tokens, channels, simd_out.data());
  REQUIRE(same_bits(simd_out, ref_out));
  std::vector<kpc::half> half_out(tokens * channels);
  Q::decode(ref_bytes.data(), tokens, channels, half_out.data());
  for (std::size_t i = 0; i < half_out.size(); ++i) REQUIRE(half_out[i].bits == kpc::half(ref_out[i]).bits);
  std::vector<float> strided(tokens * (channels + 5), -7.0f);
  Q::decode(ref_bytes.data(), ref_bytes.size(), tokens, channels, strided.data(), channels + 5);
  for (std::size_t t = 0; t < tokens; ++t) {
    REQUIRE(std::memcmp(strided.data() + t * (channels + 5), ref_out.data() + t * channels, channels * sizeof(float)) == 0);
    for (std::size_t c = channels; c < channels + 5; ++c) REQUIRE(strided[t * (channels + 5) + c] == -7.0f);
  }

  // Fused scores (and accumulate) against f64 over the decoded values, for one query head and for
  // a group of three (a pair sharing the codes, then one on its own).
  auto gen = kpc_test::rng(tokens * 131 + channels);
  double largest = 0.0;
  for (float v : ref_out) largest = std::max(largest, static_cast<double>(std::fabs(v)));
  const auto check_scores = [&](const float* q, const float* scores) {
    double q_sum = 0.0;
    for (std::size_t c = 0; c < channels; ++c) q_sum += std::fabs(q[c]);
    for (std::size_t t = 0; t < tokens; ++t) {
      double exact = 0.0, magnitude = 0.0;
      for (std::size_t c = 0; c < channels; ++c) {
        exact += static_cast<double>(q[c]) * ref_out[t * channels + c];
        magnitude += std::fabs(q[c]) * std::fabs(ref_out[t * channels + c]);
      }
      REQUIRE(std::fabs(scores[t] - exact) <= kpc_test::dot_tolerance(channels, magnitude + q_sum * largest));
    }
  };
  constexpr std::size_t group = 3;
  const auto q = kpc_test::gaussian(group * channels, gen);
  std::vector<float> scores(group * tokens);
  Q::scores(q.data(), ref_bytes.data(), tokens, channels, scores.data());
  check_scores(q.data(), scores.data());
  Q::scores_group(q.data(), group, ref_bytes.data(), ref_bytes.size(), tokens, channels, scores.data());
  for (std::size_t h = 0; h < group; ++h) check_scores(q.data() + h * channels, scores.data() + h * tokens);
  if constexpr (Q::format::integer_dot) check_integer<Q>(level, ref_bytes, ref_out, tokens, channels, largest, gen);
  if constexpr (tile_of<typename Q::layout>::value == 0) {
    const auto check_accumulate = [&](const float* w, const float* acc) {
      for (std::size_t c = 0; c < channels; ++c) {
        double exact = 0.5, magnitude = 0.5;
        for (std::size_t t = 0; t < tokens; ++t) {
          exact += static_cast<double>(w[t]) * ref_out[t * channels + c];
          magnitude += std::fabs(w[t]) * (std::fabs(ref_out[t * channels + c]) + largest);
        }
        REQUIRE(std::fabs(acc[c] - exact) <= kpc_test::dot_tolerance(tokens, magnitude));
      }
    };
    const auto w = kpc_test::gaussian(group * tokens, gen);
    std::vector<float> acc(group * channels, 0.5f);
    Q::accumulate(w.data(), ref_bytes.data(), tokens, channels, acc.data());
    check_accumulate(w.data(), acc.data());
    std::fill(acc.begin(), acc.end(), 0.5f);
    Q::accumulate_group(w.data(), group, ref_bytes.data(), ref_bytes.size(), tokens, channels, acc.data());
    for (std::size_t h = 0; h < group; ++h) check_accumulate(w.data() + h * tokens, acc.data() + h * channels);
  }
}

template <class Q>
void check_format(std::uint64_t stream) {
  isa_guard guard;
  constexpr int G = tile_of<typename Q::layout>::value;
  const std::vector<std::size_t> channel_counts =
      G ? std::vector<std::size_t>{1, 3, 8, 15, 16, 17, 33, 64, 127, 160} : std::vector<std::size_t>{32, 64, 96, 160};
  const std::vector<std::size_t> token_counts = {1, 5, 31, 33, 129};
  auto gen = kpc_test::rng(stream);
  for (kpc::isa level : kpc::available_isas()) {
    if (level == kpc::isa::scalar) continue;
    const std::string isa_name = kpc::to_string(level);
    CAPTURE(isa_name);
    for (data kind : all_data)
      for (std::size_t channels : channel_counts)
        for (std::size_t tokens : token_counts) {
          const std::string data_name = name(kind);
          CAPTURE(data_name);
          CAPTURE(channels);
          CAPTURE(tokens);
          check_against_reference<Q>(level, make(kind, tokens, channels, gen), tokens, channels);
        }
  }
}

}  // namespace

TEST_CASE("the backends this binary can run, and the ones it cannot") {
  std::string available;
  for (kpc::isa level : kpc::available_isas()) available += std::string(" ") + kpc::to_string(level);
#if defined(KPC_TEST_XSIMD)  // the units and this file see the same include path
  MESSAGE("xsimd " << XSIMD_VERSION_MAJOR << "." << XSIMD_VERSION_MINOR << "." << XSIMD_VERSION_PATCH);
#endif
  MESSAGE("instruction sets available here:" << available << "; active: " << std::string(kpc::to_string(kpc::active_isa())));
  const auto levels = kpc::available_isas();
  REQUIRE(!levels.empty());
  CHECK(levels.front() == kpc::isa::scalar);
  CHECK(kpc::active_isa() == levels.back());  // the best one runs by default
  CHECK(std::is_sorted(levels.begin(), levels.end()));
#if defined(__x86_64__)
  if ((KPC_DISPATCH_UNITS >> static_cast<int>(kpc::isa::avx512) & 1) != 0 &&
      std::find(levels.begin(), levels.end(), kpc::isa::avx512) == levels.end())
    MESSAGE("AVX-512 is compiled in but this CPU lacks it: its byte-identity tests are skipped here");
#endif
#if defined(__aarch64__)
  CHECK(std::find(levels.begin(), levels.end(), kpc::isa::neon) != levels.end());
#endif
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
TEST_CASE("the dispatch units' CPU detection agrees with the compiler's own") {
  const kpc::detail::cpu_features cpu = kpc::detail::detect_cpu();
  const auto has = [](bool feature) { return feature; };
  CHECK(cpu.sse4_2 == has(__builtin_cpu_supports("sse4.2")));
  CHECK(cpu.avx2_fma_f16c == has(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));  // F16C comes with them
  CHECK(cpu.avx512 == has(cpu.avx2_fma_f16c && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd") &&
                          __builtin_cpu_supports("avx512vl")));
}
#endif

TEST_CASE("set_isa refuses what the CPU or build cannot run, and reset_isa restores the best") {
  isa_guard guard;
  const auto levels = kpc::available_isas();
  const kpc::isa missing =
#if defined(__aarch64__)
      kpc::isa::avx2;
#else
      kpc::isa::neon;
#endif
  try {
    kpc::set_isa(missing);
    FAIL("set_isa accepted an instruction set this machine cannot run");
  } catch (const kpc::error& e) {
    CHECK(e.code() == kpc::errc::unsupported);
  }
  kpc::set_isa(kpc::isa::scalar);
  CHECK(kpc::active_isa() == kpc::isa::scalar);
  kpc::reset_isa();
  CHECK(kpc::active_isa() == levels.back());
}

TEST_CASE("every backend: K per channel, bytes and floats identical to the reference") {
  check_format<kpc::Quantizer<4, kpc::PerChannel<32>>>(1);
  check_format<kpc::Quantizer<4, kpc::PerChannel<64>>>(2);
  check_format<kpc::Quantizer<4, kpc::PerChannel<128>>>(3);
  check_format<kpc::Quantizer<3, kpc::PerChannel<32>>>(4);
  check_format<kpc::Quantizer<3, kpc::PerChannel<128>>>(5);
  check_format<kpc::Quantizer<2, kpc::PerChannel<32>>>(6);
  check_format<kpc::Quantizer<2, kpc::PerChannel<64>>>(7);
}

TEST_CASE("every backend: V per token, q4_0 and f16 rows, bytes and floats identical to the reference") {
  check_format<kpc::q8_0>(11);
  check_format<kpc::q4_1>(12);
  check_format<kpc::Quantizer<3, kpc::PerToken<32>>>(13);
  check_format<kpc::q4_0>(14);
  check_format<kpc::f16_rows>(15);
}

TEST_CASE("every backend: NaN, Inf and out-of-range input are refused with the reference's error") {
  isa_guard guard;
  auto gen = kpc_test::rng(21);
  for (kpc::isa level : kpc::available_isas()) {
    const std::string isa_name = kpc::to_string(level);
    CAPTURE(isa_name);
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), -3e38f, 1e6f}) {
      auto x = kpc_test::gaussian(70 * 64, gen);
      x[66 * 64 + 17] = bad;
      std::vector<std::byte> bytes;
      std::string k_message, v_message;
      kpc::set_isa(level);
      const kpc::errc k = encode_status<kpc::Quantizer<4, kpc::PerChannel<32>>>(x, 70, 64, bytes, k_message);
      const kpc::errc v = encode_status<kpc::q4_1>(x, 70, 64, bytes, v_message);
      kpc::set_isa(kpc::isa::scalar);
      std::string k_ref, v_ref;
      CHECK(k == encode_status<kpc::Quantizer<4, kpc::PerChannel<32>>>(x, 70, 64, bytes, k_ref));
      CHECK(v == encode_status<kpc::q4_1>(x, 70, 64, bytes, v_ref));
      CHECK(k_message == k_ref);
      CHECK(v_message == v_ref);
      CHECK(v != kpc::errc::ok);                 // q4_1's d = 1e6 / 15 exceeds fp16
      CHECK((k != kpc::errc::ok) == (bad != 1e6f));  // K's scale step 1e6 / 15 / 255 still fits
    }
  }
}
