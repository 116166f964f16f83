#!/bin/bash
# Issue 16, one device call: MQAR across width and state size (Zoology's axes) beside session 28's d_model-128 runs, and
# copying at equal steps for the four architectures; all runs share the card (2,000 steps of 64 sequences, --time-limit
# keeps a checkpoint when the budget ends first), then each run's eval. Logs, trainer states and evals come back in one
# small archive ($OUT/sweep.tgz), the weights (no optimizer moments) one archive per MQAR run and one for the copy runs.
# run: BUDGET=480 bash scripts/gpu-machine.sh bash scripts/gpu-train-sweep.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
PACK=sweep; source scripts/gpu-train-lib.sh  # (not as a prefix to source: bash restores such variables after it)
RUNS="mqar-mamba-d128-s64 mqar-mamba-d256-s16 mqar-mamba2-d128-s256 mqar-mamba2-d256-s64 mqar-hybrid-d256 copy-mamba copy-mamba2 copy-llama copy-hybrid"
MQ="mqar-mamba-d128-s64 mqar-mamba-d256-s16 mqar-mamba2-d128-s256 mqar-mamba2-d256-s64 mqar-hybrid-d256"
train mqar-mamba-d128-s64 --preset mqar-mamba --state 64 --steps 2000 &
train mqar-mamba-d256-s16 --preset mqar-mamba --hidden 256 --steps 2000 &
train mqar-mamba2-d128-s256 --preset mqar-mamba2 --state 256 --steps 2000 &
train mqar-mamba2-d256-s64 --preset mqar-mamba2 --hidden 256 --steps 2000 &
train mqar-hybrid-d256 --preset mqar-hybrid --hidden 256 --intermediate 688 --steps 2000 &
for a in mamba mamba2 llama hybrid; do train copy-$a --preset copy-$a --steps 2000 & done
wait
echo "train done at $(( $(date +%s) - T0 ))s"
evals $RUNS
keep $RUNS
# one archive per MQAR run (≤ 16 MiB each), the four small copy models together — 7 files of the 8 that come back
pack $MQ
tar czf $OUT/copy-runs.tgz runs/copy-*
summary $RUNS
