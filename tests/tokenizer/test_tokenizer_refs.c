/* Exactness against HF `tokenizers` on real vocabularies: every string of
 * tests/tokenizer/corpus.json, encoded without and with special tokens,
 * decoded with and without skip_special_tokens, and streamed, must equal the
 * references make_refs.py recorded in tests/tokenizer/refs/<name>.json.
 *
 * The vocabularies come from scripts/fetch-test-data.sh (run here when they
 * are missing). A missing refs file is a failure, never a skip. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/tokenizer.h"
#include "test_util.h"

static const char *names[] = {"gpt2", "llama2", "llama3", "qwen3"};

static char *data_dir(void) {
    const char *env = getenv("LLMRT_TESTDATA");
    char *dir = malloc(4096);
    if (env && *env) snprintf(dir, 4096, "%s", env);
    else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME"))
        snprintf(dir, 4096, "%s/llmrt/testdata", getenv("XDG_CACHE_HOME"));
    else snprintf(dir, 4096, "%s/.cache/llmrt/testdata", getenv("HOME") ? getenv("HOME") : "/tmp");
    return dir;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static int hex_value(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The input bytes of a case: "text" as UTF-8, or raw "hex" bytes. */
static char *case_input(json_t *c, size_t *len) {
    json_t *hex = json_object_get(c, "hex");
    if (json_is_string(hex)) {
        const char *h = json_string_value(hex);
        size_t n = strlen(h) / 2;
        char *out = malloc(n + 1);
        for (size_t i = 0; i < n; i++) out[i] = (char)(hex_value(h[2 * i]) * 16 + hex_value(h[2 * i + 1]));
        *len = n;
        return out;
    }
    json_t *text = json_object_get(c, "text");
    *len = json_string_length(text);
    char *out = malloc(*len + 1);
    memcpy(out, json_string_value(text), *len + 1);
    return out;
}

static int ids_match(json_t *want, const int32_t *ids, size_t n) {
    if (!json_is_array(want) || json_array_size(want) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, i)) != ids[i]) return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n, json_t *want) {
    fprintf(stderr, "    %s got: ", label);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, "%d ", ids[i]);
    fprintf(stderr, "\n    %s want:", label);
    for (size_t i = 0; i < json_array_size(want) && i < 40; i++)
        fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
    fprintf(stderr, "\n");
}

static int text_match(json_t *want, const char *got, size_t len) {
    return json_is_string(want) && json_string_length(want) == len && memcmp(json_string_value(want), got, len) == 0;
}

