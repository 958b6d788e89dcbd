/* The CPU backend: runs a plan node by node over one activation arena, with
 * a paged f32 KV cache. Activations are f32; weights are views into the
 * mmapped engine (f32/f16/bf16 matrices, f32 vectors). */
#define _GNU_SOURCE /* _SC_AVPHYS_PAGES */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/cpu/cpu_fusion_plan.h"
#include "backends/cpu/cpu_generic_ops.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_kernels_observe.h"
#include "backends/cpu/cpu_weights.h"
#include "comm/comm.h"
#include "core/dtype.h"
#include "core/log.h"
#include "core/quant8.h"
#include "core/thread_pool.h"
#include "graph/plugin_op.h"
#include "plugins/plugin_registry.h"

typedef struct cpu_state {
    const llmrt_plan *plan;
    uint8_t *arena;
    float *k_cache, *v_cache; /* [layers][blocks][block_size][kv_heads][head_dim] */
    int32_t num_blocks, block_size;
    size_t layer_stride;      /* elements per layer */
    /* an 8-bit cache (plan->kv_dtype) instead of k_cache, v_cache: codes
     * with layer_stride bytes a layer, scales with layer_stride / head_dim
     * floats a layer (cpu_kv8_layer) */
    int kv8_kind;             /* LLMRT_Q8_FP8 / LLMRT_Q8_INT8, 0: f32 cache */
    int sixteen_bit;          /* bf16 linears compute in 16 bits (cpu_kernels_set_16bit_compute) */
    uint8_t *k_codes, *v_codes;
    float *k_scales, *v_scales;
    float *q_scratch, *k_scratch; /* RoPE'd q and k of the step */
    float *rope_table;            /* the step's cos/sin (cpu_rope_table), [max_num_tokens, rotary] */
    const float *rope_inv_freq;   /* what rope_table holds this step: NULL, or these frequencies */
    int64_t rope_dim;
    int32_t threads;
    cpu_weights weights;      /* per weight slot: the bytes the kernels read, and their layout */
    unsigned char *run;       /* per node: how forward runs it (enum cpu_run_kind, cpu_fusion_plan.h) */
    int32_t *next_exec;       /* per node: the next node that computes, or -1 */
    void *moe_scratch;        /* MOE nodes' grouped tokens and expert outputs (cpu_moe_scratch_bytes) */
    const llmrt_plugin *attention;      /* the built-in attention plugin */
    const llmrt_plugin **node_plugin;   /* per node: its plugin (LLMRT_OP_PLUGIN nodes), else NULL */
    void *plugin_workspace;             /* the largest plugin workspace, shared (nodes run in turn) */
    size_t plugin_workspace_bytes;
    struct llmrt_comm *comm;  /* every rank (SEND / RECV), or NULL */
    struct llmrt_comm *tp_comm; /* this stage's tensor-parallel ranks (ALL_REDUCE / ALL_GATHER) */
    float **observed;         /* per node: an OBSERVE node's statistics [K] (calibration), else NULL */
} cpu_state;

static void *aligned_calloc(size_t size) {
    void *p = NULL;
    if (posix_memalign(&p, 64, size ? size : 64) != 0) return NULL;
    memset(p, 0, size);
    return p;
}

static void cpu_destroy(void *state) {
    cpu_state *s = state;
    if (!s) return;
    free(s->arena);
    free(s->k_cache);
    free(s->v_cache);
    free(s->k_codes);
    free(s->v_codes);
    free(s->k_scales);
    free(s->v_scales);
    free(s->q_scratch);
    free(s->k_scratch);
    free(s->rope_table);
    cpu_weights_free(&s->weights);
    free(s->run);
    free(s->next_exec);
    free(s->moe_scratch);
    free(s->node_plugin);
    free(s->plugin_workspace);
    for (int32_t i = 0; s->observed && i < s->plan->graph->num_nodes; i++) free(s->observed[i]);
    free(s->observed);
    free(s);
}

static double available_memory_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kib) == 1) break;
    if (f) fclose(f);
    if (kib >= 0) return (double)kib * 1024.0;
    return (double)sysconf(_SC_AVPHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
}

/* KV blocks when the config fixes none: kv_cache_bytes, else
 * kv_cache_fraction (default 0.5) of the memory available at load; never
 * more than max_batch sequences of max_seq_len (the most a step can use),
 * never fewer than one block. Sizing by max_batch × max_seq_len alone asked
 * a 7B-shape engine for 64 GiB. */
/* Bytes of one KV block (K and V of every layer): f32 elements, or 8-bit
 * codes plus an f32 scale per token and kv head. */
static double kv_block_bytes(const llmrt_plan *plan, int32_t block_size, int kv8) {
    const double per_head = kv8 ? (double)plan->head_dim + sizeof(float) : (double)plan->head_dim * sizeof(float);
    return 2.0 * plan->num_kv_layers * block_size * plan->kv_heads * per_head;
}

