/* Requests inside the runtime: the copy made at submit (every array a
 * request can need is allocated here, so the step loop does not allocate
 * per token), what happens to each new token (sampling, stop ids, stop
 * strings cut exactly in the text, max tokens, streaming events), and the
 * result handed to the caller. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "runtime/runtime_internal.h"

/* ---- lists ------------------------------------------------------------------ */

void rt_list_remove(rt_list *l, rt_request *r) {
    if (r->prev) r->prev->next = r->next;
    else l->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else l->tail = r->prev;
    r->prev = r->next = NULL;
    l->count--;
}

void rt_list_push(rt_list *l, rt_request *r) {
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
    l->count++;
}

void rt_list_insert_by_arrival(rt_list *l, rt_request *r) {
    rt_request *after = l->tail;
    while (after && after->arrival > r->arrival) after = after->prev;
    r->prev = after;
    r->next = after ? after->next : l->head;
    if (r->next) r->next->prev = r;
    else l->tail = r;
    if (after) after->next = r;
    else l->head = r;
    l->count++;
}

/* ---- create / free ------------------------------------------------------------- */

void rt_request_free(rt_request *r) {
    if (!r) return;
    for (int32_t i = 0; r->seqs && i < r->num_seqs; i++) {
        rt_sequence *s = &r->seqs[i];
        free(s->tokens);
        free(s->blocks);
        free(s->logprobs);
        free(s->top_ids);
        free(s->top_logprobs);
        llmrt_detokenizer_free(s->detok);
        text_buffer_free(&s->text);
        free(s->next_tokens);
        free(s->next_blocks);
        free(s->next_logprobs);
        free(s->cand_ids);
        free(s->cand_logprobs);
    }
    for (int32_t i = 0; r->hyps && i < r->num_seqs; i++) {
        free(r->hyps[i].tokens);
        free(r->hyps[i].logprobs);
    }
    free(r->hyps);
    free(r->seqs);
    for (int32_t i = 0; r->stop_strings && i < r->params.num_stop; i++) free(r->stop_strings[i]);
    free(r->stop_strings);
    free(r->stop_ids);
    free(r->bad_word_ids);
    free(r->bad_word_lengths);
    rt_prompt_scores_free(&r->prompt);
    free(r->token_times);
    free(r->error);
    llmrt_result_free(&r->result);
    free(r);
}

static int alloc_sequence(const llmrt_runtime *rt, rt_request *r, rt_sequence *s, const llmrt_tokenizer *tok) {
    size_t cap = (size_t)r->prompt_len + (size_t)r->max_new + 1, out = (size_t)r->max_new + 1;
    s->tokens = malloc(cap * sizeof *s->tokens);
    s->blocks = malloc((size_t)rt->max_blocks_per_seq * sizeof *s->blocks);
    s->logprobs = malloc(out * sizeof *s->logprobs);
    if (!s->tokens || !s->blocks || !s->logprobs) return 0;
    if (r->num_top > 0) {
        s->top_ids = malloc(out * (size_t)r->num_top * sizeof *s->top_ids);
        s->top_logprobs = malloc(out * (size_t)r->num_top * sizeof *s->top_logprobs);
        if (!s->top_ids || !s->top_logprobs) return 0;
    }
    if (r->beam) {
        size_t k = 2 * (size_t)r->num_seqs;
        s->next_tokens = malloc(cap * sizeof *s->next_tokens);
        s->next_blocks = malloc((size_t)rt->max_blocks_per_seq * sizeof *s->next_blocks);
        s->next_logprobs = malloc(out * sizeof *s->next_logprobs);
        s->cand_ids = malloc(k * sizeof *s->cand_ids);
        s->cand_logprobs = malloc(k * sizeof *s->cand_logprobs);
        if (!s->next_tokens || !s->next_blocks || !s->next_logprobs || !s->cand_ids || !s->cand_logprobs) return 0;
    }
    if (tok) {
        if (llmrt_detokenizer_create(tok, LLMRT_DECODE_SKIP_SPECIAL, &s->detok) != LLMRT_OK) return 0;
        /* a guess; grows geometrically if short */
        if (!text_buffer_reserve(&s->text, 64 + 8 * (size_t)r->max_new)) return 0;
    }
    s->last_key = KV_CACHE_ROOT_KEY;
    return 1;
}

