// Few-row products with a blockwise-quantised weight (see include/CGemmKernels.h): what decoding
// a token from an nf4 or int8 base runs. y (m, n) = x (m, K) · Wᵀ for rows n0..<n1 of W, W the
// (N, K) weight in blocks of 64 consecutive values of its row-major flat index, K a multiple of
// 64 (so every block lies in one row). Each block's codes are turned into f32 in registers and
// used for all m rows of x before the next block is read: the weight is streamed once, at one
// byte (int8) or half a byte (nf4) a value, which is what bounds decoding on a CPU.
#include "CGemmKernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "avx2_helpers.h"

/// The absmax of block b: the f32 constant, or under double quantisation its 8-bit code
/// restored as BlockQuantized.swift restores it (c / 127 · second[b / 256] + offset).
static inline float itune_block_scale(const float *absmax, const int8_t *scale_codes, const float *second, float offset,
                                      long b) {
    if (absmax) return absmax[b];
    return (float)scale_codes[b] / 127.0f * second[b / 256] + offset;
}

/// Eight NormalFloat4 values from 8 indices (0...15) in the low nibbles of 8 i32 lanes.
AVX2 static inline __m256 itune_nf4_lookup8(__m256i idx, __m256 book_lo, __m256 book_hi) {
    __m256 lo = _mm256_permutevar8x32_ps(book_lo, idx), hi = _mm256_permutevar8x32_ps(book_hi, idx);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

/// How far ahead of the block being read the codes are prefetched. W streams from memory once
/// per token (rows of 896 bytes at Qwen2.5-0.5B's K = 896, a new 4 KiB page every few rows,
/// where the hardware prefetchers stop and learn again). On the 2-vCPU Ice Lake VM (2026-12-01,
/// a 4.4 MB matrix from memory, alternated three times) the int8 GEMV read 6.8–7.0 GB/s on one
/// thread and 9.3–9.5 on two without it, 9.3–9.7 and 12.2–14.4 with 4 KiB.
#define ITUNE_QUANT_PREFETCH 4096

/// The widest K the int8 path takes (its 16-bit copy of x lives on the stack: m rows × K × 2 bytes
/// plus a scale vector per block and row, 40 KiB a row at this K); wider rows take the f32 path.
#define ITUNE_Q16_MAX_K 16384

/// int8 weights times x rounded to 16 bits per block of 64 (scale: the block's absmax / 32767), in
/// integer multiply-adds: per 64 weights four sign extensions and, per row, four vpmaddwd, three
/// adds, one conversion and one FMA (the f32 path: sixteen conversions, then twelve vector
/// operations a row). The rounding of x adds at most absmax_b(x) / 65534 · Σ|w| to a block's
/// dot product: its step is 1/258 of the weights' own (1/32767 of the block's absmax, against
/// 1/127). Blocks of x whose absmax is below 1e-30 count as zero (their 16-bit scale would
/// overflow); they add less than 64 · 1e-30 · max|w| each.
/// Sums stay in 32 bits: a lane adds 8 products of at most 127 · 32767.
AVX2 static void itune_gemv_int8_x16(const float *x, long ldx, long m, const int8_t *codes, const float *absmax,
                                     const int8_t *scale_codes, const float *second, float offset, long K,
                                     long n0, long n1, float *y, long ldy) {
    const long blocks = K / 64;
    int16_t xq[m * K];          // row r at r · K
    float xs[m * blocks * 8];   // the scale of row r, block b, in 8 lanes at (r · blocks + b) · 8
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (long r = 0; r < m; r++) {
        for (long b = 0; b < blocks; b++) {
            const float *xr = x + r * ldx + b * 64;
            __m256 amax = _mm256_setzero_ps();
            for (int q = 0; q < 8; q++) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(xr + 8 * q)));
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
            const float a = _mm_cvtss_f32(h);
            // NaN or inf in x: no 16-bit copy can carry it; the caller's f32 path does.
            const float inv = a > 1e-30f ? 32767.0f / a : 0.0f;
            const __m256 vinv = _mm256_set1_ps(inv);
            for (int q = 0; q < 4; q++) {
                __m256i lo = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + 16 * q), vinv));
                __m256i hi = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + 16 * q + 8), vinv));
                // packs works per 128-bit lane (0-3 8-11 4-7 12-15): put the quarters back in order.
                __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
                _mm256_storeu_si256((__m256i *)(xq + r * K + b * 64 + 16 * q), packed);
            }
            _mm256_storeu_ps(xs + (r * blocks + b) * 8, _mm256_set1_ps(a / 32767.0f));
        }
    }
    for (long n = n0; n < n1; n++) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (long b = 0; b < blocks; b++) {
            const int8_t *w = codes + n * K + b * 64;
            _mm_prefetch((const char *)(w + ITUNE_QUANT_PREFETCH), _MM_HINT_T0);  // never faults
            const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
            const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 16)));
            const __m256i w2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 32)));
            const __m256i w3 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 48)));
            // as the host dequantises: code · (absmax / 127)
            const __m256 ws = _mm256_set1_ps(itune_block_scale(absmax, scale_codes, second, offset, (n * K) / 64 + b) / 127.0f);
            for (long r = 0; r < m; r++) {
                const int16_t *xr = xq + r * K + b * 64;
                __m256i d = _mm256_madd_epi16(w0, _mm256_loadu_si256((const __m256i *)xr));
                d = _mm256_add_epi32(d, _mm256_madd_epi16(w1, _mm256_loadu_si256((const __m256i *)(xr + 16))));
                d = _mm256_add_epi32(d, _mm256_madd_epi16(w2, _mm256_loadu_si256((const __m256i *)(xr + 32))));
                d = _mm256_add_epi32(d, _mm256_madd_epi16(w3, _mm256_loadu_si256((const __m256i *)(xr + 48))));
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(d), _mm256_loadu_ps(xs + (r * blocks + b) * 8)), ws, acc[r]);
            }
        }
        for (long r = 0; r < m; r++) y[r * ldy + n] = itune_hsum8(acc[r]);
    }
}

