// SPDX-License-Identifier: MIT
// kpc/ref/per_token.hpp: V blocks (q4_1, q8_0, 3-bit) and the q4_0 baseline against hand-worked
// bytes, ggml's rounding rules near every tie, and their error bounds.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <kpc/ref/per_token.hpp>
#include <limits>
#include <type_traits>
#include <vector>

#include "support.hpp"

namespace {

template <int Bits>
struct v_config {
  static constexpr int bits = Bits;
};
struct q4_0_config {
  static constexpr int bits = 4;
};

template <class Config>
struct codec;
template <int Bits>
struct codec<v_config<Bits>> {
  static constexpr std::size_t bytes = kpc::format::v_block<Bits>::bytes;
  static kpc::errc encode(const float* x, std::byte* b) { return kpc::ref::encode_v_block<Bits>(x, b); }
  static kpc::errc decode(const std::byte* b, float* x) { return kpc::ref::decode_v_block<Bits>(b, x); }
  static float dot(const float* q, const std::byte* b) { return kpc::ref::dot_v_block<Bits>(q, b); }
  static void axpy(float w, const std::byte* b, float* out) { kpc::ref::axpy_v_block<Bits>(w, b, out); }
};
template <>
struct codec<q4_0_config> {
  static constexpr std::size_t bytes = kpc::format::q4_0_block::bytes;
  static kpc::errc encode(const float* x, std::byte* b) { return kpc::ref::encode_q4_0_block(x, b); }
  static kpc::errc decode(const std::byte* b, float* x) { return kpc::ref::decode_q4_0_block(b, x); }
  static float dot(const float* q, const std::byte* b) { return kpc::ref::dot_q4_0_block(q, b); }
  static void axpy(float w, const std::byte* b, float* out) { kpc::ref::axpy_q4_0_block(w, b, out); }
};

template <class Config>
std::vector<std::byte> encode_block(const std::vector<float>& x, kpc::errc expected = kpc::errc::ok) {
  std::vector<std::byte> block(codec<Config>::bytes);
  CHECK(codec<Config>::encode(x.data(), block.data()) == expected);
  return block;
}

template <class Config>
std::vector<float> decode_block(const std::vector<std::byte>& block) {
  std::vector<float> x(32);
  CHECK(codec<Config>::decode(block.data(), x.data()) == kpc::errc::ok);
  return x;
}

float f16(std::uint16_t bits) { return kpc::fp16_bits_to_fp32(bits); }

// a * b rounded once to f32. The volatile store ends the expression, so even a build that fuses
// multiply-adds (kpc_tests_contracted) cannot fold the caller's addition into this product.
float product_f32(float a, float b) {
  volatile float product = a * b;
  return product;
}

}  // namespace

TEST_CASE("q4_1 (V4) golden bytes") {
  // x_j = -2 + 0.5 j (j < 16) and x_{16+i} = 5.5 - 0.25 i. min = -2, max = 5.5, d = 7.5/15 = 0.5
  // (fp16 0x3800), m = -2 (0xC000), 1/d = 2. Codes: j for j < 16; trunc(15.5 - 0.5 i) = 15 - i/2
  // for the second half (odd i are exact ties, which round up). Byte j = code_j | code_{j+16} << 4.
  std::vector<float> x;
  for (int j = 0; j < 16; ++j) x.push_back(-2.0f + 0.5f * static_cast<float>(j));
  for (int i = 0; i < 16; ++i) x.push_back(5.5f - 0.25f * static_cast<float>(i));
  const auto block = encode_block<v_config<4>>(x);
  CHECK(kpc_test::hex(block) == "00 38 00 c0 f0 f1 e2 e3 d4 d5 c6 c7 b8 b9 aa ab 9c 9d 8e 8f");
  const auto y = decode_block<v_config<4>>(block);
  for (int i = 0; i < 16; ++i) CHECK(y[16 + i] == -2.0f + 0.5f * static_cast<float>(15 - i / 2));
}

TEST_CASE("q8_0 (V8) golden bytes") {
  // amax = 127 -> d = 1 (0x3C00), 1/d = 1, code = round(x) with ties away from zero:
  // -127, 2.5 -> 3, -2.5 -> -3, 0.49999997 -> 0 (not 1), 1.5 -> 2, -0.5 -> -1, 126.6 -> 127, 3, then j - 16.
  std::vector<float> x = {-127.0f, 2.5f, -2.5f, 0.49999997f, 1.5f, -0.5f, 126.6f, 3.0f};
  for (int j = 8; j < 32; ++j) x.push_back(static_cast<float>(j - 16));
  const auto block = encode_block<v_config<8>>(x);
  CHECK(kpc_test::hex(block) ==
        "00 3c 81 03 fd 00 02 ff 7f 03 f8 f9 fa fb fc fd fe ff 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f");
  CHECK(decode_block<v_config<8>>(block)[2] == -3.0f);
}