static int32_t kv_blocks_from_memory(const llmrt_plan *plan, const llmrt_backend_config *config, int32_t block_size) {
    const double fraction = config->kv_cache_fraction > 0 ? config->kv_cache_fraction : 0.5;
    const double per_block = kv_block_bytes(plan, block_size, plan->kv_dtype != LLMRT_DTYPE_INVALID);
    const int64_t blocks_per_seq = (plan->max_seq_len + block_size - 1) / block_size;
    const int64_t most = blocks_per_seq * plan->max_batch;
    const double budget = config->kv_cache_bytes > 0 ? (double)config->kv_cache_bytes : fraction * available_memory_bytes();
    const double fit = per_block > 0 ? budget / per_block : (double)most;
    const int64_t blocks = fit < 1 ? 1 : fit < (double)most ? (int64_t)fit : most;
    const int64_t capped = blocks > INT32_MAX ? INT32_MAX : blocks;
    LLMRT_INFO("cpu backend: KV cache of %lld blocks of %d tokens (%s, %.1f MiB, %.1f sequences of %d tokens)",
               (long long)capped, block_size,
               llmrt_dtype_name(plan->kv_dtype != LLMRT_DTYPE_INVALID ? plan->kv_dtype : LLMRT_DTYPE_F32),
               capped * per_block / 1048576.0, (double)capped / blocks_per_seq, plan->max_seq_len);
    return (int32_t)capped;
}

/* Resolves every plugin node to its registered plugin once, and sizes the
 * one workspace they share for the plan's largest step. */
static llmrt_status resolve_plugins(cpu_state *s) {
    const llmrt_graph *g = s->plan->graph;
    LLMRT_TRY(llmrt_builtin_attention_plugin(&s->attention));
    s->node_plugin = calloc((size_t)g->num_nodes + 1, sizeof *s->node_plugin);
    if (!s->node_plugin) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op != LLMRT_OP_PLUGIN) continue;
        llmrt_plugin_shape shape;
        LLMRT_TRY(llmrt_plugin_node_infer(g, n, &s->node_plugin[i], &shape));
        const llmrt_plugin *p = s->node_plugin[i];
        if (!p->enqueue_cpu)
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "plugin '%s' version %u has no CPU implementation", p->name,
                               p->version);
        if (!p->workspace_size) continue;
        llmrt_plugin_shape inputs[LLMRT_PLUGIN_MAX_INPUTS];
        for (int32_t k = 0; k < n->num_inputs; k++) inputs[k] = llmrt_plugin_shape_of(&g->nodes[n->inputs[k]]);
        size_t bytes = p->workspace_size(n->plugin_params, (size_t)n->plugin_params_size, inputs, n->num_inputs,
                                         s->plan->max_num_tokens);
        if (bytes > s->plugin_workspace_bytes) s->plugin_workspace_bytes = bytes;
    }
    if (s->plugin_workspace_bytes && !(s->plugin_workspace = aligned_calloc(s->plugin_workspace_bytes)))
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: cannot allocate %zu bytes of plugin workspace",
                           s->plugin_workspace_bytes);
    return LLMRT_OK;
}

/* OBSERVE nodes (calibration plans) keep their statistics here, zeroed:
 * every |x| is at least 0. */
static int allocate_observers(cpu_state *s) {
    const llmrt_graph *g = s->plan->graph;
    if (!(s->observed = calloc((size_t)g->num_nodes + 1, sizeof *s->observed))) return 0;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        if (g->nodes[i].op != LLMRT_OP_OBSERVE) continue;
        if (!(s->observed[i] = calloc((size_t)g->nodes[i].dims[0] + 1, sizeof(float)))) return 0;
    }
    return 1;
}

