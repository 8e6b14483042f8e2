#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks that kpc's headers include only their own layer or the layers below it, so the
architecture reads bottom-up and no include runs back up:

  0 config.hpp
  1 detail/            leaf helpers (bits, arithmetic, CRC, CPUID): the standard library and config only
  2 vocabulary         format, error, half, span, isa, rotation
  3 ref/               the scalar reference
  4 simd/              the xsimd kernels
  5 backend/           kernel tables, slab loops, dispatch
  6 public operations  backend, quantizer, rope
  7 attention.hpp
  8 cache.hpp
  9 kpc.hpp            the umbrella

usage: check_layers.py <include dir>   (exit 1 and the offending includes when one runs up)
"""
import os
import re
import sys

LAYERS = [
    ("config.hpp",), ("detail/",), ("format.hpp", "error.hpp", "half.hpp", "span.hpp", "isa.hpp", "rotation.hpp"),
    ("ref/",), ("simd/",), ("backend/",), ("backend.hpp", "quantizer.hpp", "rope.hpp"), ("attention.hpp",),
    ("cache.hpp",), ("kpc.hpp",),
]


def layer_of(path):
    for rank, names in enumerate(LAYERS):
        if any(path == n or (n.endswith("/") and path.startswith(n)) for n in names):
            return rank
    return None


def main():
    root = os.path.join(sys.argv[1], "kpc")
    problems, headers = [], 0
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(".hpp"):
                continue
            headers += 1
            path = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            rank = layer_of(path)
            if rank is None:
                problems.append("%s: in no layer (add it to tests/layout/check_layers.py)" % path)
                continue
            with open(os.path.join(folder, name)) as f:
                for line in f:
                    m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                    if not m:
                        continue
                    target = os.path.normpath(os.path.join(os.path.dirname(path), m.group(1))).replace(os.sep, "/")
                    target_rank = layer_of(target)
                    if target_rank is None or target_rank > rank:
                        problems.append("%s (layer %d) includes %s (layer %s)" % (path, rank, target, target_rank))
    for p in problems:
        print(p)
    print("%d headers, %d includes that run up a layer" % (headers, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
