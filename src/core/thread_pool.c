/* The kernels' thread pool (see thread_pool.h for why it exists).
 *
 * A job is n items cut into chunks. Participant p (0 is the caller, p ≥ 1
 * worker p) owns chunks [p·C/t, (p+1)·C/t) and claims them from its cursor;
 * when its own run out it claims from the others' cursors in turn. A cursor
 * is one 64-bit word, next chunk in the high half and end in the low half,
 * claimed by fetch_add, so a claim needs nothing else of the job: a worker
 * that wakes late and finds every cursor at its end does nothing, and one
 * that claims a chunk holds the job open (done < chunks) until it finishes,
 * so the job's fields it reads after claiming cannot change under it.
 *
 * Waiting: a worker spins on `wake_seq` for WORKER_SPIN_NS after its last
 * chunk (decode steps issue regions a few µs apart, and a futex wake costs
 * the caller ~2 µs and the worker far more), then sleeps on it. The caller,
 * once nothing is left to claim, spins CALLER_SPIN_NS for running chunks
 * and then sleeps on `done`: a sleeping caller frees its core for the
 * worker it waits for, where spinning would keep that worker off it. */
#define _GNU_SOURCE /* syscall */
#include "core/thread_pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#define POOL_MAX_THREADS 256
#define WORKER_SPIN_NS 200000
#define CALLER_SPIN_NS 20000
/* A job whose caller, its own chunks done, waits longer than it computed
 * plus STALL_SLACK_NS waited for a worker that lost its core mid-chunk. A
 * neighbour's time slice is milliseconds; a quiet VM's vCPU also pauses for
 * a few hundred µs now and then, and at a 100 µs slack those pauses alone
 * sent the quiet demo decode to one thread for half its jobs (780 against
 * 1,100-1,500 tokens/s). */
#define STALL_SLACK_NS 500000
#define BACKOFF_MIN_NS 10000000LL
#define BACKOFF_MAX_NS 1000000000LL
/* Jobs over which the workers' share of the chunks and the caller's lost
 * time are checked: workers under a quarter of their even share, or a
 * caller that waited for a core (the scheduler's run delay,
 * /proc/thread-self/schedstat) more than 1/LOST_SHARE of the window's wall
 * time, lower the cap as a stall does. A caller that shares its core with
 * another process waits half the time while its worker, spinning alone on
 * the other core, takes over its chunks: neither of the other signals
 * fires, yet decode ran at 0.8x of one thread. Counting the caller's
 * preemptions instead (4 a window) also fired for the server's HTTP
 * threads, each of which takes the core for tens of µs a token: the
 * served demo model ran on one thread, 0.55-0.62x of the in-process bench.
 * Without schedstat, PREEMPT_LIMIT switches per WINDOW_JOBS jobs stand in
 * for it.
 * A window is also at least WINDOW_MIN_NS long: 64 decode jobs of the demo
 * model are ~0.3 ms, less than a token, and the server's HTTP thread and a
 * local client, 20-40 µs on a core a token each, still made a window look
 * like a neighbour now and then, each time 10 ms or more on one thread
 * (doubling as it recurred: the served model ran single-threaded for up to
 * three quarters of its job time); over 10 ms they are under a tenth of
 * the caller's time, and a neighbour that takes turns on a core (slices
 * of milliseconds) still shows. */
#define WINDOW_JOBS 64
#define WINDOW_MIN_NS 10000000LL
#define LOST_SHARE 4
#define PREEMPT_LIMIT 4
/* Jobs not counted after threads are started or the cap is raised: a
 * sleeping worker takes tens of µs to wake. */
#define WINDOW_GRACE_JOBS 32
#define LLMRT_POOL_CHUNKS_PER_THREAD 4

typedef struct pool_slot {
    _Alignas(64) _Atomic uint64_t cursor; /* next chunk << 32 | end chunk */
} pool_slot;

static struct {
    pthread_mutex_t lock; /* held by the caller of the job in flight */
    int workers;          /* started; only grows, under lock */
    /* the job; written under lock before cursors are published */
    _Atomic(llmrt_range_fn *) fn;
    _Atomic(void *) ctx;
    _Atomic int64_t n, chunk;
    _Atomic int participants;
    _Alignas(64) _Atomic uint32_t wake_seq; /* futex word: +1 per job */
    _Atomic int sleeping_workers;
    _Alignas(64) _Atomic uint32_t done;     /* futex word: chunks finished */
    _Atomic int caller_sleeping;
    /* the thread cap after stalls, under lock: jobs use at most `cap`
     * threads until probe_at, then one more; a probe that stalls within
     * twice the back-off doubles it */
    int cap;
    int64_t probe_at, raised_at, backoff_ns;
    /* the last jobs: chunks in all, and those the workers ran */
    int64_t window_jobs, window_chunks, window_helped;
    long caller_preemptions; /* the caller's involuntary switches, at the last window's end */
    int64_t caller_delay;    /* the caller's run delay (ns; -1: no schedstat), at the last window's end */
    int64_t window_start;
    pool_slot slots[POOL_MAX_THREADS];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .cap = POOL_MAX_THREADS, .backoff_ns = BACKOFF_MIN_NS};

