// SPDX-License-Identifier: MIT
// A Llama-family forward pass (RMSNorm, RoPE, grouped-query attention, SwiGLU) over a window of
// tokens, in f32, with the weights of a GGUF file dequantized once at load. The KV cache is not
// the model's business: each layer's keys and values go to a layer_cache (see caches.hpp), which
// is where kpc comes in.
//
// The window is processed layer by layer: every token's projections are one matrix product, then
// the tokens enter the layer's cache one at a time, each attending to the cache as it is right
// after its own append, exactly as in token-by-token decoding (kpc re-encodes the open K tile on
// every append, so a query must not see tiles closed by later tokens).
#ifndef KPC_EXAMPLES_LLAMA_MODEL_HPP
#define KPC_EXAMPLES_LLAMA_MODEL_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <kpc/kpc.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include <xsimd/xsimd.hpp>

#include "caches.hpp"
#include "gguf.hpp"

namespace llama {

// ---- weights --------------------------------------------------------------------------------

/// Rows of a GGUF tensor (ggml's dims[0] is the row length) as f32. Q4_1, Q8_0 and Q4_0 are ggml
/// block formats kpc reads byte for byte (kpc::q4_1, kpc::q8_0, kpc::q4_0).
inline std::vector<float> dequantize(const gguf_tensor& t) {
  const std::size_t cols = t.dims[0], rows = t.rows();
  std::vector<float> out(rows * cols);
  switch (static_cast<ggml_type>(t.type)) {
    case ggml_type::f32: std::memcpy(out.data(), t.data, out.size() * sizeof(float)); break;
    case ggml_type::f16:
      for (std::size_t i = 0; i < out.size(); ++i) {
        kpc::half h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = kpc::to_float(h);
      }
      break;
    case ggml_type::q4_0: kpc::q4_0::decode(t.data, t.bytes, rows, cols, out.data(), cols); break;
    case ggml_type::q4_1: kpc::q4_1::decode(t.data, t.bytes, rows, cols, out.data(), cols); break;
    case ggml_type::q8_0: kpc::q8_0::decode(t.data, t.bytes, rows, cols, out.data(), cols); break;
  }
  return out;
}

using vec = xsimd::batch<float>;
inline constexpr std::size_t lanes = vec::size;
/// Outputs per panel: two SIMD registers wide.
inline constexpr std::size_t panel = 2 * lanes;

/// A weight matrix W [out][in] repacked for y = W x over many rows x: panels of `panel` outputs,
/// each stored [in][panel], so the inner loop reads one contiguous stream of weights.
struct matrix {
  std::size_t in = 0, out = 0;
  std::vector<float> packed;

