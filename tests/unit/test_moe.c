/* The mixture-of-experts op on the CPU against a plain per-token reference:
 * routing (softmax, top-k with ties to the lower index, renormalised), the
 * grouped expert GEMMs for f32 and 16-bit weights, k = 1 and k = E, and the
 * graph's and the Mixtral family's errors for bad expert counts. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "compiler/compiler.h"
#include "core/dtype.h"
#include "core/status.h"
#include "graph/graph.h"
#include "import/hf_config.h"
#include "import/safetensors.h"
#include "models/models.h"
#include "test_util.h"

static uint64_t rng = 0x5eed0123456789abull;

/* Top k by a stable sort on (logit descending, index ascending). */
static void ref_route(int32_t *ids, float *w, const float *logits, int64_t E, int64_t k) {
    int32_t order[64];
    for (int64_t e = 0; e < E; e++) order[e] = (int32_t)e;
    for (int64_t i = 1; i < E; i++)
        for (int64_t j = i; j > 0 && logits[order[j]] > logits[order[j - 1]]; j--) {
            int32_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double max = logits[order[0]], sum = 0.0, top = 0.0;
    for (int64_t e = 0; e < E; e++) sum += exp(logits[e] - max);
    for (int64_t j = 0; j < k; j++) top += exp(logits[order[j]] - max) / sum;
    for (int64_t j = 0; j < k; j++) {
        ids[j] = order[j];
        w[j] = (float)(exp(logits[order[j]] - max) / sum / top);
    }
}

static void test_route_ties(void) {
    int32_t ids[8];
    float w[8];
    /* all equal: the first k experts, equal weights */
    const float flat[5] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    cpu_moe_route(ids, w, flat, 1, 5, 3);
    CHECK(ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
    CHECK(fabsf(w[0] - 1.0f / 3) < 1e-6f && fabsf(w[2] - 1.0f / 3) < 1e-6f);
    /* a tie for second place goes to the lower index */
    const float some[5] = {1.0f, 3.0f, 2.0f, 2.0f, 2.0f};
    cpu_moe_route(ids, w, some, 1, 5, 2);
    CHECK(ids[0] == 1 && ids[1] == 2);
    CHECK(fabsf(w[0] + w[1] - 1.0f) < 1e-6f && w[0] > w[1]);
    /* k = 1: the weight is 1 */
    cpu_moe_route(ids, w, some, 1, 5, 1);
    CHECK(ids[0] == 1 && w[0] == 1.0f);
    /* k = E: every expert, weights the softmax itself */
    cpu_moe_route(ids, w, some, 1, 5, 5);
    int32_t want[5];
    float want_w[5];
    ref_route(want, want_w, some, 5, 5);
    for (int j = 0; j < 5; j++) CHECK(ids[j] == want[j] && fabsf(w[j] - want_w[j]) < 1e-6f);
    CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3 && ids[3] == 4 && ids[4] == 0);
}

/* y[t] = Σ_j w_j · down_e(silu(gate_e x) · up_e x), in double. */
static void ref_moe(float *y, const float *x, const float *logits, const float *wg, const float *wu, const float *wd,
                    int64_t T, int64_t H, int64_t I, int64_t E, int64_t k) {
    double *h = malloc((size_t)I * sizeof *h);
    for (int64_t t = 0; t < T; t++) {
        int32_t ids[64];
        float w[64];
        ref_route(ids, w, logits + t * E, E, k);
        for (int64_t c = 0; c < H; c++) y[t * H + c] = 0.0f;
        double *acc = calloc((size_t)H, sizeof *acc);
        for (int64_t j = 0; j < k; j++) {
            const int64_t e = ids[j];
            for (int64_t i = 0; i < I; i++) {
                double g = 0.0, u = 0.0;
                for (int64_t c = 0; c < H; c++) {
                    g += (double)wg[(e * I + i) * H + c] * x[t * H + c];
                    u += (double)wu[(e * I + i) * H + c] * x[t * H + c];
                }
                h[i] = g / (1.0 + exp(-g)) * u;
            }
            for (int64_t c = 0; c < H; c++) {
                double o = 0.0;
                for (int64_t i = 0; i < I; i++) o += (double)wd[(e * H + c) * I + i] * h[i];
                acc[c] += w[j] * o;
            }
        }
        for (int64_t c = 0; c < H; c++) y[t * H + c] = (float)acc[c];
        free(acc);
    }
    free(h);
}

static void moe_case(llmrt_dtype wt, int64_t T, int64_t H, int64_t I, int64_t E, int64_t k, int tied_logits) {
    float *x = malloc((size_t)(T * H) * sizeof *x), *logits = malloc((size_t)(T * E) * sizeof *logits);
    float *wg = malloc((size_t)(E * I * H) * sizeof *wg), *wu = malloc((size_t)(E * I * H) * sizeof *wu);
    float *wd = malloc((size_t)(E * H * I) * sizeof *wd);
    float *y = malloc((size_t)(T * H) * sizeof *y), *want = malloc((size_t)(T * H) * sizeof *want);
    test_fill_random(x, (size_t)(T * H), &rng, 1.0f);
    test_fill_random(logits, (size_t)(T * E), &rng, 2.0f);
    if (tied_logits) /* every other token: all experts equal */
        for (int64_t t = 0; t < T; t += 2)
            for (int64_t e = 0; e < E; e++) logits[t * E + e] = 0.25f;
    test_fill_random(wg, (size_t)(E * I * H), &rng, 1.0f / sqrtf((float)H));
    test_fill_random(wu, (size_t)(E * I * H), &rng, 1.0f / sqrtf((float)H));
    test_fill_random(wd, (size_t)(E * H * I), &rng, 1.0f / sqrtf((float)I));
    const size_t es = llmrt_dtype_size(wt);
    void *g16 = malloc((size_t)(E * I * H) * es), *u16 = malloc((size_t)(E * I * H) * es);
    void *d16 = malloc((size_t)(E * H * I) * es);
    llmrt_convert_from_f32(g16, wt, wg, (size_t)(E * I * H));
    llmrt_convert_from_f32(u16, wt, wu, (size_t)(E * I * H));
    llmrt_convert_from_f32(d16, wt, wd, (size_t)(E * H * I));
    /* the reference sees the weights the kernel reads */
    llmrt_convert_to_f32(wg, g16, wt, (size_t)(E * I * H));
    llmrt_convert_to_f32(wu, u16, wt, (size_t)(E * I * H));
    llmrt_convert_to_f32(wd, d16, wt, (size_t)(E * H * I));
    void *scratch = malloc(cpu_moe_scratch_bytes(T, H, I, E, k));
    cpu_moe(y, x, logits, g16, u16, d16, wt, T, H, I, E, k, scratch);
    ref_moe(want, x, logits, wg, wu, wd, T, H, I, E, k);
    double err = test_rel_l2(y, want, (size_t)(T * H));
    CHECK_MSG(err < 2e-6, "%s T=%lld H=%lld I=%lld E=%lld k=%lld: rel L2 %.3g", llmrt_dtype_name(wt), (long long)T,
              (long long)H, (long long)I, (long long)E, (long long)k, err);
    free(x), free(logits), free(wg), free(wu), free(wd), free(y), free(want), free(g16), free(u16), free(d16);
    free(scratch);
}

static void test_moe_against_reference(void) {
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        moe_case(LLMRT_DTYPE_F32, 7, 20, 12, 5, 2, 0);
        moe_case(LLMRT_DTYPE_F32, 1, 64, 48, 8, 2, 0);  /* decode */
        moe_case(LLMRT_DTYPE_F32, 9, 33, 17, 4, 1, 1);  /* k = 1, ties */
        moe_case(LLMRT_DTYPE_F32, 6, 16, 24, 3, 3, 1);  /* k = E */
        moe_case(LLMRT_DTYPE_BF16, 37, 64, 40, 8, 2, 1);
        moe_case(LLMRT_DTYPE_F16, 5, 32, 48, 6, 6, 0);
        moe_case(LLMRT_DTYPE_F32, 300, 16, 8, 4, 2, 0); /* enough rows for the parallel combine */
    }
}

