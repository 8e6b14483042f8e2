// SPDX-License-Identifier: MIT
// kpc/cache.hpp: streaming appends in any chunking, rollback, RoPE shifts, forks, memory
// accounting, save/restore and every way a container can be damaged.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <kpc/cache.hpp>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

// Heap bytes requested while `counting` is set: the cache must allocate exactly memory_bytes()
// when built and nothing while it streams.
namespace {
bool counting = false;
std::size_t counted_bytes = 0;
std::size_t counted_calls = 0;

void* counted_malloc(std::size_t size) noexcept {
  if (counting) {
    counted_bytes += size;
    ++counted_calls;
  }
  return std::malloc(size == 0 ? 1 : size);
}
}  // namespace
// Every replaceable form that pairs with free(), so that no allocation made by the runtime's own
// operator new (sanitizers replace them all) is ever freed here, or the other way round.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // malloc'd by the operator new below
#endif
void* operator new(std::size_t size) {
  if (void* p = counted_malloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  if (void* p = counted_malloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

// The tests up to "cache_options" hold the plain cache (no options) to the formats' bytes.
const kpc::cache_options plain{};

using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;
using V4 = kpc::q4_1;

template <class K, class V>
struct cache_case {
  using cache = kpc::KVCache<K, V>;
};
#define KPC_CACHES                                                                                   \
  cache_case<K4, V4>, cache_case<kpc::Quantizer<3, kpc::PerChannel<64>>, kpc::Quantizer<3, kpc::PerToken<32>>>, \
      cache_case<kpc::Quantizer<2, kpc::PerChannel<128>>, kpc::q8_0>,                                 \
      cache_case<kpc::Quantizer<4, kpc::PerChannel<128>>, kpc::q4_0>

// [tokens][heads][dim] rows: Gaussian with a Qwen-style offset channel per head.
std::vector<float> kv_rows(std::size_t tokens, std::size_t heads, std::size_t dim, std::mt19937_64& gen) {
  std::vector<float> x = kpc_test::gaussian(tokens * heads * dim, gen);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t h = 0; h < heads; ++h) x[(t * heads + h) * dim + 3] = 20.0f + 5.0f * x[(t * heads + h) * dim + 3];
  return x;
}

// What the formats give for head h of rows [first, first + tokens) encoded in one call.
template <class Q>
std::vector<std::byte> encode_head(const std::vector<float>& rows, std::size_t first, std::size_t tokens,
                                   std::size_t heads, std::size_t dim, std::size_t h) {
  std::vector<std::byte> out(Q::encoded_bytes(tokens, dim));
  Q::encode(rows.data() + first * heads * dim + h * dim, heads * dim, tokens, dim, out.data(), out.size());
  return out;
}

template <class Cache>
std::vector<std::byte> k_of(const Cache& c, std::size_t h) {
  return {c.k_data(h), c.k_data(h) + c.k_bytes()};
}
template <class Cache>
std::vector<std::byte> v_of(const Cache& c, std::size_t h) {
  return {c.v_data(h), c.v_data(h) + c.v_bytes()};
}

// A cache's K and V bytes equal the formats' encoding of `rows` [0, tokens).
template <class Cache>
void check_equals_encoding(const Cache& c, const std::vector<float>& rows, std::size_t tokens) {
  REQUIRE(c.size() == tokens);
  for (std::size_t h = 0; h < c.kv_heads(); ++h) {
    CHECK(k_of(c, h) == encode_head<typename Cache::k_format>(rows, 0, tokens, c.kv_heads(), c.head_dim(), h));
    CHECK(v_of(c, h) == encode_head<typename Cache::v_format>(rows, 0, tokens, c.kv_heads(), c.head_dim(), h));
  }
}

template <class Cache>
Cache filled(const std::vector<float>& rows, std::size_t tokens, std::size_t heads, std::size_t dim,
             std::size_t capacity) {
  Cache c(heads, dim, capacity, plain);
  c.append(rows.data(), rows.data(), tokens);
  return c;
}

template <class Cache>
void expect_error(kpc::errc code, Cache& c, const std::vector<std::byte>& image) {
  const std::vector<std::byte> before = c.save();
  try {
    c.restore(image.data(), image.size());
    FAIL("restore accepted a damaged image");
  } catch (const kpc::error& e) {
    CHECK_MESSAGE(e.code() == code, e.what());
  }
  CHECK(c.save() == before);  // a refused restore changes nothing
}

// The code of the kpc::error a call throws, or ok.
template <class Call>
kpc::errc code_of(Call&& call) {
  try {
    call();
  } catch (const kpc::error& e) {
    return e.code();
  }
  return kpc::errc::ok;
}

// Rewrites a container's CRC after a deliberate edit, so the checks behind the checksum run.
void fix_crc(std::vector<std::byte>& image) {
  std::uint32_t crc = kpc::detail::crc32_update(0, image.data(), 60);
  crc = kpc::detail::crc32_update(crc, image.data() + 64, image.size() - 64);
  kpc::detail::put_le(image.data() + 60, crc, 4);
}

}  // namespace

TEST_CASE_TEMPLATE("appending in any chunking gives the bytes of encoding all tokens at once", Case, KPC_CACHES) {
  using Cache = typename Case::cache;
  auto gen = kpc_test::rng(2001 + Cache::tile_tokens);
  const std::size_t heads = 2, dim = 64, tokens = 3 * Cache::tile_tokens + 5;
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  std::uniform_int_distribution<std::size_t> chunk_size(1, Cache::tile_tokens + 9);
  for (const std::size_t fixed : {std::size_t{1}, Cache::tile_tokens - 1, Cache::tile_tokens, Cache::tile_tokens + 1,
                                  std::size_t{0} /* random */, tokens}) {
    CAPTURE(fixed);
    Cache c(heads, dim, tokens, plain);
    for (std::size_t t = 0; t < tokens;) {
      const std::size_t n = std::min(fixed != 0 ? fixed : chunk_size(gen), tokens - t);
      c.append(rows.data() + t * heads * dim, rows.data() + t * heads * dim, n);
      t += n;
      check_equals_encoding(c, rows, t);  // attention reads current codes after every append
    }
    CHECK(c.originals_from() == (tokens / Cache::tile_tokens - 1) * Cache::tile_tokens);
  }
}

TEST_CASE("f16 and strided appends give the bytes of encoding the f16 slab") {
  auto gen = kpc_test::rng(2002);
  const std::size_t heads = 3, dim = 32, tokens = 77, stride = heads * dim + 7;
  std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  std::vector<kpc::half> halves(tokens * stride, kpc::half(0.0f));
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t i = 0; i < heads * dim; ++i) {
      halves[t * stride + i] = kpc::half(rows[t * heads * dim + i]);
      rows[t * heads * dim + i] = static_cast<float>(halves[t * stride + i]);
    }
  kpc::KVCache<K4, V4> c(heads, dim, tokens, plain);
  for (std::size_t t = 0; t < tokens; t += 10)
    c.append(halves.data() + t * stride, stride, halves.data() + t * stride, stride, std::min<std::size_t>(10, tokens - t));
  for (std::size_t h = 0; h < heads; ++h) {
    std::vector<std::byte> k(K4::encoded_bytes(tokens, dim)), v(V4::encoded_bytes(tokens, dim));
    K4::encode(halves.data() + h * dim, stride, tokens, dim, k.data(), k.size());
    V4::encode(halves.data() + h * dim, stride, tokens, dim, v.data(), v.size());
    CHECK(k_of(c, h) == k);
    CHECK(v_of(c, h) == v);
  }
  check_equals_encoding(c, rows, tokens);  // f16 values through the f32 path: same bytes
}

