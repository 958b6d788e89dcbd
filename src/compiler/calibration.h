/* Activation statistics of a model run over calibration text: what static
 * fp8 activation scales and SmoothQuant smoothing factors are made from.
 * Made by the calibration runner (calibrate.c) on the target backend,
 * read by the quantization passes. One entry per quantizable LINEAR,
 * keyed by the name of its weight node in the compiled graph (after the
 * fusion passes, so a fused QKV weight has one entry). */
#ifndef LLMRT_COMPILER_CALIBRATION_H
#define LLMRT_COMPILER_CALIBRATION_H

#include <stdint.h>

typedef struct llmrt_calib_entry {
    char *weight;        /* the LINEAR's weight node name */
    int64_t cols;        /* K: the LINEAR's inputs */
    float input_amax;    /* max |x| over every calibration token */
    float *channel_amax; /* [cols]: max |x[:, k]| over every token */
} llmrt_calib_entry;

typedef struct llmrt_calibration {
    int32_t count;
    llmrt_calib_entry *entries;
    int32_t samples, sample_len; /* sequences run, tokens each */
} llmrt_calibration;

/* The entry of weight node `weight`, or NULL. */
const llmrt_calib_entry *llmrt_calibration_find(const llmrt_calibration *calib, const char *weight);
/* Frees the entries and the struct itself; NULL is fine. */
void llmrt_calibration_free(llmrt_calibration *calib);

#endif
