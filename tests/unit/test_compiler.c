/* Graph API shape rules, the fusion passes (what they match, and that fused
 * and unfused plans compute the same logits), and the memory planner's
 * invariant (no two buffers that are live at once overlap). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "compiler/compiler.h"
#include "compiler/passes.h"
#include "llmrt/llmrt.h"
#include "models/models.h"
#include "test_util.h"

static void test_shapes(void) {
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F16);
    int64_t tx[2] = {LLMRT_DIM_TOKENS, 8}, w_dims[2] = {16, 8}, v_dims[1] = {8}, bad_dims[1] = {5};
    llmrt_value x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, tx);
    llmrt_value w = llmrt_weight(g, "w", 2, w_dims);
    llmrt_value b = llmrt_weight(g, "b", 1, v_dims);
    CHECK(g->nodes[w].dtype == LLMRT_DTYPE_F16 && g->nodes[b].dtype == LLMRT_DTYPE_F32);
    llmrt_value y = llmrt_matmul(g, x, w, 1);
    CHECK(g->nodes[y].dims[0] == LLMRT_DIM_TOKENS && g->nodes[y].dims[1] == 16);
    llmrt_value s = llmrt_add(g, x, b);
    CHECK(g->nodes[s].ndim == 2 && g->nodes[s].dims[1] == 8);
    llmrt_value m = llmrt_mean(g, x);
    CHECK(g->nodes[m].dims[1] == 1);
    int64_t heads[3] = {LLMRT_DIM_TOKENS, 2, 4};
    llmrt_value v = llmrt_view(g, x, 3, heads);
    CHECK(v != LLMRT_NO_VALUE && g->nodes[v].ndim == 3);
    CHECK(llmrt_graph_status(g) == LLMRT_OK);
    /* a bad op records the first error and poisons later ops */
    llmrt_value bad = llmrt_add(g, x, llmrt_weight(g, "bad", 1, bad_dims));
    CHECK(bad == LLMRT_NO_VALUE);
    CHECK(llmrt_matmul(g, x, w, 1) == LLMRT_NO_VALUE);
    CHECK(llmrt_graph_status(g) == LLMRT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(llmrt_last_error(), "do not broadcast") != NULL);
    llmrt_graph_free(g);

    g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, tx);
    CHECK(llmrt_matmul(g, x, llmrt_weight(g, "w", 2, w_dims), 0) == LLMRT_NO_VALUE);
    CHECK(strstr(g->error, "inner dims differ") != NULL);
    llmrt_graph_free(g);

    g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, tx);
    int64_t swapped[2] = {8, LLMRT_DIM_TOKENS};
    CHECK(llmrt_view(g, x, 2, (int64_t[]){LLMRT_DIM_TOKENS, 9}) == LLMRT_NO_VALUE);
    llmrt_graph_free(g);
    g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, tx);
    CHECK(llmrt_view(g, x, 2, swapped) != LLMRT_NO_VALUE); /* same symbols and count: allowed */
    CHECK(llmrt_slice(g, x, 1, 4, 5) == LLMRT_NO_VALUE);   /* past the end */
    llmrt_graph_free(g);
}

static llmrt_model_config tiny_config(const char *arch) {
    llmrt_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.architecture, sizeof c.architecture, "%s", arch);
    c.vocab_size = 61;
    c.hidden_size = 32;
    c.num_layers = 3;
    c.num_heads = 4;
    c.num_kv_heads = strcmp(arch, "GPT2LMHeadModel") == 0 ? 4 : 2;
    c.head_dim = 8;
    c.intermediate_size = 40;
    c.max_position_embeddings = 128;
    c.norm_eps = 1e-5f;
    c.activation = strcmp(arch, "GPT2LMHeadModel") == 0 ? LLMRT_ACT_GELU_TANH : LLMRT_ACT_SILU;
    c.tie_word_embeddings = strcmp(arch, "GPT2LMHeadModel") == 0;
    c.attention_bias = c.attention_out_bias = c.mlp_bias = strcmp(arch, "GPT2LMHeadModel") == 0;
    c.rope.type = strcmp(arch, "GPT2LMHeadModel") == 0 ? LLMRT_ROPE_NONE : LLMRT_ROPE_DEFAULT;
    c.rope.theta = 10000.0f;
    c.rope.rotary_dim = 8;
    c.bos_token_id = c.pad_token_id = -1;
    return c;
}

