/* CPU kernels: plain functions over arrays with explicit shapes. Activations
 * are float32; weights may be f32, f16 or bf16 (fp32 accumulation always).
 * Kernels parallelise internally on the thread pool (core/thread_pool.h;
 * the caller sets the thread count with omp_set_num_threads) and pick
 * AVX-512 / AVX2+FMA / portable code at run time.
 * These are also the reference twins of the CUDA kernels. */
#ifndef LLMRT_BACKENDS_CPU_KERNELS_H
#define LLMRT_BACKENDS_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "llmrt/dtype.h"

/* Which SIMD path the kernels use: "avx512", "avx2", or "portable". Decided
 * once from cpuid; LLMRT_CPU_ISA=portable|avx2|avx512 in the environment
 * forces a lower path (tests compare paths). */
const char *cpu_kernels_isa(void);
void cpu_kernels_force_isa(const char *isa); /* tests; NULL = auto */

/* 16-bit compute for the calling thread's next linears: with on = 1 and
 * AVX512-BF16 hardware, a bf16 weight's linear rounds x to bf16 and sums
 * exact bf16 products in fp32 (vdpbf16ps); on = 0 (the default) keeps
 * x in fp32. Other weight dtypes are unaffected. */
void cpu_kernels_set_16bit_compute(int on);
/* 1 when the hardware has vdpbf16ps and the ISA level allows AVX-512. */
int cpu_has_bf16_dot(void);
/* "bf16" when a bf16 weight's linears would compute in 16 bits on this
 * thread now, else "fp32". */
const char *cpu_kernels_bf16_compute(void);

/* y[M,N] = x[M,K] · W[N,K]ᵀ (+ bias[N] if non-NULL). W is f32/f16/bf16 (or an
 * int8-wo / int4-wo blob, core/quant.h, through cpu_kernels_quant.c), row
 * n holds output n's weights (the nn.Linear layout). M = 1 is the decode
 * GEMV (bandwidth-bound: stream W once); larger M blocks W so each weight
 * panel is converted once and reused across rows (compute-bound). */
void cpu_linear(float *y, const float *x, const void *w, llmrt_dtype w_type, const float *bias,
                int64_t M, int64_t N, int64_t K);

/* Several linears of one x (q/k/v, gate/up) in one parallel region; each
 * output is bit-identical to cpu_linear's. With `gated` non-NULL (count 2,
 * gate then up, equal N): gated[M,N] = silu(y_gate) · y_up as well, each
 * thread on the columns it computed. gated must not overlap x, and may
 * coincide with a part's y but not partly overlap it. */
typedef struct cpu_linear_part {
    float *y;            /* [M, N] */
    const void *w;       /* [N, K] */
    llmrt_dtype w_type;
    const float *bias;   /* [N] or NULL */
    int64_t N;
    int w_interleaved;   /* W (f16/bf16) in cpu_weight_interleave's layout, not rows */
} cpu_linear_part;
void cpu_linear_group(const cpu_linear_part *parts, int count, const float *x, int64_t M, int64_t K, float *gated);

/* The CPU backend's layout of 16-bit (f16, bf16) linear weights, chosen at
 * load: W[N, K] in groups of 8 rows, each group a run of chunks of 32
 * values of k in which the 8 rows follow one another (8 × 64 B: a row's
 * part of a chunk is one cache line). K is padded to a multiple of 32 and
 * the last group to 8 rows, with zeros. The decode GEMV then reads one
 * contiguous stream per 8 rows instead of 8 rows of K·2 bytes, each page of
 * which restarts the hardware prefetcher (docs/PERFORMANCE.md). Every path
 * computes the same bits from either layout.
 * dst: cpu_weight_interleaved_bytes(N, K) bytes; src: [N, K] rows. */
size_t cpu_weight_interleaved_bytes(int64_t N, int64_t K);
void cpu_weight_interleave(uint16_t *dst, const uint16_t *src, int64_t N, int64_t K);
/* out[0..K) = row n of a 16-bit W[N, K] as f32, W interleaved or rows (a
 * tied embedding table's gather reads the LM head's interleaved rows). */
void cpu_weight_row_f32(float *out, const uint16_t *w, llmrt_dtype type, int interleaved, int64_t n, int64_t K);

/* c[M,N] = a[M,K] · b[K,N], all f32 row-major (activation × activation). */
void cpu_matmul_f32(float *c, const float *a, const float *b, int64_t M, int64_t N, int64_t K);

/* out[t, :] = table[ids[t], :] as f32. table: [rows, dim] f32/f16/bf16.
 * Returns the index t of the first id outside [0, rows), or -1 if all valid
 * (rows for invalid ids are zero-filled). */
int64_t cpu_embedding(float *out, const void *table, llmrt_dtype table_type, int64_t rows, int64_t dim,
                      const int32_t *ids, int64_t count);

