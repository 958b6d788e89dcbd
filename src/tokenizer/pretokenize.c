/* Pre-tokenizers: split normalized text into the pieces the model tokenizes
 * one by one. Split (regex or string, with HF's five delimiter behaviours),
 * ByteLevel (GPT-2's regex; the byte → unicode mapping itself happens in the
 * model, on raw bytes), Metaspace, WhitespaceSplit, and Sequence of them.
 *
 * HF compiles its regexes with Oniguruma; PCRE2 with UTF and UCP agrees with
 * it on the constructs tokenizers use (\p{L}, \p{N}, \s, (?i:...), (?!\S)). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* GPT-2's pattern, which ByteLevel uses when use_regex is true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

llmrt_status tok_regex_compile(const char *pattern, size_t len, int literal, const char *where, pcre2_code **out) {
    int error;
    PCRE2_SIZE error_offset;
    uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len, options, &error, &error_offset, NULL);
    if (!code) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error, message, sizeof message);
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: regex does not compile at offset %zu: %s", where,
                           (size_t)error_offset, (const char *)message);
    }
    /* JIT makes matching several times faster; without it (a platform PCRE2
     * lacks JIT for) pcre2_match interprets, still correct. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    *out = code;
    return LLMRT_OK;
}

llmrt_status tok_pieces_push(tok_pieces *p, size_t offset, size_t len) {
    tok_piece *d = tok_grow(p->data, p->len, &p->cap, sizeof *d, 64);
    if (!d) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for pieces");
    p->data = d;
    p->data[p->len++] = (tok_piece){offset, len};
    return LLMRT_OK;
}

static llmrt_status parse_behavior(json_t *node, const char *where, tok_split_behavior *out) {
    const char *b;
    LLMRT_TRY(tok_json_string(node, "behavior", where, 1, &b, NULL));
    if (strcmp(b, "Removed") == 0) *out = SPLIT_REMOVED;
    else if (strcmp(b, "Isolated") == 0) *out = SPLIT_ISOLATED;
    else if (strcmp(b, "MergedWithPrevious") == 0) *out = SPLIT_MERGED_WITH_PREVIOUS;
    else if (strcmp(b, "MergedWithNext") == 0) *out = SPLIT_MERGED_WITH_NEXT;
    else if (strcmp(b, "Contiguous") == 0) *out = SPLIT_CONTIGUOUS;
    else return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.behavior: unknown behavior \"%s\"", where, b);
    return LLMRT_OK;
}

static llmrt_status parse_pretokenizer(json_t *node, const char *type, const char *where, void *item) {
    tok_pretokenizer *p = item;
    if (strcmp(type, "Split") == 0) {
        p->type = PRE_SPLIT;
        json_t *pattern = json_object_get(node, "pattern");
        char sub[300];
        snprintf(sub, sizeof sub, "%s.pattern", where);
        const char *s = NULL;
        size_t len = 0;
        if (json_is_object(pattern) && json_object_get(pattern, "Regex")) {
            LLMRT_TRY(tok_json_string(pattern, "Regex", sub, 1, &s, &len));
            LLMRT_TRY(tok_regex_compile(s, len, 0, sub, &p->regex));
        } else if (json_is_object(pattern) && json_object_get(pattern, "String")) {
            LLMRT_TRY(tok_json_string(pattern, "String", sub, 1, &s, &len));
            LLMRT_TRY(tok_regex_compile(s, len, 1, sub, &p->regex));
        } else {
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: expected {\"Regex\": ...} or {\"String\": ...}", sub);
        }
        LLMRT_TRY(parse_behavior(node, where, &p->behavior));
        p->invert = tok_json_bool(node, "invert", 0);
    } else if (strcmp(type, "ByteLevel") == 0) {
        p->type = PRE_BYTE_LEVEL;
        p->add_prefix_space = tok_json_bool(node, "add_prefix_space", 1);
        if (tok_json_bool(node, "use_regex", 1))
            LLMRT_TRY(tok_regex_compile(gpt2_pattern, sizeof gpt2_pattern - 1, 0, where, &p->regex));
        p->behavior = SPLIT_ISOLATED;
    } else if (strcmp(type, "Metaspace") == 0) {
        p->type = PRE_METASPACE;
        const char *r;
        size_t rlen;
        LLMRT_TRY(tok_json_string(node, "replacement", where, 1, &r, &rlen));
        uint32_t cp;
        if (rlen == 0 || rlen > 4 || tok_utf8_decode(r, rlen, &cp) != rlen)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.replacement: expected one character", where);
        memcpy(p->replacement, r, rlen);
        p->replacement_len = rlen;
        p->split = tok_json_bool(node, "split", 1);
        const char *scheme = NULL;
        LLMRT_TRY(tok_json_string(node, "prepend_scheme", where, 0, &scheme, NULL));
        if (!scheme) p->prepend_scheme = tok_json_bool(node, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
        else if (strcmp(scheme, "always") == 0) p->prepend_scheme = PREPEND_ALWAYS;
        else if (strcmp(scheme, "first") == 0) p->prepend_scheme = PREPEND_FIRST;
        else if (strcmp(scheme, "never") == 0) p->prepend_scheme = PREPEND_NEVER;
        else return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.prepend_scheme: unknown scheme \"%s\"", where, scheme);
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        p->type = PRE_WHITESPACE_SPLIT;
    } else if (strcmp(type, "BertPreTokenizer") == 0) {
        p->type = PRE_BERT;
    } else {
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.type: pre-tokenizer \"%s\" is not supported", where, type);
    }
    return LLMRT_OK;
}

static void free_pretokenizers(void *items, size_t count) { tok_pretokenizers_free(items, count); }

llmrt_status tok_pretokenizers_parse(json_t *node, const char *where, tok_pretokenizer **out, size_t *count,
                                     int *byte_level) {
    static const tok_component_kind kind = {.sequence_key = "pretokenizers", .noun = "pre-tokenizers",
                                            .item_size = sizeof(tok_pretokenizer), .capacity = 16,
                                            .parse = parse_pretokenizer, .free_list = free_pretokenizers};
    *out = NULL;
    *count = 0;
    *byte_level = 0;
    void *items = NULL;
    size_t n = 0;
    LLMRT_TRY(tok_components_parse(node, where, &kind, &items, &n));
    tok_pretokenizer *list = items;
    llmrt_status st = LLMRT_OK;
    for (size_t i = 0; st == LLMRT_OK && i < n; i++) {
        /* The byte → unicode mapping is done by the model on raw bytes, which
         * is only the same when nothing after ByteLevel looks at the text. */
        if (list[i].type == PRE_BYTE_LEVEL) {
            if (i + 1 != n)
                st = llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: a ByteLevel pre-tokenizer must come last", where);
            *byte_level = 1;
        }
    }
    if (st != LLMRT_OK) {
        tok_pretokenizers_free(list, n);
        return st;
    }
    *out = list;
    *count = n;
    return LLMRT_OK;
}

