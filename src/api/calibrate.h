/* The calibration runner behind `llmrt build --calib` (calibrate.c). It
 * lives with the builder, not in compiler/, because it runs a backend,
 * which sits above the compiler. */
#ifndef LLMRT_API_CALIBRATE_H
#define LLMRT_API_CALIBRATE_H

#include <stdint.h>

#include "compiler/calibration.h"
#include "compiler/compiler.h"
#include "import/safetensors.h"
#include "llmrt/llmrt.h"
#include "models/model_config.h"

enum { LLMRT_CALIB_DEFAULT_SAMPLES = 64, LLMRT_CALIB_DEFAULT_LEN = 512 };

typedef struct llmrt_calibrate_options {
    const char *text_path;      /* plain UTF-8 text (at most 256 MiB) */
    const char *tokenizer_path; /* the checkpoint's tokenizer.json */
    int32_t samples;            /* N; 0: LLMRT_CALIB_DEFAULT_SAMPLES */
    int32_t sample_len;         /* L; 0: LLMRT_CALIB_DEFAULT_LEN; at most the build's max_seq_len */
} llmrt_calibrate_options;

/* Runs the model of `build` (its backend, dtypes and passes, unquantized and
 * unsmoothed) over N samples of L consecutive tokens of the text and
 * returns, for every LINEAR but the LM head (keyed by its weight node's
 * name in the compiled graph), max |x| and max |x[:, k]| over every token
 * of its input. Logs "calibrating: sample i/N" at info level. Fails naming
 * the file when the text has fewer than N·L tokens, and naming the LINEAR
 * when its inputs are not finite. Free *out with llmrt_calibration_free. */
llmrt_status llmrt_calibrate(const llmrt_model_config *config, const llmrt_checkpoint *checkpoint,
                             const llmrt_compile_options *build, const llmrt_calibrate_options *options,
                             llmrt_calibration **out);

/* A build's calibration options: sample counts, smooth_alpha in [0, 1],
 * and --calib only where it can run (one rank, not --onnx). */
llmrt_status llmrt_build_check_calibration(const llmrt_build_options *o);
/* With o->calib_path: calibrates the model a build is about to compile
 * with `copts`, points copts->calibration at the result (*out, the caller
 * frees it after compiling) and turns SmoothQuant on for --quant w8a8.
 * Without: *out = NULL, and a warning that w8a8 goes unsmoothed. */
llmrt_status llmrt_build_calibration(const llmrt_build_options *o, const llmrt_model_config *config,
                                     const llmrt_checkpoint *checkpoint, llmrt_compile_options *copts,
                                     llmrt_calibration **out);

#endif
