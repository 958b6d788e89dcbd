/* Prompt log-probabilities: a request with prompt_logprobs gets, for every
 * prompt token after the first, the log-probability the model gave it after
 * the tokens before it (and its top alternatives). Its prefill chunks return
 * a logits row per prompt position, in at most RT_SCORE_ROWS extra rows a
 * step (a long prompt prefills in shorter chunks), and these rows are scored
 * on the host after the step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_internal.h"
#include "runtime/sampler.h"

int rt_prompt_scores_alloc(rt_request *r, const int32_t *prompt) {
    if (!r->params.prompt_logprobs) return 1;
    llmrt_prompt_logprobs *p = &r->prompt;
    const size_t n = (size_t)r->prompt_len, top = n * (size_t)r->num_top;
    p->num_tokens = r->prompt_len;
    p->num_top = r->num_top;
    p->ids = malloc(n * sizeof *p->ids);
    p->logprobs = malloc(n * sizeof *p->logprobs);
    if (!p->ids || !p->logprobs) return 0;
    memcpy(p->ids, prompt, n * sizeof *p->ids);
    for (size_t i = 0; i < n; i++) p->logprobs[i] = NAN;
    if (top > 0) {
        p->top_ids = malloc(top * sizeof *p->top_ids);
        p->top_logprobs = malloc(top * sizeof *p->top_logprobs);
        if (!p->top_ids || !p->top_logprobs) return 0;
        for (size_t i = 0; i < top; i++) {
            p->top_ids[i] = -1;
            p->top_logprobs[i] = NAN;
        }
    }
    return 1;
}

int32_t rt_prompt_score_fit(const llmrt_runtime *rt, const rt_request *r, int32_t seq, int32_t count, int32_t *rows) {
    *rows = 0;
    if (!r->params.prompt_logprobs || seq != 0 || r->prompt_sent) return count;
    /* position p's logits score prompt token p + 1; the last prompt
     * position's row is the sequence's own */
    const int32_t from = r->seqs[0].computed, scored_end = r->prompt_len - 1;
    if (from >= scored_end) return count;
    const int32_t free_rows = RT_SCORE_ROWS - rt->step_score_rows;
    int32_t want = (from + count < scored_end ? from + count : scored_end) - from;
    if (want > free_rows) {
        want = free_rows;
        count = free_rows; /* ends before the last prompt position */
    }
    *rows = want;
    return count;
}

void rt_prompt_score_rows(llmrt_runtime *rt) {
    for (int32_t q = 0; q < rt->step_num_seqs; q++) {
        rt_request *r = rt->step_req[q];
        const int32_t rows = rt->step_score_count[q];
        if (rows == 0 || r->state != REQ_RUNNING) continue;
        llmrt_prompt_logprobs *p = &r->prompt;
        for (int32_t k = 0; k < rows; k++) {
            const int32_t l = rt->step_score_row[q] + k, target = rt->step_score_pos[q] + k + 1;
            const float *row = rt->logits + (size_t)l * rt->vocab;
            const double lse = rt->row_lse[l];
            p->logprobs[target] = (float)(row[p->ids[target]] - lse);
            if (p->num_top == 0) continue;
            llmrt_top_k_ids(row, rt->vocab, p->num_top, rt->top_scratch);
            for (int32_t j = 0; j < p->num_top; j++) {
                p->top_ids[(size_t)target * p->num_top + j] = rt->top_scratch[j];
                p->top_logprobs[(size_t)target * p->num_top + j] = (float)(row[rt->top_scratch[j]] - lse);
            }
        }
    }
}

int rt_prompt_scores_copy(llmrt_prompt_logprobs *dst, const llmrt_prompt_logprobs *src) {
    memset(dst, 0, sizeof *dst);
    if (src->num_tokens == 0) return 1;
    const size_t n = (size_t)src->num_tokens, top = n * (size_t)src->num_top;
    dst->ids = malloc(n * sizeof *dst->ids);
    dst->logprobs = malloc(n * sizeof *dst->logprobs);
    if (!dst->ids || !dst->logprobs) return 0;
    memcpy(dst->ids, src->ids, n * sizeof *dst->ids);
    memcpy(dst->logprobs, src->logprobs, n * sizeof *dst->logprobs);
    if (top > 0) {
        dst->top_ids = malloc(top * sizeof *dst->top_ids);
        dst->top_logprobs = malloc(top * sizeof *dst->top_logprobs);
        if (!dst->top_ids || !dst->top_logprobs) return 0;
        memcpy(dst->top_ids, src->top_ids, top * sizeof *dst->top_ids);
        memcpy(dst->top_logprobs, src->top_logprobs, top * sizeof *dst->top_logprobs);
    }
    dst->num_tokens = src->num_tokens;
    dst->num_top = src->num_top;
    return 1;
}

void rt_prompt_scores_free(llmrt_prompt_logprobs *p) {
    free(p->ids);
    free(p->logprobs);
    free(p->top_ids);
    free(p->top_logprobs);
    memset(p, 0, sizeof *p);
}
