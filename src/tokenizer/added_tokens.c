/* Added tokens (special tokens and user additions) are cut out of the text
 * before normalization and the model ever see it, as HF's AddedVocabulary
 * does: leftmost-longest, non-overlapping matching, then single_word, lstrip
 * and rstrip applied to each match. Tokens with normalized = false match the
 * raw text; those with normalized = true match each normalized segment,
 * against their own normalized content.
 *
 * Matching buckets tokens by first byte, longest first: at each byte of text
 * only the tokens that start with it are compared, and vocabularies have few
 * added tokens (LLaMA-3's 256 all start with '<'), so this is as fast as an
 * Aho-Corasick automaton in practice and far simpler. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static const tok_added_matcher *sort_matcher; /* qsort context; set under build only */

static int compare_indices(const void *pa, const void *pb) {
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const tok_added_matcher *m = sort_matcher;
    uint8_t fa = (uint8_t)m->patterns[a][0], fb = (uint8_t)m->patterns[b][0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (m->pattern_lens[a] != m->pattern_lens[b]) return m->pattern_lens[a] > m->pattern_lens[b] ? -1 : 1;
    return a < b ? -1 : (a > b); /* stable: earlier tokens first */
}

static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

llmrt_status tok_added_matcher_build(tok_added_matcher *m, const tok_added_token *tokens, size_t count,
                                     int normalized, const tok_normalizer *norm, size_t norm_count) {
    memset(m, 0, sizeof *m);
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (!!tokens[i].normalized == !!normalized && tokens[i].len > 0) n++;
    if (n == 0) return LLMRT_OK;
    const tok_added_token **picked = calloc(n, sizeof *picked);
    char **patterns = calloc(n, sizeof *patterns);
    size_t *lens = calloc(n, sizeof *lens);
    size_t *order = calloc(n, sizeof *order);
    llmrt_status st = (picked && patterns && lens && order)
                          ? LLMRT_OK
                          : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for added tokens");
    size_t k = 0;
    for (size_t i = 0; i < count && st == LLMRT_OK; i++) {
        if (!!tokens[i].normalized != !!normalized || tokens[i].len == 0) continue;
        tok_buf text = {0};
        if (normalized && norm_count) st = tok_normalize(norm, norm_count, tokens[i].content, tokens[i].len, &text);
        else st = tok_buf_append(&text, tokens[i].content, tokens[i].len);
        picked[k] = &tokens[i];
        patterns[k] = text.data;
        lens[k] = text.len;
        k++;
        if (st == LLMRT_OK && text.len == 0) st = llmrt_error(LLMRT_ERR_FORMAT, "added token %d normalizes to \"\"",
                                                              tokens[i].id);
    }
    if (st == LLMRT_OK) {
        m->patterns = patterns;
        m->pattern_lens = lens;
        for (size_t i = 0; i < n; i++) order[i] = i;
        pthread_mutex_lock(&sort_lock);
        sort_matcher = m;
        qsort(order, n, sizeof *order, compare_indices);
        pthread_mutex_unlock(&sort_lock);
        m->tokens = calloc(n, sizeof *m->tokens);
        char **sorted_patterns = calloc(n, sizeof *sorted_patterns);
        size_t *sorted_lens = calloc(n, sizeof *sorted_lens);
        if (!m->tokens || !sorted_patterns || !sorted_lens) {
            free(sorted_patterns);
            free(sorted_lens);
            st = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for added tokens");
        } else {
            for (size_t i = 0; i < n; i++) {
                m->tokens[i] = picked[order[i]];
                sorted_patterns[i] = patterns[order[i]];
                sorted_lens[i] = lens[order[i]];
            }
            free(patterns);
            free(lens);
            patterns = NULL;
            lens = NULL;
            m->patterns = sorted_patterns;
            m->pattern_lens = sorted_lens;
            m->count = n;
            /* first[b]: index of the first token starting with byte b. */
            size_t t = 0;
            for (int b = 0; b <= 256; b++) {
                while (t < n && (int)(uint8_t)m->patterns[t][0] < b) t++;
                m->first[b] = (uint32_t)t;
            }
        }
    }
    if (st != LLMRT_OK) {
        if (patterns)
            for (size_t i = 0; i < k; i++) free(patterns[i]);
        free(patterns);
        free(lens);
        if (m->patterns == patterns) m->patterns = NULL, m->pattern_lens = NULL;
        tok_added_matcher_free(m);
    }
    free(picked);
    free(order);
    return st;
}

void tok_added_matcher_free(tok_added_matcher *m) {
    if (m->patterns)
        for (size_t i = 0; i < m->count; i++) free(m->patterns[i]);
    free(m->patterns);
    free(m->pattern_lens);
    free(m->tokens);
    memset(m, 0, sizeof *m);
}

static llmrt_status segments_push(tok_segments *s, size_t offset, size_t len, int32_t id) {
    tok_segment *d = tok_grow(s->data, s->len, &s->cap, sizeof *d, 16);
    if (!d) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for segments");
    s->data = d;
    s->data[s->len++] = (tok_segment){offset, len, id};
    return LLMRT_OK;
}

static uint32_t last_char(const char *s, size_t len) {
    if (len == 0) return 0;
    size_t k = len - 1;
    while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
    uint32_t cp = 0;
    tok_utf8_decode(s + k, len - k, &cp);
    return cp;
}

static uint32_t first_char(const char *s, size_t len) {
    uint32_t cp = 0;
    if (len) tok_utf8_decode(s, len, &cp);
    return cp;
}

llmrt_status tok_added_split(const tok_added_matcher *m, const char *s, size_t len, size_t base, tok_segments *out) {
    if (m->count == 0) return len ? segments_push(out, base, len, -1) : LLMRT_OK;
    size_t start_offset = 0, i = 0;
    while (i < len) {
        uint8_t b = (uint8_t)s[i];
        uint32_t lo = m->first[b], hi = m->first[b + 1];
        if (lo == hi) {
            i++;
            continue;
        }
        size_t t = lo;
        for (; t < hi; t++)
            if (m->pattern_lens[t] <= len - i && memcmp(s + i, m->patterns[t], m->pattern_lens[t]) == 0) break;
        if (t == hi) {
            i++;
            continue;
        }
        const tok_added_token *tok = m->tokens[t];
        size_t start = i, stop = i + m->pattern_lens[t];
        i = stop; /* matching goes on after this match, taken or not */
        if (tok->single_word) {
            int start_space = start == 0 || !tok_is_word_char(last_char(s, start));
            int stop_space = stop == len || !tok_is_word_char(first_char(s + stop, len - stop));
            if (!start_space || !stop_space) continue;
        }
        if (tok->lstrip) {
            size_t k = start;
            while (k > 0) {
                size_t p = k - 1;
                while (p > 0 && ((uint8_t)s[p] & 0xC0) == 0x80) p--;
                uint32_t cp = 0;
                tok_utf8_decode(s + p, k - p, &cp);
                if (!tok_is_whitespace(cp)) break;
                k = p;
            }
            start = k > start_offset ? k : start_offset;
        }
        if (tok->rstrip) {
            while (stop < len) {
                uint32_t cp = 0;
                size_t n = tok_utf8_decode(s + stop, len - stop, &cp);
                if (!n || !tok_is_whitespace(cp)) break;
                stop += n;
            }
            i = stop > i ? stop : i;
        }
        if (start_offset < start) LLMRT_TRY(segments_push(out, base + start_offset, start - start_offset, -1));
        LLMRT_TRY(segments_push(out, base + start, stop - start, tok->id));
        start_offset = stop;
    }
    if (start_offset < len) LLMRT_TRY(segments_push(out, base + start_offset, len - start_offset, -1));
    return LLMRT_OK;
}
