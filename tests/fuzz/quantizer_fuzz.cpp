// SPDX-License-Identifier: MIT
// libFuzzer target for the entry points that read encoded bytes: Quantizer::decode (f32, f16),
// scores, scores_group, accumulate, accumulate_group and decode_attention (exact and, for the formats
// that have it, integer arithmetic: scores_group_integer / accumulate_group_integer), on every format. Input:
// a format byte, a tokens byte, a channels byte, then the slab's bytes (cut or zero-padded to its
// size). Bytes no encoder wrote may give any values or a kpc::error, never a crash or an access
// outside the buffers (ASan, UBSan), and a decode that succeeds gives finite values.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <kpc/kpc.hpp>
#include <vector>

namespace {

template <class Q>
void check_finite(const std::vector<float>& x) {
  for (float v : x)
    if (!std::isfinite(v)) std::abort();  // finite fp16 fields and bounded codes decode to finite values
}

template <class Q, bool PerToken>
void exercise(const std::uint8_t* data, std::size_t size, std::size_t tokens, std::size_t channels) {
  std::vector<std::byte> bytes(Q::encoded_bytes(tokens, channels), std::byte{0});
  std::memcpy(bytes.data(), data, std::min(size, bytes.size()));
  std::vector<float> x(tokens * channels), q(2 * channels, 0.25f), s(2 * tokens);
  try {
    Q::decode(kpc::span<const std::byte>(bytes), tokens, channels, kpc::span<float>(x));
    check_finite<Q>(x);
  } catch (const kpc::error&) {
  }
  std::vector<kpc::half> h(tokens * channels);
  try {
    Q::decode(kpc::span<const std::byte>(bytes), tokens, channels, kpc::span<kpc::half>(h));
  } catch (const kpc::error&) {
  }
  Q::scores(q, bytes, tokens, channels, kpc::span<float>(s.data(), tokens));
  Q::scores_group(q.data(), 2, bytes.data(), bytes.size(), tokens, channels, s.data());
  kpc::attention_params integer;
  integer.arithmetic = kpc::attention_arithmetic::integer;
  if constexpr (Q::format::integer_dot && !PerToken)
    Q::scores_group_integer(q.data(), 2, bytes.data(), bytes.size(), tokens, channels, s.data());
  if constexpr (PerToken) {
    std::vector<float> w(2 * tokens, 0.5f), out(2 * channels, 0.0f);
    Q::accumulate(kpc::span<const float>(w.data(), tokens), bytes, tokens, channels, kpc::span<float>(out.data(), channels));
    Q::accumulate_group(w.data(), 2, bytes.data(), bytes.size(), tokens, channels, out.data());
    if constexpr (Q::format::integer_dot)
      Q::accumulate_group_integer(w.data(), 2, bytes.data(), bytes.size(), tokens, channels, out.data());
    std::vector<std::byte> keys(kpc::q8_0::encoded_bytes(tokens, channels), std::byte{0});
    try {  // the slab as V behind zero keys, then as keys in front of itself
      kpc::decode_attention<kpc::q8_0, Q>(q.data(), 2, keys.data(), keys.size(), bytes.data(), bytes.size(), tokens,
                                          channels, {}, out.data());
      kpc::decode_attention<Q, Q>(q.data(), 2, bytes.data(), bytes.size(), bytes.data(), bytes.size(), tokens,
                                  channels, {}, out.data());
      kpc::decode_attention<Q, Q>(q.data(), 2, bytes.data(), bytes.size(), bytes.data(), bytes.size(), tokens,
                                  channels, integer, out.data());
    } catch (const kpc::error&) {  // logits beyond f32 are refused
    }
  } else if (channels % 32 == 0) {  // (V needs whole blocks)
    std::vector<std::byte> values(kpc::q4_1::encoded_bytes(tokens, channels), std::byte{0});
    std::vector<float> out(2 * channels);
    try {
      kpc::decode_attention<Q, kpc::q4_1>(q.data(), 2, bytes.data(), bytes.size(), values.data(), values.size(), tokens,
                                          channels, {}, out.data());
      kpc::decode_attention<Q, kpc::q4_1>(q.data(), 2, bytes.data(), bytes.size(), values.data(), values.size(), tokens,
                                          channels, integer, out.data());
    } catch (const kpc::error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const unsigned format = data[0] % 14;
  const std::size_t tokens = 1 + data[1] % 200;
  const std::size_t blocks = 1 + data[2] % 8, channels = format < 9 ? 1 + data[2] : 32 * blocks;
  data += 3;
  size -= 3;
  using namespace kpc;
  switch (format) {
    case 0: exercise<Quantizer<4, PerChannel<32>>, false>(data, size, tokens, channels); break;
    case 1: exercise<Quantizer<4, PerChannel<64>>, false>(data, size, tokens, channels); break;
    case 2: exercise<Quantizer<4, PerChannel<128>>, false>(data, size, tokens, channels); break;
    case 3: exercise<Quantizer<3, PerChannel<32>>, false>(data, size, tokens, channels); break;
    case 4: exercise<Quantizer<3, PerChannel<64>>, false>(data, size, tokens, channels); break;
    case 5: exercise<Quantizer<3, PerChannel<128>>, false>(data, size, tokens, channels); break;
    case 6: exercise<Quantizer<2, PerChannel<32>>, false>(data, size, tokens, channels); break;
    case 7: exercise<Quantizer<2, PerChannel<64>>, false>(data, size, tokens, channels); break;
    case 8: exercise<Quantizer<2, PerChannel<128>>, false>(data, size, tokens, channels); break;
    case 9: exercise<q8_0, true>(data, size, tokens, channels); break;
    case 10: exercise<q4_1, true>(data, size, tokens, channels); break;
    case 11: exercise<Quantizer<3, PerToken<32>>, true>(data, size, tokens, channels); break;
    case 12: exercise<q4_0, true>(data, size, tokens, channels); break;
    default: exercise<f16_rows, true>(data, size, tokens, channels); break;
  }
  return 0;
}
