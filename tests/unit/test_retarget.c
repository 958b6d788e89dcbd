/* Retargeting plans between backends (compiler/retarget.h): a plan built for
 * one backend and retargeted to the other has, node for node, the dtypes
 * and arena offsets of a plan built for that other backend (every golden
 * family, 16-bit and quantized weights, both ways); what a backend lacks is
 * an error naming it and the backend; a retargeted plan survives its
 * verifier. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compiler.h"
#include "compiler/retarget.h"
#include "import/hf_config.h"
#include "llmrt/plugin.h"
#include "test_util.h"

#define CASES LLMRT_SOURCE_DIR "/tests/golden/cases"

static llmrt_plan *compile_for(const llmrt_model_config *config, const char *target, llmrt_dtype weights,
                               llmrt_dtype quant) {
    const int32_t seq = config->max_position_embeddings > 0 && config->max_position_embeddings < 64
                            ? config->max_position_embeddings
                            : 64;
    llmrt_compile_options o = {.target = target, .act_dtype = llmrt_target_act_dtype(target, weights),
                               .weight_dtype = weights, .max_num_tokens = 64, .max_batch = 4, .max_seq_len = seq,
                               .random_weights = 1, .seed = 7, .quant_dtype = quant,
                               .quant_group_size = quant == LLMRT_DTYPE_INT4_WO ? 32 : 0,
                               .quant_asymmetric = quant == LLMRT_DTYPE_INT4_WO, .kv_dtype = LLMRT_DTYPE_INVALID};
    llmrt_plan *plan = NULL;
    llmrt_status s = llmrt_compile(config, NULL, &o, &plan);
    CHECK_MSG(s == LLMRT_OK, "%s for %s: %s", config->architecture, target, llmrt_last_error());
    return s == LLMRT_OK ? plan : NULL;
}

/* `got` (retargeted) against `want` (built for that backend): the same
 * nodes with the same dtypes, the same arena. */
static void check_same_plan(const char *what, const llmrt_plan *got, const llmrt_plan *want) {
    const llmrt_graph *a = got->graph, *b = want->graph;
    CHECK_MSG(a->num_nodes == b->num_nodes && a->act_dtype == b->act_dtype, "%s: %d nodes in %s, %d in %s", what,
              a->num_nodes, llmrt_dtype_name(a->act_dtype), b->num_nodes, llmrt_dtype_name(b->act_dtype));
    if (a->num_nodes != b->num_nodes) return;
    int differ = 0;
    for (int32_t i = 0; i < a->num_nodes && differ < 3; i++) {
        const llmrt_node *x = &a->nodes[i], *y = &b->nodes[i];
        if (x->op == y->op && x->dtype == y->dtype && x->arena_offset == y->arena_offset) continue;
        differ++;
        CHECK_MSG(0, "%s: node %d (%s): %s at %lld, built %s (%s) at %lld", what, (int)i, llmrt_op_name(x->op),
                  llmrt_dtype_name(x->dtype), (long long)x->arena_offset, llmrt_op_name(y->op),
                  llmrt_dtype_name(y->dtype), (long long)y->arena_offset);
    }
    CHECK_MSG(got->arena_bytes == want->arena_bytes, "%s: arena %zu bytes, built %zu", what, got->arena_bytes,
              want->arena_bytes);
    CHECK_OK(llmrt_plan_verify(got));
}

static void check_both_ways(const llmrt_model_config *config, const char *name, llmrt_dtype weights,
                            llmrt_dtype quant) {
    llmrt_plan *cpu = compile_for(config, "cpu", weights, quant);
    llmrt_plan *cuda = compile_for(config, "cuda", weights, quant);
    char what[160];
    if (cpu && cuda) {
        snprintf(what, sizeof what, "%s %s%s%s: cuda -> cpu", name, llmrt_dtype_name(weights),
                 quant ? " " : "", quant ? llmrt_dtype_name(quant) : "");
        llmrt_plan *copy = compile_for(config, "cuda", weights, quant);
        if (copy) {
            CHECK_MSG(llmrt_plan_retarget(copy, "cpu") == LLMRT_OK, "%s: %s", what, llmrt_last_error());
            check_same_plan(what, copy, cpu);
            llmrt_plan_free(copy);
        }
        snprintf(what, sizeof what, "%s %s%s%s: cpu -> cuda", name, llmrt_dtype_name(weights),
                 quant ? " " : "", quant ? llmrt_dtype_name(quant) : "");
        CHECK_MSG(llmrt_plan_retarget(cpu, "cuda") == LLMRT_OK, "%s: %s", what, llmrt_last_error());
        check_same_plan(what, cpu, cuda);
    }
    llmrt_plan_free(cpu);
    llmrt_plan_free(cuda);
}

