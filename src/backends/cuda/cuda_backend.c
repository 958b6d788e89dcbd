/* The CUDA backend: makes a plan resident on one GPU (weights uploaded once,
 * one activation arena, the paged KV cache sized from what memory is left)
 * and runs steps. A step's metadata (ids, positions, slots, block tables,
 * prefill tiles) goes to the device in one copy; decode steps replay a CUDA
 * graph captured per (tokens, logits) shape, so one costs one launch on the
 * host. */
#define _POSIX_C_SOURCE 200809L
/* This file defines the CUDA declarations of backend.h, whatever the
 * including target's definitions. */
#ifndef LLMRT_HAVE_CUDA
#define LLMRT_HAVE_CUDA 1
#endif
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_backend_internal.h"
#include "backends/cuda/cuda_common.h"
#include "core/log.h"

enum { GEMM_WORKSPACE_BYTES = 32 << 20, UPLOAD_CHUNK = 64 << 20, META_ALIGN = 4 /* int32s = 16 bytes */ };

int32_t llmrt_cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return (int32_t)count;
}

int llmrt_cuda_available(void) { return llmrt_cuda_device_count() > 0; }

int llmrt_cuda_device_pci_id(int32_t device, char *out, int size) {
    if (cudaDeviceGetPCIBusId(out, size, device) == cudaSuccess) return 1;
    cudaGetLastError();
    return 0;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static void cuda_destroy(void *state) {
    cuda_state *st = state;
    if (!st) return;
    if (st->stream) cudaStreamSynchronize(st->stream);
    if (st->probe_started && cuda_probe_dump(st->settings.probe_out) != cudaSuccess)
        fprintf(stderr, "llmrt: cuda: could not write the probe records to %s\n", st->settings.probe_out);
    for (int i = 0; i < st->num_graphs; i++) cudaGraphExecDestroy(st->graphs[i].exec);
    cuda_collectives_free(st);
    cuda_q8linear_free(st); /* borrows the gemm's handle */
    cuda_gemm_free(st->gemm);
    cudaFree(st->weights_dev);
    cudaFree(st->consts_dev);
    cudaFree(st->observe_dev);
    cudaFree(st->arena);
    cudaFree(st->kv);
    cudaFree(st->meta_dev);
    cudaFree(st->attn_ws);
    cudaFree(st->attn_counters);
    cudaFree(st->attn_early);
    cudaFree(st->rope_table);
    cudaFree(st->logits_dev);
    cudaFree(st->qweight_scratch);
    cudaFree(st->moe_ws);
    cudaFree(st->plugin_ws);
    free(st->node_plugin);
    if (st->meta_host) cudaFreeHost(st->meta_host);
    if (st->out_host) cudaFreeHost(st->out_host);
    if (st->stream) cudaStreamDestroy(st->stream);
    free(st->weight_offsets);
    free(st->node_ptr);
    cuda_fusion_free(st);
    free(st->exec);
    free(st->next_exec);
    free(st);
}

/* Weights: one allocation, each weight 256-byte aligned, streamed from the
 * (mmapped) host views in chunks with a progress line. */
static llmrt_status upload_weights(cuda_state *st) {
    const llmrt_plan *plan = st->plan;
    st->weight_offsets = calloc((size_t)plan->num_weights + 1, sizeof *st->weight_offsets);
    if (!st->weight_offsets) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    size_t total = 0;
    for (int32_t i = 0; i < plan->num_weights; i++) {
        st->weight_offsets[i] = total;
        total = align_up(total + plan->weights[i].nbytes, 256);
    }
    st->weights_bytes = total;
    if (total == 0) return LLMRT_OK;
    cudaError_t err = cudaMalloc(&st->weights_dev, total);
    if (err != cudaSuccess)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: cannot allocate %.1f MiB of GPU memory for the weights (%s)",
                           total / 1048576.0, cudaGetErrorString(err));
    llmrt_progress progress;
    llmrt_progress_begin(&progress, "uploading weights", total);
    for (int32_t i = 0; i < plan->num_weights; i++) {
        const llmrt_plan_weight *w = &plan->weights[i];
        const unsigned char *src = w->data ? w->data : w->owned_data;
        if (!src && w->nbytes) {
            llmrt_progress_end(&progress);
            return llmrt_error(LLMRT_ERR_INTERNAL, "cuda: weight \"%s\" has no bytes", w->name);
        }
        for (size_t done = 0; done < w->nbytes; done += UPLOAD_CHUNK) {
            const size_t n = w->nbytes - done < UPLOAD_CHUNK ? w->nbytes - done : UPLOAD_CHUNK;
            err = cudaMemcpy((unsigned char *)st->weights_dev + st->weight_offsets[i] + done, src + done, n,
                             cudaMemcpyHostToDevice);
            if (err != cudaSuccess) {
                llmrt_progress_end(&progress);
                return llmrt_cuda_status(err, w->name);
            }
            llmrt_progress_add(&progress, n);
        }
    }
    llmrt_progress_end(&progress);
    return LLMRT_OK;
}

static int64_t static_numel(const llmrt_node *n) {
    int64_t c = 1;
    for (int d = 0; d < n->ndim; d++) c *= n->dims[d];
    return c;
}