TEST_CASE_TEMPLATE("truncate: exact within the held values, a documented re-encoding below them", Case, KPC_CACHES) {
  using Cache = typename Case::cache;
  using KF = typename Cache::k_format;
  const std::size_t G = Cache::tile_tokens, heads = 2, dim = 32, tokens = 4 * G + 7;
  auto gen = kpc_test::rng(2003 + G);
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  const Cache full = filled<Cache>(rows, tokens, heads, dim, tokens);
  REQUIRE(full.originals_from() == 3 * G);
  for (std::size_t n = 0; n <= tokens; ++n) {
    CAPTURE(n);
    Cache c = full.copy_range(0, tokens);
    c.truncate(n);
    REQUIRE(c.size() == n);
    if (n >= full.originals_from() || n % G == 0) {
      check_equals_encoding(c, rows, n);
      c.append(rows.data() + n * heads * dim, rows.data() + n * heads * dim, tokens - n);  // and re-grow
      check_equals_encoding(c, rows, tokens);
    } else {
      // The reopened tile is the encoding of its decoded values; the rest is untouched.
      const std::size_t tile = n / G, kept = n % G;
      CHECK(c.originals_from() == tile * G);
      for (std::size_t h = 0; h < heads; ++h) {
        std::vector<float> decoded(G * dim);
        full.decode_k(h, tile * G, kept, decoded.data());
        std::vector<std::byte> reopened(KF::tile_bytes(dim));
        KF::encode(decoded.data(), kept, dim, reopened.data());
        const std::vector<std::byte> k = k_of(c, h), reference = k_of(full, h);
        CHECK(std::equal(k.begin(), k.begin() + static_cast<std::ptrdiff_t>(tile * reopened.size()), reference.begin()));
        CHECK(std::equal(reopened.begin(), reopened.end(), k.begin() + static_cast<std::ptrdiff_t>(tile * reopened.size())));
        CHECK(v_of(c, h) == encode_head<typename Cache::v_format>(rows, 0, n, heads, dim, h));
      }
    }
  }
}

TEST_CASE("speculative decoding: drafts rolled back by up to 8 tokens leave the exact bytes") {
  auto gen = kpc_test::rng(2004);
  const std::size_t heads = 2, dim = 64, capacity = 400;
  const std::vector<float> rows = kv_rows(capacity, heads, dim, gen);
  std::vector<float> accepted;  // the token rows the cache should hold
  kpc::KVCache<K4, V4> c(heads, dim, capacity, plain);
  std::uniform_int_distribution<std::size_t> draft(1, 8);
  std::size_t next_row = 0;
  while (c.size() + 8 <= capacity && next_row + 8 <= capacity) {
    const std::size_t d = draft(gen), keep = std::uniform_int_distribution<std::size_t>(0, d)(gen);
    c.append(rows.data() + next_row * heads * dim, rows.data() + next_row * heads * dim, d);
    c.truncate(c.size() - (d - keep));
    accepted.insert(accepted.end(), rows.begin() + static_cast<std::ptrdiff_t>(next_row * heads * dim),
                    rows.begin() + static_cast<std::ptrdiff_t>((next_row + keep) * heads * dim));
    next_row += d;  // rejected drafts are new rows next time, as in a real decoder
    check_equals_encoding(c, accepted, accepted.size() / (heads * dim));
  }
  CHECK(c.size() > 100);
}

TEST_CASE_TEMPLATE("shift_positions: held values rotate exactly, sealed tiles go through their decoded values", Case,
                   KPC_CACHES) {
  using Cache = typename Case::cache;
  using KF = typename Cache::k_format;
  const std::size_t G = Cache::tile_tokens, heads = 2, dim = 64, tokens = 3 * G + 9;
  auto gen = kpc_test::rng(2005 + G);
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  const kpc::rope_config rope{kpc::rope_style::neox, 10000.0, 0, 1.0};
  for (const std::size_t first : {std::size_t{0}, G / 2, 2 * G, 2 * G + 3, tokens}) {
    CAPTURE(first);
    Cache c = filled<Cache>(rows, tokens, heads, dim, tokens);
    const Cache before = c.copy_range(0, tokens);
    c.shift_positions(first, -37.0, rope);
    for (std::size_t h = 0; h < heads; ++h) {
      CHECK(v_of(c, h) == v_of(before, h));  // values do not rotate
      for (std::size_t j = 0; j * G < tokens; ++j) {
        const std::size_t count = std::min(G, tokens - j * G), tb = KF::tile_bytes(dim);
        std::vector<float> values(count * dim);
        if (j * G >= before.originals_from()) {
          for (std::size_t t = 0; t < count; ++t)
            std::copy_n(rows.data() + ((j * G + t) * heads + h) * dim, dim, values.data() + t * dim);
        } else {
          before.decode_k(h, j * G, count, values.data());
        }
        const std::vector<std::byte> old_k = k_of(before, h), new_k = k_of(c, h);
        std::vector<std::byte> expected(old_k.begin() + static_cast<std::ptrdiff_t>(j * tb),
                                        old_k.begin() + static_cast<std::ptrdiff_t>((j + 1) * tb));
        if ((j + 1) * G > first) {  // a tile holding a shifted token is re-encoded
          const std::size_t skip = std::max(first, j * G) - j * G;
          kpc::rope_shift(values.data() + skip * dim, count - skip, dim, dim, -37.0, rope);
          KF::encode(values.data(), count, dim, expected.data());
        }
        CHECK(std::equal(expected.begin(), expected.end(), new_k.begin() + static_cast<std::ptrdiff_t>(j * tb)));
      }
    }
  }
}

TEST_CASE("shift_positions then the inverse shift comes back within the quantization error") {
  auto gen = kpc_test::rng(2006);
  const std::size_t heads = 1, dim = 128, tokens = 100;
  const std::vector<float> rows = kpc_test::gaussian(tokens * dim, gen);
  auto c = filled<kpc::KVCache<K4, V4>>(rows, tokens, heads, dim, tokens);
  std::vector<float> before(tokens * dim), after(tokens * dim);
  c.decode_k(0, 0, tokens, before.data());
  c.shift_positions(10, 1000.0, {});
  c.shift_positions(10, -1000.0, {});
  c.decode_k(0, 0, tokens, after.data());
  // Two more roundings on the sealed tiles (K4: |error| <= scale/2 each), none beyond.
  CHECK(kpc_test::relative_mse(before, after, dim) < 2e-2);
  CHECK(kpc_test::relative_mse(rows, after, dim) < 3e-2);
}

TEST_CASE_TEMPLATE("copy_range forks prefixes and ranges; the fork is independent", Case, KPC_CACHES) {
  using Cache = typename Case::cache;
  const std::size_t G = Cache::tile_tokens, heads = 2, dim = 32, tokens = 3 * G + 11;
  auto gen = kpc_test::rng(2007 + G);
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  const Cache c = filled<Cache>(rows, tokens, heads, dim, tokens + 50);
  for (const std::size_t n : {std::size_t{0}, std::size_t{1}, G, 2 * G + 1, 3 * G, 3 * G + 4, tokens}) {
    CAPTURE(n);
    Cache fork = c.copy_range(0, n);
    CHECK(fork.capacity() == c.capacity());
    if (n >= c.originals_from() || n % G == 0) check_equals_encoding(fork, rows, n);
    fork.append(rows.data(), rows.data(), 2);  // the fork grows on its own
    CHECK(c.size() == tokens);
  }
  // A range from an unaligned start: V rows byte for byte, K re-tiled from the held or decoded values.
  for (const std::size_t first : {std::size_t{5}, G + 3, 3 * G + 2}) {
    CAPTURE(first);
    const Cache range = c.copy_range(first, tokens, tokens);
    REQUIRE(range.size() == tokens - first);
    for (std::size_t h = 0; h < heads; ++h) {
      CHECK(std::equal(range.v_data(h), range.v_data(h) + range.v_bytes(),
                       c.v_data(h) + first * Cache::v_format::row_bytes(dim)));
      // The values c holds for the range: decoded before originals_from(), the rows after.
      std::vector<float> values(range.size() * dim);
      c.decode_k(h, first, range.size(), values.data());
      for (std::size_t t = std::max(first, c.originals_from()); t < tokens; ++t)
        std::copy_n(rows.data() + (t * heads + h) * dim, dim, values.data() + (t - first) * dim);
      std::vector<std::byte> expected(Cache::k_format::encoded_bytes(range.size(), dim));
      Cache::k_format::encode(values.data(), range.size(), dim, expected.data());
      CHECK(k_of(range, h) == expected);
    }
  }
}

