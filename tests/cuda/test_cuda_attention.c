/* The step-level CUDA kernels against host references, on fresh random
 * inputs: RoPE + KV write, prefill attention (tensor cores), split-K
 * decode attention (one and many parts, mixed steps as the backend splits
 * them, GQA 1/4/8, odd head sizes, paged blocks in shuffled order), and
 * device sampling. Exits 77 (skipped) without a GPU. The element-wise,
 * row and matrix kernels are in test_cuda_kernels.c. */
#include <math.h>
#include <stdint.h>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cuda/cuda_kernels.h"
#include "cuda_test_util.h"

static uint64_t rng = 0x8765432112345678ull;
static const llmrt_dtype float_types[3] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_BF16, LLMRT_DTYPE_F16};

/* ---- attention --------------------------------------------------------- */

typedef struct attn_case {
    llmrt_dtype type;
    int head_dim, heads, kv_heads, block_size, rotary_dim, neox;
    int num_seqs;
    int new_tokens[4], past[4];
    int kernel; /* 0: prefill (tensor cores), 1: split-K decode kernel, 2: a mixed step as the
                 * backend runs it (prefill tiles for chunks, decode kernel for one-token rows),
                 * 3: a decode step with RoPE and the KV write fused into the decode kernel (also
                 * checked bit for bit against 1), 4: the same in the early mode (q by a flag
                 * already up, the own row last; one token, one query head a kv head) */
    int parts;  /* decode partitions; 0: cuda_decode_partitions */
    int wide;   /* kernels 1 and 3: ask for the register-rich small-launch instance */
} attn_case;
/* 1: the cases run as encoder (non-causal) attention, kernels 0-2, the
 * masks reading each sequence's end */
static int non_causal;

