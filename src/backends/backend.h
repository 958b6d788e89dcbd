/* One backend interface for CPU and CUDA (a small vtable, as in ggml): a
 * backend instantiates a plan (weights resident, activation arena, paged KV
 * cache) and runs forward steps over packed tokens. It knows nothing about
 * requests, sampling policy or HTTP: the runtime decides which tokens go in a
 * step and which KV blocks each sequence owns. */
#ifndef LLMRT_BACKENDS_BACKEND_H
#define LLMRT_BACKENDS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "compiler/plan.h"
#include "core/status.h"
#include "llmrt/plugin.h"

/* One forward step: T tokens of S sequences, packed with no padding.
 * Tokens of sequence s are rows [seq_start[s], seq_start[s+1]); token t sits
 * at position positions[t] of its sequence and attends to cache positions
 * 0..positions[t] of that sequence. Cache position p of sequence s is slot
 * p % block_size of block block_tables[s * max_blocks_per_seq + p / block_size].
 * The step writes the new tokens' keys and values before attending. */
/* Token selection on the device, per logits row (backends with
 * ops->device_sampling): the sampler's rule (sampler.h: temperature →
 * top-k → top-p → min-p, then the caller's uniform draw) without the
 * logits leaving the device. Penalties, top-N log-probabilities and beams
 * need the whole row: such rows are marked host_logits. */
typedef struct llmrt_row_sampling {
    float temperature; /* <= 0: greedy (also top_k == 1) */
    float top_p;       /* >= 1: off */
    float min_p;       /* <= 0: off */
    float uniform;     /* the request's draw in [0, 1) (unused when greedy) */
    int32_t top_k;     /* <= 0: off */
    int32_t host_logits; /* 1: copy this row's logits to the host instead */
} llmrt_row_sampling;

typedef struct llmrt_step_sampling {
    const llmrt_row_sampling *rows; /* [L] */
    int32_t *ids;                   /* [L] out: the chosen token of each device row */
    float *logprobs;                /* [L] out: its log-probability under the raw logits */
} llmrt_step_sampling;

typedef struct llmrt_step {
    int32_t num_tokens;            /* T, 1..plan->max_num_tokens */
    const int32_t *token_ids;      /* [T] */
    const int32_t *positions;      /* [T] */
    int32_t num_seqs;              /* S, 1..plan->max_batch */
    const int32_t *seq_start;      /* [S + 1], seq_start[0] = 0, seq_start[S] = T */
    const int32_t *block_tables;   /* [S, max_blocks_per_seq] */
    int32_t max_blocks_per_seq;
    int32_t num_logits;            /* L, 0..T */
    const int32_t *logits_indices; /* [L] rows of the step whose logits are returned */
    /* NULL: every logits row goes to the host. Else (device_sampling
     * backends) rows are sampled on the device, and only host_logits rows
     * are written to `logits` (at their row l). */
    const llmrt_step_sampling *sampling;
    const int32_t *token_type_ids; /* [T] encoders' segment ids; NULL: all 0 */
    /* Pipeline stages with micro-batches in flight: the plan's logits
     * hand-back (its SEND / RECV of [L, vocab]) is left to the caller, so a
     * stage need not wait for the last one before its next micro-batch. */
    int32_t logits_by_caller;
} llmrt_step;

typedef struct llmrt_backend_config {
    int32_t num_threads;       /* CPU: 0 = all cores */
    int32_t device;            /* CUDA: device ordinal */
    int32_t kv_block_size;     /* tokens per KV block */
    int32_t kv_num_blocks;     /* 0: size the cache from memory (kv_cache_fraction) */
    float kv_cache_fraction;   /* share of free memory (GPU: after weights and arena; CPU: available); 0 = default */
    uint64_t kv_cache_bytes;   /* > 0: a cache of this many bytes instead of the fraction */
    int32_t verbose;
    int32_t cpu_fp32;          /* CPU: keep 16-bit engines' activations in fp32 (no 16-bit compute) */
    /* tensor parallelism: the group the plan's ALL_REDUCE / ALL_GATHER ops
     * run over (src/comm/; not owned), or NULL for a one-rank plan */
    struct llmrt_comm *comm;
    /* tensor × pipeline parallelism: the ranks of this stage, which the
     * ALL_REDUCE / ALL_GATHER ops run over (SEND / RECV use comm); NULL:
     * comm serves both */
    struct llmrt_comm *tp_comm;
} llmrt_backend_config;

