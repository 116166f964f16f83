#!/bin/bash
# Issue 16, one device call: MQAR across width and state size (Zoology's axes) beside session 28's d_model-128 runs, and
# copying at equal steps for the four architectures; all runs share the card (2,000 steps of 64 sequences, --time-limit
# keeps a checkpoint when the budget ends first), then each run's eval. Logs, trainer states and evals come back in one
# small archive ($OUT/sweep.tgz), the weights (no optimizer moments) one archive per MQAR run and one for the copy runs.
# run: BUDGET=480 bash scripts/gpu-machine.sh bash scripts/gpu-train-sweep.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
T0=$(date +%s); BUDGET=${BUDGET:-480}
[ "${SKIP_DIST:-0}" = 1 ] || tar xJf .exp/dist.tar.xz
mkdir -p logs runs
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > logs/card.txt
TL=$(( BUDGET - 100 ))
train() { # name args...
  local n=$1; shift
  node dist/src/cli/main.js train "$@" --backend webgpu --steps 2000 --log-every 50 --out runs/$n --time-limit $TL > logs/$n.log 2>&1
}
RUNS="mqar-mamba-d128-s64 mqar-mamba-d256-s16 mqar-mamba2-d128-s256 mqar-mamba2-d256-s64 mqar-hybrid-d256 copy-mamba copy-mamba2 copy-llama copy-hybrid"
train mqar-mamba-d128-s64 --preset mqar-mamba --state 64 &
train mqar-mamba-d256-s16 --preset mqar-mamba --hidden 256 &
train mqar-mamba2-d128-s256 --preset mqar-mamba2 --state 256 &
train mqar-mamba2-d256-s64 --preset mqar-mamba2 --hidden 256 &
train mqar-hybrid-d256 --preset mqar-hybrid --hidden 256 --intermediate 688 &
for a in mamba mamba2 llama hybrid; do train copy-$a --preset copy-$a & done
wait
echo "train done at $(( $(date +%s) - T0 ))s"
for n in $RUNS; do
  timeout 40 node dist/src/cli/main.js eval --model runs/$n --backend webgpu --json > logs/eval-$n.json 2> logs/eval-$n.err &
done
wait
mkdir -p states; for n in $RUNS; do cp runs/$n/trainer_state.json states/$n.json 2>/dev/null; cp runs/$n/curves.svg states/$n.svg 2>/dev/null; done
tar czf $OUT/sweep.tgz logs states
# the weights too, without the optimizer moments (--resume restarts them): one archive per MQAR run (≤ 16 MiB each),
# the four small copy models together — 7 files of the 8 that come back
rm -f runs/*/optimizer.safetensors
for n in $RUNS; do case $n in mqar-*) tar czf $OUT/$n.tgz runs/$n;; esac; done
tar czf $OUT/copy-runs.tgz runs/copy-*
ls -la $OUT
for n in $RUNS; do echo "== $n"; grep -v "^\s*$" logs/$n.log | tail -3 | cut -c1-300; head -c 1200 logs/eval-$n.json; echo; done
echo "all done at $(( $(date +%s) - T0 ))s"