  matrix() = default;
  matrix(const std::vector<float>& w, std::size_t in_dim, std::size_t out_dim) : in(in_dim), out(out_dim) {
    if (out % panel != 0) throw gguf_error("matrix outputs must be a multiple of " + std::to_string(panel));
    packed.resize(in * out);
    for (std::size_t p = 0; p < out / panel; ++p)
      for (std::size_t i = 0; i < in; ++i)
        for (std::size_t j = 0; j < panel; ++j) packed[(p * in + i) * panel + j] = w[(p * panel + j) * in + i];
  }
};

/// y[r][0, panel) = sum_i x[r][i] * panel[i][0, panel) for Rows rows: 2 x Rows accumulators stay in
/// registers while the weights stream past (the classic GEMM micro-kernel).
template <std::size_t Rows>
void matmul_tile(const float* x, std::size_t x_stride, const float* w, std::size_t in, float* y,
                 std::size_t y_stride) {
  vec lo[Rows], hi[Rows];
  for (std::size_t r = 0; r < Rows; ++r) lo[r] = hi[r] = vec(0.0f);
  for (std::size_t i = 0; i < in; ++i) {
    const vec w_lo = vec::load_unaligned(w + i * panel), w_hi = vec::load_unaligned(w + i * panel + lanes);
    for (std::size_t r = 0; r < Rows; ++r) {
      const vec xr(x[r * x_stride + i]);
      lo[r] = xsimd::fma(xr, w_lo, lo[r]);
      hi[r] = xsimd::fma(xr, w_hi, hi[r]);
    }
  }
  for (std::size_t r = 0; r < Rows; ++r) {
    lo[r].store_unaligned(y + r * y_stride);
    hi[r].store_unaligned(y + r * y_stride + lanes);
  }
}

/// y[rows][m.out] = x[rows][m.in] W^T. Rows go in blocks that stay in L2 while every panel of
/// weights passes once per block.
inline void matmul(const float* x, std::size_t rows, const matrix& m, float* y) {
  constexpr std::size_t tile = 6, block = 16 * tile;
  for (std::size_t r0 = 0; r0 < rows; r0 += block) {
    const std::size_t r_end = std::min(rows, r0 + block);
    for (std::size_t p = 0; p < m.out / panel; ++p) {
      const float* w = m.packed.data() + p * m.in * panel;
      std::size_t r = r0;
      for (; r + tile <= r_end; r += tile) matmul_tile<tile>(x + r * m.in, m.in, w, m.in, y + r * m.out + p * panel, m.out);
      for (; r < r_end; ++r) matmul_tile<1>(x + r * m.in, m.in, w, m.in, y + r * m.out + p * panel, m.out);
    }
  }
}

// ---- the model ------------------------------------------------------------------------------

struct hparams {
  std::size_t layers, embd, ffn, heads, kv_heads, head_dim, vocab, context;
  double rope_base, rms_eps;
  std::size_t group() const { return heads / kv_heads; }
  std::size_t kv_dim() const { return kv_heads * head_dim; }
};

struct layer_weights {
  std::vector<float> attn_norm, ffn_norm;
  matrix q, k, v, o, gate, up, down;
};

class model {
 public:
  explicit model(const std::string& path) {
    const gguf_file file(path);
    const std::string arch = file.string_value("general.architecture");
    if (arch != "llama") throw gguf_error("architecture " + arch + " is not llama");
    const auto key = [&](const char* name) { return arch + "." + name; };
    hp_.layers = file.uint_value(key("block_count"));
    hp_.embd = file.uint_value(key("embedding_length"));
    hp_.ffn = file.uint_value(key("feed_forward_length"));
    hp_.heads = file.uint_value(key("attention.head_count"));
    hp_.kv_heads = file.uint_value(key("attention.head_count_kv"));
    hp_.context = file.uint_value(key("context_length"));
    hp_.rope_base = file.find(key("rope.freq_base")) ? file.float_value(key("rope.freq_base")) : 10000.0;
    hp_.rms_eps = file.float_value(key("attention.layer_norm_rms_epsilon"));
    if (hp_.heads == 0 || hp_.kv_heads == 0 || hp_.heads % hp_.kv_heads != 0 || hp_.embd % hp_.heads != 0)
      throw gguf_error("unsupported head counts");
    hp_.head_dim = hp_.embd / hp_.heads;
    if (file.find(key("rope.dimension_count")) && file.uint_value(key("rope.dimension_count")) != hp_.head_dim)
      throw gguf_error("partial RoPE is not supported by this example");

    const auto load = [&](const std::string& name, std::size_t in, std::size_t out) {
      const gguf_tensor* t = file.tensor(name);
      if (!t) throw gguf_error("tensor " + name + " is missing");
      if (t->dims[0] != in || t->rows() != out) throw gguf_error("tensor " + name + " has an unexpected shape");
      return dequantize(*t);
    };
    const std::size_t embd = hp_.embd, kv = hp_.kv_dim();
    const gguf_tensor* embedding = file.tensor("token_embd.weight");
    if (!embedding) throw gguf_error("tensor token_embd.weight is missing");
    hp_.vocab = static_cast<std::size_t>(embedding->rows());
    token_embd_ = load("token_embd.weight", embd, hp_.vocab);
    output_norm_ = load("output_norm.weight", embd, 1);
    // Small models tie the output projection to the token embedding.
    output_ = file.tensor("output.weight") ? matrix(load("output.weight", embd, hp_.vocab), embd, hp_.vocab)
                                           : matrix(token_embd_, embd, hp_.vocab);
    for (std::size_t l = 0; l < hp_.layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      layer_weights w;
      w.attn_norm = load(p + "attn_norm.weight", embd, 1);
      w.ffn_norm = load(p + "ffn_norm.weight", embd, 1);
      w.q = matrix(load(p + "attn_q.weight", embd, embd), embd, embd);
      w.k = matrix(load(p + "attn_k.weight", embd, kv), embd, kv);
      w.v = matrix(load(p + "attn_v.weight", embd, kv), embd, kv);
      w.o = matrix(load(p + "attn_output.weight", embd, embd), embd, embd);
      w.gate = matrix(load(p + "ffn_gate.weight", embd, hp_.ffn), embd, hp_.ffn);
      w.up = matrix(load(p + "ffn_up.weight", embd, hp_.ffn), embd, hp_.ffn);
      w.down = matrix(load(p + "ffn_down.weight", hp_.ffn, embd), hp_.ffn, embd);
      layers_.push_back(std::move(w));
    }
  }

