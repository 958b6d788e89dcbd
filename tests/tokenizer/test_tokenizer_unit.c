/* Self-contained tokenizer tests: tiny hand-made tokenizer.json files with
 * known merges and known ids, byte fallback, added tokens, decoders,
 * streaming, invalid UTF-8, and malformed files (the error names the field). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/tokenizer.h"
#include "test_util.h"

/* A SentencePiece-style tokenizer as LLaMA-2 / Mistral ship it. */
static const char *sp_json(const char *normalizer_extra, int fuse_unk) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,"
             " \"added_tokens\": ["
             "  {\"id\": 0, \"content\": \"<unk>\", \"special\": true, \"normalized\": false},"
             "  {\"id\": 1, \"content\": \"<s>\", \"special\": true, \"normalized\": false},"
             "  {\"id\": 2, \"content\": \"</s>\", \"special\": true, \"normalized\": false}],"
             " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [%s"
             "   {\"type\": \"Prepend\", \"prepend\": \"\\u2581\"},"
             "   {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},"
             " \"pre_tokenizer\": null,"
             " \"post_processor\": {\"type\": \"TemplateProcessing\","
             "   \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
             "   \"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}},"
             " \"decoder\": {\"type\": \"Sequence\", \"decoders\": ["
             "   {\"type\": \"Replace\", \"pattern\": {\"String\": \"\\u2581\"}, \"content\": \" \"},"
             "   {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
             " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": \"<unk>\", \"fuse_unk\": %s, \"byte_fallback\": true,"
             "   \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"\\u2581\": 3, \"a\": 4, \"b\": 5, \"c\": 6, \"ab\": 7,"
             "     \"abc\": 8, \"\\u2581ab\": 9, \"\\u2581abc\": 10, \"<0xC3>\": 11, \"<0xA9>\": 12, \"<0xE2>\": 13,"
             "     \"<0x82>\": 14, \"<0xAC>\": 15, \"\\u00e9\": 16},"
             "   \"merges\": [\"a b\", \"ab c\", \"\\u2581 ab\", \"\\u2581 abc\"]}}",
             normalizer_extra, fuse_unk ? "true" : "false");
    return buf;
}

static llmrt_tokenizer *load_json(const char *json) {
    llmrt_tokenizer *tok = NULL;
    llmrt_status st = llmrt_tokenizer_from_json(json, strlen(json), "test.json", &tok);
    CHECK_MSG(st == LLMRT_OK, "%s", llmrt_last_error());
    return tok;
}

static int ids_equal(const int32_t *a, size_t n, const int32_t *b, size_t m) {
    return n == m && (n == 0 || memcmp(a, b, n * sizeof *a) == 0);
}

