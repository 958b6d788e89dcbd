/* A standalone driver for libFuzzer-style targets (LLVMFuzzerTestOneInput),
 * so every build, not only clang -fsanitize=fuzzer ones, exercises the fuzz
 * targets: it runs the target over each corpus file, then over pseudo-random
 * mutations of them. The seed is fixed, so a run is reproducible; a time
 * budget bounds it, so it fits in CI under ASan.
 *
 *   fuzz_X_driver [--mutations N] [--seed S] [--max-seconds T] PATH...
 *
 * PATH is a corpus directory (its regular files, sorted) or a single file
 * (e.g. a crash input to replay). If a run dies under a sanitizer or with a
 * signal, the input is written to ./fuzz-crash.bin and its origin printed.
 * Target-agnostic: link it with any fuzz_<name>.c (the engine-file target
 * too). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DRIVER_HAVE_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define DRIVER_HAVE_SANITIZER 1
#endif
#ifdef DRIVER_HAVE_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct input {
    char *path;
    uint8_t *data;
    size_t size;
} input;

/* What is running now, for the crash report. */
static const uint8_t *current_data;
static size_t current_size;
static char current_origin[512];

static void dump_current_input(void) {
    static const char message[] = "fuzz driver: crashed on input ";
    ssize_t ignored = write(2, message, sizeof message - 1);
    ignored = write(2, current_origin, strlen(current_origin));
    ignored = write(2, "; saved to fuzz-crash.bin\n", 26);
    (void)ignored;
    FILE *f = fopen("fuzz-crash.bin", "wb");
    if (f) {
        if (current_size) fwrite(current_data, 1, current_size, f);
        fclose(f);
    }
}

static void on_signal(int sig) {
    dump_current_input();
    signal(sig, SIG_DFL);
    raise(sig);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static size_t rng_below(uint64_t *state, size_t n) { return n ? (size_t)(rng_next(state) % n) : 0; }

static int read_file(const char *path, input *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t capacity = 4096, size = 0;
    uint8_t *data = malloc(capacity);
    size_t n;
    while (data && (n = fread(data + size, 1, capacity - size, f)) > 0) {
        size += n;
        if (size == capacity) {
            uint8_t *grown = realloc(data, capacity *= 2);
            if (!grown) free(data);
            data = grown;
        }
    }
    fclose(f);
    if (!data) return 0;
    out->path = strdup(path);
    out->data = data;
    out->size = size;
    return 1;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Appends the file, or the sorted regular files of the directory, at path. */
static void collect(const char *path, input **inputs, size_t *count) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz driver: %s: not found\n", path);
        exit(2);
    }
    char **names = NULL;
    size_t name_count = 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        struct dirent *entry;
        while (dir && (entry = readdir(dir)) != NULL) {
            if (entry->d_name[0] == '.') continue;
            names = realloc(names, (name_count + 1) * sizeof *names);
            names[name_count] = malloc(strlen(path) + strlen(entry->d_name) + 2);
            sprintf(names[name_count], "%s/%s", path, entry->d_name);
            name_count++;
        }
        if (dir) closedir(dir);
        if (name_count) qsort(names, name_count, sizeof *names, compare_names);
    } else {
        names = malloc(sizeof *names);
        names[name_count++] = strdup(path);
    }
    for (size_t i = 0; i < name_count; i++) {
        struct stat file_st;
        if (stat(names[i], &file_st) == 0 && S_ISREG(file_st.st_mode)) {
            *inputs = realloc(*inputs, (*count + 1) * sizeof **inputs);
            if (read_file(names[i], &(*inputs)[*count])) (*count)++;
        }
        free(names[i]);
    }
    free(names);
}

/* Runs the target on an exact-size heap copy, so ASan sees any overread. */
static void run_one(const uint8_t *data, size_t size, const char *origin) {
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    current_data = copy;
    current_size = size;
    snprintf(current_origin, sizeof current_origin, "%s", origin);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
}

/* Mutations aimed at the parsers' inputs: bit flips and byte values, range
 * deletes and copies, truncation, splices with other corpus files, and — since
 * the inputs are mostly JSON — numbers swapped for boundary values, and raw
 * little-endian u64 words (the safetensors header length). */
