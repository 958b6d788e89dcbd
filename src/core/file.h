/* Read-only memory maps of whole files, and whole-file reads. */
#ifndef LLMRT_CORE_FILE_H
#define LLMRT_CORE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* A read-only mapping of a whole file. `data` is NULL for an empty file. */
typedef struct llmrt_mapped_file {
    const uint8_t *data;
    size_t size;
    char *path; /* owned copy, for error messages */
} llmrt_mapped_file;

llmrt_status llmrt_file_map(const char *path, llmrt_mapped_file *out);
void llmrt_file_unmap(llmrt_mapped_file *file);

/* Reads a whole file into a NUL-terminated malloc'd buffer (caller frees). */
llmrt_status llmrt_file_read_all(const char *path, char **out_data, size_t *out_size);

/* Joins a directory and a file name into a malloc'd path. */
char *llmrt_path_join(const char *dir, const char *name);

int llmrt_file_exists(const char *path);

#endif
