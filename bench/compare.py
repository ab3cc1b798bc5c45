#!/usr/bin/env python3
"""Runs the five benchmark workloads (shared/bench/WORKLOADS.md) on both sides,
this project's `ebm-train bench` and the PyTorch peer `torch_ref.py`, one
process per workload and side (so that peak memory is per workload), and
prints one table: each side's figure, the ratio (project / peer, higher is
better for the project) and each side's peak resident memory.

Usage (from the repository root):
    python3 bench/compare.py                   # all workloads, 5 reps
    python3 bench/compare.py --only F1,F2 --reps 9 --json out/bench.json
    python3 bench/compare.py --peer ../shared/bench/torch_ref.py
    python3 bench/compare.py --rounds 5    # alternate the sides 5 times each

On a shared or virtual machine one side's figure can move by 30% or more
between runs; with --rounds R (default 3) the two sides alternate R times per
workload and each side's figure is the median over its rounds, with the range
of the per-round ratios printed beside it.

The peer needs torch: without it the script installs torch (CPU) into
target/bench-venv with pip. The project binary is built with
`cargo build --release -p ebm-train` first.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURE = {"F1": "grad_evals_per_s", "F2": "grad_evals_per_s", "T1": "iterations_per_s",
          "I1": "iterations_per_s", "I2": "images_per_s"}

# Runs torch_ref.py in this interpreter and reports its peak RSS (kB).
PEER_WRAPPER = """
import resource, runpy, sys, json
out = sys.argv[1]
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
with open(out, 'w') as f:
    json.dump({'peak_rss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, f)
"""


def python_with_torch():
    try:
        import torch  # noqa: F401
        return sys.executable
    except ImportError:
        pass
    venv = os.path.join(ROOT, "target", "bench-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if subprocess.run([py, "-c", "import torch"], capture_output=True).returncode != 0:
        print("installing torch into", venv, file=sys.stderr)
        cpu = subprocess.run([py, "-m", "pip", "install", "-q", "torch", "numpy",
                              "--index-url", "https://download.pytorch.org/whl/cpu"])
        if cpu.returncode != 0:
            subprocess.run([py, "-m", "pip", "install", "-q", "torch", "numpy"], check=True)
    return py


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_ours(binary, wid, reps, ceiling):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as t:
        path = t.name
    cmd = [binary, "bench", "--only", wid, "--reps", str(reps), "--json", path]
    if ceiling:
        cmd.append("--ceiling")
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    with open(path) as f:
        return json.load(f)


def run_peer(py, peer, wid, reps, ceiling):
    with tempfile.TemporaryDirectory() as d:
        res, mem = os.path.join(d, "r.json"), os.path.join(d, "m.json")
        cmd = [py, "-c", PEER_WRAPPER, mem, peer, "--only", wid, "--reps", str(reps), "--json", res]
        if ceiling:
            cmd.append("--ceiling")
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        with open(res) as f:
            out = json.load(f)
        with open(mem) as f:
            out[wid]["peak_rss_kb"] = json.load(f)["peak_rss_kb"]
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="F1,F2,T1,I1,I2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the two sides")
    ap.add_argument("--peer", default=os.path.join(ROOT, "..", "shared", "bench", "torch_ref.py"))
    ap.add_argument("--json", help="write both sides' results as JSON")
    ap.add_argument("--no-build", action="store_true", help="use the built target/release/ebm-train")
    args = ap.parse_args()
    ids = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "ebm-train"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "ebm-train")
    py = python_with_torch()
    torch_version = subprocess.run([py, "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True).stdout.strip()
    results = {}
    for i, wid in enumerate(ids):
        rounds = []
        for r in range(max(1, args.rounds)):
            first = i == 0 and r == 0  # matmul ceilings once per side
            rounds.append({"ours": run_ours(binary, wid, args.reps, first),
                           "peer": run_peer(py, args.peer, wid, args.reps, first)})
        results[wid] = {"rounds": rounds, "ours": rounds[0]["ours"], "peer": rounds[0]["peer"]}
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} cores; torch {torch_version}; "
          f"median of {args.reps} reps after one warm-up, per side and round; "
          f"{max(1, args.rounds)} alternating rounds, median over rounds\n")
    print("| id | figure | igebm-rs | PyTorch | ratio | ratio range over rounds "
          "| peak RSS igebm-rs | peak RSS PyTorch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for wid in ids:
        key = FIGURE[wid]
        rounds = results[wid]["rounds"]
        ours = [rd["ours"][wid][key] for rd in rounds]
        peer = [rd["peer"][wid][key] for rd in rounds]
        ratios = [o / p for o, p in zip(ours, peer)]
        o_med, p_med = statistics.median(ours), statistics.median(peer)
        rss_o = max(rd["ours"][wid]["peak_rss_kb"] for rd in rounds) / 1024
        rss_p = max(rd["peer"][wid]["peak_rss_kb"] for rd in rounds) / 1024
        results[wid]["summary"] = {"ours": o_med, "peer": p_med, "ratio": o_med / p_med,
                                   "ratios": ratios}
        print(f"| {wid} | {key} | {o_med:,.1f} | {p_med:,.1f} | {o_med / p_med:.2f}x | "
              f"{min(ratios):.2f}-{max(ratios):.2f}x | {rss_o:.0f} MiB | {rss_p:.0f} MiB |")
    first = results[ids[0]] if ids else None
    if first:
        oc, pc = first["ours"].get("_ceiling"), first["peer"].get("_ceiling")
        if oc:
            print("\nMatmul ceilings, GFLOP/s (project side): " +
                  ", ".join(f"{k} {v:.1f}" for k, v in oc.items() if k != "F1_flops"))
        if pc:
            print("Matmul ceilings, GFLOP/s (torch): " +
                  ", ".join(f"{k} {pc[k]['gflop_per_s']:.1f}" for k in ("sgemm_2048", "sgemm_64x128x128")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