static void test_graph_errors(void) {
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    int64_t xd[2] = {LLMRT_DIM_TOKENS, 8}, ld[2] = {LLMRT_DIM_TOKENS, 4};
    llmrt_value x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, xd);
    llmrt_value logits = llmrt_input(g, "router_logits", LLMRT_DTYPE_F32, 2, ld);
    llmrt_value gate = llmrt_expert_weight(g, "e.*.w1.weight", 4, 6, 8);
    llmrt_value up = llmrt_expert_weight(g, "e.*.w3.weight", 4, 6, 8);
    llmrt_value down = llmrt_expert_weight(g, "e.*.w2.weight", 4, 8, 6);
    CHECK(llmrt_moe(g, x, logits, gate, up, down, 4) != LLMRT_NO_VALUE);
    CHECK(llmrt_moe(g, x, logits, gate, up, down, 5) == LLMRT_NO_VALUE);
    CHECK(llmrt_graph_status(g) == LLMRT_ERR_INVALID_ARGUMENT && strstr(g->error, "top_k 5"));
    llmrt_graph_free(g);

    g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    CHECK(llmrt_expert_weight(g, "e.w1.weight", 4, 6, 8) == LLMRT_NO_VALUE && strstr(g->error, "'*'"));
    llmrt_graph_free(g);
    g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    CHECK(llmrt_expert_weight(g, "e.*.w1.weight", 0, 6, 8) == LLMRT_NO_VALUE);
    llmrt_graph_free(g);
}

