// Stand-alone check of Sources/CGemmKernels on whatever CPU runs it (e.g. an AVX-512 machine
// without Swift): every micro-kernel the CPU supports against a naive product, beta 0 and 1.
//   clang -O2 -I Sources/CGemmKernels/include scripts/check_cgemm_kernels.c Sources/CGemmKernels/kernels.c -lm -o /tmp/check && /tmp/check
// (clang: GCC refuses the AVX2 kernel's inline assembly, which has more than its 30 operands.)
#include "CGemmKernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*ukr_t)(long, const float *, const float *, float *, long, float, float);

static int check(const char *name, ukr_t f, int mr, int nr, long kc) {
    long ldc = nr + 3;
    float *a = malloc(sizeof(float) * kc * mr), *b = malloc(sizeof(float) * kc * nr);
    float *c = malloc(sizeof(float) * mr * ldc), *ref = malloc(sizeof(float) * mr * ldc);
    for (long i = 0; i < kc * mr; i++) a[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    for (long i = 0; i < kc * nr; i++) b[i] = (float)((i * 104729) % 17) / 17.0f - 0.5f;
    int bad = 0;
    for (int pass = 0; pass < 2; pass++) {
        float alpha = 0.75f, beta = pass ? 0.5f : 0.0f;
        for (long i = 0; i < mr * ldc; i++) c[i] = ref[i] = pass ? (float)(i % 5) : NAN;
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < nr; j++) {
                double s = 0;
                for (long k = 0; k < kc; k++) s += (double)a[k * mr + r] * b[k * nr + j];
                ref[r * ldc + j] = (float)(alpha * s + (pass ? beta * ref[r * ldc + j] : 0));
            }
        f(kc, a, b, c, ldc, alpha, beta);
        for (int r = 0; r < mr; r++)
            for (long j = 0; j < ldc; j++) {
                float want = ref[r * ldc + j], got = c[r * ldc + j];
                int ok = j < nr ? fabsf(got - want) <= 1e-4f * (1 + fabsf(want)) : (isnan(want) ? isnan(got) : got == want);
                if (!ok && bad++ < 5) printf("%s kc=%ld beta=%g c[%d,%ld] = %g, want %g\n", name, kc, beta, r, j, got, want);
            }
    }
    free(a); free(b); free(c); free(ref);
    return bad;
}

// A two-pair kernel against its one-pair kernel over the panels laid end to end.
typedef void (*ukr2_t)(long, const float *, const float *, long, const float *, const float *, float *, long, float,
                       float);

static int check2(const char *name, ukr_t one, ukr2_t two, int mr, int nr, long kc, long kc2) {
    long ldc = nr + 3, k = kc + kc2;
    float *a = malloc(sizeof(float) * k * mr), *b = malloc(sizeof(float) * k * nr);
    float *c = malloc(sizeof(float) * mr * ldc), *ref = malloc(sizeof(float) * mr * ldc);
    for (long i = 0; i < k * mr; i++) a[i] = (float)((i * 31) % 11) / 11.0f - 0.5f;
    for (long i = 0; i < k * nr; i++) b[i] = (float)((i * 53) % 19) / 19.0f - 0.5f;
    for (long i = 0; i < mr * ldc; i++) c[i] = ref[i] = (float)(i % 7);
    one(k, a, b, ref, ldc, 0.5f, 0.25f);
    two(kc, a, b, kc2, a + kc * mr, b + kc * nr, c, ldc, 0.5f, 0.25f);
    int bad = 0;
    for (long i = 0; i < mr * ldc; i++)
        if (fabsf(c[i] - ref[i]) > 1e-4f * (1 + fabsf(ref[i])) && bad++ < 5)
            printf("%s kc=%ld kc2=%ld c[%ld] = %g, want %g\n", name, kc, kc2, i, c[i], ref[i]);
    free(a); free(b); free(c); free(ref);
    return bad;
}

int main(void) {
    unsigned f = itune_cpu_features();
    long l1, l2, l3;
    itune_cpu_cache_sizes(&l1, &l2, &l3);
    printf("features 0x%x, caches L1d %ld L2 %ld L3 %ld\n", f, l1, l2, l3);
    int bad = 0, ran = 0;
    long kcs[] = {1, 3, 4, 7, 256, 301};
    for (int i = 0; i < 6; i++) {
        if ((f & ITUNE_CPU_X86_AVX2) && (f & ITUNE_CPU_X86_FMA)) { bad += check("avx2_6x16", itune_sgemm_ukr_avx2_6x16, 6, 16, kcs[i]); ran++; }
        if (f & ITUNE_CPU_X86_AVX512F) { bad += check("avx512_12x32", itune_sgemm_ukr_avx512_12x32, 12, 32, kcs[i]); ran++; }
        if ((f & ITUNE_CPU_X86_AVX2) && (f & ITUNE_CPU_X86_FMA)) {
            bad += check2("ukr2_avx2_6x16", itune_sgemm_ukr_avx2_6x16, itune_sgemm_ukr2_avx2_6x16, 6, 16, kcs[i], 8 - i);
            ran++;
        }
        if (f & ITUNE_CPU_X86_AVX512F) {
            bad += check2("ukr2_avx512_12x32", itune_sgemm_ukr_avx512_12x32, itune_sgemm_ukr2_avx512_12x32, 12, 32,
                          kcs[i], 8 - i);
            ran++;
        }
    }
    printf("%d kernel checks, %d mismatches\n", ran, bad);
    return bad ? 1 : 0;
}
