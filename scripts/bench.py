#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs kpc's benchmark suite (bench/kpc_bench.cpp) and reports where kpc stands.

Prints a table of throughputs per format, operation and instruction set, with the ratios of the
best instruction set to the yardsticks measured in the same run (memcpy, f32 and f16 dot scans,
f32 axpy, q4_0); writes docs/results/simd.json, the measured section of docs/PERFORMANCE.md and a
PNG plot. Every rate is bytes/s of the f32 slab covered, so ratios are throughput ratios (> 1:
kpc is faster).

usage: python3 scripts/bench.py [--no-build] [--min-time 0.3] [--repetitions 3] [--filter RE]
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ISA_ORDER = ["scalar", "sse2", "sse4.2", "avx", "avx2", "avx512", "neon"]
SHAPES = ["4096x128", "262144x128"]


def build(build_dir, target="kpc_bench"):
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", "-DKPC_BUILD_BENCHMARKS=ON",
                    "-DKPC_BUILD_TESTS=OFF", "-DKPC_BUILD_EXAMPLES=OFF", "-DKPC_INSTALL=OFF", "-DKPC_REQUIRE_XSIMD=ON"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "--target", target, "-j", str(os.cpu_count() or 2)],
                   check=True, stdout=subprocess.DEVNULL)


def run(binary, raw_path, min_time, repetitions, pattern):
    args = [binary, "--benchmark_format=json", "--benchmark_out=" + raw_path, "--benchmark_out_format=json",
            "--benchmark_min_time=%g" % min_time]
    if repetitions > 1:
        args += ["--benchmark_repetitions=%d" % repetitions, "--benchmark_report_aggregates_only=true"]
    if pattern:
        args.append("--benchmark_filter=" + pattern)
    print("running", " ".join(args[1:]), file=sys.stderr)
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    with open(raw_path) as f:
        return json.load(f)


def rates(raw):
    """name (without aggregate suffix) -> bytes/s, the median when repetitions were made."""
    out = {}
    for b in raw["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        out[b.get("run_name", b["name"])] = b["bytes_per_second"]
    return out


def machine():
    model = platform.processor() or platform.machine()
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine(), "x86_64"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") or line.startswith("Features"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("sse4_2", "avx2", "fma", "f16c", "avx512f", "avx512bw", "asimd") if f in flags]
    return "%s, %d cores, %s (%s)" % (model, os.cpu_count() or 0, platform.machine(), " ".join(simd) or "no SIMD flags")


def analyse(r):
    isas = sorted({n.split("/")[3] for n in r if n.count("/") == 3}, key=ISA_ORDER.index)
    best = isas[-1]
    yardstick = {"encode": "memcpy", "encode_f16": "memcpy", "decode": "memcpy", "decode_f16": "memcpy",
                 "scores": "f32_scan", "accumulate": "f32_axpy"}

    def ratio(a, b):
        return r[a] / r[b] if a in r and b in r else None

    rows = []
    for shape in SHAPES:
        ops = []
        for n in r:
            parts = n.split("/")
            if len(parts) == 4 and parts[0] == shape and (parts[1], parts[2]) not in ops:
                ops.append((parts[1], parts[2]))
        for fmt, op in ops:
            base = "%s/%s/%s/" % (shape, fmt, op)
            row = {"shape": shape, "format": fmt, "op": op, "gbps": {i: r.get(base + i, 0) / 1e9 for i in isas}}
            row["vs_yardstick"] = ratio(base + best, "%s/baseline/%s" % (shape, yardstick[op]))
            row["vs_f16_scan"] = ratio(base + best, "%s/baseline/f16_scan" % shape) if op == "scores" else None
            row["vs_q4_0"] = ratio(base + best, "%s/q4_0/%s/%s" % (shape, op, best)) if fmt != "q4_0" else None
            slowest = min((r[base + i] / r[base + "scalar"] for i in isas[1:] if base + i in r and base + "scalar" in r),
                          default=None)
            row["slowest_simd_vs_scalar"] = slowest
            rows.append(row)
    return isas, best, rows


def results_json(r, best, rows):
    def key(shape, fmt, op, base):
        return r["%s/%s/%s/%s" % (shape, fmt, op, best)] / r[base] if "%s/%s/%s/%s" % (shape, fmt, op, best) in r else None

    out = {}
    for shape, suffix in (("4096x128", ""), ("262144x128", "_large")):
        b = shape + "/baseline/"
        out["k4_encode_vs_memcpy" + suffix] = key(shape, "K4G32", "encode", b + "memcpy")
        out["k4_decode_vs_memcpy" + suffix] = key(shape, "K4G32", "decode", b + "memcpy")
        out["k4_scores_vs_f32_scan" + suffix] = key(shape, "K4G32", "scores", b + "f32_scan")
        out["k4_scores_vs_f16_scan" + suffix] = key(shape, "K4G32", "scores", b + "f16_scan")
        q40 = "%s/q4_0/encode/%s" % (shape, best)
        out["k4_encode_vs_q4_0_encode" + suffix] = key(shape, "K4G32", "encode", q40) if q40 in r else None
        out["v4_encode_vs_memcpy" + suffix] = key(shape, "V4", "encode", b + "memcpy")
        out["v4_accumulate_vs_f32_axpy" + suffix] = key(shape, "V4", "accumulate", b + "f32_axpy")
    out = {k: (round(v, 3) if v is not None else None) for k, v in out.items()}
    simd = [row["slowest_simd_vs_scalar"] for row in rows if row["slowest_simd_vs_scalar"] is not None]
    out["every_isa_vs_scalar_min"] = round(min(simd), 2) if simd else None
    out["isa"] = best
    out["machine"] = machine()
    out["date"] = datetime.date.today().isoformat()
    return out


def table(isas, best, rows, r):
    def f(v):
        return "%.2f" % v if v is not None else ""

    lines = ["| shape | format | operation | " + " | ".join("%s GB/s" % i for i in isas) +
             " | %s ÷ yardstick | ÷ f16 scan | ÷ q4_0 |" % best,
             "|" + "---|" * (len(isas) + 6)]
    for row in rows:
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            row["shape"], row["format"], row["op"], " | ".join(f(row["gbps"][i]) for i in isas),
            f(row["vs_yardstick"]), f(row["vs_f16_scan"]), f(row["vs_q4_0"])))
    lines.append("")
    lines.append("Yardsticks (GB/s of the f32 slab): " + "; ".join(
        "%s %s" % (shape, ", ".join("%s %.1f" % (b, r["%s/baseline/%s" % (shape, b)] / 1e9)
                                    for b in ("memcpy", "f32_scan", "f16_scan", "f32_axpy")
                                    if "%s/baseline/%s" % (shape, b) in r))
        for shape in SHAPES) + ". The yardstick of encode/decode is memcpy, of scores the f32 scan, of "
                              "accumulate the f32 axpy.")
    return "\n".join(lines)


