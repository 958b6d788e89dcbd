/* CUDA kernels: plain launchers over device arrays with explicit shapes, the
 * GPU twins of src/backends/cpu/cpu_kernels.h. Every launcher enqueues on
 * `stream` and returns the launch's cudaError_t (cudaSuccess or the error of
 * the launch itself; asynchronous faults surface at the next sync).
 *
 * Element types are llmrt_dtype values: activations may be f32, f16 or bf16
 * (ids i32); every kernel computes in fp32 and rounds once on store. Shapes
 * are in elements. Pointers are device pointers unless said otherwise.
 *
 * The launchers of a decode step's kernels (RMSNorm, RoPE, GEMVs, decode
 * attention) take `pdl`: 1 launches with programmatic dependent launch
 * (Hopper and later; the caller checks), so that the kernel's blocks start
 * while the kernel before it ends: the caller's choice at each launch. */
#ifndef LLMRT_BACKENDS_CUDA_KERNELS_H
#define LLMRT_BACKENDS_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "llmrt/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CUDA_MAX_DIMS = 6 };

/* ---- elementwise (elementwise.cu) ------------------------------------------ */

/* Unary ops by graph op code (llmrt_op: POW, NEG, EXP, SQRT, RSQRT, TANH, ERF,
 * SIGMOID, RELU, GELU, SILU, GELU_TANH); `param` is POW's exponent.
 * y, x: [n]; in place allowed when the types match. */
cudaError_t cuda_unary(int op, void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, int64_t n,
                       float param, cudaStream_t stream);

/* Binary ops (ADD, SUB, MUL, DIV) with numpy broadcasting. The output is
 * contiguous with dims out_dims[0..ndim); a_strides / b_strides give each
 * input's element stride per output dim (0 where it broadcasts). */
typedef struct cuda_broadcast {
    int32_t ndim;
    int64_t out_dims[CUDA_MAX_DIMS];
    int64_t a_strides[CUDA_MAX_DIMS];
    int64_t b_strides[CUDA_MAX_DIMS];
} cuda_broadcast;
/* Fills `bc` for out = a ∘ b: dims right-aligned as numpy does. Returns -1 if
 * the shapes do not broadcast to out_dims. */
int cuda_broadcast_init(cuda_broadcast *bc, int32_t out_ndim, const int64_t *out_dims, int32_t a_ndim,
                        const int64_t *a_dims, int32_t b_ndim, const int64_t *b_dims);
cudaError_t cuda_binary(int op, void *y, llmrt_dtype y_type, const void *a, llmrt_dtype a_type,
                        const void *b, llmrt_dtype b_type, const cuda_broadcast *bc, cudaStream_t stream);

/* y = silu(gate) * up; y, gate, up: [n]. */
cudaError_t cuda_silu_mul(void *y, const void *gate, const void *up, llmrt_dtype type, int64_t n,
                          cudaStream_t stream);

/* ---- reductions, softmax, norms (norm.cu) --------------------------------- */

/* SUM or MEAN over the last axis: x: [rows, dim] → y: [rows]. */
cudaError_t cuda_reduce_last(int op, void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                             int64_t rows, int64_t dim, cudaStream_t stream);
/* Row softmax: x, y: [rows, dim]. */
cudaError_t cuda_softmax(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, int64_t rows,
                         int64_t dim, cudaStream_t stream);
/* y = x / sqrt(mean(x²) + eps) * weight; x, y: [rows, dim], weight: [dim]. */
cudaError_t cuda_rmsnorm(void *y, const void *x, llmrt_dtype type, const void *weight, llmrt_dtype w_type,
                         int64_t rows, int64_t dim, float eps, int pdl, cudaStream_t stream);
/* The same with the gain weight + w_offset (Gemma's x̂·(1 + w): 1). */
cudaError_t cuda_rmsnorm_offset(void *y, const void *x, llmrt_dtype type, const void *weight, llmrt_dtype w_type,
                                int64_t rows, int64_t dim, float eps, float w_offset, int pdl, cudaStream_t stream);
/* Residual-fused: sum = a + b (rounded to `type`, written when sum != NULL),
 * y = rmsnorm(sum). One pass instead of two launches and a re-read. */
cudaError_t cuda_add_rmsnorm(void *y, void *sum, const void *a, const void *b, llmrt_dtype type,
                             const void *weight, llmrt_dtype w_type, int64_t rows, int64_t dim, float eps,
                             int pdl, cudaStream_t stream);
