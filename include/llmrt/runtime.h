/* llmrt — the serving runtime: many requests share every engine step.
 *
 * A runtime owns a loaded engine's KV cache for its lifetime and runs steps
 * that mix the decode tokens of running requests with prefill chunks of new
 * ones (in-flight batching), under the engine's max_batch and max_num_tokens.
 * The CLI and the HTTP server talk to the model only through this API.
 *
 * Flow: llmrt_runtime_create → llmrt_runtime_submit (returns an id at once)
 * → tokens arrive through the request's callback and/or llmrt_runtime_poll →
 * llmrt_runtime_wait hands over the final llmrt_result (then the id is
 * retired) → llmrt_result_free. llmrt_runtime_cancel may be called at any
 * time; the request then finishes with finish_reason "cancelled".
 *
 * Threads: with options.background = 1 (the default) a runtime thread runs
 * the steps, and submit, cancel, poll, wait and stats may be called from any
 * number of other threads. Callbacks run on the runtime thread, outside the
 * runtime's lock: they may call cancel, poll and submit, but must not call
 * wait or llmrt_runtime_free, and should return quickly (they hold up every
 * request). With background = 0 nothing runs by itself: the caller drives
 * steps with llmrt_runtime_step (or wait, which steps until its request is
 * done), all from one thread.
 *
 * Ownership: the engine must outlive the runtime, and an engine serves one
 * runtime at a time (llmrt_generate and llmrt_prompt_logits fail with
 * "engine busy" while one exists). Arrays in llmrt_request are copied at
 * submit; the caller may free them right after. An llmrt_result is owned by
 * the caller and released with llmrt_result_free. */
#ifndef LLMRT_RUNTIME_H
#define LLMRT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "llmrt/llmrt.h"
#include "llmrt/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llmrt_runtime llmrt_runtime;
typedef uint64_t llmrt_request_id; /* never 0 */

enum { LLMRT_MAX_STOP_STRINGS = 16, LLMRT_MAX_LOGPROBS = 20 };

typedef struct llmrt_runtime_options {
    int background;         /* a runtime thread runs steps; default 1 */
    int32_t max_batch;      /* sequences per step; default 0 = the engine's */
    int32_t max_num_tokens; /* tokens per step; default 0 = the engine's */
    int32_t kv_max_blocks;  /* use at most this many KV blocks; default 0 = all the backend has */
    int prefix_caching;     /* share full KV blocks of common prompt prefixes; default 1 */
} llmrt_runtime_options;

void llmrt_runtime_options_init(llmrt_runtime_options *options);
llmrt_status llmrt_runtime_create(llmrt_engine *engine, const llmrt_runtime_options *options, llmrt_runtime **out);
/* Cancels what is still running, stops the thread, frees everything
 * (results never waited for included). */
void llmrt_runtime_free(llmrt_runtime *rt);

/* The engine's tokenizer (borrowed; loaded on first use), or NULL with an
 * error when the engine has none. */
llmrt_status llmrt_runtime_tokenizer(llmrt_runtime *rt, const llmrt_tokenizer **out);

/* The prompt scored by the model (llmrt_request.prompt_logprobs): what it
 * gave each prompt token given the tokens before it, as evaluation
 * harnesses (loglikelihood, perplexity) and OpenAI's echo with logprobs
 * ask. Token 0 has nothing before it: its log-probability is NaN and its
 * alternatives are absent (ids -1). */
typedef struct llmrt_prompt_logprobs {
    int32_t num_tokens;        /* the prompt's tokens; 0 when not asked */
    int32_t *ids;              /* [num_tokens] */
    float *logprobs;           /* [num_tokens] */
    int32_t num_top;           /* alternatives per token (the request's logprobs) */
    int32_t *top_ids;          /* [num_tokens × num_top], best first */
    float *top_logprobs;
} llmrt_prompt_logprobs;

/* One streaming event: a new token of one sequence of a request, and/or
 * the end of that sequence. Pointers are borrowed for the call only. */
typedef struct llmrt_token_event {
    llmrt_request_id request;
    int32_t sequence;          /* 0..n-1 (beam search: only final events, by rank) */
    int32_t token_id;          /* -1 when the event only reports the end */
    float logprob;             /* the token's log-probability under the model */
    int32_t num_top;           /* alternatives below (the request's logprobs) */
    const int32_t *top_ids;
    const float *top_logprobs;
    const char *text;          /* new text that is final (stop strings held back until decided) */
    size_t text_len;
    int finished;              /* the sequence ended with this event */
    const char *finish_reason; /* when finished: "stop", "length", "cancelled", "error" */
    /* the first event of a request with prompt_logprobs (sequence 0): the
     * prompt's scores, borrowed like the rest; else NULL */
    const llmrt_prompt_logprobs *prompt;
} llmrt_token_event;

/* Return non-zero to cancel the request. */
typedef int (*llmrt_stream_callback)(void *user_data, const llmrt_token_event *event);

