#!/usr/bin/env bash
# Assembles the GPU kit from a static release build: make-gpu-kit.sh BIN_DIR DIST_DIR
# (called by `make gpu-kit`). The folder itune-gpu-linux-x86_64/ holds bin/ (itune-gpu, stripped,
# itune-bench linked to it, and the kernels' resource bundle beside them), lib/ (the OpenCL ICD loader and
# CLBlast from this machine's Debian packages), scripts/ (the PyTorch peers) and
# run-checks.sh; it is packed as DIST_DIR/itune-gpu-linux-x86_64.tar.xz.
set -euo pipefail
BIN="$1"; DIST="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NAME=itune-gpu-linux-x86_64
KIT="$DIST/$NAME"
rm -rf "$KIT" "$DIST/$NAME.tar.xz"
mkdir -p "$KIT/bin" "$KIT/lib" "$KIT/scripts"
# One binary: itune-gpu run as bin/itune-bench (a link) is the benchmark command. Two static
# binaries would each carry the Swift runtime and Foundation (60 MB, mostly ICU's data).
cp "$BIN/itune-gpu" "$KIT/bin/"
strip "$KIT/bin/itune-gpu"
ln -s itune-gpu "$KIT/bin/itune-bench"
cp -R "$BIN/itune-gpu_ITuneKernels.resources" "$KIT/bin/"
libdir=$(dirname "$(ldconfig -p | grep -m1 'libOpenCL.so.1 ' | sed 's/.*=> //')")
cp -L "$libdir/libOpenCL.so.1" "$KIT/lib/libOpenCL.so.1"
cp -L "$libdir/libclblast.so.1" "$KIT/lib/libclblast.so.1"
strip --strip-unneeded "$KIT/lib/"*.so.1
cp "$ROOT/scripts/bench_peers.py" "$ROOT/scripts/bench_tokenizer.py" "$KIT/scripts/"
cp "$ROOT/scripts/kit/run-checks.sh" "$KIT/run-checks.sh"
# itune-bench tokenize's input (ITUNE_BENCH_TOKENIZER): the byte-level fixture.
mkdir -p "$KIT/fixtures"
cp -R "$ROOT/Tests/Fixtures/tokenizers/llama3_style" "$KIT/fixtures/"
# itune-gpu tune --model's input (TUNE_MODEL): SmolLM2-135M's shape, config.json only.
mkdir -p "$KIT/fixtures/smollm2-135m"
cp "$ROOT/scripts/kit/smollm2-135m-config.json" "$KIT/fixtures/smollm2-135m/config.json"
chmod +x "$KIT/run-checks.sh"
echo "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown) built $(date -u +%Y-%m-%dT%H:%MZ)" > "$KIT/VERSION"
# What the binaries still need from the machine: glibc, libstdc++, libgcc (and libm, libdl).
echo "itune-gpu needs: $(ldd "$KIT/bin/itune-gpu" | awk '{print $1}' | grep -v -E '^(linux-vdso|/lib64/ld-linux)' | tr '\n' ' ')"
tar -C "$DIST" -cf - "$NAME" | xz -9e -T0 > "$DIST/$NAME.tar.xz"
du -sh "$KIT/bin/"* "$KIT/lib/"* | sed 's/^/  /'
size=$(stat -c %s "$DIST/$NAME.tar.xz")
echo "$DIST/$NAME.tar.xz: $((size / 1024 / 1024)) MiB ($size bytes)"
[ "$size" -lt $((60 * 1024 * 1024)) ] || { echo "the kit is over 60 MiB" >&2; exit 1; }
