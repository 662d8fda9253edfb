#!/usr/bin/env bash
# Second call: the CUDA peers of the GPU rows of the first call (steps, softmax, attention), and
# one step's per-kernel profile. Results in $OUT.
set -u
T0=$(date +%s)
mkdir -p /tmp/k && tar -C /tmp/k -xJf .kit/itune-gpu-linux-x86_64.tar.xz || exit 9
K=/tmp/k/itune-gpu-linux-x86_64
export PYTHONUNBUFFERED=1
timeout -k 5 -s INT ${PEER_LIMIT:-110} python3 $K/scripts/bench_peers.py --ours .kit/gpu-rows.jsonl --out $OUT/peers --seconds 0.4 > $OUT/peers.txt 2>&1
echo "peers exit $? at $(( $(date +%s) - T0 ))s"
export LD_LIBRARY_PATH=$K/lib:${LD_LIBRARY_PATH:-} ITUNE_OPENCL_LIBRARY=$K/lib/libOpenCL.so.1 ITUNE_CLBLAST_LIBRARY=$K/lib/libclblast.so.1
export ITUNE_KERNELS_DIR=$K/bin/itune-gpu_ITuneKernels.resources ITUNE_CACHE_DIR=/tmp/cache
mkdir -p /tmp/cache /tmp/icd && cp .kit/tuning.json /tmp/cache/ && echo /usr/local/nvidia/lib64/libnvidia-opencl.so.1 > /tmp/icd/nv.icd
export OCL_ICD_VENDORS=/tmp/icd LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/nvidia/lib64
timeout -k 5 -s INT ${PROFILE_LIMIT:-60} stdbuf -oL $K/bin/itune-bench step --device opencl:0:0 --configs qwen2.5-0.5b --modes lora --seconds 0.2 --profile > $OUT/step-profile.txt 2>&1
echo "profile exit $? at $(( $(date +%s) - T0 ))s"
tail -40 $OUT/step-profile.txt