static size_t mutate(uint8_t *buf, size_t size, size_t capacity, const input *inputs, size_t count, uint64_t *rng) {
    static const char *const numbers[] = {"0", "-1", "1", "2", "7", "255", "65536", "2147483647", "2147483648",
                                          "4294967296", "9223372036854775807", "18446744073709551615",
                                          "-9223372036854775808", "1e400", "1.5", "4096.0", "null", "true", "\"x\""};
    static const uint8_t bytes[] = {0, 1, 0x7f, 0x80, 0xff, '"', '{', '}', '[', ']', ',', ':', '-', '0', '9', '\\'};
    int rounds = 1 + (int)rng_below(rng, 4);
    for (int r = 0; r < rounds; r++) {
        size_t at = rng_below(rng, size + 1);
        switch (rng_below(rng, 8)) {
        case 0:
            if (size) buf[rng_below(rng, size)] ^= (uint8_t)(1u << rng_below(rng, 8));
            break;
        case 1:
            if (size) buf[rng_below(rng, size)] = bytes[rng_below(rng, sizeof bytes)];
            break;
        case 2: { /* delete a range */
            size_t n = rng_below(rng, size - at + 1);
            memmove(buf + at, buf + at + n, size - at - n);
            size -= n;
            break;
        }
        case 3: { /* copy a range of the input into itself */
            if (!size) break;
            size_t from = rng_below(rng, size), n = 1 + rng_below(rng, size - from);
            if (n > capacity - size) n = capacity - size;
            memmove(buf + at + n, buf + at, size - at);
            memmove(buf + at, buf + (from < at ? from : from + n), n);
            size += n;
            break;
        }
        case 4:
            size = at;
            break;
        case 5: { /* replace a run of digits (or insert) with a boundary number */
            const char *s = numbers[rng_below(rng, sizeof numbers / sizeof numbers[0])];
            size_t n = strlen(s), start = at, end = at;
            for (size_t k = 0; k < 64 && start < size && !(buf[start] >= '0' && buf[start] <= '9'); k++) start++;
            if (start < size) {
                end = start;
                while (end < size && ((buf[end] >= '0' && buf[end] <= '9') || buf[end] == '.')) end++;
            } else start = end = at;
            if (size - (end - start) + n > capacity) break;
            memmove(buf + start + n, buf + end, size - end);
            memcpy(buf + start, s, n);
            size = size - (end - start) + n;
            break;
        }
        case 6: { /* a little-endian u64, often at offset 0 */
            if (size < 8) break;
            size_t pos = rng_below(rng, 2) ? 0 : rng_below(rng, size - 7);
            uint64_t v = rng_below(rng, 2) ? rng_below(rng, size * 2 + 16) : rng_next(rng);
            for (int k = 0; k < 8; k++) buf[pos + k] = (uint8_t)(v >> (8 * k));
            break;
        }
        default: { /* splice: keep a prefix, take the rest from another input */
            const input *other = &inputs[rng_below(rng, count)];
            size_t from = rng_below(rng, other->size + 1), n = other->size - from;
            if (at + n > capacity) n = capacity - at;
            memcpy(buf + at, other->data + from, n);
            size = at + n;
            break;
        }
        }
    }
    return size;
}

int main(int argc, char **argv) {
    long mutations = 200;
    uint64_t seed = 1;
    double max_seconds = 30;
    input *inputs = NULL;
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) mutations = atol(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) max_seconds = atof(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--mutations N] [--seed S] [--max-seconds T] PATH...\n", argv[0]);
            return 2;
        } else collect(argv[i], &inputs, &count);
    }
    if (count == 0) {
        fprintf(stderr, "fuzz driver: no inputs\n");
        return 2;
    }
#ifdef DRIVER_HAVE_SANITIZER
    __sanitizer_set_death_callback(dump_current_input);
#endif
    signal(SIGSEGV, on_signal);
    signal(SIGABRT, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);

    double start = now_seconds();
    size_t max_size = 0;
    for (size_t i = 0; i < count; i++) {
        run_one(inputs[i].data, inputs[i].size, inputs[i].path);
        if (inputs[i].size > max_size) max_size = inputs[i].size;
    }
    /* Mutants may grow to twice the largest input plus room for numbers. */
    size_t capacity = max_size * 2 + 64;
    uint8_t *buffer = malloc(capacity);
    uint64_t rng = seed ? seed : 1;
    long runs = (long)count;
    int out_of_time = 0;
    for (long m = 0; m < mutations && !out_of_time; m++) {
        for (size_t i = 0; i < count; i++) {
            memcpy(buffer, inputs[i].data, inputs[i].size);
            size_t size = mutate(buffer, inputs[i].size, capacity, inputs, count, &rng);
            char origin[512];
            snprintf(origin, sizeof origin, "%s mutation %ld (seed %llu)", inputs[i].path, m,
                     (unsigned long long)seed);
            run_one(buffer, size, origin);
            runs++;
            if (now_seconds() - start > max_seconds) {
                out_of_time = 1;
                break;
            }
        }
    }
    printf("fuzz driver: %ld runs over %zu inputs in %.1f s%s\n", runs, count, now_seconds() - start,
           out_of_time ? " (time budget reached)" : "");
    for (size_t i = 0; i < count; i++) {
        free(inputs[i].path);
        free(inputs[i].data);
    }
    free(inputs);
    free(buffer);
    return 0;
}
