/* Beam search as HF transformers does it (BeamSearchScorer): each step, every
 * live beam offers its best 2·B continuations by log-probability; the best
 * candidates overall, in order, either finish (an EOS or stop id among the
 * first B: a hypothesis scored sum_logprobs / length^length_penalty) or
 * become the next B beams. The request is done at max tokens (live beams
 * become hypotheses), or when B hypotheses exist and either early_stopping
 * is set or no live beam can still beat the worst of them.
 *
 * Beams advance in lockstep: a beam's logits only record its candidates, and
 * the expansion runs once all live beams have theirs (after a preemption they
 * recompute separately). New beams share their parent's blocks (reference
 * counts); the partial last block is copied on the next write by the
 * scheduler. Token sequences are re-formed through per-beam double buffers,
 * so a step does not allocate. */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "runtime/runtime_internal.h"

typedef struct beam_candidate {
    double score; /* cumulative log-probability with this token */
    float logprob;
    int32_t beam, token;
} beam_candidate;

/* best first; ties by lower beam, then lower token id (as argmax) */
static int better(const beam_candidate *a, const beam_candidate *b) {
    if (a->score != b->score) return a->score > b->score;
    if (a->beam != b->beam) return a->beam < b->beam;
    return a->token < b->token;
}

static double length_score(const rt_request *r, double logprob, int32_t length) {
    return logprob / pow(length > 0 ? length : 1, r->params.length_penalty);
}

static void add_hypothesis(rt_request *r, const rt_sequence *beam, double logprob,
                           const char *reason) {
    int32_t n = beam->len - r->prompt_len;
    double score = length_score(r, logprob, n); /* HF: the length without the EOS */
    int32_t slot = r->num_hyps;
    if (r->num_hyps == r->num_seqs) { /* full: replace the worst if this is better */
        slot = 0;
        for (int32_t i = 1; i < r->num_hyps; i++)
            if (r->hyps[i].score < r->hyps[slot].score) slot = i;
        if (!(score > r->hyps[slot].score)) return;
    } else {
        r->num_hyps++;
    }
    rt_hypothesis *h = &r->hyps[slot];
    memcpy(h->tokens, beam->tokens + r->prompt_len, (size_t)n * sizeof *h->tokens);
    memcpy(h->logprobs, beam->logprobs, (size_t)n * sizeof *h->logprobs);
    h->len = n;
    h->cumulative_logprob = logprob;
    h->score = score;
    h->finish_reason = reason;
}

static double worst_hypothesis(const rt_request *r) {
    double worst = INFINITY;
    for (int32_t i = 0; i < r->num_hyps; i++)
        if (r->hyps[i].score < worst) worst = r->hyps[i].score;
    return worst;
}

