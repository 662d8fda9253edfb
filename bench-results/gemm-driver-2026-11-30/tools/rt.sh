#!/bin/bash
# runs "$@" under SCHED_FIFO 10 (all threads, re-applied every 0.2 s: libdispatch's workers are created later)
chrt -f 10 "$@" &
P=$!
while kill -0 $P 2>/dev/null; do
  for t in /proc/$P/task/*; do chrt -f -p 10 ${t##*/} >/dev/null 2>&1; done
  sleep 0.2
done
wait $P
