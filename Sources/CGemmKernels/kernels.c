// See include/CGemmKernels.h. Each kernel carries its own target attribute, so the file is
// built for the baseline ISA and the wider code runs only after itune_cpu_features() said so.
#include "CGemmKernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(_M_X64)
#define ITUNE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

// MARK: features

#if ITUNE_X86
static unsigned long long itune_xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

unsigned itune_cpu_features(void) {
    unsigned f = 0;
#if ITUNE_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return 0;
    unsigned long long xcr0 = itune_xgetbv0();
    int ymm = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
    int zmm = ymm && (xcr0 & 0xe0) == 0xe0;   // opmask, ZMM_Hi256, Hi16_ZMM
    if (!ymm) return 0;
    if (fma) f |= ITUNE_CPU_X86_FMA;
    if ((c >> 29) & 1) f |= ITUNE_CPU_X86_F16C;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if ((b >> 5) & 1) f |= ITUNE_CPU_X86_AVX2;
        if (zmm && ((b >> 16) & 1)) f |= ITUNE_CPU_X86_AVX512F;
        if (zmm && ((b >> 31) & 1)) f |= ITUNE_CPU_X86_AVX512VL;
    }
#elif defined(__aarch64__)
    f |= ITUNE_CPU_ARM_ASIMD;  // part of every arm64 CPU
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (hw & (1UL << 10)) f |= ITUNE_CPU_ARM_FP16;   // HWCAP_ASIMDHP
    if (hw & (1UL << 22)) f |= ITUNE_CPU_ARM_SVE;    // HWCAP_SVE
    if (hw2 & (1UL << 14)) f |= ITUNE_CPU_ARM_BF16;  // HWCAP2_BF16
#elif defined(__APPLE__)
    int v = 0; size_t n = sizeof v;
    if (sysctlbyname("hw.optional.arm.FEAT_FP16", &v, &n, NULL, 0) == 0 && v) f |= ITUNE_CPU_ARM_FP16;
    v = 0; n = sizeof v;
    if (sysctlbyname("hw.optional.arm.FEAT_BF16", &v, &n, NULL, 0) == 0 && v) f |= ITUNE_CPU_ARM_BF16;
#endif
#endif
    return f;
}

// MARK: caches

#if defined(__linux__)
static long itune_read_sys(int index, const char *field, char *text, size_t cap) {
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/%s", index, field);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    size_t n = fread(text, 1, cap - 1, fp);
    fclose(fp);
    text[n] = 0;
    return (long)n;
}
#endif

void itune_cpu_cache_sizes(long *l1d, long *l2, long *l3) {
    *l1d = 0; *l2 = 0; *l3 = 0;
#if defined(__linux__)
    for (int i = 0; i < 8; i++) {
        char level[16], type[32], size[32];
        if (itune_read_sys(i, "level", level, sizeof level) <= 0) break;
        if (itune_read_sys(i, "type", type, sizeof type) <= 0) continue;
        if (itune_read_sys(i, "size", size, sizeof size) <= 0) continue;
        if (strncmp(type, "Instruction", 11) == 0) continue;
        char *end = NULL;
        long bytes = strtol(size, &end, 10);
        if (end && (*end == 'K' || *end == 'k')) bytes <<= 10;
        else if (end && (*end == 'M' || *end == 'm')) bytes <<= 20;
        int lv = (int)strtol(level, NULL, 10);
        if (lv == 1) *l1d = bytes;
        else if (lv == 2) *l2 = bytes;
        else if (lv == 3) *l3 = bytes;
    }
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    if (*l1d <= 0) *l1d = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    if (*l2 <= 0) *l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (*l3 <= 0) *l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
#elif defined(__APPLE__)
    long long v = 0; size_t n = sizeof v;
    if (sysctlbyname("hw.perflevel0.l1dcachesize", &v, &n, NULL, 0) == 0 ||
        (n = sizeof v, sysctlbyname("hw.l1dcachesize", &v, &n, NULL, 0) == 0)) *l1d = (long)v;
    v = 0; n = sizeof v;
    if (sysctlbyname("hw.perflevel0.l2cachesize", &v, &n, NULL, 0) == 0 ||
        (n = sizeof v, sysctlbyname("hw.l2cachesize", &v, &n, NULL, 0) == 0)) *l2 = (long)v;
    v = 0; n = sizeof v;
    if (sysctlbyname("hw.l3cachesize", &v, &n, NULL, 0) == 0) *l3 = (long)v;
#endif
    if (*l1d < 0) *l1d = 0;
    if (*l2 < 0) *l2 = 0;
    if (*l3 < 0) *l3 = 0;
}

// MARK: AVX2 + FMA

#if ITUNE_X86
#include "avx2_helpers.h"

AVX2 static inline void itune_store8(float *p, __m256 x, __m256 va, __m256 vb, float beta) {
    if (beta == 0) _mm256_storeu_ps(p, _mm256_mul_ps(va, x));
    else _mm256_storeu_ps(p, _mm256_fmadd_ps(va, x, _mm256_mul_ps(vb, _mm256_loadu_ps(p))));
}

