#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Publishes bench/peer_attention_bench.cpp's figures (run by scripts/peer_attention.sh).

Merges the speed ratios (> 1: kpc is faster) and the per-call medians into
docs/results/attention.json, keeping every key already there, and writes the section
"## llama.cpp flash attention, side by side" of docs/PERFORMANCE.md (replaced if present, else
appended at the end; the other sections stay as they are).

usage: python3 scripts/peer_attention.py US_PER_CALL.json
"""
import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (machine())

ROOT = bench.ROOT
HEADING = "## llama.cpp flash attention, side by side"
VERSION = "llama-cpp-python 0.3.36 (vendored ggml)"
# Bytes per cached token of a 128-wide head, K + V (kpc's K4V4 comes from attention.json).
GGML_BYTES = {"ggml_f16": 512, "ggml_q8_0": 2 * 136, "ggml_q4_0": 2 * 72, "kpc_f16": 512}


def ratios(us):
    def speed(peer, kpc, tokens):
        return round(us["%s/%d" % (peer, tokens)] / us["%s/%d" % (kpc, tokens)], 3)

    out = {}
    for suffix, tokens in (("16k", 16384), ("64k", 65536)):
        for peer in ("q4_0", "f16", "q8_0"):
            out["k4v4_vs_ggml_%s_%s" % (peer, suffix)] = speed("ggml_" + peer, "kpc_K4V4", tokens)
            out["k4v4int_vs_ggml_%s_%s" % (peer, suffix)] = speed("ggml_" + peer, "kpc_K4V4int", tokens)
    out["kpc_f16_vs_ggml_f16_16k"] = speed("ggml_f16", "kpc_f16", 16384)
    return out


def table(us, bytes_per_token):
    cases = list(dict.fromkeys(k.split("/")[0] for k in us))  # the bench's order
    tokens = sorted({int(k.split("/")[1]) for k in us})
    pairs = [("kpc_K4V4", "ggml_q4_0"), ("kpc_K4V4int", "ggml_q4_0"), ("kpc_K4V4", "ggml_q8_0"), ("kpc_K4V4", "ggml_f16"),
             ("kpc_K4V4int", "ggml_f16"), ("kpc_f16", "ggml_f16")]

    def label(case):
        name = case.replace("_", " ", 1)
        return "%s (%s B)" % (name, bytes_per_token[case]) if case in bytes_per_token else name

    head = ["cached tokens"] + ["%s µs" % label(c) for c in cases] + \
        ["%s vs %s" % (a.replace("_", " ", 1), b.replace("_", " ", 1)) for a, b in pairs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in tokens:
        row = [str(t)] + ["%.0f" % us["%s/%d" % (c, t)] for c in cases]
        row += ["%.2f" % (us["%s/%d" % (b, t)] / us["%s/%d" % (a, t)]) for a, b in pairs]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def section(us, bytes_per_token):
    return "\n".join([
        HEADING,
        "",
        "llama.cpp's CPU flash attention (`ggml_flash_attn_ext`, the ggml vendored in llama-cpp-python",
        "0.3.36, CPU backend, Release, `-DGGML_NATIVE=ON`) and `kpc::decode_attention`, in one process",
        "(`bench/peer_attention_bench.cpp`, built `-O3 -march=native` like ggml) on one thread over the same",
        "f32 data: 1 query token, a GQA group of 4 query heads on one 128-wide KV head, hot (the same head",
        "every call); K and V of the same type; median µs per call over round-robin rounds of the cases.",
        "(B): bytes per cached token, K + V. Ratios are speed ratios (> 1: kpc is faster).",
        "Measured by `bash scripts/peer_attention.sh` on %s, %s." % (bench.machine(), datetime.date.today().isoformat()),
        "",
        table(us, bytes_per_token),
        "",
    ])


def replace_section(text, new):
    """text with the HEADING section (up to the next # or ## heading outside code) set to new."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == HEADING), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + new
    end, fenced = len(lines), False
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("```"):
            fenced = not fenced
        elif not fenced and (lines[i].startswith("# ") or lines[i].startswith("## ")):
            end = i
            break
    rest = "\n".join(lines[end:])
    return "\n".join(lines[:start]) + "\n" + new + ("\n" + rest if rest else "")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("us_per_call", help="the bench's JSON: case/tokens -> median microseconds per call")
    p.add_argument("--json", default=os.path.join(ROOT, "docs", "results", "attention.json"))
    p.add_argument("--performance-md", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    args = p.parse_args()

    with open(args.us_per_call) as f:
        us = json.load(f)
    result = {}
    if os.path.exists(args.json):
        with open(args.json) as f:
            result = json.load(f)
    result.update(ratios(us))
    result["ggml_peer"] = {"version": VERSION, "threads": 1, "regime": "hot",
                           "us_per_call": {k: round(v, 1) for k, v in us.items()}}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    bytes_per_token = dict(GGML_BYTES)
    if "k4v4_bytes_per_token" in result:
        bytes_per_token["kpc_K4V4"] = round(result["k4v4_bytes_per_token"], 1)
        bytes_per_token["kpc_K4V4int"] = bytes_per_token["kpc_K4V4"]
    text = section(us, bytes_per_token)
    with open(args.performance_md) as f:
        old = f.read()
    with open(args.performance_md, "w") as f:
        f.write(replace_section(old, text))
    print(text)
    print(json.dumps(ratios(us), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
