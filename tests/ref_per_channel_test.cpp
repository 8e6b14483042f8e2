// SPDX-License-Identifier: MIT
// kpc/ref/per_channel.hpp: the K format's reference, against hand-worked bytes and its properties.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <kpc/ref/per_channel.hpp>
#include <limits>
#include <vector>

#include "support.hpp"

namespace {

template <int Bits, int G>
struct k_config {
  static constexpr int bits = Bits;
  static constexpr int group = G;
  using tile = kpc::format::k_tile<Bits, G>;
};

template <int Bits, int G>
std::vector<std::byte> encode_tile(const std::vector<float>& rows, int tokens, std::size_t channels,
                                   kpc::errc expected = kpc::errc::ok) {
  std::vector<std::byte> tile(kpc::format::k_tile<Bits, G>::bytes(channels));
  CHECK(kpc::ref::encode_k_tile<Bits, G>(rows.data(), channels, tokens, channels, tile.data()) == expected);
  return tile;
}

template <int Bits, int G>
std::vector<float> decode_tile(const std::vector<std::byte>& tile, int tokens, std::size_t channels) {
  std::vector<float> out(static_cast<std::size_t>(tokens) * channels);
  CHECK(kpc::ref::decode_k_tile<Bits, G>(tile.data(), tokens, channels, out.data(), channels) == kpc::errc::ok);
  return out;
}

}  // namespace

TEST_CASE("K4 G32 golden bytes: 3 tokens x 2 channels, worked out by hand") {
  // Channel 0: -1, 13.94140625, 6.470703125. mn = -1, mx - mn = 3825/256, scale = 255/256.
  // Channel 1: 2.984375, 10.484375, 6.25.    mn = 2.984375, mx - mn = 7.5, scale = 0.5.
  // ss = (255/256)/255 = 2^-8 -> fp16 0x1C00; zmin = -1 -> 0xBC00; sz = (2.984375+1)/255 = 2^-6 -> 0x2400.
  // qs = trunc(255 + 0.5) = 255, trunc(128 + 0.5) = 128; qz = 0, trunc(255 + 0.5) = 255.
  // scale' = 255/256, 0.5; zero' = -1, -1 + 255/64 = 2.984375 (exact: the inputs are dyadic).
  // Codes: ch0 (0 + .5) -> 0, (15 + .5) -> 15, (7.5 + .5) -> 8 (half rounds up);
  //        ch1 0 -> 0, 15 -> 15, (6.53125 + .5) -> 7. Channel-major, nibble j | j+16 << 4.
  const std::vector<float> rows = {-1.0f, 2.984375f, 13.94140625f, 10.484375f, 6.470703125f, 6.25f};
  const auto tile = encode_tile<4, 32>(rows, 3, 2);
  auto expected = kpc_test::bytes({0x00, 0x1c, 0x00, 0xbc, 0x00, 0x24, 0xff, 0x80, 0x00, 0xff, 0x00, 0x0f, 0x08});
  kpc_test::append(expected, 13, 0);
  for (unsigned b : {0x00, 0x0f, 0x07}) expected.push_back(static_cast<std::byte>(b));
  kpc_test::append(expected, 13, 0);
  CHECK(kpc_test::hex(tile) == kpc_test::hex(expected));
  // Decoded: code * scale' + zero'.
  const std::vector<float> decoded = decode_tile<4, 32>(tile, 3, 2);
  const std::vector<float> want = {-1.0f, 2.984375f, 13.94140625f, 10.484375f, 6.96875f, 6.484375f};
  CHECK(decoded == want);
}

TEST_CASE("K3 G32 golden bytes: one channel holding 0..7 four times") {
  // mn = 0, mx = 7, scale = 1 -> ss = 1/255 -> fp16 0x1C04 (2^-8 * 1028/1024); zmin = 0 -> 0x0000;
  // all zeros equal, so sz = 1.0 -> 0x3C00. qs = 255, qz = 0. scale' = 255 * 0x1C04 = 0.99998474,
  // zero' = 0, so code t = t % 8. Eight 3-bit codes 0..7 LSB-first: 0xFAC688 -> 88 c6 fa.
  std::vector<float> rows(32);
  for (int t = 0; t < 32; ++t) rows[t] = static_cast<float>(t % 8);
  const auto tile = encode_tile<3, 32>(rows, 32, 1);
  CHECK(kpc_test::hex(tile) == "04 1c 00 00 00 3c ff 00 88 c6 fa 88 c6 fa 88 c6 fa 88 c6 fa");
  const auto decoded = decode_tile<3, 32>(tile, 32, 1);
  for (int t = 0; t < 32; ++t) CHECK(decoded[t] == static_cast<float>(t % 8) * (255.0f * 1028.0f / 262144.0f));
}

