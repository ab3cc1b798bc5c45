#!/usr/bin/env bash
# The trajectory experiment of docs/trajectories.md, fair and over seeds:
# for each environment and setting, `traj tune` chooses the context length
# and each model's context noise on a validation split carved from the
# training split; then three training seeds are trained with that choice and
# evaluated on the test split; `traj summary` writes the table and figure to
# docs/figures/<env>_<setting>/. Every step is skipped when its output exists,
# so an interrupted run resumes.
#
#   scripts/traj-experiment.sh                 # both environments
#   ENVS=traj scripts/traj-experiment.sh       # the rapier hand only
#   ENVS=shadow SETTINGS=cond scripts/traj-experiment.sh
#   ENVS=fetch scripts/traj-experiment.sh      # the MuJoCo Fetch arm
#
# Recordings: out/sim/hand.mcap (ebm-sim generate --trajectories 25000
# --seed 0) and out/hand_mj/hand-bincode.mcap (sim-data/mujoco/hand_record.py
# --trajectories 50000 --seed 0 --workers 2 --out out/hand_mj/hand.mcap, then
# ebm-sim convert out/hand_mj/hand.mcap out/hand_mj/hand-bincode.mcap, which
# loads about 5x faster); out/fetch/fetch.mcap (sim-data/mujoco/fetch_record.py
# --trajectories 6000 --seed 0 --out out/fetch/fetch.mcap); see docs/trajectories.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVS=${ENVS:-"traj shadow"}
SETTINGS=${SETTINGS:-"uncond cond"}
SEEDS=${SEEDS:-"0 1 2"}
cargo build --release -q -p ebm-train
T=./target/release/ebm-train

title() {
  local env=$1 setting=$2 what
  case $env in
    traj) what="Rapier hand-cube" ;;
    shadow) what="Shadow hand with a block (MuJoCo)" ;;
    fetch) what="Fetch arm (MuJoCo)" ;;
    *) what=$env ;;
  esac
  case $setting in
    uncond) echo "$what, unconditional: average FD over 50 steps" ;;
    cond) echo "$what, action-conditional: average FD over 50 steps" ;;
  esac
}

for env in $ENVS; do
  for setting in $SETTINGS; do
    cfg=configs/${env}_${setting}.toml
    tune=out/${env}_${setting}_tune
    paper=$([ "$setting" = uncond ] && echo 0.18 || echo 0.45)
    [ -f "$tune/tune.json" ] || $T traj tune --config "$cfg" --run "$tune"
    reports=()
    for seed in $SEEDS; do
      run=out/${env}_${setting}_s$seed
      if [ ! -f "$run/eval/report.json" ]; then
        $T traj train --config "$cfg" --run "$run" --seed "$seed" --tuned "$tune/tune.json"
        $T traj eval --config "$cfg" --run "$run" --seed "$seed" --tuned "$tune/tune.json" --out "$run/eval"
      fi
      reports+=("$run/eval/report.json")
    done
    $T traj summary --reports "$(IFS=,; echo "${reports[*]}")" \
      --title "$(title "$env" "$setting")" --paper-ratio "$paper" --out "docs/figures/${env}_${setting}"
    fig=docs/figures/${env}_${setting}
    cp "$tune/tune.md" "$fig/tune.md"
    # Seed 0's evaluation: per-step table and rollouts of one test trajectory (Figure 12).
    mkdir -p "$fig/seed0"
    cp out/${env}_${setting}_s0/eval/{report.md,fd.svg,rollouts.svg} "$fig/seed0/"
  done
done