// The loop is written in assembly: clang 21 keeps the 12 accumulators, 2 B vectors and the
// broadcasts of A (16 ymm registers in all) in registers only when nothing can move them. Its
// own schedule of the C loop spilled accumulators to the stack and shuffled registers every
// iteration (35 of a core's 92 GFLOP/s on a Zen 3, in L1); this loop runs at the FMA ports'
// rate. Four steps of k per iteration, then one at a time. ITUNE_UKR_ACCUMULATE(A, B, KC) adds
// the packed panels' product A (KC,6) · B (KC,16) to the accumulators c00 … c51.
#define ITUNE_UKR_STEP(AO, BO)                                                                     \
    "vmovups " #BO "(%[b]), %[t0]\n\t"                                                              \
    "vmovups " #BO "+32(%[b]), %[t1]\n\t"                                                           \
    "vbroadcastss " #AO "(%[a]), %[t2]\n\t"                                                         \
    "vbroadcastss " #AO "+4(%[a]), %[t3]\n\t"                                                       \
    "vfmadd231ps %[t0], %[t2], %[c00]\n\t"                                                          \
    "vfmadd231ps %[t1], %[t2], %[c01]\n\t"                                                          \
    "vfmadd231ps %[t0], %[t3], %[c10]\n\t"                                                          \
    "vfmadd231ps %[t1], %[t3], %[c11]\n\t"                                                          \
    "vbroadcastss " #AO "+8(%[a]), %[t2]\n\t"                                                       \
    "vbroadcastss " #AO "+12(%[a]), %[t3]\n\t"                                                      \
    "vfmadd231ps %[t0], %[t2], %[c20]\n\t"                                                          \
    "vfmadd231ps %[t1], %[t2], %[c21]\n\t"                                                          \
    "vfmadd231ps %[t0], %[t3], %[c30]\n\t"                                                          \
    "vfmadd231ps %[t1], %[t3], %[c31]\n\t"                                                          \
    "vbroadcastss " #AO "+16(%[a]), %[t2]\n\t"                                                      \
    "vbroadcastss " #AO "+20(%[a]), %[t3]\n\t"                                                      \
    "vfmadd231ps %[t0], %[t2], %[c40]\n\t"                                                          \
    "vfmadd231ps %[t1], %[t2], %[c41]\n\t"                                                          \
    "vfmadd231ps %[t0], %[t3], %[c50]\n\t"                                                          \
    "vfmadd231ps %[t1], %[t3], %[c51]\n\t"
#define ITUNE_UKR_OPERANDS                                                                         \
    [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11), [c20] "+x"(c20),          \
    [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31), [c40] "+x"(c40), [c41] "+x"(c41),          \
    [c50] "+x"(c50), [c51] "+x"(c51), [t0] "=&x"(t0), [t1] "=&x"(t1), [t2] "=&x"(t2),             \
    [t3] "=&x"(t3), [a] "+r"(pa), [b] "+r"(pb)
#define ITUNE_UKR_ACCUMULATE(A, B, KC)                                                             \
    do {                                                                                           \
        const float *pa = (A), *pb = (B);                                                          \
        long k4 = (KC) >> 2, k1 = (KC) & 3;                                                        \
        __m256 t0, t1, t2, t3;                                                                     \
        if (k4 > 0) {                                                                              \
            __asm__ volatile("1:\n\t"                                                              \
                             "prefetcht0 512(%[b])\n\t"                                            \
                             ITUNE_UKR_STEP(0, 0)                                                  \
                             ITUNE_UKR_STEP(24, 64)                                                \
                             "prefetcht0 576(%[b])\n\t"                                            \
                             ITUNE_UKR_STEP(48, 128)                                               \
                             ITUNE_UKR_STEP(72, 192)                                               \
                             "addq $96, %[a]\n\t"                                                  \
                             "addq $256, %[b]\n\t"                                                 \
                             "decq %[k]\n\t"                                                       \
                             "jnz 1b\n\t"                                                          \
                             : ITUNE_UKR_OPERANDS, [k] "+r"(k4)                                    \
                             :                                                                     \
                             : "cc", "memory");                                                    \
        }                                                                                          \
        if (k1 > 0) {                                                                              \
            __asm__ volatile("2:\n\t"                                                              \
                             ITUNE_UKR_STEP(0, 0)                                                  \
                             "addq $24, %[a]\n\t"                                                  \
                             "addq $64, %[b]\n\t"                                                  \
                             "decq %[k]\n\t"                                                       \
                             "jnz 2b\n\t"                                                          \
                             : ITUNE_UKR_OPERANDS, [k] "+r"(k1)                                    \
                             :                                                                     \
                             : "cc", "memory");                                                    \
        }                                                                                          \
    } while (0)

#define ITUNE_UKR_BEGIN                                                                            \
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;       \
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;                       \
    /* The C tile is needed only after the loop: start fetching it now (both lines of each row). */\
    for (int r = 0; r < 6; r++) {                                                                  \
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);                                    \
        _mm_prefetch((const char *)(c + r * ldc + 15), _MM_HINT_T0);                               \
    }

#define ITUNE_UKR_STORE                                                                            \
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);                                  \
    itune_store8(c, c00, va, vb, beta); itune_store8(c + 8, c01, va, vb, beta); c += ldc;          \
    itune_store8(c, c10, va, vb, beta); itune_store8(c + 8, c11, va, vb, beta); c += ldc;          \
    itune_store8(c, c20, va, vb, beta); itune_store8(c + 8, c21, va, vb, beta); c += ldc;          \
    itune_store8(c, c30, va, vb, beta); itune_store8(c + 8, c31, va, vb, beta); c += ldc;          \
    itune_store8(c, c40, va, vb, beta); itune_store8(c + 8, c41, va, vb, beta); c += ldc;          \
    itune_store8(c, c50, va, vb, beta); itune_store8(c + 8, c51, va, vb, beta);

