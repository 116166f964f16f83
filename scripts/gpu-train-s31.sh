#!/bin/bash
# Issue 16, session 31: the open MQAR rows of EXPERIMENTS.md's "Where issue 16 stands" table.
# - the Llama to convergence: d128 lr 1e-3 with a 4,000-step schedule (session 30's stopped at 1,769 of 2,000, 48.4%);
#   one call does not finish it: the next call resumes it (scripts/gpu-train-s31b.sh, on the same warm machine);
# - Mamba-2 at lr 3e-3 with N = 16 (Mamba-1's state size: state size or architecture?);
# - the hybrid between the lr it learns at (1e-3: 74.4%) and the one it fails at (3e-3): 2e-3;
# - a second seed of Mamba-2 d128 at lr 3e-3 (session 30: 97.0%, one seed).
# run: BUDGET=460 bash scripts/gpu-machine.sh bash scripts/gpu-train-s31.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
TRAIN_MARGIN=90; PACK=train31; source scripts/gpu-train-lib.sh  # (not as a prefix to source: bash restores such variables after it)
RUNS="mqar-mamba2-d128-n16-lr3e3 mqar-hybrid-d128-lr2e3 mqar-mamba2-d128-lr3e3-seed2"
train mqar-llama-d128-lr1e3-4k --preset mqar-llama --lr 1e-3 --steps 4000 &
train mqar-mamba2-d128-n16-lr3e3 --preset mqar-mamba2 --state 16 --lr 3e-3 --steps 2000 &
train mqar-hybrid-d128-lr2e3 --preset mqar-hybrid --lr 2e-3 --steps 2000 &
train mqar-mamba2-d128-lr3e3-seed2 --preset mqar-mamba2 --lr 3e-3 --seed 2 --steps 2000 &
wait
echo "train done at $(( $(date +%s) - T0 ))s"
evals $RUNS
keep mqar-llama-d128-lr1e3-4k
pack $RUNS
summary $RUNS mqar-llama-d128-lr1e3-4k