static llmrt_plan *compile(const llmrt_model_config *c, const char *disabled) {
    llmrt_compile_options o = {.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                               .max_num_tokens = 64, .max_batch = 4, .max_seq_len = 128,
                               .disabled_passes = disabled, .random_weights = 1, .seed = 3};
    llmrt_plan *plan = NULL;
    CHECK_OK(llmrt_compile(c, NULL, &o, &plan));
    return plan;
}

static int count_op(const llmrt_plan *p, llmrt_op op) {
    int n = 0;
    for (int32_t i = 0; i < p->graph->num_nodes; i++) n += p->graph->nodes[i].op == op;
    return n;
}

static void test_fusion_matches(void) {
    llmrt_model_config llama = tiny_config("LlamaForCausalLM");
    llmrt_plan *p = compile(&llama, NULL);
    if (!p) return;
    int L = llama.num_layers;
    CHECK_MSG(count_op(p, LLMRT_OP_RMSNORM) == 2 * L + 1, "rmsnorm %d", count_op(p, LLMRT_OP_RMSNORM));
    CHECK(count_op(p, LLMRT_OP_SILU_MUL) == L);
    CHECK(count_op(p, LLMRT_OP_LINEAR) == 7 * L + 1);
    CHECK(count_op(p, LLMRT_OP_MUL) == 0 && count_op(p, LLMRT_OP_SIGMOID) == 0 && count_op(p, LLMRT_OP_RSQRT) == 0);
    llmrt_plan_free(p);

    llmrt_model_config gpt2 = tiny_config("GPT2LMHeadModel");
    p = compile(&gpt2, NULL);
    if (!p) return;
    CHECK(count_op(p, LLMRT_OP_LAYERNORM) == 2 * L + 1);
    CHECK(count_op(p, LLMRT_OP_GELU_TANH) == L);
    CHECK(count_op(p, LLMRT_OP_TANH) == 0 && count_op(p, LLMRT_OP_POW) == 0);
    /* Conv1D weights were re-laid out: every matmul is now a LINEAR */
    CHECK(count_op(p, LLMRT_OP_MATMUL) == 0);
    llmrt_plan_free(p);

    p = compile(&llama, "fuse_rmsnorm,fuse_activations,fuse_silu_mul,fuse_linear");
    if (!p) return;
    CHECK(count_op(p, LLMRT_OP_RMSNORM) == 0 && count_op(p, LLMRT_OP_SIGMOID) == L);
    llmrt_plan_free(p);
}

/* The memory planner's invariant, checked over every pair of buffers. */
static void check_no_overlap(const llmrt_plan *p) {
    const llmrt_graph *g = p->graph;
    int32_t n = g->num_nodes;
    int32_t *last = malloc((size_t)n * sizeof *last);
    for (int32_t i = 0; i < n; i++) last[i] = g->nodes[i].op == LLMRT_OP_INPUT || g->nodes[i].is_output ? n : i;
    for (int32_t i = 0; i < n; i++)
        for (int32_t j = 0; j < g->nodes[i].num_inputs; j++) {
            llmrt_value in = g->nodes[i].inputs[j];
            llmrt_value root = g->nodes[in].alias_of >= 0 ? g->nodes[in].alias_of : in;
            if (last[root] < i) last[root] = i;
        }
    int violations = 0;
    for (int32_t a = 0; a < n; a++) {
        const llmrt_node *x = &g->nodes[a];
        if (x->arena_offset < 0 || x->alias_of >= 0) continue;
        size_t xs = llmrt_node_bytes(x, p->max_num_tokens, p->max_num_tokens);
        CHECK(x->arena_offset + (int64_t)xs <= (int64_t)p->arena_bytes);
        for (int32_t b = a + 1; b < n; b++) {
            const llmrt_node *y = &g->nodes[b];
            if (y->arena_offset < 0 || y->alias_of >= 0) continue;
            size_t ys = llmrt_node_bytes(y, p->max_num_tokens, p->max_num_tokens);
            int lifetimes_overlap = b <= last[a]; /* b is written while a is still read */
            int ranges_overlap = x->arena_offset < y->arena_offset + (int64_t)ys &&
                                 y->arena_offset < x->arena_offset + (int64_t)xs;
            if (lifetimes_overlap && ranges_overlap) violations++;
        }
    }
    CHECK_MSG(violations == 0, "%d overlapping live buffers", violations);
    CHECK(p->arena_bytes < p->naive_arena_bytes / 2);
    free(last);
}