llmrt_status rt_request_create(llmrt_runtime *rt, const llmrt_request *p, const int32_t *prompt, int32_t prompt_len,
                               rt_request **out) {
    *out = NULL;
    const llmrt_tokenizer *tok = NULL;
    if (p->num_stop > 0 || p->detokenize) {
        llmrt_status s = llmrt_runtime_tokenizer(rt, &tok);
        if (s != LLMRT_OK && p->num_stop > 0) return llmrt_error_context(s, "request: stop strings need text");
        if (s != LLMRT_OK) tok = NULL; /* no tokenizer: ids only */
    }
    rt_request *r = calloc(1, sizeof *r);
    if (!r) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "request: out of memory");
    r->params = *p;
    r->params.prompt_ids = NULL;
    r->params.prompt_text = NULL;
    r->params.stop = NULL;
    r->params.sampling.stop_ids = NULL;
    r->params.bad_word_ids = r->params.bad_word_lengths = NULL;
    r->prompt_len = prompt_len;
    int32_t room = rt->max_seq_len - prompt_len;
    r->max_new = p->sampling.max_tokens < room ? p->sampling.max_tokens : room;
    r->num_top = p->logprobs;
    r->beam = p->num_beams > 0;
    r->num_seqs = r->beam ? p->num_beams : p->n;
    int ok = 1;
    if (p->sampling.num_stop_ids > 0) {
        r->stop_ids = malloc((size_t)p->sampling.num_stop_ids * sizeof *r->stop_ids);
        ok = r->stop_ids != NULL;
        if (ok) memcpy(r->stop_ids, p->sampling.stop_ids, (size_t)p->sampling.num_stop_ids * sizeof *r->stop_ids);
    }
    if (ok && p->num_stop > 0) {
        r->stop_strings = calloc((size_t)p->num_stop, sizeof *r->stop_strings);
        ok = r->stop_strings != NULL;
        for (int32_t i = 0; ok && i < p->num_stop; i++) {
            size_t n = strlen(p->stop[i]);
            r->stop_strings[i] = malloc(n + 1);
            ok = r->stop_strings[i] != NULL;
            if (ok) memcpy(r->stop_strings[i], p->stop[i], n + 1);
            if (n > r->max_stop_len) r->max_stop_len = n;
        }
    }
    ok = ok && rt_bad_words_copy(r, p);
    r->seqs = ok ? calloc((size_t)r->num_seqs, sizeof *r->seqs) : NULL;
    r->token_times = ok ? malloc(((size_t)r->max_new + 1) * sizeof *r->token_times) : NULL;
    ok = r->seqs && r->token_times && rt_prompt_scores_alloc(r, prompt);
    for (int32_t i = 0; ok && i < r->num_seqs; i++) ok = alloc_sequence(rt, r, &r->seqs[i], tok);
    if (ok && r->beam) {
        r->hyps = calloc((size_t)r->num_seqs, sizeof *r->hyps);
        ok = r->hyps != NULL;
        for (int32_t i = 0; ok && i < r->num_seqs; i++) {
            r->hyps[i].tokens = malloc(((size_t)r->max_new + 1) * sizeof(int32_t));
            r->hyps[i].logprobs = malloc(((size_t)r->max_new + 1) * sizeof(float));
            ok = r->hyps[i].tokens && r->hyps[i].logprobs;
        }
    }
    if (!ok) {
        rt_request_free(r);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "request: out of memory for %d tokens", prompt_len);
    }
    for (int32_t i = 0; i < r->num_seqs; i++) {
        rt_sequence *s = &r->seqs[i];
        /* sequence 0 draws from the request's seed itself, so n = 1 matches
         * llmrt_generate; the others from seeds derived from it */
        llmrt_rng_seed(&s->rng, p->sampling.seed + (uint64_t)i * 0x9e3779b97f4a7c15ull);
        s->state = i == 0 ? SEQ_ACTIVE : SEQ_DORMANT;
    }
    memcpy(r->seqs[0].tokens, prompt, (size_t)prompt_len * sizeof *prompt);
    r->seqs[0].len = prompt_len;
    r->forked = r->num_seqs == 1;
    *out = r;
    return LLMRT_OK;
}

