#!/bin/bash
# Issue 16, MQAR's learning-rate axis for every architecture (Zoology sweeps the lr and reports each model's best):
# session 30 found Mamba-2 at lr 3e-3 solving the task where 1e-3 left it at 6%; here the Llama and the hybrid get the
# same chance, and Mamba-1 a higher and a lower lr. Fresh runs sharing the card, each --steps 2000 (the preset's cosine
# schedule), --time-limit BUDGET-100; logs/states/evals in $OUT/lr30.tgz, weights (no optimizer moments) one archive per run.
# run: BUDGET=400 bash scripts/gpu-machine.sh bash scripts/gpu-train-lr.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
T0=$(date +%s); BUDGET=${BUDGET:-400}
[ "${SKIP_DIST:-0}" = 1 ] || tar xJf .exp/dist.tar.xz
mkdir -p logs runs
TL=$(( BUDGET - 90 ))
train() { local n=$1; shift
  node dist/src/cli/main.js train "$@" --backend webgpu --steps 2000 --log-every 50 --out runs/$n --time-limit $TL > logs/$n.log 2>&1; }
RUNS="mqar-llama-d128-lr3e3 mqar-llama-d128-lr3e4 mqar-llama-d256-lr3e4 mqar-hybrid-d128-lr3e3 mqar-mamba-d128-lr1e2"
train mqar-llama-d128-lr3e3 --preset mqar-llama --lr 3e-3 &
train mqar-llama-d128-lr3e4 --preset mqar-llama --lr 3e-4 &
train mqar-llama-d256-lr3e4 --preset mqar-llama --hidden 256 --intermediate 800 --lr 3e-4 &
train mqar-hybrid-d128-lr3e3 --preset mqar-hybrid --lr 3e-3 &
train mqar-mamba-d128-lr1e2 --preset mqar-mamba --lr 1e-2 &
wait
echo "train done at $(( $(date +%s) - T0 ))s"
for n in $RUNS; do timeout 40 node dist/src/cli/main.js eval --model runs/$n --backend webgpu --json > logs/eval-$n.json 2> logs/eval-$n.err & done
wait
mkdir -p states; for n in $RUNS; do cp runs/$n/trainer_state.json states/$n.json 2>/dev/null; cp runs/$n/curves.svg states/$n.svg 2>/dev/null; done
tar czf $OUT/lr30.tgz logs states
rm -f runs/*/optimizer.safetensors
for n in $RUNS; do tar czf $OUT/$n.tgz runs/$n; done
for n in $RUNS; do echo "== $n"; grep -E "^step" logs/$n.log | tail -1 | cut -c1-250; grep -E "^steps:|tokens/s" logs/$n.log | tail -2; done
echo "all done at $(( $(date +%s) - T0 ))s"
