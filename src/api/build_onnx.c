/* llmrt_build from an ONNX decoder: import (src/import/onnx_*.c), compile the
 * imported network like a native one, write the engine, and report what was
 * recognised and fused — the trtexec-style summary of `llmrt build --onnx`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/build_internal.h"
#include "compiler/passes.h"
#include "compiler/retarget.h"
#include "core/file.h"
#include "core/log.h"
#include "engine/engine_file.h"
#include "import/hf_config.h"
#include "import/onnx_import.h"

static int32_t count_kernels(const llmrt_graph *g, int32_t *counts) {
    int32_t kernels = 0;
    memset(counts, 0, LLMRT_OP_COUNT * sizeof *counts);
    for (int32_t i = 0; i < g->num_nodes; i++) {
        llmrt_op op = g->nodes[i].op;
        counts[op]++;
        if (op != LLMRT_OP_INPUT && op != LLMRT_OP_WEIGHT && op != LLMRT_OP_CONSTANT && op != LLMRT_OP_VIEW) kernels++;
    }
    return kernels;
}

static void print_report(const char *path, const llmrt_onnx_report *r, const int32_t *before, int32_t kernels_before,
                         const llmrt_plan *plan) {
    int32_t after[LLMRT_OP_COUNT];
    int32_t kernels_after = count_kernels(plan->graph, after);
    printf("onnx          %s: opset %lld, %d nodes\n", path, (long long)r->opset, r->onnx_nodes);
    printf("imported      %d nodes lowered, %d evaluated at import (shapes, constants), %d not needed "
           "(mask, RoPE tables, present K/V)\n", r->lowered_nodes, r->folded_nodes, r->skipped_nodes);
    printf("recognised    attention×%d → paged attention (%d with RoPE on q and k), past KV inputs %s\n",
           r->attention_sites, r->rope_sites, r->kv_cache_inputs ? "yes (the paged cache takes their place)" : "no");
    printf("kernels       %d per step before fusion, %d after\n", kernels_before, kernels_after);
    printf("ops before   ");
    for (int i = 0; i < LLMRT_OP_COUNT; i++)
        if (before[i] && i != LLMRT_OP_INPUT) printf(" %s×%d", llmrt_op_name((llmrt_op)i), before[i]);
    printf("\nops after    ");
    for (int i = 0; i < LLMRT_OP_COUNT; i++)
        if (after[i] && i != LLMRT_OP_INPUT) printf(" %s×%d", llmrt_op_name((llmrt_op)i), after[i]);
    printf("\nfused        ");
    static const llmrt_op fused[] = {LLMRT_OP_LINEAR, LLMRT_OP_RMSNORM, LLMRT_OP_LAYERNORM, LLMRT_OP_SILU,
                                     LLMRT_OP_SILU_MUL, LLMRT_OP_GELU_TANH};
    int any = 0;
    for (size_t i = 0; i < sizeof fused / sizeof fused[0]; i++)
        if (after[fused[i]]) {
            printf(" %s×%d", llmrt_op_name(fused[i]), after[fused[i]]);
            any = 1;
        }
    printf("%s\n", any ? "" : " none");
    fflush(stdout);
}

/* The folder of a file path (malloc'd), "." for a bare name. */
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 2);
    if (!dir) return NULL;
    memcpy(dir, path, n ? n : 1);
    dir[n ? n : 1] = '\0';
    return dir;
}

