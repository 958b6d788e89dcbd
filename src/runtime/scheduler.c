/* In-flight batching: each step takes, in arrival order (FCFS), the decode
 * tokens and unfinished prefill chunks of running requests, then admits
 * waiting requests while the step has room (max_num_tokens tokens,
 * max_batch sequences) and the KV pool has blocks for their prompts.
 *
 * Admission reserves a request's whole prompt in blocks (after taking what
 * the prefix cache already holds) plus a headroom of one block per running
 * sequence, so that a request once admitted rarely stalls mid-prefill, and
 * decode growth of the others does not immediately push it out again.
 * Sliding-window plans reserve only the first chunk, and every sequence
 * releases the blocks behind its window after each step.
 *
 * When a running sequence needs a block and none is left, the newest running
 * request is preempted: all its blocks are released and it goes back to the
 * waiting list, to recompute its prompt and output so far when readmitted
 * (vLLM's recompute preemption; its full blocks usually come back from the
 * prefix cache). Requests are scheduled oldest first and victims are taken
 * newest first, so a victim is never already in the step, except the request
 * being scheduled itself, whose entries are then rolled back. No admission
 * happens in a step that preempted. */
#include <string.h>

#include "core/log.h"
#include "runtime/runtime_internal.h"

/* Blocks a sequence must gain to hold tokens [computed, upto): a copy of a
 * shared block it would write into, and new blocks past its table. */
static int32_t blocks_needed(const llmrt_runtime *rt, const rt_sequence *s, int32_t upto) {
    int32_t need = 0, first = s->computed / rt->block_size;
    if (first < s->num_blocks && kv_cache_ref_count(rt->kv, s->blocks[first]) > 1) need++;
    int32_t total = rt_blocks_for(rt, upto);
    if (total > s->num_blocks) need += total - s->num_blocks;
    return need;
}

/* Makes the blocks for tokens [computed, upto) writable: copy-on-write of a
 * shared partial block, then new blocks. The caller checked availability. */
static llmrt_status ensure_blocks(llmrt_runtime *rt, rt_sequence *s, int32_t upto) {
    int32_t first = s->computed / rt->block_size;
    if (first < s->num_blocks && kv_cache_ref_count(rt->kv, s->blocks[first]) > 1) {
        int32_t fresh = kv_cache_alloc(rt->kv), old = s->blocks[first];
        if (fresh < 0) return llmrt_error(LLMRT_ERR_INTERNAL, "kv cache: no block for copy-on-write");
        /* slots before `computed` hold this sequence's keys and values */
        if (s->computed % rt->block_size != 0) {
            llmrt_status st = rt->backend->ops->copy_kv_block(rt->backend->state, old, fresh);
            if (st != LLMRT_OK) {
                kv_cache_release(rt->kv, fresh);
                return st;
            }
        }
        kv_cache_release(rt->kv, old);
        s->blocks[first] = fresh;
    }
    int32_t total = rt_blocks_for(rt, upto);
    while (s->num_blocks < total) {
        int32_t b = kv_cache_alloc(rt->kv);
        if (b < 0) return llmrt_error(LLMRT_ERR_INTERNAL, "kv cache: out of blocks after admission");
        s->blocks[s->num_blocks++] = b;
    }
    return LLMRT_OK;
}

/* Sliding-window plans: the next query (position `computed`) and every
 * later one see keys from computed + 1 − window on, so the blocks wholly
 * before that are released (cached if indexed, for prefix reuse) and their
 * table slots set to -1; a sequence then holds about window / block_size
 * blocks however long it grows. */
static void release_outside_window(llmrt_runtime *rt, rt_sequence *s) {
    const int32_t first_key = s->computed + 1 - rt->kv_window;
    for (int32_t b = 0; b < s->num_blocks && (b + 1) * rt->block_size <= first_key; b++) {
        kv_cache_release(rt->kv, s->blocks[b]);
        s->blocks[b] = -1;
    }
}

/* Appends tokens [computed, computed + count) of a sequence to the step,
 * `score` of them prompt positions whose logits score the prompt. */