TEST_CASE("K2 G32 golden bytes: code t = t / 8 packs 0,1,2,3 into every byte") {
  // Same supers as K3 (scale 3/3 = 1). Byte j holds codes j, j+8, j+16, j+24 = 0,1,2,3: 0b11100100.
  std::vector<float> rows(32);
  for (int t = 0; t < 32; ++t) rows[t] = static_cast<float>(t / 8);
  const auto tile = encode_tile<2, 32>(rows, 32, 1);
  CHECK(kpc_test::hex(tile) == "04 1c 00 00 00 3c ff 00 e4 e4 e4 e4 e4 e4 e4 e4");
}

TEST_CASE("K4 G64 golden bytes: a partial tile of 40 tokens, two groups of 32") {
  // Values t % 16: scale 15/15 = 1, supers as above. Group 0 (tokens 0..31): byte j = j | j << 4.
  // Group 1 (tokens 32..63): tokens 32..39 have codes 0..7 in the low nibbles; absent tokens are 0.
  std::vector<float> rows(40);
  for (int t = 0; t < 40; ++t) rows[t] = static_cast<float>(t % 16);
  const auto tile = encode_tile<4, 64>(rows, 40, 1);
  CHECK(kpc_test::hex(tile) ==
        "04 1c 00 00 00 3c ff 00 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff "
        "00 01 02 03 04 05 06 07 00 00 00 00 00 00 00 00");
}

TEST_CASE_TEMPLATE("K tiles: error within scale'/2, re-encoding is idempotent, partial tiles use present tokens", Config,
                   k_config<4, 32>, k_config<4, 64>, k_config<4, 128>, k_config<3, 32>, k_config<3, 64>,
                   k_config<3, 128>, k_config<2, 32>, k_config<2, 64>, k_config<2, 128>) {
  constexpr int Bits = Config::bits, G = Config::group;
  using tile_layout = typename Config::tile;
  auto gen = kpc_test::rng(100 + Bits * 1000 + G);
  for (std::size_t channels : {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{128}}) {
    for (bool offset : {false, true}) {
      CAPTURE(channels);
      CAPTURE(offset);
      std::vector<std::size_t> offset_channels;
      if (offset) offset_channels = channels > 1 ? std::vector<std::size_t>{0, channels / 2} : std::vector<std::size_t>{0};
      const auto rows = kpc_test::offset_rows(G, channels, offset_channels, gen);
      const auto tile = encode_tile<Bits, G>(rows, G, channels);
      const auto decoded = decode_tile<Bits, G>(tile, G, channels);

      // |x - x'| <= scale'/2 + distance outside [zero', zero' + max_code * scale'] + float slack.
      const kpc::ref::k_tile_meta meta = kpc::ref::k_load_meta(tile.data());
      for (std::size_t c = 0; c < channels; ++c) {
        const auto m = kpc::ref::k_load_channel<Bits, G>(tile.data(), meta, channels, c);
        const double lo = m.zero, hi = m.zero + tile_layout::max_code * static_cast<double>(m.scale);
        for (int t = 0; t < G; ++t) {
          const double x = rows[t * channels + c], y = decoded[t * channels + c];
          const double outside = std::max({0.0, lo - x, x - hi});
          const double slack = 4 * std::ldexp(1.0, -24) * (std::fabs(x) + std::fabs(lo) + std::fabs(hi));
          REQUIRE(std::fabs(x - y) <= m.scale / 2.0 + outside + slack);
        }
      }

      // encode(decode(encode(x))) == encode(x).
      CHECK(kpc_test::hex(encode_tile<Bits, G>(decoded, G, channels)) == kpc_test::hex(tile));

      // A partial tile: 5 tokens. Repeating them to fill the tile changes no channel's range, so the
      // metadata must match, the 5 tokens' codes must match, and the absent tokens' codes are 0.
      const int present = 5;
      std::vector<float> repeated(static_cast<std::size_t>(G) * channels);
      for (int t = 0; t < G; ++t)
        std::copy_n(rows.begin() + (t % present) * channels, channels, repeated.begin() + t * channels);
      const auto partial = encode_tile<Bits, G>(rows, present, channels);
      const auto full = encode_tile<Bits, G>(repeated, G, channels);
      REQUIRE(std::equal(partial.begin(), partial.begin() + tile_layout::offset_codes(channels), full.begin()));
      for (std::size_t c = 0; c < channels; ++c) {
        const std::byte* codes_partial = partial.data() + tile_layout::offset_channel_codes(channels, c);
        const std::byte* codes_full = full.data() + tile_layout::offset_channel_codes(channels, c);
        for (int t = 0; t < G; ++t) {
          const unsigned a = kpc::format::code_at<Bits>(codes_partial + (t / 32) * kpc::format::group_bytes<Bits>, t % 32);
          const unsigned b = kpc::format::code_at<Bits>(codes_full + (t / 32) * kpc::format::group_bytes<Bits>, t % 32);
          REQUIRE(a == (t < present ? b : 0u));
        }
      }
    }
  }
}

