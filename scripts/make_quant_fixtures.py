#!/usr/bin/env python3
"""Golden values for blockwise quantisation (issue 17): Tests/Fixtures/quant/quant_blocks.json.

Independent of the Swift code: the NF4 code book is rebuilt from its definition in the QLoRA
paper (Dettmers et al. 2023, appendix E / bitsandbytes' create_normal_map: normal quantiles
from offset 0.9677083 to 0.5, 8 positive and 7 negative, normalised, with an exact zero) and
checked against the paper's published values; a fixed matrix (SplitMix64, as the Swift tests
draw it) is quantised with numpy: NF4 and int8 blocks of 64 (absmax), and NF4 with double
quantisation of the absmax constants (mean removed, linear 8-bit blocks of 256, f32 absmax).

If bitsandbytes' quantize_4bit runs here (0.50.2 does on the CPU), its codes and absmax must
equal these; otherwise the fixture notes that it did not run.
"""
import json
import pathlib

import numpy as np
from scipy.stats import norm

PUBLISHED_NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]


def nf4_code_book():
    offset = 0.9677083
    pos = norm.ppf(np.linspace(offset, 0.5, 9)[:-1]).tolist()
    neg = (-norm.ppf(np.linspace(offset, 0.5, 8)[:-1])).tolist()
    v = np.array(sorted(pos + [0.0] + neg))
    return (v / np.abs(v).max()).astype(np.float32)


M64 = (1 << 64) - 1


def splitmix(seed):
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        yield z ^ (z >> 31)


def matrix(rows, cols, seed):
    """(2u − 1) · 2^−(r mod 5) with u = SplitMix64's nextFloat: exact in f32 on both sides."""
    g = splitmix(seed)
    out = np.empty((rows, cols), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            u = np.float32(next(g) >> 40) * np.float32(1.0 / 16777216.0)
            out[r, c] = (np.float32(2) * u - np.float32(1)) * np.float32(2.0 ** -(r % 5))
    return out


def round_away(y):
    y = y.astype(np.float64)
    return (np.sign(y) * np.floor(np.abs(y) + 0.5)).astype(np.int64)


def quantize(flat, fmt, book):
    blocks = (flat.size + 63) // 64
    absmax = np.zeros(blocks, dtype=np.float32)
    q = np.zeros(flat.size, dtype=np.int64)
    for b in range(blocks):
        x = flat[b * 64:(b + 1) * 64]
        m = np.abs(x).max()
        absmax[b] = m
        v = (x / m).astype(np.float32) if m > 0 else np.zeros_like(x)
        if fmt == "nf4":
            q[b * 64:(b + 1) * 64] = np.argmin(np.abs(v[:, None] - book[None, :]), axis=1)  # first (lower) on ties
        else:
            q[b * 64:(b + 1) * 64] = round_away(v * np.float32(127))
    if fmt == "nf4":
        q = np.concatenate([q, np.zeros(q.size % 2, dtype=np.int64)])
        codes = ((q[0::2] << 4) | q[1::2]).astype(np.uint8)
    else:
        codes = (q & 0xFF).astype(np.uint8)
    return codes, absmax


def double_quant(absmax):
    offset = np.float32(np.mean(absmax.astype(np.float64)))
    centred = (absmax - offset).astype(np.float32)
    codes, second, restored = [], [], []
    for s in range(0, absmax.size, 256):
        x = centred[s:s + 256]
        m = np.abs(x).max()
        second.append(float(m))
        c = round_away((x / m).astype(np.float32) * np.float32(127)) if m > 0 else np.zeros(x.size, dtype=np.int64)
        codes += c.tolist()
        restored += ((c.astype(np.float32) / np.float32(127)) * m + offset).astype(np.float32).tolist()
    return codes, second, float(offset), restored


def main():
    book = nf4_code_book()
    assert np.allclose(book, np.array(PUBLISHED_NF4, dtype=np.float32), atol=1e-6), book
    rows, cols, seed = 48, 400, 17
    w = matrix(rows, cols, seed)
    flat = w.reshape(-1)
    nf4_codes, nf4_absmax = quantize(flat, "nf4", np.array(PUBLISHED_NF4, dtype=np.float32))
    int8_codes, int8_absmax = quantize(flat, "int8", None)
    dq_codes, dq_second, dq_offset, dq_restored = double_quant(nf4_absmax)
    bnb = "not run"
    try:
        import torch
        import bitsandbytes.functional as F
        packed, state = F.quantize_4bit(torch.from_numpy(w), blocksize=64, quant_type="nf4")
        same = np.array_equal(packed.numpy().reshape(-1), nf4_codes) and np.array_equal(state.absmax.numpy(), nf4_absmax)
        bnb = f"bitsandbytes {__import__('bitsandbytes').__version__} quantize_4bit (CPU): codes and absmax {'equal' if same else 'DIFFER'}"
        assert same
    except AssertionError:
        raise
    except Exception as e:  # CUDA-only builds
        bnb = f"bitsandbytes did not run here: {type(e).__name__}: {str(e)[:120]}"
    out = {
        "note": "scripts/make_quant_fixtures.py; " + bnb,
        "rows": rows, "cols": cols, "seed": seed,
        "nf4_code_book_from_quantiles": [float(x) for x in book],
        "nf4_codes_hex": nf4_codes.tobytes().hex(), "nf4_absmax": [float(x) for x in nf4_absmax],
        "int8_codes_hex": int8_codes.tobytes().hex(), "int8_absmax": [float(x) for x in int8_absmax],
        "dq_codes": dq_codes, "dq_second_absmax": dq_second, "dq_offset": dq_offset, "dq_absmax": dq_restored,
    }
    path = pathlib.Path(__file__).resolve().parent.parent / "Tests/Fixtures/quant/quant_blocks.json"
    path.write_text(json.dumps(out) + "\n")
    print(path, bnb)


if __name__ == "__main__":
    main()
