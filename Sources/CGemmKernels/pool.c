// The CPU path's worker threads (CPUParallel.run). Dispatch's concurrentPerform parks its
// workers as soon as a call ends, and waking a parked thread is slow where the OS must first
// wake an idle CPU: on a 2-vCPU cloud VM (Ice Lake, 2026-12-01) a concurrentPerform of two
// 100 µs halves took 159 µs, a worker starting 22 µs late and the caller waking late again at
// the end. Decoding a token of a 0.5B model is 169 such calls of 50–300 µs. Here the workers
// stay awake for a while after each call (spinning on a counter, as OpenMP runtimes and ggml's
// thread pool do), then park; the calling thread takes items too, and any item not yet
// started when a worker is slow to wake is taken by whoever is free, so a late worker costs
// no waiting.
//
// Protocol: `generation` is odd while a call's items are open. The caller writes the call's
// fields while the generation is even and no worker is inside a call (`active` 0), then makes
// the generation odd. A worker counts itself into `active` before it reads the generation,
// and reads the fields only when it finds a new odd one, so the caller cannot rewrite the fields
// under it. The caller waits for every item to finish, closes the call (even), then waits for
// `active` to drain.
#include "CGemmKernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define ITUNE_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define ITUNE_PAUSE() __asm__ __volatile__("yield")
#else
#define ITUNE_PAUSE() ((void)0)
#endif

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_mutex_t start_lock;
    _Atomic unsigned long generation;
    _Atomic long next, done, active, sleepers;
    _Atomic int busy, started;
    itune_pool_fn fn;
    void *ctx;
    long count;
    long spin_ns;
    int workers;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};

static long itune_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

static int itune_pool_open(unsigned long g, unsigned long seen) { return (g & 1) && g != seen; }

static void itune_pool_take(itune_pool_fn fn, void *ctx, long count) {
    long i;
    while ((i = atomic_fetch_add(&pool.next, 1)) < count) {
        fn(ctx, i);
        atomic_fetch_add(&pool.done, 1);
    }
}

static void *itune_pool_worker(void *arg) {
    (void)arg;
    unsigned long seen = 0;
    for (;;) {
        if (!itune_pool_open(atomic_load(&pool.generation), seen)) {
            // Spin for spin_ns, then park until a call opens.
            const long until = itune_now_ns() + pool.spin_ns;
            int found = 0;
            while (!found && itune_now_ns() < until) {
                for (int k = 0; k < 16 && !found; k++) {
                    ITUNE_PAUSE();
                    found = itune_pool_open(atomic_load(&pool.generation), seen);
                }
            }
            if (!found) {
                pthread_mutex_lock(&pool.lock);
                atomic_fetch_add(&pool.sleepers, 1);
                while (!itune_pool_open(atomic_load(&pool.generation), seen)) pthread_cond_wait(&pool.wake, &pool.lock);
                atomic_fetch_sub(&pool.sleepers, 1);
                pthread_mutex_unlock(&pool.lock);
            }
        }
        atomic_fetch_add(&pool.active, 1);
        const unsigned long g = atomic_load(&pool.generation);
        if (itune_pool_open(g, seen)) {
            itune_pool_take(pool.fn, pool.ctx, pool.count);
            seen = g;
        }
        atomic_fetch_sub(&pool.active, 1);
    }
    return NULL;
}

/// Starts the workers once (threads − 1 of them). Returns whether there are any.
static int itune_pool_start(int threads, long spin_ns) {
    if (atomic_load(&pool.started)) return pool.workers > 0;
    pthread_mutex_lock(&pool.start_lock);
    if (!atomic_load(&pool.started)) {
        pool.spin_ns = spin_ns;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int made = 0;
        for (int t = 1; t < threads; t++) {
            pthread_t thread;
            if (pthread_create(&thread, &attr, itune_pool_worker, NULL) == 0) made++;
        }
        pthread_attr_destroy(&attr);
        pool.workers = made;
        atomic_store(&pool.started, 1);
    }
    pthread_mutex_unlock(&pool.start_lock);
    return pool.workers > 0;
}

int itune_pool_run(long count, itune_pool_fn fn, void *ctx, int threads, long spin_ns) {
    if (count <= 0) return 1;
    if (threads < 2 || !itune_pool_start(threads, spin_ns)) return 0;
    int expected = 0;
    // In use (a call from inside an item, or from another thread): the caller runs it elsewhere.
    if (!atomic_compare_exchange_strong(&pool.busy, &expected, 1)) return 0;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.count = count;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.done, 0);
    atomic_fetch_add(&pool.generation, 1);  // odd: open
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    itune_pool_take(fn, ctx, count);
    while (atomic_load(&pool.done) < count) ITUNE_PAUSE();
    atomic_fetch_add(&pool.generation, 1);  // even: closed
    while (atomic_load(&pool.active) > 0) ITUNE_PAUSE();
    atomic_store(&pool.busy, 0);
    return 1;
}