AVX2 void itune_sgemm_ukr_avx2_6x16(long kc, const float *a, const float *b, float *c, long ldc,
                                    float alpha, float beta) {
    ITUNE_UKR_BEGIN
    ITUNE_UKR_ACCUMULATE(a, b, kc);
    ITUNE_UKR_STORE
}

AVX2 void itune_sgemm_ukr2_avx2_6x16(long kc, const float *a, const float *b, long kc2, const float *a2,
                                     const float *b2, float *c, long ldc, float alpha, float beta) {
    ITUNE_UKR_BEGIN
    ITUNE_UKR_ACCUMULATE(a, b, kc);
    ITUNE_UKR_ACCUMULATE(a2, b2, kc2);
    ITUNE_UKR_STORE
}
#undef ITUNE_UKR_STEP
#undef ITUNE_UKR_OPERANDS
#undef ITUNE_UKR_ACCUMULATE
#undef ITUNE_UKR_BEGIN
#undef ITUNE_UKR_STORE

AVX2 float itune_fma_burst_avx2(long iterations, float seed) {
    __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    __m256 s[12];
    for (int i = 0; i < 12; i++) s[i] = _mm256_set1_ps(seed + (float)i);
    __m256 a0 = s[0], a1 = s[1], a2 = s[2], a3 = s[3], a4 = s[4], a5 = s[5];
    __m256 a6 = s[6], a7 = s[7], a8 = s[8], a9 = s[9], a10 = s[10], a11 = s[11];
    for (long i = 0; i < iterations; i++) {
        a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y);
        a3 = _mm256_fmadd_ps(a3, x, y); a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
        a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y); a8 = _mm256_fmadd_ps(a8, x, y);
        a9 = _mm256_fmadd_ps(a9, x, y); a10 = _mm256_fmadd_ps(a10, x, y); a11 = _mm256_fmadd_ps(a11, x, y);
    }
    __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    t = _mm256_add_ps(t, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, t);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

AVX2 void itune_dot_rows4_avx2(const float *x, const float *b, long ldb, long count, long K, float *out) {
    // Missing rows repeat row 0; their sums are not stored.
    const float *r0 = b, *r1 = count > 1 ? b + ldb : b, *r2 = count > 2 ? b + 2 * ldb : b;
    const float *r3 = count > 3 ? b + 3 * ldb : b;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
    long k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
        s0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0 + k), s0); t0 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r0 + k + 8), t0);
        s1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r1 + k), s1); t1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r1 + k + 8), t1);
        s2 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r2 + k), s2); t2 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r2 + k + 8), t2);
        s3 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r3 + k), s3); t3 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r3 + k + 8), t3);
    }
    for (; k + 8 <= K; k += 8) {
        __m256 x0 = _mm256_loadu_ps(x + k);
        s0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0 + k), s0);
        s1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r1 + k), s1);
        s2 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r2 + k), s2);
        s3 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r3 + k), s3);
    }
    float o0 = itune_hsum8(_mm256_add_ps(s0, t0)), o1 = itune_hsum8(_mm256_add_ps(s1, t1));
    float o2 = itune_hsum8(_mm256_add_ps(s2, t2)), o3 = itune_hsum8(_mm256_add_ps(s3, t3));
    for (; k < K; k++) {
        o0 += x[k] * r0[k]; o1 += x[k] * r1[k]; o2 += x[k] * r2[k]; o3 += x[k] * r3[k];
    }
    out[0] = o0;
    if (count > 1) out[1] = o1;
    if (count > 2) out[2] = o2;
    if (count > 3) out[3] = o3;
}

AVX2 void itune_axpy4_avx2(float *acc, long n, const float *b0, const float *b1, const float *b2,
                           const float *b3, float x0, float x1, float x2, float x3) {
    __m256 a0 = _mm256_set1_ps(x0), a1 = _mm256_set1_ps(x1), a2 = _mm256_set1_ps(x2), a3 = _mm256_set1_ps(x3);
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 s = _mm256_loadu_ps(acc + j);
        s = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b0 + j), s);
        s = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b1 + j), s);
        s = _mm256_fmadd_ps(a2, _mm256_loadu_ps(b2 + j), s);
        s = _mm256_fmadd_ps(a3, _mm256_loadu_ps(b3 + j), s);
        _mm256_storeu_ps(acc + j, s);
    }
    for (; j < n; j++) acc[j] += x0 * b0[j] + x1 * b1[j] + x2 * b2[j] + x3 * b3[j];
}


// MARK: 16-bit weights (AVX2 + FMA + F16C)

// bf16 is the high half of an f32: widened and shifted. f16 goes through F16C's vcvtph2ps.
// The callers check the features: bf16 needs AVX2 + FMA, f16 also F16C.
#define AVX2W16 __attribute__((target("avx2,fma,f16c")))

