#!/usr/bin/env bash
# itune-gpu kit: checks, tunes and benchmarks the OpenCL device of this machine, writing every
# result into one folder. Needs nothing but glibc, libstdc++ and a vendor OpenCL driver: the
# kit carries the binaries (Swift runtime linked in), the kernels, the ICD loader and CLBlast.
#
#   ./run-checks.sh [OUTDIR]        (default: $OUT, else ./itune-results)
#
# Environment: TUNE_BUDGET (seconds, default 120), TUNE_MODEL (a model folder whose config.json
# gives the shapes to tune at; default SmolLM2-135M's shape, since the embedded demo's tiny shapes
# tune CLBlast for tiny products; "demo" for those), BENCH_DEVICE (default gpu: the OpenCL GPUs and accelerators,
# not a CPU OpenCL installed beside them; every OpenCL device where there is none), BENCH_ARGS
# (extra itune-bench options, default "--seconds 0.5"), DRIVER_DIRS (more folders to search for
# a driver), SKIP_PEERS=1,
# LIMIT_SCALE (multiplies every step's time limit; a CPU device compiling every kernel family
# cold on a busy machine needs 4 or more).
set -uo pipefail
KIT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUTDIR="${1:-${OUT:-$PWD/itune-results}}"
mkdir -p "$OUTDIR" || { echo "run-checks: cannot create $OUTDIR" >&2; exit 2; }
OUTDIR="$(cd "$OUTDIR" && pwd)"
TUNE_BUDGET="${TUNE_BUDGET:-120}"
TUNE_MODEL="${TUNE_MODEL:-$KIT/fixtures/smollm2-135m}"
BENCH_DEVICE="${BENCH_DEVICE:-gpu}"
BENCH_ARGS="${BENCH_ARGS:---seconds 0.5}"
LOG="$OUTDIR/run-checks.log"
: > "$LOG"
log() { echo "$*" | tee -a "$LOG"; }
START=$(date +%s)

export LD_LIBRARY_PATH="$KIT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ITUNE_OPENCL_LIBRARY="$KIT/lib/libOpenCL.so.1"
export ITUNE_CLBLAST_LIBRARY="$KIT/lib/libclblast.so.1"
export ITUNE_KERNELS_DIR="$KIT/bin/itune-gpu_ITuneKernels.resources"
# Compiled kernels and the tuning this run finds stay with the results.
export ITUNE_CACHE_DIR="$OUTDIR/kernel-cache"
BIN="$KIT/bin"
export ITUNE_BENCH_TOKENIZER="${ITUNE_BENCH_TOKENIZER:-$KIT/fixtures/llama3_style}"

log "itune-gpu kit: $(cat "$KIT/VERSION" 2>/dev/null || echo unknown version) on $(uname -srm), $(nproc 2>/dev/null || echo ?) cores"
log "results: $OUTDIR"

# --- 1. the OpenCL driver ------------------------------------------------------------------
# The ICD loader reads /etc/OpenCL/vendors/*.icd (or OCL_ICD_VENDORS). Containers often lack
# the .icd file although the driver library is there: look for it and point OCL_ICD_VENDORS at
# a folder of .icd files naming it.
DIRS="/usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib
      /opt/amdgpu/lib/x86_64-linux-gnu /opt/rocm/lib /opt/rocm/opencl/lib /opt/intel/opencl ${DRIVER_DIRS:-}"
found=()
for d in $DIRS; do
  [ -d "$d" ] || continue
  while IFS= read -r f; do found+=("$f"); done < <(find "$d" -maxdepth 2 \( -name 'libnvidia-opencl.so*' -o -name 'libamdocl64.so*' -o -name 'libigdrcl.so*' \) 2>/dev/null)
done
if command -v ldconfig >/dev/null 2>&1; then
  while IFS= read -r f; do found+=("$f"); done < <(ldconfig -p 2>/dev/null | grep -E 'libnvidia-opencl\.so|libamdocl64\.so|libigdrcl\.so' | sed 's/.*=> //')
fi
# One library per real file (symlinks and duplicates folded), the .so.1 name preferred.
drivers=()
declare -A seen=()
for f in "${found[@]}"; do
  real="$(readlink -f "$f" 2>/dev/null || echo "$f")"
  [ -n "${seen[$real]:-}" ] && continue
  seen[$real]=1
  drivers+=("$f")
