# SPDX-License-Identifier: MIT
# Cross-compiles for AArch64 Linux with Debian's g++-aarch64-linux-gnu; ctest runs the binaries under
# qemu-aarch64 user-mode emulation (Debian's qemu-user, or qemu-user-static's qemu-aarch64-static).
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(KPC_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${KPC_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${KPC_CROSS_TRIPLE}-g++)

# Debian installs the target's libc and libstdc++ under /usr/aarch64-linux-gnu: qemu loads the
# dynamic linker and shared libraries from there (-L), and find_* looks there for target libraries.
set(KPC_CROSS_ROOT /usr/${KPC_CROSS_TRIPLE})
find_program(KPC_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static NO_CMAKE_FIND_ROOT_PATH)
if(KPC_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${KPC_QEMU_AARCH64} -L ${KPC_CROSS_ROOT})
endif()

set(CMAKE_FIND_ROOT_PATH ${KPC_CROSS_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)  # tools (python3, ...) run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Header-only host packages serve the target too (doctest: /usr/lib/cmake/doctest; xsimd:
# /usr/lib/x86_64-linux-gnu/cmake/xsimd), so package configs are looked for in the target root and
# then on the host. The x86-64 host's multiarch directory is not on the cross search path
# (CMAKE_LIBRARY_ARCHITECTURE is aarch64-linux-gnu here), so it is added. Their include directory,
# /usr/include, is the cross compiler's last system directory anyway: no host libc header shadows
# the target's. Compiled host packages (Google Benchmark) would be found too but cannot link: keep
# KPC_BUILD_BENCHMARKS off.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
list(APPEND CMAKE_PREFIX_PATH /usr/lib/x86_64-linux-gnu/cmake)
list(REMOVE_DUPLICATES CMAKE_PREFIX_PATH)  # this file is read more than once per configure
