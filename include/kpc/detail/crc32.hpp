// SPDX-License-Identifier: MIT
// CRC-32 (ISO-HDLC: the checksum of zlib, PNG and gzip), the checksum of kpc's cache container.
#ifndef KPC_DETAIL_CRC32_HPP
#define KPC_DETAIL_CRC32_HPP

#include <array>
#include <cstddef>
#include <cstdint>

#include "../config.hpp"

KPC_BEGIN_NAMESPACE
namespace detail {

/// Eight tables for slicing-by-8 (eight bytes per step instead of one).
inline constexpr std::array<std::array<std::uint32_t, 256>, 8> crc32_tables = [] {
  std::array<std::array<std::uint32_t, 256>, 8> tables{};
  for (std::uint32_t byte = 0; byte < 256; ++byte) {
    std::uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    tables[0][byte] = crc;
  }
  for (std::size_t slice = 1; slice < 8; ++slice)
    for (std::size_t byte = 0; byte < 256; ++byte)
      tables[slice][byte] = (tables[slice - 1][byte] >> 8) ^ tables[0][tables[slice - 1][byte] & 0xFFu];
  return tables;
}();

/// Continues a CRC-32 over `size` more bytes: crc32_update(0, all bytes) is zlib's crc32().
inline std::uint32_t crc32_update(std::uint32_t crc, const std::byte* data, std::size_t size) {
  const auto& t = crc32_tables;
  crc = ~crc;
  for (; size >= 8; size -= 8, data += 8) {
    const auto b = [&](int i) { return static_cast<std::uint32_t>(data[i]); };
    const std::uint32_t low = crc ^ (b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24);
    crc = t[7][low & 0xFFu] ^ t[6][(low >> 8) & 0xFFu] ^ t[5][(low >> 16) & 0xFFu] ^ t[4][low >> 24] ^ t[3][b(4)] ^
          t[2][b(5)] ^ t[1][b(6)] ^ t[0][b(7)];
  }
  for (; size != 0; --size, ++data) crc = (crc >> 8) ^ t[0][(crc ^ static_cast<std::uint32_t>(*data)) & 0xFFu];
  return ~crc;
}

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_DETAIL_CRC32_HPP
