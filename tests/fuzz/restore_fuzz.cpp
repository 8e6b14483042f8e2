// SPDX-License-Identifier: MIT
// libFuzzer target for KVCache::restore, the one kpc entry point that reads bytes from outside.
// Input: one mode byte, then a cache container. With an odd mode byte the harness rewrites the
// container's CRC first, so the checks behind the checksum are fuzzed too; with bit 1 set the
// cache has every cache_options option on (sinks, a recent window, centering, rotations). A container restore
// accepts must save back to the same bytes and survive attention, appends and truncation.
// Built with -DKPC_FUZZ_WRITE_SEEDS it is instead a program that writes a seed corpus.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <kpc/cache.hpp>
#include <string>
#include <vector>

namespace {

using Cache = kpc::KVCache<kpc::Quantizer<4, kpc::PerChannel<32>>, kpc::q4_1>;
constexpr std::size_t kv_heads = 2, head_dim = 32, capacity = 100;

kpc::cache_options options_of(unsigned mode) {
  kpc::cache_options o;
  if ((mode & 2) != 0) {
    o.sink_tokens = 4;
    o.recent_tiles = 2;
    o.center_keys = o.rotate_keys = o.rotate_values = true;
  }
  return o;
}
}  // namespace

#ifndef KPC_FUZZ_WRITE_SEEDS
namespace {

void fix_crc(std::vector<std::byte>& image) {
  std::uint32_t crc = kpc::detail::crc32_update(0, image.data(), kpc::detail::cache_container::at_crc);
  crc = kpc::detail::crc32_update(crc, image.data() + kpc::detail::cache_container::header_bytes,
                                  image.size() - kpc::detail::cache_container::header_bytes);
  kpc::detail::put_le(image.data() + kpc::detail::cache_container::at_crc, crc, 4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::vector<std::byte> image(size - 1);
  if (!image.empty()) std::memcpy(image.data(), data + 1, image.size());
  if ((data[0] & 1) != 0 && image.size() >= kpc::detail::cache_container::header_bytes) fix_crc(image);
  Cache cache(kv_heads, head_dim, capacity, options_of(data[0]));
  try {
    cache.restore(image.data(), image.size());
  } catch (const kpc::error&) {
    if (cache.size() != 0) std::abort();  // a refused restore changes nothing
    return 0;
  }
  if (cache.save() != image) std::abort();  // accepted containers are canonical
  try {  // what a restored cache is used for may refuse (values the format cannot hold), never crash
    float q[2 * head_dim], out[2 * head_dim];
    for (float& x : q) x = 0.125f;
    cache.attend(1, q, 2, {}, out);
    if (cache.size() < capacity) {
      float row[kv_heads * head_dim];
      for (float& x : row) x = -0.5f;
      cache.append(row, row, 1);
    }
    cache.truncate(cache.size() / 2);
    cache.shift_positions(0, 3.0, {});
    (void)cache.copy_range(0, cache.size()).save();
  } catch (const kpc::error&) {
  }
  return 0;
}
#else
int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR (writes seed containers into DIR)\n", argv[0]);
    return 2;
  }
  std::vector<float> rows(capacity * kv_heads * head_dim);
  std::uint32_t state = 12345;
  for (float& x : rows) {  // a small LCG: the seeds are the same on every machine
    state = state * 1664525u + 1013904223u;
    x = static_cast<float>(static_cast<int>(state >> 16) % 2001 - 1000) / 300.0f;
  }
  int written = 0;
  for (const std::size_t tokens : {0, 1, 31, 32, 33, 64, 70, 100}) {
    for (const std::size_t rollback : {0, 3, 40}) {
      if (rollback > tokens) continue;
      const unsigned char mode = static_cast<unsigned char>(written % 4);
      Cache cache(kv_heads, head_dim, capacity, options_of(mode));
      cache.append(rows.data(), rows.data(), tokens);
      cache.truncate(tokens - rollback);
      std::vector<std::byte> image = cache.save();
      const std::string path = std::string(argv[1]) + "/seed-" + std::to_string(written++);
      std::FILE* f = std::fopen(path.c_str(), "wb");
      if (f == nullptr) return 1;
      std::fwrite(&mode, 1, 1, f);
      std::fwrite(image.data(), 1, image.size(), f);
      std::fclose(f);
    }
  }
  std::printf("%d seed containers in %s\n", written, argv[1]);
  return 0;
}
#endif
