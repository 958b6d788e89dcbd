/* Bad words: token sequences a request must never generate. A sequence's
 * last token is banned (its logit set to -inf before sampling) wherever the
 * tokens so far end with the ones before it; a one-token sequence is banned
 * always. This is TensorRT-LLM's and Triton's bad_words: it prevents the
 * sequence as tokenized, not every tokenization of the same text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_internal.h"

enum { BAD_WORDS_MAX = 1024, BAD_WORD_IDS_MAX = 65536 };

llmrt_status rt_bad_words_check(const llmrt_runtime *rt, const llmrt_request *p) {
    if (p->num_bad_words == 0) return LLMRT_OK;
    if (p->num_bad_words < 0 || p->num_bad_words > BAD_WORDS_MAX || !p->bad_word_ids || !p->bad_word_lengths)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: 0..%d bad words, with their ids and lengths",
                           BAD_WORDS_MAX);
    if (p->num_beams > 0) return llmrt_error(LLMRT_ERR_UNSUPPORTED, "request: no bad words with num_beams");
    int64_t total = 0;
    for (int32_t w = 0; w < p->num_bad_words; w++) {
        const int32_t len = p->bad_word_lengths[w];
        if (len < 1 || len > BAD_WORD_IDS_MAX)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: bad word %d has length %d (1..%d)", w, len,
                               BAD_WORD_IDS_MAX);
        for (int32_t k = 0; k < len; k++) {
            const int32_t id = p->bad_word_ids[total + k];
            if (id < 0 || id >= rt->vocab)
                return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                                   "request: bad word %d holds token %d, outside the vocabulary [0, %d)", w, id,
                                   rt->vocab);
        }
        total += len;
        if (total > BAD_WORD_IDS_MAX)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: bad words of more than %d tokens in all",
                               BAD_WORD_IDS_MAX);
    }
    return LLMRT_OK;
}

int rt_bad_words_copy(rt_request *r, const llmrt_request *p) {
    const int32_t n = p->num_bad_words;
    if (n == 0) return 1;
    int64_t total = 0;
    for (int32_t w = 0; w < n; w++) total += p->bad_word_lengths[w];
    r->bad_word_lengths = malloc((size_t)n * sizeof *r->bad_word_lengths);
    r->bad_word_ids = malloc((size_t)total * sizeof *r->bad_word_ids);
    if (!r->bad_word_lengths || !r->bad_word_ids) return 0;
    memcpy(r->bad_word_lengths, p->bad_word_lengths, (size_t)n * sizeof *r->bad_word_lengths);
    memcpy(r->bad_word_ids, p->bad_word_ids, (size_t)total * sizeof *r->bad_word_ids);
    return 1;
}

void rt_bad_words_ban(const rt_request *r, const rt_sequence *s, float *logits) {
    const int32_t *word = r->bad_word_ids;
    for (int32_t w = 0; w < r->params.num_bad_words; w++) {
        const int32_t len = r->bad_word_lengths[w];
        const int32_t before = len - 1;
        if (before <= s->len && memcmp(s->tokens + s->len - before, word, (size_t)before * sizeof *word) == 0)
            logits[word[before]] = -INFINITY;
        word += len;
    }
}