/* y = (x - mean) / sqrt(var + eps) * weight + bias (bias may be NULL). */
cudaError_t cuda_layernorm(void *y, const void *x, llmrt_dtype type, const void *weight, const void *bias,
                           llmrt_dtype w_type, int64_t rows, int64_t dim, float eps, cudaStream_t stream);

/* ---- data movement and casts (cast.cu, embedding.cu) ---------------------- */

/* y = cast(x), n elements (f32/f16/bf16/i32 in any combination). */
cudaError_t cuda_cast(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, int64_t n,
                      cudaStream_t stream);
/* Strided copy with cast: for every index i over dims[0..ndim),
 * y[y_offset + Σ i_d·y_strides[d]] = x[x_offset + Σ i_d·x_strides[d]].
 * Slice, concat (one call per part) and permute are all this kernel. */
typedef struct cuda_copy_desc {
    int32_t ndim;
    int64_t dims[CUDA_MAX_DIMS];
    int64_t x_strides[CUDA_MAX_DIMS];
    int64_t y_strides[CUDA_MAX_DIMS];
    int64_t x_offset;
    int64_t y_offset;
} cuda_copy_desc;
cudaError_t cuda_strided_copy(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type,
                              const cuda_copy_desc *desc, cudaStream_t stream);
/* out[t, :] = table[ids[t], :]; table: [rows, dim]; ids: [count] i32. Ids
 * outside [0, rows) give zero rows and atomicMin their index t into
 * *bad_index (device int, set to INT32_MAX by the caller), when not NULL. */
cudaError_t cuda_embedding(void *out, llmrt_dtype out_type, const void *table, llmrt_dtype table_type,
                           int64_t rows, int64_t dim, const int32_t *ids, int64_t count, int32_t *bad_index,
                           cudaStream_t stream);
/* A vocab shard's lookup: table holds rows [first_row, first_row + rows)
 * of the whole; ids outside them are another rank's and give zero rows. */
cudaError_t cuda_embedding_shard(void *out, llmrt_dtype out_type, const void *table, llmrt_dtype table_type,
                                 int64_t rows, int64_t dim, const int32_t *ids, int64_t count, int64_t first_row,
                                 cudaStream_t stream);

/* ---- matrix products (gemv.cu; cuBLASLt lives in gemm_cublaslt.c) -------- */

/* y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias[N] f32), fp32 accumulate; any mix of
 * f32/f16/bf16. Used where cuBLASLt does not apply (mixed types). When
 * transpose_b is 0, W is [K,N] instead. */
cudaError_t cuda_matmul_generic(void *y, llmrt_dtype y_type, const void *x, llmrt_dtype x_type, const void *w,
                                llmrt_dtype w_type, int transpose_b, const float *bias, int64_t M, int64_t N,
                                int64_t K, cudaStream_t stream);
/* Decode GEMV for small M (≤ CUDA_GEMV_MAX_M): y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias),
 * x, y, W all f16 or all bf16, K % 8 == 0, pointers 16-byte aligned. One
 * warp streams one weight row with 16-byte loads: W is read exactly once. */
enum { CUDA_GEMV_MAX_M = 4 };
int cuda_gemv_supported(llmrt_dtype type, int64_t M, int64_t K, const void *y, const void *x, const void *w);
cudaError_t cuda_gemv(void *y, const void *x, const void *w, llmrt_dtype type, const float *bias, int64_t M,
                      int64_t N, int64_t K, int pdl, cudaStream_t stream);
/* The same with y of y_type: `type`, or f32 (the logits: the fp32 sums are
 * stored without a 16-bit rounding; y then 4-byte aligned). */
cudaError_t cuda_gemv_out(void *y, llmrt_dtype y_type, const void *x, const void *w, llmrt_dtype type,
                          const float *bias, int64_t M, int64_t N, int64_t K, int pdl, cudaStream_t stream);
/* Grouped GEMV: the parts share x and run as one launch, as fast as one
 * product of ΣN rows (q/k/v of a layer, gate/up): y_p[M, N_p] = x[M,K] ·
 * W_p[N_p,K]ᵀ (+ bias_p, f32 or NULL). With `gated` (2 parts, equal N):
 * y_0 = silu(x·W_0ᵀ + b_0) ⊙ (x·W_1ᵀ + b_1), each product rounded to `type`
 * first as the unfused graph does; y_1 is not written. Same requirements as
 * cuda_gemv for every part. */