AVX2W16 static inline __m256 itune_load8_w16(int format, const unsigned short *p) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (format == ITUNE_W16_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/// The first n < 8 values at p, zero-padded to 8, as f32.
AVX2W16 static inline __m256 itune_load_partial_w16(int format, const unsigned short *p, long n) {
    unsigned short t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(t, p, (size_t)n * sizeof t[0]);
    return itune_load8_w16(format, t);
}

AVX2W16 static inline float itune_w16_scalar(int format, unsigned short h) {
    if (format == ITUNE_W16_BF16) {
        unsigned bits = (unsigned)h << 16;
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    return _cvtsh_ss(h);
}

#define ITUNE_UNROLL _Pragma("clang loop unroll(full)")

// The 16-bit GEMV, written once for both vector widths (L lanes of type V, the width's zero,
// multiply-add, f32 load, 16-bit load and partial load, horizontal sum):
//
// BLOCK: one block of R rows of B (R outputs j..j+R) times M rows of A over k in [k0, k1): R·M
// accumulators, each converted vector of B used by all M rows. A cache line (32 values) of each
// row at a time, while the same line of the next group's rows is fetched: a group's rows are
// short streams (K = 896: 28 lines), too short for the hardware prefetchers to learn before they
// end (a prefetch past the end never faults). `tail` (M × L, zero-padded) holds A's columns
// K & ~(L−1) ..< K when k1 == K and K is not a multiple of L. `first`: the first K block, which
// applies beta; later blocks add to c.
#define ITUNE_GEMV16_BLOCK(ATTR, NAME, V, L, ZERO, FMADD, LOADU, LOADW, LOADW_PARTIAL, HSUM)                   \
    ATTR static inline __attribute__((always_inline)) void                                                    \
    NAME(const int format, const int M, const int R, long k0, long k1, const float *a, long lda,             \
         const float *tail, const unsigned short *b, long ldb, float *c, long ldc, float alpha, float beta,   \
         int first) {                                                                                         \
        V acc[8][8];                                                                                          \
        ITUNE_UNROLL for (int i = 0; i < M; i++) {                                                            \
            ITUNE_UNROLL for (int r = 0; r < R; r++) acc[i][r] = ZERO();                                       \
        }                                                                                                     \
        long k = k0, vend = k0 + ((k1 - k0) & ~(long)(L - 1));                                                \
        for (; k + 32 <= vend; k += 32) {                                                                     \
            ITUNE_UNROLL for (int r = 0; r < R; r++) _mm_prefetch((const char *)(b + (R + r) * ldb + k), _MM_HINT_T0); \
            ITUNE_UNROLL for (int s = 0; s < 32; s += L) {                                                    \
                ITUNE_UNROLL for (int r = 0; r < R; r++) {                                                    \
                    V bv = LOADW(format, b + r * ldb + k + s);                                                \
                    ITUNE_UNROLL for (int i = 0; i < M; i++) acc[i][r] = FMADD(LOADU(a + i * lda + k + s), bv, acc[i][r]); \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
        for (; k < vend; k += L) {                                                                            \
            ITUNE_UNROLL for (int r = 0; r < R; r++) {                                                        \
                V bv = LOADW(format, b + r * ldb + k);                                                        \
                ITUNE_UNROLL for (int i = 0; i < M; i++) acc[i][r] = FMADD(LOADU(a + i * lda + k), bv, acc[i][r]); \
            }                                                                                                 \
        }                                                                                                     \
        if (k < k1) {                                                                                         \
            ITUNE_UNROLL for (int r = 0; r < R; r++) {                                                        \
                V bv = LOADW_PARTIAL(format, b + r * ldb + k, k1 - k);                                        \
                ITUNE_UNROLL for (int i = 0; i < M; i++) acc[i][r] = FMADD(LOADU(tail + i * L), bv, acc[i][r]); \
            }                                                                                                 \
        }                                                                                                     \
        ITUNE_UNROLL for (int i = 0; i < M; i++) {                                                            \
            ITUNE_UNROLL for (int r = 0; r < R; r++) {                                                        \
                float s = alpha * HSUM(acc[i][r]);                                                            \
                float *cp = c + i * ldc + r;                                                                  \
                if (!first) *cp += s;                                                                         \
                else if (beta == 0) *cp = s;                                                                  \
                else *cp = s + beta * *cp;                                                                    \
            }                                                                                                 \
        }                                                                                                     \
    }

typedef void (*itune_gemv16_fn)(long n, long K, long kc, const float *a, long lda, const float *tail,
                                const unsigned short *b, long ldb, float *c, long ldc, float alpha, float beta);

// One function per (format, M) with its R (rows of B per block) as constants, so that the
// accumulators are registers (PREFIX_NAME_M, e.g. itune_gemv16_bf16_4).
#define ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, MM, RR)                                                         \
    ATTR static void NAME##_##MM(long n, long K, long kc, const float *a, long lda, const float *tail,          \
                                 const unsigned short *b, long ldb, float *c, long ldc, float alpha, float beta) { \
        for (long k0 = 0; k0 < K; k0 += kc) {                                                                  \
            long k1 = k0 + kc < K ? k0 + kc : K;                                                               \
            long j = 0;                                                                                        \
            for (; j + RR <= n; j += RR)                                                                       \
                BLOCK(FMT, MM, RR, k0, k1, a, lda, tail, b + j * ldb, ldb, c + j, ldc, alpha, beta, k0 == 0);   \
            for (; j < n; j++)                                                                                 \
                BLOCK(FMT, MM, 1, k0, k1, a, lda, tail, b + j * ldb, ldb, c + j, ldc, alpha, beta, k0 == 0);    \
        }                                                                                                      \
    }
// M = 1 … 8 with the R of each; then the table by format (bf16, f16) and M, and the entry point:
// A's tail columns zero-padded to a vector (B's tail is padded with zeros as it is loaded), K
// blocks that keep the m rows of A (m · kc floats) within 24 KiB of L1 while B streams.
#define ITUNE_GEMV16_ALL(ATTR, BLOCK, FMT, NAME, R1, R2, R3, R4, R5, R6, R7, R8)                              \
    ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, 1, R1) ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, 2, R2)               \
    ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, 3, R3) ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, 4, R4)               \
    ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, 5, R5) ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, 6, R6)               \
    ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, 7, R7) ITUNE_GEMV16_M(ATTR, BLOCK, FMT, NAME, 8, R8)
