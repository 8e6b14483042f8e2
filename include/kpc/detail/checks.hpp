// SPDX-License-Identifier: MIT
// Argument checks shared by the Quantizer entry points (host only).
#ifndef KPC_DETAIL_CHECKS_HPP
#define KPC_DETAIL_CHECKS_HPP

#include <cstddef>
#include <limits>

#include "../config.hpp"
#include "../error.hpp"
#include "../format.hpp"

KPC_BEGIN_NAMESPACE
namespace detail {

/// No object is larger than PTRDIFF_MAX bytes, so no buffer size or offset may exceed it.
inline constexpr std::size_t max_bytes = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());

/// a * b, or an invalid_shape error when it exceeds max_bytes (a slab no buffer can hold, such as
/// a negative token count converted to size_t).
inline std::size_t checked_mul(std::size_t a, std::size_t b) {
  if (a != 0 && b > max_bytes / a)
    raisef(errc::invalid_shape, "%zu x %zu exceeds the largest possible buffer", a, b);
  return a * b;
}

/// Channels must be 1..format::max_channels and, for block layouts, a multiple of the block.
inline void check_channels(std::size_t channels, std::size_t multiple_of) {
  if (channels == 0 || channels > format::max_channels || channels % multiple_of != 0)
    raisef(errc::invalid_shape, "channels = %zu must be a multiple of %zu in [%zu, %zu]", channels, multiple_of,
           multiple_of, format::max_channels);
}

/// Rows of `channels` elements of `element_size` bytes, `stride` elements apart: the stride cannot
/// be shorter than a row, and the rows must fit in one buffer.
inline void check_rows(const void* data, std::size_t tokens, std::size_t channels, std::size_t stride,
                       std::size_t element_size, const char* name) {
  if (stride < channels)
    raisef(errc::invalid_shape, "%s row stride %zu < channels %zu", name, stride, channels);
  if (tokens == 0) return;
  if (data == nullptr) raisef(errc::null_pointer, "%s is null", name);
  checked_mul(checked_mul(tokens - 1, stride) + channels, element_size);
}

/// A sized buffer of `given` elements must hold `tokens` rows of `channels`, `stride` apart.
inline void check_elements(const void* data, std::size_t given, std::size_t tokens, std::size_t channels,
                           std::size_t stride, const char* name) {
  if (tokens == 0) return;
  if (stride < channels) raisef(errc::invalid_shape, "%s row stride %zu < channels %zu", name, stride, channels);
  const std::size_t needed = checked_mul(tokens - 1, stride) + channels;
  if (data == nullptr) raisef(errc::null_pointer, "%s is null", name);
  if (given < needed)
    raisef(errc::buffer_too_small, "%s holds %zu elements, the shape needs %zu", name, given, needed);
}

inline void check_bytes(const void* data, std::size_t given, std::size_t needed, const char* name) {
  if (needed != 0 && data == nullptr) raisef(errc::null_pointer, "%s is null", name);
  if (given < needed)
    raisef(errc::buffer_too_small, "%s holds %zu bytes, the shape needs %zu", name, given, needed);
}

[[noreturn]] KPC_COLD inline void raise_status(errc status, const char* what, std::size_t token) {
  const char* reason = status == errc::non_finite     ? "NaN or Inf in the input"
                       : status == errc::out_of_range ? "values too large for the format's fp16 scale/minimum"
                       : status == errc::corrupt_data ? "encoded bytes hold a non-finite fp16 scale or minimum"
                                                      : "the reference refused the arguments";
  raisef(status, "%s (%s at token %zu)", reason, what, token);
}

inline void check_status(errc status, const char* what, std::size_t token) {
  if (status != errc::ok) raise_status(status, what, token);
}

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_DETAIL_CHECKS_HPP
