#!/usr/bin/env bash
# The issue-4 experiments (EXPERIMENTS.md), all at once, each on its own data-parallel worker threads.
#
#   scripts/experiments.sh OUT_DIR TIME_LIMIT_SECONDS [resume]
#
# Every run stops at the time limit with a checkpoint; calling again with `resume` continues each run
# exactly where it stopped (same batches, same schedule). Needs `npm run build` first and, for the
# Fashion-MNIST runs, Debian's dataset-fashion-mnist (or MAMBA_TS_FMNIST_DIR). NODE overrides the binary.
set -uo pipefail
OUT=${1:?usage: scripts/experiments.sh OUT_DIR TIME_LIMIT_SECONDS [resume]}
LIMIT=${2:?time limit in seconds}
RESUME=${3:-}
NODE=${NODE:-node}
CLI="$(dirname "$0")/../dist/src/cli/main.js"
mkdir -p "$OUT"
run() {
  local preset=$1 threads=$2
  shift 2
  local flags=()
  [ "$RESUME" = resume ] && [ -f "$OUT/$preset/trainer_state.json" ] && flags+=(--resume)
  "$NODE" "$CLI" train --preset "$preset" --out "$OUT/$preset" --threads "$threads" --time-limit "$LIMIT" --json "${flags[@]}" "$@" \
    >>"$OUT/$preset.out" 2>>"$OUT/$preset.log" &
}
T=${THREADS_PER_RUN:-16}
run selective-copying "$T"
run selective-copying-s4d "$T"
run induction-heads "$T"
run fmnist-legs $((T / 2))
run fmnist-random $((T / 2))
wait
tail -n 3 "$OUT"/*.out
