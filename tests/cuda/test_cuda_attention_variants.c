/* cuda_attention_variant (sliding window, logit soft-cap, ALiBi) against
 * its CPU twin cpu_attention_ex on the same rounded inputs: f32/bf16/f16,
 * windows cutting a block, equal to it and past the context, GQA, odd and
 * large head sizes, a mixed step (decode token, prefill with a past, fresh
 * prefill). Cache slots never written and whole blocks before each
 * sequence's window are NaN with -1 in the block table, as the runtime
 * leaves them after freeing. Exits 77 (skipped) without a GPU. */
#include <math.h>
#include <stdint.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cuda/cuda_kernels.h"
#include "cuda_test_util.h"

static uint64_t rng = 0x5eed5eed12345ull;

enum { SEQS = 3 };
static const int past[SEQS] = {90, 21, 0};
static const int fresh[SEQS] = {1, 15, 70};

static void run_case(llmrt_dtype type, int D, int H, int Hkv, int bs, const cpu_attention_variant *var) {
    int32_t seq_start[SEQS + 1] = {0};
    int max_ctx = 0;
    for (int s = 0; s < SEQS; s++) {
        seq_start[s + 1] = seq_start[s] + fresh[s];
        if (past[s] + fresh[s] > max_ctx) max_ctx = past[s] + fresh[s];
    }
    const int T = seq_start[SEQS], max_blocks = (max_ctx + bs - 1) / bs, num_blocks = SEQS * max_blocks;
    int32_t *tables = malloc(sizeof(int32_t) * (size_t)num_blocks);
    for (int i = 0; i < num_blocks; i++) tables[i] = i;
    for (int i = num_blocks - 1; i > 0; i--) {
        int j = (int)(test_rand_u64(&rng) % (uint64_t)(i + 1));
        int32_t tmp = tables[i];
        tables[i] = tables[j], tables[j] = tmp;
    }
    int32_t *positions = malloc(sizeof(int32_t) * (size_t)T), *token_seq = malloc(sizeof(int32_t) * (size_t)T);
    for (int s = 0; s < SEQS; s++)
        for (int i = 0; i < fresh[s]; i++) {
            positions[seq_start[s] + i] = past[s] + i;
            token_seq[seq_start[s] + i] = s;
        }
    /* caches: every slot of the contexts filled, the rest NaN */
    const size_t row = (size_t)Hkv * D, cache_n = (size_t)num_blocks * bs * row, qn = (size_t)T * H * D;
    float *kc = malloc(cache_n * 4), *vc = malloc(cache_n * 4);
    for (size_t i = 0; i < cache_n; i++) kc[i] = vc[i] = NAN;
    for (int s = 0; s < SEQS; s++)
        for (int p = 0; p < past[s] + fresh[s]; p++) {
            const size_t slot = (size_t)tables[s * max_blocks + p / bs] * bs + p % bs;
            test_fill_random(kc + slot * row, row, &rng, 1.0f);
            test_fill_random(vc + slot * row, row, &rng, 1.0f);
        }
    if (var->sliding_window > 0) /* free the blocks before each sequence's first window */
        for (int s = 0; s < SEQS; s++)
            for (int b = 0; (b + 1) * bs <= past[s] + 1 - var->sliding_window; b++) {
                int32_t *slot = &tables[s * max_blocks + b];
                for (size_t i = (size_t)*slot * bs * row; i < (size_t)(*slot + 1) * bs * row; i++) kc[i] = vc[i] = NAN;
                *slot = -1;
            }
    round_to(kc, cache_n, type);
    round_to(vc, cache_n, type);
    float *q = rand_floats(qn, &rng, 2.0f);
    round_to(q, qn, type);

    void *dkc = dev_from_f32(kc, cache_n, type), *dvc = dev_from_f32(vc, cache_n, type);
    void *dq = dev_from_f32(q, qn, type), *dout = dev_poisoned(qn * 4);
    int32_t *dpos = dev_from_bytes(positions, (size_t)T * 4), *dseq = dev_from_bytes(token_seq, (size_t)T * 4),
            *dtables = dev_from_bytes(tables, (size_t)num_blocks * 4);
    cuda_attention_batch b = {.num_tokens = T, .num_seqs = SEQS, .positions = dpos, .token_seq = dseq,
                              .block_tables = dtables, .block_table_stride = max_blocks, .block_size = bs};
    const cuda_attention_variant_params dv = {var->sliding_window, var->logit_softcap, var->alibi_max_bias,
                                             var->alibi_first_head, var->alibi_total_heads};
    const float scale = 0.8f / sqrtf((float)D);
    CUDA_CHECK(cuda_attention_variant(dout, dq, dkc, dvc, type, &b, H, Hkv, D, scale, &dv, 0));

    float *ref = malloc(qn * 4), *got = malloc(qn * 4);
    cpu_attention_batch cb = {.num_seqs = SEQS, .seq_start = seq_start, .positions = positions,
                              .block_tables = tables, .max_blocks_per_seq = max_blocks, .block_size = bs};
    cpu_attention_ex(ref, q, kc, vc, &cb, T, H, Hkv, D, scale, var);
    dev_to_f32(got, dout, qn, type);
    CHECK_CLOSE(got, ref, qn, tol_for(type), "variant %s D=%d H=%d Hkv=%d bs=%d window=%d softcap=%g alibi=%g",
                llmrt_dtype_name(type), D, H, Hkv, bs, var->sliding_window, (double)var->logit_softcap,
                (double)var->alibi_max_bias);
    void *bufs[] = {dkc, dvc, dq, dout, dpos, dseq, dtables};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    free(tables), free(positions), free(token_seq), free(kc), free(vc), free(q), free(ref), free(got);
}

static void test_variants(void) {
    static const llmrt_dtype types[3] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_BF16, LLMRT_DTYPE_F16};
    static const int windows[] = {1, 5, 16, 37, 4096};
    for (int t = 0; t < 3; t++) {
        for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
            cpu_attention_variant var = {.sliding_window = windows[w]};
            run_case(types[t], 64, 8, 2, 16, &var);
            run_case(types[t], 17, 3, 1, 8, &var);
        }
        cpu_attention_variant gemma2 = {.sliding_window = 9, .logit_softcap = 50.0f};
        run_case(types[t], 256, 8, 4, 16, &gemma2);
        cpu_attention_variant softcap = {.logit_softcap = 1.5f};
        run_case(types[t], 80, 4, 4, 32, &softcap);
        cpu_attention_variant alibi = {.alibi_max_bias = 8.0f};
        run_case(types[t], 8, 6, 6, 16, &alibi); /* BLOOM's non-power-of-two heads */
        cpu_attention_variant alibi_window = {.sliding_window = 20, .alibi_max_bias = 4.0f};
        run_case(types[t], 128, 4, 4, 16, &alibi_window);
    }
}

int main(void) {
    int skip = cuda_test_skip_code();
    if (skip >= 0) return skip;
    RUN_TEST(test_variants);
    return test_finish();
}