static llmrt_status cpu_create(const llmrt_plan *plan, const llmrt_backend_config *config, void **out) {
    *out = NULL;
    if (plan->graph->act_dtype != LLMRT_DTYPE_F32)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "cpu backend: activations must be f32 (engine has %s)",
                           llmrt_dtype_name(plan->graph->act_dtype));
    LLMRT_TRY(llmrt_backend_check_comm(plan, config->comm));
    cpu_state *s = calloc(1, sizeof *s);
    if (!s) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    s->plan = plan;
    s->comm = config->comm;
    s->tp_comm = config->tp_comm ? config->tp_comm : config->comm;
    s->threads = config->num_threads > 0 ? config->num_threads : omp_get_num_procs();
    omp_set_num_threads(s->threads);
    s->sixteen_bit = !config->cpu_fp32;
    s->block_size = config->kv_block_size > 0 ? config->kv_block_size : 16;
    s->num_blocks = config->kv_num_blocks > 0 ? config->kv_num_blocks : kv_blocks_from_memory(plan, config, s->block_size);
    s->layer_stride = (size_t)s->num_blocks * (size_t)s->block_size * (size_t)plan->kv_heads * (size_t)plan->head_dim;
    s->kv8_kind = plan->num_kv_layers <= 0              ? 0
                  : plan->kv_dtype == LLMRT_DTYPE_FP8_E4M3 ? LLMRT_Q8_FP8
                  : plan->kv_dtype == LLMRT_DTYPE_I8       ? LLMRT_Q8_INT8
                                                           : 0;
    const size_t kv_elems = s->layer_stride * (size_t)plan->num_kv_layers;
    const size_t kv_scales = plan->head_dim > 0 ? kv_elems / (size_t)plan->head_dim : 0;
    size_t kv_bytes = s->kv8_kind ? kv_elems + kv_scales * sizeof(float) : kv_elems * sizeof(float);
    size_t q_width = 0, k_width = (size_t)plan->kv_heads * (size_t)plan->head_dim, rope_width = 1;
    for (int32_t i = 0; i < plan->graph->num_nodes; i++) {
        const llmrt_node *n = &plan->graph->nodes[i];
        if (n->op == LLMRT_OP_ATTENTION && (size_t)n->dims[1] > q_width) q_width = (size_t)n->dims[1];
        if (n->op == LLMRT_OP_ATTENTION && n->iattr[4] > 0 && (size_t)n->iattr[4] > rope_width)
            rope_width = (size_t)n->iattr[4];
    }
    s->arena = aligned_calloc(plan->arena_bytes);
    int kv_ok;
    if (s->kv8_kind) {
        s->k_codes = aligned_calloc(kv_elems);
        s->v_codes = aligned_calloc(kv_elems);
        s->k_scales = aligned_calloc(kv_scales * sizeof(float));
        s->v_scales = aligned_calloc(kv_scales * sizeof(float));
        kv_ok = s->k_codes && s->v_codes && s->k_scales && s->v_scales;
    } else {
        s->k_cache = aligned_calloc(kv_bytes);
        s->v_cache = aligned_calloc(kv_bytes);
        kv_ok = s->k_cache && s->v_cache;
    }
    s->q_scratch = aligned_calloc((size_t)plan->max_num_tokens * q_width * sizeof(float));
    s->k_scratch = aligned_calloc((size_t)plan->max_num_tokens * k_width * sizeof(float));
    s->rope_table = aligned_calloc((size_t)plan->max_num_tokens * rope_width * sizeof(float));
    size_t moe_bytes = 0;
    for (int32_t i = 0; i < plan->graph->num_nodes; i++) {
        const llmrt_node *n = &plan->graph->nodes[i];
        if (n->op != LLMRT_OP_MOE) continue;
        const llmrt_node *w_gate = &plan->graph->nodes[n->inputs[2]];
        size_t bytes = cpu_moe_scratch_bytes(plan->max_num_tokens, n->dims[1], w_gate->dims[1], n->iattr[0], n->iattr[1]);
        if (bytes > moe_bytes) moe_bytes = bytes;
    }
    if (moe_bytes) s->moe_scratch = aligned_calloc(moe_bytes);
    if (!s->arena || !kv_ok || !s->q_scratch || !s->k_scratch || !s->rope_table ||
        (moe_bytes && !s->moe_scratch)) {
        cpu_destroy(s);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY,
                           "cpu backend: cannot allocate %.1f MiB of activations and %.1f MiB of KV cache",
                           (double)plan->arena_bytes / 1048576.0, 2.0 * (double)kv_bytes / 1048576.0);
    }
    llmrt_status plugins = resolve_plugins(s);
    if (plugins != LLMRT_OK) {
        cpu_destroy(s);
        return plugins;
    }
    if (!cpu_weights_place(&s->weights, plan) || !cpu_plan_fusions(s->plan, &s->run, &s->next_exec) ||
        !allocate_observers(s)) {
        cpu_destroy(s);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cpu backend: out of memory");
    }
    if (plan->graph->weight_dtype == LLMRT_DTYPE_BF16)
        LLMRT_INFO("cpu backend: bf16 linears compute with %s activations%s",
                   s->sixteen_bit && cpu_has_bf16_dot() ? "bf16" : "fp32",
                   !s->sixteen_bit       ? " (cpu precision fp32)"
                   : cpu_has_bf16_dot() ? " (AVX512-BF16; cpu precision fp32 keeps them fp32)"
                                         : " (no AVX512-BF16 on this CPU)");
    LLMRT_DEBUG("cpu backend: %d threads, isa %s, %d KV blocks of %d", s->threads, cpu_kernels_isa(), s->num_blocks,
                s->block_size);
    *out = s;
    return LLMRT_OK;
}

/* ---- execution ------------------------------------------------------------- */

typedef struct step_ctx {
    cpu_state *s;
    const llmrt_step *step;
    int64_t tokens, logits;
} step_ctx;

static void *buffer_of(const step_ctx *c, llmrt_value v) {
    const llmrt_node *n = &c->s->plan->graph->nodes[v];
    if (n->op == LLMRT_OP_WEIGHT || n->op == LLMRT_OP_CONSTANT)
        return (void *)c->s->weights.data[n->weight_slot];
    if (n->op == LLMRT_OP_OBSERVE) return c->s->observed[v];
    return c->s->arena + n->arena_offset;
}

/* 1 when value v is a weight the kernels read interleaved (cpu_weights.h). */
static int interleaved(const step_ctx *c, llmrt_value v) {
    const llmrt_node *n = &c->s->plan->graph->nodes[v];
    return (n->op == LLMRT_OP_WEIGHT || n->op == LLMRT_OP_CONSTANT) && c->s->weights.interleaved[n->weight_slot];
}

static cpu_shape shape_of(const step_ctx *c, llmrt_value v) {
    const llmrt_node *n = &c->s->plan->graph->nodes[v];
    cpu_shape shape = {.ndim = n->ndim};
    for (int32_t i = 0; i < n->ndim; i++) {
        int64_t d = n->dims[i];
        shape.dims[i] = d == LLMRT_DIM_TOKENS ? c->tokens : d == LLMRT_DIM_LOGITS ? c->logits : d;
    }
    return shape;
}

/* What the built-in attention plugin's CPU enqueue finds in backend_context. */
typedef struct cpu_attention_context {
    const step_ctx *c;
    const llmrt_node *n;
    float *out;
} cpu_attention_context;

static llmrt_status run_attention(const step_ctx *c, const llmrt_node *n, float *out);

llmrt_status llmrt_cpu_attention_enqueue(const llmrt_plugin_call *call) {
    const cpu_attention_context *a = call->backend_context;
    return run_attention(a->c, a->n, a->out);
}

