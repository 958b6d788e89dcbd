#define _GNU_SOURCE
#include "core/file.h"

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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return llmrt_error(LLMRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return llmrt_error(LLMRT_ERR_IO, "%s: not a regular file", path);
    }
    void *data = NULL;
    if (st.st_size > 0) {
        data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) {
            int e = errno;
            close(fd);
            return llmrt_error(LLMRT_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    out->data = data;
    out->size = (size_t)st.st_size;
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

llmrt_status llmrt_file_read_all(const char *path, char **out_data, size_t *out_size) {
    *out_data = NULL;
    if (out_size) *out_size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return llmrt_error(LLMRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t capacity = 1 << 16, size = 0;
    char *data = malloc(capacity + 1);
    while (data) {
        size_t n = fread(data + size, 1, capacity - size, f);
        size += n;
        if (size < capacity) break;
        capacity *= 2;
        char *grown = realloc(data, capacity + 1);
        if (!grown) { free(data); data = NULL; }
        else data = grown;
    }
    int read_error = ferror(f);
    fclose(f);
    if (!data) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory reading", path);
    if (read_error) {
        free(data);
        return llmrt_error(LLMRT_ERR_IO, "%s: read error", path);
    }
    data[size] = '\0';
    *out_data = data;
    if (out_size) *out_size = size;
    return LLMRT_OK;
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
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