static void run_case(llmrt_tokenizer *tok, const char *name, size_t index, json_t *c) {
    size_t len;
    char *input = case_input(c, &len);
    int32_t *ids = NULL, *ids_special = NULL;
    size_t n = 0, n_special = 0;
    CHECK_OK(llmrt_tokenizer_encode(tok, input, len, 0, &ids, &n));
    CHECK_OK(llmrt_tokenizer_encode(tok, input, len, LLMRT_ENCODE_ADD_SPECIAL, &ids_special, &n_special));
    int ok = ids_match(json_object_get(c, "ids"), ids, n);
    CHECK_MSG(ok, "%s case %zu: encode \"%.40s\"", name, index, input);
    if (!ok) print_ids("ids", ids, n, json_object_get(c, "ids"));
    ok = ids_match(json_object_get(c, "ids_special"), ids_special, n_special);
    CHECK_MSG(ok, "%s case %zu: encode with special tokens \"%.40s\"", name, index, input);
    if (!ok) print_ids("ids_special", ids_special, n_special, json_object_get(c, "ids_special"));

    /* Decode the reference ids, so a decode check does not hang on encode. */
    json_t *ref_ids = json_object_get(c, "ids_special");
    size_t m = json_array_size(ref_ids);
    int32_t *rids = malloc((m + 1) * sizeof *rids);
    for (size_t i = 0; i < m; i++) rids[i] = (int32_t)json_integer_value(json_array_get(ref_ids, i));
    for (int skip = 0; skip < 2; skip++) {
        char *text = NULL;
        size_t text_len = 0;
        CHECK_OK(llmrt_tokenizer_decode(tok, rids, m, skip ? LLMRT_DECODE_SKIP_SPECIAL : 0, &text, &text_len));
        json_t *want = json_object_get(c, skip ? "decoded_skip" : "decoded");
        CHECK_MSG(text && text_match(want, text, text_len), "%s case %zu: decode%s: got \"%.60s\" want \"%.60s\"", name,
                  index, skip ? " (skip special)" : "", text ? text : "", json_string_value(want));
        free(text);
    }
    /* Streaming: chunks as HF's DecodeStream (when recorded), concatenating to the decode. */
    llmrt_detokenizer *d = NULL;
    CHECK_OK(llmrt_detokenizer_create(tok, 0, &d));
    json_t *stream = json_object_get(c, "stream");
    size_t cap = 256, total = 0;
    char *joined = malloc(cap);
    for (size_t i = 0; i <= m && d; i++) {
        const char *chunk = NULL;
        size_t chunk_len = 0;
        if (i < m) CHECK_OK(llmrt_detokenizer_step(d, rids[i], &chunk, &chunk_len));
        else CHECK_OK(llmrt_detokenizer_flush(d, &chunk, &chunk_len));
        if (!chunk) break;
        if (i < m && json_is_array(stream))
            CHECK_MSG(text_match(json_array_get(stream, i), chunk, chunk_len), "%s case %zu: stream chunk %zu \"%s\"",
                      name, index, i, chunk);
        while (total + chunk_len + 1 > cap) joined = realloc(joined, cap *= 2);
        memcpy(joined + total, chunk, chunk_len);
        total += chunk_len;
    }
    CHECK_MSG(text_match(json_object_get(c, "decoded"), joined, total), "%s case %zu: stream != decode", name, index);
    llmrt_detokenizer_free(d);
    free(joined);
    free(rids);
    free(ids);
    free(ids_special);
    free(input);
}

int main(void) {
    char *dir = data_dir();
    char path[8192];
    int missing = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        snprintf(path, sizeof path, "%s/%s/tokenizer.json", dir, names[k]);
        if (!file_exists(path)) missing = 1;
    }
    if (missing) {
        char command[8400];
        snprintf(command, sizeof command, "bash '%s/scripts/fetch-test-data.sh' '%s'", LLMRT_SOURCE_DIR, dir);
        fprintf(stderr, "test data missing in %s: running %s\n", dir, command);
        CHECK_MSG(system(command) == 0, "scripts/fetch-test-data.sh failed");
    }
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        const char *name = names[k];
        snprintf(path, sizeof path, "%s/tests/tokenizer/refs/%s.json", LLMRT_SOURCE_DIR, name);
        json_error_t jerr;
        json_t *refs = json_load_file(path, JSON_ALLOW_NUL, &jerr);
        CHECK_MSG(refs != NULL, "%s: reference file missing or invalid (%s): run tests/tokenizer/make_refs.py", path,
                  jerr.text);
        if (!refs) continue;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        llmrt_tokenizer *tok = NULL;
        CHECK_OK(llmrt_tokenizer_load(path, &tok));
        json_t *cases = json_object_get(refs, "cases");
        CHECK_MSG(json_array_size(cases) > 0, "%s: no cases", name);
        int before = test_checks_failed;
        for (size_t i = 0; tok && i < json_array_size(cases); i++) run_case(tok, name, i, json_array_get(cases, i));
        fprintf(stderr, "%s: %zu cases, %d failed checks (%s)\n", name, json_array_size(cases),
                test_checks_failed - before, json_string_value(json_object_get(refs, "generator")));
        llmrt_tokenizer_free(tok);
        json_decref(refs);
    }
    free(dir);
    return test_finish();
}
