/* Read-only memory maps of whole files, and whole-file reads. Every path is
 * opened non-blocking and must be a regular file: a FIFO, device, socket or
 * directory is refused with a message saying which, before a byte is read. */
#ifndef LLMRT_CORE_FILE_H
#define LLMRT_CORE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

/* A read-only mapping of a whole file. `data` is NULL for an empty file. */
typedef struct llmrt_mapped_file {
    const uint8_t *data;
    size_t size;
    char *path; /* owned copy, for error messages */
} llmrt_mapped_file;

llmrt_status llmrt_file_map(const char *path, llmrt_mapped_file *out);
void llmrt_file_unmap(llmrt_mapped_file *file);

/* The most a whole-file read (JSON files, texts, stdin) takes: 256 MiB, as
 * LLMRT_READ_MAX of the public API. */
#define LLMRT_FILE_READ_MAX ((size_t)256 << 20)

/* Reads a whole file of at most LLMRT_FILE_READ_MAX bytes into a
 * NUL-terminated malloc'd buffer (caller frees). */
llmrt_status llmrt_file_read_all(const char *path, char **out_data, size_t *out_size);
/* The same with another limit. */
llmrt_status llmrt_file_read_limited(const char *path, size_t max_size, char **out_data, size_t *out_size);
/* Reads a stream (stdin) to its end, failing past max_size bytes; `name`
 * is for messages. */
llmrt_status llmrt_stream_read_all(FILE *f, const char *name, size_t max_size, char **out_data, size_t *out_size);

/* Opens a regular file for reading (descriptor, or stdio stream) after the
 * checks above; out_size may be NULL. */
llmrt_status llmrt_file_open_regular(const char *path, int *out_fd, size_t *out_size);
llmrt_status llmrt_file_fopen_regular(const char *path, FILE **out);
/* "a FIFO", "a directory", ... for a st_mode. */
const char *llmrt_file_type_name(unsigned mode);

/* Checks that `path` may be written: absent, or a regular file that is none
 * of `inputs` (same device and inode; NULL entries skipped) and none of the
 * *.json / *.safetensors files of `input_dir` (may be NULL). */
llmrt_status llmrt_file_check_output(const char *path, const char *const *inputs, size_t num_inputs,
                                     const char *input_dir);
/* Creates (truncates) a temporary output file for writing; refuses one that
 * exists as a symbolic link or a special file. */
llmrt_status llmrt_file_create_temp(const char *tmp_path, FILE **out);

/* Joins a directory and a file name into a malloc'd path. */
char *llmrt_path_join(const char *dir, const char *name);

/* 1 if `path` names something other than a directory. A FIFO or device
 * counts, so that an optional file (tokenizer.json, generation_config.json)
 * that is one is refused by name when read rather than silently skipped. */
int llmrt_file_exists(const char *path);

#endif
