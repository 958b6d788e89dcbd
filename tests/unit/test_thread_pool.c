/* The CPU kernels' thread pool: every item runs exactly once, chunks are
 * cut where the caller asked, nested and concurrent calls fall back to the
 * caller, and slow chunks (a worker losing its core) change nothing but
 * the time. Run under ThreadSanitizer as well. */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/thread_pool.h"
#include "test_util.h"

typedef struct count_job {
    _Atomic int *hits;   /* [n] */
    int64_t n, chunk;
    _Atomic int bad_bounds;
    int sleep_every;     /* > 0: chunks whose index is a multiple sleep 1 ms */
} count_job;

static void count_chunk(void *ctx, int64_t begin, int64_t end) {
    count_job *j = ctx;
    /* one chunk, or the whole range on one thread */
    const int whole = begin == 0 && end == j->n;
    if (!whole && (begin % j->chunk != 0 || (end != j->n && end - begin != j->chunk) || end > j->n || begin >= end))
        atomic_fetch_add(&j->bad_bounds, 1);
    if (j->sleep_every > 0 && (begin / j->chunk) % j->sleep_every == 0) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    for (int64_t i = begin; i < end; i++) atomic_fetch_add_explicit(&j->hits[i], 1, memory_order_relaxed);
}

/* Runs [0, n) in chunks; 1 if every item ran once and every chunk's bounds
 * were right. */
static int run_count(int64_t n, int64_t chunk, int parallel, int sleep_every) {
    count_job job = {.hits = calloc((size_t)n + 1, sizeof(_Atomic int)), .n = n, .chunk = chunk,
                     .sleep_every = sleep_every};
    llmrt_parallel_for(n, chunk, parallel, count_chunk, &job);
    int ok = atomic_load(&job.bad_bounds) == 0;
    for (int64_t i = 0; i < n; i++) ok &= atomic_load(&job.hits[i]) == 1;
    free(job.hits);
    return ok;
}

static void test_every_item_once(void) {
    static const int64_t sizes[][2] = {{1, 1}, {7, 1}, {64, 16}, {1000, 64}, {1001, 64}, {5, 100}, {100000, 3}};
    for (int threads = 1; threads <= 4; threads++) {
        omp_set_num_threads(threads);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int parallel = 0; parallel < 2; parallel++)
                CHECK_MSG(run_count(sizes[s][0], sizes[s][1], parallel, 0), "n %lld chunk %lld threads %d",
                          (long long)sizes[s][0], (long long)sizes[s][1], threads);
    }
    omp_set_num_threads(2);
    llmrt_parallel_for(0, 1, 1, count_chunk, NULL); /* nothing to do: fn is not called */
}

static void test_chunk_size(void) {
    omp_set_num_threads(2);
    CHECK(llmrt_parallel_chunk(256, 16) % 16 == 0);
    CHECK(llmrt_parallel_chunk(256, 16) >= 16);
    CHECK(llmrt_parallel_chunk(3, 64) == 64);
    CHECK(llmrt_parallel_chunk(1000, 1) >= 1000 / 8);
}

/* Thousands of small jobs back to back: workers catch jobs while spinning,
 * and a late one must not touch the next job. */
static void test_many_jobs(void) {
    omp_set_num_threads(3);
    int ok = 1;
    for (int i = 0; i < 3000 && ok; i++) ok &= run_count(64 + i % 50, 8, 1, 0);
    CHECK(ok);
}

/* Slow chunks make the caller wait and lower the thread count for a
 * while; results stay whole, and later jobs still complete. */
static void test_slow_chunks(void) {
    omp_set_num_threads(2);
    int ok = 1;
    for (int i = 0; i < 20; i++) ok &= run_count(64, 4, 1, 3);
    for (int i = 0; i < 200; i++) ok &= run_count(256, 16, 1, 0);
    CHECK(ok);
}

typedef struct nested_job {
    _Atomic int inner_ok, outer_items;
} nested_job;

static void nested_chunk(void *ctx, int64_t begin, int64_t end) {
    nested_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        atomic_fetch_add(&j->outer_items, 1);
        if (run_count(100, 10, 1, 0)) atomic_fetch_add(&j->inner_ok, 1);
    }
}

static void test_nested(void) {
    omp_set_num_threads(2);
    nested_job job = {0};
    llmrt_parallel_for(8, 1, 1, nested_chunk, &job);
    CHECK(atomic_load(&job.outer_items) == 8);
    CHECK(atomic_load(&job.inner_ok) == 8);
}

static void *concurrent_caller(void *arg) {
    omp_set_num_threads(2);
    int *ok = arg;
    for (int i = 0; i < 500; i++) *ok &= run_count(333, 16, 1, 0);
    return NULL;
}

static void test_concurrent_callers(void) {
    pthread_t threads[3];
    int ok[3] = {1, 1, 1};
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, concurrent_caller, &ok[i]);
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    CHECK(ok[0] && ok[1] && ok[2]);
}

int main(void) {
    RUN_TEST(test_every_item_once);
    RUN_TEST(test_chunk_size);
    RUN_TEST(test_many_jobs);
    RUN_TEST(test_slow_chunks);
    RUN_TEST(test_nested);
    RUN_TEST(test_concurrent_callers);
    return test_finish();
}
