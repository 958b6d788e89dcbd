/* The WordPiece pipeline of BERT tokenizers on a hand-made tokenizer.json
 * shaped as bert-base-uncased ships it: BertNormalizer (clean text, CJK
 * spacing, accents, lowercase), BertPreTokenizer, the WordPiece model with
 * "##" continuations and whole-word [UNK], [CLS] … [SEP] from the template,
 * and the WordPiece decoder; the cased variant; malformed models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/tokenizer.h"
#include "test_util.h"

static const char *bert_json(int lowercase, const char *model_extra) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,"
             " \"added_tokens\": ["
             "  {\"id\": 0, \"content\": \"[PAD]\", \"special\": true, \"normalized\": false},"
             "  {\"id\": 1, \"content\": \"[UNK]\", \"special\": true, \"normalized\": false},"
             "  {\"id\": 2, \"content\": \"[CLS]\", \"special\": true, \"normalized\": false},"
             "  {\"id\": 3, \"content\": \"[SEP]\", \"special\": true, \"normalized\": false},"
             "  {\"id\": 4, \"content\": \"[MASK]\", \"special\": true, \"normalized\": false}],"
             " \"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true, \"handle_chinese_chars\": true,"
             "   \"strip_accents\": null, \"lowercase\": %s},"
             " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
             " \"post_processor\": {\"type\": \"TemplateProcessing\","
             "   \"single\": [{\"SpecialToken\": {\"id\": \"[CLS]\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
             "     {\"SpecialToken\": {\"id\": \"[SEP]\", \"type_id\": 0}}],"
             "   \"pair\": [], \"special_tokens\": {\"[CLS]\": {\"id\": \"[CLS]\", \"ids\": [2], \"tokens\": [\"[CLS]\"]},"
             "     \"[SEP]\": {\"id\": \"[SEP]\", \"ids\": [3], \"tokens\": [\"[SEP]\"]}}},"
             " \"decoder\": {\"type\": \"WordPiece\", \"prefix\": \"##\", \"cleanup\": true},"
             " \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"continuing_subword_prefix\": \"##\","
             "   \"max_input_chars_per_word\": 12 %s,"
             "   \"vocab\": {\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"[MASK]\": 4, \"hello\": 5,"
             "     \",\": 6, \"world\": 7, \"!\": 8, \"na\": 9, \"##ive\": 10, \"\\u6771\": 11, \"\\u4eac\": 12,"
             "     \"don\": 13, \"'\": 14, \"t\": 15, \"un\": 16, \"##aff\": 17, \"##able\": 18, \"Hello\": 19,"
             "     \"\\u00efve\": 20, \"##\\u00efve\": 21, \"\\u043c\\u0438\\u0440\": 22, \".\": 23}}}",
             lowercase ? "true" : "false", model_extra);
    return buf;
}

static llmrt_tokenizer *load(const char *json) {
    llmrt_tokenizer *tok = NULL;
    llmrt_status st = llmrt_tokenizer_from_json(json, strlen(json), "bert.json", &tok);
    CHECK_MSG(st == LLMRT_OK, "%s", llmrt_last_error());
    return tok;
}

static void check_ids(llmrt_tokenizer *tok, const char *text, int flags, const int32_t *want, size_t want_n) {
    int32_t *ids = NULL;
    size_t n = 0;
    llmrt_status st = llmrt_tokenizer_encode(tok, text, strlen(text), flags, &ids, &n);
    CHECK_MSG(st == LLMRT_OK, "%s", llmrt_last_error());
    int ok = n == want_n && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    CHECK_MSG(ok, "encode \"%s\": got %zu ids, want %zu", text, n, want_n);
    if (!ok) {
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}

static void check_decode(llmrt_tokenizer *tok, const int32_t *ids, size_t n, int flags, const char *want) {
    char *text = NULL;
    size_t len = 0;
    llmrt_status st = llmrt_tokenizer_decode(tok, ids, n, flags, &text, &len);
    CHECK_MSG(st == LLMRT_OK && strcmp(text, want) == 0, "decode: got \"%s\", want \"%s\"", text ? text : "?", want);
    free(text);
}

#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)

static void test_uncased(void) {
    llmrt_tokenizer *tok = load(bert_json(1, ""));
    if (!tok) return;
    /* lowercase, punctuation split off, accents stripped (ï → i), CJK spaced */
    check_ids(tok, "Hello, World! NAÏVE\xE6\x9D\xB1\xE4\xBA\xAC", LLMRT_ENCODE_ADD_SPECIAL,
              IDS(2, 5, 6, 7, 8, 9, 10, 11, 12, 3));
    /* "don't" → don ' t; "unaffable" → un ##aff ##able; an unknown word is one [UNK] */
    check_ids(tok, "don't unaffable zzz", 0, IDS(13, 14, 15, 16, 17, 18, 1));
    /* a word with a part no piece covers is [UNK] whole, not its matched prefix */
    check_ids(tok, "unaffablex", 0, IDS(1));
    /* longer than max_input_chars_per_word (12): [UNK] */
    check_ids(tok, "unaffableaff", 0, IDS(16, 17, 18, 17));
    check_ids(tok, "unaffableaffx", 0, IDS(1));
    /* clean_text: control characters vanish, whitespace of any kind splits */
    check_ids(tok, "hel\x01lo\tworld\xE2\x80\x83!", 0, IDS(5, 7, 8));
    /* Cyrillic lowercased: МИР → мир */
    check_ids(tok, "\xD0\x9C\xD0\x98\xD0\xA0", 0, IDS(22));
    /* special tokens in text are matched before normalization */
    check_ids(tok, "[CLS] hello [SEP]", 0, IDS(2, 5, 3));
    check_ids(tok, "", LLMRT_ENCODE_ADD_SPECIAL, IDS(2, 3));
    /* the WordPiece decoder: continuations glued, cleanup before punctuation */
    check_decode(tok, IDS(2, 16, 17, 18, 6, 5, 23, 3), LLMRT_DECODE_SKIP_SPECIAL, "unaffable, hello.");
    check_decode(tok, IDS(13, 14, 15), 0, "don ' t");
    llmrt_tokenizer_free(tok);
}

