/* Where the CPU backend's kernels read the weights from, and in which
 * layout: cpu_weights.h. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, madvise */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_weights.h"
#include "core/log.h"
#include "core/thread_pool.h"

/* Where the kernels read the weights from.
 *
 * The plan's weights are views into the engine file's mmap: page-cache pages
 * mapped 4 KB at a time. Streaming them from there measured at about half the
 * bandwidth of the same bytes in anonymous memory on the 2-core VM (decode
 * 7.7-9.9 vs 18.6-22 tokens/s for TinyLlama fp16; the kernel bench, which
 * uses malloc'd memory, gets the latter), and the first pass over a fresh
 * mapping also pays ~40k minor faults (~0.3-0.5 s, inside the first prompt).
 * So by default the weights are copied once, at create, into one anonymous
 * mapping advised MADV_HUGEPAGE (2 MB pages: one TLB entry per 2 MB instead
 * of 512), each weight 4 KB aligned, then made read-only. The page-cache copy
 * stays mapped (the plan's views remain valid) but is clean and reclaimable.
 *
 * LLMRT_CPU_WEIGHTS=map keeps the mapped views (no extra memory); they are
 * then pre-faulted (MADV_POPULATE_READ) so the faults happen at load, not
 * inside the first step. Copying is also skipped when the weights exceed
 * half of physical memory or the allocation fails.
 *
 * The copy is also where 16-bit linear weights take the interleaved layout
 * (cpu_weight_interleave): each is written straight into its place, so
 * there is never a second anonymous copy. Mapped weights keep their rows;
 * the kernels read either. */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#define WEIGHT_ALIGN ((size_t)4096)
#define HUGE_PAGE ((size_t)2 << 20)

static void prefault_mapped(const llmrt_plan *plan) {
    for (int32_t i = 0; i < plan->num_weights; i++) {
        const llmrt_plan_weight *w = &plan->weights[i];
        if (!w->data || w->nbytes == 0 || w->owned_data) continue;
        uintptr_t b = (uintptr_t)w->data & ~(uintptr_t)(WEIGHT_ALIGN - 1), e = (uintptr_t)w->data + w->nbytes;
        (void)madvise((void *)b, e - b, MADV_WILLNEED);
        (void)madvise((void *)b, e - b, MADV_POPULATE_READ); /* a hint: fails harmlessly before Linux 5.14 */
    }
}

typedef struct copy_job {
    char *to;
    const char *from;
} copy_job;

static void copy_chunk(void *ctx, int64_t begin, int64_t end) {
    const copy_job *j = ctx;
    memcpy(j->to + begin, j->from + begin, (size_t)(end - begin));
}

/* Per slot, 1 when it takes the interleaved layout: a 2-D f16/bf16 weight
 * read by a linear (its weight operand: LINEAR, or MATMUL with a
 * transposed right operand) and otherwise only as a GATHER's table (a
 * tied embedding, which the backend's gather reads row by row either
 * way). A slot read any other way (an MoE expert stack, a plugin, a view)
 * keeps its rows. NULL when out of memory. */
static unsigned char *interleavable_slots(const llmrt_plan *plan) {
    enum { BY_LINEAR = 1, BY_GATHER = 2, OTHER = 4 };
    const llmrt_graph *g = plan->graph;
    unsigned char *state = calloc((size_t)plan->num_weights + 1, 1);
    if (!state) return NULL;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        for (int32_t a = 0; a < n->num_inputs; a++) {
            const llmrt_node *v = &g->nodes[n->inputs[a]];
            if ((v->op != LLMRT_OP_WEIGHT && v->op != LLMRT_OP_CONSTANT) || v->weight_slot < 0 ||
                v->weight_slot >= plan->num_weights)
                continue;
            const llmrt_plan_weight *w = &plan->weights[v->weight_slot];
            const int linear = a == 1 && (n->op == LLMRT_OP_LINEAR || (n->op == LLMRT_OP_MATMUL && n->iattr[0]));
            const int gather = a == 0 && n->op == LLMRT_OP_GATHER;
            const int shaped = (w->dtype == LLMRT_DTYPE_F16 || w->dtype == LLMRT_DTYPE_BF16) && w->ndim == 2 &&
                               v->ndim == 2 && v->dims[0] == w->dims[0] && v->dims[1] == w->dims[1] &&
                               w->nbytes == (size_t)(w->dims[0] * w->dims[1]) * 2;
            state[v->weight_slot] |= !shaped ? OTHER : linear ? BY_LINEAR : gather ? BY_GATHER : OTHER;
        }
    }
    for (int32_t i = 0; i < plan->num_weights; i++) state[i] = (state[i] & (BY_LINEAR | OTHER)) == BY_LINEAR;
    return state;
}