  const hparams& params() const { return hp_; }

  /// What happens to each layer's keys after RoPE, before they enter the cache.
  struct key_hooks {
    const std::vector<float>* offsets = nullptr;  ///< [layers][kv_dim] added to every key (or null)
    std::vector<double>* moments = nullptr;       ///< [layers][2][kv_dim] += sum k, sum k^2 (or null)
  };

  /// Buffers of one forward pass over up to `window` tokens (one per thread).
  struct workspace {
    std::vector<float> x, h, q, k, v, att, gate, up, logits, rope_cos, rope_sin;
  };

  workspace make_workspace(std::size_t window) const {
    workspace ws;
    const std::size_t n = window;
    ws.x.resize(n * hp_.embd), ws.h.resize(n * hp_.embd), ws.q.resize(n * hp_.embd), ws.att.resize(n * hp_.embd);
    ws.k.resize(n * hp_.kv_dim()), ws.v.resize(n * hp_.kv_dim());
    ws.gate.resize(n * hp_.ffn), ws.up.resize(n * hp_.ffn), ws.logits.resize(n * hp_.vocab);
    // ggml's "normal" RoPE (what a Llama GGUF expects: its q/k rows were permuted at conversion):
    // channel pairs (2i, 2i+1) turn by position * base^(-2i / head_dim).
    const std::size_t pairs = hp_.head_dim / 2;
    ws.rope_cos.resize(n * pairs), ws.rope_sin.resize(n * pairs);
    for (std::size_t t = 0; t < n; ++t)
      for (std::size_t i = 0; i < pairs; ++i) {
        const double angle = static_cast<double>(t) * std::pow(hp_.rope_base, -2.0 * static_cast<double>(i) /
                                                                                 static_cast<double>(hp_.head_dim));
        ws.rope_cos[t * pairs + i] = static_cast<float>(std::cos(angle));
        ws.rope_sin[t * pairs + i] = static_cast<float>(std::sin(angle));
      }
    return ws;
  }

