#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kpc's pkg-config file, from an installed prefix:
#   packaging/pkgconfig/pkgconfig_test.sh PREFIX [CXX]
# PREFIX: what `cmake --install <build> --prefix PREFIX` wrote. Checks that kpc.pc is found under
# PREFIX/share/pkgconfig, that its version is the installed headers' version, that its flags point
# into PREFIX (also after the prefix is copied elsewhere: the .pc is relative to ${pcfiledir}),
# and builds and runs the CMake tests' consumer (tests/cmake/consumer/main.cpp) with nothing but
# `pkg-config --cflags kpc`.
set -euo pipefail
fail() { echo "pkgconfig test FAILED: $*" >&2; exit 1; }
[[ $# -ge 1 && $# -le 2 ]] || fail "usage: $0 PREFIX [CXX]"
prefix=$(cd "$1" && pwd -P) || fail "no prefix $1"
cxx=${2:-${CXX:-c++}}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
consumer="$here/../../tests/cmake/consumer/main.cpp"
pkg_config=${PKG_CONFIG:-pkg-config}
command -v "$pkg_config" >/dev/null || fail "no $pkg_config (Debian: apt-get install pkgconf)"
pc="$prefix/share/pkgconfig/kpc.pc"
[[ -f $pc ]] || fail "$pc is not installed (header-only: share/pkgconfig, not lib/pkgconfig)"
[[ ! -e $prefix/lib/pkgconfig/kpc.pc ]] || fail "a second kpc.pc in $prefix/lib/pkgconfig"
if grep -q -F "$prefix" "$pc"; then fail "$pc names its install prefix $prefix: it is not relocatable"; fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

header_version() {
  local major minor patch
  major=$(sed -n 's/^#define KPC_VERSION_MAJOR \([0-9][0-9]*\)$/\1/p' "$1")
  minor=$(sed -n 's/^#define KPC_VERSION_MINOR \([0-9][0-9]*\)$/\1/p' "$1")
  patch=$(sed -n 's/^#define KPC_VERSION_PATCH \([0-9][0-9]*\)$/\1/p' "$1")
  echo "$major.$minor.$patch"
}

check_prefix() {  # $1: a prefix holding kpc, searched alone; $2 = build: also build and run the consumer
  local p=$1 version cflags inc
  export PKG_CONFIG_PATH="$p/share/pkgconfig"
  "$pkg_config" --print-errors --exists kpc || fail "pkg-config cannot resolve kpc from $p (is xsimd.pc findable?)"
  version=$("$pkg_config" --modversion kpc)
  local expected
  expected=$(header_version "$p/include/kpc/config.hpp")
  [[ $version == "$expected" ]] || fail "pkg-config --modversion kpc is '$version', the installed headers say '$expected'"
  cflags=$("$pkg_config" --cflags kpc)
  echo "pkg-config from $p: version $version, cflags: $cflags"
  # The -I that holds kpc/kpc.hpp must be inside this prefix.
  inc=""
  for flag in $cflags; do
    if [[ $flag == -I* && -f ${flag#-I}/kpc/kpc.hpp ]]; then inc=$(cd "${flag#-I}" && pwd -P); break; fi
  done
  [[ -n $inc ]] || fail "no -I in '$cflags' leads to kpc/kpc.hpp"
  [[ $inc == "$(cd "$p" && pwd -P)/include" ]] || fail "kpc's -I is $inc, not $p/include"
  # shellcheck disable=SC2086  # the flags are meant to split
  "$cxx" -std=c++17 $cflags -E "$consumer" -o "$scratch/consumer.i" \
    || fail "the consumer does not preprocess with \$(pkg-config --cflags kpc) from $p"
  local used
  used=$(grep -o -m1 '"[^"]*/kpc/kpc\.hpp"' "$scratch/consumer.i" | tr -d '"') || fail "kpc/kpc.hpp was not included"
  [[ $(realpath "$used") == "$inc/kpc/kpc.hpp" ]] || fail "the preprocessor took $used, not $inc/kpc/kpc.hpp"
  [[ ${2:-} == build ]] || return 0
  # shellcheck disable=SC2086
  "$cxx" -std=c++17 -O1 $cflags "$consumer" -o "$scratch/consumer" \
    || fail "the consumer does not compile with \$(pkg-config --cflags kpc) from $p"
  local out
  out=$("$scratch/consumer") || fail "the consumer built against $p failed: $out"
  echo "consumer: $out"
  [[ $out == "kpc $version consumer:"* ]] || fail "the consumer was compiled against headers of another version: $out"
}

check_prefix "$prefix"
# Relocation: a copy of the prefix must work on its own (the .pc is relative to ${pcfiledir});
# the consumer is built and run against the copy.
cp -a "$prefix" "$scratch/moved"
check_prefix "$scratch/moved" build
echo "pkgconfig test passed"
