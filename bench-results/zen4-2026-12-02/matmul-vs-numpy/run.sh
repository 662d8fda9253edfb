cd /work/main
for r in 1 2 3; do
  if [ $((r % 2)) = 1 ]; then
    /tmp/bin-base/itune-bench matmul --device cpu --json --seconds 1 > /tmp/mm-alt/ours$r.jsonl 2>/dev/null
    python3 scripts/bench_numpy_matmul.py --seconds 1 > /tmp/mm-alt/numpy$r.jsonl 2>/dev/null
  else
    python3 scripts/bench_numpy_matmul.py --seconds 1 > /tmp/mm-alt/numpy$r.jsonl 2>/dev/null
    /tmp/bin-base/itune-bench matmul --device cpu --json --seconds 1 > /tmp/mm-alt/ours$r.jsonl 2>/dev/null
  fi
  python3 scripts/bench_numpy_matmul.py --compare /tmp/mm-alt/ours$r.jsonl /tmp/mm-alt/numpy$r.jsonl > /tmp/mm-alt/compare$r.txt 2>&1
done
echo done > /tmp/mm-alt/done