static void check_encode(llmrt_tokenizer *tok, const char *text, size_t len, int flags, const int32_t *want,
                         size_t want_n) {
    int32_t *ids = NULL;
    size_t n = 0;
    llmrt_status st = llmrt_tokenizer_encode(tok, text, len, flags, &ids, &n);
    CHECK_MSG(st == LLMRT_OK, "%s", llmrt_last_error());
    int ok = ids_equal(ids, n, want, want_n);
    CHECK_MSG(ok, "encode \"%.*s\": got %zu ids", (int)len, text, n);
    if (!ok) {
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}

static void check_decode(llmrt_tokenizer *tok, const int32_t *ids, size_t n, int flags, const char *want) {
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(llmrt_tokenizer_decode(tok, ids, n, flags, &text, &len));
    CHECK_MSG(text && len == strlen(want) && memcmp(text, want, len) == 0, "decode: got \"%s\", want \"%s\"",
              text ? text : "(null)", want);
    free(text);
}

/* Feeds ids one at a time; the chunks must be valid UTF-8 and concatenate to
 * the full decode. */
static void check_stream(llmrt_tokenizer *tok, const int32_t *ids, size_t n, int flags) {
    char *full = NULL;
    size_t full_len = 0;
    CHECK_OK(llmrt_tokenizer_decode(tok, ids, n, flags, &full, &full_len));
    llmrt_detokenizer *d = NULL;
    CHECK_OK(llmrt_detokenizer_create(tok, flags, &d));
    char *joined = calloc(full_len + 64, 1);
    size_t joined_len = 0;
    for (size_t i = 0; i <= n && d; i++) {
        const char *chunk = NULL;
        size_t len = 0;
        if (i < n) CHECK_OK(llmrt_detokenizer_step(d, ids[i], &chunk, &len));
        else CHECK_OK(llmrt_detokenizer_flush(d, &chunk, &len));
        /* never a partial character: a chunk ends on a complete sequence */
        if (len) {
            unsigned char last_lead = 0;
            size_t k = len;
            while (k > 0 && (((unsigned char)chunk[k - 1]) & 0xC0) == 0x80) k--;
            if (k > 0) last_lead = (unsigned char)chunk[k - 1];
            size_t need = last_lead >= 0xF0 ? 4 : last_lead >= 0xE0 ? 3 : last_lead >= 0xC0 ? 2 : 1;
            CHECK_MSG(len - (k - 1) == need, "stream chunk %zu ends in a partial character", i);
        }
        if (joined_len + len <= full_len + 32) memcpy(joined + joined_len, chunk, len);
        joined_len += len;
    }
    CHECK_MSG(joined_len == full_len && memcmp(joined, full, full_len) == 0, "stream \"%.*s\" != decode \"%s\"",
              (int)(joined_len < full_len + 32 ? joined_len : 0), joined, full);
    free(joined);
    free(full);
    llmrt_detokenizer_free(d);
}

static void test_sentencepiece(void) {
    llmrt_tokenizer *tok = load_json(sp_json("", 0));
    if (!tok) return;
    /* ▁ a b c: "a b" (rank 0) then "ab c" (rank 1) then "▁ abc" (rank 3). */
    check_encode(tok, "abc", 3, 0, (int32_t[]){10}, 1);
    check_encode(tok, "ab", 2, 0, (int32_t[]){9}, 1);
    check_encode(tok, "abc", 3, LLMRT_ENCODE_ADD_SPECIAL, (int32_t[]){1, 10}, 2);
    check_encode(tok, "abc ab", 6, 0, (int32_t[]){10, 9}, 2);
    check_encode(tok, "", 0, 0, NULL, 0);
    check_encode(tok, "", 0, LLMRT_ENCODE_ADD_SPECIAL, (int32_t[]){1}, 1);
    /* é is in the vocabulary; € falls back to its bytes; d is unknown. */
    check_encode(tok, "\xC3\xA9", 2, 0, (int32_t[]){3, 16}, 2);
    check_encode(tok, "\xE2\x82\xAC", 3, 0, (int32_t[]){3, 13, 14, 15}, 4);
    check_encode(tok, "d", 1, 0, (int32_t[]){3, 0}, 2);
    check_encode(tok, "dd", 2, 0, (int32_t[]){3, 0, 0}, 3);
    /* Special tokens in the text are never split; the normalizer's prefix
     * applies to each segment between them. */
    check_encode(tok, "<s>abc", 6, 0, (int32_t[]){1, 10}, 2);
    check_encode(tok, "ab</s>ab", 8, 0, (int32_t[]){9, 2, 9}, 3);
    /* Invalid UTF-8 becomes U+FFFD (EF BF BD: no byte tokens, so unk). */
    check_encode(tok, "\xFF", 1, 0, (int32_t[]){3, 0}, 2);
    check_encode(tok, "ab\xC3", 3, 0, (int32_t[]){9, 0}, 2);

    check_decode(tok, (int32_t[]){1, 10}, 2, 0, "<s> abc");
    check_decode(tok, (int32_t[]){1, 10}, 2, LLMRT_DECODE_SKIP_SPECIAL, "abc");
    check_decode(tok, (int32_t[]){3, 11, 12}, 3, 0, "\xC3\xA9");
    check_decode(tok, (int32_t[]){11}, 1, 0, "\xEF\xBF\xBD");
    check_decode(tok, (int32_t[]){11, 11}, 2, 0, "\xEF\xBF\xBD\xEF\xBF\xBD"); /* one U+FFFD per byte */
    check_decode(tok, (int32_t[]){10, 999, -5, 9}, 4, 0, "abc ab");       /* unknown ids skipped */
    check_decode(tok, NULL, 0, 0, "");

    int32_t stream_ids[] = {10, 3, 11, 12, 9, 13, 14, 15, 1, 11};
    check_stream(tok, stream_ids, sizeof stream_ids / sizeof *stream_ids, 0);
    int32_t skip_ids[] = {10, 3, 11, 12, 1, 9, 13, 14, 1, 15, 2, 3, 11, 2, 12};
    check_stream(tok, skip_ids, sizeof skip_ids / sizeof *skip_ids, LLMRT_DECODE_SKIP_SPECIAL);
    /* With <s> skipped, € (E2 82 AC) and a stray C3 form one invalid byte
     * group: the full decode rewrites the € already streamed. The stream goes
     * on without failing (HF's DecodeStream raises here). */
    llmrt_detokenizer *d = NULL;
    CHECK_OK(llmrt_detokenizer_create(tok, LLMRT_DECODE_SKIP_SPECIAL, &d));
    for (size_t i = 0; d && i < sizeof stream_ids / sizeof *stream_ids; i++) {
        const char *chunk;
        size_t len;
        CHECK_OK(llmrt_detokenizer_step(d, stream_ids[i], &chunk, &len));
    }
    const char *rest;
    if (d) CHECK_OK(llmrt_detokenizer_flush(d, &rest, NULL));
    llmrt_detokenizer_free(d);

    CHECK(llmrt_tokenizer_vocab_size(tok) == 17);
    CHECK(llmrt_tokenizer_token_to_id(tok, "\xE2\x96\x81" "abc") == 10);
    CHECK(llmrt_tokenizer_token_to_id(tok, "zzz") == -1);
    CHECK(strcmp(llmrt_tokenizer_id_to_token(tok, 9), "\xE2\x96\x81" "ab") == 0);
    CHECK(llmrt_tokenizer_id_to_token(tok, 17) == NULL);
    CHECK(llmrt_tokenizer_bos_id(tok) == 1 && llmrt_tokenizer_eos_id(tok) == 2);
    CHECK(llmrt_tokenizer_is_special(tok, 1) && !llmrt_tokenizer_is_special(tok, 10));
    llmrt_tokenizer_free(tok);

    tok = load_json(sp_json("", 1)); /* fuse_unk: consecutive unknowns become one <unk> */
    if (tok) check_encode(tok, "dd", 2, 0, (int32_t[]){3, 0}, 2);
    llmrt_tokenizer_free(tok);

    tok = load_json(sp_json("{\"type\": \"NFC\"},", 0)); /* e + U+0301 composes to é */
    if (tok) check_encode(tok, "e\xCC\x81", 3, 0, (int32_t[]){3, 16}, 2);
    llmrt_tokenizer_free(tok);
}

/* A byte-level BPE (GPT-2 style) with every byte's mapped char in the vocab. */
static char *byte_level_json(int ignore_merges) {
    json_t *vocab = json_object();
    int next = 0, extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        unsigned cp = printable ? (unsigned)b : 256u + (unsigned)extra++;
        char s[4] = {0};
        if (cp < 0x80) s[0] = (char)cp;
        else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
        }
        json_object_set_new(vocab, s, json_integer(next++));
    }
    const char *merged[] = {"He", "ll", "Hell", "Hello", "\xC4\xA0w", "or", "\xC4\xA0wor", "ld", "\xC4\xA0world", "xyz"};
    for (size_t i = 0; i < sizeof merged / sizeof *merged; i++) json_object_set_new(vocab, merged[i], json_integer(next++));
    json_object_set_new(vocab, "<|endoftext|>", json_integer(next++));
    json_t *merges = json_array();
    const char *m[] = {"H e", "l l", "He ll", "Hell o", "\xC4\xA0 w", "o r", "\xC4\xA0w or", "l d", "\xC4\xA0wor ld"};
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) json_array_append_new(merges, json_string(m[i]));
    json_t *model = json_pack("{s:s, s:o, s:o, s:b}", "type", "BPE", "vocab", vocab, "merges", merges,
                              "ignore_merges", ignore_merges);
    json_t *root = json_pack(
        "{s:[{s:i, s:s, s:b, s:b}], s:n, s:{s:s, s:b, s:b}, s:{s:s}, s:{s:s}, s:o}", "added_tokens", "id", next - 1,
        "content", "<|endoftext|>", "special", 1, "normalized", 1, "normalizer", "pre_tokenizer", "type",
        "ByteLevel", "add_prefix_space", 0, "use_regex", 1, "post_processor", "type", "ByteLevel", "decoder", "type",
        "ByteLevel", "model", model);
    char *text = json_dumps(root, 0);
    json_decref(root);
    return text;
}