TEST_CASE("clear keeps the allocation and starts over") {
  auto gen = kpc_test::rng(2008);
  const std::vector<float> rows = kv_rows(70, 2, 32, gen);
  auto c = filled<kpc::KVCache<K4, V4>>(rows, 70, 2, 32, 100);
  const std::size_t bytes = c.allocated_bytes();
  c.clear();
  CHECK(c.empty());
  CHECK(c.originals_from() == 0);
  c.append(rows.data(), rows.data(), 40);
  check_equals_encoding(c, rows, 40);
  CHECK(c.allocated_bytes() == bytes);
}

TEST_CASE_TEMPLATE("memory: the constructor allocates memory_bytes() once; streaming allocates nothing", Case,
                   KPC_CACHES) {
  using Cache = typename Case::cache;
  const std::size_t heads = 4, dim = 128, capacity = 1000;
  auto gen = kpc_test::rng(2009);
  const std::vector<float> rows = kv_rows(capacity, heads, dim, gen);
  const std::size_t expected = Cache::memory_bytes(heads, dim, capacity, plain);
  counted_bytes = counted_calls = 0;
  counting = true;
  Cache c(heads, dim, capacity, plain);
  counting = false;
  CHECK(counted_bytes == expected);
  CHECK(counted_calls == 1);
  CHECK(c.allocated_bytes() == expected);
  // Its parts: whole tiles for the capacity, V rows, two tiles of held f32 values and a scratch
  // tile per head, each region rounded up to 64 bytes.
  using KF = typename Cache::k_format;
  using VF = typename Cache::v_format;
  const auto r64 = [](std::size_t n) { return (n + 63) / 64 * 64; };
  const std::size_t tiles = (capacity + Cache::tile_tokens - 1) / Cache::tile_tokens;
  CHECK(expected == heads * r64(tiles * KF::tile_bytes(dim)) + heads * r64(capacity * VF::row_bytes(dim)) +
                        2 * heads * r64(Cache::tile_tokens * dim * 4) + r64(heads * KF::tile_bytes(dim)));
  std::vector<float> q(2 * dim, 0.1f), out(2 * dim);
  {  // the SIMD kernels' per-thread scratch (2 x channels floats) is allocated on first use
    Cache warm_up(heads, dim, 1, plain);
    warm_up.append(rows.data(), rows.data(), 1);
    warm_up.attend(0, q.data(), 2, {}, out.data());
  }
  counted_bytes = counted_calls = 0;
  counting = true;
  for (std::size_t t = 0; t < capacity; t += 7)
    c.append(rows.data() + t * heads * dim, rows.data() + t * heads * dim, std::min<std::size_t>(7, capacity - t));
  c.truncate(capacity - 5);
  c.attend(1, q.data(), 2, {}, out.data());
  counting = false;
  CHECK(counted_calls == 0);
  CHECK(Cache::bytes_per_token(heads, dim) ==
        doctest::Approx(heads * (static_cast<double>(KF::tile_bytes(dim)) / Cache::tile_tokens + VF::row_bytes(dim))));
}

TEST_CASE("bytes per token of a 128-wide head: K4 G32 + V4 is 152.19, 3.36x smaller than f16's 512") {
  CHECK(kpc::KVCache<K4, V4>::bytes_per_token(1, 128) == doctest::Approx((6 + 256 + 32 * 64) / 32.0 + 80));
  CHECK(kpc::KVCache<K4, kpc::Quantizer<3, kpc::PerToken<32>>>::bytes_per_token(1, 128) ==
        doctest::Approx((6 + 256 + 32 * 64) / 32.0 + 64));
}

TEST_CASE_TEMPLATE("save and restore: the same bytes, the same behaviour afterwards", Case, KPC_CACHES) {
  using Cache = typename Case::cache;
  const std::size_t G = Cache::tile_tokens, heads = 2, dim = 32;
  auto gen = kpc_test::rng(2010 + G);
  const std::vector<float> rows = kv_rows(4 * G, heads, dim, gen);
  for (const std::size_t tokens : {std::size_t{0}, std::size_t{1}, G, G + 1, 2 * G + 9}) {
    CAPTURE(tokens);
    Cache c = filled<Cache>(rows, tokens, heads, dim, 3 * G);
    if (tokens > 3) c.truncate(tokens - 3);  // a rolled-back cache saves its held values too
    const std::vector<std::byte> image = c.save();
    CHECK(image.size() == c.saved_bytes());
    Cache loaded = Cache::load(image.data(), image.size(), 4 * G);
    CHECK(loaded.save() == image);
    CHECK(loaded.originals_from() == c.originals_from());
    const std::size_t more = 4 * G - 3 * G;  // both grow the same way
    c = c.copy_range(0, c.size(), 4 * G);
    c.append(rows.data(), rows.data(), more);
    loaded.append(rows.data(), rows.data(), more);
    CHECK(loaded.save() == c.save());
  }
}

TEST_CASE("save_range writes the container of one range") {
  auto gen = kpc_test::rng(2011);
  const std::vector<float> rows = kv_rows(150, 2, 64, gen);
  const auto c = filled<kpc::KVCache<K4, V4>>(rows, 150, 2, 64, 200);
  CHECK(c.save_range(32, 140) == c.copy_range(32, 140, 108).save());
  const std::vector<std::byte> image = c.save_range(64, 150);
  const auto range = kpc::KVCache<K4, V4>::load(image.data(), image.size(), 100);
  CHECK(range.size() == 86);
  CHECK(range.capacity() == 100);  // as asked: load() takes the capacity
}

TEST_CASE("the checksum is zlib's CRC-32") {
  const std::string check = "123456789";
  CHECK(kpc::detail::crc32_update(0, reinterpret_cast<const std::byte*>(check.data()), check.size()) == 0xCBF43926u);
  std::vector<std::byte> zeros(1000, std::byte{0});
  const std::uint32_t split = kpc::detail::crc32_update(kpc::detail::crc32_update(0, zeros.data(), 13), zeros.data() + 13, 987);
  CHECK(split == kpc::detail::crc32_update(0, zeros.data(), 1000));
}

