// SPDX-License-Identifier: MIT
// kpc/half.hpp: binary16 conversions, exhaustively where the space allows.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <kpc/half.hpp>
#include <limits>

namespace {
float bits_to_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
bool is_nan_half(std::uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0; }
}  // namespace

TEST_CASE("fp16 to fp32 is exact for every finite binary16 value") {
  // Independent definition: (-1)^s * 2^(e-15) * (1 + m/1024), or 2^-14 * m/1024 for e = 0.
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const unsigned e = (h >> 10) & 0x1F, m = h & 0x3FF;
    if (e == 0x1F) continue;
    const double magnitude = e == 0 ? std::ldexp(m / 1024.0, -14) : std::ldexp(1.0 + m / 1024.0, static_cast<int>(e) - 15);
    const double expected = (h & 0x8000u) ? -magnitude : magnitude;
    REQUIRE(static_cast<double>(kpc::fp16_bits_to_fp32(bits)) == expected);
    REQUIRE(std::signbit(kpc::fp16_bits_to_fp32(bits)) == ((h & 0x8000u) != 0));
  }
}

TEST_CASE("fp32 -> fp16 -> fp32 returns every binary16 value unchanged") {
  for (std::uint32_t h = 0; h < 0x10000u; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    if (is_nan_half(bits)) continue;
    REQUIRE(kpc::fp32_to_fp16_bits(kpc::fp16_bits_to_fp32(bits)) == bits);
  }
}

TEST_CASE("fp32 -> fp16 rounds to nearest, ties to even, at every midpoint") {
  // Rounding is monotone, so checking each pair of neighbours at, just below and just above their
  // midpoint (exact in f32) proves round-to-nearest-even everywhere in the finite range.
  for (std::uint16_t lo = 0; lo < 0x7BFF; ++lo) {
    const std::uint16_t hi = static_cast<std::uint16_t>(lo + 1);
    const float a = kpc::fp16_bits_to_fp32(lo), b = kpc::fp16_bits_to_fp32(hi);
    const float mid = static_cast<float>((static_cast<double>(a) + static_cast<double>(b)) / 2.0);
    REQUIRE(static_cast<double>(mid) == (static_cast<double>(a) + static_cast<double>(b)) / 2.0);
    const std::uint16_t even = (lo & 1u) ? hi : lo;
    CHECK(kpc::fp32_to_fp16_bits(mid) == even);
    CHECK(kpc::fp32_to_fp16_bits(std::nextafter(mid, 0.0f)) == lo);
    CHECK(kpc::fp32_to_fp16_bits(std::nextafter(mid, 1e9f)) == hi);
    CHECK(kpc::fp32_to_fp16_bits(-mid) == (even | 0x8000u));
  }
}

TEST_CASE("fp32 -> fp16 at the edges: overflow, underflow, zero, infinities, NaN") {
  CHECK(kpc::fp32_to_fp16_bits(1.0f) == 0x3C00);
  CHECK(kpc::fp32_to_fp16_bits(-2.0f) == 0xC000);
  CHECK(kpc::fp32_to_fp16_bits(1.0f / 3.0f) == 0x3555);
  CHECK(kpc::fp32_to_fp16_bits(65504.0f) == 0x7BFF);
  CHECK(kpc::fp32_to_fp16_bits(65519.996f) == 0x7BFF);       // just below the midpoint to 2^16
  CHECK(kpc::fp32_to_fp16_bits(65520.0f) == 0x7C00);         // the midpoint ties to even: Inf
  CHECK(kpc::fp32_to_fp16_bits(-3e38f) == 0xFC00);
  CHECK(kpc::fp32_to_fp16_bits(std::ldexp(1.0f, -24)) == 0x0001);          // smallest subnormal
  CHECK(kpc::fp32_to_fp16_bits(std::ldexp(1.0f, -25)) == 0x0000);          // half of it: ties to even 0
  CHECK(kpc::fp32_to_fp16_bits(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(kpc::fp32_to_fp16_bits(std::ldexp(3.0f, -25)) == 0x0002);          // 1.5 units: ties to even 2
  CHECK(kpc::fp32_to_fp16_bits(std::ldexp(1023.5f, -24)) == 0x0400);       // rounds up into the normals
  CHECK(kpc::fp32_to_fp16_bits(bits_to_float(0x00000001u)) == 0x0000);      // f32 denormal
  CHECK(kpc::fp32_to_fp16_bits(-0.0f) == 0x8000);
  CHECK(kpc::fp32_to_fp16_bits(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(kpc::fp32_to_fp16_bits(-std::numeric_limits<float>::infinity()) == 0xFC00);
  CHECK(is_nan_half(kpc::fp32_to_fp16_bits(std::numeric_limits<float>::quiet_NaN())));
  CHECK(is_nan_half(kpc::fp32_to_fp16_bits(bits_to_float(0x7F800001u))));  // signalling NaN stays NaN
  CHECK(std::isnan(kpc::fp16_bits_to_fp32(0x7E00)));
  CHECK(kpc::fp16_bits_to_fp32(0x7C00) == std::numeric_limits<float>::infinity());
}

TEST_CASE("fp16_bits_finite separates finite values from Inf and NaN") {
  CHECK(kpc::fp16_bits_finite(0x7BFF));
  CHECK(kpc::fp16_bits_finite(0x8001));
  CHECK_FALSE(kpc::fp16_bits_finite(0x7C00));
  CHECK_FALSE(kpc::fp16_bits_finite(0xFC00));
  CHECK_FALSE(kpc::fp16_bits_finite(0x7E01));
}

TEST_CASE("kpc::half stores the binary16 bits and converts both ways") {
  const kpc::half h(0.1f);
  CHECK(h.bits == 0x2E66);
  CHECK(static_cast<float>(h) == kpc::fp16_bits_to_fp32(0x2E66));
  CHECK(kpc::half::from_bits(0xBC00).bits == 0xBC00);
  CHECK(kpc::to_float(kpc::half::from_bits(0xBC00)) == -1.0f);
  CHECK(kpc::from_float<kpc::half>(2.0f).bits == 0x4000);
  CHECK(kpc::from_float<float>(2.5f) == 2.5f);
}
