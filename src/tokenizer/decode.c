/* Decoding: ids → token strings → the decoder chain (ByteLevel, Replace,
 * ByteFallback, Fuse, Strip, Metaspace, Sequence) → text, as HF's decode.
 * And the streaming detokenizer, which follows HF's DecodeStream: it decodes
 * a short window of recent ids, emits only what extends the text already
 * emitted, and holds back while the window's text ends in U+FFFD (a
 * character whose bytes have not all arrived). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static const char replacement_char[] = "\xEF\xBF\xBD";

/* --- parsing ----------------------------------------------------------------------------- */

static llmrt_status parse_decoder(json_t *node, const char *type, const char *where, void *item) {
    tok_decoder *d = item;
    const char *s = NULL;
    size_t len = 0;
    if (strcmp(type, "ByteLevel") == 0) {
        d->type = DEC_BYTE_LEVEL;
    } else if (strcmp(type, "ByteFallback") == 0) {
        d->type = DEC_BYTE_FALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        d->type = DEC_FUSE;
    } else if (strcmp(type, "Replace") == 0) {
        d->type = DEC_REPLACE;
        json_t *pattern = json_object_get(node, "pattern");
        char sub[300];
        snprintf(sub, sizeof sub, "%s.pattern", where);
        if (!json_is_object(pattern) || !json_object_get(pattern, "String"))
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: only {\"String\": ...} patterns are supported", sub);
        LLMRT_TRY(tok_json_string(pattern, "String", sub, 1, &s, &len));
        if (len == 0) return llmrt_error(LLMRT_ERR_FORMAT, "%s.String: empty pattern", sub);
        d->pattern = tok_dup_bytes(s, len);
        d->pattern_len = len;
        LLMRT_TRY(tok_json_string(node, "content", where, 1, &s, &len));
        d->content = tok_dup_bytes(s, len);
        d->content_len = len;
        if (!d->pattern || !d->content) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    } else if (strcmp(type, "Strip") == 0) {
        d->type = DEC_STRIP;
        LLMRT_TRY(tok_json_string(node, "content", where, 1, &s, &len));
        if (len == 0 || tok_utf8_decode(s, len, &d->strip_char) != len)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.content: expected one character", where);
        json_t *start = json_object_get(node, "start"), *stop = json_object_get(node, "stop");
        if (!json_is_integer(start) || !json_is_integer(stop) || json_integer_value(start) < 0 ||
            json_integer_value(stop) < 0)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: start and stop must be non-negative integers", where);
        /* counts past INT_MAX strip as much as INT_MAX does: everything (a cast would wrap) */
        d->strip_start = json_integer_value(start) > INT_MAX ? INT_MAX : (int)json_integer_value(start);
        d->strip_stop = json_integer_value(stop) > INT_MAX ? INT_MAX : (int)json_integer_value(stop);
    } else if (strcmp(type, "WordPiece") == 0) {
        d->type = DEC_WORDPIECE;
        LLMRT_TRY(tok_json_string(node, "prefix", where, 0, &s, &len));
        if (!s) s = "##", len = 2;
        d->pattern = tok_dup_bytes(s, len);
        d->pattern_len = len;
        d->cleanup = tok_json_bool(node, "cleanup", 1);
        if (!d->pattern) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    } else if (strcmp(type, "Metaspace") == 0) {
        d->type = DEC_METASPACE;
        LLMRT_TRY(tok_json_string(node, "replacement", where, 1, &s, &len));
        uint32_t cp;
        if (len == 0 || len > 4 || tok_utf8_decode(s, len, &cp) != len)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.replacement: expected one character", where);
        memcpy(d->replacement, s, len);
        d->replacement_len = len;
        const char *scheme = NULL;
        LLMRT_TRY(tok_json_string(node, "prepend_scheme", where, 0, &scheme, NULL));
        d->prepend = scheme ? strcmp(scheme, "never") != 0 : tok_json_bool(node, "add_prefix_space", 1);
    } else {
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.type: decoder \"%s\" is not supported", where, type);
    }
    return LLMRT_OK;
}