/// Whether the m rows of x (K values each) are all finite.
AVX2 static int itune_rows_finite(const float *x, long ldx, long m, long K) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 bad = zero;
    for (long r = 0; r < m; r++) {
        for (long k = 0; k + 8 <= K; k += 8) {
            __m256 v = _mm256_loadu_ps(x + r * ldx + k);
            // v − v is 0 for finite v, NaN for ±inf and NaN.
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_sub_ps(v, v), zero, _CMP_NEQ_UQ));
        }
    }
    return _mm256_movemask_ps(bad) == 0;
}

AVX2 void itune_gemv_quant_avx2(int format, const float *x, long ldx, long m, const uint8_t *codes, const float *absmax,
                                const int8_t *scale_codes, const float *second, float offset, const float *book, long K,
                                long n0, long n1, float *y, long ldy) {
    if (m < 1 || m > 4) return;
    if (format == 2 && K <= ITUNE_Q16_MAX_K && itune_rows_finite(x, ldx, m, K)) {
        itune_gemv_int8_x16(x, ldx, m, (const int8_t *)codes, absmax, scale_codes, second, offset, K, n0, n1, y, ldy);
        return;
    }
    const __m256 book_lo = _mm256_loadu_ps(book), book_hi = _mm256_loadu_ps(book + 8);
    const long blocks = K / 64;
    for (long n = n0; n < n1; n++) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (long b = 0; b < blocks; b++) {
            const long flat = n * K + b * 64;
            _mm_prefetch((const char *)(codes + (format == 1 ? flat / 2 : flat) + ITUNE_QUANT_PREFETCH), _MM_HINT_T0);
            __m256 w[8];
            if (format == 1) {  // nf4: 32 bytes, the first value of each in the high nibble
                __m256i bytes = _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(codes + flat / 2)));
                bytes = _mm256_inserti128_si256(bytes, _mm_loadu_si128((const __m128i *)(codes + flat / 2 + 16)), 1);
                const __m256i mask = _mm256_set1_epi8(15);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask), lo = _mm256_and_si256(bytes, mask);
                // In value order: hi0 lo0 hi1 lo1 … (per 128-bit lane: values 0-15 | 16-31 of each half)
                __m256i a = _mm256_unpacklo_epi8(hi, lo), c = _mm256_unpackhi_epi8(hi, lo);
                // a: values 0-15 (lane 0) and 32-47 (lane 1); c: 16-31 and 48-63.
                __m128i v[4] = {_mm256_castsi256_si128(a), _mm256_castsi256_si128(c), _mm256_extracti128_si256(a, 1),
                                _mm256_extracti128_si256(c, 1)};
                for (int q = 0; q < 4; q++) {
                    w[2 * q] = itune_nf4_lookup8(_mm256_cvtepu8_epi32(v[q]), book_lo, book_hi);
                    w[2 * q + 1] = itune_nf4_lookup8(_mm256_cvtepu8_epi32(_mm_srli_si128(v[q], 8)), book_lo, book_hi);
                }
            } else {  // int8: 64 bytes, each code / 127 of the absmax
                for (int q = 0; q < 8; q++) {
                    __m128i c8 = _mm_loadl_epi64((const __m128i *)(codes + flat + 8 * q));
                    w[q] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c8));
                }
            }
            float s = itune_block_scale(absmax, scale_codes, second, offset, flat / 64);
            if (format != 1) s /= 127.0f;  // as the host dequantises: code · (absmax / 127)
            const __m256 scale = _mm256_set1_ps(s);
            for (long r = 0; r < m; r++) {
                // Four independent partial sums: one chain of eight FMAs would wait on their latency.
                const float *xr = x + r * ldx + b * 64;
                __m256 p0 = _mm256_mul_ps(w[0], _mm256_loadu_ps(xr)), p1 = _mm256_mul_ps(w[1], _mm256_loadu_ps(xr + 8));
                __m256 p2 = _mm256_mul_ps(w[2], _mm256_loadu_ps(xr + 16)), p3 = _mm256_mul_ps(w[3], _mm256_loadu_ps(xr + 24));
                p0 = _mm256_fmadd_ps(w[4], _mm256_loadu_ps(xr + 32), p0);
                p1 = _mm256_fmadd_ps(w[5], _mm256_loadu_ps(xr + 40), p1);
                p2 = _mm256_fmadd_ps(w[6], _mm256_loadu_ps(xr + 48), p2);
                p3 = _mm256_fmadd_ps(w[7], _mm256_loadu_ps(xr + 56), p3);
                acc[r] = _mm256_fmadd_ps(_mm256_add_ps(_mm256_add_ps(p0, p1), _mm256_add_ps(p2, p3)), scale, acc[r]);
            }
        }
        for (long r = 0; r < m; r++) y[r * ldy + n] = itune_hsum8(acc[r]);
    }
}

