// SPDX-License-Identifier: MIT
// kpc/config.hpp: one version source, a versioned inline namespace.
#include <doctest/doctest.h>

#include <kpc/config.hpp>
#include <kpc/half.hpp>
#include <string>
#include <type_traits>

#define KPC_TEST_STR2(x) #x
#define KPC_TEST_STR(x) KPC_TEST_STR2(x)

TEST_CASE("the header version is the version CMake built with") {
  const std::string header = std::to_string(KPC_VERSION_MAJOR) + "." + std::to_string(KPC_VERSION_MINOR) + "." +
                             std::to_string(KPC_VERSION_PATCH);
  CHECK(header == KPC_CMAKE_PROJECT_VERSION);  // passed by tests/CMakeLists.txt from project(VERSION)
  CHECK(std::string(KPC_VERSION_STRING) == header);
  CHECK(std::string(kpc::version()) == header);
  CHECK(KPC_VERSION == KPC_VERSION_MAJOR * 10000 + KPC_VERSION_MINOR * 100 + KPC_VERSION_PATCH);
  CHECK(KPC_FORMAT_VERSION == 1);
}

TEST_CASE("public names live in an inline namespace named after major.minor") {
  const std::string expected = "v" + std::to_string(KPC_VERSION_MAJOR) + "_" + std::to_string(KPC_VERSION_MINOR);
  CHECK(std::string(KPC_TEST_STR(KPC_ABI_NAMESPACE)) == expected);
  CHECK(std::is_same_v<kpc::half, kpc::KPC_ABI_NAMESPACE::half>);
}
