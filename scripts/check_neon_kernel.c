// Checks the arm64 NEON GEMM micro-kernel (Sources/CGemmKernels/neon.c) against a double
// reference: both forms (one and two pairs of panels), depths from 0 to past a few hundred,
// alpha and beta with beta 0 over NaNs (C must not be read), a row stride wider than the tile
// with guard values around it (nothing outside the 12 × 8 tile may be written). Also AdamW's
// baseline-vector update (optim.c's itune_adamw_f32: NEON on arm64) against a scalar loop, bit
// for bit. Built for arm64 and run under qemu-aarch64 by `make arm64-c-check`; it also runs
// natively anywhere (there it checks the portable form). Exit status 1 on a mismatch.

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "CGemmKernels.h"

enum { MR = 12, NR = 8 };

static unsigned long long state = 88172645463325252ull;
static float next_value(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (float)((double)(state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int check(long kc, long kc2, long ldc, float alpha, float beta) {
    const long depth = kc > kc2 ? kc : kc2;
    float *a = malloc(sizeof(float) * (size_t)(depth * MR + 1)), *b = malloc(sizeof(float) * (size_t)(depth * NR + 1));
    float *a2 = malloc(sizeof(float) * (size_t)(depth * MR + 1)), *b2 = malloc(sizeof(float) * (size_t)(depth * NR + 1));
    const long rows = MR + 2, size = rows * ldc;
    float *c0 = malloc(sizeof(float) * (size_t)size), *c = malloc(sizeof(float) * (size_t)size);
    for (long i = 0; i < depth * MR; i++) { a[i] = next_value(); a2[i] = next_value(); }
    for (long i = 0; i < depth * NR; i++) { b[i] = next_value(); b2[i] = next_value(); }
    int failures = 0;
    for (int form = 1; form <= 2; form++) {
        // The tile starts at row 1, column 1 of a (MR + 2) × ldc array; the rest are guards.
        for (long i = 0; i < size; i++) c0[i] = c[i] = beta == 0 ? NAN : next_value();
        for (long i = 0; i < size; i++) {
            const long r = i / ldc, j = i % ldc;
            if (r == 0 || r > MR || j == 0 || j > NR) c0[i] = c[i] = 1234.5f;
        }
        float *tile = c + ldc + 1;
        if (form == 1) itune_sgemm_ukr_neon_12x8(kc, a, b, tile, ldc, alpha, beta);
        else itune_sgemm_ukr2_neon_12x8(kc, a, b, kc2, a2, b2, tile, ldc, alpha, beta);
        for (long i = 0; i < size; i++) {
            const long r = i / ldc, j = i % ldc;
            if (r == 0 || r > MR || j == 0 || j > NR) {
                if (c[i] != 1234.5f && failures++ < 10) {
                    fprintf(stderr, "form %d kc %ld ldc %ld: wrote outside the tile at (%ld, %ld)\n", form, kc, ldc, r, j);
                }
                continue;
            }
            double sum = 0, bound = 0;
            for (long k = 0; k < kc; k++) {
                sum += (double)a[k * MR + r - 1] * b[k * NR + j - 1];
                bound += fabs((double)a[k * MR + r - 1] * b[k * NR + j - 1]);
            }
            if (form == 2) {
                for (long k = 0; k < kc2; k++) {
                    sum += (double)a2[k * MR + r - 1] * b2[k * NR + j - 1];
                    bound += fabs((double)a2[k * MR + r - 1] * b2[k * NR + j - 1]);
                }
            }
            const double want = alpha * sum + (beta == 0 ? 0.0 : beta * (double)c0[i]);
            // f32 accumulation: at most one rounding (2^-24 relative) per term and per step.
            const double terms = (double)(kc + (form == 2 ? kc2 : 0) + 2);
            const double scale = fabs((double)alpha) * bound + (beta == 0 ? 0.0 : fabs((double)beta * c0[i]));
            const double tol = terms * 0x1p-23 * scale + 1e-30;
            if (!(fabs((double)c[i] - want) <= tol) && failures++ < 10) {
                fprintf(stderr, "form %d kc %ld kc2 %ld ldc %ld alpha %g beta %g: c[%ld][%ld] = %.9g, want %.9g\n",
                        form, kc, kc2, ldc, alpha, beta, r - 1, j - 1, c[i], want);
            }
        }
    }
    free(a); free(b); free(a2); free(b2); free(c0); free(c);
    return failures;
}

// The scalar loop the vector update must equal, unfused as optim.c is.
#pragma clang fp contract(off)
static int check_adamw(long n) {
    const float scale = 0.37f, omb1 = 1 - 0.9f, b2 = 0.999f, omb2 = 1 - 0.999f, bc2 = 0.0447f, eps = 1e-8f;
    const float decay = 1 - 3e-3f * 0.01f, step = 3e-3f / 0.271f;
    float *p = malloc(sizeof(float) * (size_t)n), *g = malloc(sizeof(float) * (size_t)n), *m = malloc(sizeof(float) * (size_t)n);
    float *v = malloc(sizeof(float) * (size_t)n), *wp = malloc(sizeof(float) * (size_t)n), *wm = malloc(sizeof(float) * (size_t)n);
    float *wv = malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++) {
        p[i] = next_value(); g[i] = 3 * next_value(); m[i] = 0.2f * next_value(); v[i] = fabsf(0.05f * next_value());
    }
    g[0] = 0; v[n / 2] = 0; v[n - 1] = 1e30f;
    memcpy(wp, p, sizeof(float) * (size_t)n); memcpy(wm, m, sizeof(float) * (size_t)n); memcpy(wv, v, sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++) {
        const float gi = g[i] * scale, mi = wm[i] + (gi - wm[i]) * omb1, vi = wv[i] * b2 + omb2 * gi * gi;
        const float denom = sqrtf(vi) / bc2 + eps;
        wp[i] = wp[i] * decay - step * (mi / denom);
        wm[i] = mi;
        wv[i] = vi;
    }
    itune_adamw_f32(p, g, m, v, n, scale, omb1, b2, omb2, bc2, eps, decay, step);
    int failures = 0;
    for (long i = 0; i < n; i++)
        if (memcmp(&p[i], &wp[i], 4) || memcmp(&m[i], &wm[i], 4) || memcmp(&v[i], &wv[i], 4)) {
            if (failures++ == 0)
                fprintf(stderr, "adamw n %ld: element %ld p %a m %a v %a, want %a %a %a\n", n, i, p[i], m[i], v[i], wp[i],
                        wm[i], wv[i]);
        }
    free(p); free(g); free(m); free(v); free(wp); free(wm); free(wv);
    return failures > 0;
}

int main(void) {
    const long depths[] = {0, 1, 2, 3, 7, 64, 129, 576};
    const long strides[] = {NR + 2, 37};
    const float alphas[] = {1.0f, 0.75f};
    const float betas[] = {0.0f, 0.5f, 1.0f};
    int cases = 0, failures = 0;
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++)
        for (size_t s = 0; s < sizeof strides / sizeof strides[0]; s++)
            for (size_t x = 0; x < sizeof alphas / sizeof alphas[0]; x++)
                for (size_t y = 0; y < sizeof betas / sizeof betas[0]; y++) {
                    failures += check(depths[d], depths[(d + 3) % 8] % 17, strides[s], alphas[x], betas[y]);
                    cases += 2;
                }
    const float burst = itune_fma_burst_neon(1000, 1.0f);
    if (itune_neon_kernel_is_native() && !isfinite(burst)) {
        fprintf(stderr, "itune_fma_burst_neon returned %g\n", burst);
        failures++;
    }
    printf("%s kernel 12x8: %d cases, %d mismatches\n", itune_neon_kernel_is_native() ? "NEON" : "portable", cases, failures);
    const long lengths[] = {1, 3, 4, 5, 7, 8, 9, 17, 100, 1027};
    int adamwFailures = 0;
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) adamwFailures += check_adamw(lengths[i]);
    printf("AdamW (itune_adamw_f32): %zu lengths, %d mismatches\n", sizeof lengths / sizeof lengths[0], adamwFailures);
    return failures == 0 && adamwFailures == 0 ? 0 : 1;
}