def update_performance_md(path, text, result, script="bench.py", note=None):
    """Replaces the section between <!-- script:begin --> and <!-- script:end --> (or appends it)."""
    begin, end = "<!-- %s:begin -->" % script, "<!-- %s:end -->" % script
    if note is None:
        note = "best instruction set: %s" % result["isa"]
    section = "%s\nMeasured by `python3 scripts/%s` on %s, %s; %s.\n\n%s\n%s" % (
        begin, script, result["machine"], result["date"], note, text, end)
    with open(path) as f:
        doc = f.read()
    if begin in doc:
        doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, doc, flags=re.S)
    else:
        doc += "\n" + section + "\n"
    with open(path, "w") as f:
        f.write(doc)


def publish(text, result, json_path, performance_md, script="bench.py", note=None):
    """Prints the table and the results, writes the JSON file and the PERFORMANCE.md section."""
    print(text)
    print()
    print(json.dumps(result, indent=2))
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    if performance_md and os.path.exists(performance_md):
        update_performance_md(performance_md, text, result, script, note)


def plot(isas, rows, r, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wanted = [("K4G32", "encode"), ("K4G32", "decode"), ("K4G32", "scores"), ("V4", "encode"), ("V4", "accumulate"),
              ("q4_0", "encode"), ("q4_0", "scores")]
    fig, axes = plt.subplots(1, len(SHAPES), figsize=(14, 5), sharey=False)
    for ax, shape in zip(axes, SHAPES):
        present = [w for w in wanted if any(row["shape"] == shape and (row["format"], row["op"]) == w for row in rows)]
        width = 0.8 / (len(isas) + 1)
        for k, isa in enumerate(isas):
            values = [next(row["gbps"][isa] for row in rows if row["shape"] == shape and (row["format"], row["op"]) == w)
                      for w in present]
            ax.bar([i + k * width for i in range(len(present))], values, width, label=isa)
        base = {"encode": "memcpy", "decode": "memcpy", "scores": "f32_scan", "accumulate": "f32_axpy"}
        values = [r.get("%s/baseline/%s" % (shape, base[op]), 0) / 1e9 for _, op in present]
        ax.bar([i + len(isas) * width for i in range(len(present))], values, width, color="black", alpha=0.35,
               label="yardstick (memcpy / f32 scan / f32 axpy)")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(present))])
        ax.set_xticklabels(["%s\n%s" % w for w in present], fontsize=8)
        ax.set_title("%s (tokens x channels)" % shape)
        ax.set_ylabel("GB/s of the f32 slab")
        ax.legend(fontsize=7)
    fig.suptitle("kpc throughput per instruction set, one core")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build", "bench"))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--min-time", type=float, default=0.3)
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--filter", default="")
    p.add_argument("--json", default=os.path.join(ROOT, "docs", "results", "simd.json"))
    p.add_argument("--performance-md", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    p.add_argument("--plot", default=os.path.join(ROOT, "docs", "results", "simd.png"))
    args = p.parse_args()

    if not args.no_build:
        build(args.build_dir)
    raw = run(os.path.join(args.build_dir, "bench", "kpc_bench"), os.path.join(args.build_dir, "raw.json"),
              args.min_time, args.repetitions, args.filter)
    r = rates(raw)
    isas, best, rows = analyse(r)
    text = table(isas, best, rows, r)
    result = results_json(r, best, rows)
    publish(text, result, args.json, args.performance_md)
    if args.plot:
        plot(isas, rows, r, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