/* y = x / sqrt(mean(x²) + eps) * weight, per row of length dim. weight f32. */
void cpu_rmsnorm(float *y, const float *x, const float *weight, int64_t rows, int64_t dim, float eps);
/* The same with the gain weight + offset (Gemma's x̂·(1 + w): offset 1). */
void cpu_rmsnorm_offset(float *y, const float *x, const float *weight, int64_t rows, int64_t dim, float eps,
                        float offset);
/* y = (x - mean) / sqrt(var + eps) * weight + bias (bias may be NULL). */
void cpu_layernorm(float *y, const float *x, const float *weight, const float *bias, int64_t rows,
                   int64_t dim, float eps);
/* Fused residual: residual += x (in place), then y = rmsnorm(residual). */
void cpu_add_rmsnorm(float *y, float *residual, const float *x, const float *weight, int64_t rows,
                     int64_t dim, float eps);

/* sum = a + b, then y = rmsnorm(sum): a block's residual add and the next
 * norm in one pass (the sum is the residual stream, kept). Bit-identical to
 * the two ops apart. a, b, sum, y: [rows, dim]; sum may alias a or b. */
void cpu_add_rmsnorm_to(float *y, float *sum, const float *a, const float *b, const float *weight, int64_t rows,
                        int64_t dim, float eps);

/* Row-wise softmax over the last dim, numerically stable, in place allowed. */
void cpu_softmax(float *y, const float *x, int64_t rows, int64_t dim);

/* Activations, n elements, in place allowed. */
void cpu_silu(float *y, const float *x, int64_t n);
void cpu_gelu_erf(float *y, const float *x, int64_t n);
void cpu_gelu_tanh(float *y, const float *x, int64_t n);
/* y[r, i] = silu(gate_up[r, i]) * gate_up[r, inter + i] for gate_up [rows, 2*inter];
 * also used unfused with separate gate and up: see cpu_silu_mul. */
void cpu_silu_mul(float *y, const float *gate, const float *up, int64_t n);

/* Rotary embedding in place on x: [T, heads, head_dim]. Rotates the first
 * rotary_dim dims of each head by angle positions[t] * inv_freq[i]
 * (i < rotary_dim / 2), in fp32 as HF does. neox_style = 1 pairs dim i with
 * i + rotary_dim/2 (LLaMA "rotate_half"); 0 pairs 2i with 2i+1 (GPT-J). */
void cpu_rope(float *x, const int32_t *positions, int64_t T, int64_t heads, int64_t head_dim,
              int64_t rotary_dim, const float *inv_freq, int neox_style);

/* cpu_rope in two steps, for several tensors rotated at the same positions:
 * cos_sin [T, rotary_dim] (per token: the cos of the rotary_dim / 2 angles,
 * then their sin), then dst = rotate(src) from the table (dst may be src;
 * dims past rotary_dim are copied). Bit-identical to cpu_rope. */
void cpu_rope_table(float *cos_sin, const int32_t *positions, int64_t T, int64_t rotary_dim, const float *inv_freq);
void cpu_rope_apply(float *dst, const float *src, const float *cos_sin, int64_t T, int64_t heads, int64_t head_dim,
                    int64_t rotary_dim, int neox_style);

/* The packed-token batch as the attention kernels see it. Tokens of sequence
 * s are rows [seq_start[s], seq_start[s+1]) of q; token t sits at position
 * positions[t] and attends causally to cache positions 0..positions[t].
 * Cache position p of sequence s lives in block block_tables[s *
 * max_blocks_per_seq + p / block_size], slot p % block_size. */
typedef struct cpu_attention_batch {
    int32_t num_seqs;
    const int32_t *seq_start;    /* [num_seqs + 1] */
    const int32_t *positions;    /* [T] */
    const int32_t *block_tables; /* [num_seqs, max_blocks_per_seq] */
    int32_t max_blocks_per_seq;
    int32_t block_size;
    int32_t non_causal;          /* 1: every token sees its whole sequence (encoders) */
} cpu_attention_batch;

/* Writes new keys/values k, v: [T, kv_heads, head_dim] into the paged cache
 * at each token's position. Cache layout per layer: [num_blocks, block_size,
 * kv_heads, head_dim], f32. */
void cpu_kv_cache_write(float *k_cache, float *v_cache, const float *k, const float *v,
                        const cpu_attention_batch *batch, int64_t T, int64_t kv_heads, int64_t head_dim);

/* out[t, h, :] = softmax(q[t,h,:]·K[0..pos]ᵀ · scale) · V (pos: t's own
 * position, or with non_causal its sequence's last in the step), GQA: query
 * head h reads kv head h / (heads / kv_heads). q, out: [T, heads, head_dim]. No
 * score matrix is materialised beyond one row; parallel over (token, head). */