enum { CUDA_GEMV_MAX_PARTS = 3 };
typedef struct cuda_gemv_part {
    void *y;
    const void *w;
    const float *bias;
    int64_t N;
} cuda_gemv_part;
/* The diagnostic block timeline of the decode GEMVs and attention
 * (kernel_probe.cuh, kernel_probe.cu; a
 * build with -DLLMRT_CUDA_PROBE=ON, else 0 / cudaErrorNotSupported):
 * start records into a device buffer of `records`; dump writes them to
 * `path` as CSV and frees the buffer. Process-wide: one engine at a time. */
int cuda_probe_compiled(void);
cudaError_t cuda_probe_start(size_t records);
cudaError_t cuda_probe_dump(const char *path);
/* x for a grouped GEMV made in its prologue (decode sizes): x = RMSNorm(a +
 * b) with gain w (f32) and eps, each block normalising the M rows into shared
 * memory, as the add + RMSNorm kernel would (its launch is gone). b may be
 * NULL (x = RMSNorm(a)); with b, block 0 also writes the sum a + b to `sum`
 * (the residual stream), which must not overlap a, b or any part's y; nor
 * may a or b overlap a y (other blocks still read them). Needs
 * M·K·sizeof(T) ≤ CUDA_GEMV_NORM_MAX_BYTES. */
enum { CUDA_GEMV_NORM_MAX_BYTES = 48 * 1024 };
typedef struct cuda_gemv_norm {
    const void *a, *b;
    void *sum;
    const float *w;
    float eps;
} cuda_gemv_norm;
/* x: the shared input, or NULL with `norm` (x made from it); norm NULL: as
 * is. resident_blocks: 0 launches one block a 16 rows; < 0 as many blocks
 * as the GPU holds at once, each making x once and walking rows a grid
 * apart; > 0 at most that many (tests: many rows a warp). */
cudaError_t cuda_gemv_multi(const cuda_gemv_part *parts, int num_parts, int gated, const void *x,
                            const cuda_gemv_norm *norm, llmrt_dtype type, int64_t M, int64_t K, int resident_blocks,
                            int pdl, cudaStream_t stream);
/* The same, telling a consumer that runs beside it (PDL) when the first
 * `rows` outputs of part 0 are in memory (M = 1, not gated): the blocks add
 * the count of those rows they stored to *counter, with release semantics,
 * so a reader that acquires *counter == rows may read them. The consumer
 * sets the counter back to zero (the decode attention's early mode). */
typedef struct cuda_gemv_signal {
    int32_t *counter;
    int64_t rows;
} cuda_gemv_signal;
cudaError_t cuda_gemv_multi_signal(const cuda_gemv_part *parts, int num_parts, int gated, const void *x,
                                   const cuda_gemv_norm *norm, const cuda_gemv_signal *signal, llmrt_dtype type,
                                   int64_t M, int64_t K, int resident_blocks, int pdl, cudaStream_t stream);

/* ---- attention (rope.cu, attention_decode.cu, attention_prefill.cu) ------- */

/* The packed step as the attention kernels see it (all device arrays).
 * token_seq[t] is the sequence of token t; slot_mapping[t] the cache slot
 * (block * block_size + offset) where token t's key and value go;
 * block_tables is [num_seqs, block_table_stride]. */
typedef struct cuda_attention_batch {
    int32_t num_tokens;
    int32_t num_seqs;
    const int32_t *positions;     /* [T] */
    const int32_t *token_seq;     /* [T] */
    const int32_t *slot_mapping;  /* [T] */
    const int32_t *block_tables;  /* [S, block_table_stride] */
    int32_t block_table_stride;
    int32_t block_size;
    /* prefill: tiles of up to CUDA_PREFILL_TILE_M rows of one sequence,
     * each an int2 (first row, row count); built by the caller */
    const int32_t *tiles;         /* [num_tiles, 2] */
    int32_t num_tiles;
    /* decode: NULL, or the step rows the launch covers (then num_tokens
     * counts them); positions etc. stay indexed by step row */
    const int32_t *token_index;
    /* decode, host side: 1 asks small launches for the register-rich
     * latency instance (where cuda_decode_wide_fits holds) */
    int32_t wide;
    /* [T]: the last position of token t's sequence in the step. Non-causal
     * (encoder) attention passes it as `positions` to the attention kernels,
     * whose mask then lets every token see its whole sequence. */
    const int32_t *sequence_end_positions;
} cuda_attention_batch;