static void futex_wait(_Atomic uint32_t *word, uint32_t expected) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* The calling thread's run delay (time runnable but not running), or -1. */
static int64_t run_delay_ns(void) {
    char buf[96];
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    unsigned long long exec_ns, delay_ns;
    return sscanf(buf, "%llu %llu", &exec_ns, &delay_ns) == 2 ? (int64_t)delay_ns : -1;
}

/* 1 when the caller lost a share of the window (of `jobs` jobs) to other
 * threads on its core (see LOST_SHARE); starts the next window's count. */
static int caller_lost_time(int64_t now, int64_t jobs) {
    const int64_t delay = run_delay_ns();
    if (delay >= 0) {
        const int64_t lost = pool.caller_delay >= 0 ? delay - pool.caller_delay : 0;
        const int64_t elapsed = now - pool.window_start;
        pool.caller_delay = delay;
        return pool.window_start > 0 && lost * LOST_SHARE > elapsed;
    }
    struct rusage usage;
    getrusage(RUSAGE_THREAD, &usage);
    const long preempted = usage.ru_nivcsw - pool.caller_preemptions;
    pool.caller_preemptions = usage.ru_nivcsw;
    return preempted * WINDOW_JOBS >= PREEMPT_LIMIT * jobs;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs chunks, own cursor first, until none is left anywhere.
 * The job's fields are read after each claim: the job cannot end before
 * the claimed chunk is done, but the next job may have begun since the
 * previous claim. */
static int64_t run_chunks(int self, int slots) {
    int64_t ran = 0;
    for (int k = 0; k < slots; k++) {
        _Atomic uint64_t *cursor = &pool.slots[(self + k) % slots].cursor;
        for (;;) {
            uint64_t old = atomic_load_explicit(cursor, memory_order_relaxed);
            if ((old >> 32) >= (old & 0xffffffffu)) break;
            old = atomic_fetch_add_explicit(cursor, (uint64_t)1 << 32, memory_order_acquire);
            const uint64_t index = old >> 32;
            if (index >= (old & 0xffffffffu)) break;
            llmrt_range_fn *fn = atomic_load_explicit(&pool.fn, memory_order_relaxed);
            void *ctx = atomic_load_explicit(&pool.ctx, memory_order_relaxed);
            const int64_t n = atomic_load_explicit(&pool.n, memory_order_relaxed);
            const int64_t chunk = atomic_load_explicit(&pool.chunk, memory_order_relaxed);
            const int64_t begin = (int64_t)index * chunk, end = begin + chunk < n ? begin + chunk : n;
            fn(ctx, begin, end);
            ran++;
            const uint32_t chunks = (uint32_t)((n + chunk - 1) / chunk);
            if (atomic_fetch_add_explicit(&pool.done, 1, memory_order_seq_cst) + 1 == chunks &&
                atomic_load_explicit(&pool.caller_sleeping, memory_order_seq_cst))
                futex_wake(&pool.done);
        }
    }
    return ran;
}

static void *worker_main(void *arg) {
    const int self = (int)(intptr_t)arg;
    uint32_t seen = atomic_load_explicit(&pool.wake_seq, memory_order_acquire);
    for (;;) {
        int64_t spin_until = now_ns() + WORKER_SPIN_NS;
        uint32_t seq;
        for (int i = 1;; i++) {
            seq = atomic_load_explicit(&pool.wake_seq, memory_order_acquire);
            if (seq != seen) break;
            cpu_relax();
            if ((i & 255) == 0 && now_ns() > spin_until) {
                atomic_fetch_add_explicit(&pool.sleeping_workers, 1, memory_order_seq_cst);
                if (atomic_load_explicit(&pool.wake_seq, memory_order_seq_cst) == seen)
                    futex_wait(&pool.wake_seq, seen);
                atomic_fetch_sub_explicit(&pool.sleeping_workers, 1, memory_order_seq_cst);
                spin_until = now_ns() + WORKER_SPIN_NS;
            }
        }
        seen = seq;
        const int participants = atomic_load_explicit(&pool.participants, memory_order_relaxed);
        if (self < participants) run_chunks(self, participants);
    }
    return NULL;
}

/* Starts workers 1..count-1 that are not running yet; under pool.lock. */
static int ensure_workers(int count) {
    while (pool.workers + 1 < count) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int failed = pthread_create(&thread, &attr, worker_main, (void *)(intptr_t)(pool.workers + 1));
        pthread_attr_destroy(&attr);
        if (failed) break;
        pool.workers++;
        pool.window_jobs = -WINDOW_GRACE_JOBS;
    }
    return pool.workers + 1;
}

/* After a stall: one thread fewer for a while. On the 2-core VM with a
 * busy loop on one core a worker is descheduled every few ms and each time
 * holds the caller for the neighbour's time slice (~3 ms); a machine with
 * more cores keeps the threads it still has cores for. */