/* A user plugin node: its tensors at this step's dims, then its CPU enqueue. */
static llmrt_status run_plugin(const step_ctx *c, int32_t index, void *out) {
    const llmrt_node *n = &c->s->plan->graph->nodes[index];
    const llmrt_plugin *p = c->s->node_plugin[index];
    llmrt_plugin_tensor inputs[LLMRT_PLUGIN_MAX_INPUTS];
    for (int32_t k = 0; k < n->num_inputs; k++) {
        cpu_shape shape = shape_of(c, n->inputs[k]);
        inputs[k].data = buffer_of(c, n->inputs[k]);
        inputs[k].shape = llmrt_plugin_shape_of(&c->s->plan->graph->nodes[n->inputs[k]]);
        for (int32_t d = 0; d < shape.ndim; d++) inputs[k].shape.dims[d] = shape.dims[d];
    }
    cpu_shape shape = shape_of(c, index);
    llmrt_plugin_call call = {.params = n->plugin_params, .params_size = (size_t)n->plugin_params_size,
                              .inputs = inputs, .num_inputs = n->num_inputs,
                              .output = {.data = out, .shape = llmrt_plugin_shape_of(n)},
                              .workspace = c->s->plugin_workspace, .workspace_size = c->s->plugin_workspace_bytes};
    for (int32_t d = 0; d < shape.ndim; d++) call.output.shape.dims[d] = shape.dims[d];
    llmrt_status status = p->enqueue_cpu(&call);
    if (status != LLMRT_OK)
        return llmrt_error(status, "plugin '%s' (node %d) failed on the CPU (%s)", p->name, (int)index,
                           llmrt_status_name(status));
    return LLMRT_OK;
}

static llmrt_status run_attention(const step_ctx *c, const llmrt_node *n, float *out) {
    cpu_state *s = c->s;
    const llmrt_step *step = c->step;
    int64_t heads = n->iattr[1], kv_heads = n->iattr[2], head_dim = n->iattr[3], rotary = n->iattr[4];
    int64_t T = c->tokens;
    const float *q = buffer_of(c, n->inputs[0]), *k = buffer_of(c, n->inputs[1]), *v = buffer_of(c, n->inputs[2]);
    if (rotary > 0) {
        /* every layer rotates at the step's positions: one table per step */
        const float *inv_freq = buffer_of(c, n->inputs[3]);
        if (s->rope_inv_freq != inv_freq || s->rope_dim != rotary) {
            cpu_rope_table(s->rope_table, step->positions, T, rotary, inv_freq);
            s->rope_inv_freq = inv_freq, s->rope_dim = rotary;
        }
        cpu_rope_apply(s->q_scratch, q, s->rope_table, T, heads, head_dim, rotary, (int)n->iattr[5]);
        cpu_rope_apply(s->k_scratch, k, s->rope_table, T, kv_heads, head_dim, rotary, (int)n->iattr[5]);
    } else {
        memcpy(s->q_scratch, q, (size_t)(T * heads * head_dim) * sizeof(float));
        memcpy(s->k_scratch, k, (size_t)(T * kv_heads * head_dim) * sizeof(float));
    }
    cpu_attention_batch batch = {
        .num_seqs = step->num_seqs,
        .seq_start = step->seq_start,
        .positions = step->positions,
        .block_tables = step->block_tables,
        .max_blocks_per_seq = step->max_blocks_per_seq,
        .block_size = s->block_size,
        .non_causal = (int32_t)n->iattr[LLMRT_ATTENTION_NON_CAUSAL],
    };
    cpu_attention_variant variant = {.sliding_window = (int32_t)n->iattr[7], .logit_softcap = n->fattr[1],
                                     .alibi_max_bias = n->fattr[2], .alibi_first_head = (int32_t)n->fattr[3],
                                     .alibi_total_heads = (int32_t)n->fattr[4]};
    if (s->kv8_kind) {
        const size_t layer = (size_t)n->iattr[0], scales = s->layer_stride / (size_t)head_dim;
        const cpu_kv8_layer cache = {.k_codes = s->k_codes + layer * s->layer_stride,
                                     .v_codes = s->v_codes + layer * s->layer_stride,
                                     .k_scales = s->k_scales + layer * scales,
                                     .v_scales = s->v_scales + layer * scales, .kind = s->kv8_kind};
        cpu_kv8_cache_write(&cache, s->k_scratch, v, &batch, T, kv_heads, head_dim);
        return cpu_attention_kv8(out, s->q_scratch, &cache, &batch, T, heads, kv_heads, head_dim, n->fattr[0],
                                 &variant);
    }
    float *k_cache = s->k_cache + (size_t)n->iattr[0] * s->layer_stride;
    float *v_cache = s->v_cache + (size_t)n->iattr[0] * s->layer_stride;
    cpu_kv_cache_write(k_cache, v_cache, s->k_scratch, v, &batch, T, kv_heads, head_dim);
    cpu_attention_ex(out, s->q_scratch, k_cache, v_cache, &batch, T, heads, kv_heads, head_dim, n->fattr[0],
                     &variant);
    return LLMRT_OK;
}

