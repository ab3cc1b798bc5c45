#!/usr/bin/env bash
# Checks the workspace's `rust-version` (Cargo.toml) without installing an
# older toolchain: clippy's `incompatible_msrv` lint refuses any standard
# library item in our code that is newer than it, and no dependency may
# declare a newer `rust-version` of its own. (A build with that exact
# toolchain is the stronger check; this machine has one toolchain only.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo clippy --release --workspace --all-targets -- -A clippy::all -D clippy::incompatible_msrv
cargo metadata --format-version 1 | python3 -c '
import json, sys
m = json.load(sys.stdin)
ours = {p["id"] for p in m["packages"] if p["id"] in m["workspace_members"]}
want = {p["rust_version"] for p in m["packages"] if p["id"] in ours}
assert len(want) == 1 and None not in want, f"workspace members disagree on rust-version: {want}"
msrv = tuple(int(x) for x in want.pop().split("."))
used = {n["id"] for n in m["resolve"]["nodes"]}
key = lambda v: tuple(int(x) for x in v.split("."))
newer = [(p["name"], p["rust_version"]) for p in m["packages"]
         if p["id"] in used and p.get("rust_version") and key(p["rust_version"])[:len(msrv)] > msrv]
if newer:
    sys.exit(f"dependencies need a newer Rust than rust-version {msrv}: {newer}")
print("rust-version", ".".join(map(str, msrv)), "holds for our code and every dependency")
'
