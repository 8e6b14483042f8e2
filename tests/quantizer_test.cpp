// SPDX-License-Identifier: MIT
// kpc/quantizer.hpp: the public API over whole slabs: shapes, buffers, element types, strides,
// quality on Gaussian and Qwen-style offset data, fused kernels and every error path.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <kpc/quantizer.hpp>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "support.hpp"

namespace {

using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;
using V4 = kpc::Quantizer<4, kpc::PerToken<32>>;

// Every format with its Gaussian relative-MSE bound (measured ~12% below on 4096 x 128 slabs:
// K4 G32 6.1e-3, G64 8.0e-3, G128 9.9e-3; K3 2.8e-2 / 4.6e-2 at G128; K2 0.154 / 0.250;
// q8_0 2.6e-5, q4_1 6.1e-3, V3 2.8e-2, q4_0 7.4e-3; f16 rows ~8e-8, bounded at 1e-5).
template <class Q, int Milli>
struct format_case {
  using quantizer = Q;
  static constexpr double gaussian_mse = Milli / 1e5;  // Milli in units of 1e-5
};
#define KPC_FORMATS                                                                                      \
  format_case<kpc::Quantizer<4, kpc::PerChannel<32>>, 700>, format_case<kpc::Quantizer<4, kpc::PerChannel<64>>, 920>, \
      format_case<kpc::Quantizer<4, kpc::PerChannel<128>>, 1150>,                                         \
      format_case<kpc::Quantizer<3, kpc::PerChannel<32>>, 3200>,                                          \
      format_case<kpc::Quantizer<3, kpc::PerChannel<64>>, 4200>,                                          \
      format_case<kpc::Quantizer<3, kpc::PerChannel<128>>, 5200>,                                         \
      format_case<kpc::Quantizer<2, kpc::PerChannel<32>>, 17500>,                                         \
      format_case<kpc::Quantizer<2, kpc::PerChannel<64>>, 23000>,                                         \
      format_case<kpc::Quantizer<2, kpc::PerChannel<128>>, 28000>, format_case<kpc::q8_0, 4>,             \
      format_case<kpc::q4_1, 700>, format_case<kpc::Quantizer<3, kpc::PerToken<32>>, 3200>,              \
      format_case<kpc::q4_0, 850>, format_case<kpc::f16_rows, 1>

template <class Layout>
struct tile_tokens_of : std::integral_constant<int, 0> {};
template <int G>
struct tile_tokens_of<kpc::PerChannel<G>> : std::integral_constant<int, G> {};

// Tokens per K tile, or 0 for per-token formats.
template <class Q>
constexpr int tile_tokens = tile_tokens_of<typename Q::layout>::value;
template <class Q>
constexpr bool per_channel = tile_tokens<Q> != 0;

template <class Q>
std::vector<std::byte> encode(const std::vector<float>& x, std::size_t tokens, std::size_t channels) {
  std::vector<std::byte> bytes(Q::encoded_bytes(tokens, channels));
  Q::encode(x.data(), tokens, channels, bytes.data());
  return bytes;
}

template <class Q>
std::vector<float> decode(const std::vector<std::byte>& bytes, std::size_t tokens, std::size_t channels) {
  std::vector<float> x(tokens * channels);
  Q::decode(bytes.data(), tokens, channels, x.data());
  return x;
}

template <class F>
kpc::errc error_of(F&& call) {
  try {
    call();
  } catch (const kpc::error& e) {
    CHECK(std::string(e.what()).rfind("kpc: ", 0) == 0);
    return e.code();
  }
  return kpc::errc::ok;
}

}  // namespace

