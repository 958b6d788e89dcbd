/* Normalizers: Prepend, Replace (string or regex), NFC, Strip and Sequence of
 * them, applied to each text segment between added tokens, as HF does. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static llmrt_status parse_normalizer(json_t *node, const char *type, const char *where, void *item) {
    tok_normalizer *n = item;
    if (strcmp(type, "Prepend") == 0) {
        const char *s = NULL;
        size_t len = 0;
        LLMRT_TRY(tok_json_string(node, "prepend", where, 1, &s, &len));
        n->type = NORM_PREPEND;
        n->text = tok_dup_bytes(s, len);
        n->text_len = len;
    } else if (strcmp(type, "Replace") == 0) {
        const char *content;
        size_t content_len;
        LLMRT_TRY(tok_json_string(node, "content", where, 1, &content, &content_len));
        json_t *pattern = json_object_get(node, "pattern");
        char sub[300];
        snprintf(sub, sizeof sub, "%s.pattern", where);
        const char *s = NULL;
        size_t len = 0;
        n->type = NORM_REPLACE;
        if (json_is_object(pattern) && json_object_get(pattern, "String")) {
            LLMRT_TRY(tok_json_string(pattern, "String", sub, 1, &s, &len));
            if (len == 0) return llmrt_error(LLMRT_ERR_FORMAT, "%s.String: empty pattern", sub);
            n->pattern = tok_dup_bytes(s, len);
            n->pattern_len = len;
        } else if (json_is_object(pattern) && json_object_get(pattern, "Regex")) {
            LLMRT_TRY(tok_json_string(pattern, "Regex", sub, 1, &s, &len));
            LLMRT_TRY(tok_regex_compile(s, len, 0, sub, &n->regex));
        } else {
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: expected {\"String\": ...} or {\"Regex\": ...}", sub);
        }
        n->text = tok_dup_bytes(content, content_len);
        n->text_len = content_len;
    } else if (strcmp(type, "NFC") == 0) {
        n->type = NORM_NFC;
    } else if (strcmp(type, "BertNormalizer") == 0) {
        n->type = NORM_BERT;
        n->clean_text = tok_json_bool(node, "clean_text", 1);
        n->handle_chinese_chars = tok_json_bool(node, "handle_chinese_chars", 1);
        n->lowercase = tok_json_bool(node, "lowercase", 1);
        /* null: strip accents exactly when lowercasing (HF's rule) */
        n->strip_accents = tok_json_bool(node, "strip_accents", n->lowercase);
    } else if (strcmp(type, "Strip") == 0) {
        n->type = NORM_STRIP;
        n->strip_left = tok_json_bool(node, "strip_left", 1);
        n->strip_right = tok_json_bool(node, "strip_right", 1);
    } else {
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.type: normalizer \"%s\" is not supported", where, type);
    }
    if ((n->type == NORM_PREPEND || n->type == NORM_REPLACE) && !n->text)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    return LLMRT_OK;
}

static void free_normalizers(void *items, size_t count) { tok_normalizers_free(items, count); }

llmrt_status tok_normalizers_parse(json_t *node, const char *where, tok_normalizer **out, size_t *count) {
    static const tok_component_kind kind = {.sequence_key = "normalizers", .noun = "normalizers",
                                            .item_size = sizeof(tok_normalizer), .capacity = 32,
                                            .parse = parse_normalizer, .free_list = free_normalizers};
    void *items = NULL;
    llmrt_status st = tok_components_parse(node, where, &kind, &items, count);
    *out = items;
    return st;
}

void tok_normalizers_free(tok_normalizer *n, size_t count) {
    if (!n) return;
    for (size_t i = 0; i < count; i++) {
        free(n[i].text);
        free(n[i].pattern);
        if (n[i].regex) pcre2_code_free(n[i].regex);
    }
    free(n);
}

static const char *find_bytes(const char *hay, size_t hay_len, const char *needle, size_t needle_len) {
    if (needle_len == 0 || hay_len < needle_len) return NULL;
    const char *end = hay + hay_len - needle_len + 1;
    for (const char *p = hay; p < end;) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (!p) return NULL;
        if (memcmp(p, needle, needle_len) == 0) return p;
        p++;
    }
    return NULL;
}