/* Device addresses of every value: weights and constants in the weight
 * block, views at their root's address, activations in the arena. Inputs
 * are pointed into the step metadata at each step. */
static llmrt_status place_values(cuda_state *st) {
    const llmrt_graph *g = st->graph;
    const llmrt_plan *plan = st->plan;
    st->node_ptr = calloc((size_t)g->num_nodes, sizeof *st->node_ptr);
    st->fused = calloc((size_t)g->num_nodes, 1);
    st->exec = malloc(((size_t)g->num_nodes + 1) * sizeof *st->exec);
    st->next_exec = malloc(((size_t)g->num_nodes + 1) * sizeof *st->next_exec);
    if (!st->node_ptr || !st->fused || !st->exec || !st->next_exec)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    st->num_exec = 0;
    for (int32_t v = 0; v < g->num_nodes; v++) {
        const llmrt_op op = g->nodes[v].op;
        st->next_exec[v] = -1;
        if (op == LLMRT_OP_INPUT || op == LLMRT_OP_WEIGHT || op == LLMRT_OP_CONSTANT || op == LLMRT_OP_VIEW) continue;
        if (st->num_exec > 0) st->next_exec[st->exec[st->num_exec - 1]] = v;
        st->exec[st->num_exec++] = v;
    }

    /* Constants the compiler left without a weight slot get their own block. */
    size_t const_bytes = 0;
    for (int32_t v = 0; v < g->num_nodes; v++) {
        const llmrt_node *n = &g->nodes[v];
        if (n->op == LLMRT_OP_CONSTANT && n->weight_slot < 0)
            const_bytes = align_up(const_bytes + (size_t)static_numel(n) * sizeof(float), 256);
    }
    if (const_bytes) LLMRT_CUDA_TRY(cudaMalloc(&st->consts_dev, const_bytes), "constants allocation");
    size_t const_at = 0;
    /* OBSERVE nodes keep statistics across steps, outside the arena */
    size_t observe_bytes = 0, observe_at = 0;
    for (int32_t v = 0; v < g->num_nodes; v++)
        if (g->nodes[v].op == LLMRT_OP_OBSERVE)
            observe_bytes = align_up(observe_bytes + (size_t)g->nodes[v].dims[0] * sizeof(float), 256);
    if (observe_bytes) {
        LLMRT_CUDA_TRY(cudaMalloc(&st->observe_dev, observe_bytes), "calibration statistics");
        LLMRT_CUDA_TRY(cudaMemset(st->observe_dev, 0, observe_bytes), "calibration statistics");
    }

    for (int32_t v = 0; v < g->num_nodes; v++) {
        const llmrt_node *n = &g->nodes[v];
        if (n->op == LLMRT_OP_WEIGHT || n->op == LLMRT_OP_CONSTANT) {
            if (n->weight_slot >= 0) {
                if (n->weight_slot >= plan->num_weights)
                    return llmrt_error(LLMRT_ERR_FORMAT, "cuda: node %d has weight slot %d of %d", (int)v,
                                       (int)n->weight_slot, (int)plan->num_weights);
                st->node_ptr[v] = (unsigned char *)st->weights_dev + st->weight_offsets[n->weight_slot];
            } else if (n->op == LLMRT_OP_CONSTANT && n->const_data) {
                const size_t bytes = (size_t)static_numel(n) * sizeof(float);
                void *dst = (unsigned char *)st->consts_dev + const_at;
                LLMRT_CUDA_TRY(cudaMemcpy(dst, n->const_data, bytes, cudaMemcpyHostToDevice), "constant upload");
                st->node_ptr[v] = dst;
                const_at = align_up(const_at + bytes, 256);
            } else {
                return llmrt_error(LLMRT_ERR_FORMAT, "cuda: weight node %d \"%s\" has no slot", (int)v,
                                   n->name ? n->name : "");
            }
        } else if (n->op == LLMRT_OP_VIEW || (n->arena_offset < 0 && n->alias_of >= 0)) {
            const llmrt_value root = n->alias_of >= 0 ? n->alias_of : n->inputs[0];
            if (root < 0 || root >= v)
                return llmrt_error(LLMRT_ERR_FORMAT, "cuda: view node %d aliases value %d", (int)v, (int)root);
            st->node_ptr[v] = st->node_ptr[root];
        } else if (n->op == LLMRT_OP_INPUT) {
            st->node_ptr[v] = NULL; /* set per step */
        } else if (n->op == LLMRT_OP_OBSERVE) {
            st->node_ptr[v] = (unsigned char *)st->observe_dev + observe_at;
            observe_at = align_up(observe_at + (size_t)n->dims[0] * sizeof(float), 256);
        } else {
            if (n->arena_offset < 0 || (size_t)n->arena_offset > plan->arena_bytes)
                return llmrt_error(LLMRT_ERR_FORMAT, "cuda: node %d has arena offset %lld (arena %zu bytes)", (int)v,
                                   (long long)n->arena_offset, plan->arena_bytes);
            st->node_ptr[v] = (unsigned char *)st->arena + n->arena_offset;
        }
    }

    return cuda_find_fusions(st);
}

/* The KV cache gets kv_cache_bytes, or kv_cache_fraction of the memory
 * left after everything else, unless the config fixes the block count. */
