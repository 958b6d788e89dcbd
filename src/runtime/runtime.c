/* The runtime's public API and its step loop.
 *
 * One step: under the lock, sweep cancellations and schedule (rt_schedule
 * fills the step buffers); without the lock, run the backend's forward; under
 * the lock again, record what was computed and sample every sequence whose
 * last token was in the step; without the lock, deliver the streaming events
 * the step queued; finally mark finished requests done and wake waiters. A
 * request only becomes DONE (and retrievable, hence freeable) after its last
 * event was delivered, so events may point into it without the lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/thread_pool.h"
#include "engine/loaded_engine.h"
#include "models/models.h"
#include "runtime/runtime_internal.h"
#include "runtime/sampler.h"

void llmrt_runtime_options_init(llmrt_runtime_options *o) {
    memset(o, 0, sizeof *o);
    o->background = 1;
    o->prefix_caching = 1;
}

void llmrt_sampling_params_init(llmrt_sampling_params *p) {
    memset(p, 0, sizeof *p);
    p->max_tokens = 16;
    p->top_p = 1.0f;
}

void llmrt_request_init(llmrt_request *r) {
    memset(r, 0, sizeof *r);
    llmrt_sampling_params_init(&r->sampling);
    r->repetition_penalty = 1.0f;
    r->n = 1;
    r->length_penalty = 1.0f;
    r->detokenize = 1;
}

static void *runtime_thread(void *arg);

void llmrt_runtime_free(llmrt_runtime *rt) {
    if (!rt) return;
    if (rt->profile && rt->num_steps > 0)
        fprintf(stderr, "llmrt: runtime profile: %lld steps; per step: schedule %.1f us, forward %.1f us, "
                        "sampling and delivery %.1f us (lock %.1f, tokens %.1f, events %.1f)\n",
                (long long)rt->num_steps, 1e6 * rt->prof_schedule / rt->num_steps,
                1e6 * rt->prof_forward / rt->num_steps, 1e6 * rt->prof_after / rt->num_steps,
                1e6 * rt->prof_relock / rt->num_steps, 1e6 * rt->prof_tokens / rt->num_steps,
                1e6 * rt->prof_deliver / rt->num_steps);
    if (rt->has_thread) {
        pthread_mutex_lock(&rt->lock);
        rt->shutdown = 1;
        pthread_cond_broadcast(&rt->work_cond);
        pthread_mutex_unlock(&rt->lock);
        pthread_join(rt->thread, NULL);
    }
    rt_list *lists[] = {&rt->waiting, &rt->running, &rt->finishing, &rt->done};
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
        while (lists[l]->head) {
            rt_request *r = lists[l]->head;
            if (r->state == REQ_RUNNING)
                for (int32_t i = 0; i < r->num_seqs; i++) rt_sequence_release_blocks(rt, &r->seqs[i]);
            rt_list_remove(lists[l], r);
            rt_request_free(r);
        }
    kv_cache_free(rt->kv);
    llmrt_tokenizer_free(rt->tokenizer);
    free(rt->step_tokens);
    free(rt->step_positions);
    free(rt->step_seq_start);
    free(rt->step_block_tables);
    free(rt->step_logit_rows);
    free(rt->step_score_count);
    free(rt->step_score_pos);
    free(rt->step_score_row);
    free(rt->step_req);
    free(rt->step_seq);
    free(rt->step_count);
    free(rt->step_logit);
    if (rt->backend) llmrt_backend_host_free(rt->backend, rt->logits);
    free(rt->row);
    free(rt->sampler_scratch);
    free(rt->row_lse);
    free(rt->host_rows);
    free(rt->sample_rows);
    free(rt->sampled_ids);
    free(rt->sampled_logprobs);
    free(rt->counts);
    free(rt->top_scratch);
    free(rt->events);
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->tokenizer_lock);
    pthread_cond_destroy(&rt->work_cond);
    pthread_cond_destroy(&rt->done_cond);
    if (rt->engine) llmrt_engine_release(rt->engine);
    free(rt);
}

llmrt_status llmrt_runtime_create(llmrt_engine *engine, const llmrt_runtime_options *options, llmrt_runtime **out) {
    *out = NULL;
    llmrt_runtime_options defaults;
    if (!options) {
        llmrt_runtime_options_init(&defaults);
        options = &defaults;
    }
    if (options->max_batch < 0 || options->max_num_tokens < 0 || options->kv_max_blocks < 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "runtime options: max_batch, max_num_tokens, kv_max_blocks >= 0");
    if (llmrt_model_is_encoder(engine->image->config.architecture))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s is an encoder: it has no text generation (use llmrt_encode, "
                           "llmrt_embed or /v1/embeddings)", engine->image->config.architecture);
    LLMRT_TRY(llmrt_engine_acquire(engine, "a runtime"));
    llmrt_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) {
        llmrt_engine_release(engine);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "runtime: out of memory");
    }
    rt->engine = engine;
    rt->backend = llmrt_engine_backend_instance(engine);
    rt->options = *options;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->tokenizer_lock, NULL);
    pthread_cond_init(&rt->work_cond, NULL);
    pthread_cond_init(&rt->done_cond, NULL);
    const llmrt_plan *plan = rt->backend->plan;
    llmrt_memory_report mem = {0};
    rt->backend->ops->memory_report(rt->backend->state, &mem);
    rt->max_batch = options->max_batch > 0 && options->max_batch < plan->max_batch ? options->max_batch : plan->max_batch;
    rt->max_num_tokens = options->max_num_tokens > 0 && options->max_num_tokens < plan->max_num_tokens
                             ? options->max_num_tokens
                             : plan->max_num_tokens;
    /* every running sequence must fit one decode token in a step */
    if (rt->max_batch > rt->max_num_tokens) rt->max_batch = rt->max_num_tokens;
    rt->vocab = plan->vocab_size;
    /* LLMRT_DEVICE_SAMPLING=0 brings every row to the host (comparisons) */
    const char *env = getenv("LLMRT_DEVICE_SAMPLING");
    rt->device_sampling = rt->backend->ops->device_sampling && !(env && env[0] == '0');
    env = getenv("LLMRT_PROFILE");
    rt->profile = env && env[0] && env[0] != '0';
    rt->block_size = mem.kv_block_size;
    rt->max_seq_len = plan->max_seq_len;
    rt->kv_window = plan->kv_window;
    rt->max_blocks_per_seq = rt_blocks_for(rt, rt->max_seq_len);
    rt->num_eos = llmrt_loaded_engine_eos_ids(engine, &rt->eos_ids);
    rt->next_id = 1;
    int32_t blocks = mem.kv_num_blocks;
    if (options->kv_max_blocks > 0 && options->kv_max_blocks < blocks) blocks = options->kv_max_blocks;
    rt->kv_total_blocks = blocks;
    llmrt_status s = kv_cache_create(blocks, rt->block_size, &rt->kv);
    size_t T = (size_t)rt->max_num_tokens, B = (size_t)rt->max_batch, V = (size_t)rt->vocab;
    /* a step's logits rows are distinct tokens: never more than T */
    rt->logit_capacity = (int32_t)(B + RT_SCORE_ROWS < T ? B + RT_SCORE_ROWS : T);
    size_t R = (size_t)rt->logit_capacity;
    if (s == LLMRT_OK) {
        rt->step_tokens = malloc(T * sizeof(int32_t));
        rt->step_positions = malloc(T * sizeof(int32_t));
        rt->step_seq_start = malloc((B + 1) * sizeof(int32_t));
        rt->step_block_tables = calloc(B * (size_t)rt->max_blocks_per_seq, sizeof(int32_t));
        rt->step_logit_rows = malloc(R * sizeof(int32_t));
        rt->step_req = malloc(B * sizeof *rt->step_req);
        rt->step_seq = malloc(B * sizeof(int32_t));
        rt->step_count = malloc(B * sizeof(int32_t));
        rt->step_logit = malloc(B * sizeof(int32_t));
        rt->step_score_count = malloc(B * sizeof(int32_t));
        rt->step_score_pos = malloc(B * sizeof(int32_t));
        rt->step_score_row = malloc(B * sizeof(int32_t));
        rt->logits = llmrt_backend_host_alloc(rt->backend, R * V * sizeof(float));
        rt->row_lse = malloc(R * sizeof(double));
        rt->host_rows = malloc(R * sizeof(int32_t));
        rt->sample_rows = malloc(R * sizeof *rt->sample_rows);
        rt->sampled_ids = malloc(R * sizeof(int32_t));
        rt->sampled_logprobs = malloc(R * sizeof(float));
        rt->row = malloc(V * sizeof(float));
        rt->sampler_scratch = malloc(llmrt_sampler_scratch_bytes(rt->vocab));
        rt->counts = calloc(V, sizeof(int32_t));
        rt->top_scratch = malloc(V * sizeof(int32_t));
        if (!rt->step_tokens || !rt->step_positions || !rt->step_seq_start || !rt->step_block_tables ||
            !rt->step_logit_rows || !rt->step_req || !rt->step_seq || !rt->step_count || !rt->step_logit ||
            !rt->step_score_count || !rt->step_score_pos || !rt->step_score_row ||
            !rt->logits || !rt->row_lse || !rt->host_rows || !rt->sample_rows || !rt->sampled_ids || !rt->sampled_logprobs || !rt->row || !rt->sampler_scratch || !rt->counts || !rt->top_scratch)
            s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "runtime: out of memory for step buffers");
    }
    if (s == LLMRT_OK && options->background) {
        if (pthread_create(&rt->thread, NULL, runtime_thread, rt) != 0)
            s = llmrt_error(LLMRT_ERR_INTERNAL, "runtime: cannot start the runtime thread");
        else rt->has_thread = 1;
    }
    if (s != LLMRT_OK) {
        llmrt_runtime_free(rt);
        return s;
    }
    *out = rt;
    return LLMRT_OK;
}