/* Applies RoPE (fp32, HF pairing) to q and k and writes k, v into the paged
 * cache; the rotated q goes to q_out (may alias q). Heads beyond rotary_dim
 * pass through. q, q_out: [T, heads*D]; k, v: [T, kv_heads*D];
 * caches: [blocks, block_size, kv_heads, D]; inv_freq: [rotary_dim/2] f32 or
 * NULL (no rotation). */
cudaError_t cuda_rope_kv_write(void *q_out, const void *q, const void *k, const void *v, void *k_cache,
                               void *v_cache, llmrt_dtype type, const cuda_attention_batch *batch,
                               int32_t heads, int32_t kv_heads, int32_t head_dim, int32_t rotary_dim,
                               const float *inv_freq, int neox_style, int pdl, cudaStream_t stream);

/* The step's RoPE table for the fused decode attention: table (float2
 * [num_tokens][rotary_dim/2]) = (cos, sin) of positions[t] · inv_freq[i],
 * the values cuda_rope_kv_write computes. */
cudaError_t cuda_rope_table(float *table, const int32_t *positions, int32_t num_tokens, const float *inv_freq,
                            int32_t rotary_dim, int pdl, cudaStream_t stream);

/* RoPE and the KV write folded into the decode attention (a decode step:
 * one query per sequence, its key the last of its context): q is read raw
 * and rotated in registers, the token's own key and value come from k and v
 * ([T, kv_heads*D], raw) instead of the cache, and the partition holding
 * that position writes them (k rotated) into the cache at slot_mapping[t].
 * Bit-identical to cuda_rope_kv_write followed by the unfused kernel. */
typedef struct cuda_rope_fused {
    const void *k, *v;   /* [T, kv_heads*D] */
    const float *table;  /* cuda_rope_table's, or NULL with rotary_dim 0 */
    int32_t rotary_dim;  /* ≤ D; 0: no rotation */
    int32_t neox;        /* 1: pairs (i, i + rotary_dim/2); 0: (2i, 2i+1) */
    /* Optional early mode (cuda_attention_early_supported; NULL: off): the
     * kernel runs beside the q/k/v GEMV that was launched with
     * cuda_gemv_multi_signal(counter = early, rows = early_rows = heads·D)
     * and reads q as soon as early[0] says all of it is stored, so the
     * cached keys and values are attended to while the GEMV still streams
     * k and v; the part that holds the token's own row merges the others
     * before the GEMV's end too, and only takes that row after it (its PDL
     * wait). early: int32 [2],
     * zero before the launch and left zero by it. */
    int32_t *early;
    int32_t early_rows;
} cuda_rope_fused;

/* 1 if cuda_attention_decode takes the early mode for this launch: 16-bit
 * types, one query head a kv head (MHA), head_dim 32/64/80/96/128, one
 * token; the batch must also ask for the wide instance (batch->wide). */
int cuda_attention_early_supported(llmrt_dtype type, int32_t heads, int32_t kv_heads, int32_t head_dim,
                                   int32_t tokens);

/* Split-K (flash-decoding) attention: each token attends to cache positions
 * 0..positions[t]; its context is cut into up to `partitions` parts of at
 * least CUDA_DECODE_MIN_PART keys, one block per (token, kv head, part)
 * reading the kv head's keys and values once for all its query heads, then
 * the last part of a token to finish merges them (counters: int32 [num_tokens
 * × heads], zero before the first launch and left zero by each). Works
 * for any token mix (prefill too, but then K/V is re-read per token).
 * With batch->token_index set, the launch covers tokens token_index[0..
 * num_tokens) of the step (the decode tokens of a mixed step). q: [T,
 * heads*D] (already rotated); out: [T, heads*D] (may alias q). workspace:
 * cuda_decode_workspace_bytes(num_tokens, heads, head_dim, partitions).
 * rope: NULL (q already rotated, the token's K/V already in the cache), or
 * the fused form above; then q is raw and out must not overlap q, k or v. */
enum { CUDA_DECODE_MIN_PART = 64, CUDA_DECODE_MAX_PARTITIONS = 16, CUDA_MAX_HEAD_DIM = 256 };
/* Parts per token that give a launch of `tokens` tokens enough blocks to
 * fill the GPU (1 at large batches). Depends on the shape only, so a CUDA
 * graph captured for a batch size serves every context length. */
