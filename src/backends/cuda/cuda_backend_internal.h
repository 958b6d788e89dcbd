/* The CUDA backend's state, shared by cuda_backend.c (creation, memory, the
 * step, CUDA graphs) and cuda_exec.c (running the plan's nodes). */
#ifndef LLMRT_BACKENDS_CUDA_BACKEND_INTERNAL_H
#define LLMRT_BACKENDS_CUDA_BACKEND_INTERNAL_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/cuda/cuda_gemm.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_settings.h"

enum { CUDA_MAX_DECODE_GRAPHS = 64, CUDA_GROUP_GATED = 0x80 };

typedef struct cuda_decode_graph {
    int32_t num_tokens, num_logits; /* the key: a decode step of this shape, */
    int32_t wide;                   /* with this decode-attention instance */
    cudaGraphExec_t exec;
} cuda_decode_graph;

typedef struct cuda_norm_site {
    llmrt_value add;  /* the residual ADD whose sum is normalised, or LLMRT_NO_VALUE */
    llmrt_value norm; /* the RMSNORM */
} cuda_norm_site;

typedef struct cuda_redirect {
    llmrt_value value;
    size_t offset;           /* in redirect_buf */
    void *plan_ptr, *own_ptr;
} cuda_redirect;

typedef struct cuda_state {
    const llmrt_plan *plan;
    const llmrt_graph *graph;
    int device;
    cudaStream_t stream;
    cuda_settings settings; /* read once at create (cuda_settings.h) */
    int pdl;                /* settings.pdl on a GPU that has PDL (Hopper and later) */
    int prefill_kernel;     /* settings.prefill_kernel where this GPU and head size allow it */
    cuda_gemm *gemm;

    /* weights: one allocation, each plan weight at weight_offsets[slot] */
    void *weights_dev;
    size_t weights_bytes;
    size_t *weight_offsets;
    void *consts_dev; /* CONSTANT nodes without a weight slot */
    void *observe_dev; /* OBSERVE nodes' statistics (calibration plans), zeroed at create */

    /* activations */
    void *arena;
    size_t arena_bytes;
    void **node_ptr;      /* [num_nodes] device address of every value */
    /* the nodes that launch work, in plan order (weights, constants,
     * inputs and views launch nothing and sit between them in the plan):
     * fusions below pair nodes adjacent in this order */
    int32_t *exec;
    int32_t num_exec;
    int32_t *next_exec;   /* [num_nodes] the next node of `exec` after it, or -1 */
    unsigned char *fused; /* [num_nodes] 1: computed by the node before it in exec (add + rmsnorm) */
    /* [num_nodes] at the first of 2-3 LINEARs adjacent in exec that read the same x:
     * how many run as one grouped GEMV at decode sizes, | CUDA_GROUP_GATED
     * when the next node is their SILU_MUL (computed in the same kernel). */
    unsigned char *gemv_group;
    /* norm sites (cuda_fusion.c): at a group's first LINEAR, 1 + its site's
     * index when the (ADD +) RMSNORM before it runs in the GEMV's prologue
     * at decode sizes; norm_skip marks those ADD and RMSNORM nodes. Active
     * (norm_active) for steps of ≤ CUDA_GEMV_MAX_M tokens, when the values
     * in `redirects` point at their own buffers. */
    int32_t *norm_site_of;
    unsigned char *norm_skip;
    cuda_norm_site *norm_sites;
    int32_t num_norm_sites, norm_site_capacity;
    cuda_redirect *redirects;
    int32_t num_redirects, redirect_capacity;
    void *redirect_buf;
    int norm_active;

    /* paged KV cache: per layer K then V, each [blocks, block_size, kv_heads, head_dim] */
    void *kv;
    size_t kv_bytes;
    size_t kv_layer_elems; /* elements of one layer's K (or V) */
    int32_t kv_num_blocks, kv_block_size;
    /* an 8-bit cache (plan->kv_dtype): CUDA_KV8_FP8 / CUDA_KV8_INT8, 0:
     * elements of act_type. Then kv holds one-byte codes (same layout) and
     * kv_scales, after them in the same allocation, per layer K then V
     * scales of kv_layer_elems / head_dim floats (cuda_kv8_layer) */
    int32_t kv8_kind;
    float *kv_scales;
    llmrt_dtype act_type;

    /* step metadata: a pinned host block, copied to the device in one piece */
    int32_t *meta_host, *meta_dev;
    size_t meta_capacity; /* int32 elements */
    int32_t bt_stride;    /* device block-table stride: ceil(max_seq_len / block_size) */

    /* attention */
    void *attn_ws;
    int32_t *attn_counters; /* [attn_ws_tokens × heads], zero between launches */
    /* the decode attention's early mode (cuda_rope_fused.early): [2] int32,
     * zero between launches; early_attn: the attention node the q/k/v GEMV
     * just launched raises it for (-1: none) */
    int32_t *attn_early;
    llmrt_value early_attn;
    int early_raised; /* the flag is up for an attention that has not been launched */
    int64_t attn_ws_tokens; /* tokens per decode-attention launch */
    int32_t attn_heads;     /* query heads of the widest attention layer */
    /* blocks of the register-rich small-launch decode attention the GPU
     * holds at once (0: none, or settings.attn_wide off); a decode step
     * whose live blocks fit takes it (batch.wide) */
    int64_t attn_wide_slots;
    /* fused RoPE in decode attention: the step's (cos, sin) table
     * [max_num_tokens][head_dim/2], made for this inv_freq and rotary_dim */
    float *rope_table;
    const float *rope_table_freq;
    int32_t rope_table_dim;

    /* quantized LINEARs of a prefill step dequantize W here (cuda_qlinear.c) */
    void *qweight_scratch;
    size_t qweight_scratch_bytes;

    /* LINEARs with 8-bit weights and activations (fp8, w8a8): their
     * scratch and cuBLASLt cache (cuda_q8.h), NULL when none */
    struct cuda_q8linear *q8;

    /* MOE nodes' routing, grouped tokens and expert outputs (cuda_moe.c) */
    void *moe_ws;
    size_t moe_ws_bytes;

    float *logits_dev; /* f32 logits when the plan's output is f16/bf16 */
    int logits_direct; /* this step's last product wrote logits_dev itself (no cast) */
    /* What a step copies back, in one piece: the first bad gather index,
     * then (device sampling) the chosen ids and their log-probabilities;
     * pinned, [1 + 2·max_num_tokens] int32s. On the device it is part of
     * the step's metadata block (out_dev below). */
    int32_t *out_host;

    cuda_decode_graph graphs[CUDA_MAX_DECODE_GRAPHS];
    int num_graphs;
    int probe_started; /* settings.probe_out: destroy writes the probe records there */

    /* the step being run (set by forward before run_nodes) */
    int64_t T, L;
    int decode_step;          /* every sequence contributes one token */
    const int32_t *decode_list; /* mixed step: the rows of one-token sequences */
    int32_t num_decode_list;
    cuda_attention_batch batch;
    /* in the metadata block: the step's results [1 + 2L] (flag, ids[L],
     * logprobs[L] as f32) and the rows' sampling parameters [L] */
    int32_t *out_dev;
    cuda_sample_row *sample_dev, *sample_host; /* sample_host: the same in meta_host */
    int sample_any; /* some row of the step is sampled on the device */
    /* plugins (cuda_plugins.c): resolved once at create */
    const llmrt_plugin *attention_plugin; /* the built-in attention */
    const llmrt_plugin **node_plugin;     /* [num_nodes] an LLMRT_OP_PLUGIN node's plugin, else NULL */
    void *plugin_ws;                      /* the largest plugin workspace, shared (nodes run in turn) */
    size_t plugin_ws_bytes;

    /* tensor parallelism (cuda_collectives.c): the group, or NULL; pinned
     * host staging for the MPI communicator, [comm_capacity] f32 each */
    struct llmrt_comm *comm;
    struct llmrt_comm *tp_comm; /* ALL_REDUCE / ALL_GATHER: this stage's ranks (comm when not pipelined) */
    float *comm_f32;
    void *comm_raw;
    size_t comm_capacity;
    int32_t logits_by_caller; /* this step's llmrt_step.logits_by_caller */
} cuda_state;

