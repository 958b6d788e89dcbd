/* SmoothQuant smoothing (smooth.c): activation outliers migrated into the
 * weights before they are quantized to w8a8. */
#ifndef LLMRT_COMPILER_SMOOTH_H
#define LLMRT_COMPILER_SMOOTH_H

#include "compiler/calibration.h"
#include "graph/graph.h"

typedef struct llmrt_smoothing llmrt_smoothing;

/* The f32 values a weight node would be bound with, before smoothing: [N, K]
 * for a matrix (nn.Linear layout), [K] for a vector. */
typedef llmrt_status (*llmrt_smooth_read_fn)(void *ctx, const llmrt_node *weight, float *values);

/* Finds the norm → LINEARs groups of a compiled graph that can be smoothed
 * and have statistics in `calib`, and computes their factors with strength
 * alpha in [0, 1], reading the LINEARs' weights through `read`. *out is
 * NULL when nothing can be smoothed. */
llmrt_status llmrt_smoothing_create(const llmrt_graph *g, const llmrt_calibration *calib, float alpha,
                                    llmrt_smooth_read_fn read, void *read_ctx, llmrt_smoothing **out);
/* 1 when weight node v (a norm's gain or bias, or a LINEAR's weight) is
 * smoothed; NULL smoothing: never. */
int llmrt_smoothing_touches(const llmrt_smoothing *s, llmrt_value v);
/* Applies the factors to the unsmoothed f32 values of weight node v
 * (llmrt_smoothing_touches(s, v) must hold), in place. */
void llmrt_smoothing_apply(const llmrt_smoothing *s, const llmrt_graph *g, llmrt_value v, float *values);
/* How many groups and LINEARs are smoothed (for the build's log line). */
void llmrt_smoothing_counts(const llmrt_smoothing *s, int32_t *groups, int32_t *linears);
void llmrt_smoothing_free(llmrt_smoothing *s);

#endif
