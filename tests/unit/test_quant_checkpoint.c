/* AWQ and GPTQ checkpoints as they ship, written here from a golden case:
 * its linear weights quantized (4-bit, groups of 32; GPTQ also 8-bit) and
 * packed in each format's layout by a packer of this file, written
 * independently of the loader from the layouts the reference
 * implementations use (see src/import/quant_checkpoint.c):
 *   AWQ gemm   qweight [in, out/8], nibble i of word c = output 8c + (0,2,4,6,1,3,5,7)[i]
 *   GPTQ       qweight [in·bits/32, out], value j of word r = input (32/bits)·r + j;
 *              qzeros in plain order, v1 ("gptq") storing zero − 1
 * The reference is the same model with the dequantized weights as a plain
 * f32 checkpoint, run through llmrt's exact f32 path: the packed engines
 * must give its logits within 1e-3 (relative L2) on the exact path. Layouts
 * llmrt does not read fail with an error naming the field or tensor, and so
 * does a --tp 2 build that would split a group or act-order inputs. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backends/cpu/cpu_kernels_quant.h"
#include "core/dtype.h"
#include "import/safetensors.h"
#include "llmrt/llmrt.h"
#include "test_util.h"

/* inputs per group: 32 in the tests, as given with --write */
static int64_t packed_group = 32;

typedef enum format { AWQ, GPTQ_V1, GPTQ_V2 } format;

typedef struct packed {
    int32_t *qweight, *qzeros;
    uint16_t *scales;
    int32_t *g_idx;
    int64_t qweight_shape[2], qzeros_shape[2], scales_shape[2], g_idx_shape[1];
} packed;

static int is_linear(const llmrt_st_tensor *t) {
    static const char *const names[] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
                                        "gate_proj.weight", "up_proj.weight", "down_proj.weight"};
    if (t->ndim != 2) return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(t->name), k = strlen(names[i]);
        if (n > k && strcmp(t->name + n - k, names[i]) == 0) return 1;
    }
    return 0;
}

/* Round to nearest per group of packed_group inputs (group g: inputs
 * order[g·packed_group ..], order NULL for k / packed_group); fills q [K][N],
 * z and s [G][N] (s as f16 bits) and deq [N][K], the values a reader must
 * give. */
static void quantize(const float *w, int64_t N, int64_t K, int bits, int symmetric, const int32_t *order, int32_t *q,
                     int32_t *z, uint16_t *s, float *deq) {
    const int qmax = (1 << bits) - 1;
#define INPUT(j) (order ? order[j] : (j))
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < K / packed_group; g++) {
            float lo = 0, hi = 0;
            for (int64_t j = g * packed_group; j < (g + 1) * packed_group; j++)
                lo = fminf(lo, w[n * K + INPUT(j)]), hi = fmaxf(hi, w[n * K + INPUT(j)]);
            float scale = symmetric ? fmaxf(hi, -lo) / (float)(qmax / 2) : (hi - lo) / (float)qmax;
            if (scale == 0) scale = 1e-3f;
            const uint16_t bits16 = llmrt_f32_to_f16(scale);
            scale = llmrt_f16_to_f32(bits16);
            int zero = symmetric ? (qmax + 1) / 2 : (int)lrintf(-lo / scale);
            if (!symmetric && zero < 1) zero = 1; /* v1 cannot store a zero of 0 */
            s[g * N + n] = bits16;
            z[g * N + n] = zero;
            for (int64_t j = g * packed_group; j < (g + 1) * packed_group; j++) {
                const int64_t k = INPUT(j);
                int v = (int)lrintf(w[n * K + k] / scale) + zero;
                v = v < 0 ? 0 : v > qmax ? qmax : v;
                q[k * N + n] = v;
                deq[n * K + k] = scale * (float)(v - zero);
            }
        }
#undef INPUT
}