TEST_CASE("encoded_bytes: whole tiles for K, whole blocks per row for V") {
  CHECK(K4::encoded_bytes(0, 128) == 0);
  CHECK(K4::encoded_bytes(1, 128) == 2310);
  CHECK(K4::encoded_bytes(32, 128) == 2310);
  CHECK(K4::encoded_bytes(33, 128) == 2 * 2310);
  CHECK(K4::tile_bytes(1) == 6 + 2 + 16);
  CHECK(kpc::Quantizer<2, kpc::PerChannel<128>>::encoded_bytes(129, 3) == 2 * (6 + 6 + 3 * 32));
  CHECK(V4::encoded_bytes(10, 128) == 10 * 4 * 20);
  CHECK(kpc::q8_0::row_bytes(64) == 68);
  CHECK(kpc::q4_0::encoded_bytes(3, 32) == 54);
  CHECK(kpc::Quantizer<3, kpc::PerToken<32>>::bits_per_value() == 4.0);
  CHECK(std::round(K4::bits_per_value(128) * 100) == 451);
}

TEST_CASE("invalid shapes, null pointers and small buffers are refused with their code") {
  std::vector<float> x(64 * 64, 1.0f), out(64 * 64);
  std::vector<std::byte> bytes(K4::encoded_bytes(64, 64));
  using e = kpc::errc;
  CHECK(error_of([&] { K4::encoded_bytes(1, 0); }) == e::invalid_shape);
  CHECK(error_of([&] { K4::encoded_bytes(1, kpc::format::max_channels + 1); }) == e::invalid_shape);
  CHECK(error_of([&] { V4::encoded_bytes(1, 48); }) == e::invalid_shape);
  CHECK(error_of([&] { V4::encoded_bytes(1, 0); }) == e::invalid_shape);
  CHECK(error_of([&] { K4::encoded_bytes(std::numeric_limits<std::size_t>::max(), 64); }) == e::invalid_shape);
  CHECK(error_of([&] { V4::encoded_bytes(std::numeric_limits<std::size_t>::max() / 2, 64); }) == e::invalid_shape);
  // A negative int converted to size_t is a slab no buffer can hold, even at 2 bits and 1 channel.
  const auto minus_one = static_cast<std::size_t>(-1);
  CHECK(error_of([&] { kpc::Quantizer<2, kpc::PerChannel<32>>::encoded_bytes(minus_one, 1); }) == e::invalid_shape);
  CHECK(error_of([&] { kpc::Quantizer<2, kpc::PerChannel<32>>::encode(x.data(), minus_one, 1, bytes.data()); }) ==
        e::invalid_shape);
  CHECK(error_of([&] { V4::decode(bytes.data(), bytes.size(), 2, 64, out.data(), minus_one / 4); }) == e::invalid_shape);
  CHECK(error_of([&] { K4::encode(x.data(), 63, 64, 64, bytes.data(), bytes.size()); }) == e::invalid_shape);
  CHECK(error_of([&] { K4::encode(x.data(), 64, 64, 64, bytes.data(), bytes.size() - 1); }) == e::buffer_too_small);
  CHECK(error_of([&] { K4::encode<float>(nullptr, 64, 64, bytes.data()); }) == e::null_pointer);
  CHECK(error_of([&] { K4::encode(x.data(), 64, 64, nullptr); }) == e::null_pointer);
  CHECK(error_of([&] { K4::decode(bytes.data(), bytes.size() - 1, 64, 64, out.data(), 64); }) == e::buffer_too_small);
  CHECK(error_of([&] { K4::decode(bytes.data(), bytes.size(), 64, 64, out.data(), 10); }) == e::invalid_shape);
  CHECK(error_of([&] { K4::scores(nullptr, bytes.data(), 64, 64, out.data()); }) == e::null_pointer);
  CHECK(error_of([&] { V4::encode(x.data(), 64, 2, 64, bytes.data(), 10); }) == e::buffer_too_small);
  CHECK(error_of([&] { V4::accumulate(x.data(), bytes.data(), 1, 64, 64, out.data()); }) == e::buffer_too_small);
  CHECK(error_of([&] { V4::scores(x.data(), bytes.data(), 2, 64, nullptr); }) == e::null_pointer);
  // Zero tokens is an empty slab: nothing to read or write, so null buffers are fine.
  CHECK(error_of([&] { K4::encode<float>(nullptr, 0, 64, nullptr); }) == e::ok);
  CHECK(error_of([&] { V4::decode<float>(nullptr, 0, 64, nullptr); }) == e::ok);
  CHECK(error_of([&] { V4::accumulate(nullptr, nullptr, 0, 64, out.data()); }) == e::ok);
}