int32_t cuda_decode_partitions(int64_t tokens, int32_t heads, int32_t kv_heads);
/* Any head_dim in 1..CUDA_MAX_HEAD_DIM: 32/64/80/96/128/256 take exact
 * instances with 16-byte loads, other sizes a padded, masked instance. */
int cuda_attention_head_dim_supported(int32_t head_dim);
size_t cuda_decode_workspace_bytes(int64_t tokens, int32_t heads, int32_t head_dim, int32_t partitions);
/* The register-rich latency instance of small decode launches (16-bit, one
 * query head a block): the blocks of it the current GPU holds at once (0:
 * this shape has none), and whether a launch of `tokens` tokens whose
 * longest context is max_context has all its live blocks in one such wave
 * (then it beats the capped instance; past it, it runs in two waves). */
int64_t cuda_decode_wide_slots(llmrt_dtype type, int32_t heads, int32_t kv_heads, int32_t head_dim);
int cuda_decode_wide_fits(int64_t slots, int64_t tokens, int32_t heads, int32_t kv_heads, int32_t partitions,
                          int32_t max_context);
cudaError_t cuda_attention_decode(void *out, const void *q, void *k_cache, void *v_cache,
                                  llmrt_dtype type, const cuda_attention_batch *batch, int32_t heads,
                                  int32_t kv_heads, int32_t head_dim, float scale, int32_t partitions,
                                  void *workspace, int32_t *counters, const cuda_rope_fused *rope, int pdl,
                                  cudaStream_t stream);

/* Flash-attention-2 style causal prefill on tensor cores (f16/bf16, any
 * head_dim ≤ 128; 64/80/96/128 exact, others padded to 16/32/64/128 and
 * masked; larger heads and f32 use the split-K kernel): one block per (tile
 * of CUDA_PREFILL_TILE_M query rows of one sequence, head); keys and values
 * stream from the paged cache in tiles, the score matrix never leaves
 * registers. q: [T, heads*D] rotated; out: [T, heads*D] (may alias q: each
 * block reads its rows before writing). */
enum { CUDA_PREFILL_TILE_M = 128 };
/* 1 if the current GPU runs the prefill kernel for this type and head size
 * (it needs up to ~105 KB of shared memory per block). */
int cuda_attention_prefill_supported(llmrt_dtype type, int32_t head_dim);
cudaError_t cuda_attention_prefill(void *out, const void *q, const void *k_cache, const void *v_cache,
                                   llmrt_dtype type, const cuda_attention_batch *batch, int32_t heads,
                                   int32_t kv_heads, int32_t head_dim, float scale, cudaStream_t stream);

/* Attention with the variants of llmrt_attention_params (0 = off): keys
 * pos − sliding_window < j ≤ pos only, scores soft-capped
 * (cap·tanh(s/cap)) then biased by ALiBi (slope_h·(j − pos)). Any step mix,
 * any head_dim ≤ CUDA_MAX_HEAD_DIM, f32/f16/bf16; reads only the window's
 * blocks (the slots before it may be freed). q: [T, heads*D] rotated, the
 * step's K/V already in the cache; out: [T, heads*D] (may alias q). */
typedef struct cuda_attention_variant_params {
    int32_t sliding_window;
    float logit_softcap;
    float alibi_max_bias;
    int32_t alibi_first_head, alibi_total_heads; /* a tensor-parallel rank's heads (0, 0: all) */
} cuda_attention_variant_params;
cudaError_t cuda_attention_variant(void *out, const void *q, const void *k_cache, const void *v_cache,
                                   llmrt_dtype type, const cuda_attention_batch *batch, int32_t heads,
                                   int32_t kv_heads, int32_t head_dim, float scale,
                                   const cuda_attention_variant_params *variant, cudaStream_t stream);

/* ---- the 8-bit KV cache (kv_cache8.cu, attention_variant.cu) -------------- */

/* One layer of an 8-bit cache (--kv-cache fp8|int8), the layout of the CPU's
 * cpu_kv8_layer: codes [blocks, block_size, kv_heads, D] (one byte each),
 * scales f32 [blocks, block_size, kv_heads]; element = decode(code) · scale,
 * scale = max|row| / QMAX of the (token, kv head) row when it was appended. */