// MARK: runs of dequantised values (the training step's packing of a quantised B)

/// The absmax of block b exactly as BlockQuantized.swift restores it: c / 127 · second + offset
/// in two roundings, never fused into one (Swift does not contract; the C default would).
static inline float itune_block_scale_exact(const float *absmax, const int8_t *scale_codes, const float *second,
                                            float offset, long b) {
#pragma STDC FP_CONTRACT OFF
    if (absmax) return absmax[b];
    const float t = (float)scale_codes[b] / 127.0f * second[b / 256];
    return t + offset;
}

/// The i32 lanes 2j and 2j + 1 hold byte j >> 4 and byte j itself of the bytes zero-extended
/// into 64-bit lanes `t`: lookups that read the low 4 bits of a lane (vpermps; vpermps + a blend
/// on bit 3 at 8 lanes) then see the high nibble, then the low one — values in flat order.
#define ITUNE_NF4_SPLIT(SRLI, SLLI, OR, t) OR(SRLI(t, 4), SLLI(t, 32))

/// One dequantiser over a run, per block: the scalar head and tail of BlockQuantized.swift's loop,
/// LANES values at a time between them (NF4_LANES / INT8_LANES: the vector body's statements).
#define ITUNE_DEQUANT_RUN(LANES, SETUP, NF4_LANES, INT8_LANES)                                              \
    long i = start;                                                                                         \
    const long end = start + count;                                                                         \
    SETUP                                                                                                   \
    while (i < end) {                                                                                       \
        const long b = i / 64, bend = end < (b + 1) * 64 ? end : (b + 1) * 64;                             \
        const float s = itune_block_scale_exact(absmax, scale_codes, second, offset, b);                    \
        if (format == 1) {                                                                                  \
            if (i < bend && (i & 1)) { *dst++ = book[codes[i >> 1] & 15] * s; i++; }                        \
            for (; i + LANES <= bend; i += LANES, dst += LANES) { NF4_LANES }                               \
            for (; i < bend; i++) {                                                                         \
                const uint8_t byte = codes[i >> 1];                                                         \
                *dst++ = book[(i & 1) ? (byte & 15) : (byte >> 4)] * s;                                     \
            }                                                                                               \
        } else {                                                                                            \
            const float k = s / 127.0f;                                                                     \
            for (; i + LANES <= bend; i += LANES, dst += LANES) { INT8_LANES }                              \
            for (; i < bend; i++) *dst++ = (float)(int8_t)codes[i] * k;                                     \
        }                                                                                                   \
    }