TEST_CASE("a refused call writes nothing; a successful one writes exactly the bytes the shape needs") {
  auto gen = kpc_test::rng(11);
  const auto x = kpc_test::gaussian(33 * 96, gen);
  const std::size_t needed = K4::encoded_bytes(33, 96);
  std::vector<std::byte> bytes(needed + 64, std::byte{0xA5});
  CHECK(error_of([&] { K4::encode(x.data(), 96, 33, 96, bytes.data(), needed - 1); }) == kpc::errc::buffer_too_small);
  CHECK(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0xA5}; }));
  K4::encode(x.data(), 96, 33, 96, bytes.data(), needed);
  CHECK(std::all_of(bytes.begin() + needed, bytes.end(), [](std::byte b) { return b == std::byte{0xA5}; }));
  // Strided decode leaves the gaps between rows alone.
  std::vector<float> out(33 * 100, -9.0f);
  K4::decode(bytes.data(), needed, 33, 96, out.data(), 100);
  for (std::size_t t = 0; t < 33; ++t)
    for (std::size_t c = 96; c < 100; ++c) REQUIRE(out[t * 100 + c] == -9.0f);
}

TEST_CASE_TEMPLATE("every format: strided rows, f16 in and out, partial tiles, smallest and largest channels", Case,
                   KPC_FORMATS) {
  using Q = typename Case::quantizer;
  auto gen = kpc_test::rng(500 + sizeof(Q) + Q::bits * 7 + tile_tokens<Q>);
  const std::size_t min_channels = per_channel<Q> ? 1 : 32;
  for (std::size_t channels : {min_channels, std::size_t{96}, std::size_t{160}}) {
    for (std::size_t tokens : {std::size_t{1}, std::size_t{31}, std::size_t{32}, std::size_t{33}, std::size_t{129}}) {
      CAPTURE(channels);
      CAPTURE(tokens);
      const auto x = kpc_test::offset_rows(tokens, channels, {0}, gen);
      const auto bytes = encode<Q>(x, tokens, channels);

      // Strided input and output give the same bytes and values as contiguous rows.
      const std::size_t stride = channels + 3;
      std::vector<float> strided(tokens * stride, 1e9f);
      for (std::size_t t = 0; t < tokens; ++t) std::copy_n(x.begin() + t * channels, channels, strided.begin() + t * stride);
      std::vector<std::byte> strided_bytes(bytes.size());
      Q::encode(strided.data(), stride, tokens, channels, strided_bytes.data(), strided_bytes.size());
      REQUIRE(strided_bytes == bytes);
      const auto decoded = decode<Q>(bytes, tokens, channels);
      std::vector<float> strided_out(tokens * stride, 5.0f);
      Q::decode(bytes.data(), bytes.size(), tokens, channels, strided_out.data(), stride);
      for (std::size_t t = 0; t < tokens; ++t)
        REQUIRE(std::equal(decoded.begin() + t * channels, decoded.begin() + (t + 1) * channels,
                           strided_out.begin() + t * stride));

      // f16 input encodes like the same values in f32; f16 output is the f32 result rounded.
      std::vector<kpc::half> x_half(x.size());
      std::vector<float> x_rounded(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) {
        x_half[i] = kpc::half(x[i]);
        x_rounded[i] = static_cast<float>(x_half[i]);
      }
      std::vector<std::byte> half_bytes(bytes.size());
      Q::encode(x_half.data(), tokens, channels, half_bytes.data());
      REQUIRE(half_bytes == encode<Q>(x_rounded, tokens, channels));
      std::vector<kpc::half> out_half(x.size());
      Q::decode(bytes.data(), tokens, channels, out_half.data());
      for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(out_half[i].bits == kpc::half(decoded[i]).bits);
    }
  }
  // The largest channel count, one token and a partial tile.
  const std::size_t widest = kpc::format::max_channels;
  const auto wide = kpc_test::gaussian(widest * 2, gen);
  const auto wide_decoded = decode<Q>(encode<Q>(wide, 2, widest), 2, widest);
  CHECK(kpc_test::relative_mse(wide, wide_decoded, widest) < 4 * Case::gaussian_mse);
}