#define ITUNE_GEMV16_ENTRY(ENTRY, BF, HF, L)                                                                  \
    static const itune_gemv16_fn ENTRY##_table[2][8] = {                                                      \
        {BF##_1, BF##_2, BF##_3, BF##_4, BF##_5, BF##_6, BF##_7, BF##_8},                                     \
        {HF##_1, HF##_2, HF##_3, HF##_4, HF##_5, HF##_6, HF##_7, HF##_8},                                     \
    };                                                                                                        \
    void ENTRY(int format, long m, long n, long k, float alpha, const float *a, long lda,                     \
               const unsigned short *b, long ldb, float beta, float *c, long ldc) {                           \
        if (m < 1 || m > 8 || n < 1 || (format != ITUNE_W16_BF16 && format != ITUNE_W16_F16)) return;         \
        float tail[8 * L];                                                                                    \
        long kv = k & ~(long)(L - 1), rem = k - kv;                                                           \
        for (long i = 0; i < m; i++) {                                                                        \
            for (long t = 0; t < L; t++) tail[i * L + t] = t < rem ? a[i * lda + kv + t] : 0.0f;              \
        }                                                                                                     \
        long kc = (24576 / (4 * m)) & ~(long)(L - 1);                                                         \
        if (k <= 0) kc = 1;                                                                                   \
        ENTRY##_table[format][m - 1](n, k, kc, a, lda, tail, b, ldb, c, ldc, alpha, beta);                    \
    }

// 8 lanes: R·M ≤ 12 of the 16 ymm registers (M = 1: 8 rows of B in flight, 8 independent FMA
// chains to cover the FMA latency on two pipes).
ITUNE_GEMV16_BLOCK(AVX2W16, itune_gemv16_block, __m256, 8, _mm256_setzero_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
                   itune_load8_w16, itune_load_partial_w16, itune_hsum8)
ITUNE_GEMV16_ALL(AVX2W16, itune_gemv16_block, ITUNE_W16_BF16, itune_gemv16_bf16, 8, 6, 4, 3, 2, 2, 1, 1)
ITUNE_GEMV16_ALL(AVX2W16, itune_gemv16_block, ITUNE_W16_F16, itune_gemv16_f16, 8, 6, 4, 3, 2, 2, 1, 1)
ITUNE_GEMV16_ENTRY(itune_gemv16_avx2, itune_gemv16_bf16, itune_gemv16_f16, 8)

AVX2W16 void itune_w16_to_f32_avx2(int format, const unsigned short *src, long n, float *dst) {
    long i = 0;
    if (format == ITUNE_W16_BF16) {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, itune_load8_w16(ITUNE_W16_BF16, src + i));
    } else {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, itune_load8_w16(ITUNE_W16_F16, src + i));
    }
    for (; i < n; i++) dst[i] = itune_w16_scalar(format, src[i]);
}

AVX2 static inline void itune_transpose8_store(__m256 r0, __m256 r1, __m256 r2, __m256 r3, __m256 r4, __m256 r5,
                                                   __m256 r6, __m256 r7, float *dst, long ldd) {
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}

AVX2W16 static inline __attribute__((always_inline)) void
itune_pack_w16_rows8(const int format, const unsigned short *src, long lds, long kc, float *dst, long ldd) {
    long k = 0;
    for (; k + 8 <= kc; k += 8) {
        const unsigned short *p = src + k;
        itune_transpose8_store(itune_load8_w16(format, p), itune_load8_w16(format, p + lds),
                               itune_load8_w16(format, p + 2 * lds), itune_load8_w16(format, p + 3 * lds),
                               itune_load8_w16(format, p + 4 * lds), itune_load8_w16(format, p + 5 * lds),
                               itune_load8_w16(format, p + 6 * lds), itune_load8_w16(format, p + 7 * lds),
                               dst + k * ldd, ldd);
    }
    for (; k < kc; k++) {
        for (int r = 0; r < 8; r++) dst[k * ldd + r] = itune_w16_scalar(format, src[r * lds + k]);
    }
}

AVX2W16 void itune_pack_w16_rows8_avx2(int format, const unsigned short *src, long lds, long kc, float *dst, long ldd) {
    if (format == ITUNE_W16_BF16) itune_pack_w16_rows8(ITUNE_W16_BF16, src, lds, kc, dst, ldd);
    else itune_pack_w16_rows8(ITUNE_W16_F16, src, lds, kc, dst, ldd);
}

/// Packs 8 rows of an f32 B stored (N,K) into 8 columns of a GEMM panel, transposing in registers:
/// dst[k*ldd + r] = src[r*lds + k] for r < 8, k < kc (the forward's weights, W stored (out, in)).
AVX2 void itune_pack_f32_rows8_avx2(const float *src, long lds, long kc, float *dst, long ldd) {
    long k = 0;
    for (; k + 8 <= kc; k += 8) {
        const float *p = src + k;
        itune_transpose8_store(_mm256_loadu_ps(p), _mm256_loadu_ps(p + lds), _mm256_loadu_ps(p + 2 * lds),
                               _mm256_loadu_ps(p + 3 * lds), _mm256_loadu_ps(p + 4 * lds), _mm256_loadu_ps(p + 5 * lds),
                               _mm256_loadu_ps(p + 6 * lds), _mm256_loadu_ps(p + 7 * lds), dst + k * ldd, ldd);
    }
    for (; k < kc; k++) {
        for (int r = 0; r < 8; r++) dst[k * ldd + r] = src[r * lds + k];
    }
}