/* Enqueues every node of the plan for the current step on st->stream
 * (captured into a CUDA graph for decode steps), including the final cast
 * of the logits to f32. */
llmrt_status cuda_run_nodes(cuda_state *st);

/* Quantized LINEARs (cuda_qlinear.c): the scratch for prefill steps, made
 * at create; and y = x · dequant(W)ᵀ + bias for node v. */
llmrt_status cuda_qlinear_prepare(cuda_state *st);
llmrt_status cuda_qlinear_run(cuda_state *st, llmrt_value v, llmrt_value xv, llmrt_value wv, llmrt_value bv);

/* LINEARs with 8-bit weights and activations (cuda_q8linear_nodes.c): checks
 * their blobs and makes the scratch, at create (after st->gemm); y =
 * the quantized product for node v; the scratch's release at destroy. */
llmrt_status cuda_q8linear_prepare(cuda_state *st);
llmrt_status cuda_q8linear_run(cuda_state *st, llmrt_value v, llmrt_value xv, llmrt_value wv, llmrt_value bv);
void cuda_q8linear_free(cuda_state *st);

/* MOE nodes (cuda_moe.c): the workspace, made at create; the node's launches. */
llmrt_status cuda_moe_prepare(cuda_state *st);
llmrt_status cuda_moe_run(cuda_state *st, llmrt_value v);

/* ALL_REDUCE / ALL_GATHER nodes (cuda_collectives.c): checks the
 * communicator against the plan and makes the MPI staging, at create. */
llmrt_status cuda_collectives_prepare(cuda_state *st, struct llmrt_comm *comm, struct llmrt_comm *tp_comm);
llmrt_status cuda_collective_run(cuda_state *st, llmrt_value v);
void cuda_collectives_free(cuda_state *st);

/* cuda_fusion.c: decides the fusions once (end of value placement);
 * cuda_fusion_select points the redirected values for a step of `tokens`
 * tokens (before it runs or is captured); cuda_fusion_free at destroy. */
llmrt_status cuda_find_fusions(cuda_state *st);
/* LINEAR v can be a part of a grouped GEMV over x [.., K] of type t: its
 * output and 2-D weight [N, K] of type t, any bias f32 (the static half of
 * the check; cuda_gemv_supported checks M and the addresses). */
int cuda_gemv_part_types_ok(const cuda_state *st, llmrt_value v, llmrt_dtype t, int64_t K);
void cuda_fusion_select(cuda_state *st, int64_t tokens);
void cuda_fusion_free(cuda_state *st);

/* Dims of a value for the current step (symbols resolved). */
int64_t cuda_value_dim(const cuda_state *st, llmrt_value v, int d);
int64_t cuda_value_numel(const cuda_state *st, llmrt_value v);
llmrt_dtype cuda_value_type(const cuda_state *st, llmrt_value v);

/* Plugins (cuda_plugins.c): resolves every plugin node and allocates their
 * workspace at create; runs one plugin node on the step's stream. */
llmrt_status cuda_resolve_plugins(cuda_state *st);
llmrt_status cuda_run_plugin(cuda_state *st, llmrt_value v);

#endif