TEST_CASE_TEMPLATE("every format: relative MSE on Gaussian data stays under its bound", Case, KPC_FORMATS) {
  using Q = typename Case::quantizer;
  auto gen = kpc_test::rng(600 + Q::bits * 13 + tile_tokens<Q>);
  const std::size_t tokens = 1024, channels = 128;
  const auto x = kpc_test::gaussian(tokens * channels, gen);
  const double mse = kpc_test::relative_mse(x, decode<Q>(encode<Q>(x, tokens, channels), tokens, channels), channels);
  MESSAGE("bits " << Q::bits << ": relative MSE " << mse);
  CHECK(mse < Case::gaussian_mse);
}

TEST_CASE("offset channels: per-channel K4 keeps the other channels at the Gaussian level, q4_0 does not") {
  // Four channels at 20 + 5 N(0,1), as Qwen2's K bias makes them; one in each 32-channel block, so
  // every q4_0 block has an outlier setting its scale.
  auto gen = kpc_test::rng(700);
  const std::size_t tokens = 1024, channels = 128;
  const std::vector<std::size_t> offset = {5, 40, 77, 120};
  const auto x = kpc_test::offset_rows(tokens, channels, offset, gen);
  std::vector<bool> normal(channels, true);
  for (std::size_t c : offset) normal[c] = false;
  const double k4 = kpc_test::relative_mse(x, decode<K4>(encode<K4>(x, tokens, channels), tokens, channels), channels, normal);
  const double q40 = kpc_test::relative_mse(
      x, decode<kpc::q4_0>(encode<kpc::q4_0>(x, tokens, channels), tokens, channels), channels, normal);
  const double q41 = kpc_test::relative_mse(
      x, decode<kpc::q4_1>(encode<kpc::q4_1>(x, tokens, channels), tokens, channels), channels, normal);
  MESSAGE("non-offset channels, relative MSE: K4 per channel " << k4 << ", q4_0 " << q40 << ", q4_1 " << q41);
  CHECK(k4 <= 8e-3);
  CHECK(q40 > 0.1);
  CHECK(q41 > 0.1);
}

TEST_CASE("error never grows with more bits") {
  auto gen = kpc_test::rng(800);
  const std::size_t tokens = 256, channels = 64;
  const auto x = kpc_test::offset_rows(tokens, channels, {3}, gen);
  auto mse = [&](auto q) {
    using Q = decltype(q);
    return kpc_test::relative_mse(x, decode<Q>(encode<Q>(x, tokens, channels), tokens, channels), channels);
  };
  CHECK(mse(kpc::Quantizer<2, kpc::PerChannel<64>>{}) > mse(kpc::Quantizer<3, kpc::PerChannel<64>>{}));
  CHECK(mse(kpc::Quantizer<3, kpc::PerChannel<64>>{}) > mse(kpc::Quantizer<4, kpc::PerChannel<64>>{}));
  CHECK(mse(kpc::Quantizer<4, kpc::PerChannel<128>>{}) > mse(kpc::Quantizer<4, kpc::PerChannel<32>>{}));
  CHECK(mse(kpc::Quantizer<3, kpc::PerToken<32>>{}) > mse(kpc::q4_1{}));
  CHECK(mse(kpc::q4_1{}) > mse(kpc::q8_0{}));
}