AVX2 void itune_dequant_avx2(int format, const uint8_t *codes, const float *absmax, const int8_t *scale_codes,
                             const float *second, float offset, const float *book, long start, long count,
                             float *dst) {
    ITUNE_DEQUANT_RUN(8,
        const __m256 book_lo = _mm256_loadu_ps(book); const __m256 book_hi = _mm256_loadu_ps(book + 8);,
        {
            int32_t four;
            memcpy(&four, codes + (i >> 1), 4);
            const __m256i t = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four));
            const __m256i idx = ITUNE_NF4_SPLIT(_mm256_srli_epi64, _mm256_slli_epi64, _mm256_or_si256, t);
            _mm256_storeu_ps(dst, _mm256_mul_ps(itune_nf4_lookup8(idx, book_lo, book_hi), _mm256_set1_ps(s)));
        },
        {
            const __m256i w = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(codes + i)));
            _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(w), _mm256_set1_ps(k)));
        })
}

#define AVX512Q __attribute__((target("avx512f")))

AVX512Q void itune_dequant_avx512(int format, const uint8_t *codes, const float *absmax, const int8_t *scale_codes,
                                  const float *second, float offset, const float *book, long start, long count,
                                  float *dst) {
    ITUNE_DEQUANT_RUN(16,
        const __m512 book16 = _mm512_loadu_ps(book);,
        {
            const __m512i t = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(codes + (i >> 1))));
            const __m512i idx = ITUNE_NF4_SPLIT(_mm512_srli_epi64, _mm512_slli_epi64, _mm512_or_si512, t);
            _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_permutexvar_ps(idx, book16), _mm512_set1_ps(s)));
        },
        {
            const __m512i w = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(codes + i)));
            _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(w), _mm512_set1_ps(k)));
        })
}