int rt_is_stop_token(const llmrt_runtime *rt, const rt_request *r, int32_t token) {
    if (!r->params.sampling.ignore_eos)
        for (int32_t i = 0; i < rt->num_eos; i++)
            if (token == rt->eos_ids[i]) return 1;
    for (int32_t i = 0; i < r->params.sampling.num_stop_ids; i++)
        if (token == r->stop_ids[i]) return 1;
    return 0;
}

llmrt_status rt_push_event(llmrt_runtime *rt, const rt_event *e) {
    if (rt->num_events == rt->events_cap) { /* grows to the peak once, then stays */
        int32_t cap = rt->events_cap ? rt->events_cap * 2 : 64;
        rt_event *grown = realloc(rt->events, (size_t)cap * sizeof *grown);
        if (!grown) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "runtime: out of memory for events");
        rt->events = grown;
        rt->events_cap = cap;
    }
    rt->events[rt->num_events++] = *e;
    return LLMRT_OK;
}

/* ---- text and stop strings --------------------------------------------------- */

/* Finds the earliest stop string that ends after byte `from_end` (matches
 * ending earlier were looked for before); cuts the text there. */
static int cut_at_stop(const rt_request *r, rt_sequence *s, size_t old_len) {
    size_t start = old_len + 1 > r->max_stop_len ? old_len + 1 - r->max_stop_len : 0;
    size_t best = SIZE_MAX;
    for (int32_t i = 0; i < r->params.num_stop; i++) {
        const char *stop = r->stop_strings[i];
        size_t n = strlen(stop);
        for (size_t at = start; at + n <= s->text.len && at < best; at++)
            if (memcmp(s->text.data + at, stop, n) == 0) {
                best = at;
                break;
            }
    }
    if (best == SIZE_MAX) return 0;
    text_buffer_truncate(&s->text, best);
    return 1;
}

/* Bytes of text that no later token can take back: all of it, less what
 * could still become the start of a stop string, on a UTF-8 boundary. */
static size_t text_final(const rt_request *r, const rt_sequence *s) {
    if (r->max_stop_len == 0 || s->state == SEQ_FINISHED) return s->text.len;
    size_t hold = r->max_stop_len - 1, end = s->text.len > hold ? s->text.len - hold : 0;
    while (end > s->text_sent && end < s->text.len && ((unsigned char)s->text.data[end] & 0xc0) == 0x80) end--;
    return end < s->text_sent ? s->text_sent : end;
}

/* Feeds a token to the detokenizer; returns 1 when a stop string matched. */
static int add_token_text(rt_request *r, rt_sequence *s, int32_t token, int *failed) {
    if (!s->detok) return 0;
    const char *piece;
    size_t n, old = s->text.len;
    if (llmrt_detokenizer_step(s->detok, token, &piece, &n) != LLMRT_OK || !text_buffer_append(&s->text, piece, n)) {
        *failed = 1;
        return 0;
    }
    return r->params.num_stop > 0 && n > 0 && cut_at_stop(r, s, old);
}

/* ---- per token ------------------------------------------------------------------ */