TEST_CASE("3-bit V golden bytes") {
  // x_j = j % 8 - 3: min = -3 (fp16 0xC200), d = 7/7 = 1, codes j % 8, packed LSB-first: 88 c6 fa.
  std::vector<float> x;
  for (int j = 0; j < 32; ++j) x.push_back(static_cast<float>(j % 8 - 3));
  const auto block = encode_block<v_config<3>>(x);
  CHECK(kpc_test::hex(block) == "00 3c 00 c2 88 c6 fa 88 c6 fa 88 c6 fa 88 c6 fa");
  CHECK(decode_block<v_config<3>>(block) == x);
}

TEST_CASE("q4_0 baseline golden bytes") {
  // First value of largest magnitude is -8 (the later +8 does not replace it): d = -8/-8 = 1.
  // code = min(15, trunc(x + 8.5)): 3 -> 11, -8 -> 0, 8 -> 15 (16 clamped), -0.5 -> 8 (tie up),
  // 0.5 -> 9, -7.6 -> 0, 7.4 -> 15, 6.5 -> 15; x_j = (j - 20)/2 for j >= 8 gives trunc(j/2 - 1.5).
  std::vector<float> x = {3.0f, -8.0f, 8.0f, -0.5f, 0.5f, -7.6f, 7.4f, 6.5f};
  for (int j = 8; j < 32; ++j) x.push_back(static_cast<float>(j - 20) * 0.5f);
  const auto block = encode_block<q4_0_config>(x);
  CHECK(kpc_test::hex(block) == "00 3c 6b 70 7f 88 89 90 9f af a2 b3 b3 c4 c4 d5 d5 e6");
  const auto y = decode_block<q4_0_config>(block);
  CHECK(y[2] == 7.0f);   // +8 is not representable: (15 - 8) * 1
  CHECK(y[1] == -8.0f);
}

TEST_CASE_TEMPLATE("codes follow ggml's rounding near every tie, whatever the compiler fuses", Config, v_config<4>,
                   v_config<3>, q4_0_config) {
  // Values placed within a few ulps of each code boundary, where trunc(x * (1/d) + 0.5) changes with
  // one rounding more or less. The expected code rounds the product once to f32, then adds.
  constexpr bool symmetric = std::is_same_v<Config, q4_0_config>;
  constexpr int max_code = symmetric ? 15 : (1 << Config::bits) - 1;
  auto gen = kpc_test::rng(300 + max_code);
  std::uniform_real_distribution<float> scale_dist(0.01f, 100.0f);
  std::uniform_int_distribution<int> nudge(-6, 6);
  for (int trial = 0; trial < 400; ++trial) {
    const float d_target = scale_dist(gen);
    std::vector<float> x(32);
    // Fix the block's extremes so d and min are what we expect: min = 0 (V) or -8d first (q4_0).
    x[0] = symmetric ? -8.0f * d_target : 0.0f;
    x[1] = symmetric ? 7.0f * d_target : static_cast<float>(max_code) * d_target;
    for (int j = 2; j < 32; ++j) {
      // Boundaries between codes k - 1 and k, k = 1..max_code, all inside the block's range.
      const float boundary = static_cast<float>(1 + gen() % max_code) - (symmetric ? 8.0f : 0.0f) - 0.5f;
      float v = boundary * d_target;
      for (int n = nudge(gen); n != 0; n += n > 0 ? -1 : 1) v = std::nextafter(v, n > 0 ? 1e30f : -1e30f);
      x[j] = v;
    }
    const auto block = encode_block<Config>(x);
    float min = x[0], d;
    if constexpr (symmetric) {
      d = x[0] / -8.0f;
    } else {
      min = *std::min_element(x.begin(), x.end());
      d = (*std::max_element(x.begin(), x.end()) - min) / static_cast<float>(max_code);
    }
    const float inverse = 1.0f / d;
    for (int j = 0; j < 32; ++j) {
      unsigned code;
      if constexpr (symmetric) {
        code = std::min(15u, static_cast<unsigned>(product_f32(x[j], inverse) + 8.5f));  // the sum is > 0
        REQUIRE(kpc::format::code_at<4>(block.data() + 2, j) == code);
      } else {
        code = std::min<unsigned>(max_code, static_cast<unsigned>(product_f32(x[j] - min, inverse) + 0.5f));
        REQUIRE(static_cast<unsigned>(kpc::ref::v_code<Config::bits>(block.data(), j)) == code);
      }
    }
  }
}

