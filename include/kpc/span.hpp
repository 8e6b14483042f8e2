// SPDX-License-Identifier: MIT
// kpc::span: a caller's buffer as a pointer and the number of elements it holds (std::span's
// shape, for C++17). The sized forms of kpc's entry points take spans and check that each buffer
// holds what the shape needs before touching it, so a short buffer is an error, not an overrun.
#ifndef KPC_SPAN_HPP
#define KPC_SPAN_HPP

#include <cstddef>
#include <type_traits>
#include <utility>

#include "config.hpp"

KPC_BEGIN_NAMESPACE

template <class T>
class span {
 public:
  constexpr span() noexcept = default;
  constexpr span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  /// Any contiguous container with data() and size() (std::vector, std::array, kpc::span<U>, ...)
  /// whose elements convert to T (T = const U reads a container of U).
  template <class Container, class = std::enable_if_t<std::is_convertible_v<
                                 decltype(std::declval<Container&>().data()), T*>>>
  constexpr span(Container& c) noexcept : data_(c.data()), size_(c.size()) {}  // NOLINT: implicit, as std::span

  constexpr T* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

KPC_END_NAMESPACE

#endif  // KPC_SPAN_HPP
