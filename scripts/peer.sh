#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Cross-checks kpc's real-model evaluation against llama.cpp: builds llama-cpp-python from source
# into build/venv-peer (once; several minutes on two cores) and runs scripts/peer.py with the
# given arguments, e.g.
#   bash scripts/peer.sh --model build/model/SmolLM2-135M-Instruct.Q4_1.gguf \
#     --tokens build/eval/tokens.u32 --window 512 --max-tokens 8192 --out docs/results/peer.json
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.3.36
venv=build/venv-peer

if ! "$venv/bin/python" -c "import sys, llama_cpp; sys.exit(llama_cpp.__version__ != '$version')" \
    2>/dev/null; then
  bash scripts/deps.sh python3-venv cmake g++ make
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # Only the shared library is needed: no llava/mtmd, tools, examples, tests or curl (offline).
  export CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
  export CMAKE_BUILD_PARALLEL_LEVEL=2 MAKEFLAGS=-j2
  echo "kpc: building llama-cpp-python $version into $venv"
  nice -n 10 "$venv/bin/python" -m pip install -q --no-cache-dir --no-binary llama-cpp-python \
    numpy "llama-cpp-python==$version"
fi
exec "$venv/bin/python" scripts/peer.py "$@"