static void free_decoders(void *items, size_t count) { tok_decoders_free(items, count); }

llmrt_status tok_decoders_parse(json_t *node, const char *where, tok_decoder **out, size_t *count) {
    static const tok_component_kind kind = {.sequence_key = "decoders", .noun = "decoders",
                                            .item_size = sizeof(tok_decoder), .capacity = 16,
                                            .parse = parse_decoder, .free_list = free_decoders};
    void *items = NULL;
    llmrt_status st = tok_components_parse(node, where, &kind, &items, count);
    *out = items;
    return st;
}

void tok_decoders_free(tok_decoder *d, size_t count) {
    if (!d) return;
    for (size_t i = 0; i < count; i++) {
        free(d[i].pattern);
        free(d[i].content);
    }
    free(d);
}

/* --- a list of token strings ------------------------------------------------------------- */

typedef struct str_list {
    tok_buf text;
    size_t *offsets, *lens;
    size_t count, cap;
} str_list;

static llmrt_status list_push(str_list *l, const char *s, size_t len) {
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        size_t *o = realloc(l->offsets, cap * sizeof *o);
        if (o) l->offsets = o;
        size_t *n = o ? realloc(l->lens, cap * sizeof *n) : NULL;
        if (!o || !n) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory decoding");
        l->lens = n;
        l->cap = cap;
    }
    l->offsets[l->count] = l->text.len;
    l->lens[l->count] = len;
    l->count++;
    return tok_buf_append(&l->text, s, len);
}

/* Extends the last string (which must be the last text in the buffer). */
static llmrt_status list_extend_last(str_list *l, const char *s, size_t len) {
    l->lens[l->count - 1] += len;
    return tok_buf_append(&l->text, s, len);
}

static void list_clear(str_list *l) {
    l->count = 0;
    l->text.len = 0;
}

static void list_free(str_list *l) {
    tok_buf_free(&l->text);
    free(l->offsets);
    free(l->lens);
    memset(l, 0, sizeof *l);
}

#define ITEM(l, i) ((l)->text.data + (l)->offsets[i])

/* Pushes s[0..len) with every non-overlapping occurrence of `pattern`,
 * left to right, replaced by `with`. */
static llmrt_status push_replaced(str_list *out, const char *s, size_t len, const char *pattern, size_t pattern_len,
                                  const char *with, size_t with_len) {
    llmrt_status st = list_push(out, "", 0);
    size_t k = 0, copied = 0;
    while (st == LLMRT_OK && k + pattern_len <= len) {
        if (memcmp(s + k, pattern, pattern_len) == 0) {
            st = list_extend_last(out, s + copied, k - copied);
            if (st == LLMRT_OK) st = list_extend_last(out, with, with_len);
            k += pattern_len;
            copied = k;
        } else {
            k++;
        }
    }
    if (st == LLMRT_OK) st = list_extend_last(out, s + copied, len - copied);
    return st;
}

/* --- the decoders -------------------------------------------------------------------------- */

static int byte_token(const char *s, size_t len, uint8_t *byte) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return 0;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + d;
    }
    *byte = (uint8_t)v;
    return 1;
}

static llmrt_status flush_bytes(str_list *out, tok_buf *bytes) {
    if (bytes->len == 0) return LLMRT_OK;
    llmrt_status st = LLMRT_OK;
    if (tok_utf8_valid(bytes->data, bytes->len)) st = list_push(out, bytes->data, bytes->len);
    else /* HF: one U+FFFD per byte when the group is not valid UTF-8 */
        for (size_t i = 0; i < bytes->len && st == LLMRT_OK; i++) st = list_push(out, replacement_char, 3);
    bytes->len = 0;
    return st;
}

/* HF's WordPiece decoder on token i: a continuation loses its prefix, any
 * other token after the first gets a space; then the English cleanup of
 * spaces before punctuation and contractions. */