void tok_pretokenizers_free(tok_pretokenizer *p, size_t count) {
    if (!p) return;
    for (size_t i = 0; i < count; i++)
        if (p[i].regex) pcre2_code_free(p[i].regex);
    free(p);
}

/* One range of a piece, as HF's find_matches yields them: matches and the
 * text between them, covering the piece. */
typedef struct range {
    size_t start, end;
    int is_match;
} range;

typedef struct ranges {
    range *data;
    size_t len, cap;
} ranges;

static llmrt_status ranges_push(ranges *r, size_t start, size_t end, int is_match) {
    range *d = tok_grow(r->data, r->len, &r->cap, sizeof *d, 64);
    if (!d) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for splits");
    r->data = d;
    r->data[r->len++] = (range){start, end, is_match};
    return LLMRT_OK;
}

static llmrt_status find_regex(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t len, ranges *r) {
    size_t prev = 0, at = 0;
    while (at <= len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            return llmrt_error(LLMRT_ERR_INTERNAL, "tokenizer: regex match failed: %s", (const char *)message);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t start = ov[0], end = ov[1];
        if (prev != start) LLMRT_TRY(ranges_push(r, prev, start, 0));
        LLMRT_TRY(ranges_push(r, start, end, 1));
        prev = end;
        if (end == start) { /* an empty match: search on after the next character */
            uint32_t cp;
            size_t step = start < len ? tok_utf8_decode(s + start, len - start, &cp) : 1;
            at = start + (step ? step : 1);
        } else {
            at = end;
        }
    }
    if (prev != len) LLMRT_TRY(ranges_push(r, prev, len, 0));
    return LLMRT_OK;
}