static void test_byte_level(void) {
    char *json = byte_level_json(0);
    llmrt_tokenizer *tok = load_json(json);
    free(json);
    if (!tok) return;
    int32_t hello = llmrt_tokenizer_token_to_id(tok, "Hello");
    int32_t world = llmrt_tokenizer_token_to_id(tok, "\xC4\xA0world");
    int32_t eot = llmrt_tokenizer_token_to_id(tok, "<|endoftext|>");
    int32_t space = llmrt_tokenizer_token_to_id(tok, "\xC4\xA0");
    CHECK(hello > 0 && world > 0 && eot > 0 && space > 0);
    check_encode(tok, "Hello world", 11, 0, (int32_t[]){hello, world}, 2);
    check_encode(tok, "Hello<|endoftext|> world", 24, 0, (int32_t[]){hello, eot, world}, 3);
    /* "x y z" have no merges; the regex splits "  " runs as GPT-2 does. */
    int32_t x = llmrt_tokenizer_token_to_id(tok, "x"), y = llmrt_tokenizer_token_to_id(tok, "y"),
            z = llmrt_tokenizer_token_to_id(tok, "z");
    check_encode(tok, "xyz", 3, 0, (int32_t[]){x, y, z}, 3);
    check_encode(tok, "Hello  world", 12, 0, (int32_t[]){hello, space, world}, 3);
    check_decode(tok, (int32_t[]){hello, world}, 2, 0, "Hello world");
    check_decode(tok, (int32_t[]){hello, eot, world}, 3, LLMRT_DECODE_SKIP_SPECIAL, "Hello world");
    check_decode(tok, (int32_t[]){hello, eot, world}, 3, 0, "Hello<|endoftext|> world");
    /* 日 = E6 97 A5: three byte tokens; the stream holds them until complete. */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(llmrt_tokenizer_encode(tok, "a\xE6\x97\xA5 \xF0\x9F\x91\x8D!", 10, 0, &ids, &n));
    CHECK(n == 10);
    check_stream(tok, ids, n, 0);
    /* A cut character decodes to U+FFFD in the full decode and the flush. */
    if (n >= 3) check_stream(tok, ids, 3, 0);
    if (n >= 3) check_decode(tok, ids, 3, 0, "a\xEF\xBF\xBD");
    free(ids);
    /* Invalid UTF-8: maximal subparts → one U+FFFD each, as Python's "replace". */
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_OK(llmrt_tokenizer_encode(tok, "\xE2\x82x\xFF", 4, 0, &a, &na));
    CHECK_OK(llmrt_tokenizer_encode(tok, "\xEF\xBF\xBDx\xEF\xBF\xBD", 7, 0, &b, &nb));
    CHECK(ids_equal(a, na, b, nb));
    free(a);
    free(b);
    llmrt_tokenizer_free(tok);

    json = byte_level_json(1); /* ignore_merges: a word in the vocab is one token */
    tok = load_json(json);
    free(json);
    if (tok) {
        int32_t xyz = llmrt_tokenizer_token_to_id(tok, "xyz");
        check_encode(tok, "xyz", 3, 0, (int32_t[]){xyz}, 1);
    }
    llmrt_tokenizer_free(tok);
}