static llmrt_status push_wordpiece(str_list *out, const tok_decoder *d, const char *s, size_t len, size_t i) {
    static const char *const cleanup[][2] = {{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                                             {" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"},
                                             {" 've", "'ve"}, {" 're", "'re"}};
    tok_buf token = {0};
    llmrt_status st;
    if (len >= d->pattern_len && memcmp(s, d->pattern, d->pattern_len) == 0) {
        st = tok_buf_append(&token, s + d->pattern_len, len - d->pattern_len);
    } else {
        st = i > 0 ? tok_buf_append(&token, " ", 1) : LLMRT_OK;
        if (st == LLMRT_OK) st = tok_buf_append(&token, s, len);
    }
    for (size_t k = 0; d->cleanup && st == LLMRT_OK && k < sizeof cleanup / sizeof cleanup[0]; k++) {
        str_list replaced = {0};
        st = push_replaced(&replaced, token.data ? token.data : "", token.len, cleanup[k][0], strlen(cleanup[k][0]),
                           cleanup[k][1], strlen(cleanup[k][1]));
        if (st == LLMRT_OK) {
            token.len = 0;
            st = tok_buf_append(&token, replaced.text.data ? replaced.text.data : "", replaced.lens[0]);
        }
        list_free(&replaced);
    }
    if (st == LLMRT_OK) st = list_push(out, token.data ? token.data : "", token.len);
    tok_buf_free(&token);
    return st;
}

static llmrt_status apply_decoder(const tok_decoder *d, const str_list *in, str_list *out) {
    list_clear(out);
    llmrt_status st = LLMRT_OK;
    switch (d->type) {
    case DEC_BYTE_LEVEL: {
        const tok_byte_map *map = tok_byte_level_map();
        tok_buf bytes = {0};
        for (size_t i = 0; i < in->count && st == LLMRT_OK; i++) {
            const char *s = ITEM(in, i);
            size_t len = in->lens[i], start = bytes.len;
            int all_mapped = 1;
            for (size_t k = 0; k < len && st == LLMRT_OK;) {
                uint32_t cp;
                size_t n = tok_utf8_decode(s + k, len - k, &cp);
                if (!n || cp >= 324 || map->byte_of_cp[cp] < 0) {
                    all_mapped = 0;
                    break;
                }
                char b = (char)map->byte_of_cp[cp];
                st = tok_buf_append(&bytes, &b, 1);
                k += n;
            }
            if (!all_mapped) { /* HF keeps a token with unmapped chars as its own bytes */
                bytes.len = start;
                st = tok_buf_append(&bytes, s, len);
            }
        }
        tok_buf text = {0};
        if (st == LLMRT_OK) st = tok_utf8_append_lossy(&text, bytes.data ? bytes.data : "", bytes.len);
        if (st == LLMRT_OK) st = list_push(out, text.data ? text.data : "", text.len);
        tok_buf_free(&bytes);
        tok_buf_free(&text);
        return st;
    }
    case DEC_BYTE_FALLBACK: {
        tok_buf bytes = {0};
        for (size_t i = 0; i < in->count && st == LLMRT_OK; i++) {
            uint8_t b;
            if (byte_token(ITEM(in, i), in->lens[i], &b)) {
                st = tok_buf_append(&bytes, &b, 1);
            } else {
                st = flush_bytes(out, &bytes);
                if (st == LLMRT_OK) st = list_push(out, ITEM(in, i), in->lens[i]);
            }
        }
        if (st == LLMRT_OK) st = flush_bytes(out, &bytes);
        tok_buf_free(&bytes);
        return st;
    }
    case DEC_FUSE:
        st = list_push(out, "", 0);
        for (size_t i = 0; i < in->count && st == LLMRT_OK; i++) st = list_extend_last(out, ITEM(in, i), in->lens[i]);
        return st;
    case DEC_REPLACE:
        for (size_t i = 0; i < in->count && st == LLMRT_OK; i++)
            st = push_replaced(out, ITEM(in, i), in->lens[i], d->pattern, d->pattern_len, d->content, d->content_len);
        return st;
    case DEC_STRIP:
        for (size_t i = 0; i < in->count && st == LLMRT_OK; i++) {
            const char *s = ITEM(in, i);
            size_t a = 0, b = in->lens[i];
            for (int k = 0; k < d->strip_start && a < b; k++) {
                uint32_t cp = 0;
                size_t n = tok_utf8_decode(s + a, b - a, &cp);
                if (!n || cp != d->strip_char) break;
                a += n;
            }
            for (int k = 0; k < d->strip_stop && b > a; k++) {
                size_t p = b - 1;
                while (p > a && ((uint8_t)s[p] & 0xC0) == 0x80) p--;
                uint32_t cp = 0;
                size_t n = tok_utf8_decode(s + p, b - p, &cp);
                if (!n || cp != d->strip_char) break;
                b = p;
            }
            st = list_push(out, s + a, b - a);
        }
        return st;
    case DEC_WORDPIECE:
        for (size_t i = 0; i < in->count && st == LLMRT_OK; i++) st = push_wordpiece(out, d, ITEM(in, i), in->lens[i], i);
        return st;
    case DEC_METASPACE:
        /* ▁ → ' ', except that the first token loses its ▁ entirely when a
         * prefix was prepended at encoding (HF's Metaspace decoder). */
        for (size_t i = 0; i < in->count && st == LLMRT_OK; i++) {
            int drop = i == 0 && d->prepend;
            st = push_replaced(out, ITEM(in, i), in->lens[i], d->replacement, d->replacement_len, " ", drop ? 0 : 1);
        }
        return st;
    }
    return llmrt_error(LLMRT_ERR_INTERNAL, "tokenizer: unknown decoder");
}

static llmrt_status decode_into(const llmrt_tokenizer *tok, const int32_t *ids, size_t count, int flags, tok_buf *out) {
    str_list a = {0}, b = {0};
    llmrt_status st = LLMRT_OK;
    int skip_special = (flags & LLMRT_DECODE_SKIP_SPECIAL) != 0;
    for (size_t i = 0; i < count && st == LLMRT_OK; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= tok->vocab_size || !tok->id_to_token[id]) continue;
        if (skip_special && tok->id_is_special[id]) continue;
        st = list_push(&a, tok->id_to_token[id], strlen(tok->id_to_token[id]));
    }
    for (size_t k = 0; k < tok->decoder_count && st == LLMRT_OK; k++) {
        st = apply_decoder(&tok->decoders[k], &a, &b);
        str_list swap = a;
        a = b;
        b = swap;
    }
    out->len = 0;
    for (size_t i = 0; i < a.count && st == LLMRT_OK; i++) {
        if (!tok->has_decoder && i > 0) st = tok_buf_append(out, " ", 1); /* HF joins with spaces then */
        if (st == LLMRT_OK) st = tok_buf_append(out, ITEM(&a, i), a.lens[i]);
    }
    if (st == LLMRT_OK) st = tok_buf_append(out, "", 0);
    list_free(&a);
    list_free(&b);
    return st;
}