  /// Logits [n][vocab] into ws.logits for tokens at positions 0..n-1 of a fresh sequence; caches[l]
  /// (capacity >= n) is layer l's, cleared first.
  void forward(const std::uint32_t* tokens, std::size_t n, const std::vector<std::unique_ptr<layer_cache>>& caches,
               const key_hooks& hooks, workspace& ws) const {
    if (caches.size() != hp_.layers) throw std::invalid_argument("forward: one cache per layer");
    const std::size_t embd = hp_.embd, kv = hp_.kv_dim();
    for (std::size_t t = 0; t < n; ++t) {
      if (tokens[t] >= hp_.vocab) throw gguf_error("token id " + std::to_string(tokens[t]) + " is outside the vocabulary");
      std::memcpy(&ws.x[t * embd], &token_embd_[tokens[t] * embd], embd * sizeof(float));
    }
    for (std::size_t l = 0; l < hp_.layers; ++l) {
      const layer_weights& w = layers_[l];
      rms_norm(ws.x.data(), n, w.attn_norm, ws.h.data());
      matmul(ws.h.data(), n, w.q, ws.q.data());
      matmul(ws.h.data(), n, w.k, ws.k.data());
      matmul(ws.h.data(), n, w.v, ws.v.data());
      rope(ws.q.data(), n, hp_.heads, ws);
      rope(ws.k.data(), n, hp_.kv_heads, ws);
      for (std::size_t t = 0; t < n; ++t) {
        float* key = &ws.k[t * kv];
        if (hooks.offsets)
          for (std::size_t c = 0; c < kv; ++c) key[c] += (*hooks.offsets)[l * kv + c];
        if (hooks.moments)
          for (std::size_t c = 0; c < kv; ++c) {
            (*hooks.moments)[(2 * l) * kv + c] += key[c];
            (*hooks.moments)[(2 * l + 1) * kv + c] += static_cast<double>(key[c]) * key[c];
          }
      }
      layer_cache& cache = *caches[l];
      cache.clear();
      for (std::size_t t = 0; t < n; ++t) {
        cache.append(&ws.k[t * kv], &ws.v[t * kv]);
        cache.attend(&ws.q[t * embd], hp_.group(), &ws.att[t * embd]);
      }
      matmul(ws.att.data(), n, w.o, ws.h.data());
      for (std::size_t i = 0; i < n * embd; ++i) ws.x[i] += ws.h[i];

      rms_norm(ws.x.data(), n, w.ffn_norm, ws.h.data());
      matmul(ws.h.data(), n, w.gate, ws.gate.data());
      matmul(ws.h.data(), n, w.up, ws.up.data());
      for (std::size_t i = 0; i < n * hp_.ffn; ++i) {
        const float g = ws.gate[i];
        ws.gate[i] = g / (1.0f + std::exp(-g)) * ws.up[i];  // SwiGLU: silu(gate) * up
      }
      matmul(ws.gate.data(), n, w.down, ws.h.data());
      for (std::size_t i = 0; i < n * embd; ++i) ws.x[i] += ws.h[i];
    }
    rms_norm(ws.x.data(), n, output_norm_, ws.h.data());
    matmul(ws.h.data(), n, output_, ws.logits.data());
  }

 private:
  void rms_norm(const float* x, std::size_t n, const std::vector<float>& weight, float* out) const {
    const std::size_t embd = hp_.embd;
    for (std::size_t t = 0; t < n; ++t) {
      double sum = 0.0;
      for (std::size_t c = 0; c < embd; ++c) sum += static_cast<double>(x[t * embd + c]) * x[t * embd + c];
      const float inverse = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(embd) + hp_.rms_eps));
      for (std::size_t c = 0; c < embd; ++c) out[t * embd + c] = x[t * embd + c] * inverse * weight[c];
    }
  }

  void rope(float* rows, std::size_t n, std::size_t heads, const workspace& ws) const {
    const std::size_t hd = hp_.head_dim, pairs = hd / 2;
    for (std::size_t t = 0; t < n; ++t)
      for (std::size_t h = 0; h < heads; ++h) {
        float* head = rows + (t * heads + h) * hd;
        for (std::size_t i = 0; i < pairs; ++i) {
          const float c = ws.rope_cos[t * pairs + i], s = ws.rope_sin[t * pairs + i];
          const float a = head[2 * i], b = head[2 * i + 1];
          head[2 * i] = a * c - b * s;
          head[2 * i + 1] = a * s + b * c;
        }
      }
  }

  hparams hp_{};
  std::vector<float> token_embd_, output_norm_;
  matrix output_;
  std::vector<layer_weights> layers_;
};

}  // namespace llama

#endif  // KPC_EXAMPLES_LLAMA_MODEL_HPP
