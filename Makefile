# itune-gpu — the README's commands. `make demo` and `make test` install what is missing.
SHELL := /bin/bash
export PATH := $(if $(wildcard /opt/swift/usr/bin),/opt/swift/usr/bin:,)$(PATH)

SWIFT ?= swift
# Debian packages: the OpenCL ICD loader and headers, CLBlast, and PoCL (a CPU OpenCL device,
# so that the OpenCL path is tested everywhere).
DEB_PACKAGES := ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers libclblast-dev libclblast1 pocl-opencl-icd clinfo

# CPU-specific code generation for release builds lives here, not in Package.swift (unsafe
# flags there would stop other packages from depending on ITune). `make CPU_FLAGS=` builds a
# binary for any machine of the architecture.
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
CPU_FLAGS ?= -Xswiftc -target-cpu -Xswiftc x86-64-v3 -Xcc -march=x86-64-v3
else
CPU_FLAGS ?=
endif
RELEASE := -c release $(CPU_FLAGS)
BIN = $(shell $(SWIFT) build $(RELEASE) --show-bin-path 2>/dev/null)

.PHONY: setup build test demo bench clean

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
# failure. The last line is a plain "N passed, N failed" summary.
test: setup
	@set -o pipefail; ITUNE_REQUIRE_OPENCL=1 $(SWIFT) test --disable-swift-testing 2>&1 | tee .test-output.log; \
	status=$$?; \
	summary=$$(grep -E "^[[:space:]]*Executed [0-9]+ tests?" .test-output.log | tail -1); \
	total=$$(echo "$$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/'); \
	failed=$$(echo "$$summary" | sed -E 's/.* ([0-9]+) failures? \(.*/\1/'); \
	skipped=$$(echo "$$summary" | sed -nE 's/.*with ([0-9]+) tests? skipped.*/\1/p'); \
	skipped=$${skipped:-0}; \
	grep -h "\[itune-tests\]" .test-output.log | sort -u; \
	echo "$$((total - failed - skipped)) passed, $$failed failed, $$skipped skipped"; \
	rm -f .test-output.log; exit $$status

demo: build
	$(BIN)/itune-gpu train

bench: build
	@mkdir -p bench-results
	$(BIN)/itune-bench all --device all --json | tee bench-results/itune-bench.jsonl
	python3 scripts/bench_numpy_matmul.py | tee bench-results/numpy.jsonl

clean:
	rm -rf .build
