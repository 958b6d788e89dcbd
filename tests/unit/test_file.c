/* src/core/file.c: what llmrt reads must be a regular file (a FIFO must be
 * refused without blocking, a device without reading it), whole-file and
 * stream reads stop at their limit, and an output may not be a special file
 * or one of the inputs. Runs as root safely: devices are only reached
 * through links, and every refusal is checked to have changed nothing. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "test_util.h"

static char *dir;

static char *path_in(const char *name) {
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void expect_error(llmrt_status s, llmrt_status want, const char *needle) {
    CHECK(s == want);
    if (!strstr(llmrt_last_error(), needle)) {
        fprintf(stderr, "  message '%s' lacks '%s'\n", llmrt_last_error(), needle);
        CHECK(0);
    }
}

static void test_special_files_refused(void) {
    char *fifo = path_in("fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    char *data = NULL;
    size_t size = 0;
    /* each would block forever in open(2) if opened blocking */
    expect_error(llmrt_file_read_all(fifo, &data, &size), LLMRT_ERR_IO, "not a regular file (a FIFO)");
    llmrt_mapped_file map;
    expect_error(llmrt_file_map(fifo, &map), LLMRT_ERR_IO, "a FIFO");
    expect_error(llmrt_file_read_all("/dev/zero", &data, &size), LLMRT_ERR_IO, "a character device");
    expect_error(llmrt_file_map(dir, &map), LLMRT_ERR_IO, "a directory");
    CHECK(data == NULL);
}

static void test_limits(void) {
    char *small = path_in("small.txt");
    write_text(small, "0123456789");
    char *data = NULL;
    size_t size = 0;
    CHECK_OK(llmrt_file_read_limited(small, 10, &data, &size));
    CHECK(size == 10 && data && data[10] == '\0' && memcmp(data, "0123456789", 10) == 0);
    free(data);
    data = NULL;
    expect_error(llmrt_file_read_limited(small, 9, &data, &size), LLMRT_ERR_IO, "over the limit");
    CHECK(data == NULL);
    /* a stream of unknown length: /dev/zero never ends, the limit ends it */
    FILE *zero = fopen("/dev/zero", "rb");
    CHECK(zero != NULL);
    if (zero) {
        expect_error(llmrt_stream_read_all(zero, "stdin", (size_t)1 << 20, &data, &size), LLMRT_ERR_IO,
                     "stdin: larger than the limit of 1 MiB");
        fclose(zero);
    }
    FILE *f = fopen(small, "rb");
    if (f) {
        CHECK_OK(llmrt_stream_read_all(f, "small", 10, &data, &size));
        CHECK(size == 10);
        free(data);
        fclose(f);
    }
}

static void test_outputs(void) {
    char *input = path_in("config.json"), *fresh = path_in("new.engine"), *null_link = path_in("null");
    write_text(input, "{}");
    CHECK_OK(llmrt_file_check_output(fresh, NULL, 0, NULL));
    const char *inputs[] = {NULL, input};
    expect_error(llmrt_file_check_output(input, inputs, 2, NULL), LLMRT_ERR_INVALID_ARGUMENT, "is the input");
    expect_error(llmrt_file_check_output(input, NULL, 0, dir), LLMRT_ERR_INVALID_ARGUMENT, "checkpoint's");
    char *link = path_in("link.json");
    CHECK(symlink(input, link) == 0);
    expect_error(llmrt_file_check_output(link, inputs, 2, NULL), LLMRT_ERR_INVALID_ARGUMENT, "is the input");
    CHECK(symlink("/dev/null", null_link) == 0);
    expect_error(llmrt_file_check_output(null_link, NULL, 0, NULL), LLMRT_ERR_INVALID_ARGUMENT,
                 "a character device, not a regular file");
    expect_error(llmrt_file_check_output(dir, NULL, 0, NULL), LLMRT_ERR_INVALID_ARGUMENT, "a directory");
    /* a temporary name that is a link is neither followed nor replaced */
    FILE *f = NULL;
    expect_error(llmrt_file_create_temp(null_link, &f), LLMRT_ERR_IO, "a symbolic link");
    CHECK(f == NULL);
    struct stat st;
    CHECK(lstat(null_link, &st) == 0 && S_ISLNK(st.st_mode));
    char *tmp = path_in("out.tmp");
    CHECK_OK(llmrt_file_create_temp(tmp, &f));
    if (f) fclose(f);
    CHECK(stat(tmp, &st) == 0 && S_ISREG(st.st_mode));
}

int main(void) {
    dir = test_temp_dir();
    RUN_TEST(test_special_files_refused);
    RUN_TEST(test_limits);
    RUN_TEST(test_outputs);
    return test_finish();
}