static void test_family_errors(void) {
    const llmrt_model_family *family;
    CHECK_OK(llmrt_model_lookup("MixtralForCausalLM", &family));
    if (!family) return;
    llmrt_model_config c = {.vocab_size = 16, .hidden_size = 8, .num_layers = 1, .num_heads = 2, .num_kv_heads = 1,
                            .head_dim = 4, .intermediate_size = 6, .max_position_embeddings = 64, .norm_eps = 1e-5f,
                            .activation = LLMRT_ACT_SILU, .num_experts = 4, .num_experts_per_tok = 2};
    strcpy(c.architecture, "MixtralForCausalLM");
    c.rope = (llmrt_rope_config){.type = LLMRT_ROPE_DEFAULT, .theta = 10000.0f, .rotary_dim = 4};
    CHECK_OK(family->validate(&c));
    c.num_experts_per_tok = 5;
    CHECK(family->validate(&c) == LLMRT_ERR_FORMAT && strstr(llmrt_last_error(), "num_experts_per_tok"));
    c.num_experts_per_tok = 0;
    CHECK(family->validate(&c) == LLMRT_ERR_FORMAT && strstr(llmrt_last_error(), "num_experts_per_tok"));
    c.num_experts = 0;
    CHECK(family->validate(&c) == LLMRT_ERR_FORMAT && strstr(llmrt_last_error(), "num_local_experts"));
}

/* A one-layer Mixtral checkpoint of f32 tensors: expert e's matrices hold
 * e + 1 + i / 1000 at element i, everything else 0.01; `skip` names a
 * tensor left out. */
static void write_checkpoint(const char *dir, const char *skip) {
    enum { E = 3, H = 8, I = 4, V = 16 };
    struct { char name[96]; int64_t rows, cols; int expert; } t[32];
    int n = 0;
#define ADD(nm, r, c, e) (snprintf(t[n].name, sizeof t[n].name, "%s", nm), t[n].rows = r, t[n].cols = c, t[n++].expert = e)
    ADD("model.embed_tokens.weight", V, H, -1);
    ADD("lm_head.weight", V, H, -1);
    ADD("model.norm.weight", H, 0, -1);
    ADD("model.layers.0.input_layernorm.weight", H, 0, -1);
    ADD("model.layers.0.post_attention_layernorm.weight", H, 0, -1);
    ADD("model.layers.0.self_attn.q_proj.weight", H, H, -1);
    ADD("model.layers.0.self_attn.k_proj.weight", 4, H, -1);
    ADD("model.layers.0.self_attn.v_proj.weight", 4, H, -1);
    ADD("model.layers.0.self_attn.o_proj.weight", H, H, -1);
    ADD("model.layers.0.block_sparse_moe.gate.weight", E, H, -1);
    for (int e = 0; e < E; e++) {
        char nm[96];
        snprintf(nm, sizeof nm, "model.layers.0.block_sparse_moe.experts.%d.w1.weight", e);
        ADD(nm, I, H, e);
        snprintf(nm, sizeof nm, "model.layers.0.block_sparse_moe.experts.%d.w3.weight", e);
        ADD(nm, I, H, e);
        snprintf(nm, sizeof nm, "model.layers.0.block_sparse_moe.experts.%d.w2.weight", e);
        ADD(nm, H, I, e);
    }
#undef ADD
    char header[8192] = "{";
    size_t used = 1, offset = 0;
    for (int i = 0; i < n; i++) {
        if (skip && strcmp(t[i].name, skip) == 0) continue;
        const size_t count = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        if (t[i].cols)
            used += (size_t)snprintf(header + used, sizeof header - used,
                                     "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%zu,%zu]}",
                                     used > 1 ? "," : "", t[i].name, (long long)t[i].rows, (long long)t[i].cols, offset,
                                     offset + count * 4);
        else
            used += (size_t)snprintf(header + used, sizeof header - used,
                                     "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":[%zu,%zu]}",
                                     used > 1 ? "," : "", t[i].name, (long long)t[i].rows, offset, offset + count * 4);
        offset += count * 4;
    }
    used += (size_t)snprintf(header + used, sizeof header - used, "}");
    while (used % 8) header[used++] = ' ';
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    uint64_t length = used;
    fwrite(&length, 8, 1, f);
    fwrite(header, 1, used, f);
    for (int i = 0; i < n; i++) {
        if (skip && strcmp(t[i].name, skip) == 0) continue;
        const size_t count = (size_t)t[i].rows * (size_t)(t[i].cols ? t[i].cols : 1);
        for (size_t j = 0; j < count; j++) {
            float v = t[i].expert >= 0 ? (float)(t[i].expert + 1) + (float)j / 1000.0f : 0.01f;
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"architectures\": [\"MixtralForCausalLM\"], \"model_type\": \"mixtral\", \"hidden_size\": %d,"
               " \"intermediate_size\": %d, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
               " \"num_hidden_layers\": 1, \"vocab_size\": %d, \"max_position_embeddings\": 64,"
               " \"num_local_experts\": %d, \"num_experts_per_tok\": 2, \"rms_norm_eps\": 1e-5}",
            H, I, V, E);
    fclose(f);
}

