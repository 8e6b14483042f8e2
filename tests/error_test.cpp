// SPDX-License-Identifier: MIT
// kpc/error.hpp: the error type and codes.
#include <doctest/doctest.h>

#include <cstring>
#include <kpc/error.hpp>
#include <set>
#include <stdexcept>
#include <string>

TEST_CASE("every errc has its own name") {
  const kpc::errc all[] = {kpc::errc::ok,         kpc::errc::invalid_shape, kpc::errc::null_pointer,
                           kpc::errc::buffer_too_small, kpc::errc::non_finite, kpc::errc::out_of_range,
                           kpc::errc::corrupt_data, kpc::errc::unsupported};
  std::set<std::string> names;
  for (kpc::errc code : all) names.insert(kpc::to_string(code));
  CHECK(names.size() == std::size(all));
  CHECK(std::strcmp(kpc::to_string(kpc::errc::buffer_too_small), "buffer_too_small") == 0);
}

TEST_CASE("kpc::error is an std::invalid_argument carrying its code") {
  try {
    kpc::detail::raise(kpc::errc::out_of_range, "tile too wide");
    FAIL("raise returned");
  } catch (const std::invalid_argument& e) {
    const auto* error = dynamic_cast<const kpc::error*>(&e);
    REQUIRE(error != nullptr);
    CHECK(error->code() == kpc::errc::out_of_range);
    CHECK(std::string(e.what()) == "kpc: tile too wide [out_of_range]");
  }
}

TEST_CASE("require throws only when its condition fails") {
  CHECK_NOTHROW(kpc::detail::require(true, kpc::errc::invalid_shape, "fine"));
  CHECK_THROWS_AS(kpc::detail::require(false, kpc::errc::invalid_shape, "bad"), kpc::error);
}