/// Four rows: per 8 values of k, a 4 × 8 block transposed into eight runs of 4.
AVX2 static void itune_pack_f32_rows4(const float *src, long lds, long kc, float *dst, long ldd) {
    long k = 0;
    for (; k + 8 <= kc; k += 8) {
        const float *p = src + k;
        __m256 r0 = _mm256_loadu_ps(p), r1 = _mm256_loadu_ps(p + lds);
        __m256 r2 = _mm256_loadu_ps(p + 2 * lds), r3 = _mm256_loadu_ps(p + 3 * lds);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        // s_j holds k + j in its low half and k + 4 + j in its high half.
        __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
        __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
        float *d = dst + k * ldd;
        _mm_storeu_ps(d, _mm256_castps256_ps128(s0));
        _mm_storeu_ps(d + ldd, _mm256_castps256_ps128(s1));
        _mm_storeu_ps(d + 2 * ldd, _mm256_castps256_ps128(s2));
        _mm_storeu_ps(d + 3 * ldd, _mm256_castps256_ps128(s3));
        _mm_storeu_ps(d + 4 * ldd, _mm256_extractf128_ps(s0, 1));
        _mm_storeu_ps(d + 5 * ldd, _mm256_extractf128_ps(s1, 1));
        _mm_storeu_ps(d + 6 * ldd, _mm256_extractf128_ps(s2, 1));
        _mm_storeu_ps(d + 7 * ldd, _mm256_extractf128_ps(s3, 1));
    }
    for (; k < kc; k++) {
        for (int r = 0; r < 4; r++) dst[k * ldd + r] = src[r * lds + k];
    }
}

AVX2 void itune_pack_f32_rows_avx2(const float *src, long lds, long rows, long kc, float *dst, long ldd) {
    long r = 0;
    for (; r + 8 <= rows; r += 8) itune_pack_f32_rows8_avx2(src + r * lds, lds, kc, dst + r, ldd);
    for (; r + 4 <= rows; r += 4) itune_pack_f32_rows4(src + r * lds, lds, kc, dst + r, ldd);
    for (; r < rows; r++) {
        const float *s = src + r * lds;
        for (long k = 0; k < kc; k++) dst[k * ldd + r] = s[k];
    }
}

// MARK: AVX-512

#define AVX512 __attribute__((target("avx512f")))

// acc (12 rows × 2 vectors) += the packed panels' product a (kc,12) · b (kc,32). Four steps of k
// per iteration, each fetching B's line 16 steps ahead into L1: B's micro-panel (kc × 128 B,
// 72 KiB at kc 576) is larger than L1 and streams from L2 for every A micro-panel (a 12 × 32
// tile over a 252-row A block and 24 B panels on one Ice Lake core, kc 576, at quiet moments of
// a noisy VM: 138–144 GFLOP/s one k-step an iteration without the prefetch, 148–155 with it,
// of the core's 178; scripts/time_cgemm_kernels.c). clang keeps the 24 accumulators, 2 B vectors and the broadcasts in the 32
// zmm registers (checked in the disassembly: no stack access in the loop).
AVX512 static inline __attribute__((always_inline)) void
itune_avx512_accumulate(__m512 acc[12][2], long kc, const float *a, const float *b) {
    long k = 0;
    for (; k + 4 <= kc; k += 4) {
#pragma clang loop unroll(full)
        for (int u = 0; u < 4; u++) {
            _mm_prefetch((const char *)(b + 512 + 32 * u), _MM_HINT_T0);
            __m512 b0 = _mm512_loadu_ps(b + 32 * u), b1 = _mm512_loadu_ps(b + 32 * u + 16);
#pragma clang loop unroll(full)
            for (int r = 0; r < 12; r++) {
                __m512 ar = _mm512_set1_ps(a[12 * u + r]);
                acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
            }
        }
        a += 48; b += 128;
    }
    for (; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma clang loop unroll(full)
        for (int r = 0; r < 12; r++) {
            __m512 ar = _mm512_set1_ps(a[r]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
        }
        a += 12; b += 32;
    }
}

/// Zeroes the accumulators and starts fetching the C tile (needed only after the loop).
AVX512 static inline __attribute__((always_inline)) void
itune_avx512_begin(__m512 acc[12][2], const float *c, long ldc) {
#pragma clang loop unroll(full)
    for (int r = 0; r < 12; r++) {
        acc[r][0] = _mm512_setzero_ps();
        acc[r][1] = _mm512_setzero_ps();
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 31), _MM_HINT_T0);
    }
}

/// c = alpha · acc + beta · c (beta 0: c is not read).
AVX512 static inline __attribute__((always_inline)) void
itune_avx512_store(__m512 acc[12][2], float *c, long ldc, float alpha, float beta) {
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma clang loop unroll(full)
    for (int r = 0; r < 12; r++) {
        float *row = c + r * ldc;
        if (beta == 0) {
            _mm512_storeu_ps(row, _mm512_mul_ps(va, acc[r][0]));
            _mm512_storeu_ps(row + 16, _mm512_mul_ps(va, acc[r][1]));
        } else {
            _mm512_storeu_ps(row, _mm512_fmadd_ps(va, acc[r][0], _mm512_mul_ps(vb, _mm512_loadu_ps(row))));
            _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(va, acc[r][1], _mm512_mul_ps(vb, _mm512_loadu_ps(row + 16))));
        }
    }
}