done
icds=$(ls /etc/OpenCL/vendors/*.icd 2>/dev/null || true)
if [ -n "$icds" ]; then
  for i in $icds; do log "ICD file: $i → $(head -c 200 "$i")"; done
else
  log "ICD files: none in /etc/OpenCL/vendors"
fi
if [ ${#drivers[@]} -gt 0 ]; then
  for f in "${drivers[@]}"; do log "driver library: $f"; done
  nvvm=$(for d in $DIRS; do [ -d "$d" ] && find "$d" -maxdepth 2 -name 'libnvidia-nvvm.so*' 2>/dev/null; done | head -1)
  if printf '%s\n' "${drivers[@]}" | grep -q nvidia; then
    if [ -n "$nvvm" ]; then log "NVVM: $nvvm"; else log "NVVM: libnvidia-nvvm.so not found (recent NVIDIA drivers need it to build kernels)"; fi
  fi
fi
if [ -z "${OCL_ICD_VENDORS:-}" ] && [ ${#drivers[@]} -gt 0 ]; then
  listed=$(cat $icds 2>/dev/null || true)
  missing=()
  for f in "${drivers[@]}"; do
    base=$(basename "$f")
    echo "$listed" | grep -qF "${base%%.so*}" || missing+=("$f")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    mkdir -p "$OUTDIR/icd"
    for i in $icds; do cp "$i" "$OUTDIR/icd/"; done
    n=0
    for f in "${missing[@]}"; do
      n=$((n + 1)); echo "$f" > "$OUTDIR/icd/found-$n.icd"
      export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$f")"
    done
    export OCL_ICD_VENDORS="$OUTDIR/icd"
    log "no ICD file names ${missing[*]}: OCL_ICD_VENDORS=$OCL_ICD_VENDORS"
  fi
fi
[ -n "${OCL_ICD_VENDORS:-}" ] && log "OCL_ICD_VENDORS=$OCL_ICD_VENDORS"
if [ ${#drivers[@]} -eq 0 ] && [ -z "$icds" ] && [ -z "${OCL_ICD_VENDORS:-}" ]; then
  log "STOP: no OpenCL driver found: no ICD file in /etc/OpenCL/vendors and no libnvidia-opencl.so*, libamdocl64.so or libigdrcl.so under: $DIRS (nor in ldconfig -p). Install the GPU vendor's OpenCL driver, or set OCL_ICD_VENDORS / DRIVER_DIRS."
  exit 3
fi
[ ${#drivers[@]} -eq 0 ] && log "no GPU driver library found: using the ICD files present (a CPU OpenCL such as PoCL)"

# --- 2. the steps ----------------------------------------------------------------------------
status=0
step() {  # step NAME SECONDS OUTFILE COMMAND...
  local name=$1 limit=$(( $2 * ${LIMIT_SCALE:-1} )) out=$3; shift 3
  local t0=$(date +%s)
  log "== $name (limit ${limit}s): $*"
  # Line-buffered output, so that a step cut by its limit leaves what it printed.
  local buf=(); command -v stdbuf >/dev/null 2>&1 && buf=(stdbuf -oL)
  timeout --signal=INT --kill-after=10 "$limit" "${buf[@]}" "$@" > "$OUTDIR/$out" 2> "$OUTDIR/$out.stderr"
  local rc=$?
  log "   exit $rc after $(( $(date +%s) - t0 ))s → $out$( [ $rc -eq 124 ] && echo ' (timed out: partial)')"
  [ -s "$OUTDIR/$out.stderr" ] || rm -f "$OUTDIR/$out.stderr"
  [ $rc -ne 0 ] && status=1
  return $rc
}

step devices 60 devices.txt "$BIN/itune-gpu" devices
step "devices (json)" 60 devices.json "$BIN/itune-gpu" devices --json
cat "$OUTDIR/devices.txt" | tee -a "$LOG"
if ! grep -q 'opencl:' "$OUTDIR/devices.txt"; then
  log "STOP: the ICD loader lists no OpenCL device (see devices.txt); check the driver lines above"
  exit 4
fi
step "devices --check" 180 check.txt "$BIN/itune-gpu" devices --check
tail -12 "$OUTDIR/check.txt" | tee -a "$LOG"
tune_shapes=(--model "$TUNE_MODEL"); [ "$TUNE_MODEL" = demo ] && tune_shapes=()
step tune $((TUNE_BUDGET + 150)) tune.txt "$BIN/itune-gpu" tune --budget "$TUNE_BUDGET" "${tune_shapes[@]}"
cat "$OUTDIR/tune.txt" | tee -a "$LOG"
[ -f "$ITUNE_CACHE_DIR/tuning.json" ] && cp "$ITUNE_CACHE_DIR/tuning.json" "$OUTDIR/tuning.json"
step "devices (tuning in force)" 60 devices-tuned.txt "$BIN/itune-gpu" devices
# shellcheck disable=SC2086
step "itune-bench all" 240 itune-bench.jsonl "$BIN/itune-bench" all --device "$BENCH_DEVICE" --json $BENCH_ARGS
log "   $(wc -l < "$OUTDIR/itune-bench.jsonl") results"

if [ "${SKIP_PEERS:-0}" != 1 ] && command -v python3 >/dev/null 2>&1 && python3 -c 'import torch' >/dev/null 2>&1; then
  step "PyTorch peers" 150 peers.txt python3 "$KIT/scripts/bench_peers.py" --ours "$OUTDIR/itune-bench.jsonl" --out "$OUTDIR/peers" --seconds 0.5
  tail -30 "$OUTDIR/peers.txt" | tee -a "$LOG"
else
  log "== PyTorch peers: skipped (no python3 with torch, or SKIP_PEERS=1)"
fi
rm -rf "$ITUNE_CACHE_DIR"/*.bin 2>/dev/null
log "done in $(( $(date +%s) - START ))s, $( [ $status -eq 0 ] && echo 'every step passed' || echo 'some steps failed: see above' ); results in $OUTDIR"
exit $status