static void test_cased(void) {
    llmrt_tokenizer *tok = load(bert_json(0, ""));
    if (!tok) return;
    /* no lowercase, so no accent stripping either (strip_accents: null) */
    check_ids(tok, "Hello na\xC3\xAFve", 0, IDS(19, 9, 21));
    check_ids(tok, "hello HELLO", 0, IDS(5, 1));
    llmrt_tokenizer_free(tok);
}

static void check_error(const char *json, llmrt_status want, const char *fragment) {
    llmrt_tokenizer *tok = NULL;
    llmrt_status st = llmrt_tokenizer_from_json(json, strlen(json), "bad.json", &tok);
    CHECK_MSG(st == want && strstr(llmrt_last_error(), fragment), "want '%s', got %s: %s", fragment,
              llmrt_status_name(st), llmrt_last_error());
    llmrt_tokenizer_free(tok);
}

static void test_malformed(void) {
    char json[4096];
    snprintf(json, sizeof json, "%s", bert_json(1, ""));
    char *unk = strstr(json, "\"unk_token\": \"[UNK]\"");
    CHECK(unk != NULL);
    if (unk) memcpy(unk, "\"unk_token\": \"[UNX]\"", 20);
    check_error(json, LLMRT_ERR_FORMAT, "$.model.unk_token");
    snprintf(json, sizeof json, "%s", bert_json(1, ""));
    char *max = strstr(json, "\"max_input_chars_per_word\": 12");
    if (max) memcpy(max, "\"max_input_chars_per_word\": -1", 30);
    check_error(json, LLMRT_ERR_FORMAT, "max_input_chars_per_word");
}

int main(void) {
    RUN_TEST(test_uncased);
    RUN_TEST(test_cased);
    RUN_TEST(test_malformed);
    return test_finish();
}