TEST_CASE("restore refuses truncated, corrupted, wrong-version and wrong-shape images, changing nothing") {
  using Cache = kpc::KVCache<K4, V4>;
  auto gen = kpc_test::rng(2012);
  const std::size_t heads = 2, dim = 32;
  const std::vector<float> rows = kv_rows(60, heads, dim, gen);
  const Cache source = filled<Cache>(rows, 45, heads, dim, 64);
  const std::vector<std::byte> image = source.save();
  Cache target = filled<Cache>(rows, 20, heads, dim, 64);

  SUBCASE("every truncation and a trailing byte") {
    for (std::size_t n = 0; n < image.size(); n += (n < 200 ? 1 : 97)) {
      CAPTURE(n);
      expect_error(kpc::errc::corrupt_data, target, std::vector<std::byte>(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(n)));
    }
    std::vector<std::byte> longer = image;
    longer.push_back(std::byte{0});
    expect_error(kpc::errc::corrupt_data, target, longer);
  }
  SUBCASE("every single-bit flip is caught") {
    for (std::size_t i = 0; i < image.size(); i += (i < 64 ? 1 : 13)) {
      std::vector<std::byte> bad = image;
      bad[i] ^= static_cast<std::byte>(1u << (i % 8));
      CAPTURE(i);
      try {
        target.restore(bad.data(), bad.size());
        FAIL("a flipped bit was accepted");
      } catch (const kpc::error& e) {
        CHECK(e.code() != kpc::errc::ok);
      }
    }
    CHECK(target.size() == 20);
  }
  SUBCASE("versions") {
    std::vector<std::byte> bad = image;
    for (int version : {1, 3}) {  // version 1 (kpc 0.1, before cache_options) and a future one
      bad[8] = static_cast<std::byte>(version);
      fix_crc(bad);
      expect_error(kpc::errc::unsupported, target, bad);
    }
    bad = image;
    bad[10] = std::byte{9};  // format version 9
    fix_crc(bad);
    expect_error(kpc::errc::unsupported, target, bad);
  }
  SUBCASE("another format or shape") {
    kpc::KVCache<kpc::Quantizer<4, kpc::PerChannel<64>>, V4> other_g(heads, dim, 64, plain);
    expect_error(kpc::errc::invalid_shape, other_g, image);
    kpc::KVCache<K4, kpc::q4_0> other_v(heads, dim, 64, plain);
    expect_error(kpc::errc::invalid_shape, other_v, image);
    Cache other_heads(1, 2 * dim, 64, plain);
    expect_error(kpc::errc::invalid_shape, other_heads, image);
    Cache small(heads, dim, 40, plain);
    expect_error(kpc::errc::buffer_too_small, small, image);
  }
  SUBCASE("consistent checksum, inconsistent contents") {
    std::vector<std::byte> bad = image;
    kpc::detail::put_le(bad.data() + 40, 16, 8);  // originals_from must be a multiple of G
    fix_crc(bad);
    expect_error(kpc::errc::corrupt_data, target, bad);
    bad = image;
    bad[bad.size() - 2] = std::byte{0xC0};  // the last held value becomes NaN
    bad[bad.size() - 1] = std::byte{0x7F};
    fix_crc(bad);
    expect_error(kpc::errc::corrupt_data, target, bad);
    bad = image;
    const std::size_t open_tile_codes = 64 + K4::tile_bytes(dim) + 6 + 2 * dim;  // head 0, tile 1
    bad[open_tile_codes] ^= std::byte{0x10};
    fix_crc(bad);
    expect_error(kpc::errc::corrupt_data, target, bad);
    bad = image;
    bad[56] = std::byte{1};  // reserved
    fix_crc(bad);
    expect_error(kpc::errc::corrupt_data, target, bad);
    bad = image;
    bad[29] = std::byte{8};  // an option flag no kpc defines
    fix_crc(bad);
    expect_error(kpc::errc::corrupt_data, target, bad);
  }
  SUBCASE("a good image still restores") {
    target.restore(image.data(), image.size());
    CHECK(target.save() == image);
  }
}

