/* Fuzz target: tokenizer.json text (a checkpoint's file: untrusted). A file
 * that does not load must say why. One that loads must:
 *  - encode any bytes (invalid UTF-8 included: the input itself, and a few
 *    fixed strings) to ids of its vocabulary, or fail with a message;
 *  - decode those ids, and ids outside the vocabulary (skipped), to
 *    well-formed UTF-8;
 *  - stream the same ids to chunks of well-formed UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "fuzz_check.h"
#include "llmrt/tokenizer.h"

static void check_decode(const llmrt_tokenizer *tok, const int32_t *ids, size_t n) {
    for (int flags = 0; flags <= LLMRT_DECODE_SKIP_SPECIAL; flags++) {
        char *text = NULL;
        size_t len = 0;
        FUZZ_CHECK(llmrt_tokenizer_decode(tok, ids, n, flags, &text, &len) == LLMRT_OK && text, "decode failed: %s",
                   llmrt_last_error());
        FUZZ_CHECK(fuzz_utf8_valid(text, len) && text[len] == '\0', "decode: not UTF-8 (%zu bytes)", len);
        free(text);
    }
    llmrt_detokenizer *d = NULL;
    FUZZ_CHECK(llmrt_detokenizer_create(tok, 0, &d) == LLMRT_OK, "detokenizer: %s", llmrt_last_error());
    for (size_t i = 0; i <= n; i++) {
        const char *chunk = NULL;
        size_t len = 0;
        const llmrt_status st = i < n ? llmrt_detokenizer_step(d, ids[i], &chunk, &len)
                                      : llmrt_detokenizer_flush(d, &chunk, &len);
        FUZZ_CHECK(st == LLMRT_OK && (!len || chunk), "stream step %zu failed: %s", i, llmrt_last_error());
        FUZZ_CHECK(!len || fuzz_utf8_valid(chunk, len), "stream step %zu: not UTF-8", i);
    }
    llmrt_detokenizer_free(d);
}

static void check_encode(const llmrt_tokenizer *tok, const char *text, size_t len) {
    const size_t vocab = llmrt_tokenizer_vocab_size(tok);
    for (int flags = 0; flags <= LLMRT_ENCODE_ADD_SPECIAL; flags++) {
        int32_t *ids = NULL;
        size_t n = 0;
        llmrt_error_clear();
        if (llmrt_tokenizer_encode(tok, text, len, flags, &ids, &n) != LLMRT_OK) {
            FUZZ_CHECK(llmrt_last_error()[0] != '\0', "encode failed without a message");
            continue;
        }
        FUZZ_CHECK(!n || ids, "encode: %zu ids, no array", n);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < vocab && llmrt_tokenizer_id_to_token(tok, ids[i]),
                       "encode (flags %d) of %zu bytes: id %d of %zu ids (vocabulary %zu) names no token", flags, len,
                       ids[i], n, vocab);
        check_decode(tok, ids, n);
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_log_set_level(LLMRT_LOG_ERROR); /* warnings about odd inputs are expected */
    llmrt_error_clear();
    llmrt_tokenizer *tok = NULL;
    if (llmrt_tokenizer_from_json((const char *)data, size, "fuzz.json", &tok) != LLMRT_OK) {
        FUZZ_CHECK(!tok && llmrt_last_error()[0] != '\0', "a failed load left a tokenizer or no message");
        return 0;
    }
    static const char *const texts[] = {"", " ", "Hello world", "abc ab", "<s>abc</s>", "\xC3\xA9\xE2\x82\xAC x",
                                        "\xFF\xC3", "  \n\t 12345 it's", "<|endoftext|><|eot_id|>"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) check_encode(tok, texts[i], strlen(texts[i]));
    check_encode(tok, (const char *)data, size < 512 ? size : 512);
    const size_t vocab = llmrt_tokenizer_vocab_size(tok);
    /* ids from the input's bytes: negative, past the vocabulary, special */
    int32_t ids[64];
    size_t n = 0;
    for (size_t i = 0; i + 4 <= size && n < 64; i += 4 + (size / 256)) {
        uint32_t v;
        memcpy(&v, data + i, 4);
        ids[n] = (int32_t)(n % 2 ? v : v % (vocab + 2));
        n++;
    }
    check_decode(tok, ids, n);
    /* the vocabulary's lookups agree where a string names one id */
    for (size_t id = 0; id < vocab && id < 300; id++) {
        const char *s = llmrt_tokenizer_id_to_token(tok, (int32_t)id);
        FUZZ_CHECK(!s || llmrt_tokenizer_token_to_id(tok, s) >= 0, "id %zu's token \"%s\" has no id", id, s);
    }
    (void)llmrt_tokenizer_bos_id(tok);
    (void)llmrt_tokenizer_eos_id(tok);
    llmrt_tokenizer_free(tok);
    return 0;
}
