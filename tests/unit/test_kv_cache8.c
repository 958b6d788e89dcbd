/* The 8-bit KV cache on the CPU (--kv-cache fp8|int8):
 *   - append and read back: each (token, kv head) row gets scale
 *     max|row| / QMAX and every element comes back within the format's
 *     rounding (int8: scale / 2; E4M3: 2^-4 relative, 2^-10 · scale in the
 *     subnormals);
 *   - attention over the codes equals, within 1e-5, the same attention over
 *     an f32 cache holding decode(code) · scale (computed here, not by the
 *     kernels' own dequantization), on every ISA the machine has, for
 *     prefill and decode tokens in one packed batch, GQA, head sizes on and
 *     off the SIMD paths, contexts past one softmax chunk, a sliding window;
 *     unused cache slots hold NaN scales so a stray read shows;
 *   - the CPU backend's block copy carries codes and scales (a step reading
 *     the copies gives the same logits as one reading the originals), and
 *     the plan's kv_dtype survives the engine's JSON. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/cpu/cpu_kernels.h"
#include "compiler/compiler.h"
#include "core/quant8.h"
#include "engine/plan_json.h"
#include "llmrt/llmrt.h"
#include "test_util.h"

static const char *const isa_names[] = {"portable", "avx2", "avx512"};
static const int kinds[] = {LLMRT_Q8_FP8, LLMRT_Q8_INT8};

static int use_isa(const char *isa) {
    cpu_kernels_force_isa(isa);
    if (strcmp(cpu_kernels_isa(), isa) == 0) return 1;
    cpu_kernels_force_isa(NULL);
    return 0;
}

/* A cache of num_blocks blocks with poisoned scales (NaN) and codes. */
typedef struct kv8_fixture {
    cpu_kv8_layer layer;
    int64_t rows; /* slots · kv_heads */
} kv8_fixture;

static void fixture_init(kv8_fixture *f, int kind, int64_t slots, int64_t kv_heads, int64_t head_dim) {
    f->rows = slots * kv_heads;
    f->layer.kind = kind;
    f->layer.k_codes = malloc((size_t)(f->rows * head_dim));
    f->layer.v_codes = malloc((size_t)(f->rows * head_dim));
    f->layer.k_scales = malloc(sizeof(float) * (size_t)f->rows);
    f->layer.v_scales = malloc(sizeof(float) * (size_t)f->rows);
    memset(f->layer.k_codes, 0x5a, (size_t)(f->rows * head_dim));
    memset(f->layer.v_codes, 0x5a, (size_t)(f->rows * head_dim));
    for (int64_t i = 0; i < f->rows; i++) f->layer.k_scales[i] = f->layer.v_scales[i] = NAN;
}

static void fixture_free(kv8_fixture *f) {
    free(f->layer.k_codes), free(f->layer.v_codes), free(f->layer.k_scales), free(f->layer.v_scales);
}

/* The f32 twin of the 8-bit cache: decode(code) · scale per element, NaN
 * where the slot was never written. */
static void dequantize_reference(const kv8_fixture *f, int64_t head_dim, float *k, float *v) {
    for (int64_t r = 0; r < f->rows; r++)
        for (int64_t d = 0; d < head_dim; d++) {
            k[r * head_dim + d] = llmrt_q8_decode(f->layer.kind, f->layer.k_codes[r * head_dim + d]) * f->layer.k_scales[r];
            v[r * head_dim + d] = llmrt_q8_decode(f->layer.kind, f->layer.v_codes[r * head_dim + d]) * f->layer.v_scales[r];
        }
}

/* |x − x̂| allowed for one element of a row with this scale. */
static double element_bound(int kind, float x, float scale) {
    if (kind == LLMRT_Q8_INT8) return 0.5 * scale * (1 + 1e-5) + 1e-12;
    return fmax(fabs(x) * 0.0625, scale * 0x1p-10) * (1 + 1e-5) + 1e-12;
}

