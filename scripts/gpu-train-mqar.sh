#!/bin/bash
# Issue 16: MQAR, the four presets at equal steps (2,000 of 64 x 256), 4 runs sharing the card, then the Zoology-slice eval; one archive in $OUT.
# run: BUDGET=480 bash scripts/gpu-machine.sh bash scripts/gpu-train-mqar.sh  (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz)
set -u
T0=$(date +%s); BUDGET=${BUDGET:-480}
tar xJf .exp/dist.tar.xz
mkdir -p logs runs
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > logs/card.txt
TL=$(( BUDGET - 90 ))
for a in mamba mamba2 llama hybrid; do
  node dist/src/cli/main.js train --preset mqar-$a --backend webgpu --steps 2000 --log-every 50 --out runs/mqar-$a --time-limit $TL > logs/mqar-$a.log 2>&1 &
done
wait
echo "train done at $(( $(date +%s) - T0 ))s"
for a in mamba mamba2 llama hybrid; do
  timeout 20 node dist/src/cli/main.js eval --model runs/mqar-$a --backend webgpu --json > logs/eval-mqar-$a.json 2> logs/eval-mqar-$a.err &
done
wait
rm -f runs/*/optimizer.safetensors
tar czf $OUT/mqar.tgz logs runs
ls -la $OUT
for a in mamba mamba2 llama hybrid; do echo "== $a"; grep -v "^\s*$" logs/mqar-$a.log | tail -4 | cut -c1-300; head -c 1500 logs/eval-mqar-$a.json; echo; done
echo "all done at $(( $(date +%s) - T0 ))s"
