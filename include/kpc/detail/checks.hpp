// SPDX-License-Identifier: MIT
// Argument checks shared by the Quantizer entry points (host only).
#ifndef KPC_DETAIL_CHECKS_HPP
#define KPC_DETAIL_CHECKS_HPP

#include <cstddef>
#include <limits>
#include <string>

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
    raise(errc::invalid_shape, std::to_string(a) + " x " + std::to_string(b) + " exceeds the largest possible buffer");
  return a * b;
}

/// Channels must be 1..format::max_channels and, for block layouts, a multiple of the block.
inline void check_channels(std::size_t channels, std::size_t multiple_of) {
  if (channels == 0 || channels > format::max_channels || channels % multiple_of != 0)
    raise(errc::invalid_shape, "channels = " + std::to_string(channels) + " must be a multiple of " +
                                   std::to_string(multiple_of) + " in [" + std::to_string(multiple_of) + ", " +
                                   std::to_string(format::max_channels) + "]");
}

/// Rows of `channels` elements of `element_size` bytes, `stride` elements apart: the stride cannot
/// be shorter than a row, and the rows must fit in one buffer.
inline void check_rows(const void* data, std::size_t tokens, std::size_t channels, std::size_t stride,
                       std::size_t element_size, const char* name) {
  if (stride < channels)
    raise(errc::invalid_shape, std::string(name) + " row stride " + std::to_string(stride) + " < channels " +
                                   std::to_string(channels));
  if (tokens == 0) return;
  if (data == nullptr) raise(errc::null_pointer, std::string(name) + " is null");
  checked_mul(checked_mul(tokens - 1, stride) + channels, element_size);
}

inline void check_bytes(const void* data, std::size_t given, std::size_t needed, const char* name) {
  if (needed != 0 && data == nullptr) raise(errc::null_pointer, std::string(name) + " is null");
  if (given < needed)
    raise(errc::buffer_too_small,
          std::string(name) + " holds " + std::to_string(given) + " bytes, the shape needs " + std::to_string(needed));
}

inline void check_status(errc status, const char* what, std::size_t token) {
  if (status == errc::ok) return;
  const char* reason = status == errc::non_finite     ? "NaN or Inf in the input"
                       : status == errc::out_of_range ? "values too large for the format's fp16 scale/minimum"
                       : status == errc::corrupt_data ? "encoded bytes hold a non-finite fp16 scale or minimum"
                                                      : "the reference refused the arguments";
  raise(status, std::string(reason) + " (" + what + " at token " + std::to_string(token) + ")");
}

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_DETAIL_CHECKS_HPP