static llmrt_status allocate_kv_cache(cuda_state *st, const llmrt_backend_config *config) {
    const llmrt_plan *plan = st->plan;
    st->kv_block_size = config->kv_block_size > 0 ? config->kv_block_size : 16;
    if (plan->num_kv_layers <= 0) return LLMRT_OK;
    st->kv8_kind = plan->kv_dtype == LLMRT_DTYPE_FP8_E4M3 ? CUDA_KV8_FP8
                   : plan->kv_dtype == LLMRT_DTYPE_I8     ? CUDA_KV8_INT8
                                                          : 0;
    /* 8-bit: a byte per element and an f32 scale per (token, kv head) */
    const size_t elsize = st->kv8_kind ? 1 : llmrt_dtype_size(st->act_type);
    const size_t block_bytes = (size_t)st->kv_block_size * plan->kv_heads *
                               (plan->head_dim * elsize + (st->kv8_kind ? sizeof(float) : 0));
    const size_t per_block = block_bytes * 2 * (size_t)plan->num_kv_layers;
    size_t free_bytes = 0, total_bytes = 0;
    LLMRT_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    int64_t blocks = config->kv_num_blocks;
    if (blocks <= 0) {
        float fraction = config->kv_cache_fraction > 0 && config->kv_cache_fraction <= 1 ? config->kv_cache_fraction : 0.9f;
        blocks = config->kv_cache_bytes > 0 ? (int64_t)(config->kv_cache_bytes / per_block)
                                            : (int64_t)((double)free_bytes * fraction / (double)per_block);
        if (blocks > INT32_MAX) blocks = INT32_MAX;
    }
    if (blocks < 1)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY,
                           "cuda: no GPU memory left for the KV cache: %.1f MiB free after %.1f MiB of weights and "
                           "%.1f MiB of activations; one block of %d tokens needs %.2f MiB",
                           free_bytes / 1048576.0, st->weights_bytes / 1048576.0, st->arena_bytes / 1048576.0,
                           st->kv_block_size, per_block / 1048576.0);
    st->kv_num_blocks = (int32_t)blocks;
    st->kv_layer_elems = (size_t)blocks * st->kv_block_size * plan->kv_heads * plan->head_dim;
    st->kv_bytes = per_block * (size_t)blocks;
    const size_t code_bytes = 2 * (size_t)plan->num_kv_layers * st->kv_layer_elems * elsize;
    cudaError_t err = cudaMalloc(&st->kv, st->kv_bytes);
    if (err != cudaSuccess)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: cannot allocate the KV cache (%d blocks, %.1f MiB): %s",
                           (int)blocks, st->kv_bytes / 1048576.0, cudaGetErrorString(err));
    /* codes are whole blocks of kv_heads · head_dim bytes: at any head_dim
     * the scales after them start 4-byte aligned only if that is even */
    if (st->kv8_kind && code_bytes % sizeof(float) != 0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "cuda: an 8-bit KV cache needs kv_heads · head_dim · block_size "
                           "divisible by 4 (%d · %d · %d)", (int)plan->kv_heads, (int)plan->head_dim, (int)st->kv_block_size);
    st->kv_scales = st->kv8_kind ? (float *)((unsigned char *)st->kv + code_bytes) : NULL;
    if ((int64_t)blocks * st->kv_block_size < plan->max_seq_len)
        LLMRT_WARN("cuda: the KV cache holds %lld tokens, fewer than one sequence of max_seq_len %d",
                   (long long)blocks * st->kv_block_size, (int)plan->max_seq_len);
    return LLMRT_OK;
}

static llmrt_status cuda_create(const llmrt_plan *plan, const llmrt_backend_config *config, void **out_state) {
    *out_state = NULL;
    if (!plan || !plan->graph) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: no plan");
    if (!llmrt_cuda_available()) return llmrt_error(LLMRT_ERR_BACKEND, "cuda: no CUDA device is available");
    cuda_state *st = calloc(1, sizeof *st);
    if (!st) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
    st->plan = plan;
    st->graph = plan->graph;
    st->device = config ? config->device : 0;
    st->act_type = plan->graph->act_dtype;
    st->early_attn = -1;
    llmrt_backend_config defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!config) config = &defaults;

    llmrt_status s = LLMRT_OK;
#define STEP(expr)                  \
    do {                            \
        s = (expr);                 \
        if (s != LLMRT_OK) goto fail; \
    } while (0)