static llmrt_status run_node(const step_ctx *c, int32_t index) {
    const llmrt_plan *plan = c->s->plan;
    const llmrt_node *n = &plan->graph->nodes[index];
    void *out = buffer_of(c, index);
    cpu_shape shape = shape_of(c, index);
    int64_t numel = cpu_shape_numel(&shape);
    switch (n->op) {
    case LLMRT_OP_INPUT: case LLMRT_OP_WEIGHT: case LLMRT_OP_CONSTANT: case LLMRT_OP_VIEW:
        return LLMRT_OK;
    case LLMRT_OP_LINEAR:
    case LLMRT_OP_MATMUL: {
        const llmrt_node *w = &plan->graph->nodes[n->inputs[1]];
        cpu_shape xs = shape_of(c, n->inputs[0]), ws = shape_of(c, n->inputs[1]);
        int64_t K = xs.dims[xs.ndim - 1], M = cpu_shape_numel(&xs) / K;
        const float *bias = n->op == LLMRT_OP_LINEAR && n->num_inputs == 3 ? buffer_of(c, n->inputs[2]) : NULL;
        if (n->op == LLMRT_OP_LINEAR || n->iattr[0]) {
            const cpu_linear_part part = {.y = out, .w = buffer_of(c, n->inputs[1]), .w_type = w->dtype,
                                          .bias = bias, .N = ws.dims[0], .w_interleaved = interleaved(c, n->inputs[1])};
            cpu_linear_group(&part, 1, buffer_of(c, n->inputs[0]), M, K, NULL);
        } else {
            if (w->dtype != LLMRT_DTYPE_F32)
                return llmrt_error(LLMRT_ERR_UNSUPPORTED, "cpu backend: matmul with a %s right operand",
                                   llmrt_dtype_name(w->dtype));
            cpu_matmul_f32(out, buffer_of(c, n->inputs[0]), buffer_of(c, n->inputs[1]), M, ws.dims[1], K);
        }
        return LLMRT_OK;
    }
    case LLMRT_OP_ADD: case LLMRT_OP_SUB: case LLMRT_OP_MUL: case LLMRT_OP_DIV: {
        cpu_shape as = shape_of(c, n->inputs[0]), bs = shape_of(c, n->inputs[1]);
        cpu_binary(n->op, out, &shape, buffer_of(c, n->inputs[0]), &as, buffer_of(c, n->inputs[1]), &bs);
        return LLMRT_OK;
    }
    case LLMRT_OP_POW: case LLMRT_OP_NEG: case LLMRT_OP_EXP: case LLMRT_OP_SQRT: case LLMRT_OP_RSQRT:
    case LLMRT_OP_TANH: case LLMRT_OP_ERF: case LLMRT_OP_SIGMOID: case LLMRT_OP_RELU: case LLMRT_OP_GELU:
    case LLMRT_OP_SILU: case LLMRT_OP_GELU_TANH:
        cpu_unary(n->op, out, buffer_of(c, n->inputs[0]), numel, n->fattr[0]);
        return LLMRT_OK;
    case LLMRT_OP_SILU_MUL:
        cpu_silu_mul(out, buffer_of(c, n->inputs[0]), buffer_of(c, n->inputs[1]), numel);
        return LLMRT_OK;
    case LLMRT_OP_SUM: case LLMRT_OP_MEAN: {
        cpu_shape xs = shape_of(c, n->inputs[0]);
        int64_t dim = xs.dims[xs.ndim - 1];
        cpu_reduce_last(n->op, out, buffer_of(c, n->inputs[0]), cpu_shape_numel(&xs) / dim, dim);
        return LLMRT_OK;
    }
    case LLMRT_OP_SOFTMAX: {
        int64_t dim = shape.dims[shape.ndim - 1];
        cpu_softmax(out, buffer_of(c, n->inputs[0]), numel / dim, dim);
        return LLMRT_OK;
    }
    case LLMRT_OP_RMSNORM: {
        int64_t dim = shape.dims[shape.ndim - 1];
        cpu_rmsnorm_offset(out, buffer_of(c, n->inputs[0]), buffer_of(c, n->inputs[1]), numel / dim, dim, n->fattr[0],
                           n->fattr[1]);
        return LLMRT_OK;
    }
    case LLMRT_OP_LAYERNORM: {
        int64_t dim = shape.dims[shape.ndim - 1];
        cpu_layernorm(out, buffer_of(c, n->inputs[0]), buffer_of(c, n->inputs[1]), buffer_of(c, n->inputs[2]),
                      numel / dim, dim, n->fattr[0]);
        return LLMRT_OK;
    }
    case LLMRT_OP_GATHER: {
        const llmrt_node *table = &plan->graph->nodes[n->inputs[0]];
        cpu_shape ts = shape_of(c, n->inputs[0]);
        const int32_t *ids = buffer_of(c, n->inputs[1]);
        int64_t count = shape.dims[0], offset = n->iattr[0];
        /* a tied table in the LM head's interleaved layout: row by row */
        const int il = interleaved(c, n->inputs[0]);
        if (n->iattr[1]) { /* a vocab shard: rows another rank holds are zeros */
            const size_t row_bytes = (size_t)ts.dims[1] * llmrt_dtype_size(table->dtype);
            for (int64_t t = 0; t < count; t++) {
                float *dst = (float *)out + t * ts.dims[1];
                const int64_t local = (int64_t)ids[t] - n->iattr[0];
                if (local >= 0 && local < ts.dims[0] && il)
                    cpu_weight_row_f32(dst, buffer_of(c, n->inputs[0]), table->dtype, 1, local, ts.dims[1]);
                else if (local < 0 || local >= ts.dims[0] ||
                         llmrt_convert_to_f32(dst,
                                              (const uint8_t *)buffer_of(c, n->inputs[0]) + (size_t)local * row_bytes,
                                              table->dtype, (size_t)ts.dims[1]) != 0)
                    memset(dst, 0, (size_t)ts.dims[1] * sizeof(float));
            }
            return LLMRT_OK;
        }
        for (int64_t t = 0; il && t < count; t++) {
            if (ids[t] < 0 || ids[t] >= ts.dims[0] - offset)
                return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "gather: index %d at row %lld is outside [0, %lld)",
                                   ids[t], (long long)t, (long long)(ts.dims[0] - offset));
            cpu_weight_row_f32((float *)out + t * ts.dims[1], buffer_of(c, n->inputs[0]), table->dtype, 1,
                               offset + ids[t], ts.dims[1]);
        }
        if (il) return LLMRT_OK;
        /* an offset gather reads the table from row `offset` on */
        const uint8_t *rows = (const uint8_t *)buffer_of(c, n->inputs[0]) +
                              (size_t)(offset * ts.dims[1]) * llmrt_dtype_size(table->dtype);
        int64_t bad = cpu_embedding(out, rows, table->dtype, ts.dims[0] - offset, ts.dims[1], ids, count);
        if (bad >= 0)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "gather: index %d at row %lld is outside [0, %lld)",
                               ids[bad], (long long)bad, (long long)(ts.dims[0] - offset));
        return LLMRT_OK;
    }
    case LLMRT_OP_SLICE: {
        cpu_shape xs = shape_of(c, n->inputs[0]);
        cpu_slice(out, buffer_of(c, n->inputs[0]), &xs, (int32_t)n->iattr[0], n->iattr[1], n->iattr[2],
                  llmrt_dtype_size(n->dtype));
        return LLMRT_OK;
    }
    case LLMRT_OP_CONCAT: {
        const void *parts[LLMRT_GRAPH_MAX_INPUTS];
        cpu_shape shapes[LLMRT_GRAPH_MAX_INPUTS];
        for (int32_t i = 0; i < n->num_inputs; i++) {
            parts[i] = buffer_of(c, n->inputs[i]);
            shapes[i] = shape_of(c, n->inputs[i]);
        }
        cpu_concat(out, parts, shapes, n->num_inputs, (int32_t)n->iattr[0], llmrt_dtype_size(n->dtype));
        return LLMRT_OK;
    }
    case LLMRT_OP_PERMUTE: {
        cpu_shape xs = shape_of(c, n->inputs[0]);
        cpu_permute(out, buffer_of(c, n->inputs[0]), &xs, n->iattr, llmrt_dtype_size(n->dtype));
        return LLMRT_OK;
    }
    case LLMRT_OP_CAST: {
        const llmrt_node *x = &plan->graph->nodes[n->inputs[0]];
        const void *src = buffer_of(c, n->inputs[0]);
        if (x->dtype == n->dtype) memmove(out, src, (size_t)numel * llmrt_dtype_size(n->dtype));
        else if (x->dtype == LLMRT_DTYPE_I32 && n->dtype == LLMRT_DTYPE_F32)
            for (int64_t i = 0; i < numel; i++) ((float *)out)[i] = (float)((const int32_t *)src)[i];
        else return llmrt_error(LLMRT_ERR_UNSUPPORTED, "cpu backend: cast %s → %s", llmrt_dtype_name(x->dtype),
                                llmrt_dtype_name(n->dtype));
        return LLMRT_OK;
    }
    case LLMRT_OP_MOE: {
        const llmrt_node *w_gate = &plan->graph->nodes[n->inputs[2]];
        cpu_moe(out, buffer_of(c, n->inputs[0]), buffer_of(c, n->inputs[1]), buffer_of(c, n->inputs[2]),
                buffer_of(c, n->inputs[3]), buffer_of(c, n->inputs[4]), w_gate->dtype, c->tokens, shape.dims[1],
                w_gate->dims[1], n->iattr[0], n->iattr[1], c->s->moe_scratch);
        return LLMRT_OK;
    }
    case LLMRT_OP_ATTENTION: {
        const cpu_attention_context context = {.c = c, .n = n, .out = out};
        const llmrt_plugin_call call = {.backend_context = (void *)&context};
        return c->s->attention->enqueue_cpu(&call);
    }
    case LLMRT_OP_PLUGIN:
        return run_plugin(c, index, out);
    case LLMRT_OP_ALL_REDUCE:
        if (out != buffer_of(c, n->inputs[0])) memcpy(out, buffer_of(c, n->inputs[0]), (size_t)numel * sizeof(float));
        return llmrt_comm_all_reduce_sum(c->s->tp_comm, out, numel, LLMRT_DTYPE_F32);
    case LLMRT_OP_ALL_GATHER:
        return llmrt_comm_all_gather(c->s->tp_comm, buffer_of(c, n->inputs[0]), out, numel / n->iattr[0],
                                     LLMRT_DTYPE_F32);
    case LLMRT_OP_SEND: {
        const size_t bytes = (size_t)numel * llmrt_dtype_size(n->dtype);
        if (out != buffer_of(c, n->inputs[0])) memcpy(out, buffer_of(c, n->inputs[0]), bytes);
        if (c->step->logits_by_caller && llmrt_node_is_logits_handback(n)) return LLMRT_OK;
        return llmrt_comm_send(c->s->comm, out, (int64_t)bytes, (int32_t)n->iattr[0]);
    }
    case LLMRT_OP_RECV:
        if (c->step->logits_by_caller && llmrt_node_is_logits_handback(n)) return LLMRT_OK;
        return llmrt_comm_recv(c->s->comm, out, numel * (int64_t)llmrt_dtype_size(n->dtype), (int32_t)n->iattr[0]);
    case LLMRT_OP_OBSERVE: {
        cpu_shape xs = shape_of(c, n->inputs[0]);
        const int64_t K = xs.dims[xs.ndim - 1];
        cpu_column_amax(out, buffer_of(c, n->inputs[0]), K ? cpu_shape_numel(&xs) / K : 0, K);
        return LLMRT_OK;
    }
    case LLMRT_OP_COUNT:
        break;
    }
    return llmrt_error(LLMRT_ERR_UNSUPPORTED, "cpu backend: op %s", llmrt_op_name(n->op));
}