TEST_CASE("append refuses NaN, overflow of the capacity and bad shapes, changing nothing") {
  using Cache = kpc::KVCache<K4, V4>;
  auto gen = kpc_test::rng(2013);
  const std::size_t heads = 2, dim = 32;
  std::vector<float> rows = kv_rows(80, heads, dim, gen);
  Cache c = filled<Cache>(rows, 45, heads, dim, 80);
  const std::vector<std::byte> before = c.save();
  std::vector<float> bad(rows.begin() + 45 * heads * dim, rows.end());
  const std::size_t later_tile = (70 - 45) * heads * dim + 5;  // token 70: a later tile than the open one
  bad[later_tile] = std::nanf("");
  CHECK(code_of([&] { c.append(bad.data(), rows.data(), 35); }) == kpc::errc::non_finite);
  CHECK(code_of([&] { c.append(rows.data(), bad.data(), 35); }) == kpc::errc::non_finite);
  bad[later_tile] = 1e30f;  // finite, beyond the fp16 metadata
  CHECK(code_of([&] { c.append(bad.data(), rows.data(), 35); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { c.append(rows.data(), rows.data(), 36); }) == kpc::errc::buffer_too_small);
  CHECK(code_of([&] { c.append(rows.data(), dim, rows.data(), heads * dim, 3); }) == kpc::errc::invalid_shape);
  CHECK(code_of([&] { c.append(static_cast<const float*>(nullptr), rows.data(), 3); }) == kpc::errc::null_pointer);
  CHECK(c.save() == before);
  c.append(rows.data() + 45 * heads * dim, rows.data() + 45 * heads * dim, 35);  // and it still works
  check_equals_encoding(c, rows, 80);
}

TEST_CASE("other refusals: shapes, ranges, heads") {
  using Cache = kpc::KVCache<K4, V4>;
  CHECK(code_of([] { Cache(0, 32, 10, plain); }) == kpc::errc::invalid_shape);
  CHECK(code_of([] { Cache(1, 0, 10, plain); }) == kpc::errc::invalid_shape);
  CHECK(code_of([] { Cache(1, 48, 10, plain); }) == kpc::errc::invalid_shape);     // V blocks of 32
  CHECK(code_of([] { Cache(3, 32768, 10, plain); }) == kpc::errc::invalid_shape);  // > 65536 channels
  CHECK(code_of([] { Cache(1, 32, std::size_t{1} << 62, plain); }) == kpc::errc::invalid_shape);
  CHECK(code_of([] { (void)Cache::memory_bytes(1, 32, ~std::size_t{0}, plain); }) == kpc::errc::invalid_shape);
  Cache c(2, 32, 10, plain);
  std::vector<float> rows(10 * 64, 0.5f), out(64);
  c.append(rows.data(), rows.data(), 6);
  CHECK(code_of([&] { c.truncate(7); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { (void)c.copy_range(4, 3); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { (void)c.copy_range(0, 7); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { (void)c.copy_range(0, 6, 5); }) == kpc::errc::buffer_too_small);
  CHECK(code_of([&] { (void)c.k_data(2); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { c.attend_prefix(0, 7, rows.data(), 1, {}, out.data()); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { c.decode_k(0, 5, 2, out.data()); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { c.shift_positions(7, 1.0, {}); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { c.shift_positions(0, 1.0, {kpc::rope_style::normal, -1.0, 0, 1.0}); }) == kpc::errc::out_of_range);
  CHECK(c.size() == 6);
  Cache empty(1, 32, 0, plain);  // capacity 0: a valid cache that holds nothing
  CHECK(code_of([&] { empty.append(rows.data(), rows.data(), 1); }) == kpc::errc::buffer_too_small);
  CHECK(empty.save().size() == 64);
}

// ---- cache_options ----------------------------------------------------------------------------

namespace {

kpc::cache_options make_options(std::size_t sinks, std::size_t recent, bool center, bool rotate_k, bool rotate_v) {
  kpc::cache_options o;
  o.sink_tokens = sinks;
  o.recent_tiles = recent;
  o.center_keys = center;
  o.rotate_keys = rotate_k;
  o.rotate_values = rotate_v;
  return o;
}

// Each option alone, and all together.
const kpc::cache_options option_sets[] = {
    make_options(4, 0, false, false, false), make_options(0, 1, false, false, false),
    make_options(0, 0, true, false, false),  make_options(0, 0, false, true, false),
    make_options(0, 0, false, false, true),  make_options(4, 2, true, true, true)};

std::string describe(const kpc::cache_options& o) {
  return "sinks " + std::to_string(o.sink_tokens) + ", recent tiles " + std::to_string(o.recent_tiles) +
         (o.center_keys ? ", centered" : "") + (o.rotate_keys ? ", rotated K" : "") + (o.rotate_values ? ", rotated V" : "");
}

// The options' definition, written out: head h's K tiles encode the keys of [0, tokens) minus mu
// (the mean of the first tile's non-sink keys), rotated, with the sinks' rows of tile 0 replaced by
// the first other token's (zeros when there is none); its V rows encode the rotated values.
template <class Cache>
std::vector<float> model_keys(const kpc::cache_options& o, const std::vector<float>& rows, std::size_t tokens,
                              std::size_t heads, std::size_t dim, std::size_t h) {
  const std::size_t G = Cache::tile_tokens, S = std::min(o.sink_tokens, tokens), end0 = std::min(tokens, G);
  std::vector<float> mu(dim, 0.0f), x(tokens * dim);
  if (o.center_keys && end0 > S)
    for (std::size_t c = 0; c < dim; ++c) {
      double sum = 0.0;
      for (std::size_t t = S; t < end0; ++t) sum += rows[(t * heads + h) * dim + c];
      mu[c] = static_cast<float>(sum / static_cast<double>(end0 - S));
    }
  for (std::size_t t = 0; t < tokens; ++t) {
    for (std::size_t c = 0; c < dim; ++c) x[t * dim + c] = rows[(t * heads + h) * dim + c] - mu[c];
    if (o.rotate_keys) kpc::hadamard_rotate(x.data() + t * dim, dim, kpc::hadamard_block(dim));
  }
  for (std::size_t t = 0; t < S; ++t)
    for (std::size_t c = 0; c < dim; ++c) x[t * dim + c] = S < end0 ? x[S * dim + c] : 0.0f;
  return x;
}
template <class Cache>
void check_options_encoding(const Cache& c, const std::vector<float>& rows, std::size_t tokens) {
  using KF = typename Cache::k_format;
  using VF = typename Cache::v_format;
  REQUIRE(c.size() == tokens);
  const std::size_t heads = c.kv_heads(), dim = c.head_dim();
  for (std::size_t h = 0; h < heads; ++h) {
    const std::vector<float> keys = model_keys<Cache>(c.options(), rows, tokens, heads, dim, h);
    std::vector<std::byte> k(KF::encoded_bytes(tokens, dim)), v(VF::encoded_bytes(tokens, dim));
    KF::encode(keys.data(), tokens, dim, k.data());
    std::vector<float> values(tokens * dim);
    for (std::size_t t = 0; t < tokens; ++t) {
      std::copy_n(rows.data() + (t * heads + h) * dim, dim, values.data() + t * dim);
      if (c.options().rotate_values) kpc::hadamard_rotate(values.data() + t * dim, dim, kpc::hadamard_block(dim));
    }
    VF::encode(values.data(), tokens, dim, v.data());
    CHECK(k_of(c, h) == k);
    CHECK(v_of(c, h) == v);
  }
}

template <class Cache>
Cache filled_with(const kpc::cache_options& o, const std::vector<float>& rows, std::size_t tokens, std::size_t heads,
                  std::size_t dim, std::size_t capacity) {
  Cache c(heads, dim, capacity, o);
  c.append(rows.data(), rows.data(), tokens);
  return c;
}

}  // namespace

TEST_CASE_TEMPLATE("cache_options: appends in any chunking hold the options' definition, byte for byte", Case,
                   cache_case<K4, V4>, cache_case<kpc::Quantizer<3, kpc::PerChannel<64>>, kpc::Quantizer<3, kpc::PerToken<32>>>) {
  using Cache = typename Case::cache;
  const std::size_t G = Cache::tile_tokens, heads = 2, dim = 64, tokens = 3 * G + 5;
  auto gen = kpc_test::rng(2101 + G);
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  std::uniform_int_distribution<std::size_t> chunk_size(1, G + 9);
  for (const kpc::cache_options& o : option_sets) {
    const std::string options = describe(o);
    CAPTURE(options);
    for (const std::size_t fixed : {std::size_t{1}, std::size_t{0} /* random */, tokens}) {
      CAPTURE(fixed);
      Cache c(heads, dim, tokens, o);
      for (std::size_t t = 0; t < tokens;) {
        const std::size_t n = std::min(fixed != 0 ? fixed : chunk_size(gen), tokens - t);
        c.append(rows.data() + t * heads * dim, rows.data() + t * heads * dim, n);
        t += n;
        check_options_encoding(c, rows, t);
      }
    }
  }
}

TEST_CASE("cache_options: attention = f64 softmax over the sinks, the codes and the recent window") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t G = Cache::tile_tokens, heads = 2, dim = 64, group = 3;
  auto gen = kpc_test::rng(2102);
  const std::vector<float> rows = kv_rows(4 * G + 9, heads, dim, gen);
  const std::vector<float> q = kpc_test::gaussian(group * dim, gen, 0.3f);
  const float sink_logits[group] = {1.0f, -2.0f, 0.5f};
  double worst = 0.0;
  for (const kpc::cache_options& o : option_sets)
    for (const std::size_t tokens : {std::size_t{1}, std::size_t{3}, G + 1, 4 * G + 9}) {
      const std::string options = describe(o);
      CAPTURE(options);
      CAPTURE(tokens);
      const Cache c = filled_with<Cache>(o, rows, tokens, heads, dim, 4 * G + 9);
      for (std::size_t h = 0; h < heads; ++h) {
        // What attention reads: the sinks and the recent window exactly, the rest decoded.
        std::vector<float> k(tokens * dim), v(tokens * dim);
        c.decode_k(h, 0, tokens, k.data());
        c.decode_v(h, 0, tokens, v.data());
        for (std::size_t t = 0; t < tokens; ++t)
          if (t < c.sinks() || t >= c.recent_from())
            for (std::size_t i = 0; i < dim; ++i) {
              REQUIRE(k[t * dim + i] == rows[(t * heads + h) * dim + i]);
              REQUIRE(v[t * dim + i] == rows[(t * heads + h) * dim + i]);
            }
        for (const kpc::attention_params p : {kpc::attention_params{}, kpc::attention_params{0.2f, 20.0f, sink_logits}}) {
          std::vector<float> out(group * dim);
          c.attend(h, q.data(), group, p, out.data());
          const double err = kpc_test::relative_error(out, kpc_test::reference_attention(q, group, k, v, tokens, dim, p));
          worst = std::max(worst, err);
          CHECK(err <= 1e-5);
          if (tokens > 5) {  // a causal prefix
            c.attend_prefix(h, tokens - 5, q.data(), group, p, out.data());
            CHECK(kpc_test::relative_error(out, kpc_test::reference_attention(q, group, k, v, tokens - 5, dim, p)) <= 1e-5);
          }
        }
      }
    }
  MESSAGE("worst relative error against f64 over what attention reads: " << worst);
}

TEST_CASE("center_keys: offsets of hundreds of spreads cost nothing; sink_tokens: an outlier first token neither") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t heads = 1, dim = 64, tokens = 256;
  auto gen = kpc_test::rng(2103);
  const std::vector<float> plain = kpc_test::gaussian(tokens * dim, gen);
  std::vector<float> offset = plain, outlier = plain;
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t c = dim - 4; c < dim; ++c) offset[t * dim + c] += (c % 2 ? 300.0f : -250.0f);  // Qwen2-style, 300 sigma
  for (std::size_t c = 0; c < dim; c += 5) outlier[c] = 80.0f;  // token 0: outliers in many channels
  const auto key_error = [&](const std::vector<float>& rows, const kpc::cache_options& o, std::size_t from) {
    const Cache c = filled_with<Cache>(o, rows, tokens, heads, dim, tokens);
    std::vector<float> k(tokens * dim);
    c.decode_k(0, 0, tokens, k.data());
    double err = 0.0, ref = 0.0;
    for (std::size_t i = from * dim; i < tokens * dim; ++i) {
      err += (k[i] - rows[i]) * (k[i] - rows[i]);
      ref += plain[i] * plain[i];
    }
    return err / ref;
  };
  const kpc::cache_options none, centered = make_options(0, 0, true, false, false), sinks = make_options(1, 0, false, false, false);
  const double base = key_error(plain, none, 0);
  MESSAGE("K4 relative MSE: plain " << base << ", offset " << key_error(offset, none, 0) << ", offset centered "
                                    << key_error(offset, centered, 0));
  CHECK(key_error(offset, centered, 0) <= 1.1 * base);   // the offsets are gone
  CHECK(key_error(offset, none, 0) >= 2.0 * base);        // (what the 8-bit minimums' step costs without)
  const double with_sink = key_error(outlier, sinks, 1), without = key_error(outlier, none, 1);
  MESSAGE("tokens 1..: outlier token 0 as a sink " << with_sink << ", in tile 0 " << without);
  CHECK(with_sink <= 1.1 * base);
  CHECK(without >= 2.0 * with_sink);
}

TEST_CASE("cache_options: truncate, copy_range, shift_positions and save/restore keep the definition") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t G = Cache::tile_tokens, heads = 2, dim = 32, tokens = 4 * G + 7;
  auto gen = kpc_test::rng(2104);
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  for (const kpc::cache_options& o : option_sets) {
    const std::string options = describe(o);
    CAPTURE(options);
    const Cache full = filled_with<Cache>(o, rows, tokens, heads, dim, tokens + 10);
    for (std::size_t n = 0; n <= tokens; ++n) {  // rollback within the held values (or to whole tiles) is exact
      if (n < full.originals_from() && n % G != 0) continue;
      CAPTURE(n);
      Cache c = full.copy_range(0, tokens);
      c.truncate(n);
      check_options_encoding(c, rows, n);
      c.append(rows.data() + n * heads * dim, rows.data() + n * heads * dim, tokens - n);
      CHECK(c.save() == full.save());
    }
    Cache deep = full.copy_range(0, tokens);
    deep.truncate(G + 5);  // below the held values: a valid cache, attention as the f64 model of what it reads
    REQUIRE(deep.size() == G + 5);
    CHECK(deep.recent_from() >= deep.originals_from());
    for (const std::size_t n : {std::size_t{0}, G, 2 * G + 1, tokens}) {  // prefix forks equal fresh caches
      CAPTURE(n);
      if (n >= full.originals_from() || n % G == 0) check_options_encoding(full.copy_range(0, n), rows, n);
    }
    const Cache range = full.copy_range(G + 3, tokens);  // an unaligned start: the keys encoded anew
    REQUIRE(range.size() == tokens - G - 3);
    std::vector<float> a(range.size() * dim), b(range.size() * dim);
    full.decode_k(1, G + 3, range.size(), a.data());
    range.decode_k(1, 0, range.size(), b.data());
    CHECK(kpc_test::relative_mse(a, b, dim) < 2e-2);
    // RoPE shift of a cache whose first tile is open: the cache of the rotated keys, exactly.
    const std::size_t small = G - 7;
    Cache shifted = filled_with<Cache>(o, rows, small, heads, dim, tokens);
    shifted.shift_positions(3, 17.0, {kpc::rope_style::neox, 1e4, 0, 1.0});
    std::vector<float> rotated(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(small * heads * dim));
    kpc::rope_shift(rotated.data() + 3 * heads * dim, (small - 3) * heads, dim, dim, 17.0, {kpc::rope_style::neox, 1e4, 0, 1.0});
    Cache expected(heads, dim, tokens, o);
    expected.append(rotated.data(), rows.data(), small);
    CHECK(shifted.save() == expected.save());
    // save / load: the same bytes and the same attention.
    const std::vector<std::byte> image = full.save();
    const Cache loaded = Cache::load(image.data(), image.size(), tokens + 10);
    CHECK(loaded.options() == o);
    CHECK(loaded.save() == image);
    std::vector<float> q = kpc_test::gaussian(2 * dim, gen), out1(2 * dim), out2(2 * dim);
    full.attend(1, q.data(), 2, {}, out1.data());
    loaded.attend(1, q.data(), 2, {}, out2.data());
    CHECK(out1 == out2);
    Cache other(heads, dim, tokens + 10, make_options(o.sink_tokens == 0 ? 1 : 0, 0, false, false, false));
    expect_error(kpc::errc::invalid_shape, other, image);  // saved with other options
  }
}

TEST_CASE("cache_options: a restore checks the sinks, the live centering vector and the open tile") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t heads = 1, dim = 32, tokens = 20;  // the first tile is open: mu is its tokens' mean
  auto gen = kpc_test::rng(2105);
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  const kpc::cache_options o = make_options(2, 1, true, false, false);
  const Cache source = filled_with<Cache>(o, rows, tokens, heads, dim, 40);
  const std::vector<std::byte> image = source.save();
  Cache target(heads, dim, 40, o);
  // Payload: tile, V rows, held K, held V, sinks (K, V), mu; each edit keeps a valid CRC.
  const std::size_t floats_at = 64 + K4::tile_bytes(dim) + tokens * V4::row_bytes(dim);
  const std::size_t mu_at = image.size() - dim * 4, sink_at = mu_at - 2 * 2 * dim * 4;
  std::vector<std::byte> bad = image;
  bad[mu_at] ^= std::byte{1};  // mu one ulp off
  fix_crc(bad);
  expect_error(kpc::errc::corrupt_data, target, bad);
  bad = image;
  kpc::detail::put_le(bad.data() + sink_at, 0x7FC00000u, 4);  // a sink key becomes NaN
  fix_crc(bad);
  expect_error(kpc::errc::corrupt_data, target, bad);
  bad = image;
  kpc::detail::put_le(bad.data() + floats_at + 5 * dim * 4, 0x41200000u, 4);  // a held key changes: the tile differs
  fix_crc(bad);
  expect_error(kpc::errc::corrupt_data, target, bad);
  target.restore(image.data(), image.size());
  CHECK(target.save() == image);
}

TEST_CASE("cache_options: memory_bytes counts everything, streaming allocates nothing, refusals") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t heads = 2, dim = 64, capacity = 300;
  auto gen = kpc_test::rng(2106);
  const std::vector<float> rows = kv_rows(capacity, heads, dim, gen);
  const kpc::cache_options o = make_options(4, 2, true, true, true);
  std::vector<float> q(2 * dim, 0.1f), out(2 * dim);
  {  // per-thread scratch (SIMD kernels, rotated queries and outputs) on first use
    Cache warm_up(heads, dim, 40, o);
    warm_up.append(rows.data(), rows.data(), 40);
    warm_up.attend(0, q.data(), 2, {}, out.data());
  }
  counted_bytes = counted_calls = 0;
  counting = true;
  Cache c(heads, dim, capacity, o);
  counting = false;
  CHECK(counted_bytes == Cache::memory_bytes(heads, dim, capacity, o));
  CHECK(counted_calls == 1);
  // Beyond the plain cache: held values of 3 tiles (recent_tiles + 1) for K and V instead of 2 for
  // K, the sinks' keys and values, mu and an append's next mu, a tile of f32 work space.
  const auto r64 = [](std::size_t n) { return (n + 63) / 64 * 64; };
  const std::size_t held = r64(32 * dim * 4);
  CHECK(Cache::memory_bytes(heads, dim, capacity, o) - Cache::memory_bytes(heads, dim, capacity, {}) ==
        heads * (3 * 2 - 2) * held + 2 * heads * r64(4 * dim * 4) + 2 * heads * r64(dim * 4) + held);
  counted_bytes = counted_calls = 0;
  counting = true;
  for (std::size_t t = 0; t < capacity; t += 7)
    c.append(rows.data() + t * heads * dim, rows.data() + t * heads * dim, std::min<std::size_t>(7, capacity - t));
  c.truncate(capacity - 5);
  c.attend(1, q.data(), 2, {}, out.data());
  counting = false;
  CHECK(counted_calls == 0);

  CHECK(Cache(1, 32, 10).options() == kpc::cache_options::recommended());  // the default
  CHECK(Cache::memory_bytes(1, 32, 10) == Cache::memory_bytes(1, 32, 10, kpc::cache_options::recommended()));
  CHECK(code_of([] { Cache(1, 32, 10, make_options(17, 0, false, false, false)); }) == kpc::errc::invalid_shape);
  CHECK(code_of([] { Cache(1, 32, 10, make_options(0, 65, false, false, false)); }) == kpc::errc::invalid_shape);
  CHECK(code_of([] { kpc::KVCache<kpc::Quantizer<4, kpc::PerChannel<32>>, V4>(1, 32, 10, make_options(16, 0, false, false, false)); }) ==
        kpc::errc::ok);
  Cache d(heads, dim, 50, o);
  d.append(rows.data(), rows.data(), 2);
  const std::vector<std::byte> before = d.save();
  std::vector<float> bad(rows.begin(), rows.begin() + 4 * heads * dim);
  bad[2 * heads * dim + dim + 7] = std::nanf("");  // token 2 (a sink), head 1: its key is never encoded
  CHECK(code_of([&] { d.append(bad.data(), rows.data(), 4); }) == kpc::errc::non_finite);
  CHECK(d.save() == before);
}

// ---- hardening: failed operations change nothing; sized forms; errors that say where ---------

TEST_CASE("shift_positions that would overflow fp16 halfway changes nothing (strong guarantee)") {
  for (const kpc::cache_options& o : {plain, kpc::cache_options::recommended()}) {
    const std::string options = describe(o);
    CAPTURE(options);
    kpc::KVCache<K4, V4> c(1, 64, 100, o);
    const std::vector<float> k(40 * 64, -50000.0f), v(40 * 64, 0.5f);
    c.append(k, v, 40);
    const std::vector<std::byte> before = c.save();
    const kpc::errc code = code_of([&] { c.shift_positions(0, 1.0, {}); });
    // A rotated pair (-50000, -50000) reaches -69070: beyond fp16 without centering.
    if (o == plain) CHECK(code == kpc::errc::out_of_range);
    if (code != kpc::errc::ok) CHECK(c.save() == before);
    std::vector<float> keys(40 * 64);
    c.decode_k(0, 0, 40, keys);  // and the cache still decodes
  }
}

TEST_CASE("restore refuses what later operations could not use: bad fields, unencodable held values") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t heads = 2, dim = 32, tokens = 45;
  auto gen = kpc_test::rng(2201);
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  const Cache source = filled<Cache>(rows, tokens, heads, dim, 64);
  const std::vector<std::byte> image = source.save();
  const std::size_t tiles = K4::encoded_bytes(tokens, dim), v_rows = tokens * V4::row_bytes(dim);
  Cache target = filled<Cache>(rows, 20, heads, dim, 64);
  std::vector<std::byte> bad = image;
  bad[64 + tiles + 0 * K4::tile_bytes(dim) + 1] = std::byte{0x7C};  // head 1, sealed tile 0: its scale step is Inf
  fix_crc(bad);
  expect_error(kpc::errc::corrupt_data, target, bad);
  bad = image;
  bad[64 + 2 * tiles + v_rows + 3 * V4::row_bytes(dim) + 1] = std::byte{0x7E};  // head 1's V row 3: d NaN
  fix_crc(bad);
  expect_error(kpc::errc::corrupt_data, target, bad);
  bad = image;  // head 1's last held key becomes 1e30: finite, but no fp16 minimum holds it
  kpc::detail::put_le(bad.data() + bad.size() - 4, 0x7149F2CAu, 4);
  fix_crc(bad);
  try {
    target.restore(bad.data(), bad.size());
    FAIL("a held value of 1e30 was accepted");
  } catch (const kpc::error& e) {
    CHECK(e.code() == kpc::errc::corrupt_data);  // the documented code, not out_of_range
    CHECK(std::string(e.what()).find("head 1") != std::string::npos);
  }
  CHECK(target.size() == 20);
}

TEST_CASE("after a rollback, originals_from() still says how far an exact rollback reaches") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t G = 32, heads = 1, dim = 32, tokens = 4 * G + 7;
  auto gen = kpc_test::rng(2202);
  const std::vector<float> rows = kv_rows(tokens, heads, dim, gen);
  Cache c = filled<Cache>(rows, tokens, heads, dim, tokens);
  c.truncate(3 * G + 2);  // within the held values: exact
  check_equals_encoding(c, rows, 3 * G + 2);
  for (std::size_t n = c.originals_from(); n <= c.size(); ++n) {  // every rollback it promises is exact
    Cache d = c.copy_range(0, c.size());
    d.truncate(n);
    check_equals_encoding(d, rows, n);
  }
  CHECK(c.originals_from() == 3 * G);  // a fresh cache of 3G + 2 tokens would hold from 2G: this one cannot
}

