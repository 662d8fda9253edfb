# itune-gpu — the README's commands. `make demo` and `make test` install what is missing.
SHELL := /bin/bash
export PATH := $(if $(wildcard /opt/swift/usr/bin),/opt/swift/usr/bin:,)$(PATH)

SWIFT ?= swift
# Debian packages: the OpenCL ICD loader and headers, CLBlast, and PoCL (a CPU OpenCL device,
# so that the OpenCL path is tested everywhere), and Open MPI (the data-parallel tests launch
# `mpirun -np 2`; the binaries load libmpi only under an MPI launcher), and xz-utils (the GPU kit
# is a .tar.xz).
DEB_PACKAGES := ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers libclblast-dev libclblast1 pocl-opencl-icd clinfo \
                openmpi-bin libopenmpi-dev xz-utils

# CPU-specific code generation for release builds lives here, not in Package.swift (unsafe
# flags there would stop other packages from depending on ITune). `make CPU_FLAGS=` builds a
# binary for any machine of the architecture.
# On x86-64: -target-cpu native (Swift's -target-cpu takes LLVM CPU names such as haswell,
# znver4 or native; it rejects x86-64-v3), plus a define that tells the pure-Swift GEMM which
# SIMD width and FMA it may count on (Swift cannot test CPU features in #if):
# ITUNE_AVX512 for 16-wide vectors in 32 registers, ITUNE_FMA for 8-wide FMA (AVX2). Without
# them an x86-64 build uses 4-wide SSE code that runs anywhere. arm64 needs no flags.
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
HOST_CPU_FEATURES := $(shell (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null; sysctl -n machdep.cpu.features machdep.cpu.leaf7_features 2>/dev/null) | tr 'A-Z' 'a-z')
ifneq ($(filter avx512f,$(HOST_CPU_FEATURES)),)
SIMD_DEFINES := -Xswiftc -DITUNE_AVX512
else ifneq ($(filter fma,$(HOST_CPU_FEATURES)),)
SIMD_DEFINES := -Xswiftc -DITUNE_FMA
endif
CPU_FLAGS ?= -Xswiftc -target-cpu -Xswiftc native $(SIMD_DEFINES)
else
CPU_FLAGS ?=
endif
RELEASE := -c release $(CPU_FLAGS)
BIN = $(shell $(SWIFT) build $(RELEASE) --show-bin-path 2>/dev/null)

.PHONY: setup build test demo demo-dpo jglue-example bench bench-steps clean gpu-kit gpu-kit-check arm64-c-check

setup:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6 is needed: https://swift.org/install"; exit 1; }

build: setup
	$(SWIFT) build $(RELEASE)