llmrt_status llmrt_build_onnx(const llmrt_build_options *o) {
    if (o->model_dir || o->random_weights)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --onnx takes its weights from the ONNX file "
                                                       "(not with --model or --random-weights)");
    const char *backend = o->backend ? o->backend : "cpu";
    if (!llmrt_target_known(backend))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: unknown backend '%s' (cpu, cuda)", backend);
    const char *inputs[] = {o->onnx_path, o->config_path};
    LLMRT_TRY(llmrt_file_check_output(o->output_path, inputs, o->config_path ? 2 : 1, NULL));
    double start = llmrt_now_seconds();

    llmrt_model_config config;
    memset(&config, 0, sizeof config);
    config.bos_token_id = config.pad_token_id = -1;
    if (o->config_path) LLMRT_TRY(llmrt_hf_config_load(o->config_path, &config));
    char *dir = o->config_path ? folder_of(o->config_path) : NULL;
    if (o->config_path && !dir) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = LLMRT_OK;
    if (dir) {
        char *gen_path = llmrt_path_join(dir, "generation_config.json");
        s = gen_path ? llmrt_hf_generation_config_merge(gen_path, &config)
                     : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        free(gen_path);
    }
    llmrt_dtype dtype = o->dtype == LLMRT_DTYPE_INVALID ? LLMRT_DTYPE_F32 : o->dtype;
    if (s == LLMRT_OK && dtype != LLMRT_DTYPE_F32 && dtype != LLMRT_DTYPE_F16 && dtype != LLMRT_DTYPE_BF16)
        s = llmrt_error(LLMRT_ERR_UNSUPPORTED, "build: --dtype %s (fp32, fp16, bf16)", llmrt_dtype_name(dtype));
    llmrt_graph *g = NULL;
    if (s == LLMRT_OK) {
        g = llmrt_graph_create(llmrt_target_act_dtype(backend, dtype), dtype);
        if (!g) s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    llmrt_onnx_file *file = NULL;
    llmrt_checkpoint *weights = NULL;
    llmrt_onnx_report report;
    if (s == LLMRT_OK) {
        LLMRT_INFO("importing %s", o->onnx_path);
        s = llmrt_onnx_import(o->onnx_path, &config, g, &file, &weights, &report);
    }
    int32_t before[LLMRT_OP_COUNT], kernels_before = 0;
    llmrt_compile_options copts;
    if (s == LLMRT_OK) {
        llmrt_pass_context ctx = {0};
        s = llmrt_pass_dead_code(g, &ctx); /* nodes lowered but bypassed (a Sqrt under an rsqrt) */
        kernels_before = count_kernels(g, before);
    }
    if (s == LLMRT_OK) s = llmrt_build_compile_options(o, &config, dtype, &copts);
    /* the mask is not evaluated: a sliding window (config.json says so) must cover every sequence */
    if (s == LLMRT_OK && config.sliding_window > 0 && copts.max_seq_len > config.sliding_window)
        s = llmrt_error(LLMRT_ERR_UNSUPPORTED,
                        "build: sliding-window attention (window %d) is not supported yet; use --max-seq-len <= %d",
                        config.sliding_window, config.sliding_window);
    llmrt_plan *plan = NULL;
    if (s == LLMRT_OK) {
        LLMRT_INFO("compiling the imported %s: %d layers, hidden %d, %s weights, %s backend", config.architecture,
                   config.num_layers, config.hidden_size, llmrt_dtype_name(dtype), backend);
        s = llmrt_compile_graph(g, weights, &copts, &plan);
        g = NULL;
    }
    llmrt_graph_free(g);
    if (s == LLMRT_OK) {
        /* the source line `llmrt inspect` prints says what the import recognised */
        char source[480];
        snprintf(source, sizeof source, "%.300s (ONNX opset %lld: attention×%d recognised, %d with RoPE; %s)",
                 o->onnx_path, (long long)report.opset, report.attention_sites, report.rope_sites,
                 report.kv_cache_inputs ? "past KV inputs replaced by the paged cache" : "no past KV inputs");
        llmrt_engine_build_info info = {.backend = backend, .dtype = dtype, .act_dtype = copts.act_dtype,
                                        .source = source};
        s = llmrt_build_write(o, plan, &config, &info, dir);
    }
    if (s == LLMRT_OK && o->print_report) print_report(o->onnx_path, &report, before, kernels_before, plan);
    if (s == LLMRT_OK)
        LLMRT_INFO("wrote %s (%.1f MiB of weights) in %.1f s", o->output_path,
                   (double)llmrt_plan_weight_bytes(plan, NULL) / 1048576.0, llmrt_now_seconds() - start);
    free(dir);
    llmrt_plan_free(plan);
    llmrt_checkpoint_close(weights);
    llmrt_onnx_close(file);
    return s;
}