static void queue_event(llmrt_runtime *rt, rt_request *r, int32_t i, int32_t token, float logprob, int32_t top_index) {
    rt_sequence *s = &r->seqs[i];
    if (!r->params.callback) return;
    size_t to = text_final(r, s);
    rt_event e = {.req = r, .seq = i, .token = token, .logprob = logprob, .top_index = top_index,
                  .text_from = s->text_sent, .text_to = to, .finished = s->state == SEQ_FINISHED,
                  .finish_reason = s->finish_reason};
    if (r->params.prompt_logprobs && !r->prompt_sent && i == 0) e.with_prompt = r->prompt_sent = 1;
    s->text_sent = to;
    if (rt_push_event(rt, &e) != LLMRT_OK) r->params.callback = NULL; /* stop streaming rather than fail */
}

void rt_sequence_release_blocks(llmrt_runtime *rt, rt_sequence *s) {
    for (int32_t b = 0; b < s->num_blocks; b++) kv_cache_release(rt->kv, s->blocks[b]);
    s->num_blocks = 0;
}

static void end_sequence(llmrt_runtime *rt, rt_request *r, rt_sequence *s, const char *reason) {
    rt_sequence_release_blocks(rt, s);
    if (s->detok && strcmp(reason, "stop") != 0) {
        const char *piece;
        size_t n, old = s->text.len;
        /* held-back bytes of an incomplete character; they may complete a stop string */
        if (llmrt_detokenizer_flush(s->detok, &piece, &n) == LLMRT_OK && n > 0 &&
            text_buffer_append(&s->text, piece, n) && r->params.num_stop > 0 && cut_at_stop(r, s, old))
            reason = "stop";
    }
    s->state = SEQ_FINISHED;
    s->finish_reason = reason;
}

void rt_finish_sequence(llmrt_runtime *rt, rt_request *r, int32_t i, const char *reason) {
    rt_sequence *s = &r->seqs[i];
    if (s->state == SEQ_FINISHED) return;
    end_sequence(rt, r, s, reason);
    if (!r->beam) queue_event(rt, r, i, -1, 0.0f, -1);
}

/* Appends a sampled token to sequence i and applies the stop conditions. */
static void accept_token(llmrt_runtime *rt, rt_request *r, int32_t i, int32_t token, float logprob, const float *row,
                         double lse) {
    rt_sequence *s = &r->seqs[i];
    double now = llmrt_now_seconds();
    if (r->first_token_time == 0) r->first_token_time = now;
    if (rt_is_stop_token(rt, r, token)) {
        rt_finish_sequence(rt, r, i, "stop");
        return;
    }
    int32_t k = s->len - r->prompt_len;
    s->tokens[s->len++] = token;
    s->logprobs[k] = logprob;
    s->cumulative_logprob += logprob;
    if (i == 0) r->token_times[r->num_token_times++] = now - r->submit_time;
    if (r->num_top > 0 && row) {
        llmrt_top_k_ids(row, rt->vocab, r->num_top, rt->top_scratch);
        for (int32_t j = 0; j < r->num_top; j++) {
            s->top_ids[(size_t)k * r->num_top + j] = rt->top_scratch[j];
            s->top_logprobs[(size_t)k * r->num_top + j] = (float)(row[rt->top_scratch[j]] - lse);
        }
    }
    rt->tokens_generated++;
    int failed = 0;
    const char *reason = NULL;
    if (add_token_text(r, s, token, &failed)) reason = "stop";
    else if (k + 1 >= r->max_new || s->len >= rt->max_seq_len) reason = "length";
    if (failed) {
        reason = "error";
        if (r->status == LLMRT_OK) {
            r->status = LLMRT_ERR_INTERNAL;
            free(r->error);
            r->error = strdup("detokenizing the output failed");
        }
    }
    if (reason) end_sequence(rt, r, s, reason);
    queue_event(rt, r, i, token, logprob, r->num_top > 0 ? k : -1);
}