#define CUDA_STEP(call, what)                                   \
    do {                                                        \
        cudaError_t step_err_ = (call);                         \
        if (step_err_ != cudaSuccess) {                         \
            s = llmrt_cuda_status(step_err_, (what));           \
            goto fail;                                          \
        }                                                       \
    } while (0)

    STEP(cuda_settings_read(&st->settings));
    if (plan->max_num_tokens <= 0 || plan->max_batch <= 0 || plan->max_seq_len <= 0) {
        s = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: plan limits must be positive");
        goto fail;
    }
    if (st->act_type != LLMRT_DTYPE_F32 && st->act_type != LLMRT_DTYPE_F16 && st->act_type != LLMRT_DTYPE_BF16) {
        s = llmrt_error(LLMRT_ERR_UNSUPPORTED, "cuda: activation dtype %s", llmrt_dtype_name(st->act_type));
        goto fail;
    }
    CUDA_STEP(cudaSetDevice(st->device), "cudaSetDevice");
    CUDA_STEP(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    STEP(cuda_collectives_prepare(st, config->comm, config->tp_comm));
    int cc_major = 0;
    CUDA_STEP(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, st->device), "device query");
    /* programmatic dependent launch exists from Hopper on */
    st->pdl = st->settings.pdl && cc_major >= 9;
    /* the diagnostic block timeline (a -DLLMRT_CUDA_PROBE=ON build) */
    if (st->settings.probe_out) {
        if (!cuda_probe_compiled()) {
            s = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: LLMRT_CUDA_PROBE_OUT needs a build with -DLLMRT_CUDA_PROBE=ON");
            goto fail;
        }
        CUDA_STEP(cuda_probe_start(1u << 20), "probe buffer");
        st->probe_started = 1;
    }
    /* the tensor-core prefill kernel, where this GPU and head size allow it */
    st->prefill_kernel = st->settings.prefill_kernel && cuda_attention_prefill_supported(st->act_type, plan->head_dim);
    STEP(upload_weights(st));
    STEP(cuda_qlinear_prepare(st));
    STEP(cuda_moe_prepare(st));
    if (plan->arena_bytes) {
        cudaError_t err = cudaMalloc(&st->arena, plan->arena_bytes);
        if (err != cudaSuccess) {
            s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "cuda: cannot allocate the %.1f MiB activation arena (%s)",
                            plan->arena_bytes / 1048576.0, cudaGetErrorString(err));
            goto fail;
        }
    }
    st->arena_bytes = plan->arena_bytes;
    STEP(place_values(st));
    STEP(cuda_resolve_plugins(st));
    STEP(cuda_gemm_create(&st->gemm, GEMM_WORKSPACE_BYTES, st->settings.gemm_autotune));
    STEP(cuda_q8linear_prepare(st));

    /* Step metadata, laid out by cuda_forward; sized for the largest step. */
    st->kv_block_size = config->kv_block_size > 0 ? config->kv_block_size : 16;
    st->bt_stride = (plan->max_seq_len + st->kv_block_size - 1) / st->kv_block_size;
    const size_t T = (size_t)plan->max_num_tokens, S = (size_t)plan->max_batch;
    const size_t max_tiles = T / CUDA_PREFILL_TILE_M + S;
    const size_t sample_words = sizeof(cuda_sample_row) / sizeof(int32_t);
    st->meta_capacity = 8 * align_up(T, META_ALIGN) + align_up(1 + 2 * T, META_ALIGN) +
                        align_up(sample_words * T, META_ALIGN) + align_up(S * st->bt_stride, META_ALIGN) +
                        align_up(2 * max_tiles, META_ALIGN) + 8 * META_ALIGN;
    CUDA_STEP(cudaMallocHost((void **)&st->meta_host, st->meta_capacity * sizeof(int32_t)), "pinned metadata");
    CUDA_STEP(cudaMalloc((void **)&st->meta_dev, st->meta_capacity * sizeof(int32_t)), "step metadata");
    CUDA_STEP(cudaMallocHost((void **)&st->out_host, (1 + 2 * T) * sizeof(int32_t)), "pinned step results");

    /* Split-K partials for the largest decode launch: attn_ws_tokens tokens
     * at a time, each cut into cuda_decode_partitions(tokens) parts. */
    int32_t max_heads = 0;
    for (int32_t v = 0; v < st->graph->num_nodes; v++)
        if (st->graph->nodes[v].op == LLMRT_OP_ATTENTION && st->graph->nodes[v].iattr[1] > max_heads)
            max_heads = (int32_t)st->graph->nodes[v].iattr[1];
    st->attn_ws_tokens = plan->max_batch > 64 ? plan->max_batch : 64;
    if (st->attn_ws_tokens > plan->max_num_tokens) st->attn_ws_tokens = plan->max_num_tokens;
    if (max_heads > 0) {
        size_t units = 0; /* token × partition pairs */
        for (int64_t n = 1; n <= st->attn_ws_tokens; n++) {
            const size_t u = (size_t)n * cuda_decode_partitions(n, max_heads, plan->kv_heads);
            if (u > units) units = u;
        }
        CUDA_STEP(cudaMalloc(&st->attn_ws, cuda_decode_workspace_bytes((int64_t)units, max_heads, plan->head_dim, 1)),
                  "attention workspace");
        CUDA_STEP(cudaMalloc((void **)&st->rope_table, T * (size_t)(plan->head_dim / 2 + 1) * 2 * sizeof(float)),
                  "RoPE table");
        const size_t counters = (size_t)st->attn_ws_tokens * max_heads * sizeof(int32_t);
        CUDA_STEP(cudaMalloc((void **)&st->attn_counters, counters), "attention counters");
        CUDA_STEP(cudaMemset(st->attn_counters, 0, counters), "attention counters");
        CUDA_STEP(cudaMalloc((void **)&st->attn_early, 2 * sizeof(int32_t)), "attention flags");
        CUDA_STEP(cudaMemset(st->attn_early, 0, 2 * sizeof(int32_t)), "attention flags");
        st->attn_heads = max_heads;
        if (st->settings.attn_wide)
            st->attn_wide_slots = cuda_decode_wide_slots(st->act_type, max_heads, plan->kv_heads, plan->head_dim);
    }
    if (plan->output_logits >= 0 && cuda_value_type(st, plan->output_logits) != LLMRT_DTYPE_F32)
        CUDA_STEP(cudaMalloc((void **)&st->logits_dev, T * (size_t)plan->vocab_size * sizeof(float)), "logits buffer");

    STEP(allocate_kv_cache(st, config));
    if (config->verbose)
        LLMRT_INFO("cuda: weights %.1f MiB, activations %.1f MiB, KV cache %.1f MiB (%d blocks of %d tokens, %s)",
                   st->weights_bytes / 1048576.0, st->arena_bytes / 1048576.0, st->kv_bytes / 1048576.0,
                   (int)st->kv_num_blocks, (int)st->kv_block_size,
                   llmrt_dtype_name(st->kv8_kind ? plan->kv_dtype : st->act_type));
    *out_state = st;
    return LLMRT_OK;