# The OpenCL cases must run, not skip: ITUNE_REQUIRE_OPENCL=1 turns a missing device into a
# failure. The last line is a plain "N passed, N failed" summary, counted in tests (XCTest's own
# summary counts failed assertions).
test: setup
	@set -o pipefail; ITUNE_REQUIRE_OPENCL=1 $(SWIFT) test --disable-swift-testing 2>&1 | tee .test-output.log; \
	status=$$?; \
	summary=$$(grep -E "^[[:space:]]*Executed [0-9]+ tests?" .test-output.log | tail -1); \
	total=$$(echo "$$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/'); \
	failed=$$(grep -E "^Test Case '.*' failed \(" .test-output.log | sort -u | wc -l); \
	skipped=$$(echo "$$summary" | sed -nE 's/.*with ([0-9]+) tests? skipped.*/\1/p'); \
	skipped=$${skipped:-0}; \
	grep -h "\[itune-tests\]" .test-output.log | sort -u; \
	echo "$$((total - failed - skipped)) passed, $$failed failed, $$skipped skipped"; \
	rm -f .test-output.log; exit $$status

demo: build
	$(BIN)/itune-gpu train

# The README's JGLUE example: zero-shot JCommonsenseQA and JNLI accuracy of a small model from
# scratch before and after tuning on a Japanese mixture (a few minutes on 2 CPUs; JGLUE from
# ../shared/data/jglue, or JGLUE=DIR).
jglue-example: build
	BIN=$(BIN) bash scripts/worked_example_jglue.sh itune-jglue-example

# The embedded demonstration followed by a DPO stage on preference pairs of its tasks
# (README: "Preference tuning").
demo-dpo: build
	$(BIN)/itune-gpu train --demo-dpo --output itune-demo-dpo

# Every benchmark on the CPU path and every OpenCL device, then the peers on the same shapes
# (numpy, PyTorch eager + PEFT, HF tokenizers) and the side-by-side table: bench-results/bench.md,
# also written into README.md. Each training-step case runs in its own process so that its
# peak memory is its own.
BENCH_OUT := bench-results
bench: build
	@mkdir -p $(BENCH_OUT)
	@set -e; out=$(BENCH_OUT)/itune-bench.jsonl; : > $$out; \
	for b in matmul softmax attention tokenize load; do $(BIN)/itune-bench $$b --device all --json | tee -a $$out; done; \
	for d in cpu opencl; do for c in tiny smollm2-135m; do for m in full lora; do \
	  $(BIN)/itune-bench step --device $$d --configs $$c --modes $$m --json | tee -a $$out; done; done; done
	python3 scripts/bench_peers.py --ours $(BENCH_OUT)/itune-bench.jsonl --out $(BENCH_OUT) --update-readme

# The CPU training steps against PyTorch(+PEFT), alternated pair by pair (a noisy VM moves single
# runs by ±30%): each pair's ratio, their median and range. STEP_CASES and PAIRS choose the runs.
STEP_CASES ?= smollm2-135m:lora,smollm2-135m:full,qwen2.5-0.5b:lora,qwen2.5-0.5b:full
PAIRS ?= 3
bench-steps: build
	python3 scripts/alternate_steps.py --bin $(BIN) --cases $(STEP_CASES) --pairs $(PAIRS) --out $(BENCH_OUT)/alternated

# The GPU kit (../shared/GPU.md, README "On your GPU"): one release binary with the Swift
# runtime and Foundation linked in (itune-bench is a link to itune-gpu), generic x86-64 code
# (no CPU_FLAGS: it travels to other machines), the kernels, libOpenCL.so.1 and libclblast.so.1
# from this machine's Debian packages, and run-checks.sh; built in its own scratch folder so
# that it does not replace `make build`'s.
KIT_BUILD = $(SWIFT) build -c release --static-swift-stdlib --scratch-path .build/kit
gpu-kit: setup
	$(KIT_BUILD) --product itune-gpu
	scripts/kit/make-gpu-kit.sh "$$($(KIT_BUILD) --show-bin-path)" dist

# The kit unpacked in an empty folder and run end to end against this machine's OpenCL (PoCL
# in CI) with a tiny tuning budget at the demo's shapes and the smoke benchmarks; the results land in
# dist/kit-check-results.
gpu-kit-check: gpu-kit
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	tar -C "$$tmp" -xJf dist/itune-gpu-linux-x86_64.tar.xz; \
	rm -rf dist/kit-check-results; \
	cd "$$tmp" && env -i PATH=/usr/bin:/bin HOME="$$tmp" TUNE_BUDGET=10 TUNE_MODEL=demo BENCH_ARGS=--smoke SKIP_PEERS=1 LIMIT_SCALE=4 \
	  ./itune-gpu-linux-x86_64/run-checks.sh "$(CURDIR)/dist/kit-check-results"

# The C targets (CGemmKernels, COpenCL, CMPI) compiled for arm64 Linux with the toolchain's
# clang against Debian's cross glibc headers (libc6-dev-arm64-cross): the x86 kernels must stay
# behind their guards and the arm64 feature and cache probes must build. The NEON GEMM kernel
# (neon.c) and AdamW's baseline update (optim.c) are then linked with scripts/check_neon_kernel.c
# (the cross gcc links it static) and run under qemu-aarch64 against a double reference and a
# scalar loop. The Swift targets need an arm64 Swift SDK,
# which this check does not have: it proves the C side only.
ARM64_SYSROOT := /usr/aarch64-linux-gnu
ARM64_PACKAGES := libc6-dev-arm64-cross gcc-aarch64-linux-gnu qemu-user
ARM64_CC = clang --target=aarch64-linux-gnu --sysroot=$(ARM64_SYSROOT) -isystem $(ARM64_SYSROOT)/include -idirafter /usr/include \
	-O2 -Wall -Werror -ISources/CGemmKernels/include -ISources/COpenCL/include -ISources/CMPI/include
arm64-c-check: setup
	@missing=""; for p in $(ARM64_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for f in Sources/CGemmKernels/*.c Sources/COpenCL/*.c Sources/CMPI/*.c; do \
	  $(ARM64_CC) -c $$f -o "$$tmp/$$(basename $$f .c).o"; \
	done; \
	echo "arm64: the C targets compile ($$(ls "$$tmp" | wc -l) objects)"; \
	$(ARM64_CC) -c scripts/check_neon_kernel.c -o "$$tmp/check_neon_kernel.o"; \
	aarch64-linux-gnu-gcc -static "$$tmp/check_neon_kernel.o" "$$tmp/neon.o" "$$tmp/optim.o" -lm -o "$$tmp/check_neon_kernel"; \
	printf "arm64 (qemu-aarch64): "; qemu-aarch64 "$$tmp/check_neon_kernel"

clean:
	rm -rf .build
