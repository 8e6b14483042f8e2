#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kpc's main job: build the quality example and print its table (arguments go to the example,
# e.g. --tokens 8192 --heads 8).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh cmake make g++ libxsimd-dev xtl-dev
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DKPC_BUILD_TESTS=OFF -DKPC_INSTALL=OFF > build-demo.log 2>&1 ||
  { cat build-demo.log; exit 1; }
cmake --build build/demo --target kpc_quality -j "$(nproc)" >> build-demo.log 2>&1 || { cat build-demo.log; exit 1; }
rm -f build-demo.log
build/demo/examples/kpc_quality "$@"