static void pack(format f, int bits, const int32_t *q, const int32_t *z, const uint16_t *s, const int32_t *order,
                 int64_t N, int64_t K, packed *p) {
    static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    const int per = 32 / bits;
    const int64_t G = K / packed_group;
    const uint32_t mask = (1u << bits) - 1;
    memset(p, 0, sizeof *p);
    p->scales = malloc(sizeof(uint16_t) * (size_t)(G * N));
    memcpy(p->scales, s, sizeof(uint16_t) * (size_t)(G * N));
    p->scales_shape[0] = G, p->scales_shape[1] = N;
    p->qzeros = calloc((size_t)(G * N / per), sizeof(int32_t));
    p->qzeros_shape[0] = G, p->qzeros_shape[1] = N / per;
    if (f == AWQ) {
        p->qweight = calloc((size_t)(K * N / 8), sizeof(int32_t));
        p->qweight_shape[0] = K, p->qweight_shape[1] = N / 8;
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < N / 8; c++)
                for (int i = 0; i < 8; i++)
                    p->qweight[k * (N / 8) + c] |= (int32_t)((uint32_t)q[k * N + c * 8 + awq_order[i]] << (4 * i));
        for (int64_t g = 0; g < G; g++)
            for (int64_t c = 0; c < N / 8; c++)
                for (int i = 0; i < 8; i++)
                    p->qzeros[g * (N / 8) + c] |= (int32_t)((uint32_t)z[g * N + c * 8 + awq_order[i]] << (4 * i));
        return;
    }
    p->qweight = calloc((size_t)(K / per * N), sizeof(int32_t));
    p->qweight_shape[0] = K / per, p->qweight_shape[1] = N;
    for (int64_t r = 0; r < K / per; r++)
        for (int64_t n = 0; n < N; n++)
            for (int j = 0; j < per; j++)
                p->qweight[r * N + n] |= (int32_t)((uint32_t)q[(r * per + j) * N + n] << (bits * j));
    for (int64_t g = 0; g < G; g++)
        for (int64_t c = 0; c < N / per; c++)
            for (int j = 0; j < per; j++) {
                const uint32_t stored = (uint32_t)(z[g * N + c * per + j] - (f == GPTQ_V1)) & mask;
                p->qzeros[g * (N / per) + c] |= (int32_t)(stored << (bits * j));
            }
    p->g_idx = malloc(sizeof(int32_t) * (size_t)K);
    for (int64_t j = 0; j < K; j++) p->g_idx[order ? order[j] : j] = (int32_t)(j / packed_group);
    p->g_idx_shape[0] = K;
}

/* What a test checkpoint should break, to see the error name it. */
typedef enum flaw { FLAW_NONE, FLAW_VERSION, FLAW_METHOD, FLAW_UNEVEN_packed_groupS, FLAW_DTYPE, FLAW_BIAS } flaw;

typedef struct variant {
    const char *label;
    format f;
    int bits, symmetric;
    const char *config_file; /* NULL: quantization_config in config.json */
    flaw flaw;
    const char *error;       /* with a flaw: a word the error must hold */
    int biases;              /* AutoGPTQ's bias beside every packed layer: 0 none, 1 zeros (FLAW_BIAS: not zero) */
    int act_order;           /* GPTQ desc_act: groups are sets of inputs in a shuffled order */
} variant;

static void write_config(const char *case_dir, const char *out_dir, const variant *v) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", case_dir);
    json_t *config = json_load_file(path, 0, NULL);
    json_t *q = json_object();
    int awq = v->f == AWQ;
    json_object_set_new(q, "quant_method", json_string(v->flaw == FLAW_METHOD ? "bitsandbytes" : awq ? "awq" : "gptq"));
    json_object_set_new(q, awq && v->config_file ? "w_bit" : "bits", json_integer(v->bits));
    json_object_set_new(q, awq && v->config_file ? "q_group_size" : "group_size", json_integer(packed_group));
    if (awq) {
        json_object_set_new(q, "zero_point", json_true());
        json_object_set_new(q, "version", json_string(v->flaw == FLAW_VERSION ? "gemv" : "gemm"));
    } else {
        json_object_set_new(q, "sym", json_boolean(v->symmetric));
        json_object_set_new(q, "desc_act", json_boolean(v->act_order));
        json_object_set_new(q, "checkpoint_format", json_string(v->f == GPTQ_V1 ? "gptq" : "gptq_v2"));
    }
    if (v->config_file) {
        snprintf(path, sizeof path, "%s/%s", out_dir, v->config_file);
        json_dump_file(q, path, 0);
        json_decref(q);
    } else {
        json_object_set_new(config, "quantization_config", q);
    }
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    json_dump_file(config, path, 0);
    json_decref(config);
}

