#!/usr/bin/env bash
# Softmax forward+backward at T 128 and 256, ours then torch's, three rounds, from the
# repository root: bash bench-results/zen4-2026-12-02/softmax-alternated.sh BIN
# (BIN: the folder holding a release itune-bench). GB/s = 20·rows·T bytes / time, as itune-bench's.
set -euo pipefail
BIN=${1:?the folder holding itune-bench}
for i in 1 2 3; do
  "$BIN/itune-bench" softmax --device cpu --lengths 128,256 2>&1 | grep forward+backward | sed 's/  */ /g'
  python3 -c "
import sys; sys.path.insert(0, 'scripts'); import bench_peers as b
for T in (128, 256):
    rows = 36 * T; t = b.peer_softmax(rows, T, True, 'cpu', 1.0)
    print('torch T', T, round(20 * rows * T / t / 1e9, 1), 'GB/s', round(t * 1e3, 3), 'ms')
"
done
