#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Measures kpc's decode attention against an f16 cache and fuzzes the cache loader.

1. Builds and runs bench/attention_bench.cpp (one 128-wide KV head, a GQA group of 4, 1k-64k
   cached tokens; hot: one head again and again; cold: a 256 MiB pool of heads walked in turn, as
   a decode step walks a model's layers), medians of 3 repetitions.
2. Builds the libFuzzer target for KVCache::restore with clang and runs it for --fuzz-seconds
   (default 600) from a seed corpus, counting executions.
3. Prints the ratio table and writes docs/results/attention.json and the attention section of
   docs/PERFORMANCE.md.

usage: python3 scripts/attention.py [--no-build] [--fuzz-seconds 600] [--min-time 0.5]
"""
import argparse
import datetime
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (build(), run(), machine(), publish())

ROOT = bench.ROOT
TOKENS = [1024, 4096, 16384, 65536]
CACHES = ["f16", "K4V4", "K4V3", "q4_0"]


def fuzz(build_dir, seconds):
    """Runs the restore fuzzer for `seconds`; returns the number of executions."""
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                    "-DCMAKE_CXX_COMPILER=clang++", "-DKPC_BUILD_FUZZERS=ON", "-DKPC_BUILD_BENCHMARKS=OFF",
                    "-DKPC_BUILD_EXAMPLES=OFF", "-DKPC_INSTALL=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "--target", "kpc_fuzz_restore", "kpc_fuzz_seeds", "-j",
                    str(os.cpu_count() or 2)], check=True, stdout=subprocess.DEVNULL)
    corpus = os.path.join(build_dir, "fuzz-long-corpus")
    os.makedirs(corpus, exist_ok=True)
    subprocess.run([os.path.join(build_dir, "tests", "kpc_fuzz_seeds"), corpus], check=True, stdout=subprocess.DEVNULL)
    print("fuzzing KVCache::restore for %d s" % seconds, file=sys.stderr)
    done = subprocess.run([os.path.join(build_dir, "tests", "kpc_fuzz_restore"), "-max_total_time=%d" % seconds,
                           "-print_final_stats=1", "-rss_limit_mb=2048", corpus],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = done.stdout
    if done.returncode != 0:
        sys.stderr.write(log[-4000:])
        raise SystemExit("the fuzzer found a failure (exit %d)" % done.returncode)
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    if not m:
        raise SystemExit("no execution count in the fuzzer's output")
    return int(m.group(1))


def per_second(raw):
    """name -> (cached tokens attended per second, bytes_per_token), medians of the repetitions."""
    out = {}
    for b in raw["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        out[b.get("run_name", b["name"])] = (b["items_per_second"], b["bytes_per_token"])
    return out


def analyse(r):
    rows = []
    for tokens in TOKENS:
        for regime in ("hot", "cold"):
            base = r.get("attention/%d/%s/f16" % (tokens, regime))
            if not base:
                continue
            for cache in CACHES:
                rate = r.get("attention/%d/%s/%s" % (tokens, regime, cache))
                if rate:
                    rows.append((tokens, regime, cache, rate[0], rate[1], rate[0] / base[0]))
    return rows


def table(rows):
    lines = ["| cached tokens | regime | cache | bytes/token | µs per call | vs f16 |", "|---|---|---|---|---|---|"]
    for tokens, regime, cache, rate, bpt, ratio in rows:
        lines.append("| %d | %s | %s | %.1f | %.0f | %.2f |" % (tokens, regime, cache, bpt, tokens / rate * 1e6, ratio))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build", "bench"))
    p.add_argument("--fuzz-build-dir", default=os.path.join(ROOT, "build", "fuzz"))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--fuzz-seconds", type=int, default=600)
    p.add_argument("--json", default=os.path.join(ROOT, "docs", "results", "attention.json"))
    p.add_argument("--performance-md", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    args = p.parse_args()

    if not args.no_build:
        bench.build(args.build_dir, "kpc_attention_bench")
    raw = bench.run(os.path.join(args.build_dir, "bench", "kpc_attention_bench"),
                    os.path.join(args.build_dir, "attention-raw.json"), args.min_time, args.repetitions, "")
    r = per_second(raw)
    rows = analyse(r)
    executions = fuzz(args.fuzz_build_dir, args.fuzz_seconds)

    def ratio(tokens, regime, cache):
        return round(r["attention/%d/%s/%s" % (tokens, regime, cache)][0] /
                     r["attention/%d/%s/f16" % (tokens, regime)][0], 3)

    result = {
        "k4v4_vs_f16_16k": ratio(16384, "cold", "K4V4"),
        "k4v3_vs_f16_16k": ratio(16384, "cold", "K4V3"),
        "k4v4_vs_f16_64k": ratio(65536, "cold", "K4V4"),
        "k4v4_vs_f16_16k_hot": ratio(16384, "hot", "K4V4"),
        "k4v4_vs_f16_64k_hot": ratio(65536, "hot", "K4V4"),
        "q4_0_vs_f16_16k": ratio(16384, "cold", "q4_0"),
        "k4v4_bytes_per_token": round(r["attention/16384/cold/K4V4"][1], 4),
        "k4v3_bytes_per_token": round(r["attention/16384/cold/K4V3"][1], 4),
        "f16_bytes_per_token": round(r["attention/16384/cold/f16"][1], 4),
        "fuzz_executions": executions,
        "fuzz_seconds": args.fuzz_seconds,
        "machine": bench.machine(),
        "date": datetime.date.today().isoformat(),
    }
    text = table(rows) + ("\n\nRatios are speed ratios (> 1: kpc is faster); the headline ratios use the cold regime. "
                          "Fuzzing: %d executions of `KVCache::restore` in %d s, no failure." % (executions,
                                                                                             args.fuzz_seconds))
    bench.publish(text, result, args.json, args.performance_md, "attention.py",
                  "one 128-wide KV head, GQA group of 4, single thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
