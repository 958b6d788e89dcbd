/* Where the CPU backend's kernels read the weights from, and in which
 * layout (cpu_weights.c). */
#ifndef LLMRT_BACKENDS_CPU_WEIGHTS_H
#define LLMRT_BACKENDS_CPU_WEIGHTS_H

#include <stddef.h>

#include "compiler/plan.h"

/* Per weight slot of a plan: the bytes the kernels read, and whether they
 * are in cpu_weight_interleave's layout (16-bit weights read only by
 * linears) rather than the plan's rows. Owned by the backend state:
 * cpu_weights_place fills it, cpu_weights_free releases it. */
typedef struct cpu_weights {
    const void **data;          /* [num_weights] */
    unsigned char *interleaved; /* [num_weights] */
    void *copy;                 /* the anonymous copy of the weights, or NULL */
    size_t copy_bytes;
} cpu_weights;

/* 0 when out of memory (w then holds what cpu_weights_free releases). */
int cpu_weights_place(cpu_weights *w, const llmrt_plan *plan);
void cpu_weights_free(cpu_weights *w);

#endif
