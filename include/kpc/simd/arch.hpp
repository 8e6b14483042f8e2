// SPDX-License-Identifier: MIT
// The xsimd layer: version shims and the few primitives xsimd 8.1 lacks or gets inexact (byte
// widening and narrowing, binary16 conversion, correctly rounded division, a fused-multiply-add
// barrier). All instruction-set-specific code of kpc is in this header and simd/arch/, one file per
// instruction set as in xsimd's own arch/ folder; the kernels in per_channel.hpp / per_token.hpp are
// generic over the xsimd arch. Each primitive has a portable fallback (requires_arch<portable_arch>,
// arch/portable.hpp) and overloads for the most derived arch that has a better instruction.
#ifndef KPC_SIMD_ARCH_HPP
#define KPC_SIMD_ARCH_HPP

#include <cstddef>
#include <cstdint>

#include "arch/common.hpp"

// The instruction sets' overloads (each file is empty unless its XSIMD_WITH_* is set), then the
// portable fallbacks, last like xsimd's generic kernels: a call inside a fallback (load_f16 calls
// widen_u16, store_f16 narrow_u16) sees only the overloads declared before it.
#include "arch/sse.hpp"
#include "arch/avx.hpp"
#include "arch/avx512.hpp"
#include "arch/neon.hpp"
#include "arch/portable.hpp"

KPC_BEGIN_NAMESPACE
namespace simd {

// ---- entry points: pick the overload for A -----------------------------------------------------------

template <class A>
inline fbatch<A> mul_rounded(const fbatch<A>& x, const fbatch<A>& y) {
  return mul_rounded<A>(x, y, A{});
}
template <class A>
inline std::uint32_t to_mask(const xsimd::batch_bool<float, A>& b) {
  return to_mask<A>(b, A{});
}
template <class A>
inline float reduce_min(const fbatch<A>& x) {
  return reduce_min<A>(x, A{});
}
template <class A>
inline float reduce_max(const fbatch<A>& x) {
  return reduce_max<A>(x, A{});
}
template <class A>
inline float half_to_float(std::uint16_t bits) {
  return half_to_float<A>(bits, A{});
}
template <class A>
inline std::uint16_t float_to_half(float value) {
  return float_to_half<A>(value, A{});
}
template <class A>
inline void unpack3(const std::byte* group, ibatch<A>* codes) {
  unpack3<A>(group, codes, A{});
}
template <class A>
inline void pack3(const ibatch<A>* codes, std::byte* group) {
  pack3<A>(codes, group, A{});
}
template <class A>
inline void unpack2(const std::byte* group, ibatch<A>* codes) {
  unpack2<A>(group, codes, A{});
}
template <int Bits, class A>
inline void store_groups(const ubatch<A>* words, std::byte* first, std::size_t stride) {
  store_groups<Bits, A>(words, first, stride, A{});
}
template <int Bits, class A>
inline void load_groups(const std::byte* first, std::size_t stride, ubatch<A>* words) {
  load_groups<Bits, A>(first, stride, words, A{});
}
template <class A>
inline fbatch<A> div_rounded(const fbatch<A>& x, const fbatch<A>& y) {
  return div_rounded<A>(x, y, A{});
}
template <class A>
inline fbatch<A> running_min(const fbatch<A>& x, const fbatch<A>& m) {
  return running_min<A>(x, m, A{});
}
template <class A>
inline fbatch<A> running_max(const fbatch<A>& x, const fbatch<A>& m) {
  return running_max<A>(x, m, A{});
}
template <class A>
inline ibatch<A> widen_u8(const std::byte* p) {
  return widen_u8<A>(p, A{});
}

/// Tracks whether every value seen is finite: x - x is +0 for finite x and NaN otherwise, so
/// OR-ing its bits stays 0 exactly while all values are finite (one cheap instruction per vector).
template <class A>
struct finite_probe {
  ubatch<A> bits = ubatch<A>(0u);
  void add(const fbatch<A>& x) { bits |= bit_cast<std::uint32_t>(x - x); }
  bool all_finite() const { return xsimd::all(bits == ubatch<A>(0u)); }
};
template <class A>
inline ibatch<A> widen_i8(const std::byte* p) {
  return widen_i8<A>(p, A{});
}
template <class A>
inline void store_low_bytes(const ibatch<A>& x, std::byte* p) {
  store_low_bytes<A>(x, p, A{});
}

/// Loads W row elements as f32.
template <class A>
inline fbatch<A> load(const float* p) {
  return fbatch<A>::load_unaligned(p);
}
template <class A>
inline fbatch<A> load(const half* p) {
  return load_f16<A>(p, A{});
}

/// Stores W f32 lanes as row elements.
template <class A>
inline void store(const fbatch<A>& x, float* p) {
  x.store_unaligned(p);
}
template <class A>
inline void store(const fbatch<A>& x, half* p) {
  store_f16<A>(x, p, A{});
}

}  // namespace simd
KPC_END_NAMESPACE

#endif  // KPC_SIMD_ARCH_HPP
