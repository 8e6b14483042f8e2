#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kpc's decode attention beside llama.cpp's CPU flash attention (ggml_flash_attn_ext), in one
# process on one thread: builds the ggml vendored in the llama-cpp-python 0.3.36 sdist (CPU backend
# only, once; under a minute on two cores), builds and runs bench/peer_attention_bench.cpp, then
# scripts/peer_attention.py merges the figures into docs/results/attention.json and writes the
# "llama.cpp flash attention, side by side" section of docs/PERFORMANCE.md.
#   bash scripts/peer_attention.sh
# Everything downloaded or built stays under build/peer-attention (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.3.36
work=build/peer-attention
sdist_dir=$work/sdist
src_dir=$work/src
ggml_build=$work/ggml-build

sdist=$sdist_dir/llama_cpp_python-$version.tar.gz
if [ ! -f "$sdist" ]; then
  echo "kpc: downloading the llama-cpp-python $version sdist"
  python3 -m pip download --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$sdist_dir"
fi
ggml_src=$src_dir/llama_cpp_python-$version/vendor/llama.cpp/ggml
if [ ! -f "$ggml_src/CMakeLists.txt" ]; then
  mkdir -p "$src_dir"
  tar -xzf "$sdist" -C "$src_dir"
fi
[ -f "$ggml_src/include/ggml.h" ] || { echo "kpc: no vendored ggml at $ggml_src" >&2; exit 1; }

# Static libraries as the build names them; empty if not built yet.
find_libs() { find "$ggml_build" -name 'libggml.a' -o -name 'libggml-base.a' -o -name 'libggml-cpu.a' 2>/dev/null | sort; }
if [ "$(find_libs | wc -l)" -ne 3 ]; then
  # ggml as a subproject: standalone, it wants ggml.pc.in, which the sdist leaves out.
  mkdir -p "$work/wrapper"
  cat > "$work/wrapper/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.14)
project(kpc_peer_ggml C CXX)
add_subdirectory(${GGML_SRC} ggml)
EOF
  # CPU backend only, no OpenMP (its runtime would be one more thing timed beside kpc).
  cmake -S "$work/wrapper" -B "$ggml_build" -DGGML_SRC="$PWD/$ggml_src" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON -DGGML_OPENMP=OFF -DGGML_CCACHE=OFF -DGGML_BLAS=OFF -DGGML_METAL=OFF \
    -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF > "$work/ggml-configure.log" 2>&1 \
    || { tail -n 30 "$work/ggml-configure.log" >&2; exit 1; }
  start=$(date +%s)
  # Its compiler warnings go to the log, not the terminal.
  nice -n 10 cmake --build "$ggml_build" --config Release -j "$(nproc)" > "$work/ggml-build.log" 2>&1 \
    || { grep -m 20 -B 2 -A 8 'error' "$work/ggml-build.log" >&2; exit 1; }
  echo "kpc: ggml built in $(($(date +%s) - start)) s"
fi
mapfile -t libs < <(find_libs)
[ "${#libs[@]}" -eq 3 ] || { echo "kpc: expected libggml, libggml-base and libggml-cpu under $ggml_build" >&2; exit 1; }

bench=$work/peer_attention_bench
# -O3 -DNDEBUG, as CMake's Release builds ggml (and kpc's own benchmarks): at -O2, g++ 12 leaves
# kpc's 4-bit kernels about 3x slower. The libraries' order does not matter inside a group.
g++ -O3 -DNDEBUG -march=native -std=c++17 -Iinclude -I"$ggml_src/include" bench/peer_attention_bench.cpp \
  -o "$bench" -Wl,--start-group "${libs[@]}" -Wl,--end-group -pthread -lm
"$bench" "$work/us_per_call.json"
python3 scripts/peer_attention.py "$work/us_per_call.json"
