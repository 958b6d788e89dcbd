/* Worker threads for the CPU kernels and the runtime's host sampling: one
 * process-wide pool that runs a range of independent items in chunks, the
 * calling thread taking part.
 *
 * Why not OpenMP: a parallel region ends in a barrier that waits for every
 * thread of the team, so when another process holds one of the cores, each
 * region waits for the descheduled worker's time slice, and libgomp's
 * default 300k-iteration spin keeps the waiting core busy meanwhile. On the
 * 2-core VM with a busy loop on one core, demo-model decode with 2 threads
 * ran at 0.4-0.5x of one thread (510-670 against 1,200-1,400 tokens/s),
 * and at 13-60 tokens/s while compilers loaded both cores. Here each thread
 * first takes the chunks of its own share (the same static split as before,
 * so weights stay with the thread that read them last token), then takes
 * those of any thread that has not started them: the caller waits only for
 * chunks already running, never for a thread that is not running. When
 * threads still lose their cores (a chunk held by a descheduled worker, a
 * preempted caller, workers that get no chunks), the pool runs one thread
 * fewer for 10 ms, doubling up to 1 s while the next try fails. Workers
 * spin 200 µs for the next job, then sleep on a futex.
 *
 * The thread count is the calling thread's OpenMP ICV (omp_get_max_threads:
 * the backend and the tests set it with omp_set_num_threads). */
#ifndef LLMRT_BACKENDS_LLMRT_POOL_H
#define LLMRT_BACKENDS_LLMRT_POOL_H

#include <stdint.h>

/* Items [begin, end) of a range; ctx is the caller's. */
typedef void llmrt_range_fn(void *ctx, int64_t begin, int64_t end);

/* Calls fn over [0, n) in chunks of `chunk` items (the last one ends at
 * n), on up to omp_get_max_threads() threads; with `parallel` 0, or one
 * thread, or n ≤ chunk, as one call fn(ctx, 0, n) on the caller. Returns
 * when every chunk is done. fn must give the same result however the range
 * is cut at multiples of chunk. A call made while the pool is busy (from
 * inside fn, or from a second thread) runs on its caller alone. */
void llmrt_parallel_for(int64_t n, int64_t chunk, int parallel, llmrt_range_fn *fn, void *ctx);

/* A chunk size for n items on the calling thread's thread count: about
 * LLMRT_POOL_CHUNKS_PER_THREAD chunks a thread, so that the others can take
 * over most of a stalled thread's share; a multiple of `align`. */
int64_t llmrt_parallel_chunk(int64_t n, int64_t align);

#endif