TEST_CASE("K tiles: all-zero tiles decode exactly, constant tiles to the fp16 rounding of the value") {
  const std::vector<float> zeros(32 * 8, 0.0f);
  CHECK(decode_tile<4, 32>(encode_tile<4, 32>(zeros, 32, 8), 32, 8) == zeros);
  const std::vector<float> constant(32 * 8, 3.7f);  // zero' = fp16(3.7); every code 0
  for (float y : decode_tile<4, 32>(encode_tile<4, 32>(constant, 32, 8), 32, 8))
    CHECK(y == kpc::fp16_bits_to_fp32(kpc::fp32_to_fp16_bits(3.7f)));
  // One token: every channel's range is 0, so each decodes to its zero' = zmin + qz * sz, off by at
  // most sz/2 plus 255 times the fp16 rounding of sz (sz = 7.5/255 here).
  const std::vector<float> one = {1.0f, -2.0f, 5.5f};
  const auto decoded = decode_tile<3, 64>(encode_tile<3, 64>(one, 1, 3), 1, 3);
  const double sz = 7.5 / 255;
  for (int c = 0; c < 3; ++c) CHECK(std::fabs(decoded[c] - one[c]) <= sz / 2 + 255 * sz * std::ldexp(1.0, -11));
}

TEST_CASE("K tiles: NaN and Inf are non_finite, overflowing supers out_of_range, denormals decode near 0") {
  std::vector<float> rows(32 * 4, 1.0f);
  rows[37] = std::numeric_limits<float>::quiet_NaN();
  encode_tile<4, 32>(rows, 32, 4, kpc::errc::non_finite);
  rows[37] = -std::numeric_limits<float>::infinity();
  encode_tile<4, 32>(rows, 32, 4, kpc::errc::non_finite);
  rows[37] = 3e38f;  // mx - mn is finite, but ss = scale / 255 is far beyond fp16
  encode_tile<4, 32>(rows, 32, 4, kpc::errc::out_of_range);
  rows[37] = -3e38f;
  encode_tile<2, 32>(rows, 32, 4, kpc::errc::out_of_range);
  rows.assign(rows.size(), 70000.0f);  // a constant beyond 65504: zmin overflows fp16
  encode_tile<4, 32>(rows, 32, 4, kpc::errc::out_of_range);
  rows.assign(rows.size(), -30000.0f);  // the largest offsets that fit still encode
  rows[5] = 30000.0f;
  const auto wide = decode_tile<4, 32>(encode_tile<4, 32>(rows, 32, 4), 32, 4);
  CHECK(std::fabs(wide[5] - 30000.0f) < 60000.0f / 15);
  // Denormal inputs: the fp16 supers underflow, scale' falls back to 1.0 and everything decodes
  // to the stored zero' (here 0): absolute error below the f32 normal range.
  auto gen = kpc_test::rng(7);
  auto tiny = kpc_test::gaussian(32 * 4, gen, 1e-39f);
  for (float y : decode_tile<4, 32>(encode_tile<4, 32>(tiny, 32, 4), 32, 4)) CHECK(y == 0.0f);
}