TEST_CASE_TEMPLATE("fused scores (and accumulate) match f64 over the decoded values", Case, KPC_FORMATS) {
  using Q = typename Case::quantizer;
  auto gen = kpc_test::rng(900 + Q::bits * 17 + tile_tokens<Q>);
  const std::size_t channels = 128;
  for (std::size_t tokens : {std::size_t{1}, std::size_t{45}, std::size_t{300}}) {
    const auto x = kpc_test::offset_rows(tokens, channels, {9, 100}, gen);
    const auto bytes = encode<Q>(x, tokens, channels);
    const auto decoded = decode<Q>(bytes, tokens, channels);
    const auto q = kpc_test::gaussian(channels, gen);
    std::vector<float> scores(tokens);
    Q::scores(q.data(), bytes.data(), tokens, channels, scores.data());
    double scale_sum = 0.0;  // bound the error by sum |q| * (|x| + largest |x| of the slab)
    const double largest = std::fabs(*std::max_element(decoded.begin(), decoded.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }));
    for (float v : q) scale_sum += std::fabs(v);
    for (std::size_t t = 0; t < tokens; ++t) {
      double exact = 0.0, magnitude = 0.0;
      for (std::size_t c = 0; c < channels; ++c) {
        exact += static_cast<double>(q[c]) * decoded[t * channels + c];
        magnitude += std::fabs(q[c]) * std::fabs(decoded[t * channels + c]);
      }
      REQUIRE(std::fabs(scores[t] - exact) <= kpc_test::dot_tolerance(channels, magnitude + scale_sum * largest));
    }
    if constexpr (!per_channel<Q>) {
      const auto w = kpc_test::gaussian(tokens, gen);
      std::vector<float> out(channels, 1.0f);
      Q::accumulate(w.data(), bytes.data(), tokens, channels, out.data());
      for (std::size_t c = 0; c < channels; ++c) {
        double exact = 1.0, magnitude = 1.0;
        for (std::size_t t = 0; t < tokens; ++t) {
          exact += static_cast<double>(w[t]) * decoded[t * channels + c];
          magnitude += std::fabs(w[t]) * (std::fabs(decoded[t * channels + c]) + largest);
        }
        REQUIRE(std::fabs(out[c] - exact) <= kpc_test::dot_tolerance(tokens, magnitude));
      }
    }
  }
}