static llmrt_status replace_string(const tok_normalizer *n, const char *s, size_t len, tok_buf *out) {
    size_t i = 0;
    while (i < len) {
        const char *hit = find_bytes(s + i, len - i, n->pattern, n->pattern_len);
        if (!hit) break;
        size_t at = (size_t)(hit - s);
        LLMRT_TRY(tok_buf_append(out, s + i, at - i));
        LLMRT_TRY(tok_buf_append(out, n->text, n->text_len));
        i = at + n->pattern_len;
    }
    return tok_buf_append(out, s + i, len - i);
}

static llmrt_status replace_regex(const tok_normalizer *n, const char *s, size_t len, tok_buf *out) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(n->regex, NULL);
    if (!md) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for regex match data");
    size_t i = 0, copied = 0;
    llmrt_status st = LLMRT_OK;
    while (i <= len && st == LLMRT_OK) {
        int rc = pcre2_match(n->regex, (PCRE2_SPTR)s, len, i, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t start = ov[0], end = ov[1];
        if (end == start) { /* empty match: step over one character */
            uint32_t cp;
            size_t step = start < len ? tok_utf8_decode(s + start, len - start, &cp) : 1;
            i = start + (step ? step : 1);
            continue;
        }
        st = tok_buf_append(out, s + copied, start - copied);
        if (st == LLMRT_OK) st = tok_buf_append(out, n->text, n->text_len);
        copied = i = end;
    }
    pcre2_match_data_free(md);
    LLMRT_TRY(st);
    return tok_buf_append(out, s + copied, len - copied);
}

static void strip(const char *s, size_t len, int left, int right, size_t *start, size_t *end) {
    size_t a = 0, b = len;
    while (left && a < b) {
        uint32_t cp;
        size_t n = tok_utf8_decode(s + a, b - a, &cp);
        if (!n || !tok_is_whitespace(cp)) break;
        a += n;
    }
    while (right && b > a) {
        size_t k = b - 1;
        while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
        uint32_t cp;
        size_t n = tok_utf8_decode(s + k, b - k, &cp);
        if (!n || !tok_is_whitespace(cp)) break;
        b = k;
    }
    *start = a;
    *end = b;
}

llmrt_status tok_normalize(const tok_normalizer *list, size_t count, const char *s, size_t len, tok_buf *out) {
    tok_buf tmp = {0};
    llmrt_status st = LLMRT_OK;
    out->len = 0;
    LLMRT_TRY(tok_buf_append(out, s, len));
    for (size_t k = 0; k < count && st == LLMRT_OK; k++) {
        const tok_normalizer *n = &list[k];
        tmp.len = 0;
        switch (n->type) {
        case NORM_PREPEND:
            if (out->len == 0) continue; /* HF prepends only to non-empty text */
            st = tok_buf_append(&tmp, n->text, n->text_len);
            if (st == LLMRT_OK) st = tok_buf_append(&tmp, out->data, out->len);
            break;
        case NORM_REPLACE:
            st = n->regex ? replace_regex(n, out->data, out->len, &tmp) : replace_string(n, out->data, out->len, &tmp);
            break;
        case NORM_NFC:
            if (tok_nfc_quick_check(out->data, out->len)) continue;
            st = tok_nfc_append(&tmp, out->data, out->len);
            break;
        case NORM_BERT:
            st = tok_bert_normalize(n, out->data, out->len, &tmp);
            break;
        case NORM_STRIP: {
            size_t a, b;
            strip(out->data, out->len, n->strip_left, n->strip_right, &a, &b);
            st = tok_buf_append(&tmp, out->data + a, b - a);
            break;
        }
        }
        if (st == LLMRT_OK) {
            tok_buf swap = *out;
            *out = tmp;
            tmp = swap;
        }
    }
    tok_buf_free(&tmp);
    if (st == LLMRT_OK && !out->data) st = tok_buf_append(out, "", 0);
    return st;
}