AVX512 void itune_sgemm_ukr_avx512_12x32(long kc, const float *a, const float *b, float *c, long ldc,
                                         float alpha, float beta) {
    __m512 acc[12][2];
    itune_avx512_begin(acc, c, ldc);
    itune_avx512_accumulate(acc, kc, a, b);
    itune_avx512_store(acc, c, ldc, alpha, beta);
}

AVX512 void itune_sgemm_ukr2_avx512_12x32(long kc, const float *a, const float *b, long kc2, const float *a2,
                                          const float *b2, float *c, long ldc, float alpha, float beta) {
    __m512 acc[12][2];
    itune_avx512_begin(acc, c, ldc);
    itune_avx512_accumulate(acc, kc, a, b);
    itune_avx512_accumulate(acc, kc2, a2, b2);
    itune_avx512_store(acc, c, ldc, alpha, beta);
}

AVX512 float itune_fma_burst_avx512(long iterations, float seed) {
    __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    __m512 s[24];
#pragma clang loop unroll(full)
    for (int i = 0; i < 24; i++) s[i] = _mm512_set1_ps(seed + (float)i);
    for (long i = 0; i < iterations; i++) {
#pragma clang loop unroll(full)
        for (int j = 0; j < 24; j++) s[j] = _mm512_fmadd_ps(s[j], x, y);
    }
    __m512 t = s[0];
#pragma clang loop unroll(full)
    for (int j = 1; j < 24; j++) t = _mm512_add_ps(t, s[j]);
    return _mm512_reduce_add_ps(t);
}

/// The 4 sums of v[0..3], each over its 16 lanes, in a vector (lane j: v[j]'s sum).
AVX512 static inline __m128 itune_hsum4x16(const __m512 v[4]) {
    __m256 y[4];
    for (int j = 0; j < 4; j++) {
        const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[j]), 1));  // F, not DQ
        y[j] = _mm256_add_ps(_mm512_castps512_ps256(v[j]), hi);
    }
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(y[0], y[1]), _mm256_hadd_ps(y[2], y[3]));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

AVX512 void itune_dot_tile4x4_avx512(const float *a, long lda, long ma, const float *b, long ldb, long nb, long K, float *out,
                                     long ldo) {
    // Missing rows repeat row 0; their sums are not stored.
    const float *ar[4], *br[4];
    for (int i = 0; i < 4; i++) ar[i] = i < ma ? a + i * lda : a;
    for (int j = 0; j < 4; j++) br[j] = j < nb ? b + j * ldb : b;
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    long k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 bv[4];
        for (int j = 0; j < 4; j++) bv[j] = _mm512_loadu_ps(br[j] + k);
        for (int i = 0; i < 4; i++) {
            const __m512 av = _mm512_loadu_ps(ar[i] + k);
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    if (k < K) {
        const __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
        __m512 bv[4];
        for (int j = 0; j < 4; j++) bv[j] = _mm512_maskz_loadu_ps(m, br[j] + k);
        for (int i = 0; i < 4; i++) {
            const __m512 av = _mm512_maskz_loadu_ps(m, ar[i] + k);
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < ma; i++) {
        float row[4];
        _mm_storeu_ps(row, itune_hsum4x16(acc[i]));
        for (int j = 0; j < nb; j++) out[i * ldo + j] = row[j];
    }
}

AVX512 void itune_axpy_tile8x32_avx512(const float *a, long sk, long si, long ma, const float *b, long ldb, long nb, long K,
                                       float alpha, float beta, float *c, long ldc) {
    // Missing rows repeat row 0; their sums are not stored.
    const float *ar[8];
    for (int i = 0; i < 8; i++) ar[i] = a + (i < ma ? i : 0) * si;
    const __mmask16 m0 = nb >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nb) - 1);
    const __mmask16 m1 = nb >= 32 ? (__mmask16)0xFFFF : nb > 16 ? (__mmask16)((1u << (nb - 16)) - 1) : (__mmask16)0;
    __m512 acc[8][2];
    for (int i = 0; i < 8; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (long k = 0; k < K; k++) {
        const float *br = b + k * ldb;
        // b's rows are ldb apart (a few KiB: each row a new page), too far for the streaming
        // prefetchers when b comes from memory: fetch the row 16 ahead.
        _mm_prefetch((const char *)(br + 16 * ldb), _MM_HINT_T0);
        _mm_prefetch((const char *)(br + 16 * ldb + 16), _MM_HINT_T0);
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, br), b1 = _mm512_maskz_loadu_ps(m1, br + 16);
        for (int i = 0; i < 8; i++) {
            const __m512 av = _mm512_set1_ps(ar[i][k * sk]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int i = 0; i < ma; i++) {
        float *cr = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (beta != 0) {  // beta 0: C is not read
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), r1);
        }
        _mm512_mask_storeu_ps(cr, m0, r0);
        _mm512_mask_storeu_ps(cr + 16, m1, r1);
    }
}

// MARK: 16-bit weights, AVX-512

