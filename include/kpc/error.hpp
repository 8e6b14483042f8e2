// SPDX-License-Identifier: MIT
// How kpc reports bad input: kpc::error, an std::invalid_argument carrying a kpc::errc.
// Built without exceptions (-fno-exceptions), kpc prints the same message to stderr and aborts.
#ifndef KPC_ERROR_HPP
#define KPC_ERROR_HPP

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "config.hpp"

KPC_BEGIN_NAMESPACE

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

}  // namespace detail
KPC_END_NAMESPACE

#endif  // KPC_ERROR_HPP