llmrt_status llmrt_runtime_tokenizer(llmrt_runtime *rt, const llmrt_tokenizer **out) {
    *out = NULL;
    pthread_mutex_lock(&rt->tokenizer_lock);
    llmrt_status s = LLMRT_OK;
    if (!rt->tokenizer_tried) {
        rt->tokenizer_tried = 1;
        s = llmrt_loaded_engine_tokenizer(rt->engine, &rt->tokenizer);
    } else if (!rt->tokenizer) {
        s = llmrt_error(LLMRT_ERR_NOT_FOUND, "the engine has no tokenizer");
    }
    *out = rt->tokenizer;
    pthread_mutex_unlock(&rt->tokenizer_lock);
    return s;
}

/* ---- submit ---------------------------------------------------------------------- */

static llmrt_status check_params(const llmrt_runtime *rt, const llmrt_request *p) {
    const llmrt_sampling_params *sp = &p->sampling;
    if (sp->max_tokens < 0) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: max_tokens %d < 0", sp->max_tokens);
    if (!(sp->temperature >= 0)) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: temperature must be >= 0");
    if (!(sp->top_p > 0 && sp->top_p <= 1)) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: top_p must be in (0, 1]");
    if (sp->top_k < 0) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: top_k must be >= 0");
    if (!(p->min_p >= 0 && p->min_p <= 1)) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: min_p must be in [0, 1]");
    if (!(p->repetition_penalty > 0)) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: repetition_penalty must be > 0");
    if (!(p->presence_penalty >= -2 && p->presence_penalty <= 2) || !(p->frequency_penalty >= -2 && p->frequency_penalty <= 2))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: presence_penalty and frequency_penalty must be in [-2, 2]");
    if (sp->num_stop_ids < 0 || (sp->num_stop_ids > 0 && !sp->stop_ids))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: stop_ids");
    if (p->num_stop < 0 || p->num_stop > LLMRT_MAX_STOP_STRINGS || (p->num_stop > 0 && !p->stop))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: 0..%d stop strings", LLMRT_MAX_STOP_STRINGS);
    for (int32_t i = 0; i < p->num_stop; i++)
        if (!p->stop[i] || !p->stop[i][0]) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: stop[%d] is empty", i);
    if (p->logprobs < 0 || p->logprobs > LLMRT_MAX_LOGPROBS || p->logprobs > rt->vocab)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: logprobs must be in 0..%d", LLMRT_MAX_LOGPROBS);
    int32_t limit = rt->max_batch < 64 ? rt->max_batch : 64;
    if (p->num_beams < 0 || p->num_beams > limit)
        return llmrt_error(LLMRT_ERR_CAPACITY, "request: num_beams %d (0..%d: the engine's max_batch)", p->num_beams, limit);
    if (p->n < 1 || p->n > rt->max_batch || (p->num_beams > 0 && p->n > p->num_beams))
        return llmrt_error(LLMRT_ERR_CAPACITY, "request: n %d (1..%d, and at most num_beams)", p->n,
                           p->num_beams > 0 ? p->num_beams : rt->max_batch);
    if (p->num_beams > 0) {
        if (sp->temperature > 0 || p->num_stop > 0 || p->min_p > 0 || sp->top_k > 1 || sp->top_p < 1)
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "request: beam search is deterministic: no temperature, top-k/p, "
                                                      "min-p or stop strings with num_beams");
        llmrt_penalties pen = {p->repetition_penalty, p->presence_penalty, p->frequency_penalty};
        if (llmrt_penalties_active(&pen) || p->logprobs > 0)
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "request: no penalties or top logprobs with num_beams");
    }
    return rt_bad_words_check(rt, p);
}