/* Matches of single characters: the Metaspace replacement, or whitespace. */
static llmrt_status find_chars(const char *s, size_t len, const char *ch, size_t ch_len, ranges *r) {
    size_t prev = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        if (!n) n = 1;
        int hit = ch ? (n == ch_len && memcmp(s + i, ch, n) == 0) : tok_is_whitespace(cp);
        if (hit) {
            if (prev != i) LLMRT_TRY(ranges_push(r, prev, i, 0));
            LLMRT_TRY(ranges_push(r, i, i + n, 1));
            prev = i + n;
        }
        i += n;
    }
    if (prev != len) LLMRT_TRY(ranges_push(r, prev, len, 0));
    return LLMRT_OK;
}

/* HF's SplitDelimiterBehavior over the ranges of one piece at `base`. */
static llmrt_status apply_behavior(ranges *r, tok_split_behavior behavior, int invert, size_t base, tok_pieces *out) {
    if (invert)
        for (size_t i = 0; i < r->len; i++) r->data[i].is_match = !r->data[i].is_match;
    size_t n = 0; /* compacted ranges, written back into r */
    int previous_match = 0;
    switch (behavior) {
    case SPLIT_ISOLATED:
        n = r->len;
        break;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < r->len; i++)
            if (!r->data[i].is_match) r->data[n++] = r->data[i];
        break;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < r->len; i++) {
            if (r->data[i].is_match == previous_match && n > 0) r->data[n - 1].end = r->data[i].end;
            else r->data[n++] = r->data[i];
            previous_match = r->data[i].is_match;
        }
        break;
    case SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < r->len; i++) {
            if (r->data[i].is_match && !previous_match && n > 0) r->data[n - 1].end = r->data[i].end;
            else r->data[n++] = r->data[i];
            previous_match = r->data[i].is_match;
        }
        break;
    case SPLIT_MERGED_WITH_NEXT: {
        /* Walk backwards, merging a match into the range after it. */
        size_t w = r->len;
        for (size_t i = r->len; i-- > 0;) {
            range cur = r->data[i];
            if (cur.is_match && !previous_match && w < r->len) r->data[w].start = cur.start;
            else r->data[--w] = cur;
            previous_match = cur.is_match;
        }
        memmove(r->data, r->data + w, (r->len - w) * sizeof *r->data);
        n = r->len - w;
        break;
    }
    }
    for (size_t i = 0; i < n; i++)
        if (r->data[i].end > r->data[i].start)
            LLMRT_TRY(tok_pieces_push(out, base + r->data[i].start, r->data[i].end - r->data[i].start));
    return LLMRT_OK;
}

/* Metaspace: ' ' → replacement, and the prefix per the prepend scheme. The
 * new text is appended to buf. */