static void check_load_error(const char *json, llmrt_status want, const char *fragment) {
    llmrt_tokenizer *tok = NULL;
    llmrt_status st = llmrt_tokenizer_from_json(json, strlen(json), "bad.json", &tok);
    CHECK_MSG(st == want, "status %d, want %d (%s)", st, want, llmrt_last_error());
    CHECK_MSG(strstr(llmrt_last_error(), fragment) != NULL, "error \"%s\" does not name \"%s\"", llmrt_last_error(),
              fragment);
    CHECK(tok == NULL);
    llmrt_tokenizer_free(tok);
}

static void test_malformed(void) {
    check_load_error("{", LLMRT_ERR_FORMAT, "invalid JSON");
    check_load_error("[]", LLMRT_ERR_FORMAT, "expected a JSON object");
    check_load_error("{}", LLMRT_ERR_FORMAT, "$.model: missing");
    check_load_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": {}}}", LLMRT_ERR_UNSUPPORTED, "$.model.type");
    check_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": []}}", LLMRT_ERR_FORMAT, "$.model.vocab");
    check_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}}", LLMRT_ERR_FORMAT, "$.model.vocab[\"a\"]");
    check_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}", LLMRT_ERR_FORMAT,
                     "$.model.merges[0]");
    check_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", LLMRT_ERR_FORMAT,
                     "$.model.merges[0]");
    check_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
                     LLMRT_ERR_FORMAT, "merged token \"ab\"");
    check_load_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"unk_token\": \"<unk>\"}}", LLMRT_ERR_FORMAT,
                     "$.model.unk_token");
    check_load_error("{\"normalizer\": {\"type\": \"Lowercase\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
                     LLMRT_ERR_UNSUPPORTED, "$.normalizer.type");
    check_load_error("{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\"}]},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
                     LLMRT_ERR_FORMAT, "$.normalizer.normalizers[0].prepend");
    check_load_error("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
                     LLMRT_ERR_UNSUPPORTED, "$.pre_tokenizer.pattern");
    check_load_error("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, \"behavior\": \"Sideways\"},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
                     LLMRT_ERR_UNSUPPORTED, "$.pre_tokenizer.behavior");
    check_load_error("{\"added_tokens\": [{\"content\": \"x\"}], \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
                     LLMRT_ERR_FORMAT, "$.added_tokens[0].id");
    check_load_error("{\"decoder\": {\"type\": \"CTC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}", LLMRT_ERR_UNSUPPORTED,
                     "$.decoder.type");
    check_load_error("{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}],"
                     " \"special_tokens\": {}}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
                     LLMRT_ERR_FORMAT, "$.post_processor.special_tokens[\"<s>\"]");
    /* the ids a post-processor adds must name tokens (a 64-bit id would wrap to a negative int32) */
    check_load_error("{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}],"
                     " \"special_tokens\": {\"<s>\": {\"ids\": [9223372036854775807]}}},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0}}}",
                     LLMRT_ERR_FORMAT, "$.post_processor.special_tokens[\"<s>\"].ids[0]: id 9223372036854775807 names no token");
    check_load_error("{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}],"
                     " \"special_tokens\": {\"<s>\": {\"ids\": [1]}}},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"a\": 2}}}",
                     LLMRT_ERR_FORMAT, "ids[0]: id 1 names no token of the vocabulary (3 ids)");
    check_load_error("{\"post_processor\": {\"type\": \"BertProcessing\", \"cls\": [\"[CLS]\", -1], \"sep\": [\"[SEP]\", 0]},"
                     " \"model\": {\"type\": \"BPE\", \"vocab\": {\"[SEP]\": 0}}}",
                     LLMRT_ERR_FORMAT, "$.post_processor.cls: id -1 names no token");
    llmrt_tokenizer *tok = NULL;
    CHECK(llmrt_tokenizer_load("/nonexistent/tokenizer.json", &tok) == LLMRT_ERR_IO && tok == NULL);
    CHECK(llmrt_tokenizer_from_json(NULL, 5, "x", &tok) == LLMRT_ERR_INVALID_ARGUMENT);
}

