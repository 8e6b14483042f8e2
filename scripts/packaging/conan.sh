#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Packaging test, Conan 2: creates kpc's Conan package and builds its test_package against it.
# No remote is used: xsimd comes from packaging/conan/xsimd-system, a recipe that packages the
# system's headers (Debian: libxsimd-dev) in place of conancenter's xsimd.
#   conan: PyPI, in the venv build/venv-conan; CONAN_HOME: build/conan-home, fresh each run.
# Skips (exit 0) only when conan cannot be installed from PyPI; any later failure fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
start=$SECONDS

venv="$root/build/venv-conan"
if ! "$venv/bin/conan" --version > /dev/null 2>&1; then
  command -v python3 > /dev/null || bash scripts/deps.sh python3
  python3 -m venv "$venv" > /dev/null 2>&1 || { bash scripts/deps.sh python3-venv && python3 -m venv "$venv"; }
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "conan>=2,<3"; then
    echo "kpc: SKIPPED conan test: pip install conan failed (no PyPI access?)"
    exit 0
  fi
fi
conan="$venv/bin/conan"
echo "kpc: $("$conan" --version)"
[ -f /usr/include/xsimd/config/xsimd_config.hpp ] || bash scripts/deps.sh libxsimd-dev

export CONAN_HOME="$root/build/conan-home"
rm -rf "$CONAN_HOME"
mkdir -p "$CONAN_HOME"
# Offline: everything comes from local recipes.
if "$conan" remote list | grep -q '^conancenter'; then "$conan" remote remove conancenter > /dev/null; fi
# test_package builds under build/ rather than in packaging/conan/test_package/build.
echo "tools.cmake.cmake_layout:test_folder=$root/build/conan-test-package" > "$CONAN_HOME/global.conf"
# The default profile for the system's default compiler (cc/c++: CC and CXX are unset so that the
# detected profile and CMake agree), in C++17.
unset CC CXX
"$conan" profile detect --force
profile="$("$conan" profile path default)"
sed -i 's/^compiler\.cppstd=.*/compiler.cppstd=17/' "$profile"
grep -q '^compiler\.cppstd=17$' "$profile" || echo 'compiler.cppstd=17' >> "$profile"
cat "$profile"

log="$root/build/conan-create.log"
run() {
  echo "+ conan $*"
  "$conan" "$@"
}
run create packaging/conan/xsimd-system
run create packaging/conan --build=missing 2>&1 | tee "$log"
grep -q '^kpc conan test_package: OK' "$log" || {
  echo "kpc: FAILED conan test: test_package printed no success line (log: $log)"
  exit 1
}
echo "kpc: conan package test passed in $((SECONDS - start)) s"