static void run_add_norm(const step_ctx *c, int32_t add, int32_t norm) {
    const llmrt_node *a = &c->s->plan->graph->nodes[add], *r = &c->s->plan->graph->nodes[norm];
    cpu_shape shape = shape_of(c, add);
    const int64_t dim = shape.dims[shape.ndim - 1];
    cpu_add_rmsnorm_to(buffer_of(c, norm), buffer_of(c, add), buffer_of(c, a->inputs[0]), buffer_of(c, a->inputs[1]),
                       buffer_of(c, r->inputs[1]), cpu_shape_numel(&shape) / dim, dim, r->fattr[0]);
}

/* The LINEARs starting at node `first` (the next ones that compute), and
 * the SILU_MUL after a gated pair. */
static void run_linear_group(const step_ctx *c, int32_t first) {
    const cpu_state *s = c->s;
    const llmrt_node *nodes = s->plan->graph->nodes;
    const int kind = s->run[first], count = kind == RUN_GROUP3 ? 3 : 2;
    cpu_linear_part parts[3];
    int32_t v = first;
    for (int i = 0; i < count; i++, v = s->next_exec[v]) {
        const llmrt_node *n = &nodes[v];
        parts[i] = (cpu_linear_part){.y = buffer_of(c, v), .w = buffer_of(c, n->inputs[1]),
                                     .w_type = nodes[n->inputs[1]].dtype,
                                     .bias = n->num_inputs == 3 ? buffer_of(c, n->inputs[2]) : NULL,
                                     .N = nodes[n->inputs[1]].dims[0], .w_interleaved = interleaved(c, n->inputs[1])};
    }
    cpu_shape xs = shape_of(c, nodes[first].inputs[0]);
    const int64_t K = xs.dims[xs.ndim - 1];
    cpu_linear_group(parts, count, buffer_of(c, nodes[first].inputs[0]), cpu_shape_numel(&xs) / K, K,
                     kind == RUN_GROUP2_GATED ? buffer_of(c, v) : NULL);
}