llmrt_status llmrt_runtime_submit(llmrt_runtime *rt, const llmrt_request *p, llmrt_request_id *out_id) {
    *out_id = 0;
    double submit_time = llmrt_now_seconds();
    LLMRT_TRY(check_params(rt, p));
    if ((p->prompt_text != NULL) == (p->prompt_ids != NULL))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: give exactly one of prompt_ids and prompt_text");
    int32_t *encoded = NULL;
    const int32_t *prompt = p->prompt_ids;
    int32_t n = p->num_prompt_ids;
    if (p->prompt_text) {
        const llmrt_tokenizer *tok;
        LLMRT_TRY(llmrt_runtime_tokenizer(rt, &tok));
        size_t count = 0;
        LLMRT_TRY(llmrt_tokenizer_encode(tok, p->prompt_text, strlen(p->prompt_text), LLMRT_ENCODE_ADD_SPECIAL,
                                         &encoded, &count));
        prompt = encoded;
        n = (int32_t)count;
    }
    llmrt_status s = LLMRT_OK;
    if (n < 1) s = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: the prompt is empty");
    else if (n > rt->max_seq_len)
        s = llmrt_error(LLMRT_ERR_CAPACITY, "request: the prompt has %d tokens; the engine's max_seq_len is %d", n,
                        rt->max_seq_len);
    for (int32_t i = 0; s == LLMRT_OK && i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= rt->vocab)
            s = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "request: prompt token %d at index %d is outside the vocabulary [0, %d)",
                            prompt[i], i, rt->vocab);
    if (s == LLMRT_OK) {
        /* the worst case, every sequence recomputed alone after a preemption,
         * must fit the pool, so that a request alone always completes */
        int32_t room = rt->max_seq_len - n, max_new = p->sampling.max_tokens < room ? p->sampling.max_tokens : room;
        int32_t seqs = p->num_beams > 0 ? p->num_beams : p->n;
        int64_t per_seq = rt_blocks_for(rt, n + max_new);
        /* a sliding-window plan holds at most a window and a chunk a sequence */
        const int64_t window_bound = rt_blocks_for(rt, rt->kv_window + rt->max_num_tokens) + 1;
        if (rt->kv_window > 0 && window_bound < per_seq) per_seq = window_bound;
        int64_t need = (int64_t)seqs * per_seq;
        if (need > rt->kv_total_blocks) /* fixed at create: no lock needed */
            s = llmrt_error(LLMRT_ERR_CAPACITY, "request: needs up to %lld KV blocks of %d tokens; the cache has %d",
                            (long long)need, rt->block_size, rt->kv_total_blocks);
    }
    rt_request *r = NULL;
    if (s == LLMRT_OK) s = rt_request_create(rt, p, prompt, n, &r);
    free(encoded);
    if (s != LLMRT_OK) return s;
    r->submit_time = submit_time;
    pthread_mutex_lock(&rt->lock);
    r->id = rt->next_id++;
    r->arrival = rt->next_arrival++;
    r->state = REQ_WAITING;
    rt_list_push(&rt->waiting, r);
    pthread_cond_signal(&rt->work_cond);
    pthread_mutex_unlock(&rt->lock);
    *out_id = r->id;
    return LLMRT_OK;
}