enum { CUDA_KV8_FP8 = 1, CUDA_KV8_INT8 = 2 }; /* = LLMRT_Q8_FP8, LLMRT_Q8_INT8 */
typedef struct cuda_kv8_layer {
    void *k_codes, *v_codes;
    float *k_scales, *v_scales;
    int32_t kind;
} cuda_kv8_layer;
/* cuda_rope_kv_write for an 8-bit cache: q rotated into q_out (type), k
 * rotated in f32 and quantized, v quantized, each (token, kv head) row with
 * its own scale, at slot_mapping[t] (< 0: skipped). */
cudaError_t cuda_rope_kv8_write(void *q_out, const void *q, const void *k, const void *v, const cuda_kv8_layer *cache,
                                llmrt_dtype type, const cuda_attention_batch *batch, int32_t heads, int32_t kv_heads,
                                int32_t head_dim, int32_t rotary_dim, const float *inv_freq, int neox_style,
                                cudaStream_t stream);
/* Attention over an 8-bit layer, any step mix (prefill and decode tokens),
 * with or without the variants (all-zero params: plain causal attention):
 * cuda_attention_variant's kernel reading codes and scales. q: [T, heads*D]
 * rotated; out may alias q; batch->token_index must be NULL. partitions > 1
 * cuts each token's keys into that many ranges (split-K, for decode steps
 * of few tokens), merged by a second kernel: workspace holds
 * cuda_decode_workspace_bytes(T, heads, D, partitions). */
cudaError_t cuda_attention_kv8(void *out, const void *q, const cuda_kv8_layer *cache, llmrt_dtype type,
                               const cuda_attention_batch *batch, int32_t heads, int32_t kv_heads, int32_t head_dim,
                               float scale, const cuda_attention_variant_params *variant, int32_t partitions,
                               float *workspace, cudaStream_t stream);

/* ---- sampling (sampling.cu) ------------------------------------------------ */

/* ids[r] = argmax(logits[r, :]) (lowest index on ties); logits: [rows, vocab] f32. */
cudaError_t cuda_argmax(int32_t *ids, const float *logits, int64_t rows, int64_t vocab, cudaStream_t stream);
/* Per-row parameters of cuda_sample (the runtime's llmrt_row_sampling). */
typedef struct cuda_sample_row {
    float temperature; /* <= 0 or top_k == 1: argmax */
    float top_p;       /* >= 1: off */
    float min_p;       /* <= 0: off */
    float uniform;     /* a draw in [0, 1) by the caller (the runtime owns seeds) */
    int32_t top_k;     /* <= 0: off */
    int32_t skip;      /* 1: leave this row alone (sampled on the host) */
} cuda_sample_row;
/* Temperature / top-k / top-p / min-p sampling, one block per row; rows:
 * device array [rows]. Keeps the top-k tokens, then the smallest set of
 * them whose renormalised mass reaches top_p (ties at a threshold are
 * kept), then those with probability >= min_p × the top one, and picks by
 * inverse CDF in vocabulary order. logprobs[r] (may be NULL): the chosen
 * token's log-probability under the raw logits (log-softmax, no temperature). */
cudaError_t cuda_sample(int32_t *ids, float *logprobs, const float *logits, int64_t rows, int64_t vocab,
                        const cuda_sample_row *params, cudaStream_t stream);

/* ---- mixture of experts (moe.cu) -------------------------------------------- */

/* Routing alone (cpu_moe_route's twin): logits [T, E] of logits_type →
 * experts [T, k] (ties to the lower index), weights [T, k] renormalised. */
cudaError_t cuda_moe_route(int32_t *experts, float *weights, const void *logits, llmrt_dtype logits_type,
                           int64_t T, int64_t E, int64_t k, cudaStream_t stream);
/* Device scratch cuda_moe needs for T tokens (256-byte aligned base). */
size_t cuda_moe_workspace_bytes(int64_t T, int64_t H, int64_t I, int64_t E, int64_t k, llmrt_dtype type);
/* cpu_moe's twin: y[t] = Σ_j w[t,j] · w_down[e](silu(w_gate[e]·x[t]) · (w_up[e]·x[t])).
 * x, y: [T, H] of type; w_gate, w_up: [E, I, H], w_down: [E, H, I] of type;
 * router_logits [T, E] of logits_type. E ≤ 1024. Five launches, each with
 * `pdl` as the decode step's other kernels. */
cudaError_t cuda_moe(void *y, const void *x, const void *router_logits, llmrt_dtype logits_type, const void *w_gate,
                     const void *w_up, const void *w_down, llmrt_dtype type, int64_t T, int64_t H, int64_t I,
                     int64_t E, int64_t k, void *workspace, int pdl, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