static llmrt_status metaspace_rewrite(const tok_pretokenizer *p, tok_buf *buf, tok_piece *piece, int first) {
    size_t start = buf->len;
    const char *rep = p->replacement;
    size_t rep_len = p->replacement_len;
    LLMRT_TRY(tok_buf_reserve(buf, piece->len * rep_len + rep_len));
    const char *s = buf->data + piece->offset; /* stable: reserved above */
    int starts_with_rep = piece->len >= rep_len && memcmp(s, rep, rep_len) == 0;
    int starts_with_space = piece->len > 0 && s[0] == ' ';
    int prepend = !(starts_with_rep || starts_with_space) &&
                  (p->prepend_scheme == PREPEND_ALWAYS || (p->prepend_scheme == PREPEND_FIRST && first));
    if (prepend) LLMRT_TRY(tok_buf_append(buf, rep, rep_len));
    for (size_t i = 0; i < piece->len; i++) {
        if (s[i] == ' ') LLMRT_TRY(tok_buf_append(buf, rep, rep_len));
        else LLMRT_TRY(tok_buf_append(buf, &s[i], 1));
    }
    piece->offset = start;
    piece->len = buf->len - start;
    return LLMRT_OK;
}

llmrt_status tok_pretokenize(const tok_pretokenizer *list, size_t count, tok_buf *buf, int at_start,
                             tok_pieces *out, tok_pieces *scratch) {
    out->len = 0;
    if (buf->len == 0) return LLMRT_OK;
    LLMRT_TRY(tok_pieces_push(out, 0, buf->len));
    ranges r = {0};
    pcre2_match_data *md = NULL;
    llmrt_status st = LLMRT_OK;
    for (size_t k = 0; k < count && st == LLMRT_OK; k++) {
        const tok_pretokenizer *p = &list[k];
        if (p->regex && !md) {
            md = pcre2_match_data_create(4, NULL);
            if (!md) {
                st = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for regex match data");
                break;
            }
        }
        scratch->len = 0;
        for (size_t i = 0; i < out->len && st == LLMRT_OK; i++) {
            tok_piece piece = out->data[i];
            r.len = 0;
            switch (p->type) {
            case PRE_SPLIT:
                st = find_regex(p->regex, md, buf->data + piece.offset, piece.len, &r);
                if (st == LLMRT_OK) st = apply_behavior(&r, p->behavior, p->invert, piece.offset, scratch);
                break;
            case PRE_BYTE_LEVEL:
                if (p->add_prefix_space && buf->data[piece.offset] != ' ') {
                    size_t start = buf->len;
                    st = tok_buf_reserve(buf, piece.len + 1);
                    if (st == LLMRT_OK) st = tok_buf_append(buf, " ", 1);
                    if (st == LLMRT_OK) st = tok_buf_append(buf, buf->data + piece.offset, piece.len);
                    piece.offset = start;
                    piece.len++;
                }
                if (st != LLMRT_OK) break;
                if (p->regex) {
                    st = find_regex(p->regex, md, buf->data + piece.offset, piece.len, &r);
                    if (st == LLMRT_OK) st = apply_behavior(&r, SPLIT_ISOLATED, 0, piece.offset, scratch);
                } else {
                    st = tok_pieces_push(scratch, piece.offset, piece.len);
                }
                break;
            case PRE_METASPACE:
                st = metaspace_rewrite(p, buf, &piece, at_start && piece.offset == 0);
                if (st != LLMRT_OK) break;
                if (p->split) {
                    st = find_chars(buf->data + piece.offset, piece.len, p->replacement, p->replacement_len, &r);
                    if (st == LLMRT_OK) st = apply_behavior(&r, SPLIT_MERGED_WITH_NEXT, 0, piece.offset, scratch);
                } else {
                    st = tok_pieces_push(scratch, piece.offset, piece.len);
                }
                break;
            case PRE_WHITESPACE_SPLIT:
                st = find_chars(buf->data + piece.offset, piece.len, NULL, 0, &r);
                if (st == LLMRT_OK) st = apply_behavior(&r, SPLIT_REMOVED, 0, piece.offset, scratch);
                break;
            case PRE_BERT:
                st = tok_bert_pretokenize(buf->data + piece.offset, piece.len, piece.offset, scratch);
                break;
            }
        }
        tok_pieces swap = *out;
        *out = *scratch;
        *scratch = swap;
    }
    free(r.data);
    if (md) pcre2_match_data_free(md);
    return st;
}
