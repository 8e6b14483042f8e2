// SPDX-License-Identifier: MIT
// The single-header drop-in (scripts/amalgamate.py): compiled with only the generated kpc.hpp on
// the include path, it must give what the tree gives: the version, byte-identical encodings
// through the public API, a working cache and decode attention.
#include "kpc.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#ifndef KPC_EXPECTED_VERSION
#error "the test passes the project version"
#endif

namespace {

int failures = 0;
void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  constexpr std::size_t tokens = 70, channels = 64;  // a partial third K tile
  std::mt19937 gen(2026);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> k(tokens * channels), v(tokens * channels);
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = normal(gen) + (i % channels == 3 ? 40.0f : 0.0f), v[i] = normal(gen);

  using K4 = kpc::Quantizer<4, kpc::PerChannel<32>>;
  std::vector<std::byte> k_bytes(K4::encoded_bytes(tokens, channels)), v_bytes(kpc::q4_1::encoded_bytes(tokens, channels));
  K4::encode(k.data(), tokens, channels, k_bytes.data());
  kpc::q4_1::encode(v.data(), tokens, channels, v_bytes.data());
  std::vector<float> k_out(k.size());
  K4::decode(k_bytes.data(), tokens, channels, k_out.data());
  double error = 0.0, energy = 0.0;
  for (std::size_t i = 0; i < k.size(); ++i)
    if (i % channels != 3) error += (k[i] - k_out[i]) * (k[i] - k_out[i]), energy += k[i] * k[i];
  std::printf("kpc %s (single header), %s kernels, K4 relative MSE %.2e\n", KPC_EXPECTED_VERSION,
              kpc::to_string(kpc::active_isa()), error / energy);
  check(error / energy < 1e-2, "K4 round trip on a channel beside a large offset");

  // The scalar reference writes the same bytes as whatever backend is active.
  std::vector<std::byte> reference(k_bytes.size());
  kpc::set_isa(kpc::isa::scalar);
  K4::encode(k.data(), tokens, channels, reference.data());
  kpc::reset_isa();
  check(std::memcmp(reference.data(), k_bytes.data(), k_bytes.size()) == 0, "active backend bytes == scalar bytes");

  // A streaming cache gives the same attention as decode_attention over one-shot slabs.
  kpc::KVCache<K4, kpc::q4_1> cache(1, channels, 128, kpc::cache_options{});  // the plain cache: its slabs are the formats' bytes
  for (std::size_t t = 0; t < tokens; ++t) cache.append(&k[t * channels], &v[t * channels], 1);
  std::vector<float> q(2 * channels), from_cache(2 * channels), from_slabs(2 * channels);
  for (float& x : q) x = normal(gen);
  cache.attend(0, q.data(), 2, {}, from_cache.data());
  kpc::decode_attention<K4, kpc::q4_1>(q.data(), 2, k_bytes.data(), k_bytes.size(), v_bytes.data(), v_bytes.size(),
                                       tokens, channels, {}, from_slabs.data());
  float largest = 0.0f;
  for (std::size_t i = 0; i < from_cache.size(); ++i) largest = std::fmax(largest, std::fabs(from_cache[i] - from_slabs[i]));
  check(largest < 1e-5f, "KVCache::attend == decode_attention over the same bytes");

  char version[32];
  std::snprintf(version, sizeof version, "%d.%d.%d", KPC_VERSION_MAJOR, KPC_VERSION_MINOR, KPC_VERSION_PATCH);
  check(std::strcmp(version, KPC_EXPECTED_VERSION) == 0, "KPC_VERSION_* == the CMake project version");
  return failures == 0 ? 0 : 1;
}