static llmrt_status compile_dir(const char *dir, llmrt_plan **plan) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    llmrt_model_config config;
    LLMRT_TRY(llmrt_hf_config_load(path, &config));
    llmrt_checkpoint *checkpoint;
    LLMRT_TRY(llmrt_checkpoint_open_dir(dir, &checkpoint));
    llmrt_compile_options o = {.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                               .max_num_tokens = 16, .max_batch = 2, .max_seq_len = 32,
                               .quant_dtype = LLMRT_DTYPE_INVALID};
    llmrt_status s = llmrt_compile(&config, checkpoint, &o, plan);
    llmrt_checkpoint_close(checkpoint);
    return s;
}

/* Stacked expert weights: expert e's checkpoint matrix, whole, at e's place. */
static void test_stacked_binding(void) {
    char *dir = test_temp_dir();
    write_checkpoint(dir, NULL);
    llmrt_plan *plan = NULL;
    CHECK_OK(compile_dir(dir, &plan));
    if (plan) {
        const char *names[3] = {"model.layers.0.block_sparse_moe.experts.*.w1.weight",
                                "model.layers.0.block_sparse_moe.experts.*.w3.weight",
                                "model.layers.0.block_sparse_moe.experts.*.w2.weight"};
        for (int w = 0; w < 3; w++) {
            int32_t slot = llmrt_plan_find_weight(plan, names[w]);
            CHECK_MSG(slot >= 0, "no plan weight %s", names[w]);
            if (slot < 0) continue;
            const llmrt_plan_weight *pw = &plan->weights[slot];
            CHECK(pw->ndim == 3 && pw->dims[0] == 3 && pw->dims[1] * pw->dims[2] == 32);
            const float *v = pw->data;
            int ok = 1;
            for (int e = 0; e < 3; e++)
                for (int j = 0; j < 32; j++) ok &= v[e * 32 + j] == (float)(e + 1) + (float)j / 1000.0f;
            CHECK_MSG(ok, "%s: experts not stacked in order", names[w]);
        }
        llmrt_plan_free(plan);
    }
    /* a missing expert tensor is named */
    write_checkpoint(dir, "model.layers.0.block_sparse_moe.experts.2.w2.weight");
    plan = NULL;
    CHECK(compile_dir(dir, &plan) == LLMRT_ERR_NOT_FOUND &&
          strstr(llmrt_last_error(), "model.layers.0.block_sparse_moe.experts.2.w2.weight"));
    llmrt_plan_free(plan);
    free(dir);
}

int main(void) {
    RUN_TEST(test_route_ties);
    RUN_TEST(test_moe_against_reference);
    RUN_TEST(test_graph_errors);
    RUN_TEST(test_family_errors);
    RUN_TEST(test_stacked_binding);
    return test_finish();
}