static void run_attention_case(const attn_case *c) {
    const int S = c->num_seqs, D = c->head_dim, H = c->heads, Hkv = c->kv_heads, bs = c->block_size;
    int T = 0, max_blocks = 0, total_blocks = 0, max_ctx = 0;
    int32_t seq_start[5] = {0};
    for (int s = 0; s < S; s++) {
        T += c->new_tokens[s];
        seq_start[s + 1] = T;
        const int ctx = c->past[s] + c->new_tokens[s];
        const int nb = (ctx + bs - 1) / bs;
        if (nb > max_blocks) max_blocks = nb;
        if (ctx > max_ctx) max_ctx = ctx;
        total_blocks += nb;
    }
    const int num_blocks = total_blocks + 3;
    /* shuffled block ids */
    int32_t *perm = malloc(num_blocks * sizeof(int32_t));
    for (int i = 0; i < num_blocks; i++) perm[i] = i;
    for (int i = num_blocks - 1; i > 0; i--) {
        int j = (int)(test_rand_u64(&rng) % (uint64_t)(i + 1));
        int32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    int32_t *tables = calloc((size_t)S * max_blocks, sizeof(int32_t));
    int used = 0;
    for (int s = 0; s < S; s++) {
        const int nb = (c->past[s] + c->new_tokens[s] + bs - 1) / bs;
        for (int b = 0; b < nb; b++) tables[s * max_blocks + b] = perm[used++];
    }
    int32_t *positions = malloc(T * sizeof(int32_t)), *token_seq = malloc(T * sizeof(int32_t)),
            *slots = malloc(T * sizeof(int32_t));
    for (int s = 0; s < S; s++)
        for (int i = 0; i < c->new_tokens[s]; i++) {
            const int t = seq_start[s] + i, p = c->past[s] + i;
            positions[t] = p;
            token_seq[t] = s;
            slots[t] = tables[s * max_blocks + p / bs] * bs + p % bs;
        }
    int32_t tiles[2 * 64], decode_rows[4];
    int num_tiles = 0, num_decode = 0;
    for (int s = 0; s < S; s++) {
        if (c->kernel == 2 && c->new_tokens[s] == 1) {
            decode_rows[num_decode++] = seq_start[s];
            continue;
        }
        for (int r = seq_start[s]; r < seq_start[s + 1]; r += CUDA_PREFILL_TILE_M) {
            tiles[2 * num_tiles] = r;
            tiles[2 * num_tiles + 1] = seq_start[s + 1] - r < CUDA_PREFILL_TILE_M ? seq_start[s + 1] - r : CUDA_PREFILL_TILE_M;
            num_tiles++;
        }
    }

    /* Inputs: q, new k, v; the past already in the cache (random). */
    const size_t qn = (size_t)T * H * D, kn = (size_t)T * Hkv * D;
    const size_t cache_n = (size_t)num_blocks * bs * Hkv * D;
    float *q = rand_floats(qn, &rng, 1.0f), *k = rand_floats(kn, &rng, 1.0f), *v = rand_floats(kn, &rng, 1.0f);
    round_to(q, qn, c->type);
    round_to(k, kn, c->type);
    round_to(v, kn, c->type);
    float *kc = calloc(cache_n, 4), *vc = calloc(cache_n, 4);
    for (int s = 0; s < S; s++)
        for (int p = 0; p < c->past[s]; p++) {
            const size_t slot = (size_t)tables[s * max_blocks + p / bs] * bs + p % bs;
            test_fill_random(kc + slot * Hkv * D, (size_t)Hkv * D, &rng, 1.0f);
            test_fill_random(vc + slot * Hkv * D, (size_t)Hkv * D, &rng, 1.0f);
        }
    round_to(kc, cache_n, c->type);
    round_to(vc, cache_n, c->type);
    float inv_freq[128];
    for (int i = 0; i < c->rotary_dim / 2; i++) inv_freq[i] = 1.0f / powf(10000.0f, (2.0f * i) / c->rotary_dim);

    /* GPU: caches hold NaN wherever nothing was written (unused slots). */
    void *dkc = dev_poisoned(cache_n * 4), *dvc = dev_poisoned(cache_n * 4);
    {
        const size_t es = llmrt_dtype_size(c->type);
        void *tmpk = malloc(cache_n * es), *tmpv = malloc(cache_n * es);
        llmrt_convert_from_f32(tmpk, c->type, kc, cache_n);
        llmrt_convert_from_f32(tmpv, c->type, vc, cache_n);
        for (int s = 0; s < S; s++)
            for (int p = 0; p < c->past[s]; p++) {
                const size_t slot = (size_t)tables[s * max_blocks + p / bs] * bs + p % bs, row = (size_t)Hkv * D * es;
                cudaMemcpy((char *)dkc + slot * row, (char *)tmpk + slot * row, row, cudaMemcpyHostToDevice);
                cudaMemcpy((char *)dvc + slot * row, (char *)tmpv + slot * row, row, cudaMemcpyHostToDevice);
            }
        free(tmpk);
        free(tmpv);
    }
    void *dq = dev_from_f32(q, qn, c->type), *dk = dev_from_f32(k, kn, c->type), *dv = dev_from_f32(v, kn, c->type);
    void *dout = dev_poisoned(qn * 4), *dfreq = dev_from_f32(inv_freq, 128, LLMRT_DTYPE_F32);
    int32_t *dpos = dev_from_bytes(positions, T * 4), *dseq = dev_from_bytes(token_seq, T * 4),
            *dslots = dev_from_bytes(slots, T * 4), *dtables = dev_from_bytes(tables, (size_t)S * max_blocks * 4),
            *dtiles = dev_from_bytes(tiles, sizeof tiles), *drows = dev_from_bytes(decode_rows, sizeof decode_rows);
    cuda_attention_batch b = {.num_tokens = T, .num_seqs = S, .positions = dpos, .token_seq = dseq,
                              .slot_mapping = dslots, .block_tables = dtables, .block_table_stride = max_blocks,
                              .block_size = bs, .tiles = dtiles, .num_tiles = num_tiles};
    const float scale = 1.0f / sqrtf((float)D);
    void *ws = NULL, *dkc2 = NULL, *dvc2 = NULL, *dout2 = NULL, *dtable = NULL;
    const size_t es = llmrt_dtype_size(c->type);
    if (c->kernel >= 3) { /* the unfused pair on copies of the caches, for the bitwise comparison */
        cudaMalloc(&dkc2, cache_n * es);
        cudaMalloc(&dvc2, cache_n * es);
        cudaMalloc(&dout2, qn * es);
        cudaMemcpy(dkc2, dkc, cache_n * es, cudaMemcpyDeviceToDevice);
        cudaMemcpy(dvc2, dvc, cache_n * es, cudaMemcpyDeviceToDevice);
        cudaMalloc(&dtable, (size_t)T * 256 * sizeof(float));
        if (c->rotary_dim)
            CUDA_CHECK(cuda_rope_table(dtable, dpos, T, dfreq, c->rotary_dim, 0, 0));
    } else {
        CUDA_CHECK(cuda_rope_kv_write(dout, dq, dk, dv, dkc, dvc, c->type, &b, H, Hkv, D, c->rotary_dim,
                                      c->rotary_dim ? dfreq : NULL, c->neox, 0, 0));
    }
    /* non-causal: the backend hands the kernels each token's sequence end as
     * its position (the cache already holds the whole step) */
    int32_t *ends = malloc(T * sizeof(int32_t)), *dends = NULL;
    for (int s = 0; s < S; s++)
        for (int t = seq_start[s]; t < seq_start[s + 1]; t++) ends[t] = positions[seq_start[s + 1] - 1];
    if (non_causal) {
        dends = dev_from_bytes(ends, T * 4);
        b.positions = dends;
    }
    int32_t *counters = NULL;
    if (c->kernel == 0) {
        CUDA_CHECK(cuda_attention_prefill(dout, dout, dkc, dvc, c->type, &b, H, Hkv, D, scale, 0));
    } else {
        cuda_attention_batch db = b;
        db.wide = c->wide;
        if (c->kernel == 2) {
            if (num_tiles > 0) CUDA_CHECK(cuda_attention_prefill(dout, dout, dkc, dvc, c->type, &b, H, Hkv, D, scale, 0));
            db.token_index = drows;
            db.num_tokens = num_decode;
        }
        const int parts = c->parts ? c->parts : cuda_decode_partitions(db.num_tokens, H, Hkv);
        const size_t wsb = cuda_decode_workspace_bytes(db.num_tokens, H, D, parts);
        cudaMalloc(&ws, wsb ? wsb : 4);
        dev_poison(ws, wsb);
        cudaMalloc((void **)&counters, (size_t)T * H * 4);
        cudaMemset(counters, 0, (size_t)T * H * 4);
        if (c->kernel == 3) {
            const cuda_rope_fused rope = {dk, dv, c->rotary_dim ? dtable : NULL, c->rotary_dim, c->neox, NULL, 0};
            CUDA_CHECK(cuda_attention_decode(dout, dq, dkc, dvc, c->type, &db, H, Hkv, D, scale, parts, ws, counters,
                                             &rope, 0, 0));
            CUDA_CHECK(cuda_rope_kv_write(dout2, dq, dk, dv, dkc2, dvc2, c->type, &b, H, Hkv, D, c->rotary_dim,
                                          c->rotary_dim ? dfreq : NULL, c->neox, 0, 0));
            CUDA_CHECK(cuda_attention_decode(dout2, dout2, dkc2, dvc2, c->type, &db, H, Hkv, D, scale, parts, ws,
                                             counters, NULL, 0, 0));
            const size_t nb[3] = {qn * es, cache_n * es, cache_n * es};
            void *pa[3] = {dout, dkc, dvc}, *pb[3] = {dout2, dkc2, dvc2};
            for (int i = 0; i < 3; i++) {
                unsigned char *ha = malloc(nb[i]), *hb = malloc(nb[i]);
                cudaMemcpy(ha, pa[i], nb[i], cudaMemcpyDeviceToHost);
                cudaMemcpy(hb, pb[i], nb[i], cudaMemcpyDeviceToHost);
                CHECK_MSG(memcmp(ha, hb, nb[i]) == 0, "fused RoPE decode differs from the unfused pair (%s) %s D=%d "
                          "H=%d Hkv=%d rot=%d neox=%d", i == 0 ? "output" : i == 1 ? "K cache" : "V cache",
                          llmrt_dtype_name(c->type), D, H, Hkv, c->rotary_dim, c->neox);
                free(ha);
                free(hb);
            }
        } else if (c->kernel == 4) {
            /* the early mode, its q/k/v GEMV's flag already up: the cached
             * rows before the own one, the own row and the merge after */
            int32_t *early = NULL, up[2] = {H * D, 0}, left_flags[2] = {-1, -1};
            cudaMalloc((void **)&early, sizeof up);
            cudaMemcpy(early, up, sizeof up, cudaMemcpyHostToDevice);
            db.wide = 1;
            CHECK(cuda_attention_early_supported(c->type, H, Hkv, D, db.num_tokens));
            const cuda_rope_fused rope = {dk, dv, c->rotary_dim ? dtable : NULL, c->rotary_dim, c->neox, early, H * D};
            CUDA_CHECK(cuda_attention_decode(dout, dq, dkc, dvc, c->type, &db, H, Hkv, D, scale, parts, ws, counters,
                                             &rope, 0, 0));
            cudaMemcpy(left_flags, early, sizeof left_flags, cudaMemcpyDeviceToHost);
            CHECK_MSG(left_flags[0] == 0 && left_flags[1] == 0, "early attention left its flags at %d, %d",
                      left_flags[0], left_flags[1]);
            db.wide = 0; /* the early mode needs the wide instance */
            CHECK(cuda_attention_decode(dout2, dq, dkc2, dvc2, c->type, &db, H, Hkv, D, scale, parts, ws, counters,
                                        &rope, 0, 0) == cudaErrorInvalidValue);
            cudaFree(early);
        } else {
            CUDA_CHECK(cuda_attention_decode(dout, dout, dkc, dvc, c->type, &db, H, Hkv, D, scale, parts, ws, counters,
                                             NULL, 0, 0));
        }
        int32_t *left = malloc((size_t)T * H * 4);
        cudaMemcpy(left, counters, (size_t)T * H * 4, cudaMemcpyDeviceToHost);
        int nonzero = 0;
        for (int i = 0; i < T * H; i++) nonzero += left[i] != 0;
        CHECK_MSG(nonzero == 0, "attention left %d merge counters nonzero", nonzero);
        free(left);
    }

    /* CPU reference */
    float *qr = malloc(qn * 4), *kr = malloc(kn * 4), *ref = malloc(qn * 4), *got = malloc(qn * 4);
    memcpy(qr, q, qn * 4);
    memcpy(kr, k, kn * 4);
    if (c->rotary_dim) {
        cpu_rope(qr, positions, T, H, D, c->rotary_dim, inv_freq, c->neox);
        cpu_rope(kr, positions, T, Hkv, D, c->rotary_dim, inv_freq, c->neox);
    }
    round_to(qr, qn, c->type); /* the GPU stores rotated q and k in the activation type */
    round_to(kr, kn, c->type);
    cpu_attention_batch cb = {.num_seqs = S, .seq_start = seq_start, .positions = positions, .block_tables = tables,
                              .max_blocks_per_seq = max_blocks, .block_size = bs, .non_causal = non_causal};
    cpu_kv_cache_write(kc, vc, kr, v, &cb, T, Hkv, D);
    cpu_attention(ref, qr, kc, vc, &cb, T, H, Hkv, D, scale);

    dev_to_f32(got, dout, qn, c->type);
    const double tol = c->type == LLMRT_DTYPE_F32 ? 2e-5 : tol_for(c->type);
    CHECK_CLOSE(got, ref, qn, tol, "attention %s kernel %d%s D=%d H=%d Hkv=%d bs=%d T=%d max_ctx=%d",
                llmrt_dtype_name(c->type), c->kernel, non_causal ? " non-causal" : "", D, H, Hkv, bs, T, max_ctx);
    /* the cache rows of the new tokens: rotated k, v */
    float *kg = malloc(cache_n * 4), *vg = malloc(cache_n * 4), *kw = malloc(kn * 4), *kwr = malloc(kn * 4),
          *vw = malloc(kn * 4), *vwr = malloc(kn * 4);
    dev_to_f32(kg, dkc, cache_n, c->type);
    dev_to_f32(vg, dvc, cache_n, c->type);
    for (int t = 0; t < T; t++) {
        memcpy(kw + (size_t)t * Hkv * D, kg + (size_t)slots[t] * Hkv * D, (size_t)Hkv * D * 4);
        memcpy(kwr + (size_t)t * Hkv * D, kc + (size_t)slots[t] * Hkv * D, (size_t)Hkv * D * 4);
        memcpy(vw + (size_t)t * Hkv * D, vg + (size_t)slots[t] * Hkv * D, (size_t)Hkv * D * 4);
        memcpy(vwr + (size_t)t * Hkv * D, vc + (size_t)slots[t] * Hkv * D, (size_t)Hkv * D * 4);
    }
    CHECK_CLOSE(kw, kwr, kn, c->type == LLMRT_DTYPE_F32 ? 1e-6 : 4e-3, "rope k cache %s D=%d", llmrt_dtype_name(c->type), D);
    CHECK_CLOSE(vw, vwr, kn, 0.0, "v cache %s D=%d", llmrt_dtype_name(c->type), D);

    void *bufs[] = {dkc, dvc, dq, dk, dv, dout, dfreq, dpos, dseq, dslots, dtables, dtiles, drows, ws, counters,
                    dkc2, dvc2, dout2, dtable, dends};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    float *hb[] = {q, k, v, kc, vc, qr, kr, ref, got, kg, vg, kw, kwr, vw, vwr};
    for (size_t i = 0; i < sizeof hb / sizeof hb[0]; i++) free(hb[i]);
    free(perm);
    free(tables);
    free(ends);
    free(positions);
    free(token_seq);
    free(slots);
}

static void test_attention(void) {
    const int dims[3] = {64, 80, 128};
    const int groups[3][2] = {{8, 8}, {16, 4}, {16, 2}}; /* GQA ratios 1, 4, 8 */
    const llmrt_dtype half_types[2] = {LLMRT_DTYPE_BF16, LLMRT_DTYPE_F16};
    for (int ti = 0; ti < 2; ti++)
        for (int di = 0; di < 3; di++)
            for (int gi = 0; gi < 3; gi++) {
                const int bs = (di + gi) % 2 ? 32 : 16;
                /* prefill: packed sequences, one with past (chunked prefill), a decode token mixed in */
                attn_case p = {half_types[ti], dims[di], groups[gi][0], groups[gi][1], bs, dims[di], 1, 4,
                               {100, 37, 1, 130}, {0, 50, 70, 0}, 0, 0, 0};
                if (gi == 2) p.rotary_dim = dims[di] / 2, p.neox = 0; /* partial, GPT-J pairing */
                run_attention_case(&p);
                p.kernel = 2; /* the same step as the backend splits it */
                run_attention_case(&p);
                /* decode: long pasts exercise split-K (automatic, one and the most partitions) */
                attn_case d = {half_types[ti], dims[di], groups[gi][0], groups[gi][1], bs, dims[di], 1, 3,
                               {1, 1, 1}, {2100, 700, 33}, 1, 0, 0};
                run_attention_case(&d);
                d.parts = gi == 0 ? 1 : CUDA_DECODE_MAX_PARTITIONS;
                run_attention_case(&d);
                d.kernel = 3; /* RoPE fused, GPT-J pairing and partial rotary for one group */
                if (gi == 1) d.rotary_dim = dims[di] / 2, d.neox = 0;
                run_attention_case(&d);
                d.parts = 0;
                run_attention_case(&d);
                if (gi == 0) { /* one query head a block: the wide instance, fused and not */
                    d.wide = 1;
                    run_attention_case(&d);
                    d.kernel = 1;
                    run_attention_case(&d);
                }
            }
    /* encoder (non-causal) attention: whole sequences in one step, on tensor
     * cores, as a mixed step, and in f32 through the split-K kernel */
    non_causal = 1;
    for (int ti = 0; ti < 2; ti++)
        for (int di = 0; di < 3; di++) {
            attn_case e = {half_types[ti], dims[di], 8, 8, 16, 0, 1, 3, {7, 200, 1}, {0, 0, 0}, 0, 0, 0};
            run_attention_case(&e);
            e.kernel = 2;
            run_attention_case(&e);
        }
    {
        attn_case e = {LLMRT_DTYPE_F32, 64, 4, 4, 16, 0, 1, 2, {45, 3}, {0, 0}, 1, 0, 0};
        run_attention_case(&e);
        e.head_dim = 24; /* a head size without an exact instance */
        run_attention_case(&e);
    }
    non_causal = 0;
    /* f32 (CUDA cores) and the other head sizes through the split-K kernel, prefill-shaped too */
    const int more_dims[4] = {32, 64, 128, 256};
    for (int di = 0; di < 4; di++) {
        attn_case d = {LLMRT_DTYPE_F32, more_dims[di], 8, 2, 16, more_dims[di], 1, 2, {1, 1}, {1500, 9}, 1, 0, 0};
        run_attention_case(&d);
        attn_case p = {LLMRT_DTYPE_F32, more_dims[di], 4, 4, 32, more_dims[di], 1, 2, {45, 3}, {10, 300}, 1, 0, 0};
        run_attention_case(&p);
        attn_case b = {LLMRT_DTYPE_BF16, more_dims[di], 32, 1, 16, 0, 1, 1, {1}, {777}, 1, 0, 0}; /* MQA, no RoPE */
        run_attention_case(&b);
        b.kernel = 3;
        run_attention_case(&b);
        d.kernel = 3;
        run_attention_case(&d);
        attn_case w = {LLMRT_DTYPE_F16, more_dims[di], 4, 4, 16, more_dims[di], 1, 4, {1, 1, 1, 1},
                       {300, 40, 64, 0}, 3, 0, 1};
        run_attention_case(&w);
    }
    /* the early mode (one token, one query head a kv head): contexts of one
     * part and of several, forced to one part, partial and no rotary */
    const int early_dims[5] = {32, 64, 80, 96, 128}, early_past[6] = {0, 30, 63, 64, 200, 900};
    for (int ti = 0; ti < 2; ti++)
        for (int di = 0; di < 5; di++)
            for (int pi = 0; pi < 6; pi++) {
                const int D = early_dims[di];
                attn_case e = {half_types[ti], D, 8, 8, pi % 2 ? 16 : 32, D, 1, 1, {1}, {early_past[pi]}, 4, 0, 1};
                if (pi == 2) e.rotary_dim = D / 2, e.neox = 0;
                if (pi == 3) e.rotary_dim = 0;
                run_attention_case(&e);
                if (pi == 4) {
                    e.parts = 1;
                    run_attention_case(&e);
                }
            }
    CHECK(!cuda_attention_early_supported(LLMRT_DTYPE_BF16, 32, 8, 128, 1)); /* GQA */
    CHECK(!cuda_attention_early_supported(LLMRT_DTYPE_BF16, 32, 32, 128, 2)); /* two tokens */
    CHECK(!cuda_attention_early_supported(LLMRT_DTYPE_BF16, 32, 32, 256, 1));
    CHECK(!cuda_attention_early_supported(LLMRT_DTYPE_F32, 32, 32, 128, 1));
    CHECK(cuda_attention_early_supported(LLMRT_DTYPE_F16, 32, 32, 80, 1));
    /* which launches take the wide instance: all live blocks in one wave */
    CHECK(cuda_decode_wide_fits(264, 1, 32, 32, 16, 200) == 1);  /* 4 live parts of 64 keys: 128 blocks */
    CHECK(cuda_decode_wide_fits(264, 1, 32, 32, 16, 512) == 1);  /* 8 parts: 256 */
    CHECK(cuda_decode_wide_fits(264, 1, 32, 32, 16, 513) == 0);  /* 9 parts: 288 */
    CHECK(cuda_decode_wide_fits(264, 1, 32, 32, 16, 2048) == 0); /* 16 parts */
    CHECK(cuda_decode_wide_fits(264, 2, 32, 32, 16, 256) == 1);
    CHECK(cuda_decode_wide_fits(264, 5, 32, 32, 16, 64) == 0);   /* not a small launch */
    CHECK(cuda_decode_wide_fits(264, 1, 32, 8, 16, 64) == 0);    /* GQA: no wide instance */
    CHECK(cuda_decode_wide_fits(0, 1, 32, 32, 16, 64) == 0);
    CHECK(cuda_decode_wide_slots(LLMRT_DTYPE_BF16, 32, 32, 128) > 0);
    CHECK(cuda_decode_wide_slots(LLMRT_DTYPE_F32, 32, 32, 128) == 0);
    CHECK(cuda_decode_wide_slots(LLMRT_DTYPE_BF16, 32, 8, 128) == 0);
    /* Head sizes off the fast paths (the golden models' 8, 12, 16; 40; odd and
     * large ones): the padded, masked instances of both kernels and RoPE. */
    const int odd_dims[7] = {8, 12, 16, 40, 3, 72, 200};
    for (int di = 0; di < 7; di++) {
        const int D = odd_dims[di], rot = D % 2 ? D - 1 : D;
        for (int ti = 0; ti < 3; ti++) {
            const llmrt_dtype t = float_types[ti];
            /* prefill-shaped: packed sequences with a chunked past and a decode token mixed in */
            attn_case p = {t, D, 6, 2, 16, rot, 1, 3, {70, 1, 33}, {0, 40, 130}, t == LLMRT_DTYPE_F32 ? 1 : 0, 0, 0};
            if (D <= 128 || t == LLMRT_DTYPE_F32) run_attention_case(&p);
            else { p.kernel = 1; run_attention_case(&p); }
            if (D <= 128 && t != LLMRT_DTYPE_F32) { p.kernel = 2; run_attention_case(&p); }
            /* decode, split-K over a long past; MQA and partial GPT-J-style rotary */
            attn_case d = {t, D, 6, 1, 32, rot, 1, 2, {1, 1}, {600, 5}, 1, 0, 0};
            if (D >= 8) d.rotary_dim = D / 2 - (D / 2) % 2, d.neox = 0;
            run_attention_case(&d);
            d.kernel = 3;
            run_attention_case(&d);
            d.rotary_dim = rot, d.neox = 1;
            run_attention_case(&d);
        }
    }
}

/* ---- sampling ------------------------------------------------------------- */

/* Host reference of cuda_sample's rule, in double. */
static int ref_sample(const float *row, int vocab, float temp, int top_k, float top_p, float min_p, float u,
                      double *margin) {
    double m = -INFINITY;
    for (int j = 0; j < vocab; j++) m = fmax(m, row[j] / temp);
    double *p = malloc(vocab * sizeof(double)), *sorted = malloc(vocab * sizeof(double));
    for (int j = 0; j < vocab; j++) sorted[j] = p[j] = exp(row[j] / temp - m);
    /* descending sort (insertion into a simple qsort) */
    for (int i = 1; i < vocab; i++) { /* insertion sort: fine for a test-sized vocab */
        double x = sorted[i];
        int j = i - 1;
        while (j >= 0 && sorted[j] < x) {
            sorted[j + 1] = sorted[j];
            j--;
        }
        sorted[j + 1] = x;
    }
    double tau = 0;
    int kept = vocab;
    if (top_k > 0 && top_k < vocab) {
        tau = sorted[top_k - 1];
        kept = top_k;
    }
    double mass = 0;
    for (int i = 0; i < kept; i++) mass += sorted[i];
    if (top_p < 1) {
        double acc = 0;
        for (int i = 0; i < kept; i++) {
            acc += sorted[i];
            if (acc >= top_p * mass) {
                tau = sorted[i];
                break;
            }
        }
    }
    if (min_p > 0 && min_p > tau) tau = min_p; /* the top probability is exp(0) = 1 */
    double kmass = 0;
    for (int j = 0; j < vocab; j++)
        if (p[j] >= tau) kmass += p[j];
    double target = u * kmass, acc = 0;
    int pick = -1;
    *margin = INFINITY;
    for (int j = 0; j < vocab; j++)
        if (p[j] >= tau) {
            acc += p[j];
            if (fabs(acc - target) / kmass < *margin) *margin = fabs(acc - target) / kmass;
            if (pick < 0 && target < acc) pick = j;
        }
    free(p);
    free(sorted);
    return pick;
}

static void test_sampling(void) {
    const int rows = 12, vocab = 5003;
    float *logits = rand_floats((size_t)rows * vocab, &rng, 4.0f);
    cuda_sample_row prm[12];
    int32_t ids[12];
    float lp[12];
    for (int r = 0; r < rows; r++) {
        prm[r].temperature = r == 0 ? 0.0f : 0.5f + 0.2f * r;
        prm[r].top_k = r % 3 == 0 ? 0 : r % 3 == 1 ? 40 : 1000;
        if (r == 10) prm[r].top_k = 1; /* greedy at any temperature */
        prm[r].top_p = r % 2 ? 0.9f : 1.0f;
        prm[r].min_p = r % 4 == 3 ? 0.05f : 0.0f;
        prm[r].uniform = (test_rand_uniform(&rng) + 1.0f) * 0.5f;
        prm[r].skip = r == 11; /* left to the host */
    }
    void *dl = dev_from_f32(logits, (size_t)rows * vocab, LLMRT_DTYPE_F32), *dprm = dev_from_bytes(prm, sizeof prm);
    int32_t *dids = dev_poisoned(sizeof ids);
    float *dlp = dev_poisoned(sizeof lp);
    CUDA_CHECK(cuda_argmax(dids, dl, rows, vocab, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaMemcpy(ids, dids, sizeof ids, cudaMemcpyDeviceToHost);
    for (int r = 0; r < rows; r++) {
        int best = 0;
        for (int j = 1; j < vocab; j++)
            if (logits[r * vocab + j] > logits[r * vocab + best]) best = j;
        CHECK_MSG(ids[r] == best, "argmax row %d: %d vs %d", r, ids[r], best);
    }
    dev_poison(dids, sizeof ids);
    CUDA_CHECK(cuda_sample(dids, dlp, dl, rows, vocab, dprm, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaMemcpy(ids, dids, sizeof ids, cudaMemcpyDeviceToHost);
    cudaMemcpy(lp, dlp, sizeof lp, cudaMemcpyDeviceToHost);
    for (int r = 0; r < rows; r++) {
        const float *row = logits + (size_t)r * vocab;
        if (prm[r].skip) { /* untouched: still the poison */
            CHECK_MSG(ids[r] == -1, "skipped row %d was written (%d)", r, ids[r]);
            continue;
        }
        double margin = 0;
        int want;
        if (prm[r].temperature <= 0 || prm[r].top_k == 1) {
            want = 0;
            for (int j = 1; j < vocab; j++)
                if (row[j] > row[want]) want = j;
            margin = 1;
        } else {
            want = ref_sample(row, vocab, prm[r].temperature, prm[r].top_k, prm[r].top_p, prm[r].min_p,
                              prm[r].uniform, &margin);
        }
        /* float vs double cumulative sums may disagree only at a boundary */
        CHECK_MSG(ids[r] == want || margin < 1e-4, "sample row %d: %d vs %d (margin %.2g)", r, ids[r], want, margin);
        if (ids[r] < 0 || ids[r] >= vocab) continue;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < vocab; j++) mx = fmax(mx, row[j]);
        for (int j = 0; j < vocab; j++) sum += exp(row[j] - mx);
        const double want_lp = row[ids[r]] - mx - log(sum);
        CHECK_MSG(fabs(lp[r] - want_lp) < 1e-4 * (1 + fabs(want_lp)), "logprob row %d: %g vs %g", r, lp[r], want_lp);
    }
    void *bufs[] = {dl, dprm, dids, dlp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    free(logits);
}

/* A row holding NaN, +inf or -inf (first, middle or last position) gets
 * log-probability NaN from cuda_sample, greedy and sampled alike, so that the
 * runtime fails the request; clean rows beside it are sampled as usual. */
static void sampling_nonfinite_case(int vocab) {
    const int rows = 20; /* rows 18-19 clean */
    const float bad[] = {NAN, INFINITY, -INFINITY};
    float *logits = rand_floats((size_t)rows * vocab, &rng, 4.0f);
    cuda_sample_row prm[20];
    for (int r = 0; r < rows; r++) {
        prm[r] = (cuda_sample_row){.temperature = r % 2 ? 0.8f : 0.0f, .top_k = r % 4 == 1 ? 40 : 0, .top_p = 1.0f,
                                   .uniform = 0.5f};
        if (r < 18) {
            const int pos = (r / 2) % 3 == 0 ? 0 : (r / 2) % 3 == 1 ? vocab / 2 : vocab - 1;
            logits[(size_t)r * vocab + pos] = bad[(r / 6) % 3];
        }
    }
    void *dl = dev_from_f32(logits, (size_t)rows * vocab, LLMRT_DTYPE_F32), *dprm = dev_from_bytes(prm, sizeof prm);
    int32_t *dids = dev_poisoned(rows * sizeof(int32_t));
    float *dlp = dev_poisoned(rows * sizeof(float));
    CUDA_CHECK(cuda_sample(dids, dlp, dl, rows, vocab, dprm, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    int32_t ids[20];
    float lp[20];
    cudaMemcpy(ids, dids, sizeof ids, cudaMemcpyDeviceToHost);
    cudaMemcpy(lp, dlp, sizeof lp, cudaMemcpyDeviceToHost);
    for (int r = 0; r < rows; r++) {
        if (r < 18) CHECK_MSG(isnan(lp[r]), "row %d (%s logit): logprob %g, want NaN", r, r / 6 == 0 ? "NaN" : "inf", lp[r]);
        else CHECK_MSG(isfinite(lp[r]) && lp[r] <= 0 && ids[r] >= 0 && ids[r] < vocab, "clean row %d: id %d logprob %g",
                       r, ids[r], lp[r]);
    }
    void *bufs[] = {dl, dprm, dids, dlp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    free(logits);
}

static void test_sampling_nonfinite(void) {
    sampling_nonfinite_case(4099); /* the scalar loads */
    sampling_nonfinite_case(4100); /* the float4 loads */
}

int main(void) {
    int skip = cuda_test_skip_code();
    if (skip >= 0) return skip;
    RUN_TEST(test_attention);
    RUN_TEST(test_sampling);
    RUN_TEST(test_sampling_nonfinite);
    return test_finish();
}
