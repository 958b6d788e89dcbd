/* The engine file: one self-contained, versioned, checksummed, mmap-able
 * file holding the compiled plan, the model spec, the tokenizer and
 * generation config, and the weights, aligned and addressed by name.
 *
 * Layout (little-endian):
 *   [0, 4096)   header: magic "LLMRTENG", format version, file size, a table
 *               of sections {name, offset, size, XXH3-64 checksum}, and the
 *               header's own checksum
 *   sections    "meta": JSON (build options, model config, plan, weight table)
 *               "tokenizer", "tokenizer_config", "generation_config": the
 *               checkpoint's JSON files, verbatim (absent if it had none)
 *               "weights": 4096-aligned; every weight 256-aligned within it
 *
 * Loading validates every offset, size and index before anything uses it;
 * a file of another format version, a truncated or corrupted file, or a
 * random file is rejected with a message saying which. */
#ifndef LLMRT_ENGINE_ENGINE_FILE_H
#define LLMRT_ENGINE_ENGINE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "compiler/plan.h"
#include "core/file.h"
#include "models/model_config.h"

#define LLMRT_ENGINE_MAGIC "LLMRTENG"
/* The format this llmrt writes, and the oldest it reads. Version 1 is the
 * only one there has been; a change to the layout or to the meta JSON that
 * an older reader would misread bumps the version, and the loader keeps
 * reading every version from the minimum up (tests/cli/data keeps an engine
 * of each; cli_engine_format loads them). */
enum {
    LLMRT_ENGINE_FORMAT_VERSION = 1,
    LLMRT_ENGINE_FORMAT_MIN_VERSION = 1,
    LLMRT_ENGINE_HEADER_BYTES = 4096,
    LLMRT_ENGINE_WEIGHT_ALIGNMENT = 256
};

typedef struct llmrt_engine_build_info {
    const char *backend;       /* "cpu" / "cuda" */
    llmrt_dtype dtype;         /* weight matrices */
    llmrt_dtype act_dtype;
    const char *source;        /* checkpoint dir, or "random" */
    uint64_t seed;
} llmrt_engine_build_info;

typedef struct llmrt_engine_blob {
    const char *data;
    size_t size;
} llmrt_engine_blob;

typedef struct llmrt_engine_write_input {
    const llmrt_plan *plan;
    const llmrt_model_config *config;
    llmrt_engine_build_info build;
    llmrt_engine_blob tokenizer;         /* tokenizer.json, or {NULL, 0} */
    llmrt_engine_blob tokenizer_config;  /* tokenizer_config.json */
    llmrt_engine_blob generation_config; /* generation_config.json */
    int allow_nonfinite;                 /* 0: a weight with a NaN or Inf fails the write, naming it */
} llmrt_engine_write_input;

/* Writes PATH.tmp and renames it over PATH; refuses a PATH that exists and
 * is not a regular file (a device node, FIFO or directory). */
llmrt_status llmrt_engine_write(const char *path, const llmrt_engine_write_input *input);

/* A loaded engine file: the map and everything decoded from it. The plan's
 * weights are views into the map. */
typedef struct llmrt_engine_image {
    llmrt_mapped_file file;
    llmrt_plan *plan;
    llmrt_model_config config;
    char backend[16];
    llmrt_dtype dtype;
    llmrt_dtype act_dtype;
    char source[512];
    uint32_t format_version;
    llmrt_engine_blob tokenizer;
    llmrt_engine_blob tokenizer_config;
    llmrt_engine_blob generation_config;
    uint64_t weights_section_bytes;
} llmrt_engine_image;

/* Opens and validates an engine. verify_weights = 1 also checks the weights
 * section's checksum (reads every byte once). */
llmrt_status llmrt_engine_image_open(const char *path, int verify_weights, llmrt_engine_image **out);
/* The same on bytes in memory (fuzzing); `data` must outlive the image. */
llmrt_status llmrt_engine_image_open_memory(const uint8_t *data, size_t size, const char *name, int verify_weights,
                                            llmrt_engine_image **out);
void llmrt_engine_image_close(llmrt_engine_image *image);

#endif