static rt_request *find_request(llmrt_runtime *rt, llmrt_request_id id) {
    rt_list *lists[] = {&rt->running, &rt->waiting, &rt->finishing, &rt->done};
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++)
        for (rt_request *r = lists[l]->head; r; r = r->next)
            if (r->id == id) return r;
    return NULL;
}

void llmrt_runtime_cancel(llmrt_runtime *rt, llmrt_request_id id) {
    pthread_mutex_lock(&rt->lock);
    rt_request *r = find_request(rt, id);
    if (r) {
        r->cancel_requested = 1;
        pthread_cond_signal(&rt->work_cond);
    }
    pthread_mutex_unlock(&rt->lock);
}

llmrt_status llmrt_runtime_poll(llmrt_runtime *rt, llmrt_request_id id, int32_t sequence, int32_t from, int32_t *ids,
                                int32_t capacity, int32_t *num_total, int *finished) {
    *num_total = 0;
    *finished = 0;
    pthread_mutex_lock(&rt->lock);
    rt_request *r = find_request(rt, id);
    llmrt_status s = LLMRT_OK;
    if (!r) s = llmrt_error(LLMRT_ERR_NOT_FOUND, "poll: no request %llu", (unsigned long long)id);
    else if (sequence < 0 || sequence >= r->num_seqs)
        s = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "poll: request %llu has no sequence %d", (unsigned long long)id,
                        sequence);
    if (s == LLMRT_OK) {
        const int32_t *src = NULL;
        int32_t total = 0;
        int done = r->state == REQ_FINISHING || r->state == REQ_DONE;
        if (done && sequence < r->result.num_sequences) {
            src = r->result.sequences[sequence].output_ids;
            total = r->result.sequences[sequence].num_output;
        } else if (!r->beam && r->seqs[sequence].len > r->prompt_len) {
            src = r->seqs[sequence].tokens + r->prompt_len;
            total = r->seqs[sequence].len - r->prompt_len;
        }
        for (int32_t i = from; i >= 0 && i < total && i - from < capacity; i++) ids[i - from] = src[i];
        *num_total = total;
        *finished = r->state == REQ_DONE;
    }
    pthread_mutex_unlock(&rt->lock);
    return s;
}