llmrt_status llmrt_tokenizer_decode(const llmrt_tokenizer *tok, const int32_t *ids, size_t count, int flags,
                                    char **out_text, size_t *out_len) {
    if (!tok || !out_text || (!ids && count))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "llmrt_tokenizer_decode: NULL argument");
    tok_buf out = {0};
    llmrt_status st = decode_into(tok, ids, count, flags, &out);
    if (st != LLMRT_OK) {
        tok_buf_free(&out);
        return st;
    }
    *out_text = out.data;
    if (out_len) *out_len = out.len;
    return LLMRT_OK;
}

/* --- streaming ------------------------------------------------------------------------------ */

struct llmrt_detokenizer {
    const llmrt_tokenizer *tok;
    int flags;
    tok_ids ids;          /* the window: context ids, then ids not yet emitted */
    tok_buf prefix;       /* decode of ids[0 .. prefix_index) */
    size_t prefix_index;
    tok_buf text, emitted; /* scratch decode; the text returned */
};

llmrt_status llmrt_detokenizer_create(const llmrt_tokenizer *tok, int decode_flags, llmrt_detokenizer **out) {
    if (!tok || !out) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "llmrt_detokenizer_create: NULL argument");
    llmrt_detokenizer *d = calloc(1, sizeof *d);
    if (!d) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "llmrt_detokenizer_create: out of memory");
    d->tok = tok;
    d->flags = decode_flags;
    *out = d;
    return LLMRT_OK;
}