/// 16 values of a 16-bit format at p as f32: bf16 widened and shifted into the high half, f16
/// through vcvtph2ps (AVX512F's zmm form).
AVX512 static inline __m512 itune_load16_w16(int format, const unsigned short *p) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (format == ITUNE_W16_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/// The first n < 16 values at p, zero-padded to 16, as f32.
AVX512 static inline __m512 itune_load_partial16_w16(int format, const unsigned short *p, long n) {
    unsigned short t[16] = {0};
    memcpy(t, p, (size_t)n * sizeof t[0]);
    return itune_load16_w16(format, t);
}

/// 16 lanes: R·M ≤ 24 of the 32 zmm registers (M = 1: 8 rows of B in flight).
ITUNE_GEMV16_BLOCK(AVX512, itune_gemv16_block16, __m512, 16, _mm512_setzero_ps, _mm512_fmadd_ps, _mm512_loadu_ps,
                   itune_load16_w16, itune_load_partial16_w16, _mm512_reduce_add_ps)
ITUNE_GEMV16_ALL(AVX512, itune_gemv16_block16, ITUNE_W16_BF16, itune_gemv16z_bf16, 8, 8, 6, 6, 4, 4, 3, 3)
ITUNE_GEMV16_ALL(AVX512, itune_gemv16_block16, ITUNE_W16_F16, itune_gemv16z_f16, 8, 8, 6, 6, 4, 4, 3, 3)
ITUNE_GEMV16_ENTRY(itune_gemv16_avx512, itune_gemv16z_bf16, itune_gemv16z_f16, 16)

#else  // not x86-64: the x86 kernels are never called (itune_cpu_features has no x86 bits)

void itune_sgemm_ukr_avx2_6x16(long kc, const float *a, const float *b, float *c, long ldc,
                               float alpha, float beta) {
    (void)kc; (void)a; (void)b; (void)c; (void)ldc; (void)alpha; (void)beta;
}
void itune_sgemm_ukr2_avx2_6x16(long kc, const float *a, const float *b, long kc2, const float *a2,
                                const float *b2, float *c, long ldc, float alpha, float beta) {
    (void)kc; (void)a; (void)b; (void)kc2; (void)a2; (void)b2; (void)c; (void)ldc; (void)alpha; (void)beta;
}
void itune_sgemm_ukr_avx512_12x32(long kc, const float *a, const float *b, float *c, long ldc,
                                  float alpha, float beta) {
    (void)kc; (void)a; (void)b; (void)c; (void)ldc; (void)alpha; (void)beta;
}
void itune_sgemm_ukr2_avx512_12x32(long kc, const float *a, const float *b, long kc2, const float *a2,
                                   const float *b2, float *c, long ldc, float alpha, float beta) {
    (void)kc; (void)a; (void)b; (void)kc2; (void)a2; (void)b2; (void)c; (void)ldc; (void)alpha; (void)beta;
}
void itune_dot_tile4x4_avx512(const float *a, long lda, long ma, const float *b, long ldb, long nb, long K, float *out,
                              long ldo) {
    (void)a; (void)lda; (void)ma; (void)b; (void)ldb; (void)nb; (void)K; (void)out; (void)ldo;
}
void itune_axpy_tile8x32_avx512(const float *a, long sk, long si, long ma, const float *b, long ldb, long nb, long K,
                                float alpha, float beta, float *c, long ldc) {
    (void)a; (void)sk; (void)si; (void)ma; (void)b; (void)ldb; (void)nb; (void)K; (void)alpha; (void)beta; (void)c; (void)ldc;
}
float itune_fma_burst_avx2(long iterations, float seed) { (void)iterations; return seed; }
float itune_fma_burst_avx512(long iterations, float seed) { (void)iterations; return seed; }
void itune_dot_rows4_avx2(const float *x, const float *b, long ldb, long count, long K, float *out) {
    (void)x; (void)b; (void)ldb; (void)count; (void)K; (void)out;
}
void itune_axpy4_avx2(float *acc, long n, const float *b0, const float *b1, const float *b2,
                      const float *b3, float x0, float x1, float x2, float x3) {
    (void)acc; (void)n; (void)b0; (void)b1; (void)b2; (void)b3; (void)x0; (void)x1; (void)x2; (void)x3;
}
void itune_gemv16_avx2(int format, long m, long n, long k, float alpha, const float *a, long lda,
                       const unsigned short *b, long ldb, float beta, float *c, long ldc) {
    (void)format; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; (void)beta;
    (void)c; (void)ldc;
}
void itune_w16_to_f32_avx2(int format, const unsigned short *src, long n, float *dst) {
    (void)format; (void)src; (void)n; (void)dst;
}
void itune_pack_w16_rows8_avx2(int format, const unsigned short *src, long lds, long kc, float *dst, long ldd) {
    (void)format; (void)src; (void)lds; (void)kc; (void)dst; (void)ldd;
}
void itune_pack_f32_rows8_avx2(const float *src, long lds, long kc, float *dst, long ldd) {
    (void)src; (void)lds; (void)kc; (void)dst; (void)ldd;
}
void itune_pack_f32_rows_avx2(const float *src, long lds, long rows, long kc, float *dst, long ldd) {
    (void)src; (void)lds; (void)rows; (void)kc; (void)dst; (void)ldd;
}
void itune_gemv16_avx512(int format, long m, long n, long k, float alpha, const float *a, long lda,
                         const unsigned short *b, long ldb, float beta, float *c, long ldc) {
    (void)format; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; (void)beta;
    (void)c; (void)ldc;
}
#endif