void llmrt_result_free(llmrt_result *res) {
    if (!res) return;
    for (int32_t i = 0; res->sequences && i < res->num_sequences; i++) {
        llmrt_sequence_output *o = &res->sequences[i];
        free(o->output_ids);
        free(o->logprobs);
        free(o->top_ids);
        free(o->top_logprobs);
        free(o->text);
    }
    free(res->sequences);
    free(res->token_times);
    free(res->error);
    rt_prompt_scores_free(&res->prompt);
    memset(res, 0, sizeof *res);
}

void llmrt_runtime_get_stats(llmrt_runtime *rt, llmrt_runtime_stats *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&rt->lock);
    kv_cache_stats st;
    kv_cache_get_stats(rt->kv, &st);
    out->kv_total_blocks = st.total_blocks;
    out->kv_block_size = rt->block_size;
    out->kv_used_blocks = st.used_blocks;
    out->kv_peak_used_blocks = st.peak_used_blocks;
    out->kv_cached_blocks = st.cached_blocks;
    out->prefix_queried_blocks = st.queried_blocks;
    out->prefix_hit_blocks = st.hit_blocks;
    out->num_waiting = rt->waiting.count;
    out->num_running = rt->running.count;
    out->num_preemptions = rt->num_preemptions;
    out->num_steps = rt->num_steps;
    out->prompt_tokens_computed = rt->prompt_tokens_computed;
    out->tokens_generated = rt->tokens_generated;
    pthread_mutex_unlock(&rt->lock);
}