typedef struct llmrt_request {
    const int32_t *prompt_ids;  /* the prompt as token ids ... */
    int32_t num_prompt_ids;
    const char *prompt_text;    /* ... or as text (the engine's tokenizer, with special tokens) */
    llmrt_sampling_params sampling; /* max_tokens, temperature, top_k, top_p, seed, ignore_eos, stop_ids */
    float min_p;                /* drop tokens below min_p × the top probability; default 0 = off */
    float repetition_penalty;   /* HF/CTRL style over prompt and output; default 1 = off */
    float presence_penalty;     /* OpenAI style over the output, -2..2; default 0 */
    float frequency_penalty;    /* default 0 */
    const char *const *stop;    /* stop strings: text is cut before the first match; default none */
    int32_t num_stop;
    int32_t n;                  /* sequences to return (sampled, or best beams); default 1 */
    int32_t num_beams;          /* beam search with this many beams (1 = greedy, as beams); default 0 = off */
    float length_penalty;       /* beam score = logprob / length^length_penalty; default 1 */
    int early_stopping;         /* beams: stop once num_beams hypotheses are done; default 0 (HF heuristic) */
    int32_t logprobs;           /* top alternatives per token, 0..20; default 0 */
    int detokenize;             /* produce text (needs the engine's tokenizer); default 1 when it has one */
    llmrt_stream_callback callback; /* default NULL */
    void *user_data;
    /* token sequences never to generate, back to back in bad_word_ids: a
     * sequence's last token is banned wherever the output (or prompt) ends
     * with the ones before it; a one-token sequence always. Default none */
    const int32_t *bad_word_ids;
    const int32_t *bad_word_lengths; /* [num_bad_words] */
    int32_t num_bad_words;
    int prompt_logprobs;        /* also score the prompt (llmrt_prompt_logprobs; its prefix-cache hits are
                                   recomputed); default 0 */
} llmrt_request;

void llmrt_request_init(llmrt_request *request);

/* Validates and queues a request. A bad request fails here, with a message
 * naming the field, and never disturbs the others. */
llmrt_status llmrt_runtime_submit(llmrt_runtime *rt, const llmrt_request *request, llmrt_request_id *out_id);

/* Asks the request to stop; its blocks are freed at the next step boundary.
 * Cancelling a finished or unknown id is a no-op. */
void llmrt_runtime_cancel(llmrt_runtime *rt, llmrt_request_id id);

/* Copies tokens [from, from + capacity) generated so far by `sequence` into
 * `ids`; *num_total is how many it has in all, *finished whether the request
 * is done (beam search: tokens appear only when done). */
llmrt_status llmrt_runtime_poll(llmrt_runtime *rt, llmrt_request_id id, int32_t sequence, int32_t from,
                                int32_t *ids, int32_t capacity, int32_t *num_total, int *finished);

typedef struct llmrt_sequence_output {
    int32_t *output_ids;        /* generated ids (stop ids and EOS not included) */
    int32_t num_output;
    float *logprobs;            /* [num_output] log-probability of each token */
    int32_t num_top;            /* alternatives per token */
    int32_t *top_ids;           /* [num_output × num_top], best first */
    float *top_logprobs;
    char *text;                 /* NUL-terminated; NULL without detokenization */
    size_t text_len;
    double cumulative_logprob;
    double score;               /* beam search: the length-penalised score; else cumulative_logprob */
    const char *finish_reason;  /* "stop", "length", "cancelled", "error" (static) */
} llmrt_sequence_output;

typedef struct llmrt_result {
    llmrt_request_id id;
    llmrt_status status;        /* LLMRT_OK unless the request failed while running */
    char *error;                /* the message when status != LLMRT_OK */
    int32_t prompt_tokens;
    int32_t cached_prompt_tokens; /* prompt tokens whose KV came from the prefix cache */
    int32_t num_sequences;
    llmrt_sequence_output *sequences; /* best first for beam search */
    double queue_seconds;       /* submit → first scheduled */
    double ttft_seconds;        /* submit → first token (0 if none) */
    double e2e_seconds;         /* submit → finished */
    int32_t num_token_times;
    double *token_times;        /* seconds after submit of each token of sequence 0 */
    int32_t num_preemptions;
    llmrt_prompt_logprobs prompt; /* with prompt_logprobs */
} llmrt_result;

/* Waits until the request is done, up to timeout_seconds (< 0: forever;
 * 0: just check). When done, moves the result into *out, retires the id and
 * sets *done = 1; on timeout *done = 0. Without a background thread it runs
 * steps itself. */
llmrt_status llmrt_runtime_wait(llmrt_runtime *rt, llmrt_request_id id, double timeout_seconds, llmrt_result *out,
                                int *done);
void llmrt_result_free(llmrt_result *result);

/* Runs one step (background = 0 only). *busy = 0 when there was nothing to do. */
llmrt_status llmrt_runtime_step(llmrt_runtime *rt, int *busy);

typedef struct llmrt_runtime_stats {
    int32_t kv_total_blocks;
    int32_t kv_block_size;
    int32_t kv_used_blocks;      /* held by sequences */
    int32_t kv_peak_used_blocks;
    int32_t kv_cached_blocks;    /* free but still indexed for prefix reuse */
    int64_t prefix_queried_blocks; /* full prompt blocks looked up at admission */
    int64_t prefix_hit_blocks;   /* ... found in the cache */
    int32_t num_waiting, num_running;
    int64_t num_preemptions;
    int64_t num_steps;
    int64_t prompt_tokens_computed, tokens_generated;
} llmrt_runtime_stats;

void llmrt_runtime_get_stats(llmrt_runtime *rt, llmrt_runtime_stats *out);

#ifdef __cplusplus
}
#endif
#endif
