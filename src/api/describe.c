/* llmrt_engine_describe: the summary `llmrt inspect` prints, of the engine
 * as built or as it runs on another backend. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/describe_internal.h"
#include "backends/backend.h"
#include "compiler/passes.h"
#include "compiler/retarget.h"
#include "engine/engine_file.h"
#include "llmrt/llmrt.h"
#include "models/models.h"

typedef struct text {
    char *data;
    size_t size, capacity;
} text;

static void append(text *t, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char buf[1024];
    int n = vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    if (t->size + (size_t)n + 1 > t->capacity) {
        size_t capacity = (t->capacity + (size_t)n + 1) * 2;
        char *grown = realloc(t->data, capacity);
        if (!grown) return;
        t->data = grown;
        t->capacity = capacity;
    }
    memcpy(t->data + t->size, buf, (size_t)n + 1);
    t->size += (size_t)n;
}

static void count_ops(const llmrt_graph *g, int32_t *counts, int32_t *kernels) {
    memset(counts, 0, LLMRT_OP_COUNT * sizeof *counts);
    *kernels = 0;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        llmrt_op op = g->nodes[i].op;
        counts[op]++;
        if (op != LLMRT_OP_INPUT && op != LLMRT_OP_WEIGHT && op != LLMRT_OP_CONSTANT && op != LLMRT_OP_VIEW) (*kernels)++;
    }
}

/* This rank and the rank count of a tensor-parallel plan (its weight
 * shards say which part they are); ranks 1 when it is not split. */
static void tensor_parallel_rank(const llmrt_graph *g, int32_t *rank, int32_t *ranks) {
    *rank = 0;
    *ranks = 1;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op == LLMRT_OP_WEIGHT && n->iattr[6] > 1) {
            *rank = (int32_t)n->iattr[5];
            *ranks = (int32_t)n->iattr[6];
            return;
        }
    }
}

/* The stage and stage count of a pipeline-parallel plan (its SEND/RECV
 * nodes carry the stage and the rank count, tp_size ranks a stage);
 * stages 1 when it is not split. */
static void pipeline_stage(const llmrt_graph *g, int32_t tp_size, int32_t *stage, int32_t *stages) {
    *stage = 0;
    *stages = 1;
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op == LLMRT_OP_SEND || n->op == LLMRT_OP_RECV) {
            *stage = (int32_t)n->iattr[2];
            *stages = (int32_t)n->iattr[1] / tp_size;
            return;
        }
    }
}

static double mib(uint64_t bytes) { return (double)bytes / 1048576.0; }

/* The backends the engine runs on: the one it was built for, and each
 * other its plan retargets to (compiler/retarget.h), else why not. */
static void describe_backends(text *t, const llmrt_engine_image *img, const char *shown_on) {
    static const char *const targets[] = {"cpu", "cuda"};
    char runs[32] = "", why[512] = "";
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        if (strcmp(targets[i], img->backend) == 0 || llmrt_plan_check_target(img->plan, targets[i]) == LLMRT_OK) {
            size_t used = strlen(runs);
            snprintf(runs + used, sizeof runs - used, "%s%s", used ? ", " : "", targets[i]);
        } else {
            size_t used = strlen(why);
            snprintf(why + used, sizeof why - used, "; not on %s: %s", targets[i], llmrt_last_error());
        }
    }
    append(t, "backends      built for %s; runs on %s%s", img->backend, runs, why);
    if (strcmp(shown_on, img->backend) != 0) append(t, "; shown as on %s", shown_on);
    append(t, "\n");
}

llmrt_status llmrt_engine_describe(const char *path, char **out_text) {
    return llmrt_engine_describe_on(path, NULL, out_text);
}

llmrt_status llmrt_engine_file_ranks(const char *path, int32_t *out_ranks) {
    *out_ranks = 0;
    llmrt_engine_image *img;
    LLMRT_TRY(llmrt_engine_image_open(path, 0, &img));
    *out_ranks = llmrt_plan_tp_ranks(img->plan);
    llmrt_engine_image_close(img);
    return LLMRT_OK;
}

