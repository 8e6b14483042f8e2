#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fuzzes kpc's byte-reading entry points with libFuzzer (clang, ASan + UBSan) and records the
executions per target in docs/results/fuzz.json:

  restore    KVCache::restore, plain and with every cache option (tests/fuzz/restore_fuzz.cpp)
  quantizer  Quantizer::decode / scores / accumulate and decode_attention on every format
  gguf       the example engine's GGUF reader (examples/llama/gguf.hpp)

Each target runs for --seconds (default 600) from its seed corpus; two run at a time. A failure
stops the script with the fuzzer's report.

usage: python3 scripts/fuzz.py [--seconds 600] [--targets restore,quantizer,gguf] [--json PATH]
(targets not run keep their earlier record in the JSON; each entry says its date and commit)
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = ["restore", "quantizer", "gguf"]


def build(build_dir, targets):
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                    "-DCMAKE_CXX_COMPILER=clang++", "-DKPC_BUILD_FUZZERS=ON", "-DKPC_BUILD_BENCHMARKS=OFF",
                    "-DKPC_BUILD_EXAMPLES=OFF", "-DKPC_INSTALL=OFF", "-DKPC_TEST_HEADERS=OFF"],
                   check=True, stdout=subprocess.DEVNULL)
    names = ["kpc_fuzz_" + t for t in targets] + ["kpc_fuzz_%s_seeds" % t for t in targets if t != "quantizer"]
    subprocess.run(["cmake", "--build", build_dir, "--target", *names, "-j", str(os.cpu_count() or 2)],
                   check=True, stdout=subprocess.DEVNULL)


def start(build_dir, target, seconds):
    corpus = os.path.join(build_dir, "fuzz-long-corpus-" + target)
    os.makedirs(corpus, exist_ok=True)
    if target != "quantizer":
        subprocess.run([os.path.join(build_dir, "tests", "kpc_fuzz_%s_seeds" % target), corpus], check=True,
                       stdout=subprocess.DEVNULL)
    print("fuzzing %s for %d s" % (target, seconds), file=sys.stderr)
    artifacts = os.path.join(build_dir, "fuzz-artifacts-" + target)
    os.makedirs(artifacts, exist_ok=True)
    return subprocess.Popen([os.path.join(build_dir, "tests", "kpc_fuzz_" + target), "-max_total_time=%d" % seconds,
                             "-print_final_stats=1", "-rss_limit_mb=2048", "-artifact_prefix=" + artifacts + "/", corpus],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(target, process):
    log = process.communicate()[0]
    if process.returncode != 0:
        sys.stderr.write(log[-6000:])
        raise SystemExit("the %s fuzzer found a failure (exit %d)" % (target, process.returncode))
    executions = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    coverage = re.findall(r"cov: (\d+)", log)
    if not executions:
        raise SystemExit("no execution count in the %s fuzzer's output" % target)
    return {"executions": int(executions.group(1)), "coverage_edges": int(coverage[-1]) if coverage else None}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build", "fuzz"))
    p.add_argument("--json", default=os.path.join(ROOT, "docs", "results", "fuzz.json"))
    args = p.parse_args()
    targets = args.targets.split(",")
    if any(t not in TARGETS for t in targets):
        raise SystemExit("targets are " + ", ".join(TARGETS))
    build(args.build_dir, targets)
    results = {}
    for i in range(0, len(targets), 2):  # two at a time: one per core
        running = [(t, start(args.build_dir, t, args.seconds)) for t in targets[i:i + 2]]
        for t, process in running:
            results[t] = dict(finish(t, process), seconds=args.seconds)
            print("%-10s %12d executions in %d s" % (t, results[t]["executions"], args.seconds))
    compiler = subprocess.run(["clang++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    for t in results:
        results[t]["date"] = datetime.date.today().isoformat()
        results[t]["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                              text=True).stdout.strip()
    targets_run = dict(results)
    if os.path.exists(args.json):  # keep the record of targets not run this time
        with open(args.json) as f:
            results = dict(json.load(f).get("targets", {}), **targets_run)
    out = {"targets": results, "sanitizers": "address,undefined", "compiler": compiler, "failures": 0}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("wrote " + args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