TEST_CASE_TEMPLATE("blocks: error bounds, idempotent re-encoding, fused dot and axpy", Config, v_config<4>, v_config<3>,
                   v_config<8>, q4_0_config) {
  auto gen = kpc_test::rng(400 + codec<Config>::bytes);
  for (int trial = 0; trial < 200; ++trial) {
    // Half the blocks Gaussian, half with one Qwen-style outlier.
    auto x = kpc_test::gaussian(32, gen, 1.0f + static_cast<float>(trial % 7));
    if (trial % 2) x[trial % 32] = 20.0f + 5.0f * x[trial % 32];
    const auto block = encode_block<Config>(x);
    const auto y = decode_block<Config>(block);
    const float d_h = f16(kpc::detail::load_u16le(block.data()));
    const float amax = std::fabs(*std::max_element(x.begin(), x.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }));
    for (int j = 0; j < 32; ++j) {
      double bound;
      const double slack = 8 * std::ldexp(1.0, -24) * amax;
      if constexpr (std::is_same_v<Config, q4_0_config>) {
        // Codes against the unrounded d; +8|d| is not representable, so up to |d| at that end.
        bound = std::fabs(d_h) * (1.0 + 8 * std::ldexp(1.0, -11)) + slack;
      } else if constexpr (Config::bits == 8) {
        bound = d_h / 2 + 127 * d_h * std::ldexp(1.0, -11) + slack;
      } else {
        const float m_h = f16(kpc::detail::load_u16le(block.data() + 2));
        const double d = (*std::max_element(x.begin(), x.end()) - *std::min_element(x.begin(), x.end())) /
                         ((1 << Config::bits) - 1);
        bound = d / 2 + ((1 << Config::bits) - 1) * std::fabs(d - d_h) +
                std::fabs(*std::min_element(x.begin(), x.end()) - m_h) + slack;
      }
      REQUIRE(std::fabs(static_cast<double>(x[j]) - y[j]) <= bound);
    }
    CHECK(kpc_test::hex(encode_block<Config>(y)) == kpc_test::hex(block));

    const auto q = kpc_test::gaussian(32, gen);
    double exact = 0.0, magnitude = 0.0;
    for (int j = 0; j < 32; ++j) {
      exact += static_cast<double>(q[j]) * y[j];
      magnitude += std::fabs(q[j]) * (std::fabs(y[j]) + amax);
    }
    CHECK(std::fabs(codec<Config>::dot(q.data(), block.data()) - exact) <= kpc_test::dot_tolerance(32, magnitude));
    std::vector<float> out(32, 0.25f);
    const float w = q[0];
    codec<Config>::axpy(w, block.data(), out.data());
    for (int j = 0; j < 32; ++j)
      REQUIRE(std::fabs(out[j] - (0.25 + static_cast<double>(w) * y[j])) <=
              6 * std::ldexp(1.0, -24) * (0.25 + std::fabs(w) * (std::fabs(y[j]) + 2 * amax)));
  }
}

TEST_CASE_TEMPLATE("blocks: zeros, constants, non-finite and overflowing input", Config, v_config<4>, v_config<3>,
                   v_config<8>, q4_0_config) {
  const std::vector<float> zeros(32, 0.0f);
  CHECK(decode_block<Config>(encode_block<Config>(zeros)) == zeros);
  // -127/128: exact in fp16, and so are d = 2^-7 (q8_0) and d = 127/1024 (q4_0): all return it exactly.
  const std::vector<float> constant(32, -0.9921875f);
  CHECK(decode_block<Config>(encode_block<Config>(constant)) == constant);

  std::vector<float> x(32, 1.0f);
  x[9] = std::numeric_limits<float>::quiet_NaN();
  encode_block<Config>(x, kpc::errc::non_finite);
  x[9] = std::numeric_limits<float>::infinity();
  encode_block<Config>(x, kpc::errc::non_finite);
  x[9] = -3e38f;  // finite, but the fp16 scale cannot hold it
  encode_block<Config>(x, kpc::errc::out_of_range);

  auto block = encode_block<Config>(constant);
  block[1] = std::byte{0xff};  // d = NaN
  std::vector<float> out(32, 7.0f);
  CHECK(codec<Config>::decode(block.data(), out.data()) == kpc::errc::corrupt_data);
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 7.0f; }));
}

TEST_CASE("q4_1 ties keep the first value, as ggml's loop does: the sign of a zero minimum") {
  std::vector<float> x(32, 1.0f);
  x[3] = -0.0f;
  x[7] = 0.0f;
  CHECK(kpc_test::hex(encode_block<v_config<4>>(x).data() + 2, 2) == "00 80");
  std::swap(x[3], x[7]);
  CHECK(kpc_test::hex(encode_block<v_config<4>>(x).data() + 2, 2) == "00 00");
  // An all-zero q4_0 block: the largest magnitude stays the initial +0, so d = 0 / -8 = -0.
  CHECK(kpc_test::hex(encode_block<q4_0_config>(std::vector<float>(32, 0.0f)).data(), 2) == "00 80");
}

TEST_CASE("q8_0 on tiny values: d is an fp16 subnormal, so its rounding step is absolute") {
  // x ~ N(0, 1e-3): d = max|x| / 127 ~ 2e-5 lies below fp16's normal range (6.1e-5), where fp16
  // steps are 2^-24. Codes use the unrounded d, so |x - x'| <= d/2 + 127 * 2^-25 (+ f32 slack).
  auto gen = kpc_test::rng(9);
  for (int trial = 0; trial < 100; ++trial) {
    const auto x = kpc_test::gaussian(32, gen, 1e-3f);
    const auto y = decode_block<v_config<8>>(encode_block<v_config<8>>(x));
    const double amax = std::fabs(*std::max_element(x.begin(), x.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }));
    for (int j = 0; j < 32; ++j)
      REQUIRE(std::fabs(static_cast<double>(x[j]) - y[j]) <= amax / 127 / 2 + 127 * std::ldexp(1.0, -25) + amax * std::ldexp(1.0, -20));
  }
}