TEST_CASE("sized appends, in-place and all-heads attention, load's capacity and memory cap, errors that say where") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t heads = 3, dim = 64, group = 2;
  auto gen = kpc_test::rng(2203);
  const std::vector<float> rows = kv_rows(50, heads, dim, gen);
  Cache c(heads, dim, 100);
  const std::vector<float> one_short(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(10 * heads * dim - 1));
  CHECK(code_of([&] { c.append(one_short, rows, 10); }) == kpc::errc::buffer_too_small);  // no read past its end
  c.append(rows, rows, 50);
  // attend_all = attend per KV head; f16 queries and output through f32.
  const std::vector<float> q = kpc_test::gaussian(heads * group * dim, gen, 0.3f);
  std::vector<float> all(q.size()), each(q.size());
  c.attend_all(q, heads * group, {}, all);
  for (std::size_t h = 0; h < heads; ++h)
    c.attend(h, kpc::span<const float>(q.data() + h * group * dim, group * dim), group, {},
             kpc::span<float>(each.data() + h * group * dim, group * dim));
  CHECK(all == each);
  std::vector<kpc::half> q16(q.size()), out16(q.size());
  for (std::size_t i = 0; i < q.size(); ++i) q16[i] = kpc::half(q[i]);
  c.attend_all(q16, heads * group, {}, out16);
  for (std::size_t i = 0; i < q.size(); ++i) CHECK(static_cast<float>(out16[i]) == doctest::Approx(all[i]).epsilon(2e-2).scale(0.05));
  CHECK(code_of([&] { c.attend_all(q, 5, {}, all); }) == kpc::errc::invalid_shape);  // not a multiple of kv_heads
  // The heads spread over a caller's parallel-for on real threads: the same bytes, every head once,
  // in place too; an error in a head reaches the caller after all ran.
  std::vector<std::size_t> runs(heads, 0);
  const auto threads = [&](std::size_t n, const auto& task) {
    std::vector<std::thread> pool;
    for (std::size_t i = 0; i < n; ++i) pool.emplace_back([&task, &runs, i] { ++runs[i], task(i); });
    for (std::thread& t : pool) t.join();
  };
  std::vector<float> spread(q.size());
  c.attend_all(q, heads * group, {}, spread, threads);
  CHECK(spread == all);
  CHECK(runs == std::vector<std::size_t>(heads, 1));
  std::vector<float> in_place = q;
  c.attend_all(in_place, heads * group, {}, in_place, threads);
  CHECK(in_place == all);
  std::vector<kpc::half> spread16(q.size());
  c.attend_all(q16, heads * group, {}, spread16, threads);
  for (std::size_t i = 0; i < q.size(); ++i) CHECK(spread16[i].bits == out16[i].bits);
  std::vector<float> huge(q.size(), 1e37f);
  CHECK(code_of([&] { c.attend_all(huge, heads * group, {}, spread, threads); }) == kpc::errc::out_of_range);
  CHECK(code_of([&] { c.attend(0, q, group, {}, kpc::span<float>(all.data(), group * dim - 1)); }) == kpc::errc::buffer_too_small);
  // Errors name the head, the cache position and the channel.
  std::vector<float> bad(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(4 * heads * dim));
  bad[(2 * heads + 1) * dim + 9] = std::nanf("");
  try {
    c.append(bad, rows, 4);
    FAIL("NaN accepted");
  } catch (const kpc::error& e) {
    const std::string what = e.what();
    CHECK(what.find("key of head 1 at cache position 52, channel 9") != std::string::npos);
  }
  try {
    Cache(1, 48, 10);
    FAIL("head_dim 48 accepted");
  } catch (const kpc::error& e) {
    CHECK(std::string(e.what()).find("head_dim 48") != std::string::npos);
  }
  const std::vector<std::byte> image = c.save();
  kpc::KVCache<kpc::Quantizer<4, kpc::PerChannel<64>>, kpc::q8_0> other(heads, dim, 100);
  try {
    other.restore(image.data(), image.size());
    FAIL("another format accepted");
  } catch (const kpc::error& e) {
    const std::string what = e.what();
    CHECK(what.find("K4 G32 / V4 (q4_1)") != std::string::npos);
    CHECK(what.find("K4 G64 / V8 (q8_0)") != std::string::npos);
  }
  // load: the capacity is the caller's; max_bytes caps what a container may make it allocate.
  CHECK(code_of([&] { (void)Cache::load(image.data(), image.size(), 49); }) == kpc::errc::buffer_too_small);
  const Cache loaded = Cache::load(image.data(), image.size(), 200);
  CHECK(loaded.capacity() == 200);
  Cache wide(1, 65536, 0, plain);  // a 64-byte container that asks for 65536 channels
  const std::vector<std::byte> tiny = wide.save();
  REQUIRE(tiny.size() == 64);
  counted_bytes = 0;
  counting = true;
  CHECK(code_of([&] { (void)Cache::load(tiny.data(), tiny.size(), 0, 1 << 20); }) == kpc::errc::buffer_too_small);
  counting = false;
  CHECK(counted_bytes < 4096);  // refused before the cache was allocated
  CHECK(Cache::memory_bytes(1, 65536, 0, plain) > (std::size_t{16} << 20));
}

