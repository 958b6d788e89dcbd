/* Tokenizer encode speed: MB/s of UTF-8 text per second, one thread, the
 * whole text as one string and line by line (the text split at '\n', each
 * line without its newline) — the same two measurements
 * bench/tokenizer_bench_hf.py makes with HF tokenizers.
 *
 *   tokenizer_bench TOKENIZER(.json|DIR) TEXT_FILE [--repeat N] [--json]
 *
 * The King James text: `bible -f "Gen1:1-Rev22:21" > kjv.txt` (bible-kjv). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmrt/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER TEXT_FILE [--repeat N] [--json]\n", argv[0]);
        return 2;
    }
    int repeat = 3, json = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0) json = 1;
    }
    llmrt_tokenizer *tok = NULL;
    double t0 = now();
    if (llmrt_tokenizer_load(argv[1], &tok) != LLMRT_OK) {
        fprintf(stderr, "load: %s\n", llmrt_last_error());
        return 1;
    }
    double load_s = now() - t0;
    size_t len = 0;
    char *text = read_file(argv[2], &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 1;
    }
    double best_whole = 1e30, best_lines = 1e30;
    size_t tokens_whole = 0, tokens_lines = 0;
    for (int r = 0; r < repeat; r++) {
        /* A fresh tokenizer state each round would be fairer to a cold cache,
         * but HF keeps its cache across calls too. */
        int32_t *ids = NULL;
        size_t n = 0;
        t0 = now();
        if (llmrt_tokenizer_encode(tok, text, len, 0, &ids, &n) != LLMRT_OK) {
            fprintf(stderr, "encode: %s\n", llmrt_last_error());
            return 1;
        }
        double t = now() - t0;
        if (t < best_whole) best_whole = t;
        tokens_whole = n;
        free(ids);

        size_t total = 0;
        t0 = now();
        for (size_t start = 0; start < len;) {
            const char *nl = memchr(text + start, '\n', len - start);
            size_t end = nl ? (size_t)(nl - text) : len;
            if (llmrt_tokenizer_encode(tok, text + start, end - start, 0, &ids, &n) != LLMRT_OK) {
                fprintf(stderr, "encode: %s\n", llmrt_last_error());
                return 1;
            }
            total += n;
            free(ids);
            start = end + 1;
        }
        t = now() - t0;
        if (t < best_lines) best_lines = t;
        tokens_lines = total;
    }
    double mb = (double)len / 1e6;
    if (json)
        printf("{\"tokenizer\": \"%s\", \"bytes\": %zu, \"load_s\": %.3f, \"whole_mb_s\": %.3f, \"lines_mb_s\": %.3f, "
               "\"tokens_whole\": %zu, \"tokens_lines\": %zu}\n",
               argv[1], len, load_s, mb / best_whole, mb / best_lines, tokens_whole, tokens_lines);
    else
        printf("%s: %.2f MB, load %.2f s | whole text %.2f MB/s (%zu tokens) | line by line %.2f MB/s (%zu tokens)\n",
               argv[1], mb, load_s, mb / best_whole, tokens_whole, mb / best_lines, tokens_lines);
    free(text);
    llmrt_tokenizer_free(tok);
    return 0;
}
