/* The encode pipeline, in HF's order: added tokens with normalized = false are
 * cut out of the raw text; each remaining segment is normalized and cut again
 * at added tokens with normalized = true; each text segment is pre-tokenized
 * into pieces, and each piece goes through the BPE model. The post-processor
 * (BOS/EOS) wraps the result when asked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* --- post-processors ------------------------------------------------------------------ */

static llmrt_status ids_concat(int32_t **dst, size_t *dst_len, const int32_t *a, size_t a_len, const int32_t *b,
                               size_t b_len) {
    int32_t *p = malloc((a_len + b_len + 1) * sizeof *p);
    if (!p) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory");
    if (a_len) memcpy(p, a, a_len * sizeof *p);
    if (b_len) memcpy(p + a_len, b, b_len * sizeof *p);
    free(*dst);
    *dst = p;
    *dst_len = a_len + b_len;
    return LLMRT_OK;
}

/* An id the post-processor adds must name a token of the vocabulary (json_t
 * integers are 64-bit: a cast alone would wrap). */
static int names_token(json_int_t id, const struct llmrt_tokenizer *tok) {
    return id >= 0 && (uint64_t)id < tok->vocab_size && tok->id_to_token[id] != NULL;
}

/* BertProcessing / RobertaProcessing: "cls": ["[CLS]", 101]. */
static llmrt_status pair_id(json_t *node, const char *key, const char *where, const struct llmrt_tokenizer *tok,
                            int32_t *id) {
    json_t *v = json_object_get(node, key);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 1)))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s.%s: expected [token, id]", where, key);
    const json_int_t value = json_integer_value(json_array_get(v, 1));
    if (!names_token(value, tok))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s.%s: id %lld names no token of the vocabulary (%zu ids)", where, key,
                           (long long)value, tok->vocab_size);
    *id = (int32_t)value;
    return LLMRT_OK;
}

static llmrt_status parse_template(json_t *node, const char *where, const struct llmrt_tokenizer *tok,
                                   tok_post_processor *out) {
    json_t *single = json_object_get(node, "single");
    json_t *special = json_object_get(node, "special_tokens");
    if (!json_is_array(single)) return llmrt_error(LLMRT_ERR_FORMAT, "%s.single: expected an array", where);
    tok_ids before = {0}, after = {0};
    int seen_sequence = 0;
    llmrt_status st = LLMRT_OK;
    for (size_t i = 0; i < json_array_size(single) && st == LLMRT_OK; i++) {
        json_t *item = json_array_get(single, i);
        json_t *tok_item = json_object_get(item, "SpecialToken");
        if (json_object_get(item, "Sequence")) {
            if (seen_sequence)
                st = llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.single[%zu]: a second sequence", where, i);
            seen_sequence = 1;
            continue;
        }
        json_t *name = json_object_get(tok_item, "id");
        if (!json_is_string(name)) {
            st = llmrt_error(LLMRT_ERR_FORMAT, "%s.single[%zu]: expected {\"SpecialToken\": {\"id\": ...}} or "
                                               "{\"Sequence\": ...}", where, i);
            break;
        }
        json_t *entry = json_object_get(special, json_string_value(name));
        json_t *ids = json_object_get(entry, "ids");
        if (!json_is_array(ids)) {
            st = llmrt_error(LLMRT_ERR_FORMAT, "%s.special_tokens[\"%s\"].ids: missing", where, json_string_value(name));
            break;
        }
        for (size_t k = 0; k < json_array_size(ids) && st == LLMRT_OK; k++) {
            json_t *id = json_array_get(ids, k);
            if (!json_is_integer(id))
                st = llmrt_error(LLMRT_ERR_FORMAT, "%s.special_tokens[\"%s\"].ids[%zu]: expected an id", where,
                                 json_string_value(name), k);
            else if (!names_token(json_integer_value(id), tok))
                st = llmrt_error(LLMRT_ERR_FORMAT,
                                 "%s.special_tokens[\"%s\"].ids[%zu]: id %lld names no token of the vocabulary "
                                 "(%zu ids)",
                                 where, json_string_value(name), k, (long long)json_integer_value(id), tok->vocab_size);
            else st = tok_ids_push(seen_sequence ? &after : &before, (int32_t)json_integer_value(id));
        }
    }
    if (st == LLMRT_OK) st = ids_concat(&out->prefix, &out->prefix_len, before.data, before.len, out->prefix, out->prefix_len);
    if (st == LLMRT_OK) st = ids_concat(&out->suffix, &out->suffix_len, out->suffix, out->suffix_len, after.data, after.len);
    tok_ids_free(&before);
    tok_ids_free(&after);
    return st;
}