/* Strip (per token, as HF's) takes 64-bit counts from the JSON: past
 * INT_MAX it strips every leading space (2^32 + 1 used to wrap to 1). */
static void test_strip_counts(void) {
    llmrt_tokenizer *tok = load_json("{\"decoder\": {\"type\": \"Strip\", \"content\": \" \", \"start\": 4294967297, \"stop\": 0},"
                                     " \"model\": {\"type\": \"BPE\", \"vocab\": {\"   \": 0, \"a  \": 1}, \"merges\": []}}");
    if (!tok) return;
    check_decode(tok, (int32_t[]){0, 1}, 2, 0, "a  ");
    llmrt_tokenizer_free(tok);
}

/* Random bytes never crash encode, and decode of the ids gives valid text. */
static void test_random_bytes(void) {
    llmrt_tokenizer *tok = load_json(sp_json("{\"type\": \"NFC\"},", 0));
    char *json = byte_level_json(0);
    llmrt_tokenizer *bl = load_json(json);
    free(json);
    uint64_t state = 42;
    for (int iter = 0; iter < 300 && tok && bl; iter++) {
        char text[64];
        size_t len = test_rand_u64(&state) % sizeof text;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = test_rand_u64(&state);
            /* bias towards UTF-8 lead/continuation bytes and combining marks */
            text[i] = (char)(r % 4 == 0 ? 0x80 + (r >> 8) % 64 : r % 4 == 1 ? 0xCC + (r >> 8) % 40 : (r >> 8) % 256);
        }
        for (int k = 0; k < 2; k++) {
            llmrt_tokenizer *t = k ? bl : tok;
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK_OK(llmrt_tokenizer_encode(t, text, len, LLMRT_ENCODE_ADD_SPECIAL, &ids, &n));
            char *out = NULL;
            CHECK_OK(llmrt_tokenizer_decode(t, ids, n, 0, &out, NULL));
            free(out);
            if (iter % 10 == 0) check_stream(t, ids, n, 0);
            free(ids);
        }
    }
    llmrt_tokenizer_free(tok);
    llmrt_tokenizer_free(bl);
}

