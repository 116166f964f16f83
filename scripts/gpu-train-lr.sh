#!/bin/bash
# Issue 16, MQAR's learning-rate axis for every architecture (Zoology sweeps the lr and reports each model's best):
# session 30 found Mamba-2 at lr 3e-3 solving the task where 1e-3 left it at 6%; here the Llama and the hybrid get the
# same chance, and Mamba-1 a higher and a lower lr. Fresh runs sharing the card, each --steps 2000 (the preset's cosine
# schedule), --time-limit BUDGET-90; logs/states/evals in $OUT/lr30.tgz, weights (no optimizer moments) one archive per run.
# run: BUDGET=400 bash scripts/gpu-machine.sh bash scripts/gpu-train-lr.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
TRAIN_MARGIN=90; PACK=lr30; source scripts/gpu-train-lib.sh  # (not as a prefix to source: bash restores such variables after it)
RUNS="mqar-llama-d128-lr3e3 mqar-llama-d128-lr3e4 mqar-llama-d256-lr3e4 mqar-hybrid-d128-lr3e3 mqar-mamba-d128-lr1e2"
train mqar-llama-d128-lr3e3 --preset mqar-llama --lr 3e-3 --steps 2000 &
train mqar-llama-d128-lr3e4 --preset mqar-llama --lr 3e-4 --steps 2000 &
train mqar-llama-d256-lr3e4 --preset mqar-llama --hidden 256 --intermediate 800 --lr 3e-4 --steps 2000 &
train mqar-hybrid-d128-lr3e3 --preset mqar-hybrid --lr 3e-3 --steps 2000 &
train mqar-mamba-d128-lr1e2 --preset mqar-mamba --lr 1e-2 --steps 2000 &
wait
echo "train done at $(( $(date +%s) - T0 ))s"
evals $RUNS
pack $RUNS
summary $RUNS