fail:
    cuda_destroy(st);
    return s;
#undef STEP
#undef CUDA_STEP
}

/* Lays out and fills the step's metadata in the pinned block; returns the
 * number of int32s to copy. The layout depends only on (T, S, L, tiles), so
 * a captured decode graph sees the same addresses at every replay. */
_Static_assert(sizeof(cuda_sample_row) % sizeof(int32_t) == 0, "sampling rows are carved in int32 words");

/* The rows' sampling parameters into `rows` (every row skipped when the
 * step samples nothing on the device); 1 if any row is sampled here. */
static llmrt_status fill_sampling(const llmrt_step *step, const float *logits, cuda_sample_row *rows, int *any) {
    const llmrt_step_sampling *sampling = step->num_logits > 0 ? step->sampling : NULL;
    *any = 0;
    if (sampling && (!sampling->rows || !sampling->ids || !sampling->logprobs))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: step sampling without rows or outputs");
    for (int32_t l = 0; l < step->num_logits; l++) {
        cuda_sample_row *p = &rows[l];
        memset(p, 0, sizeof *p);
        p->skip = 1;
        if (!sampling) continue;
        const llmrt_row_sampling *r = &sampling->rows[l];
        p->temperature = r->temperature;
        p->top_p = r->top_p;
        p->min_p = r->min_p;
        p->uniform = r->uniform;
        p->top_k = r->top_k;
        p->skip = r->host_logits != 0;
        if (p->skip && !logits) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: a host row but no logits buffer");
        *any |= !p->skip;
    }
    return LLMRT_OK;
}