TEST_CASE_TEMPLATE("group kernels: each query head as the one-head kernel gives it, within float rounding", Case,
                   KPC_FORMATS) {
  using Q = typename Case::quantizer;
  auto gen = kpc_test::rng(950 + Q::bits * 17 + tile_tokens<Q>);
  const std::size_t channels = 96, tokens = 77, group = 5;
  const auto x = kpc_test::offset_rows(tokens, channels, {9, 50}, gen);
  const auto bytes = encode<Q>(x, tokens, channels);
  const auto decoded = decode<Q>(bytes, tokens, channels);
  double largest = 0.0;
  for (float v : decoded) largest = std::max(largest, static_cast<double>(std::fabs(v)));
  const auto q = kpc_test::gaussian(group * channels, gen);
  std::vector<float> together(group * tokens, -1.0f), alone(tokens);
  Q::scores_group(q.data(), group, bytes.data(), bytes.size(), tokens, channels, together.data());
  for (std::size_t h = 0; h < group; ++h) {
    Q::scores(q.data() + h * channels, bytes.data(), tokens, channels, alone.data());
    double q_sum = 0.0;
    for (std::size_t c = 0; c < channels; ++c) q_sum += std::fabs(q[h * channels + c]);
    for (std::size_t t = 0; t < tokens; ++t)
      REQUIRE(std::fabs(together[h * tokens + t] - alone[t]) <= kpc_test::dot_tolerance(channels, 4 * q_sum * largest));
  }
  Q::scores_group(q.data(), 1, bytes.data(), bytes.size(), tokens, channels, together.data());  // one head: the same kernel
  Q::scores(q.data(), bytes.data(), tokens, channels, alone.data());
  CHECK(std::equal(alone.begin(), alone.end(), together.begin()));
  std::vector<float> untouched(group * tokens, 3.0f);
  Q::scores_group(q.data(), 0, bytes.data(), bytes.size(), tokens, channels, untouched.data());
  Q::scores_group(q.data(), group, bytes.data(), bytes.size(), 0, channels, untouched.data());
  CHECK(std::all_of(untouched.begin(), untouched.end(), [](float v) { return v == 3.0f; }));
  const auto code_of = [](auto&& call) {
    try {
      call();
    } catch (const kpc::error& e) {
      return e.code();
    }
    return kpc::errc::ok;
  };
  CHECK(code_of([&] { Q::scores_group(q.data(), group, bytes.data(), bytes.size() - 1, tokens, channels, together.data()); }) ==
        kpc::errc::buffer_too_small);
  CHECK(code_of([&] { Q::scores_group(nullptr, group, bytes.data(), bytes.size(), tokens, channels, together.data()); }) ==
        kpc::errc::null_pointer);
  if constexpr (!per_channel<Q>) {
    const auto w = kpc_test::gaussian(group * tokens, gen);
    std::vector<float> acc_together(group * channels, 0.25f), acc_alone(channels);
    Q::accumulate_group(w.data(), group, bytes.data(), bytes.size(), tokens, channels, acc_together.data());
    for (std::size_t h = 0; h < group; ++h) {
      std::fill(acc_alone.begin(), acc_alone.end(), 0.25f);
      Q::accumulate(w.data() + h * tokens, bytes.data(), tokens, channels, acc_alone.data());
      double w_sum = 0.0;
      for (std::size_t t = 0; t < tokens; ++t) w_sum += std::fabs(w[h * tokens + t]);
      for (std::size_t c = 0; c < channels; ++c)
        REQUIRE(std::fabs(acc_together[h * channels + c] - acc_alone[c]) <=
                kpc_test::dot_tolerance(tokens, 2 * (0.25 + w_sum * 2 * largest)));
    }
    CHECK(code_of([&] { Q::accumulate_group(w.data(), group, bytes.data(), bytes.size(), tokens, channels, nullptr); }) ==
          kpc::errc::null_pointer);
  }
}

TEST_CASE_TEMPLATE("every format: NaN and Inf are refused, so are values beyond fp16 metadata", Case, KPC_FORMATS) {
  using Q = typename Case::quantizer;
  const std::size_t tokens = 70, channels = 64;
  std::vector<float> x(tokens * channels, 0.5f);
  std::vector<std::byte> bytes(Q::encoded_bytes(tokens, channels));
  auto try_encode = [&] { Q::encode(x.data(), tokens, channels, bytes.data()); };
  x[65 * channels + 3] = std::numeric_limits<float>::quiet_NaN();
  CHECK(error_of(try_encode) == kpc::errc::non_finite);
  try {
    try_encode();
  } catch (const kpc::error& e) {
    // Names where: the first token of the tile (K) or the row (V) holding token 65.
    const std::size_t first = per_channel<Q> ? 65 / tile_tokens<Q> * tile_tokens<Q> : 65;
    CHECK(std::string(e.what()).find("at token " + std::to_string(first) + ")") != std::string::npos);
  }
  x[65 * channels + 3] = -std::numeric_limits<float>::infinity();
  CHECK(error_of(try_encode) == kpc::errc::non_finite);
  x[65 * channels + 3] = 3e38f;
  CHECK(error_of(try_encode) == kpc::errc::out_of_range);
  x[65 * channels + 3] = -3e38f;
  CHECK(error_of(try_encode) == kpc::errc::out_of_range);
  x[65 * channels + 3] = 0.5f;
  CHECK(error_of(try_encode) == kpc::errc::ok);
  // Corrupt bytes: a non-finite fp16 field in the last tile or row.
  const std::size_t last = Q::encoded_bytes(tokens, channels) - Q::encoded_bytes(1, channels);  // last tile or row
  bytes[last + 1] = std::byte{0x7c};
  std::vector<float> out(tokens * channels);
  CHECK(error_of([&] { Q::decode(bytes.data(), tokens, channels, out.data()); }) == kpc::errc::corrupt_data);
}

