// SPDX-License-Identifier: MIT
// kpc/kpc.hpp: the umbrella header alone is enough for the README's example.
#include <doctest/doctest.h>

#include <kpc/kpc.hpp>
#include <vector>

TEST_CASE("README example: K per channel and V per token through the umbrella header") {
  const std::size_t tokens = 100, channels = 128;  // e.g. one layer's 2 KV heads x 64
  std::vector<float> k(tokens * channels), v(tokens * channels), q(channels, 0.1f), w(tokens, 0.01f);
  for (std::size_t i = 0; i < k.size(); ++i) {
    k[i] = static_cast<float>(i % 97) * 0.01f + (i % channels == 5 ? 40.0f : 0.0f);  // an offset channel
    v[i] = static_cast<float>(i % 13) * 0.1f - 0.6f;
  }
  using KQ = kpc::Quantizer<4, kpc::PerChannel<32>>;
  using VQ = kpc::Quantizer<4, kpc::PerToken<32>>;  // ggml q4_1 bytes
  std::vector<std::byte> k_bytes(KQ::encoded_bytes(tokens, channels)), v_bytes(VQ::encoded_bytes(tokens, channels));
  KQ::encode(k.data(), tokens, channels, k_bytes.data());
  VQ::encode(v.data(), tokens, channels, v_bytes.data());

  std::vector<float> scores(tokens), out(channels, 0.0f);
  KQ::scores(q.data(), k_bytes.data(), tokens, channels, scores.data());  // q . k_t from the codes
  VQ::accumulate(w.data(), v_bytes.data(), tokens, channels, out.data());  // sum_t w_t v_t

  double exact = 0.0;
  for (std::size_t c = 0; c < channels; ++c) exact += 0.1 * k[c];
  CHECK(scores[0] == doctest::Approx(exact).epsilon(0.01));
  CHECK(k_bytes.size() == 4 * KQ::tile_bytes(channels));  // 100 tokens: 3 full tiles and a partial one
}
