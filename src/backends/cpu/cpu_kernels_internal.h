/* Shared by the cpu_kernels_*.c files only: the ISA level the kernels run at,
 * and the per-ISA entry points of the hot kernels. Nothing here is API. */
#ifndef LLMRT_BACKENDS_CPU_KERNELS_INTERNAL_H
#define LLMRT_BACKENDS_CPU_KERNELS_INTERNAL_H

#include <stdint.h>

#include "backends/cpu/cpu_kernels.h"

/* Ordered: a higher level may use everything a lower one does. */
enum cpu_isa_level { CPU_ISA_PORTABLE = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2 };

/* The level kernels use now (detected once, lowered by LLMRT_CPU_ISA or
 * cpu_kernels_force_isa). */
int cpu_isa_level(void);

/* The target attributes of the two SIMD paths. Functions carrying them must
 * only be called when cpu_isa_level() says so; the rest of the binary is
 * plain x86-64. */
#define CPU_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c,fma,avx2")))
#define CPU_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

/* The interleaved layout of a 16-bit W[N, K] (cpu_weight_interleave): row
 * n's value k is element cpu_w_row(1, n, K) + cpu_w_col(1, k); with il = 0
 * the same two give the row layout (n·K + k). A row is then a run of
 * 32-value pieces CPU_IL_CHUNK_STRIDE elements apart, so a kernel that
 * steps k within those pieces reads either layout with the same
 * arithmetic. */
#define CPU_IL_ROWS 8
#define CPU_IL_CHUNK 32
#define CPU_IL_CHUNK_STRIDE (CPU_IL_ROWS * CPU_IL_CHUNK)
static inline int64_t cpu_il_padded_k(int64_t K) { return (K + CPU_IL_CHUNK - 1) / CPU_IL_CHUNK * CPU_IL_CHUNK; }
static inline int64_t cpu_w_row(int il, int64_t n, int64_t K) {
    return il ? n / CPU_IL_ROWS * CPU_IL_ROWS * cpu_il_padded_k(K) + n % CPU_IL_ROWS * CPU_IL_CHUNK : n * K;
}
static inline int64_t cpu_w_col(int il, int64_t k) {
    return il ? (k >> 5) * CPU_IL_CHUNK_STRIDE + (k & (CPU_IL_CHUNK - 1)) : k;
}
/* Software prefetch over interleaved weights. The decode GEMV issues none:
 * its one sequential stream is what the hardware prefetcher follows, and
 * prefetches 8-16 KB ahead slowed it (f16, AVX-512, 1 thread: 18.6 against
 * 24.3 GB/s without). The register tiles (M ≥ 2), which read 4 or 6 of a
 * group's 8 lines of each chunk, prefetch theirs this far ahead into L2
 * (f16, 2 threads, M = 4 / 8, GB/s: AVX-512 none 16.0 / 11.0, 4 KB 22.1 /
 * 17.3, 16 KB 27.5 / 19.8, 32 KB 34.5 / 22.6 against 21.5 / 17.2 in rows;
 * AVX2 alike). */
#define CPU_IL_TILE_PREFETCH_BYTES (32 << 10)

/* cpu_linear's per-ISA bodies. y[M,N] = x[M,K]·W[N,K]ᵀ + bias; rows of the
 * result in [n_begin, n_end) only (the caller splits N across threads, at
 * multiples of 16 rows). il: W is interleaved (f16/bf16 only). */
void cpu_linear_rows_avx512(float *y, const float *x, const void *w, llmrt_dtype w_type, int il,
                            const float *bias, int64_t M, int64_t N, int64_t K, int64_t n_begin,
                            int64_t n_end);
void cpu_linear_rows_avx2(float *y, const float *x, const void *w, llmrt_dtype w_type, int il,
                          const float *bias, int64_t M, int64_t N, int64_t K, int64_t n_begin,
                          int64_t n_end);

/* 16-bit compute (AVX512-BF16): y[M,N] rows [n_begin, n_end) of
 * x[M,K]·W[N,K]ᵀ + bias with x already rounded to bf16 and W bf16. */
