# Sourced by the device scripts (scripts/gpu-*.sh): unpacks the build unless SKIP_DIST=1 (a warm machine has it),
# requires WebGPU, and defines `step SECONDS CMD...`: runs CMD under a limit cut to what is left of $BUDGET seconds,
# its output appended to $LOG, skipped when under 15 s are left.
T0=$(date +%s); BUDGET=${BUDGET:-430}
LOG=${LOG:-${OUT:-/tmp}/all.log}
[ "${SKIP_DIST:-0}" = 1 ] || tar xJf .exp/dist.tar.xz
export MAMBA_TS_REQUIRE_WEBGPU=1
step() { # step SECONDS CMD...
  local t=$1; shift; local el=$(( $(date +%s) - T0 )); local l=$(( BUDGET - el ))
  if [ $l -lt 15 ]; then echo "=== SKIP (budget) $*" | tee -a $LOG; return; fi
  [ $t -gt $l ] && t=$l
  echo "=== [t=${el}s] $* (limit ${t}s)" | tee -a $LOG
  timeout $t "$@" >> $LOG 2>&1; local rc=$?
  echo "=== rc=$rc after $(( $(date +%s) - T0 - el ))s" | tee -a $LOG
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader >> $LOG
