# SPDX-License-Identifier: MIT
# vcpkg overlay port for kpc, built from the checkout this file lives in (offline, no SHA512):
#   vcpkg install kpc --overlay-ports=<kpc>/packaging/vcpkg/ports
# vcpkg hashes only the port's own files, so with binary caching on, a changed source tree is not
# rebuilt: pass --no-binarycaching (or --editable) when iterating on kpc itself.
# A registry port would fetch a release instead:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH REPO kpc-project/kpc REF "v${VERSION}"
#                     SHA512 <sha512 of the release archive> HEAD_REF main)
# packaging/vcpkg/contract_test.cmake runs what this file asks of kpc's CMake without vcpkg,
# reading the options below from this file: keep each option on a line of its own.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
if(NOT EXISTS "${SOURCE_PATH}/include/kpc/kpc.hpp")
  message(FATAL_ERROR "kpc overlay port: no kpc checkout at ${SOURCE_PATH}")
endif()

set(VCPKG_BUILD_TYPE release)  # header-only: one configuration, no debug tree

# KPC_REQUIRE_XSIMD: xsimd is a dependency, so a package without the SIMD backends is an error.
# KPC_BUILD_CUDA: never; the "cuda" feature only adds the toolkit for consumers (see vcpkg.json).
vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DKPC_BUILD_TESTS=OFF
    -DKPC_BUILD_EXAMPLES=OFF
    -DKPC_BUILD_BENCHMARKS=OFF
    -DKPC_BUILD_CUDA=OFF
    -DKPC_INSTALL=ON
    -DKPC_USE_XSIMD=ON
    -DKPC_REQUIRE_XSIMD=ON
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/kpc)
vcpkg_fixup_pkgconfig()  # share/pkgconfig/kpc.pc is already relative to ${pcfiledir}

# Header-only: nothing may be left in lib/ or debug/ (the config and .pc files live in share/).
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")

vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