static void test_chat_errors(void) {
    llmrt_tokenizer *tok = load_json(sp_json("", 0));
    if (!tok) return;
    char *out = NULL;
    CHECK(llmrt_tokenizer_apply_chat_template(tok, "[]", NULL, &out) == LLMRT_ERR_NOT_FOUND);
    CHECK_OK(llmrt_tokenizer_set_chat_template(tok, "{{ messages }} something unknown"));
    CHECK(llmrt_tokenizer_chat_template_family(tok) == NULL);
    CHECK(llmrt_tokenizer_apply_chat_template(tok, "[]", NULL, &out) == LLMRT_ERR_UNSUPPORTED);
    const char *chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
                         "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    CHECK_OK(llmrt_tokenizer_set_chat_template(tok, chatml));
    CHECK(llmrt_tokenizer_chat_template_family(tok) && strcmp(llmrt_tokenizer_chat_template_family(tok), "chatml") == 0);
    CHECK(llmrt_tokenizer_apply_chat_template(tok, "{not json", NULL, &out) == LLMRT_ERR_INVALID_ARGUMENT);
    CHECK(llmrt_tokenizer_apply_chat_template(tok, "[{\"role\": 1}]", NULL, &out) == LLMRT_ERR_INVALID_ARGUMENT);
    llmrt_chat_options opt = {1, -1};
    CHECK_OK(llmrt_tokenizer_apply_chat_template(tok, "[{\"role\": \"user\", \"content\": \"hi\"}]", &opt, &out));
    CHECK(out && strcmp(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") == 0);
    free(out);
    const char *config = "{\"bos_token\": {\"content\": \"</s>\"}, \"eos_token\": \"<s>\", \"model_max_length\": 1e30}";
    CHECK_OK(llmrt_tokenizer_set_config_json(tok, config, strlen(config)));
    CHECK(llmrt_tokenizer_bos_id(tok) == 2 && llmrt_tokenizer_eos_id(tok) == 1);
    llmrt_tokenizer_free(tok);
}

int main(void) {
    RUN_TEST(test_sentencepiece);
    RUN_TEST(test_byte_level);
    RUN_TEST(test_malformed);
    RUN_TEST(test_strip_counts);
    RUN_TEST(test_random_bytes);
    RUN_TEST(test_chat_errors);
    return test_finish();
}
