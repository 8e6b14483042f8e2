#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What kpc costs an engine's build, measured on this machine.

(a) one translation unit that includes <kpc/kpc.hpp> and uses one Quantizer and one KVCache,
    compiled alone (g++ -std=c++17 -O2 -march=native), median of --runs; header-only (it
    instantiates the kernels it calls) and with KPC_PRECOMPILED_KERNELS (it instantiates none);
(b) a small CMake consumer of that unit with kpc_add_runtime_dispatch(): configure and build from
    scratch, wall time with `nproc` jobs; also with PRECOMPILED, and with two targets sharing the
    dispatch library;
(c) the yardstick: a unit that includes only <xsimd/xsimd.hpp> and uses one batch, as (a).

    python3 scripts/build_cost.py [--json docs/results/build.json] [--source DIR] [--runs N]

--source measures another kpc checkout (say, an older commit) with the same programs.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CONSUMER_TU = r"""
#include <kpc/kpc.hpp>
#include <cstdio>
#include <vector>

// One Quantizer (K4 G32 encode, decode, scores) and one KVCache (append, attend), as an engine uses them.
int main() {
  using K = kpc::Quantizer<4, kpc::PerChannel<32>>;
  const std::size_t tokens = 64, dim = 128;
  std::vector<float> rows(tokens * dim), decoded(tokens * dim), scores(tokens), out(dim);
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(i % 97) * 0.01f - 0.5f;
  std::vector<std::byte> bytes(K::encoded_bytes(tokens, dim));
  K::encode(rows.data(), tokens, dim, bytes.data());
  K::decode(bytes.data(), tokens, dim, decoded.data());
  K::scores(rows.data(), bytes.data(), tokens, dim, scores.data());
  kpc::KVCache<K, kpc::q4_1> cache(1, dim, 256);
  cache.append(rows.data(), rows.data(), tokens);
  cache.attend(0, rows.data(), 1, {}, out.data());
  std::printf("%s %g %g %g\n", kpc::to_string(kpc::active_isa()), decoded[5], scores[3], out[7]);
  return 0;
}
"""

XSIMD_TU = r"""
#include <xsimd/xsimd.hpp>
#include <cstdio>

int main() {
  float x[16];
  for (int i = 0; i < 16; ++i) x[i] = static_cast<float>(i);
  const auto b = xsimd::batch<float>::load_unaligned(x);
#if XSIMD_VERSION_MAJOR >= 9
  std::printf("%g\n", xsimd::reduce_add(b * b));
#else
  std::printf("%g\n", xsimd::hadd(b * b));
#endif
  return 0;
}
"""

CMAKE_PROJECT = r"""
cmake_minimum_required(VERSION 3.18)
project(kpc_build_cost CXX)
set(CMAKE_CXX_STANDARD 17)
add_subdirectory("{source}" kpc)
add_executable(engine engine.cpp)
target_link_libraries(engine PRIVATE kpc::kpc)
{dispatch}
"""


