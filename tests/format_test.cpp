// SPDX-License-Identifier: MIT
// kpc/format.hpp: sizes, offsets and the bit order of packed codes.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <kpc/format.hpp>
#include <memory>

#include "support.hpp"

using namespace kpc::format;

TEST_CASE("K tile sizes and bits per value match the design") {
  // 6 + 2C bytes of metadata + G*C*Bits/8 bytes of codes.
  CHECK(k_tile<4, 32>::bytes(128) == 6 + 256 + 2048);
  CHECK(k_tile<4, 64>::bytes(128) == 6 + 256 + 4096);
  CHECK(k_tile<3, 32>::bytes(5) == 6 + 10 + 60);
  CHECK(k_tile<2, 128>::bytes(1) == 6 + 2 + 32);
  CHECK(std::round(k_tile<4, 32>::bits_per_value(128) * 100) == 451);
  CHECK(std::round(k_tile<4, 64>::bits_per_value(128) * 100) == 426);
  CHECK(std::round(k_tile<4, 128>::bits_per_value(128) * 100) == 413);
  CHECK(k_tile<4, 32>::offset_zero_codes(128) == 134);
  CHECK(k_tile<4, 32>::offset_channel_codes(128, 1) == 262 + 16);
  CHECK(k_tile<3, 64>::channel_code_bytes == 24);
}

TEST_CASE("per-token block sizes: q4_1, q8_0, 3-bit V and q4_0") {
  CHECK(v_block<4>::bytes == 20);
  CHECK(v_block<8>::bytes == 34);
  CHECK(v_block<3>::bytes == 16);
  CHECK(q4_0_block::bytes == 18);
  CHECK(v_block<4>::bits_per_value == 5.0);
  CHECK(v_block<8>::bits_per_value == 8.5);
  CHECK(v_block<3>::bits_per_value == 4.0);
  CHECK(q4_0_block::bits_per_value == 4.5);
  CHECK(v_block<8>::offset_codes == 2);
  CHECK(v_block<3>::offset_codes == 4);
}

namespace {
template <int Bits>
void check_round_trip(std::uint64_t stream) {
  auto gen = kpc_test::rng(stream);
  for (int trial = 0; trial < 200; ++trial) {
    std::uint8_t codes[32];
    for (auto& c : codes) c = static_cast<std::uint8_t>(gen() & ((1u << Bits) - 1u));
    // Exactly group_bytes on the heap, so ASan catches any read or write past the group.
    auto packed = std::make_unique<std::byte[]>(group_bytes<Bits>);
    pack_group<Bits>(codes, packed.get());
    for (int j = 0; j < 32; ++j) REQUIRE(code_at<Bits>(packed.get(), j) == codes[j]);
  }
}
}  // namespace

TEST_CASE("pack_group and code_at are inverses for 2, 3 and 4 bits") {
  check_round_trip<2>(1);
  check_round_trip<3>(2);
  check_round_trip<4>(3);
}

TEST_CASE("bit order: 4-bit splits halves into nibbles, 2-bit into quarters, 3-bit is LSB-first") {
  std::uint8_t codes[32];
  std::byte out[16];
  // 4 bits: code j = j % 16 and code j + 16 = 15 - j, so byte j = j | (15 - j) << 4.
  for (int j = 0; j < 32; ++j) codes[j] = static_cast<std::uint8_t>(j < 16 ? j : 31 - j);
  pack_group<4>(codes, out);
  CHECK(kpc_test::hex(out, 16) == "f0 e1 d2 c3 b4 a5 96 87 78 69 5a 4b 3c 2d 1e 0f");
  // 2 bits: code j = j / 8, so every byte holds 0, 1, 2, 3 at shifts 0, 2, 4, 6: 0b11100100.
  for (int j = 0; j < 32; ++j) codes[j] = static_cast<std::uint8_t>(j / 8);
  pack_group<2>(codes, out);
  CHECK(kpc_test::hex(out, 8) == "e4 e4 e4 e4 e4 e4 e4 e4");
  // 3 bits: codes 0..7 fill 24 bits as sum k << 3k = 0xFAC688, stored little-endian.
  for (int j = 0; j < 32; ++j) codes[j] = static_cast<std::uint8_t>(j % 8);
  pack_group<3>(codes, out);
  CHECK(kpc_test::hex(out, 12) == "88 c6 fa 88 c6 fa 88 c6 fa 88 c6 fa");
  // A lone 7 at j = 2 occupies bits 6..8: it straddles bytes 0 and 1.
  for (auto& c : codes) c = 0;
  codes[2] = 7;
  pack_group<3>(codes, out);
  CHECK(kpc_test::hex(out, 12) == "c0 01 00 00 00 00 00 00 00 00 00 00");
  CHECK(code_at<3>(out, 2) == 7u);
  CHECK(code_at<3>(out, 1) == 0u);
  CHECK(code_at<3>(out, 3) == 0u);
}
