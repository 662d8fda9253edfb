#!/usr/bin/env python3
"""Fits the polynomial of the CPU path's vectorised exp (FastMath.swift's simdExp and
CGemmKernels/rowmath.c's itune_exp8) and checks it the way the kernels compute it.

After the range reduction exp(x) = 2^n · exp(r), |r| <= ln2/2, exp(r) is 1 + r·q(r) with q of
degree 4: the constant term is 1 exactly, so exp(0) = 1 exactly (softmax's largest element).
q is fitted for *relative* error by Lawson's iteratively reweighted least squares on Chebyshev
nodes, which converges to the minimax fit. Then the whole kernel is simulated in float32 (each
FMA rounded once, Cody–Waite reduction with the kernels' constants) over [-87.3, 88.3] and the
worst relative error against float64 exp printed; FastMathTests asserts < 3e-7 on the real code.

    python3 scripts/fit_exp_polynomial.py      # prints the coefficients and the errors
"""
import numpy as np

LOG2E, LN2_HI, LN2_LO, MAGIC = np.float32(1.44269504), np.float32(0.69314575), np.float32(1.4286068e-6), np.float32(12582912.0)


def fit(degree=5, iterations=3000):
    half = np.log(2) / 2 * 1.001  # a little past ln2/2: rounding of x·log2e can land r there
    r = np.cos(np.linspace(0, np.pi, 4001)) * half
    r = r[np.abs(r) > 1e-12]
    e = np.exp(r)
    powers = np.vander(r, degree + 1, increasing=True)[:, 1:]  # r, r², …, r^degree
    w = np.ones_like(r)
    for _ in range(iterations):
        sw = np.sqrt(w)
        # (1 + powers·c) / e − 1 = 0  ⇔  powers·c / e = 1 − 1/e, weighted.
        c, *_ = np.linalg.lstsq(powers / e[:, None] * sw[:, None], (1 - 1 / e) * sw, rcond=None)
        err = np.abs((1 + powers @ c) / e - 1)
        w = w * (err / err.max() + 1e-12)
        w /= w.sum()
    return c, err.max()


def fma32(a, b, c):
    """a·b + c rounded once to float32, as an FMA."""
    return (np.asarray(a, np.float64) * np.asarray(b, np.float64) + np.float64(c)).astype(np.float32)


def simulate(x, coeffs):
    """The kernel in float32: clamp, n by the magic constant, r in two parts, Horner with FMAs, 2^n."""
    x = np.clip(x, np.float32(-87.33654), np.float32(88.37626)).astype(np.float32)
    t = fma32(x, LOG2E, MAGIC)
    n = (t - MAGIC).astype(np.float32)
    r = (x.astype(np.float64) - n.astype(np.float64) * np.float64(LN2_HI)).astype(np.float32)
    r = (r.astype(np.float64) - n.astype(np.float64) * np.float64(LN2_LO)).astype(np.float32)
    p = np.full_like(r, coeffs[-1])
    for c in coeffs[-2::-1]:
        p = fma32(p, r, c)
    p = fma32(p, r, np.float32(1))
    return (p * np.ldexp(np.float32(1), n.astype(np.int32)).astype(np.float32)).astype(np.float32)


def main():
    c, exact = fit()
    c32 = c.astype(np.float32)
    x = np.linspace(-87.3, 88.3, 4_000_001).astype(np.float32)
    want = np.exp(x.astype(np.float64))
    rel = np.abs(simulate(x, c32) - want) / want
    print("exp(r) = 1 + r·q(r), q's coefficients (r⁰ … r⁴ of q):")
    for k, v in enumerate(c32):
        print(f"  {k}: {float(v):.9g}")
    print(f"relative error: {exact:.3g} exact arithmetic, {rel.max():.3g} in float32 (worst at x = {x[rel.argmax()]})")
    print("exp(0) =", simulate(np.zeros(1, np.float32), c32)[0])


if __name__ == "__main__":
    main()