/* A slot's bytes once placed: interleaved ones are padded. */
static size_t placed_bytes(const llmrt_plan_weight *w, int interleave) {
    return interleave ? cpu_weight_interleaved_bytes(w->dims[0], w->dims[1]) : w->nbytes;
}

int cpu_weights_place(cpu_weights *w, const llmrt_plan *plan) {
    memset(w, 0, sizeof *w);
    w->data = calloc((size_t)plan->num_weights + 1, sizeof *w->data);
    w->interleaved = calloc((size_t)plan->num_weights + 1, 1);
    unsigned char *interleave = interleavable_slots(plan);
    if (!w->data || !w->interleaved || !interleave) {
        free(interleave);
        return 0;
    }
    size_t total = 0;
    for (int32_t i = 0; i < plan->num_weights; i++) {
        w->data[i] = plan->weights[i].data;
        total += (placed_bytes(&plan->weights[i], interleave[i]) + WEIGHT_ALIGN - 1) & ~(WEIGHT_ALIGN - 1);
    }
    const char *mode = getenv("LLMRT_CPU_WEIGHTS");
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int copy = !(mode && strcmp(mode, "map") == 0) && total > 0 &&
               !(pages > 0 && page > 0 && (double)total > 0.5 * (double)pages * (double)page);
    void *base = MAP_FAILED;
    size_t bytes = ((total + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)) + HUGE_PAGE; /* room to align to 2 MB */
    if (copy) base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        free(interleave);
        prefault_mapped(plan);
        return 1;
    }
    char *dst = (char *)(((uintptr_t)base + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    size_t usable = bytes - (size_t)(dst - (char *)base);
    (void)madvise(dst, usable, MADV_HUGEPAGE);
    w->copy = base;
    w->copy_bytes = bytes;
    llmrt_progress progress;
    llmrt_progress_begin(&progress, "loading weights", total);
    size_t offset = 0, interleaved = 0;
    for (int32_t i = 0; i < plan->num_weights; i++) {
        const llmrt_plan_weight *pw = &plan->weights[i];
        const size_t n = pw->nbytes;
        char *to = dst + offset;
        offset += (placed_bytes(pw, interleave[i]) + WEIGHT_ALIGN - 1) & ~(WEIGHT_ALIGN - 1);
        if (!pw->data || n == 0) continue;
        if (interleave[i]) {
            cpu_weight_interleave((uint16_t *)to, pw->data, pw->dims[0], pw->dims[1]);
            w->interleaved[i] = 1;
            interleaved++;
        } else {
            /* every thread copies: first touch of fresh memory dominates */
            copy_job job = {.to = to, .from = pw->data};
            llmrt_parallel_for((int64_t)n, (int64_t)HUGE_PAGE, 1, copy_chunk, &job);
        }
        w->data[i] = to;
        llmrt_progress_add(&progress, n);
    }
    llmrt_progress_end(&progress);
    (void)mprotect(dst, usable, PROT_READ);
    free(interleave);
    LLMRT_DEBUG("cpu backend: %zu of %d weights interleaved for the linears", interleaved, (int)plan->num_weights);
    return 1;
}

void cpu_weights_free(cpu_weights *w) {
    free(w->data);
    free(w->interleaved);
    if (w->copy) munmap(w->copy, w->copy_bytes);
    memset(w, 0, sizeof *w);
}

