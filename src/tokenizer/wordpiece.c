/* The WordPiece model of BERT tokenizers (HF tokenizers' models/wordpiece):
 * a word is cut greedily into the longest pieces the vocabulary has, every
 * piece after the first spelled with the continuing prefix ("##"); a word
 * with a part no piece covers, or longer than max_input_chars_per_word
 * characters, becomes the unknown token as a whole. */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

llmrt_status tok_wordpiece_parse(json_t *model, const char *where, tok_bpe *bpe) {
    bpe->wordpiece = 1;
    LLMRT_TRY(tok_vocab_parse(model, where, &bpe->vocab));
    const char *s = NULL;
    size_t len = 0;
    LLMRT_TRY(tok_json_string(model, "unk_token", where, 0, &s, &len));
    if (!s) s = "[UNK]", len = 5;
    bpe->unk_id = tok_strmap_get(&bpe->vocab, s, len);
    if (bpe->unk_id < 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s.unk_token: \"%.60s\" is not in the vocabulary", where, s);
    s = NULL;
    LLMRT_TRY(tok_json_string(model, "continuing_subword_prefix", where, 0, &s, &len));
    if (!s) s = "##", len = 2;
    bpe->continuing_prefix = tok_dup_bytes(s, len);
    bpe->continuing_prefix_len = len;
    if (!bpe->continuing_prefix) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    bpe->max_input_chars_per_word = 100;
    json_t *max = json_object_get(model, "max_input_chars_per_word");
    if (max && !json_is_null(max)) {
        if (!json_is_integer(max) || json_integer_value(max) < 1)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.max_input_chars_per_word: expected a positive integer", where);
        bpe->max_input_chars_per_word = (size_t)json_integer_value(max);
    }
    return LLMRT_OK;
}

/* Code points in s (invalid bytes count one each: they never match). */
static size_t count_chars(const char *s, size_t len) {
    size_t chars = 0;
    for (size_t i = 0; i < len; chars++) {
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        i += n ? n : 1;
    }
    return chars;
}

llmrt_status tok_wordpiece_tokenize(const tok_bpe *bpe, const char *s, size_t len, tok_ids *out) {
    if (len == 0) return LLMRT_OK;
    if (count_chars(s, len) > bpe->max_input_chars_per_word) return tok_ids_push(out, bpe->unk_id);
    const size_t mark = out->len;
    tok_buf piece = {0};
    llmrt_status st = LLMRT_OK;
    for (size_t start = 0; start < len && st == LLMRT_OK;) {
        int32_t found = -1;
        size_t end = len;
        /* the longest piece first, shortening a whole character at a time */
        while (end > start) {
            piece.len = 0;
            if (start > 0) st = tok_buf_append(&piece, bpe->continuing_prefix, bpe->continuing_prefix_len);
            if (st == LLMRT_OK) st = tok_buf_append(&piece, s + start, end - start);
            if (st != LLMRT_OK) break;
            found = tok_strmap_get(&bpe->vocab, piece.data, piece.len);
            if (found >= 0) break;
            do end--;
            while (end > start && ((uint8_t)s[end] & 0xC0) == 0x80);
        }
        if (st != LLMRT_OK) break;
        if (found < 0) { /* no piece here: the whole word is unknown */
            out->len = mark;
            st = tok_ids_push(out, bpe->unk_id);
            break;
        }
        st = tok_ids_push(out, found);
        start = end;
    }
    tok_buf_free(&piece);
    return st;
}
