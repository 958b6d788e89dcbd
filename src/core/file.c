#define _GNU_SOURCE
#include "core/file.h"
#include "llmrt/llmrt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

llmrt_status llmrt_file_map(const char *path, llmrt_mapped_file *out) {
    memset(out, 0, sizeof *out);
    int fd;
    size_t file_size;
    LLMRT_TRY(llmrt_file_open_regular(path, &fd, &file_size));
    void *data = NULL;
    if (file_size > 0) {
        data = mmap(NULL, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            int e = errno;
            close(fd);
            return llmrt_error(LLMRT_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    out->data = data;
    out->size = file_size;
    out->path = strdup(path);
    if (!out->path) {
        llmrt_file_unmap(out);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    return LLMRT_OK;
}

void llmrt_file_unmap(llmrt_mapped_file *file) {
    if (file->data) munmap((void *)file->data, file->size);
    free(file->path);
    memset(file, 0, sizeof *file);
}

char *llmrt_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t n = a;
    if (a && dir[a - 1] != '/') p[n++] = '/';
    memcpy(p + n, name, b + 1);
    return p;
}

int llmrt_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

/* Opening a FIFO for reading blocks until a writer comes, and a device such
 * as /dev/zero never ends: every path llmrt reads is opened non-blocking and
 * refused unless it is a regular file, before a byte is read. */
llmrt_status llmrt_file_open_regular(const char *path, int *out_fd, size_t *out_size) {
    *out_fd = -1;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return llmrt_error(LLMRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: not a regular file (%s)", path, llmrt_file_type_name(st.st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *out_fd = fd;
    if (out_size) *out_size = (size_t)st.st_size;
    return LLMRT_OK;
}

llmrt_status llmrt_file_fopen_regular(const char *path, FILE **out) {
    *out = NULL;
    int fd;
    LLMRT_TRY(llmrt_file_open_regular(path, &fd, NULL));
    *out = fdopen(fd, "rb");
    if (!*out) {
        int e = errno;
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    return LLMRT_OK;
}

const char *llmrt_file_type_name(unsigned mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISREG(mode)) return "a regular file";
    return "a special file";
}

llmrt_status llmrt_stream_read_all(FILE *f, const char *name, size_t max_size, char **out_data, size_t *out_size) {
    *out_data = NULL;
    if (out_size) *out_size = 0;
    size_t capacity = 1 << 16, size = 0;
    char *data = malloc(capacity + 1);
    if (!data) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory reading", name);
    for (;;) {
        size_t n = fread(data + size, 1, capacity - size, f);
        size += n;
        if (size > max_size) {
            free(data);
            return llmrt_error(LLMRT_ERR_IO, "%s: larger than the limit of %zu MiB", name, max_size >> 20);
        }
        if (size < capacity) break;
        char *grown = realloc(data, capacity * 2 + 1);
        if (!grown) {
            free(data);
            return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory reading %zu bytes", name, capacity * 2);
        }
        data = grown;
        capacity *= 2;
    }
    if (ferror(f)) {
        free(data);
        return llmrt_error(LLMRT_ERR_IO, "%s: read error", name);
    }
    data[size] = '\0';
    *out_data = data;
    if (out_size) *out_size = size;
    return LLMRT_OK;
}

llmrt_status llmrt_file_read_limited(const char *path, size_t max_size, char **out_data, size_t *out_size) {
    *out_data = NULL;
    if (out_size) *out_size = 0;
    int fd;
    size_t size = 0;
    LLMRT_TRY(llmrt_file_open_regular(path, &fd, &size));
    if (size > max_size) {
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: %zu bytes, over the limit of %zu MiB", path, size, max_size >> 20);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    llmrt_status s = llmrt_stream_read_all(f, path, max_size, out_data, out_size);
    fclose(f);
    return s;
}

llmrt_status llmrt_file_read_all(const char *path, char **out_data, size_t *out_size) {
    return llmrt_file_read_limited(path, LLMRT_FILE_READ_MAX, out_data, out_size);
}

static int same_file(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static int has_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

/* Renaming a temporary file over the output would replace a device node or
 * FIFO with a regular file (as root: /dev/null), and writing over an input
 * destroys it before or while it is read. */
llmrt_status llmrt_file_check_output(const char *path, const char *const *inputs, size_t num_inputs,
                                     const char *input_dir) {
    struct stat out;
    if (stat(path, &out) != 0) {
        if (errno == ENOENT) return LLMRT_OK;
        return llmrt_error(LLMRT_ERR_IO, "%s: cannot stat the output: %s", path, strerror(errno));
    }
    if (!S_ISREG(out.st_mode))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: the output exists and is %s, not a regular file: not replacing it",
                           path, llmrt_file_type_name(out.st_mode));
    struct stat in;
    for (size_t i = 0; i < num_inputs; i++)
        if (inputs[i] && stat(inputs[i], &in) == 0 && same_file(&in, &out))
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: the output is the input %s: not overwriting it", path,
                               inputs[i]);
    DIR *dir = input_dir ? opendir(input_dir) : NULL;
    if (!dir) return LLMRT_OK;
    llmrt_status s = LLMRT_OK;
    struct dirent *e;
    while (s == LLMRT_OK && (e = readdir(dir))) {
        if (!has_suffix(e->d_name, ".json") && !has_suffix(e->d_name, ".safetensors")) continue;
        char *p = llmrt_path_join(input_dir, e->d_name);
        if (p && stat(p, &in) == 0 && same_file(&in, &out))
            s = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: the output is the checkpoint's %s: not overwriting it", path, p);
        free(p);
    }
    closedir(dir);
    return s;
}

/* The temporary file is opened without following a link and must be a
 * regular file once open, so a stale PATH.tmp that is a link or a FIFO is
 * neither written through nor renamed over the output. */
llmrt_status llmrt_file_create_temp(const char *tmp_path, FILE **out) {
    *out = NULL;
    struct stat st;
    if (lstat(tmp_path, &st) == 0 && !S_ISREG(st.st_mode))
        return llmrt_error(LLMRT_ERR_IO, "%s: exists and is %s: remove it first", tmp_path,
                           S_ISLNK(st.st_mode) ? "a symbolic link" : llmrt_file_type_name(st.st_mode));
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) return llmrt_error(LLMRT_ERR_IO, "%s: cannot create: %s", tmp_path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: not a regular file", tmp_path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *out = fdopen(fd, "wb");
    if (!*out) {
        int e = errno;
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: cannot create: %s", tmp_path, strerror(e));
    }
    return LLMRT_OK;
}

/* ---- the public entry points (include/llmrt/llmrt.h) ---- */

llmrt_status llmrt_read_file(const char *path, size_t max_bytes, char **out_data, size_t *out_size) {
    return llmrt_file_read_limited(path, max_bytes, out_data, out_size);
}

llmrt_status llmrt_read_stream(void *stdio_file, const char *name, size_t max_bytes, char **out_data,
                               size_t *out_size) {
    return llmrt_stream_read_all(stdio_file, name, max_bytes, out_data, out_size);
}

llmrt_status llmrt_check_output_path(const char *path, const char *const *inputs, size_t num_inputs) {
    return llmrt_file_check_output(path, inputs, num_inputs, NULL);
}