/* Samples the next token of sequence i from its logits row. */
static void sample_sequence(llmrt_runtime *rt, rt_request *r, int32_t i, const float *row, double lse) {
    rt_sequence *s = &r->seqs[i];
    const llmrt_request *p = &r->params;
    llmrt_penalties pen = {p->repetition_penalty, p->presence_penalty, p->frequency_penalty};
    llmrt_sampler_config cfg = {p->sampling.temperature, p->sampling.top_k, p->sampling.top_p, p->min_p};
    const float *logits = row;
    const int penalise = llmrt_penalties_active(&pen);
    if (penalise || p->num_bad_words > 0) {
        memcpy(rt->row, row, (size_t)rt->vocab * sizeof *row);
        if (penalise) llmrt_apply_penalties(rt->row, rt->vocab, &pen, s->tokens, s->len, r->prompt_len, rt->counts);
        rt_bad_words_ban(r, s, rt->row);
        logits = rt->row;
    }
    int32_t token = llmrt_sample(logits, rt->vocab, &cfg, &s->rng, rt->sampler_scratch);
    accept_token(rt, r, i, token, (float)(row[token] - lse), row, lse);
}

/* n > 1: the prompt was computed once by sequence 0; the others take its
 * blocks (shared, copy-on-write for the partial last one). */
static void fork_prompt(llmrt_runtime *rt, rt_request *r) {
    const rt_sequence *p = &r->seqs[0];
    for (int32_t i = 1; i < r->num_seqs; i++) {
        rt_sequence *s = &r->seqs[i];
        memcpy(s->tokens, p->tokens, (size_t)p->len * sizeof *p->tokens);
        s->len = p->len;
        s->computed = p->computed;
        memcpy(s->blocks, p->blocks, (size_t)p->num_blocks * sizeof *p->blocks);
        s->num_blocks = p->num_blocks;
        for (int32_t b = 0; b < p->num_blocks; b++) kv_cache_retain(rt->kv, p->blocks[b]);
        s->num_indexed = p->num_indexed;
        s->last_key = p->last_key;
        s->state = SEQ_ACTIVE;
    }
    r->forked = 1;
}

/* Non-finite logits (weights holding NaN or Inf, an activation overflowing
 * its dtype) fail the request rather than sample: greedy would print token
 * 0 forever, a draw an arbitrary token, beam search nothing. */
static llmrt_status fail_nonfinite(llmrt_runtime *rt, rt_request *r, int32_t i) {
    llmrt_status s = llmrt_error(LLMRT_ERR_BACKEND,
                                 "request %llu: the model's logits are not finite (NaN or Inf) at position %d of "
                                 "sequence %d (weights holding NaN or Inf, or an activation overflowing its dtype)",
                                 (unsigned long long)r->id, r->seqs[i].len, i);
    rt_finish_request(rt, r, s, "error");
    return s;
}

llmrt_status rt_on_logits(llmrt_runtime *rt, rt_request *r, int32_t i, const float *row, double lse) {
    if (!isfinite(lse)) return fail_nonfinite(rt, r, i); /* NaN for a row with a NaN or an infinity */
    if (r->max_new == 0) { /* a prompt scored, nothing to generate */
        rt_finish_request(rt, r, LLMRT_OK, "length");
        return LLMRT_OK;
    }
    if (r->beam) return rt_beam_on_logits(rt, r, i, row, lse);
    if (!r->forked) {
        fork_prompt(rt, r);
        for (int32_t j = 0; j < r->num_seqs; j++) sample_sequence(rt, r, j, row, lse);
    } else {
        sample_sequence(rt, r, i, row, lse);
    }
    return LLMRT_OK;
}