/* ---- the step ---------------------------------------------------------------------- */

/* Ends cancelled requests, and those with nothing to generate. */
static void sweep(llmrt_runtime *rt) {
    rt_list *lists[] = {&rt->running, &rt->waiting};
    for (size_t l = 0; l < 2; l++) {
        rt_request *r = lists[l]->head;
        while (r) {
            rt_request *next = r->next;
            if (r->cancel_requested) rt_finish_request(rt, r, LLMRT_OK, "cancelled");
            else if (r->max_new == 0 && !r->params.prompt_logprobs) rt_finish_request(rt, r, LLMRT_OK, "length");
            r = next;
        }
    }
}

/* Delivers queued events without the lock, then lets finished requests go. */
static void deliver_and_retire(llmrt_runtime *rt) {
    while (rt->num_events > 0) {
        int32_t count = rt->num_events;
        pthread_mutex_unlock(&rt->lock);
        for (int32_t i = 0; i < count; i++) {
            const rt_event *e = &rt->events[i];
            rt_request *r = e->req;
            const rt_sequence *s = &r->seqs[e->seq < r->num_seqs ? e->seq : 0];
            llmrt_token_event ev = {
                .request = r->id,
                .sequence = e->seq,
                .token_id = e->token,
                .logprob = e->logprob,
                .num_top = e->top_index >= 0 ? r->num_top : 0,
                .top_ids = e->top_index >= 0 ? s->top_ids + (size_t)e->top_index * r->num_top : NULL,
                .top_logprobs = e->top_index >= 0 ? s->top_logprobs + (size_t)e->top_index * r->num_top : NULL,
                .text = s->text.data && !r->beam ? s->text.data + e->text_from : "",
                .text_len = s->text.data && !r->beam ? e->text_to - e->text_from : 0,
                .finished = e->finished,
                .finish_reason = e->finish_reason,
                .prompt = e->with_prompt ? &r->prompt : NULL,
            };
            rt->events[i].cancel = r->params.callback && r->params.callback(r->params.user_data, &ev);
        }
        pthread_mutex_lock(&rt->lock);
        /* only this thread queues events, so the array is as it was left */
        for (int32_t i = 0; i < count; i++)
            if (rt->events[i].cancel) rt->events[i].req->cancel_requested = 1;
        rt->num_events = 0;
        sweep(rt); /* cancellations asked for by callbacks take effect now */
    }
    int woke = 0;
    while (rt->finishing.head) {
        rt_request *r = rt->finishing.head;
        rt_list_remove(&rt->finishing, r);
        r->state = REQ_DONE;
        rt_list_push(&rt->done, r);
        woke = 1;
    }
    if (woke) pthread_cond_broadcast(&rt->done_cond);
}

/* The log-normaliser of host-sampled rows [begin, end) of the step. */
static void host_rows_logsumexp(void *ctx, int64_t begin, int64_t end) {
    llmrt_runtime *rt = ctx;
    for (int64_t i = begin; i < end; i++) {
        const int32_t l = rt->host_rows[i];
        rt->row_lse[l] = llmrt_logsumexp(rt->logits + (size_t)l * rt->vocab, rt->vocab);
    }
}