static void test_memory_plan(void) {
    const char *archs[] = {"LlamaForCausalLM", "GPT2LMHeadModel"};
    for (int i = 0; i < 2; i++) {
        llmrt_model_config c = tiny_config(archs[i]);
        llmrt_plan *p = compile(&c, NULL);
        if (p) check_no_overlap(p);
        llmrt_plan_free(p);
        p = compile(&c, "fuse_rmsnorm,fuse_layernorm,fuse_activations,fuse_silu_mul,fuse_linear");
        if (p) check_no_overlap(p);
        llmrt_plan_free(p);
    }
}

/* Fused and unfused engines from the same random weights agree. */
static void test_fused_equals_unfused(void) {
    char *dir = test_temp_dir();
    const char *configs[] = {
        "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":40,"
        "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":1,\"vocab_size\":61,"
        "\"max_position_embeddings\":128,\"rms_norm_eps\":1e-6,\"rope_theta\":10000}",
        "{\"architectures\":[\"GPT2LMHeadModel\"],\"model_type\":\"gpt2\",\"n_embd\":32,\"n_layer\":2,\"n_head\":4,"
        "\"vocab_size\":61,\"n_positions\":128,\"layer_norm_epsilon\":1e-5,\"activation_function\":\"gelu_new\"}",
    };
    for (int c = 0; c < 2; c++) {
        char config_path[512], fused_path[512], unfused_path[512];
        snprintf(config_path, sizeof config_path, "%s/config%d.json", dir, c);
        snprintf(fused_path, sizeof fused_path, "%s/fused%d.engine", dir, c);
        snprintf(unfused_path, sizeof unfused_path, "%s/unfused%d.engine", dir, c);
        FILE *f = fopen(config_path, "w");
        fputs(configs[c], f);
        fclose(f);
        llmrt_build_options o;
        llmrt_build_options_init(&o);
        o.config_path = config_path;
        o.random_weights = 1;
        o.max_seq_len = 96;
        /* chunks of 32 tokens = hidden size: a [T, 1] statistic and a [D]
         * gain then have the same element count (a past CPU bug) */
        o.max_num_tokens = 32;
        o.output_path = fused_path;
        CHECK_OK(llmrt_build(&o));
        o.output_path = unfused_path;
        o.disabled_passes = "fuse_rmsnorm,fuse_layernorm,fuse_activations,fuse_silu_mul,fuse_linear";
        CHECK_OK(llmrt_build(&o));
        llmrt_engine *a = NULL, *b = NULL;
        CHECK_OK(llmrt_engine_load(fused_path, NULL, &a));
        CHECK_OK(llmrt_engine_load(unfused_path, NULL, &b));
        if (!a || !b) continue;
        int32_t ids[40];
        uint64_t state = 99 + (uint64_t)c;
        for (int i = 0; i < 40; i++) ids[i] = (int32_t)(test_rand_u64(&state) % 61);
        float *la = malloc(40 * 61 * sizeof *la), *lb = malloc(40 * 61 * sizeof *lb);
        CHECK_OK(llmrt_prompt_logits(a, ids, 40, la));
        CHECK_OK(llmrt_prompt_logits(b, ids, 40, lb));
        double err = test_rel_l2(la, lb, 40 * 61);
        CHECK_MSG(err < 1e-5, "config %d: fused vs unfused rel L2 %.3g", c, err);
        free(la);
        free(lb);
        llmrt_engine_free(a);
        llmrt_engine_free(b);
        remove(fused_path);
        remove(unfused_path);
        remove(config_path);
    }
    rmdir(dir);
    free(dir);
}

int main(void) {
    RUN_TEST(test_shapes);
    RUN_TEST(test_fusion_matches);
    RUN_TEST(test_memory_plan);
    RUN_TEST(test_fused_equals_unfused);
    return test_finish();
}