int rt_device_sample_params(llmrt_runtime *rt, rt_request *r, int32_t i, llmrt_row_sampling *row) {
    (void)rt;
    const llmrt_request *p = &r->params;
    const llmrt_penalties pen = {p->repetition_penalty, p->presence_penalty, p->frequency_penalty};
    memset(row, 0, sizeof *row);
    /* beams and top-N logprobs rank the whole row; penalties and bad words
     * rewrite it; an unforked n > 1 request samples its n sequences from
     * one row; a scored prompt may generate nothing */
    if (r->beam || r->num_top > 0 || llmrt_penalties_active(&pen) || (!r->forked && r->num_seqs > 1) ||
        p->num_bad_words > 0 || p->prompt_logprobs) {
        row->host_logits = 1;
        return 0;
    }
    row->temperature = p->sampling.temperature;
    row->top_k = p->sampling.top_k;
    row->top_p = p->sampling.top_p;
    row->min_p = p->min_p;
    /* one draw per sampled token, as llmrt_sample takes it: the request's
     * stream of draws is the same whichever side samples */
    if (row->temperature > 0.0f && row->top_k != 1) {
        float u = (float)llmrt_rng_uniform(&r->seqs[i].rng);
        row->uniform = u < 1.0f ? u : 0x1.fffffep-1f;
    }
    return 1;
}

void rt_on_sampled(llmrt_runtime *rt, rt_request *r, int32_t i, int32_t token, float logprob) {
    /* the device sampler reports a row with a NaN or an infinity through a
     * non-finite log-probability */
    if (!isfinite(logprob) || token < 0 || token >= rt->vocab) {
        fail_nonfinite(rt, r, i);
        return;
    }
    if (!r->forked) fork_prompt(rt, r); /* one sequence: only marks the prompt done */
    accept_token(rt, r, i, token, logprob, NULL, 0);
}

int rt_request_all_finished(const rt_request *r) {
    for (int32_t i = 0; i < r->num_seqs; i++)
        if (r->seqs[i].state != SEQ_FINISHED) return 0;
    return 1;
}

/* ---- results ---------------------------------------------------------------------- */

static int fill_output(llmrt_sequence_output *o, const int32_t *ids, const float *logprobs, int32_t n,
                       const int32_t *top_ids, const float *top_lp, int32_t num_top, const char *text,
                       size_t text_len) {
    o->output_ids = malloc(((size_t)n + 1) * sizeof *o->output_ids);
    o->logprobs = malloc(((size_t)n + 1) * sizeof *o->logprobs);
    if (!o->output_ids || !o->logprobs) return 0;
    memcpy(o->output_ids, ids, (size_t)n * sizeof *ids);
    memcpy(o->logprobs, logprobs, (size_t)n * sizeof *logprobs);
    o->num_output = n;
    o->cumulative_logprob = 0;
    for (int32_t k = 0; k < n; k++) o->cumulative_logprob += logprobs[k];
    o->score = o->cumulative_logprob;
    if (num_top > 0 && top_ids) {
        size_t count = (size_t)n * (size_t)num_top + 1;
        o->top_ids = malloc(count * sizeof *o->top_ids);
        o->top_logprobs = malloc(count * sizeof *o->top_logprobs);
        if (!o->top_ids || !o->top_logprobs) return 0;
        memcpy(o->top_ids, top_ids, (count - 1) * sizeof *top_ids);
        memcpy(o->top_logprobs, top_lp, (count - 1) * sizeof *top_lp);
        o->num_top = num_top;
    }
    if (text) {
        o->text = malloc(text_len + 1);
        if (!o->text) return 0;
        memcpy(o->text, text, text_len);
        o->text[text_len] = '\0';
        o->text_len = text_len;
    }
    return 1;
}

