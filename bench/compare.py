#!/usr/bin/env python3
"""Runs the five benchmark workloads (shared/bench/WORKLOADS.md) on both sides,
this project's `ebm-train bench` and the PyTorch peer `torch_ref.py`, and
prints one table: each side's figure, the ratio (project / peer, higher is
better for the project) and each side's peak resident memory.

Usage (from the repository root):
    python3 bench/compare.py                   # all workloads, 9 pairs each
    python3 bench/compare.py --only F1,F2 --pairs 15 --json out/bench.json
    python3 bench/compare.py --peer ../shared/bench/torch_ref.py
    python3 bench/compare.py --rounds 3        # the older whole-process rounds

Paired timing (the default): per workload both sides run as servers (ours
`ebm-train bench --serve ID`, the peer's builders imported from torch_ref.py),
each set up and warmed up once, and the script asks them for timed units in
turn, the order swapping every pair, so that each pair's two measurements see
the same machine. A shared VM's speed moves by up to 2x within a minute; a
ratio per pair cancels that where whole-process rounds do not. Each side's
figure is the median over its measurements (at least 5, after one warm-up, as
WORKLOADS.md asks); the ratio is the median of the per-pair ratios, printed
with their range. A measurement runs enough units to last about 0.3 s.

With --rounds R the sides instead alternate whole runs of `--reps` units R
times per workload (a process per workload and side), each side's figure the
median over its rounds.

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
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURE = {"F1": "grad_evals_per_s", "F2": "grad_evals_per_s", "T1": "iterations_per_s",
          "I1": "iterations_per_s", "I2": "images_per_s"}
# The figure is PER_UNIT / seconds per unit.
PER_UNIT = {"F1": 64 * 50 * 20, "F2": 64 * 50 * 20, "T1": 1, "I1": 1, "I2": 64}
# Seconds a paired measurement should last; pause between the sides' turns
# (OpenMP and rayon workers spin a while after their last task).
MEASURE_S, SETTLE_S = 0.3, 0.2

# Serves one peer workload on stdin/stdout as `ebm-train bench --serve` does.
PEER_SERVER = """
import os, resource, runpy, sys, time
g = runpy.run_path(sys.argv[1], run_name='torch_ref')
g['torch'].set_num_threads(os.cpu_count())
fn = g['WORKLOADS'][sys.argv[2]][0](False)
fn()
print('ready', flush=True)
for line in sys.stdin:
    k = int(line)
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    print(time.perf_counter() - t0, flush=True)
print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""

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


class Server:
    """One side of a paired measurement: a process serving timed units."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self._expect("ready")

    def _line(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark server {self.proc.args[:3]} stopped")
        return line.strip()

    def _expect(self, word):
        while True:
            line = self._line()
            if line == word:
                return
            print(line, file=sys.stderr)

    def seconds(self, units):
        self.proc.stdin.write(f"{units}\n")
        self.proc.stdin.flush()
        return float(self._line())

    def close(self):
        """Ends the server; its peak RSS in kB."""
        self.proc.stdin.close()
        words = self._line().split()
        self.proc.wait()
        return int(words[1]) if len(words) == 2 and words[0] == "peak_rss_kb" else None


def paired(binary, py, peer, wid, pairs):
    """Both sides' per-unit seconds and the per-pair ratios for workload `wid`."""
    ours = Server([binary, "bench", "--serve", wid])
    theirs = Server([py, "-c", PEER_SERVER, peer, wid])
    sides = {"ours": ours, "peer": theirs}
    # Units per measurement, from one unit each.
    units = {k: max(1, round(MEASURE_S / max(s.seconds(1), 1e-6))) for k, s in sides.items()}
    per_unit = {"ours": [], "peer": []}
    for i in range(pairs):
        for k in (("ours", "peer") if i % 2 == 0 else ("peer", "ours")):
            time.sleep(SETTLE_S)
            per_unit[k].append(sides[k].seconds(units[k]) / units[k])
    rss = {k: s.close() for k, s in sides.items()}
    ratios = [p / o for o, p in zip(per_unit["ours"], per_unit["peer"])]
    out = {}
    for k in sides:
        med = statistics.median(per_unit[k])
        out[k] = {"median_s": med, FIGURE[wid]: PER_UNIT[wid] / med, "units_per_measurement": units[k],
                  "times_s": per_unit[k], "peak_rss_kb": rss[k]}
    return out, ratios


def ceilings(binary, py, peer):
    """Each side's matmul ceilings (one short run each, F1 alongside)."""
    return (run_ours(binary, "F1", 5, True).get("_ceiling"),
            run_peer(py, peer, "F1", 5, True).get("_ceiling"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="F1,F2,T1,I1,I2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=9, help="paired measurements per workload (>= 5)")
    ap.add_argument("--rounds", type=int, help="whole-run alternations instead of paired timing")
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
    if args.rounds is None:
        if args.pairs < 5:
            ap.error("--pairs must be at least 5")
        oc, pc = ceilings(binary, py, args.peer)
        for wid in ids:
            sides, ratios = paired(binary, py, args.peer, wid, args.pairs)
            results[wid] = {**sides, "ratios": ratios}
        how = (f"paired timing: {args.pairs} pairs per workload (order swapped every pair), "
               f"each measurement about {MEASURE_S} s of units after one warm-up unit; "
               "figures the medians per side, ratio the median of per-pair ratios")
    else:
        for i, wid in enumerate(ids):
            rounds = []
            for r in range(max(1, args.rounds)):
                first = i == 0 and r == 0  # matmul ceilings once per side
                rounds.append({"ours": run_ours(binary, wid, args.reps, first),
                               "peer": run_peer(py, args.peer, wid, args.reps, first)})
            key = FIGURE[wid]
            ours = [rd["ours"][wid][key] for rd in rounds]
            peer = [rd["peer"][wid][key] for rd in rounds]
            results[wid] = {
                "rounds": rounds,
                "ours": {key: statistics.median(ours),
                         "peak_rss_kb": max(rd["ours"][wid]["peak_rss_kb"] for rd in rounds)},
                "peer": {key: statistics.median(peer),
                         "peak_rss_kb": max(rd["peer"][wid]["peak_rss_kb"] for rd in rounds)},
                "ratios": [o / p for o, p in zip(ours, peer)],
            }
        oc = results[ids[0]]["rounds"][0]["ours"].get("_ceiling") if ids else None
        pc = results[ids[0]]["rounds"][0]["peer"].get("_ceiling") if ids else None
        how = (f"median of {args.reps} reps after one warm-up, per side and round; "
               f"{max(1, args.rounds)} alternating rounds, median over rounds")
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} cores; torch {torch_version}; {how}\n")
    print("| id | figure | igebm-rs | PyTorch | ratio | ratio range | peak RSS igebm-rs | peak RSS PyTorch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for wid in ids:
        key, r = FIGURE[wid], results[wid]
        o, p, ratios = r["ours"][key], r["peer"][key], r["ratios"]
        ratio = statistics.median(ratios) if args.rounds is None else o / p
        r["summary"] = {"ours": o, "peer": p, "ratio": ratio, "ratios": ratios}
        mib = lambda kb: f"{kb / 1024:.0f} MiB" if kb else "n/a"
        print(f"| {wid} | {key} | {o:,.1f} | {p:,.1f} | {ratio:.2f}x | "
              f"{min(ratios):.2f}-{max(ratios):.2f}x | {mib(r['ours']['peak_rss_kb'])} | "
              f"{mib(r['peer']['peak_rss_kb'])} |")
    if ids:
        results["_ceiling"] = {"ours": oc, "peer": pc}
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