typedef struct llmrt_memory_report {
    uint64_t weight_bytes;
    uint64_t activation_bytes;
    uint64_t kv_cache_bytes;
    int32_t kv_num_blocks;
    int32_t kv_block_size;
} llmrt_memory_report;

typedef struct llmrt_backend llmrt_backend;

typedef struct llmrt_backend_ops {
    const char *name; /* "cpu", "cuda" */
    /* Makes the plan runnable: weights resident (the plan's weight views
     * stay valid for the backend's lifetime), arena and KV cache allocated. */
    llmrt_status (*create)(const llmrt_plan *plan, const llmrt_backend_config *config, void **out_state);
    /* Runs one step; writes logits [L, vocab] as f32 to host memory. */
    llmrt_status (*forward)(void *state, const llmrt_step *step, float *logits);
    /* Copies a KV block's contents (copy-on-write of shared prefixes, beams). */
    llmrt_status (*copy_kv_block)(void *state, int32_t src_block, int32_t dst_block);
    void (*memory_report)(void *state, llmrt_memory_report *out);
    void (*destroy)(void *state);
    /* Optional (NULL = malloc/free): host memory that forward's logits copy
     * fills fastest — page-locked on CUDA, so a batch's logits (megabytes
     * per step) move by DMA instead of through a staging copy. */
    void *(*host_alloc)(void *state, size_t bytes);
    void (*host_free)(void *state, void *ptr);
    /* 1: forward honours step->sampling (a decode step then copies token
     * ids, not logits, to the host). */
    int device_sampling;
    /* Calibration plans: what OBSERVE node `node` has gathered since
     * create, its f32 [K] statistics into out. NULL: the backend runs no
     * OBSERVE op. */
    llmrt_status (*read_observer)(void *state, llmrt_value node, float *out);
} llmrt_backend_ops;

/* host_alloc / host_free if the backend has them, else malloc / free. */
void *llmrt_backend_host_alloc(const llmrt_backend *backend, size_t bytes);
void llmrt_backend_host_free(const llmrt_backend *backend, void *ptr);

struct llmrt_backend {
    const llmrt_backend_ops *ops;
    void *state;
    const llmrt_plan *plan;
};

extern const llmrt_backend_ops llmrt_cpu_backend_ops;
#ifdef LLMRT_HAVE_CUDA
extern const llmrt_backend_ops llmrt_cuda_backend_ops;
/* 1 when a CUDA device is present and usable. */
int llmrt_cuda_available(void);
/* The CUDA devices present (0: none, or the driver is missing). */
int32_t llmrt_cuda_device_count(void);
/* Device `device`'s PCI address ("0000:1b:00.0") into out; 0 if unknown. */
int llmrt_cuda_device_pci_id(int32_t device, char *out, int size);
#endif

/* The built-in attention op as a plugin (registered on first use as
 * "attention", version 1): backends run LLMRT_OP_ATTENTION through its
 * enqueue functions, with backend_context pointing at their own step state.
 * The CPU and CUDA backends define the two enqueue functions. */
llmrt_status llmrt_builtin_attention_plugin(const llmrt_plugin **out);
llmrt_status llmrt_cpu_attention_enqueue(const llmrt_plugin_call *call);
llmrt_status llmrt_cuda_attention_enqueue(const llmrt_plugin_call *call, void *cuda_stream);
/* A plan with collective ops needs a communicator of as many ranks as they
 * name; the error says how to launch it. */
llmrt_status llmrt_backend_check_comm(const llmrt_plan *plan, const struct llmrt_comm *comm);
/* The ranks a plan's ALL_REDUCE / ALL_GATHER ops span (1: none). */
int32_t llmrt_plan_tp_group(const llmrt_plan *plan);
/* The ranks a plan was built for, tensor- or pipeline-parallel (1: not split). */
int32_t llmrt_plan_tp_ranks(const llmrt_plan *plan);
/* A pipeline stage's SEND / RECV of the logits [L, vocab] from the last
 * stage back to the others (not of the hidden state [T, hidden]): what a
 * step with logits_by_caller leaves out. */
int llmrt_node_is_logits_handback(const llmrt_node *n);

/* Finds the backend named `name` ("cpu", "cuda"). */
llmrt_status llmrt_backend_lookup(const char *name, const llmrt_backend_ops **out);

#endif