void llmrt_detokenizer_free(llmrt_detokenizer *d) {
    if (!d) return;
    tok_ids_free(&d->ids);
    tok_buf_free(&d->prefix);
    tok_buf_free(&d->text);
    tok_buf_free(&d->emitted);
    free(d);
}

static int ends_with_replacement(const tok_buf *b) {
    return b->len >= 3 && memcmp(b->data + b->len - 3, replacement_char, 3) == 0;
}

/* Emits decode(window)[len(prefix):] when it is longer than the prefix and
 * (unless `final`) does not end in U+FFFD; then slides the window. */
static llmrt_status advance(llmrt_detokenizer *d, int final, const char **out_text, size_t *out_len) {
    d->emitted.len = 0;
    LLMRT_TRY(tok_buf_append(&d->emitted, "", 0));
    LLMRT_TRY(decode_into(d->tok, d->ids.data, d->ids.len, d->flags, &d->text));
    if (d->text.len > d->prefix.len && (final || !ends_with_replacement(&d->text))) {
        /* HF's DecodeStream fails here (InvalidPrefix): a later token changed
         * text already emitted. That happens only when stray byte-fallback
         * tokens extend a complete character's byte group, which ByteFallback
         * then decodes as U+FFFDs. Emitted text cannot be taken back, so the
         * stream resynchronises and goes on; a generation never fails on it. */
        int rewritten = memcmp(d->text.data, d->prefix.data ? d->prefix.data : "", d->prefix.len) != 0;
        if (!rewritten)
            LLMRT_TRY(tok_buf_append(&d->emitted, d->text.data + d->prefix.len, d->text.len - d->prefix.len));
        size_t new_prefix_index = d->ids.len - d->prefix_index;
        memmove(d->ids.data, d->ids.data + d->prefix_index, new_prefix_index * sizeof *d->ids.data);
        d->ids.len = new_prefix_index;
        LLMRT_TRY(decode_into(d->tok, d->ids.data, d->ids.len, d->flags, &d->prefix));
        d->prefix_index = new_prefix_index;
    }
    *out_text = d->emitted.data;
    if (out_len) *out_len = d->emitted.len;
    return LLMRT_OK;
}

llmrt_status llmrt_detokenizer_step(llmrt_detokenizer *d, int32_t id, const char **out_text, size_t *out_len) {
    if (!d || !out_text) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "llmrt_detokenizer_step: NULL argument");
    /* A window whose prefix was never valid text gets one as soon as it is. */
    if (d->prefix.len == 0 && d->ids.len > 0) {
        LLMRT_TRY(decode_into(d->tok, d->ids.data, d->ids.len, d->flags, &d->text));
        if (!ends_with_replacement(&d->text)) {
            d->prefix.len = 0;
            LLMRT_TRY(tok_buf_append(&d->prefix, d->text.data, d->text.len));
            d->prefix_index = d->ids.len;
        }
    }
    LLMRT_TRY(tok_ids_push(&d->ids, id));
    return advance(d, 0, out_text, out_len);
}

llmrt_status llmrt_detokenizer_flush(llmrt_detokenizer *d, const char **out_text, size_t *out_len) {
    if (!d || !out_text) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "llmrt_detokenizer_flush: NULL argument");
    return advance(d, 1, out_text, out_len);
}
