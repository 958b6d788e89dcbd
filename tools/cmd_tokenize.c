/* llmrt tokenize — encode text (or decode ids) with a tokenizer.json, a
 * checkpoint directory, or the tokenizer embedded in an engine file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_args.h"

#include "commands.h"
#include "llmrt/llmrt.h"
#include "llmrt/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmrt tokenize --tokenizer FILE|DIR|ENGINE [--text TEXT] [--json] [--no-special]\n"
            "       llmrt tokenize --tokenizer FILE|DIR|ENGINE --decode 1,2,3 [--skip-special] [--json]\n\n"
            "  --tokenizer PATH   tokenizer.json, a checkpoint directory (tokenizer.json +\n"
            "                     tokenizer_config.json), or an engine file (JSON files at most 256 MiB)\n"
            "  --text TEXT        text to encode; without it stdin is read exactly as given\n"
            "                     (at most 256 MiB); the text must be valid UTF-8\n"
            "  --no-special       do not add the post-processor's special tokens (BOS/EOS)\n"
            "  --decode IDS       decode comma-separated ids instead of encoding\n"
            "  --skip-special     with --decode: drop special tokens\n"
            "  --json             print {\"ids\": [...]} (or {\"text\": ...} with --decode)\n");
}

static int is_engine_file(const char *path) {
    struct stat st; /* a FIFO would block fopen: leave it to the loader's refusal */
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[8] = {0};
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == 8 && memcmp(magic, "LLMRTENG", 8) == 0;
}

static int load(const char *path, llmrt_tokenizer **tok) {
    if (!is_engine_file(path)) return llmrt_tokenizer_load(path, tok) == LLMRT_OK;
    llmrt_engine_options options;
    llmrt_engine_options_init(&options);
    options.verify_checksum = 0;
    options.num_threads = 1;
    options.backend = "cpu"; /* only its tokenizer is read: no GPU needed, whatever it was built for */
    llmrt_engine *engine = NULL;
    if (llmrt_engine_load(path, &options, &engine) != LLMRT_OK) return 0;
    int ok = llmrt_engine_tokenizer(engine, tok) == LLMRT_OK;
    if (!ok) fprintf(stderr, "llmrt tokenize: %s: %s\n", path, llmrt_last_error());
    llmrt_engine_free(engine);
    return ok;
}

/* Prints s as a JSON string (UTF-8 passed through, controls escaped). */
static void print_json_string(const char *s, size_t len) {
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int parse_ids(const char *text, int32_t **ids, size_t *count) {
    size_t cap = 16, n = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return 0;
    const char *p = text;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 0x7FFFFFFF) {
            free(v);
            return 0;
        }
        if (n == cap) {
            int32_t *q = realloc(v, cap * 2 * sizeof *v);
            if (!q) {
                free(v);
                return 0;
            }
            v = q;
            cap *= 2;
        }
        v[n++] = (int32_t)x;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    *ids = v;
    *count = n;
    return 1;
}

/* The index of the first id the vocabulary has no token for, or count. */
static size_t first_unknown_id(const llmrt_tokenizer *tok, const int32_t *ids, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (!llmrt_tokenizer_id_to_token(tok, ids[i])) return i;
    return count;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL, *text = NULL, *decode = NULL;
    int json = 0, add_special = 1, skip_special = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--tokenizer") == 0 && has_value) {
            path = argv[++i];
        } else if (strcmp(a, "--text") == 0 && has_value) {
            text = argv[++i];
        } else if (strcmp(a, "--decode") == 0 && has_value) {
            decode = argv[++i];
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--no-special") == 0) {
            add_special = 0;
        } else if (strcmp(a, "--skip-special") == 0) {
            skip_special = 1;
        } else {
            fprintf(stderr, "llmrt tokenize: unknown option or missing value: %s\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "llmrt tokenize: --tokenizer is required\n\n");
        usage(stderr);
        return 2;
    }
    llmrt_tokenizer *tok = NULL;
    if (!load(path, &tok)) return report_failure("tokenize");
    int code = 0;
    if (decode) {
        int32_t *ids = NULL;
        size_t count = 0;
        char *out = NULL;
        size_t out_len = 0;
        size_t bad = 0;
        if (!parse_ids(decode, &ids, &count)) {
            fprintf(stderr, "llmrt tokenize: --decode: expected comma-separated non-negative ids\n");
            code = 2;
        } else if (count && (bad = first_unknown_id(tok, ids, count)) < count) {
            fprintf(stderr, "llmrt tokenize: --decode: id %d (position %zu) is outside the vocabulary (%zu ids)\n",
                    ids[bad], bad, llmrt_tokenizer_vocab_size(tok));
            code = 1;
        } else if (llmrt_tokenizer_decode(tok, ids, count, skip_special ? LLMRT_DECODE_SKIP_SPECIAL : 0, &out,
                                          &out_len) != LLMRT_OK) {
            code = report_failure("tokenize");
        } else if (json) {
            fputs("{\"text\": ", stdout);
            print_json_string(out, out_len);
            fputs("}\n", stdout);
        } else {
            fwrite(out, 1, out_len, stdout);
            putchar('\n');
        }
        free(ids);
        free(out);
        llmrt_tokenizer_free(tok);
        return code;
    }
    char *input = NULL;
    size_t len = 0;
    if (text) {
        len = strlen(text);
    } else {
        if (llmrt_read_stream(stdin, "stdin", LLMRT_READ_MAX, &input, &len) != LLMRT_OK) {
            llmrt_tokenizer_free(tok);
            return report_failure("tokenize");
        }
        text = input;
    }
    if (!cli_check_utf8("llmrt tokenize", input ? "stdin" : "--text", text, len)) {
        free(input);
        llmrt_tokenizer_free(tok);
        return 1;
    }
    int32_t *ids = NULL;
    size_t count = 0;
    if (llmrt_tokenizer_encode(tok, text, len, add_special ? LLMRT_ENCODE_ADD_SPECIAL : 0, &ids, &count) != LLMRT_OK) {
        code = report_failure("tokenize");
    } else {
        fputs(json ? "{\"ids\": [" : "", stdout);
        for (size_t i = 0; i < count; i++) printf(i ? (json ? ", %d" : ",%d") : "%d", ids[i]);
        fputs(json ? "]}\n" : "\n", stdout);
    }
    free(ids);
    free(input);
    llmrt_tokenizer_free(tok);
    return code;
}
