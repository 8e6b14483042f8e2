#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kpc's whole test suite, as CI runs it: a g++ build and a clang build (warnings are errors, tests,
# examples, benchmark smoke runs, build-system tests, and nvcc compiling the device code when the
# CUDA toolkit is present), then the tests again under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh cmake make g++ clang doctest-dev libbenchmark-dev
jobs="$(nproc)"

cuda=()
nvcc="$(command -v nvcc || true)"
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ -n "$nvcc" ]; then
  cuda=(-DKPC_BUILD_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc")
else
  echo "kpc: no nvcc found; the CUDA compile check is skipped"
fi

suite() {
  local name="$1"
  shift
  echo "=== kpc: $name"
  cmake -S . -B "build/$name" "$@"
  cmake --build "build/$name" -j "$jobs"
  (cd "build/$name" && ctest --output-on-failure -j "$jobs")
}

suite gcc -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DKPC_WERROR=ON -DKPC_BUILD_BENCHMARKS=ON "${cuda[@]}"
suite clang -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DKPC_WERROR=ON -DKPC_BUILD_BENCHMARKS=ON
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  suite sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=g++ -DKPC_SANITIZE=address,undefined \
  -DKPC_BUILD_EXAMPLES=OFF
echo "=== kpc: all test suites passed"