static void test_append_and_read(void) {
    enum { T = 19, KV_HEADS = 3, HEAD_DIM = 40, BS = 8, BLOCKS = 6 };
    uint64_t rng = 11;
    float k[T * KV_HEADS * HEAD_DIM], v[T * KV_HEADS * HEAD_DIM];
    test_fill_random(k, sizeof k / sizeof k[0], &rng, 3.0f);
    test_fill_random(v, sizeof v / sizeof v[0], &rng, 0.01f);
    for (int i = 0; i < HEAD_DIM; i++) k[(5 * KV_HEADS + 1) * HEAD_DIM + i] = 0.0f; /* an all-zero row: scale 1 */
    k[(7 * KV_HEADS) * HEAD_DIM + 3] = 1000.0f; /* one outlier: its row's other values go subnormal in E4M3 */
    /* one sequence of T tokens over blocks 4, 1, 5 */
    int32_t seq_start[2] = {0, T}, positions[T], table[3] = {4, 1, 5};
    for (int t = 0; t < T; t++) positions[t] = t;
    cpu_attention_batch batch = {1, seq_start, positions, table, 3, BS, 0};
    for (size_t ki = 0; ki < 2; ki++) {
        kv8_fixture f;
        fixture_init(&f, kinds[ki], BLOCKS * BS, KV_HEADS, HEAD_DIM);
        cpu_kv8_cache_write(&f.layer, k, v, &batch, T, KV_HEADS, HEAD_DIM);
        const float qmax = kinds[ki] == LLMRT_Q8_FP8 ? LLMRT_FP8_E4M3_MAX : LLMRT_INT8_QMAX;
        int scales_ok = 1, values_ok = 1;
        double err2 = 0, ref2 = 0;
        float kd[KV_HEADS * HEAD_DIM], vd[KV_HEADS * HEAD_DIM];
        for (int t = 0; t < T; t++) {
            const size_t slot = (size_t)table[t / BS] * BS + (size_t)(t % BS);
            cpu_kv8_dequantize_slots(&f.layer, slot, 1, 0, KV_HEADS, KV_HEADS, HEAD_DIM, kd, KV_HEADS * HEAD_DIM, vd);
            for (int h = 0; h < KV_HEADS; h++) {
                const float *kr = k + (t * KV_HEADS + h) * HEAD_DIM, *vr = v + (t * KV_HEADS + h) * HEAD_DIM;
                float kmax = 0, vmax = 0;
                for (int d = 0; d < HEAD_DIM; d++) kmax = fmaxf(kmax, fabsf(kr[d])), vmax = fmaxf(vmax, fabsf(vr[d]));
                const float ks = kmax > 0 ? kmax / qmax : 1.0f, vs = vmax > 0 ? vmax / qmax : 1.0f;
                const size_t row = slot * KV_HEADS + (size_t)h;
                scales_ok &= f.layer.k_scales[row] == ks && f.layer.v_scales[row] == vs;
                for (int d = 0; d < HEAD_DIM; d++) {
                    const float kx = kd[h * HEAD_DIM + d], vx = vd[h * HEAD_DIM + d];
                    values_ok &= fabs((double)kx - kr[d]) <= element_bound(f.layer.kind, kr[d], ks);
                    values_ok &= fabs((double)vx - vr[d]) <= element_bound(f.layer.kind, vr[d], vs);
                    err2 += ((double)vx - vr[d]) * ((double)vx - vr[d]);
                    ref2 += (double)vr[d] * vr[d];
                }
            }
        }
        CHECK_MSG(scales_ok, "kind %d: a scale is not max|row| / %g", kinds[ki], (double)qmax);
        CHECK_MSG(values_ok, "kind %d: an element is outside the rounding bound", kinds[ki]);
        /* uniform values: fp8 keeps ~2-3% relative L2, int8 ~0.5% */
        const double rel = sqrt(err2 / ref2);
        CHECK_MSG(rel < (kinds[ki] == LLMRT_Q8_FP8 ? 0.04 : 0.008), "kind %d: relative L2 error %g", kinds[ki], rel);
        /* slots never written keep their poison */
        CHECK(isnan(f.layer.k_scales[0]) && isnan(f.layer.v_scales[(size_t)(2 * BS) * KV_HEADS]));
        fixture_free(&f);
    }
}