/* Rejects a step that would index outside the arena or the KV cache. */
static llmrt_status check_step(const cpu_state *s, const llmrt_step *step) {
    const llmrt_plan *plan = s->plan;
    if (step->num_tokens < 1 || step->num_tokens > plan->max_num_tokens)
        return llmrt_error(LLMRT_ERR_CAPACITY, "step: %d tokens (1..%d)", step->num_tokens, plan->max_num_tokens);
    if (step->num_seqs < 1 || step->num_seqs > plan->max_batch)
        return llmrt_error(LLMRT_ERR_CAPACITY, "step: %d sequences (1..%d)", step->num_seqs, plan->max_batch);
    if (step->num_logits < 0 || step->num_logits > step->num_tokens)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "step: %d logit rows for %d tokens", step->num_logits,
                           step->num_tokens);
    if (step->seq_start[0] != 0 || step->seq_start[step->num_seqs] != step->num_tokens)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "step: seq_start does not cover the tokens");
    int64_t capacity = (int64_t)step->max_blocks_per_seq * s->block_size;
    for (int32_t q = 0; q < step->num_seqs; q++) {
        if (step->seq_start[q + 1] < step->seq_start[q])
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "step: seq_start not ascending");
        int32_t max_position = -1, min_position = INT32_MAX;
        for (int32_t t = step->seq_start[q]; t < step->seq_start[q + 1]; t++) {
            if (step->positions[t] < 0 || step->positions[t] >= capacity)
                return llmrt_error(LLMRT_ERR_CAPACITY, "step: position %d outside the sequence's %lld cache slots",
                                   step->positions[t], (long long)capacity);
            if (step->positions[t] > max_position) max_position = step->positions[t];
            if (step->positions[t] < min_position) min_position = step->positions[t];
        }
        /* a sliding-window plan never reads the blocks before the window */
        const int32_t window = s->plan->kv_window;
        const int32_t first_block =
            window > 0 && min_position + 1 > window ? (min_position + 1 - window) / s->block_size : 0;
        for (int32_t b = first_block; b <= max_position / s->block_size; b++) {
            int32_t block = step->block_tables[(size_t)q * step->max_blocks_per_seq + b];
            if (block < 0 || block >= s->num_blocks)
                return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "step: block %d outside the cache (%d blocks)", block,
                                   s->num_blocks);
        }
    }
    for (int32_t i = 0; i < step->num_logits; i++)
        if (step->logits_indices[i] < 0 || step->logits_indices[i] >= step->num_tokens)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "step: logits row %d out of range", step->logits_indices[i]);
    return LLMRT_OK;
}