/* One step; called with the lock held, returns with it held. */
static llmrt_status step_locked(llmrt_runtime *rt, int *busy) {
    *busy = 0;
    const double t0 = rt->profile ? llmrt_now_seconds() : 0;
    double t1 = t0, t2 = t0, t2a = t0, t2b = t0;
    sweep(rt);
    int32_t tokens = 0;
    llmrt_status s = rt_schedule(rt, &tokens);
    if (s == LLMRT_OK && tokens > 0) {
        *busy = 1;
        rt->stepping = 1;
        /* on the GPU, rows whose request allows it are sampled there and
         * only their token ids come back */
        const int device = rt->device_sampling;
        llmrt_step_sampling sampling = {rt->sample_rows, rt->sampled_ids, rt->sampled_logprobs};
        for (int32_t q = 0; device && q < rt->step_num_seqs; q++) {
            if (rt->step_logit[q] >= 0)
                rt_device_sample_params(rt, rt->step_req[q], rt->step_seq[q], &rt->sample_rows[rt->step_logit[q]]);
            for (int32_t k = 0; k < rt->step_score_count[q]; k++) /* prompt scores: host rows */
                rt->sample_rows[rt->step_score_row[q] + k] = (llmrt_row_sampling){.host_logits = 1};
        }
        llmrt_step step = {
            .num_tokens = tokens,
            .token_ids = rt->step_tokens,
            .positions = rt->step_positions,
            .num_seqs = rt->step_num_seqs,
            .seq_start = rt->step_seq_start,
            .block_tables = rt->step_block_tables,
            .max_blocks_per_seq = rt->max_blocks_per_seq,
            .num_logits = rt->step_num_logits,
            .logits_indices = rt->step_logit_rows,
            .sampling = device ? &sampling : NULL,
        };
        pthread_mutex_unlock(&rt->lock);
        if (rt->profile) t1 = llmrt_now_seconds();
        s = rt->backend->ops->forward(rt->backend->state, &step, rt->logits);
        if (rt->profile) t2 = llmrt_now_seconds();
        pthread_mutex_lock(&rt->lock);
        if (rt->profile) t2a = llmrt_now_seconds();
        rt->stepping = 0;
        rt->num_steps++;
        if (s == LLMRT_OK) {
            rt_step_done(rt);
            /* every host row's log-normaliser (for the reported
             * log-probabilities), in parallel: at large batches this
             * full-vocabulary pass is the host's main per-token cost;
             * sampling itself stays sequential. Only rows sampled here
             * count: a parallel region over rows the device sampled cost
             * 0.4-1.6 ms a step on a 16-core host (384 rows, c = 384:
             * 12,190 → 12,450 output tokens/s without it). */
            const int32_t rows = rt->step_num_logits;
            int32_t num_host = 0;
            for (int32_t l = 0; l < rows; l++)
                if (!device || rt->sample_rows[l].host_logits) rt->host_rows[num_host++] = l;
            llmrt_parallel_for(num_host, 1, num_host > 4, host_rows_logsumexp, rt);
            if (rt->step_score_rows > 0) rt_prompt_score_rows(rt);
            for (int32_t q = 0; q < rt->step_num_seqs; q++) {
                rt_request *r = rt->step_req[q];
                const int32_t l = rt->step_logit[q];
                if (l < 0 || r->state != REQ_RUNNING) continue;
                if (device && !rt->sample_rows[l].host_logits)
                    rt_on_sampled(rt, r, rt->step_seq[q], rt->sampled_ids[l], rt->sampled_logprobs[l]);
                else rt_on_logits(rt, r, rt->step_seq[q], rt->logits + (size_t)l * rt->vocab, rt->row_lse[l]);
            }
            for (int32_t q = 0; q < rt->step_num_seqs; q++) {
                rt_request *r = rt->step_req[q];
                if (r->state == REQ_RUNNING && rt_request_all_finished(r)) rt_finish_request(rt, r, LLMRT_OK, "stop");
            }
        } else {
            /* the step failed: its requests fail with the message, others go on */
            llmrt_error_context(s, "engine step of %d tokens", tokens);
            for (int32_t q = 0; q < rt->step_num_seqs; q++)
                if (rt->step_req[q]->state == REQ_RUNNING) rt_finish_request(rt, rt->step_req[q], s, "error");
            LLMRT_WARN("runtime: %s", llmrt_last_error());
            s = LLMRT_OK;
        }
    } else if (s == LLMRT_OK && rt->running.count == 0 && rt->waiting.head) {
        /* nothing runs and the oldest request cannot start: it can never
         * (submit checks the pool covers a request alone), so fail it rather than spin */
        llmrt_error(LLMRT_ERR_CAPACITY, "request %llu does not fit the KV cache or the step limits",
                    (unsigned long long)rt->waiting.head->id);
        rt_finish_request(rt, rt->waiting.head, LLMRT_ERR_CAPACITY, "error");
        *busy = 1;
    } else if (s != LLMRT_OK) {
        LLMRT_WARN("runtime: scheduling failed: %s", llmrt_last_error());
    }
    if (rt->num_events > 0 || rt->finishing.head) *busy = 1;
    if (rt->profile) t2b = llmrt_now_seconds();
    deliver_and_retire(rt);
    if (rt->profile && tokens > 0) {
        const double t3 = llmrt_now_seconds();
        rt->prof_schedule += t1 - t0;
        rt->prof_forward += t2 - t1;
        rt->prof_after += t3 - t2;
        rt->prof_relock += t2a - t2;
        rt->prof_tokens += t2b - t2a;
        rt->prof_deliver += t3 - t2b;
    }
    return s;
}