TEST_CASE("K tiles: token counts outside 1..G are refused without touching anything") {
  const std::vector<float> rows(33 * 2, 1.0f);
  std::vector<std::byte> tile(kpc::format::k_tile<4, 32>::bytes(2), std::byte{0x5a});
  std::vector<float> out(40 * 2, 3.0f);
  using kpc::errc;
  CHECK(kpc::ref::encode_k_tile<4, 32>(rows.data(), 2, 0, 2, tile.data()) == errc::invalid_shape);
  CHECK(kpc::ref::encode_k_tile<4, 32>(rows.data(), 2, 33, 2, tile.data()) == errc::invalid_shape);
  CHECK(std::all_of(tile.begin(), tile.end(), [](std::byte b) { return b == std::byte{0x5a}; }));
  CHECK(kpc::ref::encode_k_tile<4, 32>(rows.data(), 2, 32, 2, tile.data()) == errc::ok);
  CHECK(kpc::ref::decode_k_tile<4, 32>(tile.data(), -1, 2, out.data(), 2) == errc::invalid_shape);
  CHECK(kpc::ref::scores_k_tile<4, 32>(rows.data(), tile.data(), 40, 2, out.data()) == errc::invalid_shape);
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 3.0f; }));
}

TEST_CASE("K tiles: ties in min and max keep the first value, so -0 and +0 are decided by position") {
  // zmin is the smallest channel minimum; with both zeros present the first in token order wins
  // (fp16 -0 = 0x8000). Every backend must write the same sign.
  const std::vector<float> neg_first = {-0.0f, 0.0f, 1.0f, 1.0f};  // 2 tokens x 2 channels
  const std::vector<float> pos_first = {0.0f, -0.0f, 1.0f, 1.0f};
  const std::vector<float> transposed = {0.0f, 1.0f, -0.0f, 1.0f};  // channel 0: +0 then -0
  CHECK(kpc_test::hex(encode_tile<4, 32>(neg_first, 2, 2).data() + 2, 2) == "00 80");
  CHECK(kpc_test::hex(encode_tile<4, 32>(pos_first, 2, 2).data() + 2, 2) == "00 00");
  CHECK(kpc_test::hex(encode_tile<4, 32>(transposed, 2, 2).data() + 2, 2) == "00 00");
}

TEST_CASE("K tiles: bytes are defined even for rejected input (no undefined conversions)") {
  std::vector<float> rows(32 * 2, std::numeric_limits<float>::quiet_NaN());
  const auto a = encode_tile<4, 32>(rows, 32, 2, kpc::errc::non_finite);
  const auto b = encode_tile<4, 32>(rows, 32, 2, kpc::errc::non_finite);
  CHECK(a == b);
}

TEST_CASE("K tiles: decode rejects non-finite supers without writing") {
  std::vector<float> rows(32 * 2, 1.0f);
  auto tile = encode_tile<4, 32>(rows, 32, 2);
  tile[1] = std::byte{0x7c};  // ss = +Inf
  std::vector<float> out(64, -5.0f);
  CHECK(kpc::ref::decode_k_tile<4, 32>(tile.data(), 32, 2, out.data(), 2) == kpc::errc::corrupt_data);
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == -5.0f; }));
}

TEST_CASE_TEMPLATE("K tiles: fused scores match an f64 dot product over the decoded keys", Config, k_config<4, 32>,
                   k_config<3, 64>, k_config<2, 128>) {
  constexpr int Bits = Config::bits, G = Config::group;
  auto gen = kpc_test::rng(200 + Bits);
  for (std::size_t channels : {std::size_t{1}, std::size_t{33}, std::size_t{128}}) {
    for (int tokens : {1, G / 2 + 3, G}) {
      const auto rows = kpc_test::offset_rows(tokens, channels, {0}, gen);
      const auto q = kpc_test::gaussian(channels, gen);
      const auto tile = encode_tile<Bits, G>(rows, tokens, channels);
      const auto decoded = decode_tile<Bits, G>(tile, tokens, channels);
      std::vector<float> out(tokens, 0.0f);
      kpc::ref::scores_k_tile<Bits, G>(q.data(), tile.data(), tokens, channels, out.data());
      const kpc::ref::k_tile_meta meta = kpc::ref::k_load_meta(tile.data());
      for (int t = 0; t < tokens; ++t) {
        double exact = 0.0, magnitude = 0.0;
        for (std::size_t c = 0; c < channels; ++c) {
          const auto m = kpc::ref::k_load_channel<Bits, G>(tile.data(), meta, channels, c);
          exact += static_cast<double>(q[c]) * decoded[t * channels + c];
          magnitude += std::fabs(q[c]) * (std::fabs(decoded[t * channels + c] - m.zero) + std::fabs(m.zero));
        }
        REQUIRE(std::fabs(out[t] - exact) <= kpc_test::dot_tolerance(channels, magnitude));
      }
    }
  }
}