static llmrt_status cpu_forward(void *state, const llmrt_step *step, float *logits) {
    cpu_state *s = state;
    const llmrt_plan *plan = s->plan;
    LLMRT_TRY(check_step(s, step));
    /* the thread count is an OpenMP ICV, per calling thread: the runtime's
     * step thread is not the one that created the backend */
    omp_set_num_threads(s->threads);
    cpu_kernels_set_16bit_compute(s->sixteen_bit);
    step_ctx c = {.s = s, .step = step, .tokens = step->num_tokens, .logits = step->num_logits};
    s->rope_inv_freq = NULL; /* the table is per step */
    memcpy(buffer_of(&c, plan->input_token_ids), step->token_ids, (size_t)step->num_tokens * sizeof(int32_t));
    memcpy(buffer_of(&c, plan->input_positions), step->positions, (size_t)step->num_tokens * sizeof(int32_t));
    if (plan->input_token_type_ids >= 0) {
        int32_t *types = buffer_of(&c, plan->input_token_type_ids);
        if (step->token_type_ids) memcpy(types, step->token_type_ids, (size_t)step->num_tokens * sizeof(int32_t));
        else memset(types, 0, (size_t)step->num_tokens * sizeof(int32_t));
    }
    memcpy(buffer_of(&c, plan->input_logits_indices), step->logits_indices,
           (size_t)step->num_logits * sizeof(int32_t));
    for (int32_t i = 0; i < plan->graph->num_nodes; i++) {
        llmrt_status status = LLMRT_OK;
        switch (s->run[i]) {
        case RUN_SKIP: break;
        case RUN_ADD_NORM: run_add_norm(&c, i, s->next_exec[i]); break;
        case RUN_NODE: status = run_node(&c, i); break;
        default: run_linear_group(&c, i); break;
        }
        if (status != LLMRT_OK) return status;
    }
    if (step->num_logits > 0)
        memcpy(logits, buffer_of(&c, plan->output_logits),
               (size_t)step->num_logits * (size_t)plan->vocab_size * sizeof(float));
    return LLMRT_OK;
}

static llmrt_status cpu_copy_kv_block(void *state, int32_t src, int32_t dst) {
    cpu_state *s = state;
    if (src < 0 || dst < 0 || src >= s->num_blocks || dst >= s->num_blocks)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "copy_kv_block: block out of range");
    size_t block_floats = (size_t)s->block_size * (size_t)s->plan->kv_heads * (size_t)s->plan->head_dim;
    if (s->kv8_kind) { /* codes and their scales */
        const size_t block_scales = (size_t)s->block_size * (size_t)s->plan->kv_heads;
        const size_t layer_scales = s->layer_stride / (size_t)s->plan->head_dim;
        for (int32_t l = 0; l < s->plan->num_kv_layers; l++) {
            const size_t codes = (size_t)l * s->layer_stride, scales = (size_t)l * layer_scales;
            memcpy(s->k_codes + codes + (size_t)dst * block_floats, s->k_codes + codes + (size_t)src * block_floats,
                   block_floats);
            memcpy(s->v_codes + codes + (size_t)dst * block_floats, s->v_codes + codes + (size_t)src * block_floats,
                   block_floats);
            memcpy(s->k_scales + scales + (size_t)dst * block_scales, s->k_scales + scales + (size_t)src * block_scales,
                   block_scales * sizeof(float));
            memcpy(s->v_scales + scales + (size_t)dst * block_scales, s->v_scales + scales + (size_t)src * block_scales,
                   block_scales * sizeof(float));
        }
        return LLMRT_OK;
    }
    for (int32_t l = 0; l < s->plan->num_kv_layers; l++) {
        size_t base = (size_t)l * s->layer_stride;
        memcpy(s->k_cache + base + (size_t)dst * block_floats, s->k_cache + base + (size_t)src * block_floats,
               block_floats * sizeof(float));
        memcpy(s->v_cache + base + (size_t)dst * block_floats, s->v_cache + base + (size_t)src * block_floats,
               block_floats * sizeof(float));
    }
    return LLMRT_OK;
}

static llmrt_status cpu_read_observer(void *state, llmrt_value node, float *out) {
    const cpu_state *s = state;
    if (node < 0 || node >= s->plan->graph->num_nodes || !s->observed[node])
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cpu backend: node %d is not an OBSERVE node", (int)node);
    memcpy(out, s->observed[node], (size_t)s->plan->graph->nodes[node].dims[0] * sizeof(float));
    return LLMRT_OK;
}

static void cpu_memory_report(void *state, llmrt_memory_report *out) {
    cpu_state *s = state;
    out->weight_bytes = llmrt_plan_weight_bytes(s->plan, NULL);
    out->activation_bytes = s->plan->arena_bytes;
    const size_t elems = s->layer_stride * (size_t)s->plan->num_kv_layers;
    out->kv_cache_bytes = s->kv8_kind ? 2 * (elems + elems / (size_t)s->plan->head_dim * sizeof(float))
                                      : 2 * elems * sizeof(float);
    out->kv_num_blocks = s->num_blocks;
    out->kv_block_size = s->block_size;
}

const llmrt_backend_ops llmrt_cpu_backend_ops = {
    .name = "cpu",
    .create = cpu_create,
    .forward = cpu_forward,
    .copy_kv_block = cpu_copy_kv_block,
    .memory_report = cpu_memory_report,
    .destroy = cpu_destroy,
    .read_observer = cpu_read_observer,
};