llmrt_status llmrt_runtime_step(llmrt_runtime *rt, int *busy) {
    *busy = 0;
    if (rt->has_thread) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "runtime_step: the runtime has its own thread");
    pthread_mutex_lock(&rt->lock);
    llmrt_status s = step_locked(rt, busy);
    pthread_mutex_unlock(&rt->lock);
    return s;
}

static void *runtime_thread(void *arg) {
    llmrt_runtime *rt = arg;
    pthread_mutex_lock(&rt->lock);
    while (!rt->shutdown) {
        int busy = 0;
        step_locked(rt, &busy);
        if (!busy && !rt->shutdown) pthread_cond_wait(&rt->work_cond, &rt->lock);
    }
    /* shutting down: whatever is left ends as cancelled */
    while (rt->running.head) rt_finish_request(rt, rt->running.head, LLMRT_OK, "cancelled");
    while (rt->waiting.head) rt_finish_request(rt, rt->waiting.head, LLMRT_OK, "cancelled");
    deliver_and_retire(rt);
    pthread_mutex_unlock(&rt->lock);
    return NULL;
}

static void take_result(llmrt_runtime *rt, rt_request *r, llmrt_result *out) {
    *out = r->result;
    memset(&r->result, 0, sizeof r->result);
    rt_list_remove(&rt->done, r);
    rt_request_free(r);
}

llmrt_status llmrt_runtime_wait(llmrt_runtime *rt, llmrt_request_id id, double timeout, llmrt_result *out, int *done) {
    memset(out, 0, sizeof *out);
    *done = 0;
    double deadline = timeout >= 0 ? llmrt_now_seconds() + timeout : 0;
    pthread_mutex_lock(&rt->lock);
    llmrt_status s = LLMRT_OK;
    for (;;) {
        rt_request *r = find_request(rt, id);
        if (!r) {
            s = llmrt_error(LLMRT_ERR_NOT_FOUND, "wait: no request %llu", (unsigned long long)id);
            break;
        }
        if (r->state == REQ_DONE) {
            take_result(rt, r, out);
            *done = 1;
            break;
        }
        if (timeout >= 0 && llmrt_now_seconds() >= deadline) break;
        if (!rt->has_thread) {
            int busy = 0;
            s = step_locked(rt, &busy);
            if (s != LLMRT_OK) break;
            if (!busy && find_request(rt, id) && find_request(rt, id)->state != REQ_DONE) {
                s = llmrt_error(LLMRT_ERR_INTERNAL, "wait: request %llu cannot make progress", (unsigned long long)id);
                break;
            }
        } else if (timeout < 0) {
            pthread_cond_wait(&rt->done_cond, &rt->lock);
        } else {
            /* pthread's deadline is on the realtime clock */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double left = deadline - llmrt_now_seconds(), whole = (double)(long)left;
            ts.tv_sec += (time_t)whole;
            ts.tv_nsec += (long)((left - whole) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            int rc = pthread_cond_timedwait(&rt->done_cond, &rt->lock, &ts);
            if (rc != 0 && rc != ETIMEDOUT && rc != EINTR) break;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    return s;
}
