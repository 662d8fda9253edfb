#!/usr/bin/env bash
# One device call: unpack the kit, say what the machine has, run the kit's checks (devices,
# --check, tune, itune-bench all at smollm2-135m and qwen2.5-0.5b, PyTorch peers on CUDA), then a
# profiled step; everything lands in $OUT/r.tgz.
set -u
T0=$(date +%s)
R=/tmp/r; mkdir -p $R /tmp/k
tar -C /tmp/k -xJf .kit/itune-gpu-linux-x86_64.tar.xz || exit 9
K=/tmp/k/itune-gpu-linux-x86_64
{ date -u; nvidia-smi; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  lscpu | head -20; ls -la /usr/local/nvidia/lib64 2>/dev/null | grep -i -E 'opencl|nvvm|cuda\.so'; ls /etc/OpenCL/vendors 2>&1
  python3 -c 'import torch,transformers,peft;print(torch.__version__,transformers.__version__,peft.__version__,torch.cuda.get_device_name())'
} > $R/machine.txt 2>&1
cat $R/machine.txt | head -60
export TUNE_BUDGET=${TUNE_BUDGET:-45} LIMIT_SCALE=1 PYTHONUNBUFFERED=1
export BENCH_ARGS="--seconds 0.3 --configs smollm2-135m,qwen2.5-0.5b"
# At the deadline every process under the kit's folder is stopped (a signal to the bash script
# alone waits for the step in flight, and each step's timeout has its own process group).
$K/run-checks.sh $R & pid=$!
( sleep ${MAIN_LIMIT:-420}; echo "deadline: stopping run-checks"; pkill -INT -f /tmp/k/; sleep 10; pkill -KILL -f /tmp/k/ ) 2>/dev/null & w=$!
wait $pid; rc=$?; kill $w 2>/dev/null
echo "run-checks exit $rc at $(( $(date +%s) - T0 ))s"
# Where a step's time goes on the GPU (the per-op profile).
left=$(( ${TOTAL:-500} - ($(date +%s) - T0) ))
if [ $left -gt 40 ]; then
  export LD_LIBRARY_PATH=$K/lib:${LD_LIBRARY_PATH:-} ITUNE_OPENCL_LIBRARY=$K/lib/libOpenCL.so.1 ITUNE_CLBLAST_LIBRARY=$K/lib/libclblast.so.1
  export ITUNE_KERNELS_DIR=$K/bin/itune-gpu_ITuneKernels.resources ITUNE_CACHE_DIR=$R/kernel-cache
  [ -d $R/icd ] && export OCL_ICD_VENDORS=$R/icd
  timeout -k 5 -s INT $((left - 15)) $K/bin/itune-bench step --device opencl --configs qwen2.5-0.5b,smollm2-135m --modes lora,full --seconds 0.3 --profile > $R/step-profile.txt 2>&1
  echo "profile exit $?"
fi
rm -f $R/kernel-cache/*.bin
tar -C /tmp -czf $OUT/r.tgz r
cp $R/run-checks.log $OUT/ 2>/dev/null
echo "total $(( $(date +%s) - T0 ))s"