static llmrt_status build_metadata(cuda_state *st, const llmrt_step *step, const float *logits, size_t *out_count) {
    const llmrt_plan *plan = st->plan;
    const int32_t T = step->num_tokens, S = step->num_seqs, L = step->num_logits;
    int32_t *h = st->meta_host;
    size_t at = 0;
#define CARVE(name, count)                     \
    const size_t name = at;                    \
    at += align_up((size_t)(count), META_ALIGN)
    CARVE(off_tokens, T);
    CARVE(off_positions, T);
    CARVE(off_seq, T);
    CARVE(off_slots, T);
    CARVE(off_logits, L > 0 ? L : 1);
    CARVE(off_out, 1 + 2 * (size_t)L); /* flag, ids, logprobs: copied back in one piece */
    CARVE(off_sample, sizeof(cuda_sample_row) / sizeof(int32_t) * (size_t)L);
    CARVE(off_tables, (size_t)S * st->bt_stride);
    CARVE(off_decode, T);
    CARVE(off_sequence_end, T);
    CARVE(off_token_types, T);
    const size_t off_tiles = at;
#undef CARVE
    memcpy(h + off_tokens, step->token_ids, (size_t)T * sizeof(int32_t));
    memcpy(h + off_positions, step->positions, (size_t)T * sizeof(int32_t));
    if (step->token_type_ids) memcpy(h + off_token_types, step->token_type_ids, (size_t)T * sizeof(int32_t));
    else memset(h + off_token_types, 0, (size_t)T * sizeof(int32_t));
    if (L > 0) memcpy(h + off_logits, step->logits_indices, (size_t)L * sizeof(int32_t));
    h[off_out] = INT32_MAX;
    LLMRT_TRY(fill_sampling(step, logits, (cuda_sample_row *)(h + off_sample), &st->sample_any));
    memset(h + off_tables, 0, (size_t)S * st->bt_stride * sizeof(int32_t));

    /* A mixed step's attention: sequences with one token in the step go to
     * the decode kernel (listed at off_decode), longer chunks to prefill tiles. */
    const int decode_step = T == S;
    int32_t num_tiles = 0, num_decode = 0, step_max = 0;
    for (int32_t s = 0; s < S; s++) {
        const int32_t begin = step->seq_start[s], end = step->seq_start[s + 1];
        if (begin < 0 || end <= begin || end > T)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: sequence %d has rows [%d, %d) of a %d-token step",
                               (int)s, (int)begin, (int)end, (int)T);
        int32_t seq_max = 0, seq_min = INT32_MAX;
        for (int32_t t = begin; t < end; t++) {
            const int32_t pos = step->positions[t];
            if (pos < 0 || pos >= plan->max_seq_len)
                return llmrt_error(LLMRT_ERR_CAPACITY, "cuda: token %d of sequence %d at position %d (max_seq_len %d)",
                                   (int)t, (int)s, (int)pos, (int)plan->max_seq_len);
            if (pos > seq_max) seq_max = pos;
            if (pos < seq_min) seq_min = pos;
        }
        /* a sliding-window plan never reads the blocks before the window:
         * their slots (-1, freed) become block 0 on the device */
        const int32_t first_block = plan->kv_window > 0 && seq_min + 1 > plan->kv_window
                                        ? (seq_min + 1 - plan->kv_window) / st->kv_block_size : 0;
        if (seq_max > step_max) step_max = seq_max;
        const int32_t blocks_needed = seq_max / st->kv_block_size + 1;
        if (blocks_needed > step->max_blocks_per_seq)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                               "cuda: sequence %d reaches position %d but its block table holds %d blocks", (int)s,
                               (int)seq_max, (int)step->max_blocks_per_seq);
        const int32_t *row = step->block_tables + (size_t)s * step->max_blocks_per_seq;
        for (int32_t b = 0; b < blocks_needed; b++) {
            if (b < first_block && row[b] < 0) {
                h[off_tables + (size_t)s * st->bt_stride + b] = 0;
                continue;
            }
            if (row[b] < 0 || row[b] >= st->kv_num_blocks)
                return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: sequence %d block %d is %d (cache has %d blocks)",
                                   (int)s, (int)b, (int)row[b], (int)st->kv_num_blocks);
            h[off_tables + (size_t)s * st->bt_stride + b] = row[b];
        }
        for (int32_t t = begin; t < end; t++) {
            const int32_t pos = step->positions[t];
            h[off_seq + t] = s;
            h[off_slots + t] = row[pos / st->kv_block_size] * st->kv_block_size + pos % st->kv_block_size;
        }
        for (int32_t t = begin; t < end; t++) h[off_sequence_end + t] = step->positions[end - 1];
        if (end - begin == 1 && !decode_step) h[off_decode + num_decode++] = begin;
        for (int32_t r = begin; r < end && end - begin > 1; r += CUDA_PREFILL_TILE_M) {
            h[off_tiles + 2 * (size_t)num_tiles] = r;
            h[off_tiles + 2 * (size_t)num_tiles + 1] = end - r < CUDA_PREFILL_TILE_M ? end - r : CUDA_PREFILL_TILE_M;
            num_tiles++;
        }
    }
    *out_count = off_tiles + 2 * (size_t)num_tiles;
    if (*out_count > st->meta_capacity) return llmrt_error(LLMRT_ERR_INTERNAL, "cuda: step metadata overflow");

    int32_t *d = st->meta_dev;
    st->T = T;
    st->L = L;
    st->decode_step = decode_step;
    st->out_dev = d + off_out;
    st->sample_dev = (cuda_sample_row *)(d + off_sample);
    st->sample_host = (cuda_sample_row *)(h + off_sample);
    st->decode_list = d + off_decode;
    st->num_decode_list = num_decode;
    cuda_attention_batch *b = &st->batch;
    b->num_tokens = T;
    b->num_seqs = S;
    b->positions = d + off_positions;
    b->token_seq = d + off_seq;
    b->slot_mapping = d + off_slots;
    b->block_tables = d + off_tables;
    b->block_table_stride = st->bt_stride;
    b->block_size = st->kv_block_size;
    b->tiles = d + off_tiles;
    b->num_tiles = num_tiles;
    b->token_index = NULL;
    b->sequence_end_positions = d + off_sequence_end;
    /* the instance is part of a decode graph's key: chosen per step */
    b->wide = decode_step && st->attn_wide_slots > 0 &&
              cuda_decode_wide_fits(st->attn_wide_slots, T, st->attn_heads, plan->kv_heads,
                                    cuda_decode_partitions(T, st->attn_heads, plan->kv_heads), step_max + 1);
    if (plan->input_token_ids >= 0) st->node_ptr[plan->input_token_ids] = d + off_tokens;
    if (plan->input_positions >= 0) st->node_ptr[plan->input_positions] = d + off_positions;
    if (plan->input_logits_indices >= 0) st->node_ptr[plan->input_logits_indices] = d + off_logits;
    if (plan->input_token_type_ids >= 0) st->node_ptr[plan->input_token_type_ids] = d + off_token_types;
    /* views of a step input follow it */
    for (int32_t v = 0; v < st->graph->num_nodes; v++) {
        const llmrt_node *n = &st->graph->nodes[v];
        if (n->op == LLMRT_OP_VIEW && n->alias_of >= 0 && st->graph->nodes[n->alias_of].op == LLMRT_OP_INPUT)
            st->node_ptr[v] = st->node_ptr[n->alias_of];
    }
    return LLMRT_OK;
}

/* The step's kernels: the plan's nodes, then the device sampling of its
 * logits rows into out_dev (rows marked skip are left alone; a captured
 * graph always has the launch, so that one graph serves steps with and
 * without device-sampled rows). */