static void add_to_step(llmrt_runtime *rt, rt_request *r, int32_t i, int32_t count, int32_t score) {
    rt_sequence *s = &r->seqs[i];
    int32_t q = rt->step_num_seqs++, t0 = rt->step_num_tokens;
    rt->step_score_count[q] = score;
    rt->step_score_pos[q] = s->computed;
    rt->step_score_row[q] = rt->step_num_logits;
    for (int32_t k = 0; k < score; k++) rt->step_logit_rows[rt->step_num_logits++] = t0 + k;
    rt->step_score_rows += score;
    for (int32_t k = 0; k < count; k++) {
        rt->step_tokens[t0 + k] = s->tokens[s->computed + k];
        rt->step_positions[t0 + k] = s->computed + k;
    }
    rt->step_num_tokens += count;
    rt->step_seq_start[q + 1] = rt->step_num_tokens;
    memcpy(rt->step_block_tables + (size_t)q * rt->max_blocks_per_seq, s->blocks,
           (size_t)s->num_blocks * sizeof *s->blocks);
    rt->step_req[q] = r;
    rt->step_seq[q] = i;
    rt->step_count[q] = count;
    rt->step_logit[q] = -1;
    if (s->computed + count == s->len) { /* the last token: its logits pick the next one */
        rt->step_logit[q] = rt->step_num_logits;
        rt->step_logit_rows[rt->step_num_logits++] = rt->step_num_tokens - 1;
    }
}

void rt_preempt(llmrt_runtime *rt, rt_request *r) {
    for (int32_t i = 0; i < r->num_seqs; i++) {
        rt_sequence *s = &r->seqs[i];
        rt_sequence_release_blocks(rt, s);
        s->computed = 0;
        s->num_indexed = 0;
        s->candidates_ready = 0;
    }
    rt_list_remove(&rt->running, r);
    r->state = REQ_WAITING;
    rt_list_insert_by_arrival(&rt->waiting, r);
    r->num_preemptions++;
    rt->num_preemptions++;
}

static int32_t reserved_slots(const llmrt_runtime *rt) {
    int32_t n = 0;
    for (const rt_request *r = rt->running.head; r; r = r->next) n += r->num_seqs;
    return n;
}

static int32_t active_running_seqs(const llmrt_runtime *rt) {
    int32_t n = 0;
    for (const rt_request *r = rt->running.head; r; r = r->next)
        for (int32_t i = 0; i < r->num_seqs; i++) n += r->seqs[i].state == SEQ_ACTIVE;
    return n;
}

/* Schedules the running requests' pending tokens; returns 1 if it preempted. */
static llmrt_status schedule_running(llmrt_runtime *rt, int32_t *budget, int *preempted) {
    rt_request *r = rt->running.head;
    while (r && *budget > 0) {
        rt_request *next = r->next;
        int32_t mark_seqs = rt->step_num_seqs, mark_tokens = rt->step_num_tokens, mark_logits = rt->step_num_logits;
        int32_t mark_score = rt->step_score_rows;
        int32_t mark_budget = *budget;
        int self_preempted = 0;
        for (int32_t i = 0; i < r->num_seqs && *budget > 0 && !self_preempted; i++) {
            rt_sequence *s = &r->seqs[i];
            if (s->state != SEQ_ACTIVE || s->computed >= s->len) continue;
            int32_t count = s->len - s->computed < *budget ? s->len - s->computed : *budget, score;
            count = rt_prompt_score_fit(rt, r, i, count, &score);
            if (count == 0) continue; /* the step's scoring rows are taken */
            int32_t need = blocks_needed(rt, s, s->computed + count);
            while (kv_cache_available(rt->kv) < need) {
                rt_request *victim = rt->running.tail;
                rt_preempt(rt, victim);
                *preempted = 1;
                if (victim == r) {
                    self_preempted = 1;
                    break;
                }
                if (next == victim) next = NULL;
            }
            if (self_preempted) break;
            LLMRT_TRY(ensure_blocks(rt, s, s->computed + count));
            add_to_step(rt, r, i, count, score);
            *budget -= count;
        }
        if (self_preempted) { /* roll back the entries this request already made */
            rt->step_num_seqs = mark_seqs;
            rt->step_num_tokens = mark_tokens;
            rt->step_num_logits = mark_logits;
            rt->step_score_rows = mark_score;
            *budget = mark_budget;
            break; /* everything after it was newer and is gone too */
        }
        r = next;
    }
    return LLMRT_OK;
}

/* The tokens admission reserves blocks for: the whole prompt, or in a
 * sliding-window plan only the first chunk (from `computed`): blocks before
 * the window are released as the prompt advances, so a prompt longer than
 * the pool still runs; later chunks take blocks as they are scheduled. */
static int32_t admission_upto(const llmrt_runtime *rt, int32_t computed, int32_t len) {
    if (rt->kv_window <= 0 || len - computed <= rt->max_num_tokens) return len;
    return computed + rt->max_num_tokens;
}