/* Expands all live beams by their candidates. */
static void expand(llmrt_runtime *rt, rt_request *r) {
    int32_t B = r->num_seqs, k = 2 * B < rt->vocab ? 2 * B : rt->vocab;
    int32_t num_chosen = 0, num_new = 0;
    beam_candidate picks[64]; /* num_beams <= 64 (checked at submit) */
    /* merge the live beams' sorted candidate lists, best first, stopping once
     * B beams are picked; only the first 2·B candidates overall are looked at */
    int32_t cursor[64] = {0};
    while (num_chosen < 2 * B && num_new < B) {
        beam_candidate best = {.score = -INFINITY, .beam = -1};
        for (int32_t b = 0; b < B; b++) {
            const rt_sequence *s = &r->seqs[b];
            if (s->state != SEQ_ACTIVE || cursor[b] >= k) continue;
            beam_candidate c = {s->cumulative_logprob + s->cand_logprobs[cursor[b]], s->cand_logprobs[cursor[b]], b,
                                s->cand_ids[cursor[b]]};
            if (best.beam < 0 || better(&c, &best)) best = c;
        }
        if (best.beam < 0) break;
        cursor[best.beam]++;
        int32_t rank = num_chosen++;
        if (rt_is_stop_token(rt, r, best.token)) {
            if (rank < B) add_hypothesis(r, &r->seqs[best.beam], best.score, "stop");
            continue;
        }
        picks[num_new++] = best;
    }
    /* re-form: new beam j from its parent, into the double buffers */
    for (int32_t j = 0; j < num_new; j++) {
        const rt_sequence *p = &r->seqs[picks[j].beam];
        rt_sequence *s = &r->seqs[j];
        int32_t n = p->len - r->prompt_len;
        memcpy(s->next_tokens, p->tokens, (size_t)p->len * sizeof *p->tokens);
        s->next_tokens[p->len] = picks[j].token;
        memcpy(s->next_logprobs, p->logprobs, (size_t)n * sizeof *p->logprobs);
        s->next_logprobs[n] = picks[j].logprob;
        memcpy(s->next_blocks, p->blocks, (size_t)p->num_blocks * sizeof *p->blocks);
        for (int32_t b = 0; b < p->num_blocks; b++) kv_cache_retain(rt->kv, p->blocks[b]);
    }
    int32_t new_len[64], new_computed[64], new_num_blocks[64], new_indexed[64];
    uint64_t new_key[64];
    for (int32_t j = 0; j < num_new; j++) {
        const rt_sequence *p = &r->seqs[picks[j].beam];
        new_len[j] = p->len + 1;
        new_computed[j] = p->computed;
        new_num_blocks[j] = p->num_blocks;
        new_indexed[j] = p->num_indexed;
        new_key[j] = p->last_key;
    }
    for (int32_t b = 0; b < B; b++) rt_sequence_release_blocks(rt, &r->seqs[b]);
    for (int32_t j = 0; j < B; j++) {
        rt_sequence *s = &r->seqs[j];
        s->candidates_ready = 0;
        if (j >= num_new) {
            s->state = SEQ_FINISHED;
            s->finish_reason = "stop";
            continue;
        }
        int32_t *t = s->tokens;
        s->tokens = s->next_tokens;
        s->next_tokens = t;
        float *l = s->logprobs;
        s->logprobs = s->next_logprobs;
        s->next_logprobs = l;
        int32_t *bl = s->blocks;
        s->blocks = s->next_blocks;
        s->next_blocks = bl;
        s->len = new_len[j];
        s->computed = new_computed[j];
        s->num_blocks = new_num_blocks[j];
        s->num_indexed = new_indexed[j];
        s->last_key = new_key[j];
        s->cumulative_logprob = picks[j].score;
        s->state = SEQ_ACTIVE;
    }
    r->forked = 1;
    r->beam_gen_len++;
    rt->tokens_generated += num_new;
    if (r->first_token_time == 0) r->first_token_time = llmrt_now_seconds();
    r->token_times[r->num_token_times++] = llmrt_now_seconds() - r->submit_time;

    int done = num_new == 0;
    if (!done && (r->beam_gen_len >= r->max_new || r->seqs[0].len >= rt->max_seq_len)) {
        for (int32_t j = 0; j < num_new; j++)
            add_hypothesis(r, &r->seqs[j], r->seqs[j].cumulative_logprob, "length");
        done = 1;
    } else if (!done && r->num_hyps >= B) {
        if (r->params.early_stopping) done = 1;
        else /* HF's heuristic: the best live beam, scored at the current length, cannot win */
            done = worst_hypothesis(r) >= length_score(r, r->seqs[0].cumulative_logprob, r->beam_gen_len);
    }
    if (done) {
        for (int32_t j = 0; j < B; j++) {
            rt_sequence_release_blocks(rt, &r->seqs[j]);
            r->seqs[j].state = SEQ_FINISHED;
            if (!r->seqs[j].finish_reason) r->seqs[j].finish_reason = "stop";
        }
    }
}

llmrt_status rt_beam_on_logits(llmrt_runtime *rt, rt_request *r, int32_t i, const float *row, double lse) {
    rt_sequence *s = &r->seqs[i];
    int32_t k = 2 * r->num_seqs < rt->vocab ? 2 * r->num_seqs : rt->vocab;
    llmrt_top_k_ids(row, rt->vocab, k, rt->top_scratch);
    for (int32_t j = 0; j < k; j++) {
        s->cand_ids[j] = rt->top_scratch[j];
        s->cand_logprobs[j] = (float)(row[rt->top_scratch[j]] - lse);
    }
    s->candidates_ready = 1;
    for (int32_t b = 0; b < r->num_seqs; b++)
        if (r->seqs[b].state == SEQ_ACTIVE && !r->seqs[b].candidates_ready) return LLMRT_OK;
    expand(rt, r);
    return LLMRT_OK;
}

/* Sorts the hypotheses best first; a request ended early (cancelled, failed)
 * with none returns its live beams. */
void rt_beam_finalize(llmrt_runtime *rt, rt_request *r) {
    if (r->num_hyps == 0)
        for (int32_t j = 0; j < r->num_seqs; j++)
            if (r->seqs[j].state == SEQ_ACTIVE && r->seqs[j].len >= r->prompt_len)
                add_hypothesis(r, &r->seqs[j], r->seqs[j].cumulative_logprob, "cancelled");
    for (int32_t a = 1; a < r->num_hyps; a++) /* insertion sort of <= 64 */
        for (int32_t b = a; b > 0 && r->hyps[b].score > r->hyps[b - 1].score; b--) {
            rt_hypothesis t = r->hyps[b];
            r->hyps[b] = r->hyps[b - 1];
            r->hyps[b - 1] = t;
        }
    (void)rt;
}
