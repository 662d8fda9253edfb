// Times Sources/CGemmKernels' micro-kernels on one core of whatever CPU runs it (no Swift
// needed): each kernel the CPU supports over a packed A block (MC rows) and a row of packed B
// panels, in the GEMM's loop order (for each B panel, every A micro-panel), so that B's panel
// streams from L2 and A's block sits in L2 as in cpuSgemm. Prints GFLOP/s for several depths;
// compare with `itune-bench peak` divided by its thread count.
//   clang -O2 -I Sources/CGemmKernels/include scripts/time_cgemm_kernels.c Sources/CGemmKernels/kernels.c -o /tmp/time_ukr && /tmp/time_ukr
#include "CGemmKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*ukr_t)(long, const float *, const float *, float *, long, float, float);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double run(ukr_t f, int mr, int nr, long kc, int mc, int panels) {
    long ldc = (long)nr * panels;
    float *a = aligned_alloc(64, sizeof(float) * (size_t)(kc * mc));
    float *b = aligned_alloc(64, sizeof(float) * (size_t)(kc * nr * panels));
    float *c = aligned_alloc(64, sizeof(float) * (size_t)(mc * ldc));
    if (!a || !b || !c) { fprintf(stderr, "out of memory\n"); exit(2); }
    for (long i = 0; i < kc * mc; i++) a[i] = 1e-3f * (float)(i % 7);
    for (long i = 0; i < kc * nr * panels; i++) b[i] = 1e-3f * (float)(i % 5);
    for (long i = 0; i < mc * ldc; i++) c[i] = 0;
    double flop = 2.0 * mc * nr * panels * kc, best = 1e30;
    int reps = (int)(2e9 / flop) + 1;
    for (int t = 0; t < 5; t++) {
        double s = now();
        for (int r = 0; r < reps; r++)
            for (int p = 0; p < panels; p++)
                for (int i = 0; i < mc; i += mr) f(kc, a + (long)i * kc, b + (long)p * kc * nr, c + (long)i * ldc + p * nr, ldc, 1.0f, 1.0f);
        double e = now() - s;
        if (e < best) best = e;
    }
    free(a); free(b); free(c);
    return flop * reps / best / 1e9;
}

int main(void) {
    unsigned f = itune_cpu_features();
    long kcs[] = {192, 288, 384, 576};
    for (int i = 0; i < 4; i++) {
        if ((f & ITUNE_CPU_X86_AVX2) && (f & ITUNE_CPU_X86_FMA))
            printf("avx2_6x16     kc %3ld, 210-row A block, 48 B panels: %6.1f GFLOP/s\n", kcs[i],
                   run(itune_sgemm_ukr_avx2_6x16, 6, 16, kcs[i], 210, 48));
        if (f & ITUNE_CPU_X86_AVX512F)
            printf("avx512_12x32  kc %3ld, 252-row A block, 24 B panels: %6.1f GFLOP/s\n", kcs[i],
                   run(itune_sgemm_ukr_avx512_12x32, 12, 32, kcs[i], 252, 24));
    }
    return 0;
}