/* Every golden family with bf16 weights (activations f32 on the CPU, bf16
 * on CUDA), and a few with f16 and quantized weights. */
static void test_matches_native_builds(void) {
    DIR *dir = opendir(CASES);
    CHECK(dir != NULL);
    if (!dir) return;
    int families = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s/config.json", CASES, entry->d_name);
        llmrt_model_config config;
        if (llmrt_hf_config_load(path, &config) != LLMRT_OK) {
            CHECK_MSG(0, "%s: %s", path, llmrt_last_error());
            continue;
        }
        check_both_ways(&config, entry->d_name, LLMRT_DTYPE_BF16, LLMRT_DTYPE_INVALID);
        if (strcmp(entry->d_name, "llama_f32") == 0 || strcmp(entry->d_name, "qwen2_f32") == 0) {
            check_both_ways(&config, entry->d_name, LLMRT_DTYPE_F16, LLMRT_DTYPE_INVALID);
            check_both_ways(&config, entry->d_name, LLMRT_DTYPE_BF16, LLMRT_DTYPE_INT4_WO);
            check_both_ways(&config, entry->d_name, LLMRT_DTYPE_BF16, LLMRT_DTYPE_INT8_WO);
            check_both_ways(&config, entry->d_name, LLMRT_DTYPE_BF16, LLMRT_DTYPE_FP8_W8A8);
            check_both_ways(&config, entry->d_name, LLMRT_DTYPE_F32, LLMRT_DTYPE_INT4_WO);
        }
        families++;
    }
    closedir(dir);
    CHECK(families >= 30);
}

/* f32 weights compute in f32 on both backends: nothing to rewrite. */
static void test_f32_unchanged(void) {
    llmrt_model_config config;
    CHECK_OK(llmrt_hf_config_load(CASES "/llama_f32/config.json", &config));
    llmrt_plan *plan = compile_for(&config, "cuda", LLMRT_DTYPE_F32, LLMRT_DTYPE_INVALID);
    if (!plan) return;
    const size_t arena = plan->arena_bytes;
    CHECK_OK(llmrt_plan_retarget(plan, "cpu"));
    CHECK(plan->graph->act_dtype == LLMRT_DTYPE_F32 && plan->arena_bytes == arena);
    llmrt_plan_free(plan);
}

/* test.cuda_only: x → x, with a CUDA enqueue and none for the CPU */
static llmrt_status same_shape(const void *params, size_t size, const llmrt_plugin_shape *in, int32_t n,
                               llmrt_plugin_shape *out) {
    (void)params, (void)size;
    if (n != 1) return LLMRT_ERR_INVALID_ARGUMENT;
    *out = in[0];
    return LLMRT_OK;
}
static llmrt_status enqueue_cuda(const llmrt_plugin_call *call, void *stream) {
    (void)call, (void)stream;
    return LLMRT_OK;
}

enum { WITH_PLUGIN = 1, WITH_CAST = 2, WITH_GAIN = 4 };

/* token_ids → gather → [plugin] [cast to f16 and back] [· (1 + gain)] →
 * logits, built for `target` with bf16 weights. The gain is an f32 value
 * computed from a weight vector each step (the constant first: the graph
 * rules give it the weight's dtype), not an activation, on both backends. */
static llmrt_plan *small_plan(const char *target, int with) {
    const llmrt_dtype act = llmrt_target_act_dtype(target, LLMRT_DTYPE_BF16);
    llmrt_graph *g = llmrt_graph_create(act, LLMRT_DTYPE_BF16);
    const int64_t t[1] = {LLMRT_DIM_TOKENS}, l[1] = {LLMRT_DIM_LOGITS}, table[2] = {16, 8};
    llmrt_value ids = llmrt_input(g, "token_ids", LLMRT_DTYPE_I32, 1, t);
    llmrt_input(g, "positions", LLMRT_DTYPE_I32, 1, t);
    llmrt_value rows = llmrt_input(g, "logits_indices", LLMRT_DTYPE_I32, 1, l);
    llmrt_value emb = llmrt_weight(g, "emb", 2, table);
    llmrt_value x = llmrt_gather(g, emb, ids);
    if (with & WITH_PLUGIN) x = llmrt_plugin_op(g, "test.cuda_only", &x, 1, NULL, 0);
    if (with & WITH_CAST) x = llmrt_cast(g, llmrt_cast(g, x, LLMRT_DTYPE_F16), act);
    if (with & WITH_GAIN) {
        llmrt_value gain = llmrt_add(g, llmrt_scalar(g, 1.0f), llmrt_weight(g, "gain", 1, table + 1));
        x = llmrt_mul(g, x, gain);
    }
    llmrt_graph_mark_output(g, llmrt_matmul(g, llmrt_gather(g, x, rows), emb, 1));
    if (llmrt_graph_status(g) != LLMRT_OK) {
        CHECK_MSG(0, "%s", llmrt_last_error());
        llmrt_graph_free(g);
        return NULL;
    }
    llmrt_compile_options o = {.target = target, .act_dtype = act, .weight_dtype = LLMRT_DTYPE_BF16,
                               .max_num_tokens = 8, .max_batch = 1, .max_seq_len = 8, .random_weights = 1,
                               .quant_dtype = LLMRT_DTYPE_INVALID};
    llmrt_plan *plan = NULL;
    CHECK_OK(llmrt_compile_graph(g, NULL, &o, &plan));
    return plan;
}