void cpu_attention(float *out, const float *q, const float *k_cache, const float *v_cache,
                   const cpu_attention_batch *batch, int64_t T, int64_t heads, int64_t kv_heads,
                   int64_t head_dim, float scale);

/* Mixture-of-experts routing: per token, softmax over logits [T, E] in f32,
 * the top k experts (ties to the lower index, as torch.topk) and their
 * probabilities renormalised to sum to 1 → experts, weights: [T, k]. */
void cpu_moe_route(int32_t *experts, float *weights, const float *logits, int64_t T, int64_t E, int64_t k);
/* y[t] = Σ_j w[t,j] · w_down[e](silu(w_gate[e] · x[t]) · (w_up[e] · x[t])),
 * e = expert j of token t (cpu_moe_route). x, y: [T, H]; router_logits
 * [T, E]; w_gate, w_up: [E, I, H], w_down: [E, H, I] of w_type (f32, f16,
 * bf16). scratch: cpu_moe_scratch_bytes, 4-byte aligned. */
size_t cpu_moe_scratch_bytes(int64_t T, int64_t H, int64_t I, int64_t E, int64_t k);
void cpu_moe(float *y, const float *x, const float *router_logits, const void *w_gate, const void *w_up,
             const void *w_down, llmrt_dtype w_type, int64_t T, int64_t H, int64_t I, int64_t E, int64_t k,
             void *scratch);
/* The attention variants of llmrt_attention_params (0 = off): a sliding
 * window (keys j with pos − window < j ≤ pos), logit soft-capping
 * (cap·tanh(s/cap)) and ALiBi (s += slope_h·(j − pos)). */
typedef struct cpu_attention_variant {
    int32_t sliding_window;
    float logit_softcap;
    float alibi_max_bias;
    /* a tensor-parallel rank's heads are heads alibi_first_head.. of
     * alibi_total_heads, whose slopes they take (0, 0: all the heads) */
    int32_t alibi_first_head, alibi_total_heads;
} cpu_attention_variant;

/* cpu_attention with the variants; the same as cpu_attention when all are
 * off. A windowed query reads only its window's cache blocks. */
void cpu_attention_ex(float *out, const float *q, const float *k_cache, const float *v_cache,
                      const cpu_attention_batch *batch, int64_t T, int64_t heads, int64_t kv_heads,
                      int64_t head_dim, float scale, const cpu_attention_variant *variant);

/* One layer of an 8-bit KV cache (--kv-cache fp8|int8): per slot (block ·
 * block_size + offset) and kv head, head_dim one-byte codes and one f32
 * scale, K and V alike:
 *   codes  [num_blocks, block_size, kv_heads, head_dim]  (the f32 layout, 1 B each)
 *   scales [num_blocks, block_size, kv_heads]
 * element = decode(code) · scale, decode = E4M3 (fp8) or int8; the scale is
 * max|row| / QMAX of the row's head (448 or 127, 1 for an all-zero row),
 * set when the token is appended, so no calibration is needed. */
typedef struct cpu_kv8_layer {
    uint8_t *k_codes, *v_codes;
    float *k_scales, *v_scales;
    int kind; /* LLMRT_Q8_FP8 or LLMRT_Q8_INT8 (core/quant8.h) */
} cpu_kv8_layer;

/* cpu_kv_cache_write for an 8-bit layer: quantizes each (token, kv head)
 * row of k, v [T, kv_heads, head_dim] into its slot. */
void cpu_kv8_cache_write(const cpu_kv8_layer *cache, const float *k, const float *v, const cpu_attention_batch *batch,
                         int64_t T, int64_t kv_heads, int64_t head_dim);
/* The f32 values of n consecutive slots from `first_slot` (block · block_size
 * + offset) of kv heads [kvh0, kvh1): k_out/v_out row j, head h at
 * j·out_stride + (h − kvh0)·head_dim. Exactly decode(code) · scale in f32. */
void cpu_kv8_dequantize_slots(const cpu_kv8_layer *cache, size_t first_slot, int64_t n, int64_t kvh0, int64_t kvh1,
                              int64_t kv_heads, int64_t head_dim, float *k_out, int64_t out_stride, float *v_out);
/* cpu_attention_ex over an 8-bit layer: the same kernels (and so the same
 * result, bit for bit) as on an f32 cache holding the dequantized values.
 * Each query dequantizes the positions it reads into a per-thread buffer
 * (its span × kv_heads × head_dim × 8 B on the SIMD paths, 64 rows of one
 * head on the variant path). Fails only when that buffer cannot be had. */
llmrt_status cpu_attention_kv8(float *out, const float *q, const cpu_kv8_layer *cache,
                               const cpu_attention_batch *batch, int64_t T, int64_t heads, int64_t kv_heads,
                               int64_t head_dim, float scale, const cpu_attention_variant *variant);

#endif
