#!/bin/bash
# usage: ab.sh OUTDIR ROUNDS SECONDS SHAPES BIN1 BIN2 ... (env PREFIX e.g. "taskset -c 0")
out=$1; rounds=$2; secs=$3; shapes=$4; shift 4
mkdir -p $out
for r in $(seq 1 $rounds); do
  for b in "$@"; do
    l=$(cut -d' ' -f1 /proc/loadavg)
    $PREFIX /tmp/itune-bench-$b matmul --shapes $shapes --seconds $secs --json 2>/dev/null | sed "s/^{/{\"bin\":\"$b\",\"round\":$r,\"load\":$l,/" >> $out/runs.jsonl
  done
done