static llmrt_status parse_processor(json_t *node, const char *where, const struct llmrt_tokenizer *tok,
                                    tok_post_processor *out) {
    if (!node || json_is_null(node)) return LLMRT_OK;
    if (!json_is_object(node)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: expected an object", where);
    const char *type = NULL;
    LLMRT_TRY(tok_json_string(node, "type", where, 1, &type, NULL));
    if (strcmp(type, "ByteLevel") == 0) return LLMRT_OK; /* offsets only */
    if (strcmp(type, "TemplateProcessing") == 0) return parse_template(node, where, tok, out);
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        int32_t cls, sep;
        LLMRT_TRY(pair_id(node, "cls", where, tok, &cls));
        LLMRT_TRY(pair_id(node, "sep", where, tok, &sep));
        LLMRT_TRY(ids_concat(&out->prefix, &out->prefix_len, &cls, 1, out->prefix, out->prefix_len));
        return ids_concat(&out->suffix, &out->suffix_len, out->suffix, out->suffix_len, &sep, 1);
    }
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(node, "processors");
        if (!json_is_array(list)) return llmrt_error(LLMRT_ERR_FORMAT, "%s.processors: expected an array", where);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[300];
            snprintf(sub, sizeof sub, "%s.processors[%zu]", where, i);
            LLMRT_TRY(parse_processor(json_array_get(list, i), sub, tok, out));
        }
        return LLMRT_OK;
    }
    return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.type: post-processor \"%s\" is not supported", where, type);
}

llmrt_status tok_post_processor_parse(json_t *node, const char *where, const struct llmrt_tokenizer *tok,
                                      tok_post_processor *out) {
    memset(out, 0, sizeof *out);
    return parse_processor(node, where, tok, out);
}

/* --- encoding --------------------------------------------------------------------------- */

typedef struct encode_state {
    const llmrt_tokenizer *tok;
    tok_bpe_cache *cache;
    tok_ids ids;
    tok_buf normalized, work;
    tok_pieces pieces, scratch;
    tok_segments segments, subsegments;
} encode_state;

/* A SentencePiece-style text without pre-tokenizer: cut before each ▁ that
 * follows another character than ▁ (safe: see split_before_metaspace). */
static llmrt_status model_metaspace_pieces(encode_state *e, const char *s, size_t len) {
    static const char meta[] = "\xE2\x96\x81";
    size_t start = 0;
    for (size_t i = 3; i + 3 <= len; i++) {
        if (memcmp(s + i, meta, 3) != 0) continue;
        if (memcmp(s + i - 3, meta, 3) == 0) continue;
        LLMRT_TRY(tok_bpe_tokenize(&e->tok->bpe, e->cache, s + start, i - start, &e->ids));
        start = i;
        i += 2;
    }
    return tok_bpe_tokenize(&e->tok->bpe, e->cache, s + start, len - start, &e->ids);
}