TEST_CASE("operation sequences with injected failures: every refused operation leaves the cache as it was") {
  using Cache = kpc::KVCache<K4, V4>;
  const std::size_t heads = 2, dim = 32, capacity = 300;
  auto gen = kpc_test::rng(2204);
  for (const kpc::cache_options& o : {plain, kpc::cache_options::recommended(), make_options(4, 2, true, true, true)}) {
    const std::string options = describe(o);
    CAPTURE(options);
    Cache c(heads, dim, capacity, o);
    // The V bytes each head must hold: a token's V row depends on that token alone, so they follow
    // every operation exactly (what an append encodes, a prefix, a suffix, a restored image).
    std::vector<std::vector<std::byte>> model_v(heads);
    const std::size_t row = V4::row_bytes(dim);
    std::uniform_int_distribution<int> pick(0, 9);
    for (int step = 0; step < 150; ++step) {
      CAPTURE(step);
      const std::vector<std::byte> before = c.save();
      const int op = pick(gen);
      kpc::errc code = kpc::errc::ok;
      if (op <= 3) {  // append 1..40 tokens, sometimes with a NaN or a value fp16 cannot hold
        const std::size_t n = std::min<std::size_t>(1 + gen() % 40, capacity - c.size());
        std::vector<float> k = kv_rows(n, heads, dim, gen), v = kpc_test::gaussian(n * heads * dim, gen);
        const int fault = static_cast<int>(gen() % 6);
        if (n != 0 && fault == 0) k[gen() % k.size()] = std::nanf("");
        if (n != 0 && fault == 1) v[gen() % v.size()] = 1e30f;
        code = code_of([&] { c.append(k, v, n); });
        if (code == kpc::errc::ok)
          for (std::size_t h = 0; h < heads; ++h) {
            std::vector<float> values = v;
            for (std::size_t t = 0; o.rotate_values && t < n; ++t)
              kpc::hadamard_rotate(values.data() + (t * heads + h) * dim, dim, kpc::hadamard_block(dim));
            const std::vector<std::byte> bytes = encode_head<V4>(values, 0, n, heads, dim, h);
            model_v[h].insert(model_v[h].end(), bytes.begin(), bytes.end());
          }
      } else if (op <= 5) {  // roll back, sometimes past the end (refused)
        const std::size_t n = gen() % (c.size() + 3);
        code = code_of([&] { c.truncate(n); });
        if (code == kpc::errc::ok)
          for (auto& bytes : model_v) bytes.resize(n * row);
      } else if (op == 6) {  // a RoPE shift, sometimes huge
        const double delta = gen() % 4 == 0 ? 1e300 * 10 : static_cast<double>(gen() % 200) - 100.0;
        code = code_of([&] { c.shift_positions(c.size() / 2, delta, {}); });
      } else if (op == 7) {  // a fork replaces the cache
        // (keys decoded from an accepted damaged image may be beyond what an encoder takes: then
        // copy_range refuses, and c is untouched since copy_range is const)
        const std::size_t first = c.size() == 0 ? 0 : gen() % c.size();
        code = code_of([&] { c = c.copy_range(first, c.size(), capacity); });
        if (code == kpc::errc::ok)
          for (auto& bytes : model_v) bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(first * row));
      } else {  // save, damage a byte (CRC fixed), restore: refused and unchanged, or accepted exactly
        std::vector<std::byte> image = before;
        if (op == 8 && image.size() > 64) {
          image[64 + gen() % (image.size() - 64)] ^= static_cast<std::byte>(1u << (gen() % 8));
          fix_crc(image);
        }
        code = code_of([&] { c.restore(image.data(), image.size()); });
        if (code == kpc::errc::ok) CHECK(c.save() == image);
        if (code == kpc::errc::ok)  // a damaged code byte is data: follow it
          for (std::size_t h = 0; h < heads; ++h) model_v[h] = v_of(c, h);
      }
      if (code != kpc::errc::ok) CHECK(c.save() == before);
      // What must hold in every state: V rows are the model's, attention is the f64 softmax over
      // what it reads, and the container round-trips.
      for (std::size_t h = 0; h < heads; ++h) CHECK(v_of(c, h) == model_v[h]);
      const std::vector<float> q = kpc_test::gaussian(dim, gen, 0.3f);
      for (std::size_t h = 0; h < heads && c.size() != 0; ++h) {
        std::vector<float> k(c.size() * dim), v(c.size() * dim), out(dim);
        c.decode_k(h, 0, c.size(), k.data());
        c.decode_v(h, 0, c.size(), v.data());
        c.attend(h, q, 1, {}, out);
        // An accepted damaged image can hold keys and values of any fp16 size, so the bound is f32
        // rounding's: the logits' (relative to the largest logit) carried by the largest V row.
        const std::vector<double> want = kpc_test::reference_attention(q, 1, k, v, c.size(), dim, {});
        double top_logit = 0.0, top_value = 0.0, err = 0.0;
        for (std::size_t t = 0; t < c.size(); ++t) {
          double dot = 0.0, norm = 0.0;
          for (std::size_t i = 0; i < dim; ++i) {
            dot += static_cast<double>(q[i]) * k[t * dim + i];
            norm += static_cast<double>(v[t * dim + i]) * v[t * dim + i];
          }
          top_logit = std::max(top_logit, std::abs(dot) / std::sqrt(static_cast<double>(dim)));
          top_value = std::max(top_value, std::sqrt(norm));
        }
        for (std::size_t i = 0; i < dim; ++i) err += (out[i] - want[i]) * (out[i] - want[i]);
        CHECK(std::sqrt(err) <= 1e-5 * (1.0 + top_logit) * top_value);
      }
      const std::vector<std::byte> image = c.save();
      CHECK(Cache::load(image.data(), image.size(), capacity).save() == image);
    }
  }
}