static void note_stall(int threads, int64_t now) {
    /* a probe that fails within twice the back-off (and the window it
     * takes to tell) doubles it */
    pool.backoff_ns = now - pool.raised_at < 2 * pool.backoff_ns + WINDOW_MIN_NS ? pool.backoff_ns * 2 : BACKOFF_MIN_NS;
    if (pool.backoff_ns > BACKOFF_MAX_NS) pool.backoff_ns = BACKOFF_MAX_NS;
    pool.cap = threads - 1;
    pool.probe_at = now + pool.backoff_ns;
}

void llmrt_parallel_for(int64_t n, int64_t chunk, int parallel, llmrt_range_fn *fn, void *ctx) {
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    int threads = parallel ? omp_get_max_threads() : 1;
    const int64_t chunks = (n + chunk - 1) / chunk;
    if (threads > POOL_MAX_THREADS) threads = POOL_MAX_THREADS;
    if (threads > chunks) threads = (int)chunks;
    if (threads < 2 || chunks > UINT32_MAX / 2 || pthread_mutex_trylock(&pool.lock) != 0) {
        fn(ctx, 0, n);
        return;
    }
    int64_t start = 0;
    if (threads > pool.cap) {
        start = now_ns();
        if (start >= pool.probe_at) {
            pool.cap++;
            pool.raised_at = start;
            pool.window_jobs = -WINDOW_GRACE_JOBS;
            pool.probe_at = start + pool.backoff_ns;
        }
        if (threads > pool.cap) threads = pool.cap;
    }
    if (threads >= 2) threads = ensure_workers(threads);
    if (threads < 2) {
        pthread_mutex_unlock(&pool.lock);
        fn(ctx, 0, n);
        return;
    }
    /* every cursor is at its end here: the previous job finished */
    atomic_store_explicit(&pool.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&pool.n, n, memory_order_relaxed);
    atomic_store_explicit(&pool.chunk, chunk, memory_order_relaxed);
    atomic_store_explicit(&pool.participants, threads, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    for (int p = 0; p < threads; p++) {
        const uint64_t begin = (uint64_t)chunks * (uint64_t)p / (uint64_t)threads;
        const uint64_t end = (uint64_t)chunks * (uint64_t)(p + 1) / (uint64_t)threads;
        atomic_store_explicit(&pool.slots[p].cursor, begin << 32 | end, memory_order_release);
    }
    atomic_fetch_add_explicit(&pool.wake_seq, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&pool.sleeping_workers, memory_order_seq_cst) > 0) futex_wake(&pool.wake_seq);
    if (!start) start = now_ns();
    const int64_t own = run_chunks(0, threads);
    if (atomic_load_explicit(&pool.done, memory_order_acquire) != (uint32_t)chunks) {
        const int64_t own_end = now_ns(), spin_until = own_end + CALLER_SPIN_NS;
        for (int i = 1;; i++) {
            uint32_t done = atomic_load_explicit(&pool.done, memory_order_acquire);
            if (done == (uint32_t)chunks) break;
            cpu_relax();
            if ((i & 63) == 0 && now_ns() > spin_until) {
                atomic_store_explicit(&pool.caller_sleeping, 1, memory_order_seq_cst);
                done = atomic_load_explicit(&pool.done, memory_order_seq_cst);
                if (done != (uint32_t)chunks) futex_wait(&pool.done, done);
                atomic_store_explicit(&pool.caller_sleeping, 0, memory_order_seq_cst);
            }
        }
        const int64_t end = now_ns();
        if (end - own_end > own_end - start + STALL_SLACK_NS) note_stall(threads, end);
    }
    /* workers that seldom get a chunk are not getting a core either: their
     * spinning only takes time from the caller (decode on the loaded 2-core
     * VM: 180-240 tokens/s with 2 threads, the worker running under 1% of
     * the chunks, against 350-470 with one); the caller's preemptions are
     * read once a window (a syscall, ~0.3 µs) */
    pool.window_chunks += chunks;
    pool.window_helped += chunks - own;
    if (++pool.window_jobs <= 0) {
        pool.window_chunks = pool.window_helped = 0;
        if (pool.window_jobs == 0) { /* the grace is over: the first window starts */
            pool.window_start = now_ns();
            pool.caller_delay = run_delay_ns();
        }
    } else if (pool.window_jobs >= WINDOW_JOBS) {
        const int64_t now = now_ns();
        if (now - pool.window_start >= WINDOW_MIN_NS) {
            const int lost = caller_lost_time(now, pool.window_jobs);
            if (pool.window_helped * threads * 4 < pool.window_chunks * (threads - 1) || lost) note_stall(threads, now);
            pool.window_jobs = pool.window_chunks = pool.window_helped = 0;
            pool.window_start = now;
        }
    }
    pthread_mutex_unlock(&pool.lock);
}

int64_t llmrt_parallel_chunk(int64_t n, int64_t align) {
    const int64_t pieces = (int64_t)omp_get_max_threads() * LLMRT_POOL_CHUNKS_PER_THREAD;
    int64_t chunk = (n + pieces - 1) / pieces;
    return align > 1 ? (chunk + align - 1) / align * align : chunk > 0 ? chunk : 1;
}