static llmrt_status encode_text(encode_state *e, const char *s, size_t len, int at_start) {
    const llmrt_tokenizer *tok = e->tok;
    if (len == 0) return LLMRT_OK;
    if (tok->pretokenizer_count == 0) {
        if (tok->split_before_metaspace) return model_metaspace_pieces(e, s, len);
        return tok_bpe_tokenize(&tok->bpe, e->cache, s, len, &e->ids);
    }
    e->work.len = 0;
    LLMRT_TRY(tok_buf_append(&e->work, s, len));
    LLMRT_TRY(tok_pretokenize(tok->pretokenizers, tok->pretokenizer_count, &e->work, at_start, &e->pieces,
                              &e->scratch));
    for (size_t i = 0; i < e->pieces.len; i++)
        LLMRT_TRY(tok_bpe_tokenize(&tok->bpe, e->cache, e->work.data + e->pieces.data[i].offset,
                                   e->pieces.data[i].len, &e->ids));
    return LLMRT_OK;
}

static llmrt_status encode_segments(encode_state *e, const char *text, size_t len) {
    const llmrt_tokenizer *tok = e->tok;
    LLMRT_TRY(tok_added_split(&tok->match_raw, text, len, 0, &e->segments));
    for (size_t i = 0; i < e->segments.len; i++) {
        tok_segment seg = e->segments.data[i];
        if (seg.id >= 0) {
            LLMRT_TRY(tok_ids_push(&e->ids, seg.id));
            continue;
        }
        const char *s = text + seg.offset;
        size_t n = seg.len;
        if (tok->normalizer_count) {
            LLMRT_TRY(tok_normalize(tok->normalizers, tok->normalizer_count, s, n, &e->normalized));
            s = e->normalized.data;
            n = e->normalized.len;
        }
        if (tok->match_normalized.count == 0) {
            LLMRT_TRY(encode_text(e, s, n, seg.offset == 0));
            continue;
        }
        e->subsegments.len = 0;
        LLMRT_TRY(tok_added_split(&tok->match_normalized, s, n, 0, &e->subsegments));
        for (size_t k = 0; k < e->subsegments.len; k++) {
            tok_segment sub = e->subsegments.data[k];
            if (sub.id >= 0) LLMRT_TRY(tok_ids_push(&e->ids, sub.id));
            else LLMRT_TRY(encode_text(e, s + sub.offset, sub.len, seg.offset == 0 && sub.offset == 0));
        }
    }
    return LLMRT_OK;
}

llmrt_status llmrt_tokenizer_encode(const llmrt_tokenizer *tok, const char *text, size_t len, int flags,
                                    int32_t **out_ids, size_t *out_count) {
    if (!tok || !out_ids || !out_count || (!text && len))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "llmrt_tokenizer_encode: NULL argument");
    *out_ids = NULL;
    *out_count = 0;
    encode_state e = {.tok = tok};
    tok_buf clean = {0};
    llmrt_status st = LLMRT_OK;
    if (len && !tok_utf8_valid(text, len)) {
        st = tok_utf8_append_lossy(&clean, text, len);
        text = clean.data;
        len = clean.len;
    }
    int add_special = (flags & LLMRT_ENCODE_ADD_SPECIAL) != 0;
    if (st == LLMRT_OK && add_special) st = tok_ids_append(&e.ids, tok->post.prefix, tok->post.prefix_len);
    /* The cache is the one piece of shared mutable state; the tokenizer is
     * otherwise const, hence the cast. */
    e.cache = tok_bpe_cache_acquire((tok_bpe *)&tok->bpe);
    if (st == LLMRT_OK) st = encode_segments(&e, text ? text : "", len);
    tok_bpe_cache_release((tok_bpe *)&tok->bpe, e.cache);
    if (st == LLMRT_OK && add_special) st = tok_ids_append(&e.ids, tok->post.suffix, tok->post.suffix_len);
    tok_buf_free(&clean);
    tok_buf_free(&e.normalized);
    tok_buf_free(&e.work);
    free(e.pieces.data);
    free(e.scratch.data);
    free(e.segments.data);
    free(e.subsegments.data);
    if (st != LLMRT_OK) {
        tok_ids_free(&e.ids);
        return st;
    }
    *out_ids = e.ids.data;
    *out_count = e.ids.len;
    return LLMRT_OK;
}
