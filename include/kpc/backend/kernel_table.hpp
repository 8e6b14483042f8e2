// SPDX-License-Identifier: MIT
// The kernel table: every format's slab operations for one backend (scalar reference, xsimd for
// one instruction set), one entry per format::all element. Only fundamental types cross it, and
// it lives in a fixed namespace, so tables built in differently compiled units
// (backend/dispatch_unit.hpp) can be exchanged.
#ifndef KPC_BACKEND_KERNEL_TABLE_HPP
#define KPC_BACKEND_KERNEL_TABLE_HPP

#include <cstddef>
#include <cstdint>

#include "../config.hpp"
#include "../format.hpp"
#include "../isa.hpp"

namespace KPC_KERNELS_ABI {

/// Outcome of a slab operation: an errc value (0 = ok) and the first token of the unit (K tile or
/// V row) that failed.
struct slab_result {
  int status;
  std::size_t token;
};

/// f16 data crosses as its binary16 bits.
using f16_bits = std::uint16_t;

/// Operations on one format. Shapes and buffer sizes are checked by the caller (kpc::Quantizer).
struct format_kernels {
  slab_result (*encode_f32)(const float* src, std::size_t src_stride, std::size_t tokens, std::size_t channels,
                            std::byte* dst);
  slab_result (*encode_f16)(const f16_bits* src, std::size_t src_stride, std::size_t tokens, std::size_t channels,
                            std::byte* dst);
  slab_result (*decode_f32)(const std::byte* src, std::size_t tokens, std::size_t channels, float* dst,
                            std::size_t dst_stride);
  slab_result (*decode_f16)(const std::byte* src, std::size_t tokens, std::size_t channels, f16_bits* dst,
                            std::size_t dst_stride);
  void (*scores)(const float* q, const std::byte* src, std::size_t tokens, std::size_t channels, float* out);
  void (*accumulate)(const float* w, const std::byte* src, std::size_t tokens, std::size_t channels,
                     float* out);  ///< null for per-channel K formats
  /// scores for a group of query heads sharing the slab: q [group][channels], out [group][tokens].
  void (*scores_group)(const float* q, std::size_t group, const std::byte* src, std::size_t tokens,
                       std::size_t channels, float* out);
  /// accumulate for a group: w [group][tokens], out [group][channels]; null for per-channel K formats.
  void (*accumulate_group)(const float* w, std::size_t group, const std::byte* src, std::size_t tokens,
                           std::size_t channels, float* out);
  /// The integer attention path (ref/integer_dot.hpp): scores_group / accumulate_group with q or
  /// the weights quantized to integers; null for formats without it (descriptor's integer_dot).
  void (*scores_group_integer)(const float* q, std::size_t group, const std::byte* src, std::size_t tokens,
                            std::size_t channels, float* out);
  void (*accumulate_group_integer)(const float* w, std::size_t group, const std::byte* src, std::size_t tokens,
                                std::size_t channels, float* out);
};

/// The element-wise steps of an online softmax (decode attention), per backend.
struct softmax_kernels {
  float (*scale_max)(float* x, std::size_t n, float scale);  ///< x *= scale; returns max(x) (n >= 1)
  float (*exp_sum)(float* x, std::size_t n, float shift);    ///< x = exp(x - shift); returns sum(x)
};

struct kernel_table {
  int isa;                                         ///< a kpc::isa value
  format_kernels formats[kpc::format::all::size];  ///< in format::all's order
  softmax_kernels softmax;
};

/// Tables of run-time dispatch units (defined by backend/dispatch_unit.hpp when that unit is
/// built): unit_table_<isa>() for each instruction set of kpc/isa.hpp that has a unit. The baseline
/// unit (KPC_PRECOMPILED_KERNELS) holds the scalar reference and the SIMD kernels of the flags it
/// was built with (null when those are scalar).
#define KPC_DETAIL_DECLARE_UNIT_TABLE(name, label, cpu, arch, flags) const kernel_table* unit_table_##name();
KPC_ISA_LIST(KPC_DETAIL_DECLARE_UNIT_TABLE)
#undef KPC_DETAIL_DECLARE_UNIT_TABLE
const kernel_table* unit_table_baseline();

}  // namespace KPC_KERNELS_ABI

KPC_BEGIN_NAMESPACE
namespace detail {
using KPC_KERNELS_ABI::f16_bits;
using KPC_KERNELS_ABI::format_kernels;
using KPC_KERNELS_ABI::kernel_table;
using KPC_KERNELS_ABI::slab_result;
using KPC_KERNELS_ABI::softmax_kernels;
}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_BACKEND_KERNEL_TABLE_HPP
