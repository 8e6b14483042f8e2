// SPDX-License-Identifier: MIT
// Encodes a raw little-endian f32 file of [tokens][channels] values with one of kpc's ggml-compatible
// formats and writes the bytes, for tests/ggml/crosscheck.py to compare with llama.cpp's gguf-py.
#include <cstdio>
#include <cstdlib>
#include <kpc/kpc.hpp>
#include <string>
#include <vector>

namespace {
template <class Q>
std::vector<std::byte> encode(const std::vector<float>& x, std::size_t tokens, std::size_t channels) {
  std::vector<std::byte> bytes(Q::encoded_bytes(tokens, channels));
  Q::encode(x.data(), tokens, channels, bytes.data());
  return bytes;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s q4_0|q4_1|q8_0 tokens channels in.f32 out.bin\n", argv[0]);
    return 2;
  }
  const std::string format = argv[1];
  const std::size_t tokens = std::strtoull(argv[2], nullptr, 10), channels = std::strtoull(argv[3], nullptr, 10);
  std::vector<float> x(tokens * channels);
  std::FILE* in = std::fopen(argv[4], "rb");
  if (!in || std::fread(x.data(), sizeof(float), x.size(), in) != x.size()) {
    std::fprintf(stderr, "cannot read %zu floats from %s\n", x.size(), argv[4]);
    return 1;
  }
  std::fclose(in);
  std::vector<std::byte> bytes;
  if (format == "q4_0") bytes = encode<kpc::q4_0>(x, tokens, channels);
  else if (format == "q4_1") bytes = encode<kpc::q4_1>(x, tokens, channels);
  else if (format == "q8_0") bytes = encode<kpc::q8_0>(x, tokens, channels);
  else {
    std::fprintf(stderr, "unknown format %s\n", format.c_str());
    return 2;
  }
  std::FILE* out = std::fopen(argv[5], "wb");
  if (!out || std::fwrite(bytes.data(), 1, bytes.size(), out) != bytes.size()) return 1;
  return std::fclose(out) == 0 ? 0 : 1;
}