/* Writes the packed checkpoint of `v` into out_dir and, with ref_dir, the
 * dequantized f32 reference beside it. */
static void write_checkpoints(const char *case_dir, const variant *v, const char *out_dir, const char *ref_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", case_dir);
    llmrt_checkpoint *cp = NULL;
    CHECK_OK(llmrt_checkpoint_open_file(path, &cp));
    if (!cp) return;
    const size_t count = llmrt_checkpoint_tensor_count(cp);
    llmrt_st_write_entry *out = calloc(count * 5, sizeof *out), *ref = calloc(count, sizeof *ref);
    char (*names)[256] = calloc(count * 5, sizeof *names);
    void **owned = calloc(count * 13, sizeof *owned);
    size_t n_out = 0, n_owned = 0;
    for (size_t i = 0; i < count; i++) {
        const llmrt_st_tensor *t = llmrt_checkpoint_tensor(cp, i);
        ref[i] = (llmrt_st_write_entry){t->name, t->dtype, t->ndim, t->shape, t->data};
        if (!is_linear(t)) {
            out[n_out++] = ref[i];
            continue;
        }
        const int64_t N = t->shape[0], K = t->shape[1];
        float *w = malloc(sizeof(float) * (size_t)(N * K)), *deq = malloc(sizeof(float) * (size_t)(N * K));
        int32_t *q = malloc(sizeof(int32_t) * (size_t)(N * K));
        int32_t *z = malloc(sizeof(int32_t) * (size_t)(N * K / packed_group));
        uint16_t *s = malloc(sizeof(uint16_t) * (size_t)(N * K / packed_group));
        llmrt_convert_to_f32(w, t->data, t->dtype, (size_t)(N * K));
        int32_t *order = NULL;
        if (v->act_order) { /* a shuffle of the inputs, seeded by the tensor */
            order = malloc(sizeof *order * (size_t)K);
            uint64_t rng = i + 1;
            for (int64_t k = 0; k < K; k++) order[k] = (int32_t)k;
            for (int64_t k = K - 1; k > 0; k--) {
                const int64_t r = (int64_t)(test_rand_u64(&rng) % (uint64_t)(k + 1));
                const int32_t tmp = order[k];
                order[k] = order[r], order[r] = tmp;
            }
        }
        quantize(w, N, K, v->bits, v->symmetric, order, q, z, s, deq);
        packed *p = calloc(1, sizeof *p);
        pack(v->f, v->bits, q, z, s, order, N, K, p);
        if (v->flaw == FLAW_UNEVEN_packed_groupS && p->g_idx) p->g_idx[order ? order[0] : 0] = 1; /* group 1 gets 33 */
        free(order);
        ref[i] = (llmrt_st_write_entry){t->name, LLMRT_DTYPE_F32, 2, t->shape, deq};
        const size_t stem = strlen(t->name) - strlen("weight");
        uint16_t *bias = v->biases ? calloc((size_t)N, sizeof *bias) : NULL;
        if (bias && v->flaw == FLAW_BIAS) bias[0] = 0x3c00; /* 1.0 */
        const char *suffix[] = {"qweight", "qzeros", "scales", "g_idx", "bias"};
        const void *data[] = {p->qweight, p->qzeros, p->scales, p->g_idx, bias};
        const int64_t *shapes[] = {p->qweight_shape, p->qzeros_shape, p->scales_shape, p->g_idx_shape, t->shape};
        owned[n_owned++] = bias;
        for (int k = 0; k < 5; k++) {
            if (!data[k]) continue;
            snprintf(names[n_out], sizeof names[n_out], "%.*s%s", (int)stem, t->name, suffix[k]);
            llmrt_dtype dtype = k == 2 || k == 4 ? LLMRT_DTYPE_F16 : LLMRT_DTYPE_I32;
            if (v->flaw == FLAW_DTYPE && k == 0) dtype = LLMRT_DTYPE_F32;
            out[n_out] = (llmrt_st_write_entry){names[n_out], dtype, k >= 3 ? 1 : 2, shapes[k], data[k]};
            n_out++;
        }
        owned[n_owned++] = w, owned[n_owned++] = deq, owned[n_owned++] = q, owned[n_owned++] = z;
        owned[n_owned++] = s, owned[n_owned++] = p->qweight, owned[n_owned++] = p->qzeros;
        owned[n_owned++] = p->scales, owned[n_owned++] = p->g_idx, owned[n_owned++] = p;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    CHECK_OK(llmrt_safetensors_write(path, out, n_out));
    write_config(case_dir, out_dir, v);
    if (ref_dir) {
        snprintf(path, sizeof path, "%s/model.safetensors", ref_dir);
        CHECK_OK(llmrt_safetensors_write(path, ref, count));
        char from[4096];
        snprintf(from, sizeof from, "%s/config.json", case_dir);
        snprintf(path, sizeof path, "%s/config.json", ref_dir);
        json_t *config = json_load_file(from, 0, NULL);
        json_dump_file(config, path, 0);
        json_decref(config);
    }
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    free(owned), free(out), free(ref), free(names);
    llmrt_checkpoint_close(cp);
}

static llmrt_status build_tp(const char *model_dir, const char *engine, int32_t tp) {
    llmrt_build_options o;
    llmrt_build_options_init(&o);
    o.model_dir = model_dir;
    o.output_path = engine;
    o.tp_size = tp;
    o.max_batch = 2;
    o.max_num_tokens = 64;
    o.max_seq_len = 64;
    return llmrt_build(&o);
}

static llmrt_status build(const char *model_dir, const char *engine) { return build_tp(model_dir, engine, 1); }

static float *logits_of(const char *engine_path, const int32_t *ids, int32_t n, int32_t *vocab) {
    llmrt_engine *engine = NULL;
    CHECK_OK(llmrt_engine_load(engine_path, NULL, &engine));
    if (!engine) return NULL;
    *vocab = llmrt_engine_vocab_size(engine);
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)*vocab);
    CHECK_OK(llmrt_prompt_logits(engine, ids, n, logits));
    llmrt_engine_free(engine);
    return logits;
}

