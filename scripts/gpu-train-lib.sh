# Sourced by the device training scripts (scripts/gpu-train-*.sh): unpacks the build unless SKIP_DIST=1, records the
# card, and defines
#   train NAME ARGS...   `mamba-ts train ARGS --backend webgpu --log-every 50 --out runs/NAME --time-limit $TL`, log in logs/NAME.log
#   evals NAMES...       `mamba-ts eval --json $EVAL_ARGS` of each run on the card, in parallel, EVAL_S seconds at most
#                        (default 40; logs/eval-NAME.json)
#   keep NAMES...        copy runs' trainer states and curves into states/ (for runs that pack does not take)
#   pack NAMES...        trainer states and curves with the logs into $OUT/$PACK.tgz; the weights without the
#                        optimizer moments one archive per run ($OUT/NAME.tgz; --resume from it restarts the moments)
# TL (each run's --time-limit) is BUDGET − TRAIN_MARGIN (default 100 s: the evals and the packing after it).
T0=$(date +%s); BUDGET=${BUDGET:-480}; PACK=${PACK:-train}  # (set PACK before sourcing, not as a prefix: a prefix is undone when source returns)
[ "${SKIP_DIST:-0}" = 1 ] || tar xJf .exp/dist.tar.xz
mkdir -p logs runs states
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > logs/card.txt
TL=$(( BUDGET - ${TRAIN_MARGIN:-100} ))
train() { local n=$1; shift
  node dist/src/cli/main.js train "$@" --backend webgpu --log-every 50 --out runs/$n --time-limit $TL > logs/$n.log 2>&1; }
evals() { local n
  for n in "$@"; do timeout ${EVAL_S:-40} node dist/src/cli/main.js eval --model runs/$n --backend webgpu ${EVAL_ARGS:-} --json > logs/eval-$n.json 2> logs/eval-$n.err & done
  wait; }
keep() { local n # trainer states and curves of runs whose weights are packed otherwise
  for n in "$@"; do cp runs/$n/trainer_state.json states/$n.json 2>/dev/null; cp runs/$n/curves.svg states/$n.svg 2>/dev/null; done; }
pack() { local n
  keep "$@"
  tar czf $OUT/$PACK.tgz logs states
  # the moments stay on the machine (a later call on the same warm machine resumes exactly); only the archive omits them
  for n in "$@"; do tar czf $OUT/$n.tgz --exclude=optimizer.safetensors runs/$n; done; }
# the end of each run's log and its eval, for the reply
summary() { local n
  for n in "$@"; do echo "== $n"; grep -v "^\s*$" logs/$n.log | tail -3 | cut -c1-300; [ -f logs/eval-$n.json ] && head -c 1000 logs/eval-$n.json; echo; done
  echo "all done at $(( $(date +%s) - T0 ))s"; }
