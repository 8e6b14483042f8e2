// SPDX-License-Identifier: MIT
// libFuzzer target for the example engine's GGUF reader (examples/llama/gguf.hpp): any input is
// refused with a gguf_error or parsed into tensors whose data lies inside the input, which are
// then read in full (dequantized with kpc's decoders). Built with -DKPC_FUZZ_WRITE_SEEDS it writes
// a small valid GGUF as the seed.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <kpc/kpc.hpp>
#include <string>
#include <vector>

#include "../../examples/llama/gguf.hpp"

#ifndef KPC_FUZZ_WRITE_SEEDS
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(size);
  if (size != 0) std::memcpy(bytes.data(), data, size);
  try {
    const llama::gguf_file file(std::move(bytes));
    if (const auto* v = file.find("general.architecture")) (void)v->index();
    for (const char* name : {"blk.0.attn_q.weight", "token_embd.weight", "t"}) {
      const llama::gguf_tensor* t = file.tensor(name);
      if (t == nullptr || t->dims[0] * t->rows() > (1u << 20)) continue;
      const std::size_t cols = t->dims[0], rows = t->rows();
      std::vector<float> out(cols * rows);
      try {
        switch (static_cast<llama::ggml_type>(t->type)) {
          case llama::ggml_type::q4_0: kpc::q4_0::decode(t->data, t->bytes, rows, cols, out.data(), cols); break;
          case llama::ggml_type::q4_1: kpc::q4_1::decode(t->data, t->bytes, rows, cols, out.data(), cols); break;
          case llama::ggml_type::q8_0: kpc::q8_0::decode(t->data, t->bytes, rows, cols, out.data(), cols); break;
          default: std::memcpy(out.data(), t->data, std::min(t->bytes, out.size() * sizeof(float))); break;
        }
      } catch (const kpc::error&) {
      }
    }
  } catch (const llama::gguf_error&) {
  }
  return 0;
}
#else
namespace {
void put(std::vector<std::uint8_t>& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}
template <class T>
void put(std::vector<std::uint8_t>& out, T value) {
  put(out, &value, sizeof value);
}
void put_string(std::vector<std::uint8_t>& out, const std::string& s) {
  put<std::uint64_t>(out, s.size());
  put(out, s.data(), s.size());
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR (writes a seed GGUF into DIR)\n", argv[0]);
    return 2;
  }
  std::vector<std::uint8_t> g;
  put<std::uint32_t>(g, 0x46554747u);  // "GGUF"
  put<std::uint32_t>(g, 3);
  put<std::uint64_t>(g, 1);  // tensors
  put<std::uint64_t>(g, 2);  // metadata
  put_string(g, "general.architecture");
  put<std::uint32_t>(g, 8);  // string
  put_string(g, "llama");
  put_string(g, "general.alignment");
  put<std::uint32_t>(g, 4);  // u32
  put<std::uint32_t>(g, 32);
  put_string(g, "t");
  put<std::uint32_t>(g, 2);  // dims
  put<std::uint64_t>(g, 64);
  put<std::uint64_t>(g, 2);
  put<std::uint32_t>(g, 3);  // q4_1
  put<std::uint64_t>(g, 0);  // offset
  while (g.size() % 32 != 0) g.push_back(0);
  std::vector<float> x(128);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 17) - 8.0f;
  std::vector<std::byte> q(kpc::q4_1::encoded_bytes(2, 64));
  kpc::q4_1::encode(x.data(), 2, 64, q.data());
  put(g, q.data(), q.size());
  const std::string path = std::string(argv[1]) + "/seed-gguf";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 1;
  std::fwrite(g.data(), 1, g.size(), f);
  std::fclose(f);
  std::printf("wrote %s (%zu bytes)\n", path.c_str(), g.size());
  return 0;
}
#endif
