#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kpc on a GPU machine: builds the CUDA test and benchmark for this machine's GPU with nvcc (no
# CMake needed), runs the test (bytes vs the CPU reference, attention vs f64), then the benchmark,
# whose table comes last. Needs only the CUDA toolkit and a driver; takes a few minutes.
#   bash scripts/cuda.sh [--json PATH]   (the benchmark's figures; docs/results/cuda.json's format)
set -euo pipefail
cd "$(dirname "$0")/.."
json=build/cuda-gpu/cuda.json
if [ "${1:-}" = "--json" ] && [ -n "${2:-}" ]; then json="$2"; fi

nvcc="$(command -v nvcc || true)"
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
[ -n "$nvcc" ] || { echo "kpc: nvcc not found (install the CUDA toolkit)"; exit 1; }
# The GPU's own architecture (e.g. sm_90 on H100/H200; KPC_CUDA_ARCH overrides), nvcc's "native"
# where nvidia-smi is absent.
arch="${KPC_CUDA_ARCH:-native}"
if [ -z "${KPC_CUDA_ARCH:-}" ] && command -v nvidia-smi > /dev/null; then
  capability="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')"
  [ -n "$capability" ] && arch="sm_$capability"
fi
out=build/cuda-gpu
mkdir -p "$out" "$(dirname "$json")"
flags=(-std=c++17 -O3 "-arch=$arch" -DKPC_NO_SIMD -Iinclude -Icuda/include -Werror=all-warnings)
echo "kpc: building with $nvcc for $arch"
"$nvcc" "${flags[@]}" cuda/tests/cuda_test.cu -o "$out/kpc_cuda_tests" &
test_build=$!
"$nvcc" "${flags[@]}" cuda/bench/cuda_bench.cu -o "$out/kpc_cuda_bench" &
bench_build=$!
wait "$test_build"
wait "$bench_build"
status=0
"$out/kpc_cuda_tests" || status=$?
if [ "$status" = 77 ]; then echo "kpc: no CUDA device here; built only"; exit 77; fi
"$out/kpc_cuda_bench" --json "$json"
echo "kpc: figures in $json; CUDA tests exit status $status (0: all passed)"
exit "$status"
