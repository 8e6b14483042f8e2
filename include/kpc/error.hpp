// SPDX-License-Identifier: MIT
// How kpc reports bad input: kpc::error, an std::invalid_argument carrying a kpc::errc; and the
// argument checks every entry point shares.
// Built without exceptions (-fno-exceptions), kpc prints the same message to stderr and aborts.
#ifndef KPC_ERROR_HPP
#define KPC_ERROR_HPP

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>

#include "config.hpp"
#include "format.hpp"

// errc and error cross between translation units built with different flags (config.hpp).
KPC_BEGIN_SHARED_NAMESPACE

/// Why a call was refused. The reference kernels return these; the Quantizer API throws them.
enum class errc {
  ok = 0,
  invalid_shape,     ///< zero channels, channels the layout cannot take, stride < channels, size overflow
  null_pointer,      ///< a null buffer where data is needed
  buffer_too_small,  ///< a destination or source smaller than the shape needs
  non_finite,        ///< NaN or +-Inf in the input of an encoder
  out_of_range,      ///< finite input whose scale or minimum does not fit the format's fp16 fields
  corrupt_data,      ///< encoded bytes no encoder writes (non-finite fp16 fields)
  unsupported,       ///< an instruction set this build or CPU cannot run
};

/// A short, stable name for each code ("invalid_shape", ...).
constexpr const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok: return "ok";
    case errc::invalid_shape: return "invalid_shape";
    case errc::null_pointer: return "null_pointer";
    case errc::buffer_too_small: return "buffer_too_small";
    case errc::non_finite: return "non_finite";
    case errc::out_of_range: return "out_of_range";
    case errc::corrupt_data: return "corrupt_data";
    case errc::unsupported: return "unsupported";
  }
  return "unknown";
}

/// The exception every checked kpc entry point throws. what() reads "kpc: <detail>".
class error : public std::invalid_argument {
 public:
  error(errc code, const std::string& message) : std::invalid_argument(message), code_(code) {}
  errc code() const noexcept { return code_; }

 private:
  errc code_;
};

KPC_END_SHARED_NAMESPACE

KPC_BEGIN_NAMESPACE
namespace detail {

// Failure paths are built out of line (cold, never inlined), so the checks at every call site stay
// a compare and a call: smaller code, and less for the compiler to do in each translation unit.
#if defined(__GNUC__) || defined(__clang__)
#define KPC_COLD __attribute__((cold, noinline))
#define KPC_PRINTF_FORMAT(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define KPC_COLD
#define KPC_PRINTF_FORMAT(format_index, first_arg)
#endif

[[noreturn]] KPC_COLD inline void raise(errc code, const std::string& detail) {
  const std::string message = "kpc: " + detail + " [" + to_string(code) + "]";
#if KPC_HAS_EXCEPTIONS
  throw error(code, message);
#else
  std::fprintf(stderr, "%s\n", message.c_str());
  std::abort();
#endif
}

/// raise() with a printf-style message.
[[noreturn]] KPC_COLD KPC_PRINTF_FORMAT(2, 3) inline void raisef(errc code, const char* format, ...) {
  char message[512];
  std::va_list args;
  va_start(args, format);
  std::vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  raise(code, message);
}

inline void require(bool condition, errc code, const char* detail) {
  if (!condition) raise(code, detail);
}

// ---- argument checks shared by the entry points ---------------------------------------------

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

#endif  // KPC_ERROR_HPP