static llmrt_status run_step_kernels(cuda_state *st, int capturing) {
    LLMRT_TRY(cuda_run_nodes(st));
    if (st->L <= 0 || st->plan->output_logits < 0 || (!capturing && !st->sample_any)) return LLMRT_OK;
    const float *src = st->logits_dev ? st->logits_dev : (const float *)st->node_ptr[st->plan->output_logits];
    LLMRT_CUDA_TRY(cuda_sample(st->out_dev + 1, (float *)(st->out_dev + 1 + st->L), src, st->L,
                               (int64_t)st->plan->vocab_size, st->sample_dev, st->stream),
                   "sampling launch");
    return LLMRT_OK;
}

static llmrt_status run_step_graphed(cuda_state *st) {
    cuda_decode_graph *g = NULL;
    for (int i = 0; i < st->num_graphs; i++)
        if (st->graphs[i].num_tokens == st->T && st->graphs[i].num_logits == st->L &&
            st->graphs[i].wide == st->batch.wide)
            g = &st->graphs[i];
    if (!g) {
        if (st->num_graphs == CUDA_MAX_DECODE_GRAPHS) return run_step_kernels(st, 0); /* rare shapes run eagerly */
        /* Views and the metadata layout are fixed per shape, so the capture
         * stays valid for every later step of this shape. */
        LLMRT_CUDA_TRY(cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal), "graph capture begin");
        llmrt_status s = run_step_kernels(st, 1);
        cudaGraph_t graph = NULL;
        cudaError_t end_err = cudaStreamEndCapture(st->stream, &graph);
        if (s != LLMRT_OK) {
            if (graph) cudaGraphDestroy(graph);
            return s;
        }
        if (end_err != cudaSuccess) return llmrt_cuda_status(end_err, "decode graph capture");
        cudaGraphExec_t exec = NULL;
        cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        if (err != cudaSuccess) return llmrt_cuda_status(err, "decode graph instantiation");
        g = &st->graphs[st->num_graphs++];
        g->num_tokens = (int32_t)st->T;
        g->num_logits = (int32_t)st->L;
        g->wide = st->batch.wide;
        g->exec = exec;
    }
    LLMRT_CUDA_TRY(cudaGraphLaunch(g->exec, st->stream), "decode graph launch");
    return LLMRT_OK;
}

/* Enqueues the step's results back to the host in one copy (flag, ids,
 * logprobs), then the logits rows the host wants: every row without
 * device sampling, else the host_logits rows, in runs of consecutive rows. */
static llmrt_status download_results(cuda_state *st, const llmrt_step *step, float *logits) {
    const int32_t L = step->num_logits;
    const size_t words = 1 + (st->sample_any ? 2 * (size_t)L : 0);
    LLMRT_CUDA_TRY(cudaMemcpyAsync(st->out_host, st->out_dev, words * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                   st->stream),
                   "step results download");
    if (L <= 0 || !logits) return LLMRT_OK;
    const int sampled = step->sampling != NULL;
    const float *src = st->logits_dev ? st->logits_dev : (const float *)st->node_ptr[st->plan->output_logits];
    const size_t V = (size_t)st->plan->vocab_size;
    for (int32_t l = 0; l < L;) {
        if (sampled && !st->sample_host[l].skip) {
            l++;
            continue;
        }
        int32_t end = l + 1;
        while (end < L && (!sampled || st->sample_host[end].skip)) end++;
        LLMRT_CUDA_TRY(cudaMemcpyAsync(logits + (size_t)l * V, src + (size_t)l * V, (size_t)(end - l) * V * sizeof(float),
                                       cudaMemcpyDeviceToHost, st->stream),
                       "logits download");
        l = end;
    }
    return LLMRT_OK;
}

static llmrt_status cuda_forward(void *state, const llmrt_step *step, float *logits) {
    cuda_state *st = state;
    const llmrt_plan *plan = st->plan;
    if (!step || step->num_tokens < 1 || step->num_tokens > plan->max_num_tokens)
        return llmrt_error(LLMRT_ERR_CAPACITY, "cuda: step of %d tokens (engine max_num_tokens %d)",
                           step ? (int)step->num_tokens : 0, (int)plan->max_num_tokens);
    if (step->num_seqs < 1 || step->num_seqs > plan->max_batch || step->seq_start[0] != 0 ||
        step->seq_start[step->num_seqs] != step->num_tokens)
        return llmrt_error(LLMRT_ERR_CAPACITY, "cuda: step of %d sequences (engine max_batch %d) or bad seq_start",
                           (int)step->num_seqs, (int)plan->max_batch);
    if (step->num_logits < 0 || step->num_logits > step->num_tokens)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: %d logit rows for %d tokens", (int)step->num_logits,
                           (int)step->num_tokens);
    for (int32_t i = 0; i < step->num_logits; i++)
        if (step->logits_indices[i] < 0 || step->logits_indices[i] >= step->num_tokens)
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: logits index %d is %d (step of %d tokens)", (int)i,
                               (int)step->logits_indices[i], (int)step->num_tokens);
    LLMRT_CUDA_TRY(cudaSetDevice(st->device), "cudaSetDevice");
    st->logits_by_caller = step->logits_by_caller;
    size_t count = 0;
    LLMRT_TRY(build_metadata(st, step, logits, &count));
    LLMRT_CUDA_TRY(cudaMemcpyAsync(st->meta_dev, st->meta_host, count * sizeof(int32_t), cudaMemcpyHostToDevice,
                                   st->stream),
                   "step metadata upload");
    cuda_fusion_select(st, step->num_tokens);
    /* collectives wait on the host: a tensor-parallel plan runs eagerly */
    llmrt_status s = st->settings.graphs && st->decode_step && !st->comm ? run_step_graphed(st)
                                                                           : run_step_kernels(st, 0);
    if (s == LLMRT_OK) s = download_results(st, step, logits);
    if (s != LLMRT_OK) {
        cudaStreamSynchronize(st->stream);
        return s;
    }
    LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "forward step");
    if (st->out_host[0] != INT32_MAX) {
        const int32_t t = st->out_host[0];
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: token %d of the step has id %d, outside the vocabulary",
                           (int)t, t < step->num_tokens ? (int)step->token_ids[t] : -1);
    }
    if (st->sample_any) {
        /* rows sampled on the host keep what the runtime put there */
        const int32_t L = step->num_logits;
        const float *lp = (const float *)(st->out_host + 1 + L);
        for (int32_t l = 0; l < L; l++)
            if (!st->sample_host[l].skip) {
                step->sampling->ids[l] = st->out_host[1 + l];
                step->sampling->logprobs[l] = lp[l];
            }
    }
    return LLMRT_OK;
}

