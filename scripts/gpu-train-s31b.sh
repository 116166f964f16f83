#!/bin/bash
# Issue 16, session 31, second call on the same warm machine: resume what gpu-train-s31.sh left unfinished (the Llama's
# 4,000-step schedule; any 2,000-step run stopped by the time limit), then evaluate and pack all of them.
# run: SKIP_DIST=1 BUDGET=460 bash scripts/gpu-machine.sh bash scripts/gpu-train-s31b.sh
set -u
TRAIN_MARGIN=90; PACK=train31b; source scripts/gpu-train-lib.sh  # (not as a prefix to source: bash restores such variables after it)
RUNS="mqar-llama-d128-lr1e3-4k mqar-mamba2-d128-n16-lr3e3 mqar-hybrid-d128-lr2e3 mqar-mamba2-d128-lr3e3-seed2"
# --resume needs the run's own flags again (the checkpoint is checked against the model they build)
declare -A ARGS=([mqar-llama-d128-lr1e3-4k]="--preset mqar-llama --lr 1e-3 --steps 4000"
  [mqar-mamba2-d128-n16-lr3e3]="--preset mqar-mamba2 --state 16 --lr 3e-3 --steps 2000"
  [mqar-hybrid-d128-lr2e3]="--preset mqar-hybrid --lr 2e-3 --steps 2000"
  [mqar-mamba2-d128-lr3e3-seed2]="--preset mqar-mamba2 --lr 3e-3 --seed 2 --steps 2000")
for n in $RUNS; do [ -d runs/$n ] && { node dist/src/cli/main.js train ${ARGS[$n]} --resume --out runs/$n --backend webgpu --log-every 50 --time-limit $TL > logs/$n-b.log 2>&1 & }; done
wait
echo "train done at $(( $(date +%s) - T0 ))s"
evals $RUNS
pack $RUNS
for n in $RUNS; do echo "== $n (resumed)"; grep -v "^\s*$" logs/$n-b.log | tail -2 | cut -c1-300; done
summary $RUNS