/// itune_gemv_quant_avx2 with nf4's blocks turned into f32 16 lanes at a time: four vpermps
/// lookups a block (the 8-lane lookup takes two permutes and a blend per 8 values), then four
/// 16-lane multiply-adds a row. nf4 decoding was bound by its lookups, not by memory (13.0
/// tokens/s against int8's 26.2 at twice the bytes, Qwen2.5-0.5B, Ice Lake). int8 keeps the
/// AVX2 function: at 512 bits its integer path gained nothing (bench-results/generate-2026-12-01-icelake).
AVX512Q void itune_gemv_quant_avx512(int format, const float *x, long ldx, long m, const uint8_t *codes,
                                     const float *absmax, const int8_t *scale_codes, const float *second, float offset,
                                     const float *book, long K, long n0, long n1, float *y, long ldy) {
    if (format != 1 || m < 1 || m > 4) {
        itune_gemv_quant_avx2(format, x, ldx, m, codes, absmax, scale_codes, second, offset, book, K, n0, n1, y, ldy);
        return;
    }
    const __m512 book16 = _mm512_loadu_ps(book);
    const long blocks = K / 64;
    for (long n = n0; n < n1; n++) {
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (long b = 0; b < blocks; b++) {
            const long flat = n * K + b * 64;
            const uint8_t *c = codes + flat / 2;
            _mm_prefetch((const char *)(c + ITUNE_QUANT_PREFETCH), _MM_HINT_T0);  // never faults
            __m512 w[4];
            for (int q = 0; q < 4; q++) {
                const __m512i t = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(c + 8 * q)));
                w[q] = _mm512_permutexvar_ps(ITUNE_NF4_SPLIT(_mm512_srli_epi64, _mm512_slli_epi64, _mm512_or_si512, t), book16);
            }
            const __m512 scale = _mm512_set1_ps(itune_block_scale(absmax, scale_codes, second, offset, flat / 64));
            for (long r = 0; r < m; r++) {
                // Two independent partial sums, as the 8-lane loop keeps four.
                const float *xr = x + r * ldx + b * 64;
                __m512 p0 = _mm512_mul_ps(w[0], _mm512_loadu_ps(xr)), p1 = _mm512_mul_ps(w[1], _mm512_loadu_ps(xr + 16));
                p0 = _mm512_fmadd_ps(w[2], _mm512_loadu_ps(xr + 32), p0);
                p1 = _mm512_fmadd_ps(w[3], _mm512_loadu_ps(xr + 48), p1);
                acc[r] = _mm512_fmadd_ps(_mm512_add_ps(p0, p1), scale, acc[r]);
            }
        }
        for (long r = 0; r < m; r++) y[r * ldy + n] = _mm512_reduce_add_ps(acc[r]);
    }
}
#undef ITUNE_DEQUANT_RUN
#undef ITUNE_NF4_SPLIT

#else  // not x86-64: never called (itune_cpu_features has no x86 bits)

void itune_gemv_quant_avx2(int format, const float *x, long ldx, long m, const uint8_t *codes, const float *absmax,
                           const int8_t *scale_codes, const float *second, float offset, const float *book, long K,
                           long n0, long n1, float *y, long ldy) {
    (void)format; (void)x; (void)ldx; (void)m; (void)codes; (void)absmax; (void)scale_codes; (void)second; (void)offset;
    (void)book; (void)K; (void)n0; (void)n1; (void)y; (void)ldy;
}

void itune_dequant_avx2(int format, const uint8_t *codes, const float *absmax, const int8_t *scale_codes,
                        const float *second, float offset, const float *book, long start, long count, float *dst) {
    (void)format; (void)codes; (void)absmax; (void)scale_codes; (void)second; (void)offset; (void)book; (void)start;
    (void)count; (void)dst;
}

void itune_dequant_avx512(int format, const uint8_t *codes, const float *absmax, const int8_t *scale_codes,
                          const float *second, float offset, const float *book, long start, long count, float *dst) {
    itune_dequant_avx2(format, codes, absmax, scale_codes, second, offset, book, start, count, dst);
}

void itune_gemv_quant_avx512(int format, const float *x, long ldx, long m, const uint8_t *codes, const float *absmax,
                             const int8_t *scale_codes, const float *second, float offset, const float *book, long K,
                             long n0, long n1, float *y, long ldy) {
    itune_gemv_quant_avx2(format, x, ldx, m, codes, absmax, scale_codes, second, offset, book, K, n0, n1, y, ldy);
}
#endif
