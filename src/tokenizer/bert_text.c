/* The text stages of BERT tokenizers, as HF tokenizers' BertNormalizer and
 * BertPreTokenizer define them.
 *
 * Normalizer, in this order: clean_text drops NUL, U+FFFD and control
 * characters and turns every whitespace into ' '; handle_chinese_chars puts
 * spaces around CJK ideographs; strip_accents decomposes and drops
 * combining marks; lowercase lowers letters. Lowercasing covers ASCII,
 * Latin-1, Latin Extended-A, Greek and Cyrillic (what BERT's vocabularies
 * hold); other scripts pass unchanged.
 *
 * Pre-tokenizer: split at whitespace (removed) and at punctuation (each
 * mark its own piece). Punctuation is ASCII's, Latin-1's and the general,
 * CJK and fullwidth punctuation blocks: an approximation of Unicode's P*
 * categories that covers the characters BERT vocabularies know. */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* Control characters as BERT's _is_control: categories Cc and Cf, except
 * the whitespace ones (tab, newline, carriage return). */
static int is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    if (c < 0x20 || (c >= 0x7F && c <= 0x9F)) return 1;
    return c == 0xAD || (c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x180E ||
           (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x2064) ||
           (c >= 0x2066 && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) || c == 0x110BD ||
           (c >= 0x1D173 && c <= 0x1D17A) || c == 0xE0001 || (c >= 0xE0020 && c <= 0xE007F);
}

/* CJK Unified Ideographs and their extensions and compatibility blocks
 * (BERT's _is_chinese_char). */
static int is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_punctuation(uint32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    return c == 0xA1 || c == 0xA7 || c == 0xAB || c == 0xB6 || c == 0xB7 || c == 0xBB || c == 0xBF ||
           c == 0x37E || c == 0x387 || (c >= 0x55A && c <= 0x55F) || c == 0x589 || c == 0x5BE ||
           (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E) || (c >= 0x3001 && c <= 0x3003) ||
           (c >= 0x3008 && c <= 0x3011) || (c >= 0x3014 && c <= 0x301F) || c == 0x30FB ||
           (c >= 0xFF01 && c <= 0xFF0F && c != 0xFF04 && c != 0xFF0B) || (c >= 0xFF1A && c <= 0xFF20 && c != 0xFF1C &&
           c != 0xFF1D && c != 0xFF1E) || (c >= 0xFF3B && c <= 0xFF3D) || c == 0xFF3F || c == 0xFF5B || c == 0xFF5D ||
           (c >= 0xFF5F && c <= 0xFF65);
}

static uint32_t to_lower(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
    if (c >= 0x100 && c <= 0x17F) {
        /* Latin Extended-A: pairs, upper even, except the odd-based runs */
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 ? c + 1 : c;
        if (c == 0x130) return 'i';
        if (c == 0x178) return 0xFF;
        if (c == 0x138 || c == 0x149 || c == 0x17F) return c;
        return c % 2 ? c : c + 1;
    }
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32; /* Greek */
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c >= 0x410 && c <= 0x42F) return c + 32; /* Cyrillic */
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    if (c >= 0x460 && c <= 0x4FF && c != 0x482 && !(c >= 0x483 && c <= 0x489)) {
        if (c == 0x4C0) return 0x4CF;
        if (c >= 0x4C1 && c <= 0x4CE) return c % 2 ? c + 1 : c;
        return c % 2 ? c : c + 1;
    }
    return c;
}

static llmrt_status push_cp(tok_buf *out, uint32_t c) {
    char utf8[4];
    return tok_buf_append(out, utf8, tok_utf8_encode(c, utf8));
}

llmrt_status tok_bert_normalize(const tok_normalizer *n, const char *s, size_t len, tok_buf *out) {
    tok_buf a = {0}, b = {0};
    llmrt_status st = LLMRT_OK;
    out->len = 0;
    for (size_t i = 0; i < len && st == LLMRT_OK;) { /* clean_text and CJK spacing in one pass */
        uint32_t c;
        size_t k = tok_utf8_decode(s + i, len - i, &c);
        if (!k) c = 0xFFFD, k = tok_utf8_invalid_span(s + i, len - i);
        i += k;
        if (n->clean_text && (c == 0 || c == 0xFFFD || is_control(c))) continue;
        if (n->clean_text && tok_is_whitespace(c)) c = ' ';
        if (n->handle_chinese_chars && is_chinese(c)) {
            st = tok_buf_append(&a, " ", 1);
            if (st == LLMRT_OK) st = push_cp(&a, c);
            if (st == LLMRT_OK) st = tok_buf_append(&a, " ", 1);
        } else {
            st = push_cp(&a, c);
        }
    }
    const tok_buf *text = &a;
    if (st == LLMRT_OK && n->strip_accents) {
        st = tok_strip_accents_append(&b, a.data ? a.data : "", a.len);
        text = &b;
    }
    for (size_t i = 0; i < text->len && st == LLMRT_OK;) {
        uint32_t c;
        size_t k = tok_utf8_decode(text->data + i, text->len - i, &c);
        if (!k) c = 0xFFFD, k = 1;
        i += k;
        st = push_cp(out, n->lowercase ? to_lower(c) : c);
    }
    tok_buf_free(&a);
    tok_buf_free(&b);
    if (st == LLMRT_OK && !out->data) st = tok_buf_append(out, "", 0);
    return st;
}

llmrt_status tok_bert_pretokenize(const char *s, size_t len, size_t base, tok_pieces *out) {
    size_t word = 0; /* start of the current run of ordinary characters */
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t k = tok_utf8_decode(s + i, len - i, &c);
        if (!k) c = 0xFFFD, k = tok_utf8_invalid_span(s + i, len - i);
        const int space = tok_is_whitespace(c), punct = !space && is_punctuation(c);
        if (space || punct) {
            if (i > word) LLMRT_TRY(tok_pieces_push(out, base + word, i - word));
            if (punct) LLMRT_TRY(tok_pieces_push(out, base + i, k));
            word = i + k;
        }
        i += k;
    }
    if (len > word) LLMRT_TRY(tok_pieces_push(out, base + word, len - word));
    return LLMRT_OK;
}