/* One packed batch: decode tokens, a fresh prefill, a prefill with a past,
 * and (long) contexts past one 256-position softmax chunk. */
#define NUM_SEQS 4
static const int32_t short_past[NUM_SEQS] = {37, 0, 50, 3}, short_fresh[NUM_SEQS] = {1, 23, 5, 1};
static const int32_t long_past[NUM_SEQS] = {599, 250, 256, 0}, long_fresh[NUM_SEQS] = {1, 9, 1, 3};

static void check_attention(int kind, const int32_t *past, const int32_t *fresh, int32_t bs, int64_t heads,
                            int64_t kv_heads, int64_t head_dim, int32_t window, uint64_t *rng) {
    int32_t seq_start[NUM_SEQS + 1] = {0}, max_len = 0;
    for (int s = 0; s < NUM_SEQS; s++) {
        seq_start[s + 1] = seq_start[s] + fresh[s];
        if (past[s] + fresh[s] > max_len) max_len = past[s] + fresh[s];
    }
    const int64_t T = seq_start[NUM_SEQS], row = kv_heads * head_dim;
    const int32_t max_blocks = (max_len + bs - 1) / bs + 1, num_blocks = NUM_SEQS * max_blocks + 2;
    int32_t *tables = malloc(sizeof(int32_t) * NUM_SEQS * max_blocks), *perm = malloc(sizeof(int32_t) * num_blocks);
    for (int32_t i = 0; i < num_blocks; i++) perm[i] = i;
    for (int32_t i = num_blocks - 1; i > 0; i--) {
        int32_t j = (int32_t)(test_rand_u64(rng) % (uint64_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    memcpy(tables, perm, sizeof(int32_t) * NUM_SEQS * max_blocks);
    kv8_fixture f;
    fixture_init(&f, kind, (int64_t)num_blocks * bs, kv_heads, head_dim);

    /* the past and the step's tokens, appended through the kernel: first
     * every sequence's past as one batch, then the step */
    int32_t past_start[NUM_SEQS + 1] = {0}, step_positions[4096], past_positions[4096];
    for (int s = 0; s < NUM_SEQS; s++) past_start[s + 1] = past_start[s] + past[s];
    const int64_t P = past_start[NUM_SEQS];
    for (int s = 0; s < NUM_SEQS; s++) {
        for (int32_t p = 0; p < past[s]; p++) past_positions[past_start[s] + p] = p;
        for (int32_t i = 0; i < fresh[s]; i++) step_positions[seq_start[s] + i] = past[s] + i;
    }
    float *k = malloc(sizeof(float) * (size_t)((P + T) * row)), *v = malloc(sizeof(float) * (size_t)((P + T) * row));
    test_fill_random(k, (size_t)((P + T) * row), rng, 1.5f);
    test_fill_random(v, (size_t)((P + T) * row), rng, 1.0f);
    if (P > 0) {
        cpu_attention_batch pb = {NUM_SEQS, past_start, past_positions, tables, max_blocks, bs, 0};
        cpu_kv8_cache_write(&f.layer, k, v, &pb, P, kv_heads, head_dim);
    }
    cpu_attention_batch batch = {NUM_SEQS, seq_start, step_positions, tables, max_blocks, bs, 0};
    cpu_kv8_cache_write(&f.layer, k + P * row, v + P * row, &batch, T, kv_heads, head_dim);

    const size_t cache_floats = (size_t)num_blocks * (size_t)bs * (size_t)row;
    float *k_ref = malloc(sizeof(float) * cache_floats), *v_ref = malloc(sizeof(float) * cache_floats);
    dequantize_reference(&f, head_dim, k_ref, v_ref);
    const size_t out_floats = (size_t)(T * heads * head_dim);
    float *q = malloc(sizeof(float) * out_floats), *a = malloc(sizeof(float) * out_floats);
    float *b = malloc(sizeof(float) * out_floats);
    test_fill_random(q, out_floats, rng, 2.0f);
    const float scale = (float)(1.0 / sqrt((double)head_dim));
    const cpu_attention_variant variant = {.sliding_window = window};
    for (size_t i = 0; i < 3; i++) {
        if (!use_isa(isa_names[i])) continue;
        CHECK_OK(cpu_attention_kv8(a, q, &f.layer, &batch, T, heads, kv_heads, head_dim, scale, &variant));
        cpu_attention_ex(b, q, k_ref, v_ref, &batch, T, heads, kv_heads, head_dim, scale, &variant);
        double worst = 0;
        for (size_t e = 0; e < out_floats; e++) worst = fmax(worst, isnan(a[e]) ? INFINITY : fabs((double)a[e] - b[e]));
        CHECK_MSG(worst <= 1e-5, "%s kind %d bs %d heads %lld/%lld head_dim %lld window %d: max |diff| %g",
                  isa_names[i], kind, bs, (long long)heads, (long long)kv_heads, (long long)head_dim, window, worst);
    }
    cpu_kernels_force_isa(NULL);
    free(tables), free(perm), free(k), free(v), free(k_ref), free(v_ref), free(q), free(a), free(b);
    fixture_free(&f);
}

static void test_attention_matches_dequantized(void) {
    uint64_t rng = 7;
    for (size_t ki = 0; ki < 2; ki++) {
        const int kind = kinds[ki];
        check_attention(kind, short_past, short_fresh, 16, 8, 2, 32, 0, &rng);  /* GQA 4, SIMD token kernel */
        check_attention(kind, short_past, short_fresh, 16, 4, 4, 64, 0, &rng);  /* MHA */
        check_attention(kind, short_past, short_fresh, 8, 6, 1, 20, 0, &rng);   /* MQA, head_dim off the SIMD paths */
        check_attention(kind, long_past, long_fresh, 16, 8, 2, 128, 0, &rng);   /* past one softmax chunk */
        check_attention(kind, short_past, short_fresh, 16, 8, 2, 32, 24, &rng); /* sliding window */
        check_attention(kind, long_past, long_fresh, 32, 4, 2, 64, 100, &rng);
    }
}

static llmrt_model_config tiny_llama(void) {
    llmrt_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    c.vocab_size = 61, c.hidden_size = 32, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 8;
    c.intermediate_size = 40, c.max_position_embeddings = 128, c.norm_eps = 1e-5f;
    c.activation = LLMRT_ACT_SILU;
    c.rope.type = LLMRT_ROPE_DEFAULT, c.rope.theta = 10000.0f, c.rope.rotary_dim = 8;
    c.bos_token_id = c.pad_token_id = -1;
    return c;
}

/* A 20-token prompt in blocks {2, 5}; blocks 2 → 6 and 5 → 7 copied; then
 * the same decode token over {2, 5}, {6, 7} and {6, 5} gives equal logits. */
static void test_block_copy_keeps_scales(void) {
    const llmrt_model_config c = tiny_llama();
    llmrt_compile_options o = {.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                               .max_num_tokens = 32, .max_batch = 2, .max_seq_len = 64, .random_weights = 1,
                               .seed = 5, .kv_dtype = LLMRT_DTYPE_I8};
    for (int pass = 0; pass < 2; pass++) {
        o.kv_dtype = pass == 0 ? LLMRT_DTYPE_I8 : LLMRT_DTYPE_FP8_E4M3;
        llmrt_plan *plan = NULL;
        CHECK_OK(llmrt_compile(&c, NULL, &o, &plan));
        if (!plan) return;
        CHECK(plan->kv_dtype == o.kv_dtype);
        json_t *json = llmrt_plan_to_json(plan);
        llmrt_plan *back = NULL;
        CHECK_OK(llmrt_plan_from_json(json, "test", &back));
        CHECK(back && back->kv_dtype == o.kv_dtype);
        json_object_set_new(json, "kv_cache_dtype", json_string("f16")); /* only 8-bit types are stored */
        llmrt_plan *bad = NULL;
        CHECK(llmrt_plan_from_json(json, "test", &bad) != LLMRT_OK && !bad);
        json_object_del(json, "kv_cache_dtype"); /* an engine from before: the activation dtype */
        llmrt_plan *old = NULL;
        CHECK_OK(llmrt_plan_from_json(json, "test", &old));
        CHECK(old && old->kv_dtype == LLMRT_DTYPE_INVALID);
        llmrt_plan_free(old), llmrt_plan_free(back), json_decref(json);

        llmrt_backend_config bc = {.num_threads = 2, .kv_block_size = 16, .kv_num_blocks = 8};
        void *state = NULL;
        CHECK_OK(llmrt_cpu_backend_ops.create(plan, &bc, &state));
        if (state) {
            llmrt_memory_report mem;
            llmrt_cpu_backend_ops.memory_report(state, &mem);
            /* 8 blocks · 16 tokens · 2 kv heads · 2 layers · (8 codes + 4 scale bytes) · K and V */
            CHECK_MSG(mem.kv_cache_bytes == 8u * 16 * 2 * 2 * (8 + 4) * 2, "kv bytes %llu",
                      (unsigned long long)mem.kv_cache_bytes);
            int32_t ids[20], positions[20], seq_start[2] = {0, 20}, table[4] = {2, 5, 0, 0}, last = 19;
            for (int i = 0; i < 20; i++) ids[i] = (i * 7 + 3) % c.vocab_size, positions[i] = i;
            float logits[3][61];
            llmrt_step prompt = {.num_tokens = 20, .token_ids = ids, .positions = positions, .num_seqs = 1,
                                 .seq_start = seq_start, .block_tables = table, .max_blocks_per_seq = 4,
                                 .num_logits = 1, .logits_indices = &last};
            CHECK_OK(llmrt_cpu_backend_ops.forward(state, &prompt, logits[0]));
            CHECK_OK(llmrt_cpu_backend_ops.copy_kv_block(state, 2, 6));
            CHECK_OK(llmrt_cpu_backend_ops.copy_kv_block(state, 5, 7));
            static const int32_t tables[3][4] = {{2, 5, 0, 0}, {6, 7, 0, 0}, {6, 5, 0, 0}};
            int32_t token = 9, pos = 20, one[2] = {0, 1}, row0 = 0;
            for (int i = 0; i < 3; i++) {
                llmrt_step decode = {.num_tokens = 1, .token_ids = &token, .positions = &pos, .num_seqs = 1,
                                     .seq_start = one, .block_tables = tables[i], .max_blocks_per_seq = 4,
                                     .num_logits = 1, .logits_indices = &row0};
                CHECK_OK(llmrt_cpu_backend_ops.forward(state, &decode, logits[i]));
            }
            CHECK_MSG(memcmp(logits[0], logits[1], sizeof logits[0]) == 0 &&
                          memcmp(logits[0], logits[2], sizeof logits[0]) == 0,
                      "kv %s: a step over copied blocks differs (rel %g)", llmrt_dtype_name(o.kv_dtype),
                      test_rel_l2(logits[1], logits[0], 61));
            llmrt_cpu_backend_ops.destroy(state);
        }
        llmrt_plan_free(plan);
    }
}

int main(void) {
    RUN_TEST(test_append_and_read);
    RUN_TEST(test_attention_matches_dequantized);
    RUN_TEST(test_block_copy_keeps_scales);
    return test_finish();
}
