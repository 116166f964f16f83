#!/bin/bash
# Issue 16, session 30's training call: (1) the LM sanity run at EQUAL tokens — the four 1.75M-parameter models,
# 1,000 steps of 32 × 512 bytes each (16.4M bytes) on the Jargon File, the held-out tail scored every 100 steps so the
# curves compare at equal bytes (session 25's runs stopped at different bytes and overfit); (2) MQAR's learning-rate
# axis for the pure SSMs (lr 3e-3 vs the presets' 1e-3: Mamba-2 d128 and d256, Mamba d128) and the Llama at d256 beside
# session 29's d256 hybrid. All share the card; logs/states/evals in $OUT/train30.tgz, MQAR weights one archive per run.
# run: BUDGET=480 bash scripts/gpu-machine.sh bash scripts/gpu-train-s30.sh
#      (carry .gl, .carry/node.xz, .carry/nm, .exp/dist.tar.xz, .exp/jargon.dict.dz — from `apt-get download dict-jargon`)
set -u
PACK=train30; source scripts/gpu-train-lib.sh  # (not as a prefix to source: bash restores such variables after it)
LM="lm-mamba lm-mamba2 lm-llama lm-hybrid"
MQ="mqar-mamba2-d128-lr3e3 mqar-mamba2-d256-lr3e3 mqar-mamba-d128-lr3e3 mqar-llama-d256"
for a in mamba mamba2 llama hybrid; do
  train lm-$a --preset lm-$a --data .exp/jargon.dict.dz --steps 1000 --eval-every 100 --save-every 250 &
done
train mqar-mamba2-d128-lr3e3 --preset mqar-mamba2 --lr 3e-3 --steps 2000 &
train mqar-mamba2-d256-lr3e3 --preset mqar-mamba2 --hidden 256 --lr 3e-3 --steps 2000 &
train mqar-mamba-d128-lr3e3 --preset mqar-mamba --lr 3e-3 --steps 2000 &
train mqar-llama-d256 --preset mqar-llama --hidden 256 --intermediate 800 --steps 2000 &
wait
echo "train done at $(( $(date +%s) - T0 ))s"
evals $MQ
keep $LM
pack $MQ
# the LM weights two to an archive (8 files come back: the pack, 4 MQAR runs, these two)
tar czf $OUT/lm-ssm.tgz runs/lm-mamba runs/lm-mamba2; tar czf $OUT/lm-attn.tgz runs/lm-llama runs/lm-hybrid
summary $LM $MQ