def compile_seconds(compiler, flags, source, include, runs, workdir):
    path = os.path.join(workdir, "unit.cpp")
    with open(path, "w") as f:
        f.write(source)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([compiler, *flags, f"-I{include}", "-c", path, "-o", os.path.join(workdir, "unit.o")],
                       check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cmake_seconds(source, dispatch, workdir, jobs):
    project = os.path.join(workdir, "project")
    shutil.rmtree(project, ignore_errors=True)
    os.makedirs(project)
    with open(os.path.join(project, "CMakeLists.txt"), "w") as f:
        f.write(CMAKE_PROJECT.format(source=source, dispatch=dispatch))
    with open(os.path.join(project, "engine.cpp"), "w") as f:
        f.write(CONSUMER_TU)
    if "engine2" in dispatch:
        shutil.copy(os.path.join(project, "engine.cpp"), os.path.join(project, "engine2.cpp"))
    build = os.path.join(project, "build")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    start = time.perf_counter()
    subprocess.run(["cmake", "-S", project, "-B", build, *generator, "-DCMAKE_BUILD_TYPE=Release",
                    "-DCMAKE_CXX_COMPILER=g++"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "-j", str(jobs)], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    run = subprocess.run([os.path.join(build, "engine")], check=True, capture_output=True, text=True)
    return seconds, run.stdout.split()[0]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512bw") if f in present]
    except OSError:
        pass
    return []


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the figures here (docs/results/build.json)")
    parser.add_argument("--source", default=root, help="the kpc checkout to measure (default: this one)")
    parser.add_argument("--runs", type=int, default=3, help="compiles per single-unit figure (median)")
    args = parser.parse_args()
    source = os.path.abspath(args.source)
    include = os.path.join(source, "include")
    jobs = os.cpu_count() or 1
    flags = ["-std=c++17", "-O2", "-march=native"]
    version = subprocess.run(["g++", "--version"], check=True, capture_output=True, text=True).stdout.splitlines()[0]

    with tempfile.TemporaryDirectory() as workdir:
        xsimd_only = compile_seconds("g++", flags, XSIMD_TU, include, args.runs, workdir)
        print(f"(c) xsimd alone, one TU:                     {xsimd_only:6.2f} s")
        one_tu = compile_seconds("g++", flags, CONSUMER_TU, include, args.runs, workdir)
        print(f"(a) kpc.hpp + Quantizer + KVCache, one TU:   {one_tu:6.2f} s  ({one_tu / xsimd_only:.2f} x (c))")
        precompiled_tu = compile_seconds("g++", flags + ["-DKPC_PRECOMPILED_KERNELS"], CONSUMER_TU, include, args.runs,
                                         workdir)
        print(f"(a) the same with KPC_PRECOMPILED_KERNELS:   {precompiled_tu:6.2f} s  "
              f"({precompiled_tu / xsimd_only:.2f} x (c))")
        cases = [
            ("dispatch", "kpc_add_runtime_dispatch(engine)"),
            ("dispatch_precompiled", "kpc_add_runtime_dispatch(engine PRECOMPILED)"),
            ("dispatch_two_targets", "kpc_add_runtime_dispatch(engine)\nadd_executable(engine2 engine2.cpp)\n"
                                     "target_link_libraries(engine2 PRIVATE kpc::kpc)\nkpc_add_runtime_dispatch(engine2)"),
        ]
        consumer = {}
        for name, dispatch in cases:
            seconds, isa = cmake_seconds(source, dispatch, workdir, jobs)
            consumer[name] = {"seconds": round(seconds, 2), "cmake": dispatch.replace("\n", "; "), "runs_on": isa}
            print(f"(b) CMake consumer, {name:22s} {seconds:6.2f} s wall, {jobs} jobs (runs {isa})")

    result = {
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_name(), "cores": jobs, "cpu_flags": cpu_flags(), "os": platform.platform()},
        "compiler": version,
        "flags": " ".join(flags),
        "runs": args.runs,
        "xsimd_only_tu_seconds": round(xsimd_only, 2),
        "kpc_tu_seconds": round(one_tu, 2),
        "kpc_tu_vs_xsimd_only": round(one_tu / xsimd_only, 2),
        "kpc_tu_precompiled_seconds": round(precompiled_tu, 2),
        "kpc_tu_precompiled_vs_xsimd_only": round(precompiled_tu / xsimd_only, 2),
        "consumer_with_dispatch_seconds": consumer["dispatch"]["seconds"],
        "consumers": consumer,
        "goals": {"kpc_tu_vs_xsimd_only_max": 2.0, "consumer_with_dispatch_seconds_max": 60.0},
    }
    result["goals"]["header_only_tu_met"] = result["kpc_tu_vs_xsimd_only"] <= 2.0
    result["goals"]["precompiled_tu_met"] = result["kpc_tu_precompiled_vs_xsimd_only"] <= 2.0
    result["goals"]["consumer_with_dispatch_met"] = result["consumer_with_dispatch_seconds"] <= 60.0
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