static void run_variant(const char *case_name, const variant *v) {
    char case_dir[1024], dir[1100], ref_dir[1100], engine[1200], ref_engine[1200]; /* tmp dirs are short */
    snprintf(case_dir, sizeof case_dir, "%s/tests/golden/cases/%s", LLMRT_SOURCE_DIR, case_name);
    char *tmp = test_temp_dir();
    snprintf(dir, sizeof dir, "%s/packed", tmp);
    snprintf(ref_dir, sizeof ref_dir, "%s/reference", tmp);
    mkdir(dir, 0755), mkdir(ref_dir, 0755);
    write_checkpoints(case_dir, v, dir, v->flaw == FLAW_NONE ? ref_dir : NULL);
    snprintf(engine, sizeof engine, "%s/packed.engine", tmp);
    snprintf(ref_engine, sizeof ref_engine, "%s/reference.engine", tmp);
    llmrt_status s = build(dir, engine);
    if (v->flaw != FLAW_NONE) {
        CHECK_MSG(s != LLMRT_OK && strstr(llmrt_last_error(), v->error), "%s: expected an error naming '%s', got: %s",
                  v->label, v->error, s == LLMRT_OK ? "success" : llmrt_last_error());
        free(tmp);
        return;
    }
    CHECK_MSG(s == LLMRT_OK, "%s: build: %s", v->label, llmrt_last_error());
    /* --tp 2 keeps the checkpoint's groups whole: down_proj's 96 inputs give
     * a rank 48, not a multiple of 32; act-order fails first, at o_proj */
    char tp_engine[1200];
    snprintf(tp_engine, sizeof tp_engine, "%s/packed.tp2.engine", tmp);
    s = build_tp(dir, tp_engine, 2);
    const char *tp_error =
        v->act_order ? "holds act-order (permuted) codes: its inputs cannot be split across 2"
                     : "down_proj.weight': tensor parallelism over 2 ranks gives each rank 48 of its 96 inputs, not a "
                       "multiple of the quantization group size 32";
    if (s == LLMRT_ERR_UNSUPPORTED && strstr(llmrt_last_error(), "built without")) tp_error = NULL; /* no MPI */
    CHECK_MSG(!tp_error || (s != LLMRT_OK && strstr(llmrt_last_error(), tp_error)),
              "%s: --tp 2: expected an error holding \"%s\", got: %s", v->label, tp_error ? tp_error : "",
              s == LLMRT_OK ? "success" : llmrt_last_error());
    CHECK_OK(build(ref_dir, ref_engine));
    int32_t ids[24], vocab = 0;
    for (int i = 0; i < 24; i++) ids[i] = (i * 37 + 5) % 100;
    float *got = logits_of(engine, ids, 24, &vocab), *want = logits_of(ref_engine, ids, 24, &vocab);
    if (got && want) {
        const double err = test_rel_l2(got, want, (size_t)(24 * vocab));
        fprintf(stderr, "   %s on %s: logits rel L2 %.3g against the dequantized f32 reference\n", v->label, case_name,
                err);
        CHECK_MSG(err < 1e-3, "%s on %s: logits rel L2 %g", v->label, case_name, err);
    }
    free(got), free(want), free(tmp);
}