void cpu_linear_rows_bf16(float *y, const uint16_t *x, const uint16_t *w, int il, const float *bias, int64_t M,
                          int64_t N, int64_t K, int64_t n_begin, int64_t n_end);
/* out[i] = bf16(x[i]) for n values, round to nearest even. */
void cpu_bf16_round_rows(uint16_t *out, const float *x, int64_t n);
/* 1 when the calling thread's step computes bf16 linears in 16 bits
 * (cpu_kernels_set_16bit_compute and cpu_has_bf16_dot). */
int cpu_bf16_compute_active(void);

/* Vectorised exp for the SiLU family: max error a few ulp over the float
 * range (|x| > 88 saturates to 0 / inf as expf does). n elements. */
void cpu_silu_avx512(float *y, const float *x, int64_t n);
void cpu_silu_mul_avx512(float *y, const float *gate, const float *up, int64_t n);
void cpu_silu_avx2(float *y, const float *x, int64_t n);
void cpu_silu_mul_avx2(float *y, const float *gate, const float *up, int64_t n);

/* cpu_silu_mul on one thread, at ISA `level` (no parallel region). */
void cpu_silu_mul_range(int level, float *y, const float *gate, const float *up, int64_t n);

/* Attention's inner loops over n cache slots of one kv head, the slots
 * `stride` floats apart, each head_dim long:
 *   scores[j] = scale · q·k_j
 *   acc = acc · alpha + Σ_j p[j] · v_j                                        */
typedef void cpu_attn_scores_fn(float *scores, const float *q, const float *k, int64_t stride, int n,
                                int64_t head_dim, float scale);
typedef void cpu_attn_accumulate_fn(float *acc, float alpha, const float *p, const float *v, int64_t stride,
                                    int n, int64_t head_dim);
cpu_attn_scores_fn cpu_attn_scores_avx2;
cpu_attn_accumulate_fn cpu_attn_accumulate_avx2;

/* AVX-512 attention for query heads [h0, h1) of one token (h1 − h0 ≤
 * CPU_ATTN_HEADS_MAX; head h reads kv head h / group). out and q point at
 * the token's head 0 (heads head_dim apart). The token attends to cache
 * positions [0, len) of the sequence whose block table is `table`; position
 * p's slot row (all kv heads) starts at (table[p / bs]·bs + p % bs)·slot_stride.
 * stream = 1 reads the cache with non-temporal prefetches (a decode token
 * of a batch: its sequence's cache is read once in the step). The result
 * does not depend on it. */
#define CPU_ATTN_HEADS_MAX 32
void cpu_attn_token_avx512(float *out, const float *q, int64_t h0, int64_t h1, int64_t group, const float *k_cache,
                           const float *v_cache, const int32_t *table, int32_t bs, int64_t len, int64_t slot_stride,
                           int64_t head_dim, float scale, int stream);

/* cpu_attn_token_avx512's arguments on AVX2 (no stream hint), for head_dim
 * a multiple of 8. */
void cpu_attn_token_avx2(float *out, const float *q, int64_t h0, int64_t h1, int64_t group, const float *k_cache,
                         const float *v_cache, const int32_t *table, int32_t bs, int64_t len, int64_t slot_stride,
                         int64_t head_dim, float scale);

/* The sequence that token t of a batch belongs to: seq_start is
 * non-decreasing, so a binary search for the last start ≤ t. Inline: the
 * attention kernels call it per token. */
static inline int32_t cpu_attention_seq_of_token(const cpu_attention_batch *batch, int64_t t) {
    int32_t lo = 0, hi = batch->num_seqs - 1;
    while (lo < hi) {
        int32_t mid = (lo + hi + 1) / 2;
        if (batch->seq_start[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* One thread's scratch buffer of at least `bytes`, 64-byte aligned, kept
 * for the thread's life (so prefill does not malloc per call). NULL if the
 * allocation fails. */
float *cpu_thread_scratch(size_t bytes);
/* The same for slot 0 (cpu_thread_scratch's), 1 (held by a caller across
 * a parallel region whose chunks use slot 0 on the same thread) or 2 (a
 * linear's bf16-rounded x, held by cpu_linear across its region). */
void *cpu_thread_buffer(int slot, size_t bytes);

#endif