static llmrt_status cuda_copy_kv_block(void *state, int32_t src_block, int32_t dst_block) {
    cuda_state *st = state;
    if (src_block < 0 || src_block >= st->kv_num_blocks || dst_block < 0 || dst_block >= st->kv_num_blocks)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: copy_kv_block %d -> %d (cache has %d blocks)",
                           (int)src_block, (int)dst_block, (int)st->kv_num_blocks);
    if (src_block == dst_block) return LLMRT_OK;
    const size_t elsize = st->kv8_kind ? 1 : llmrt_dtype_size(st->act_type);
    const size_t block_bytes = (size_t)st->kv_block_size * st->plan->kv_heads * st->plan->head_dim * elsize;
    const size_t layer_bytes = st->kv_layer_elems * elsize;
    for (int32_t l = 0; l < 2 * st->plan->num_kv_layers; l++) { /* K and V of every layer */
        unsigned char *base = (unsigned char *)st->kv + (size_t)l * layer_bytes;
        LLMRT_CUDA_TRY(cudaMemcpyAsync(base + (size_t)dst_block * block_bytes, base + (size_t)src_block * block_bytes,
                                       block_bytes, cudaMemcpyDeviceToDevice, st->stream),
                       "KV block copy");
    }
    if (st->kv8_kind) { /* and the blocks' scales */
        const size_t block_scales = (size_t)st->kv_block_size * st->plan->kv_heads;
        const size_t layer_scales = st->kv_layer_elems / (size_t)st->plan->head_dim;
        for (int32_t l = 0; l < 2 * st->plan->num_kv_layers; l++) {
            float *base = st->kv_scales + (size_t)l * layer_scales;
            LLMRT_CUDA_TRY(cudaMemcpyAsync(base + (size_t)dst_block * block_scales, base + (size_t)src_block * block_scales,
                                           block_scales * sizeof(float), cudaMemcpyDeviceToDevice, st->stream),
                           "KV block copy (scales)");
        }
    }
    LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "KV block copy");
    return LLMRT_OK;
}

static llmrt_status cuda_read_observer(void *state, llmrt_value node, float *out) {
    cuda_state *st = state;
    if (node < 0 || node >= st->graph->num_nodes || st->graph->nodes[node].op != LLMRT_OP_OBSERVE)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "cuda: node %d is not an OBSERVE node", (int)node);
    LLMRT_CUDA_TRY(cudaSetDevice(st->device), "cudaSetDevice");
    LLMRT_CUDA_TRY(cudaStreamSynchronize(st->stream), "calibration step");
    LLMRT_CUDA_TRY(cudaMemcpy(out, st->node_ptr[node], (size_t)st->graph->nodes[node].dims[0] * sizeof(float),
                              cudaMemcpyDeviceToHost),
                   "calibration statistics download");
    return LLMRT_OK;
}

static void cuda_memory_report(void *state, llmrt_memory_report *out) {
    const cuda_state *st = state;
    memset(out, 0, sizeof *out);
    out->weight_bytes = st->weights_bytes;
    out->activation_bytes = st->arena_bytes;
    out->kv_cache_bytes = st->kv_bytes;
    out->kv_num_blocks = st->kv_num_blocks;
    out->kv_block_size = st->kv_block_size;
}

static void *cuda_host_alloc(void *state, size_t bytes) {
    (void)state;
    void *p = NULL;
    return cudaMallocHost(&p, bytes ? bytes : 1) == cudaSuccess ? p : NULL;
}

static void cuda_host_free(void *state, void *ptr) {
    (void)state;
    if (ptr) cudaFreeHost(ptr);
}

const llmrt_backend_ops llmrt_cuda_backend_ops = {
    .name = "cuda",
    .create = cuda_create,
    .forward = cuda_forward,
    .copy_kv_block = cuda_copy_kv_block,
    .memory_report = cuda_memory_report,
    .destroy = cuda_destroy,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .device_sampling = 1,
    .read_observer = cuda_read_observer,
};