/* --write DIR GROUP awq|gptq: writes llama_f32 as a 4-bit checkpoint in
 * groups of GROUP into DIR (tests/parallel/parallel_quant.sh builds it
 * with --tp). */
static int write_only(const char *dir, const char *group, const char *method) {
    const variant awq = {"awq", AWQ, 4, 0, NULL, FLAW_NONE, NULL, 0, 0};
    const variant gptq = {"gptq v2 asym", GPTQ_V2, 4, 0, NULL, FLAW_NONE, NULL, 0, 0};
    char case_dir[1024];
    snprintf(case_dir, sizeof case_dir, "%s/tests/golden/cases/llama_f32", LLMRT_SOURCE_DIR);
    packed_group = atoll(group);
    if (packed_group < 8 || 96 % packed_group || 64 % packed_group) {
        fprintf(stderr, "--write: group %s must divide 64 and 96\n", group);
        return 2;
    }
    write_checkpoints(case_dir, strcmp(method, "awq") == 0 ? &awq : &gptq, dir, NULL);
    return test_finish();
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--write") == 0) return write_only(argv[2], argv[3], argv[4]);
    /* the exact path: x stays f32, so only the weights differ */
    cpu_qlinear_set_integer(0);
    const variant variants[] = {
        {"awq", AWQ, 4, 0, NULL, FLAW_NONE, NULL, 0, 0},
        {"awq quant_config.json", AWQ, 4, 0, "quant_config.json", FLAW_NONE, NULL, 0, 0},
        {"gptq v1 sym", GPTQ_V1, 4, 1, NULL, FLAW_NONE, NULL, 0, 0},
        {"gptq v2 asym", GPTQ_V2, 4, 0, NULL, FLAW_NONE, NULL, 0, 0},
        {"gptq v2 8-bit quantize_config.json", GPTQ_V2, 8, 0, "quantize_config.json", FLAW_NONE, NULL, 0, 0},
        {"awq gemv", AWQ, 4, 0, NULL, FLAW_VERSION, "'version'", 0, 0},
        {"bitsandbytes", GPTQ_V2, 4, 0, NULL, FLAW_METHOD, "'quant_method'", 0, 0},
        {"gptq act-order", GPTQ_V2, 4, 0, NULL, FLAW_NONE, NULL, 0, 1},
        {"gptq v1 act-order 8-bit", GPTQ_V1, 8, 1, NULL, FLAW_NONE, NULL, 0, 1},
        {"gptq uneven groups", GPTQ_V2, 4, 0, NULL, FLAW_UNEVEN_packed_groupS, "g_idx", 0, 1},
        {"gptq f32 qweight", GPTQ_V2, 4, 0, NULL, FLAW_DTYPE, "qweight", 0, 0},
        {"gptq v1 zero biases", GPTQ_V1, 4, 1, NULL, FLAW_NONE, NULL, 1, 0},
        {"gptq non-zero bias", GPTQ_V1, 4, 1, NULL, FLAW_BIAS, "does not use", 1, 0},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        fprintf(stderr, "-- %s\n", variants[i].label);
        run_variant("llama_f32", &variants[i]);
    }
    /* biases on q/k/v and a tied LM head */
    run_variant("qwen2_f32", &variants[0]);
    run_variant("qwen2_f32", &variants[3]);
    run_variant("qwen2_f32", &variants[7]); /* act-order */
    return test_finish();
}