static void test_what_a_backend_lacks(void) {
    llmrt_plugin p = {.abi_version = LLMRT_PLUGIN_ABI_VERSION, .name = "test.cuda_only", .version = 3,
                      .infer_shape = same_shape, .enqueue_cuda = enqueue_cuda};
    CHECK_OK(llmrt_plugin_register(&p));
    llmrt_plan *plan = small_plan("cuda", WITH_PLUGIN);
    if (plan) {
        CHECK_OK(llmrt_plan_check_target(plan, "cuda"));
        CHECK(llmrt_plan_check_target(plan, "cpu") == LLMRT_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(llmrt_last_error(), "plugin 'test.cuda_only' version 3") &&
                      strstr(llmrt_last_error(), "no CPU implementation"),
                  "%s", llmrt_last_error());
        CHECK(llmrt_plan_retarget(plan, "cpu") == LLMRT_ERR_UNSUPPORTED);
        CHECK(plan->graph->act_dtype == LLMRT_DTYPE_BF16); /* left as it was */
        CHECK(llmrt_plan_check_target(plan, "tpu") == LLMRT_ERR_INVALID_ARGUMENT);
        CHECK_MSG(strstr(llmrt_last_error(), "unknown backend 'tpu' (cpu, cuda)"), "%s", llmrt_last_error());
        llmrt_plan_free(plan);
    }
    /* the CPU casts only between equal dtypes and i32 to f32 */
    plan = small_plan("cuda", WITH_CAST);
    if (plan) {
        CHECK(llmrt_plan_retarget(plan, "cpu") == LLMRT_ERR_UNSUPPORTED);
        CHECK_MSG(strstr(llmrt_last_error(), "the cpu backend has no cast from f32 to f16"), "%s",
                  llmrt_last_error());
        llmrt_plan_free(plan);
    }
    /* a CPU plan of the same graph runs on CUDA: its activations become bf16 */
    plan = small_plan("cpu", WITH_CAST);
    if (plan) {
        CHECK_OK(llmrt_plan_retarget(plan, "cuda"));
        CHECK(plan->graph->act_dtype == LLMRT_DTYPE_BF16);
        CHECK(plan->graph->nodes[plan->output_logits].dtype == LLMRT_DTYPE_BF16);
        CHECK(plan->graph->nodes[plan->input_token_ids].dtype == LLMRT_DTYPE_I32);
        llmrt_plan_free(plan);
    }
}

/* Which f32 values are activations is derived, not guessed: in a CPU plan
 * the gain and the activations are all f32, and only the activations
 * become bf16 on CUDA. */
static void test_f32_values_that_stay(void) {
    llmrt_plan *cpu = small_plan("cpu", WITH_GAIN), *cuda = small_plan("cuda", WITH_GAIN);
    if (cpu && cuda) {
        int32_t gain = -1;
        for (int32_t i = 0; i < cuda->graph->num_nodes; i++)
            if (cuda->graph->nodes[i].op == LLMRT_OP_ADD) gain = i;
        CHECK(gain >= 0 && cuda->graph->nodes[gain].dtype == LLMRT_DTYPE_F32);
        CHECK_OK(llmrt_plan_retarget(cpu, "cuda"));
        check_same_plan("gain: cpu -> cuda", cpu, cuda);
    }
    llmrt_plan_free(cpu);
    llmrt_plan_free(cuda);
}

int main(void) {
    RUN_TEST(test_matches_native_builds);
    RUN_TEST(test_f32_unchanged);
    RUN_TEST(test_f32_values_that_stay);
    RUN_TEST(test_what_a_backend_lacks);
    return test_finish();
}