/* Tries to admit the waiting request r; returns 1 if it did. */
static llmrt_status try_admit(llmrt_runtime *rt, rt_request *r, int32_t headroom, int *admitted) {
    *admitted = 0;
    int32_t need = 0, cached_taken = 0;
    for (int32_t i = 0; i < r->num_seqs; i++) {
        rt_sequence *s = &r->seqs[i];
        if (s->state != SEQ_ACTIVE) continue;
        int32_t hit = 0;
        s->last_key = KV_CACHE_ROOT_KEY;
        if (rt->options.prefix_caching && !r->params.prompt_logprobs) {
            /* at least the last token is computed: its logits are needed, and
             * writing into a shared full block is not allowed; a prompt to
             * score is computed whole */
            uint64_t key;
            hit = kv_cache_match_prefix(rt->kv, s->tokens, (s->len - 1) / rt->block_size, s->blocks, &key);
            cached_taken += kv_cache_count_cached(rt->kv, s->blocks, hit);
            s->last_key = key;
        }
        s->num_indexed = hit; /* provisional until admitted */
        need += rt_blocks_for(rt, admission_upto(rt, hit * rt->block_size, s->len)) - hit;
    }
    if (kv_cache_available(rt->kv) - cached_taken < need + headroom) return LLMRT_OK;
    for (int32_t i = 0; i < r->num_seqs; i++) {
        rt_sequence *s = &r->seqs[i];
        if (s->state != SEQ_ACTIVE) continue;
        int32_t hit = s->num_indexed;
        if (rt->options.prefix_caching && !r->params.prompt_logprobs) kv_cache_record_lookup(rt->kv, (s->len - 1) / rt->block_size, hit);
        for (int32_t b = 0; b < hit; b++) kv_cache_retain(rt->kv, s->blocks[b]);
        s->num_blocks = hit;
        s->computed = hit * rt->block_size;
        if (rt->kv_window > 0) release_outside_window(rt, s); /* a long cached prefix */
        if (r->num_preemptions == 0 && i == 0) r->cached_prompt_tokens = s->computed;
        LLMRT_TRY(ensure_blocks(rt, s, admission_upto(rt, s->computed, s->len)));
    }
    rt_list_remove(&rt->waiting, r);
    r->state = REQ_RUNNING;
    rt_list_insert_by_arrival(&rt->running, r);
    *admitted = 1;
    return LLMRT_OK;
}

llmrt_status rt_schedule(llmrt_runtime *rt, int32_t *num_tokens) {
    rt->step_num_seqs = rt->step_num_tokens = rt->step_num_logits = rt->step_score_rows = 0;
    rt->step_seq_start[0] = 0;
    int32_t budget = rt->max_num_tokens;
    int preempted = 0;
    LLMRT_TRY(schedule_running(rt, &budget, &preempted));
    int32_t slots = reserved_slots(rt);
    while (!preempted && budget > 0 && rt->waiting.head) {
        rt_request *r = rt->waiting.head;
        if (slots + r->num_seqs > rt->max_batch) break;
        int admitted;
        LLMRT_TRY(try_admit(rt, r, active_running_seqs(rt), &admitted));
        if (!admitted) break; /* strictly FCFS: later requests wait behind it */
        slots += r->num_seqs;
        if (r->scheduled_time == 0) r->scheduled_time = llmrt_now_seconds();
        for (int32_t i = 0; i < r->num_seqs && budget > 0; i++) {
            rt_sequence *s = &r->seqs[i];
            if (s->state != SEQ_ACTIVE || s->computed >= s->len) continue;
            int32_t count = s->len - s->computed < budget ? s->len - s->computed : budget, score;
            count = rt_prompt_score_fit(rt, r, i, count, &score);
            if (count == 0) continue;
            add_to_step(rt, r, i, count, score);
            budget -= count;
        }
    }
    *num_tokens = rt->step_num_tokens;
    return LLMRT_OK;
}

void rt_step_done(llmrt_runtime *rt) {
    for (int32_t q = 0; q < rt->step_num_seqs; q++) {
        rt_request *r = rt->step_req[q];
        rt_sequence *s = &r->seqs[rt->step_seq[q]];
        int32_t prompt_part = r->prompt_len - s->computed;
        if (prompt_part > 0)
            rt->prompt_tokens_computed += prompt_part < rt->step_count[q] ? prompt_part : rt->step_count[q];
        s->computed += rt->step_count[q];
        /* full blocks are final: enter them in the prefix index */
        while (rt->options.prefix_caching && (s->num_indexed + 1) * rt->block_size <= s->computed) {
            const int32_t *t = s->tokens + (size_t)s->num_indexed * rt->block_size;
            uint64_t key = kv_cache_block_key(rt->kv, s->last_key, t);
            kv_cache_index_block(rt->kv, s->blocks[s->num_indexed], s->last_key, key, t);
            s->last_key = key;
            s->num_indexed++;
        }
        if (rt->kv_window > 0) release_outside_window(rt, s);
    }
}