static int build_result(llmrt_runtime *rt, rt_request *r) {
    llmrt_result *res = &r->result;
    res->id = r->id;
    res->status = r->status;
    res->prompt_tokens = r->prompt_len;
    res->cached_prompt_tokens = r->cached_prompt_tokens;
    res->queue_seconds = (r->scheduled_time ? r->scheduled_time : r->finish_time) - r->submit_time;
    res->ttft_seconds = r->first_token_time ? r->first_token_time - r->submit_time : 0;
    res->e2e_seconds = r->finish_time - r->submit_time;
    res->num_preemptions = r->num_preemptions;
    if (!rt_prompt_scores_copy(&res->prompt, &r->prompt)) return 0;
    if (r->error) {
        res->error = strdup(r->error);
        if (!res->error) return 0;
    }
    res->token_times = malloc(((size_t)r->num_token_times + 1) * sizeof *res->token_times);
    if (!res->token_times) return 0;
    memcpy(res->token_times, r->token_times, (size_t)r->num_token_times * sizeof *res->token_times);
    res->num_token_times = r->num_token_times;
    int32_t count = r->beam ? (r->params.n < r->num_hyps ? r->params.n : r->num_hyps) : r->num_seqs;
    res->sequences = calloc((size_t)count + 1, sizeof *res->sequences);
    if (!res->sequences) return 0;
    res->num_sequences = count;
    for (int32_t i = 0; i < count; i++) {
        llmrt_sequence_output *o = &res->sequences[i];
        if (r->beam) {
            const rt_hypothesis *h = &r->hyps[i];
            char *text = NULL;
            size_t text_len = 0;
            const llmrt_tokenizer *tok = NULL;
            if (r->seqs[0].detok && llmrt_runtime_tokenizer(rt, &tok) == LLMRT_OK &&
                llmrt_tokenizer_decode(tok, h->tokens, (size_t)h->len, LLMRT_DECODE_SKIP_SPECIAL, &text, &text_len) !=
                    LLMRT_OK)
                return 0;
            int ok = fill_output(o, h->tokens, h->logprobs, h->len, NULL, NULL, 0, text, text_len);
            free(text);
            if (!ok) return 0;
            o->score = h->score;
            o->finish_reason = h->finish_reason;
        } else {
            const rt_sequence *s = &r->seqs[i];
            int32_t n = s->len - r->prompt_len;
            if (n < 0) n = 0; /* a dormant sequence that never got the prompt */
            if (!fill_output(o, s->tokens + r->prompt_len, s->logprobs, n, s->top_ids, s->top_logprobs, r->num_top,
                             s->detok ? s->text.data : NULL, s->text.len))
                return 0;
            o->finish_reason = s->finish_reason ? s->finish_reason : "cancelled";
        }
    }
    return 1;
}

void rt_finish_request(llmrt_runtime *rt, rt_request *r, llmrt_status status, const char *reason) {
    if (r->state == REQ_FINISHING || r->state == REQ_DONE) return;
    if (status != LLMRT_OK && r->status == LLMRT_OK) {
        r->status = status;
        free(r->error);
        r->error = strdup(llmrt_last_error());
    }
    if (r->beam) rt_beam_finalize(rt, r);
    for (int32_t i = 0; i < r->num_seqs; i++) rt_finish_sequence(rt, r, i, reason);
    r->finish_time = llmrt_now_seconds();
    if (!build_result(rt, r)) {
        llmrt_result_free(&r->result);
        memset(&r->result, 0, sizeof r->result);
        r->result.id = r->id;
        r->result.status = LLMRT_ERR_OUT_OF_MEMORY;
        r->result.error = NULL;
    }
    if (r->beam && r->params.callback) /* beams stream nothing until the end: one event per returned sequence */
        for (int32_t i = 0; i < r->result.num_sequences; i++) {
            rt_event e = {.req = r, .seq = i, .token = -1, .top_index = -1, .finished = 1,
                          .finish_reason = r->result.sequences[i].finish_reason};
            rt_push_event(rt, &e);
        }
    rt_list_remove(r->state == REQ_WAITING ? &rt->waiting : &rt->running, r);
    r->state = REQ_FINISHING;
    rt_list_push(&rt->finishing, r);
}