TEST_CASE("q4_0 / q4_1 / q8_0 aliases name the ggml formats") {
  CHECK(std::is_same_v<kpc::q4_1, kpc::Quantizer<4, kpc::PerToken<32>>>);
  CHECK(std::is_same_v<kpc::q8_0::layout, kpc::PerToken<32>>);
  CHECK(kpc::q4_0::bits == 4);
  CHECK(kpc::q4_0::row_bytes(32) == 18);
}

TEST_CASE("decode refuses a V row with a bad block whole: none of its values is written") {
  const std::size_t tokens = 3, channels = 96;  // three blocks per row
  auto gen = kpc_test::rng(1201);
  const std::vector<float> x = kpc_test::gaussian(tokens * channels, gen);
  std::vector<std::byte> bytes(V4::encoded_bytes(tokens, channels));
  V4::encode(x.data(), tokens, channels, bytes.data());
  const std::size_t row = V4::row_bytes(channels);
  bytes[row + 2 * 20 + 1] = std::byte{0x7C};  // row 1, block 2: d becomes Inf (fp16 0x7Cxx)
  std::vector<float> out(tokens * channels, -7.0f);
  try {
    V4::decode(bytes.data(), tokens, channels, out.data());
    FAIL("a block with Inf fields decoded");
  } catch (const kpc::error& e) {
    CHECK(e.code() == kpc::errc::corrupt_data);
  }
  for (std::size_t c = 0; c < channels; ++c) {
    CHECK(out[c] != -7.0f);              // row 0 decoded
    CHECK(out[channels + c] == -7.0f);   // row 1 untouched, its good blocks included
  }
}

TEST_CASE("sized forms: a span shorter than the shape is refused before anything is read or written") {
  const std::size_t tokens = 40, channels = 64;
  std::vector<float> x(tokens * channels, 0.25f), short_x(tokens * channels - 1, 0.25f), out(tokens * channels);
  std::vector<std::byte> bytes(K4::encoded_bytes(tokens, channels)), few(bytes.size() - 1);
  const auto code = [](auto&& call) {
    try {
      call();
    } catch (const kpc::error& e) {
      return e.code();
    }
    return kpc::errc::ok;
  };
  CHECK(code([&] { K4::encode(short_x, tokens, channels, bytes); }) == kpc::errc::buffer_too_small);
  CHECK(code([&] { K4::encode(x, tokens, channels, few); }) == kpc::errc::buffer_too_small);
  K4::encode(x, tokens, channels, bytes);
  CHECK(code([&] { K4::decode(bytes, tokens, channels, kpc::span<float>(out.data(), out.size() - 1)); }) ==
        kpc::errc::buffer_too_small);
  K4::decode(bytes, tokens, channels, out);
  std::vector<float> scores(tokens - 1);
  CHECK(code([&] { K4::scores(x, bytes, tokens, channels, scores); }) == kpc::errc::buffer_too_small);
  std::vector<std::byte> v_bytes(V4::encoded_bytes(tokens, channels));
  V4::encode(x, tokens, channels, v_bytes);
  std::vector<float> w(tokens, 0.1f), acc(channels - 1);
  CHECK(code([&] { V4::accumulate(w, v_bytes, tokens, channels, acc); }) == kpc::errc::buffer_too_small);
}
