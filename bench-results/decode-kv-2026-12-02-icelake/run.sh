#!/bin/bash
# Alternated: the build before (base = 9fde4e2) and after (kv = a60e3f8), generate at a 512-token prompt.
for rows in 4 1; do
for i in 1 2 3; do
  for b in base kv; do
    /tmp/ib-$b generate --rows $rows --prompt-tokens 512 --seconds 1 --json 2>/dev/null | head -1 | python3 -c "
import json,sys
d=json.loads(sys.stdin.readline()); print('$b rows $rows pair $i: total %.2f tok/s, decode %.2f tok/s, prefill %.0f ms' % (d['rate'], d['decode_tokens_per_s'], d['prefill_ms']))"
  done
done
done
