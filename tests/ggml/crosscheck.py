#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""kpc's q4_0, q4_1 and q8_0 bytes against llama.cpp's own Python port of ggml's reference
quantizers (gguf.quants, PyPI package `gguf`): the formats must be byte-identical.

usage: crosscheck.py [emulator args...] path/to/kpc_encode_file   (KPC_TEST_SEED replays a run)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize

FORMATS = {"q4_0": GGMLQuantizationType.Q4_0, "q4_1": GGMLQuantizationType.Q4_1, "q8_0": GGMLQuantizationType.Q8_0}


def slabs(rng):
    """[tokens][channels] f32 slabs: Gaussian, Qwen-style offsets, wide ranges, and values placed on
    and next to code boundaries, where a rounding difference would flip a code."""
    yield "gaussian", rng.standard_normal((257, 128), dtype=np.float32)
    x = rng.standard_normal((300, 96), dtype=np.float32)
    x[:, [5, 40, 77]] = 20 + 5 * x[:, [5, 40, 77]]
    yield "offset", x
    yield "scales", (rng.standard_normal((200, 64)) * 10.0 ** rng.uniform(-4, 4, (200, 1))).astype(np.float32)
    # Each 32-value block: an anchor pair fixing the range, the rest on k + 0.5 steps, nudged by
    # -2..2 ulps. (For q8_0 the steps are ties of roundf; for q4_0/q4_1 of trunc(v + 0.5).)
    blocks = rng.uniform(0.01, 100, (500, 1)).astype(np.float32) * (
        rng.integers(0, 15, (500, 32)).astype(np.float32) + np.float32(0.5))
    blocks[:, 0] = 0
    blocks[:, 1] = np.float32(15) * blocks.max(axis=1) / np.float32(14.5)
    for _ in range(2):
        step = rng.integers(-1, 2, blocks.shape)
        blocks = np.where(step > 0, np.nextafter(blocks, np.float32(np.inf)),
                          np.where(step < 0, np.nextafter(blocks, np.float32(-np.inf)), blocks)).astype(np.float32)
    yield "boundaries", blocks.reshape(250, 64) - np.float32(rng.uniform(0, 50))
    # q8_0's ties: an anchor of 127 s fixes d = s; the rest sit on (k + 0.5) s, many at k = 0 and
    # k = -1 (where floor(|v| + 0.5) and roundf disagree just below 0.5), nudged by -2..2 ulps.
    s = rng.uniform(0.001, 10, (400, 1)).astype(np.float32)
    k = np.where(rng.random((400, 32)) < 0.5, rng.integers(-1, 1, (400, 32)), rng.integers(-127, 127, (400, 32)))
    ties = (k.astype(np.float32) + np.float32(0.5)) * s
    ties[:, 0] = np.float32(127) * s[:, 0]
    for _ in range(2):
        step = rng.integers(-1, 2, ties.shape)
        ties = np.where(step > 0, np.nextafter(ties, np.float32(np.inf)),
                        np.where(step < 0, np.nextafter(ties, np.float32(-np.inf)), ties)).astype(np.float32)
    ties[:, 0] = np.float32(127) * s[:, 0]
    yield "roundf ties", ties.reshape(200, 64)
    yield "constant rows", np.full((4, 64), np.float32(-0.3))


def main():
    tool = sys.argv[1:]  # the tool, possibly behind an emulator (cross builds)
    seed = int(os.environ.get("KPC_TEST_SEED", np.random.SeedSequence().entropy % 2**63))
    print(f"ggml cross-check: seed {seed} (replay with KPC_TEST_SEED={seed})")
    rng = np.random.default_rng(seed)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, x in slabs(rng):
            x = np.ascontiguousarray(x, dtype=np.float32)
            path = os.path.join(tmp, "in.f32")
            x.tofile(path)
            for fmt, qtype in FORMATS.items():
                out = os.path.join(tmp, "out.bin")
                subprocess.run(tool + [fmt, str(x.shape[0]), str(x.shape[1]), path, out], check=True)
                ours = np.fromfile(out, dtype=np.uint8)
                theirs = quantize(x, qtype).reshape(-1)
                if ours.shape != theirs.shape or not np.array_equal(ours, theirs):
                    first = int(np.argmax(ours != theirs)) if ours.shape == theirs.shape else -1
                    print(f"MISMATCH {fmt} on {name} {x.shape}: first differing byte {first}")
                    failures += 1
                else:
                    print(f"ok {fmt:5s} {name:13s} {x.shape[0]}x{x.shape[1]}: {ours.size} bytes identical")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