llmrt_status llmrt_engine_describe_on(const char *path, const char *backend, char **out_text) {
    *out_text = NULL;
    if (backend && *backend && !llmrt_target_known(backend))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "unknown backend '%s' (cpu, cuda)", backend);
    llmrt_engine_image *img;
    LLMRT_TRY(llmrt_engine_image_open(path, 1, &img));
    const llmrt_model_config *c = &img->config;
    const llmrt_plan *plan = img->plan;
    text t = {0};
    append(&t, "engine        %s (format v%u)\n", path, img->format_version);
    const char *shown_on = backend && *backend ? backend : img->backend;
    describe_backends(&t, img, shown_on);
    if (strcmp(shown_on, img->backend) != 0) {
        llmrt_status s = llmrt_plan_retarget(img->plan, shown_on);
        if (s != LLMRT_OK) {
            llmrt_error_context(s, "%s: built for %s, cannot run on %s", path, img->backend, shown_on);
            free(t.data);
            llmrt_engine_image_close(img);
            return s;
        }
    }
    append(&t, "model         %s%s%s%s\n", c->architecture, c->model_type[0] ? " (" : "", c->model_type,
           c->model_type[0] ? ")" : "");
    append(&t, "source        %s\n", img->source);
    append(&t, "dims          hidden %d, layers %d, heads %d, kv heads %d, head dim %d, intermediate %d, vocab %d\n",
           c->hidden_size, c->num_layers, c->num_heads, c->num_kv_heads, c->head_dim, c->intermediate_size,
           c->vocab_size);
    if (c->num_experts > 0)
        append(&t, "experts       %d per MLP, top %d a token\n", c->num_experts, c->num_experts_per_tok);
    static const char *const rope_names[] = {"none", "default", "linear", "llama3", "longrope"};
    append(&t, "positions     rope %s (theta %g, rotary dim %d), max positions %d\n",
           (unsigned)c->rope.type < 5 ? rope_names[c->rope.type] : "?", (double)c->rope.theta, c->rope.rotary_dim,
           c->max_position_embeddings);
    if (c->sliding_window > 0 || c->attn_logit_softcapping > 0.0f || c->alibi_max_bias > 0.0f ||
        c->query_pre_attn_scalar > 0.0f || c->final_logit_softcapping > 0.0f) {
        const char *sep = " ";
        append(&t, "attention    ");
        if (c->sliding_window > 0 && c->sliding_window_pattern > 0)
            append(&t, "%swindow %d, one global layer in %d", sep, c->sliding_window, c->sliding_window_pattern),
                sep = ", ";
        else if (c->sliding_window > 0)
            append(&t, "%swindow %d, KV blocks behind it freed", sep, c->sliding_window), sep = ", ";
        if (c->rope_local_theta > 0.0f)
            append(&t, "%slocal rope theta %g", sep, (double)c->rope_local_theta), sep = ", ";
        if (c->query_pre_attn_scalar > 0.0f)
            append(&t, "%sscale 1/sqrt(%g)", sep, (double)c->query_pre_attn_scalar), sep = ", ";
        if (c->attn_logit_softcapping > 0.0f)
            append(&t, "%sscore soft-cap %g", sep, (double)c->attn_logit_softcapping), sep = ", ";
        if (c->final_logit_softcapping > 0.0f)
            append(&t, "%slogit soft-cap %g", sep, (double)c->final_logit_softcapping), sep = ", ";
        if (c->alibi_max_bias > 0.0f) append(&t, "%sALiBi (max bias %g)", sep, (double)c->alibi_max_bias);
        append(&t, "\n");
    }
    if (llmrt_model_is_encoder(c->architecture)) {
        const llmrt_encoder_row_layout row = llmrt_encoder_layout(c);
        append(&t, "encoder       non-causal; output rows: hidden %d, pooled %d, labels %d; token types %d\n",
               row.hidden, row.pooled, row.labels, c->type_vocab_size);
    }
    append(&t, "limits        max_seq_len %d, max_batch %d, max_num_tokens %d\n", plan->max_seq_len, plan->max_batch,
           plan->max_num_tokens);
    append(&t, "dtypes        weights %s, activations %s\n", llmrt_dtype_name(img->dtype),
           llmrt_dtype_name(plan->graph->act_dtype));
    if (plan->kv_dtype == LLMRT_DTYPE_FP8_E4M3 || plan->kv_dtype == LLMRT_DTYPE_I8)
        append(&t, "kv cache      %s: 1-byte codes, an f32 scale per token and kv head (--kv-cache %s)\n",
               llmrt_dtype_name(plan->kv_dtype), plan->kv_dtype == LLMRT_DTYPE_I8 ? "int8" : "fp8");
    else
        append(&t, "kv cache      %s (the activation dtype)\n", llmrt_dtype_name(plan->graph->act_dtype));
    uint64_t by_dtype[LLMRT_DTYPE_COUNT];
    uint64_t total = llmrt_plan_weight_bytes(plan, by_dtype);
    append(&t, "weights       %.1f MiB in %d tensors:", mib(total), plan->num_weights);
    for (int i = 0; i < LLMRT_DTYPE_COUNT; i++)
        if (by_dtype[i]) append(&t, " %s %.1f MiB", llmrt_dtype_name((llmrt_dtype)i), mib(by_dtype[i]));
    append(&t, "\n");
    char *precision = llmrt_describe_precision(plan);
    if (precision) {
        append(&t, "precision     matrices by layer (/tensor: one weight scale a matrix; /static: calibrated "
                   "input scale)\n");
        /* each line separately: append() takes at most 1 KB at a time */
        char *save = NULL;
        for (char *line = strtok_r(precision, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            append(&t, "%s\n", line);
        free(precision);
    }
    append(&t, "checksums     header, sections and weights verified (XXH3-64)\n");
    append(&t, "activations   %.2f MiB arena (planned by liveness) vs %.2f MiB naive, for %d tokens\n",
           mib(plan->arena_bytes), mib(plan->naive_arena_bytes), plan->max_num_tokens);
    append(&t, "tokenizer     %s\n", img->tokenizer.data ? "embedded" : "none");
    append(&t, "eos ids      ");
    for (int32_t i = 0; i < c->num_eos_tokens; i++) append(&t, " %d", c->eos_token_ids[i]);
    append(&t, "%s\n", c->num_eos_tokens ? "" : " none");

    /* Kernel count before fusion: rebuild the unfused network from the config. */
    int32_t after[LLMRT_OP_COUNT], before[LLMRT_OP_COUNT], kernels_after, kernels_before = -1;
    count_ops(plan->graph, after, &kernels_after);
    int32_t tp_rank, tp_size;
    tensor_parallel_rank(plan->graph, &tp_rank, &tp_size);
    if (tp_size > 1) {
        append(&t, "parallel      tensor-parallel rank %d of %d (one engine file per rank: FILE, FILE.rank1, ...)\n",
               tp_rank, tp_size);
        /* fewer kv heads than ranks: each rank keeps a copy of one */
        const int32_t kv_per_rank = c->num_kv_heads >= tp_size ? c->num_kv_heads / tp_size : 1;
        append(&t, "              per rank: %d of %d query heads, %d of %d kv heads, %d of %d MLP columns, "
                   "%d of %d vocab rows of the embedding and LM head\n",
               c->num_heads / tp_size, c->num_heads, kv_per_rank, c->num_kv_heads,
               c->intermediate_size / tp_size, c->intermediate_size, c->vocab_size / tp_size, c->vocab_size);
        append(&t, "              collectives per step: all_reduce×%d (embedding, o_proj, down_proj), all_gather×%d "
                   "(logits)\n",
               after[LLMRT_OP_ALL_REDUCE], after[LLMRT_OP_ALL_GATHER]);
    }
    int32_t pp_stage, pp_stages;
    pipeline_stage(plan->graph, tp_size, &pp_stage, &pp_stages);
    if (pp_stages > 1) {
        llmrt_graph stage = {.pp_stage = pp_stage, .pp_stages = pp_stages};
        int32_t first, last;
        llmrt_model_stage_layers(&stage, c->num_layers, &first, &last);
        append(&t, "parallel      pipeline stage %d of %d: layers %d..%d of %d%s%s (one engine file per rank: FILE, "
                   "FILE.rank1, ...)\n",
               pp_stage, pp_stages, first, last - 1, c->num_layers, pp_stage == 0 ? ", the embedding" : "",
               pp_stage == pp_stages - 1 ? ", the LM head" : "");
    }
    const llmrt_model_family *family;
    if (llmrt_model_lookup(c->architecture, &family) == LLMRT_OK) {
        llmrt_graph *g = llmrt_graph_create(plan->graph->act_dtype, plan->graph->weight_dtype);
        if (g) {
            g->tp_rank = tp_rank;
            g->tp_size = tp_size;
            g->pp_stage = pp_stage;
            g->pp_stages = pp_stages;
            family->build(g, c);
            llmrt_pass_context ctx = {0};
            if (llmrt_graph_status(g) == LLMRT_OK && llmrt_pass_dead_code(g, &ctx) == LLMRT_OK)
                count_ops(g, before, &kernels_before);
            llmrt_graph_free(g);
        }
    }
    append(&t, "kernels       %d per step after fusion", kernels_after);
    if (kernels_before >= 0) append(&t, " (%d unfused)", kernels_before);
    append(&t, "\nops          ");
    for (int i = 0; i < LLMRT_OP_COUNT; i++)
        if (after[i] && i != LLMRT_OP_INPUT) append(&t, " %s×%d", llmrt_op_name((llmrt_op)i), after[i]);
    append(&t, "\n");
    /* the plugins the engine needs, each once, with the version it was built with */
    for (int32_t i = 0, listed = 0; i < plan->graph->num_nodes; i++) {
        const llmrt_node *n = &plan->graph->nodes[i];
        int seen = 0;
        for (int32_t j = 0; j < i && !seen && n->op == LLMRT_OP_PLUGIN; j++)
            seen = plan->graph->nodes[j].op == LLMRT_OP_PLUGIN && strcmp(plan->graph->nodes[j].name, n->name) == 0;
        if (n->op != LLMRT_OP_PLUGIN || seen) continue;
        append(&t, "%s %s v%lld", listed++ ? "," : "plugins      ", n->name, (long long)n->iattr[0]);
    }
    if (after[LLMRT_OP_PLUGIN]) append(&t, "\n");
    llmrt_engine_image_close(img);
    if (!t.data) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    *out_text = t.data;
    return LLMRT_OK;
}
