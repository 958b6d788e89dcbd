// Decode attention over the paged KV cache (flash-decoding): block
// (partition p, kv head g, token t) reads the keys and values of partition p
// of token t's context for kv head g once and serves up to NH query heads of
// g with them (the GQA group, in chunks).
//
// One pass, no score buffer: the block's 128 threads form KPB row groups of
// TPK threads; each row group walks every KPB-th row of the partition with
// its own online softmax (running max, sum, output), loading DECODE_UNROLL
// rows of K and V at once so that many loads are in flight, and no barrier
// is needed inside the loop. The row groups merge through shared memory at
// the end. A partition that holds the whole context writes the output; else
// each writes its (max, sum, unnormalised output) to the workspace and the
// last of the token's partitions to finish (a counter per token and head
// chunk) merges them: no second kernel.
//
// Partitions: the caller picks how many (cuda_decode_partitions: enough
// blocks to fill the GPU, one per token at large batches), the kernel cuts
// each token's actual context into that many parts of at least
// CUDA_DECODE_MIN_PART keys, so a graph captured for a batch size serves any
// context length, and short contexts use fewer live partitions.
//
// Head sizes: the common ones (32/64/80/96/128/256) have exact instances
// with 16-byte loads. Any other head_dim d in 1..256 runs the instance of
// the next padded size D ∈ {32, 64, 128, 256} with element-wise loads
// masked at d (rows of d elements are not 16-byte aligned in general); the
// padded lanes hold zeros, so they add nothing to the dot products.
//
// Fused RoPE (a.rk set, decode steps): q arrives raw and is rotated as it is
// loaded; the token's own key and value (the last row of its context) are
// taken from the step's raw k/v, rotated, and used from registers for that
// row (no block reads the row this launch writes), and the partition that
// holds the row writes it into the cache. This is the RoPE + KV-write
// kernel's work without its launch, with the same bits (rope_pair).
//
// Early mode (batch 1, one query head a block, the wide instance): the
// kernel runs beside the q/k/v GEMV, which raises a flag once every q row
// is stored (cuda_gemv_multi_signal); the blocks attend to the cached rows
// then, while the GEMV still streams k and v, and publish their partials;
// the part holding the token's own row merges the others' partials
// before the GEMV's end too, and only adds that row after it.
//
// Latency at batch 1 (the kernel moves ~1 MB at 128 tokens of context but
// sits between two GEMVs): up to two batches of K/V rows are in flight
// before the wait, and every read of the q/k/v GEMV's output goes out at
// once.
#include "backends/cuda/attention_decode_args.cuh"
#include "backends/cuda/attention_decode_phases.cuh"
#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/kernel_probe.cuh"
#include "backends/cuda/rope_fused.cuh"

PROBE_BIND(cuda_probe_bind_attention)

template <typename T, int D, bool EXACT, int NH, bool PRE2, bool WIDE = false>
__global__ void __launch_bounds__(DECODE_THREADS, NH > 1 || WIDE ? 1 : PRE2 ? PRE2_MIN_BLOCKS : MIN_BLOCKS)
    attention_decode_kernel(T *out, const T *q, T *k_cache, T *v_cache, float *workspace, decode_args a) {
    using C = decode_cfg<T, D, EXACT, NH, PRE2, WIDE>;
    constexpr int VEC = C::VEC, CPT = C::CPT, KPB = C::KPB, U = C::UNROLL;
    __shared__ __align__(16) float red[KPB][D];
    __shared__ float m_s[KPB][NH], l_s[KPB][NH];
    PROBE_ATTN_DECL;
    // The output projection's GEMV may launch and start loading its weights
    // now. (Releasing it only after the wait on the q/k/v GEMV helped while
    // that GEMV ran in waves; with it resident it cost 0.025 ms/token at
    // batch 1 on an H200: o_proj's blocks are placed only as its blocks
    // exit anyway.)
    pdl_trigger();
    // Fused RoPE runs in decode steps only, where every cache row a block
    // reads but the token's own was written by an earlier step: the first
    // batches of K/V rows are loaded before waiting for the q/k/v GEMV (this
    // kernel is latency-bound at small batches). The step metadata came
    // with the copy before the step's first kernel.
    const bool fused = a.rk != nullptr;
    // Early mode: q comes from a flag the q/k/v GEMV raises before it ends;
    // the token's own key and value only with the GEMV's end, in the part
    // that holds their row.
    const bool early = C::EARLY_CAP && a.early != nullptr;
    if (!fused) pdl_wait();

    decode_block b;
    if (!place_block<C>(a, fused, b)) return;

    // The first batch of K/V rows; with PRE2 (small launches, where latency
    // is all) the second goes out before the wait too, into registers of
    // its own, so that a partition of up to 2·KPB·U rows has all its K/V in
    // flight before the q/k/v GEMV ends (shared memory instead cost more:
    // its carveout serialised the kernels around it).
    uint4 kv[U][CPT], vv[U][CPT], kv2[PRE2 ? U : 1][CPT], vv2[PRE2 ? U : 1][CPT];
    load_kv_rows<C>(kv, vv, 0, nullptr, nullptr, k_cache, v_cache, a, b);
    if constexpr (PRE2) load_kv_rows<C>(kv2, vv2, KPB * U, nullptr, nullptr, k_cache, v_cache, a, b);
    if (early) block_wait_at_least(a.early, a.early_rows);
    else if (fused) pdl_wait();
    PROBE_ATTN_MARK(PROBE_T1);

    // q (pre-scaled) for each head of the chunk; with fused RoPE the table
    // row of this token and the token's own key (rotated) and value for
    // this thread's columns (kc, vc).
    const float2 *cs = fused ? a.rope_table + (int64_t)b.t * (a.rotary_dim / 2) : nullptr;
    const int rot = fused ? a.rotary_dim : 0;
    const int64_t kv_row = (b.t * a.kv_heads + b.g) * b.d;
    uint4 kc[CPT], vc[CPT];
    float qr[NH][CPT][VEC];
    if constexpr (PRE2) load_q_own_row_latency<C>(qr, kc, vc, q, k_cache, v_cache, cs, rot, kv_row, fused, early, a, b);
    else load_q_own_row_lean<C>(qr, kc, vc, q, k_cache, v_cache, cs, rot, kv_row, fused, a, b);
    PROBE_ATTN_MARK(PROBE_T3);
    place_own_row<C>(kv, vv, kv2, vv2, kc, vc, b);

    // One pass over the partition's rows, an online softmax per row group.
    // The bound is uniform across the block (the shuffles need every lane);
    // rows past nkeys are masked.
    float acc[NH][CPT][VEC], m[NH], l[NH];
#pragma unroll
    for (int h = 0; h < NH; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
#pragma unroll
        for (int c = 0; c < CPT; c++)
#pragma unroll
            for (int i = 0; i < VEC; i++) acc[h][c][i] = 0.0f;
    }
    for (int base = 0; base < b.nkeys; base += KPB * U) {
        if (PRE2 && base == KPB * U) {
            if constexpr (PRE2)
#pragma unroll
                for (int u = 0; u < U; u++)
#pragma unroll
                    for (int c = 0; c < CPT; c++) {
                        kv[u][c] = kv2[u][c];
                        vv[u][c] = vv2[u][c];
                    }
        } else if (base > 0) {
            load_kv_rows<C>(kv, vv, base, kc, vc, k_cache, v_cache, a, b);
        }
        float s[NH][U];
        score_rows<C>(s, qr, kv, base, early, b);
        online_softmax<C>(acc, m, l, s, vv);
    }
    PROBE_ATTN_MARK(PROBE_T4);

    if (early && b.own_here) {
        early_merge<C>(out, k_cache, v_cache, workspace, red, m_s, l_s, acc, m, l, qr, kc, vc, cs, rot, kv_row, a, b);
        PROBE_ATTN_RECORD(k_cache);
        return;
    }
    const bool single = b.live_parts == 1; // write the output here; the merge skips such tokens
    merge_row_groups<C>(out, workspace, red, m_s, l_s, acc, m, l, single, a, b);
    if (early) {
        // publish the partials to the merging part (it waits for them)
        PROBE_ATTN_MARK(PROBE_T2);
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0) red_release_add(a.counters + (int64_t)blockIdx.z * gridDim.y + blockIdx.y, 1);
        PROBE_ATTN_RECORD(k_cache);
        return;
    }
    if (single) {
        PROBE_ATTN_RECORD(k_cache);
        return;
    }
    // The last part of this (token, head chunk) to finish merges them all.
    __shared__ int last;
    PROBE_ATTN_MARK(PROBE_T2);
    if (!last_part_to_finish(last, a, b)) {
        PROBE_ATTN_RECORD(k_cache);
        return;
    }
    merge_parts<C>(out, workspace, a, b);
    PROBE_ATTN_RECORD(k_cache);
}

extern "C" int cuda_attention_head_dim_supported(int32_t head_dim) {
    return head_dim >= 1 && head_dim <= CUDA_MAX_HEAD_DIM;
}

// The launches that reach an instance with EARLY_CAP: 16-bit, one query
// head a block, an exact head size ≤ DECODE_THREADS, the WIDE instance
// (batch->wide, checked by the launch).
extern "C" int cuda_attention_early_supported(llmrt_dtype type, int32_t heads, int32_t kv_heads, int32_t head_dim,
                                              int32_t tokens) {
    const int exact = head_dim == 32 || head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128;
    return (type == LLMRT_DTYPE_BF16 || type == LLMRT_DTYPE_F16) && kv_heads >= 1 && heads == kv_heads && exact &&
           tokens == 1;
}

// Query heads one block serves: the GQA group rounded up to 1, 4 or 8.
static int heads_per_block(int group) { return group <= 1 ? 1 : group <= 4 ? 4 : 8; }

extern "C" int32_t cuda_decode_partitions(int64_t tokens, int32_t heads, int32_t kv_heads) {
    if (tokens < 1 || kv_heads < 1) return 1;
    const int group = heads / kv_heads, per_block = heads_per_block(group);
    const int64_t units = tokens * kv_heads * ((group + per_block - 1) / per_block);
    int64_t p = (TARGET_BLOCKS + units - 1) / units;
    const int64_t most = CUDA_DECODE_MAX_PARTITIONS;
    return (int32_t)(p < 1 ? 1 : p > most ? most : p);
}

extern "C" size_t cuda_decode_workspace_bytes(int64_t tokens, int32_t heads, int32_t head_dim, int32_t partitions) {
    return (size_t)tokens * heads * partitions * (head_dim + 2) * sizeof(float);
}

template <typename T, int D, bool EXACT, int NH, bool PRE2 = false, bool WIDE = false>
static cudaError_t launch_decode(T *out, const T *q, T *kc, T *vc, float *ws, decode_args a,
                                 int64_t tokens, int pdl, cudaStream_t stream) {
    a.head_chunks = (a.group + NH - 1) / NH;
    if ((int64_t)a.kv_heads * a.head_chunks > 65535) return cudaErrorInvalidValue;
    dim3 grid((unsigned)a.num_partitions, (unsigned)(a.kv_heads * a.head_chunks), (unsigned)tokens);
    launch_pdl(attention_decode_kernel<T, D, EXACT, NH, PRE2, WIDE>, grid, dim3(DECODE_THREADS), pdl, stream, out,
               q, kc, vc, ws, a);
    return cudaGetLastError();
}

// Small launches of 16-bit types (a row share of one chunk) take the PRE2
// instance: latency over occupancy; with one query head a block and `wide`
// (its live blocks fit one wave of it), the one with registers left free.
template <typename T, int D, int NH>
static cudaError_t launch_exact_nh(T *o, const T *q, T *kc, T *vc, float *ws, decode_args a, int64_t n, int wide,
                                   int pdl, cudaStream_t stream) {
    if constexpr (sizeof(T) == 2)
        if (n <= PRE2_MAX_TOKENS) {
            if constexpr (NH == 1)
                if (wide) return launch_decode<T, D, true, 1, true, true>(o, q, kc, vc, ws, a, n, pdl, stream);
            return launch_decode<T, D, true, NH, true>(o, q, kc, vc, ws, a, n, pdl, stream);
        }
    return launch_decode<T, D, true, NH>(o, q, kc, vc, ws, a, n, pdl, stream);
}

// Blocks of the WIDE instance for head size D one SM holds at once.
template <typename T, int D> static int wide_blocks_per_sm() {
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, attention_decode_kernel<T, D, true, 1, true, true>,
                                                      DECODE_THREADS, 0) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

template <typename T> static int wide_blocks_per_sm_for(int32_t head_dim) {
    switch (head_dim) {
    case 32: return wide_blocks_per_sm<T, 32>();
    case 64: return wide_blocks_per_sm<T, 64>();
    case 80: return wide_blocks_per_sm<T, 80>();
    case 96: return wide_blocks_per_sm<T, 96>();
    case 128: return wide_blocks_per_sm<T, 128>();
    case 256: return wide_blocks_per_sm<T, 256>();
    default: return 0;
    }
}

extern "C" int64_t cuda_decode_wide_slots(llmrt_dtype type, int32_t heads, int32_t kv_heads, int32_t head_dim) {
    if (kv_heads < 1 || heads != kv_heads) return 0; // one query head a block only
    int per_sm = 0;
    if (type == LLMRT_DTYPE_BF16) per_sm = wide_blocks_per_sm_for<__nv_bfloat16>(head_dim);
    else if (type == LLMRT_DTYPE_F16) per_sm = wide_blocks_per_sm_for<__half>(head_dim);
    int device = 0, sms = 0;
    if (per_sm <= 0 || cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return (int64_t)per_sm * sms;
}

extern "C" int cuda_decode_wide_fits(int64_t slots, int64_t tokens, int32_t heads, int32_t kv_heads,
                                     int32_t partitions, int32_t max_context) {
    if (slots <= 0 || tokens < 1 || tokens > PRE2_MAX_TOKENS || kv_heads < 1 || heads != kv_heads ||
        partitions < 1 || max_context < 1)
        return 0;
    // the live parts of a token grow with its context
    const int len = partition_length(max_context, partitions);
    return tokens * kv_heads * ((max_context + len - 1) / len) <= slots;
}

template <typename T, int D>
static cudaError_t launch_exact(T *o, const T *q, T *kc, T *vc, float *ws, decode_args a, int64_t n, int wide,
                                int pdl, cudaStream_t stream) {
    switch (heads_per_block(a.group)) {
    case 1: return launch_exact_nh<T, D, 1>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    case 4: return launch_exact_nh<T, D, 4>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    default: return launch_exact_nh<T, D, 8>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    }
}

// The exact instance for the common head sizes, else the padded generic one
// (rare sizes: one heads-per-block variant only, to bound the instances).
template <typename T>
static cudaError_t dispatch_decode(T *o, const T *q, T *kc, T *vc, float *ws, decode_args a, int64_t n, int wide,
                                   int pdl, cudaStream_t stream) {
    switch (a.head_dim) {
    case 32: return launch_exact<T, 32>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    case 64: return launch_exact<T, 64>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    case 80: return launch_exact<T, 80>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    case 96: return launch_exact<T, 96>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    case 128: return launch_exact<T, 128>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    case 256: return launch_exact<T, 256>(o, q, kc, vc, ws, a, n, wide, pdl, stream);
    default: break;
    }
    if (a.head_dim <= 32) return launch_decode<T, 32, false, 8>(o, q, kc, vc, ws, a, n, pdl, stream);
    if (a.head_dim <= 64) return launch_decode<T, 64, false, 8>(o, q, kc, vc, ws, a, n, pdl, stream);
    if (a.head_dim <= 128) return launch_decode<T, 128, false, 8>(o, q, kc, vc, ws, a, n, pdl, stream);
    return launch_decode<T, 256, false, 8>(o, q, kc, vc, ws, a, n, pdl, stream);
}

extern "C" cudaError_t cuda_attention_decode(void *out, const void *q, void *k_cache, void *v_cache,
                                             llmrt_dtype type, const cuda_attention_batch *batch, int32_t heads,
                                             int32_t kv_heads, int32_t head_dim, float scale, int32_t partitions,
                                             void *workspace, int32_t *counters, const cuda_rope_fused *rope,
                                             int pdl, cudaStream_t stream) {
    if (batch->num_tokens <= 0) return cudaSuccess;
    if (kv_heads <= 0 || heads % kv_heads || partitions < 1 || partitions > CUDA_DECODE_MAX_PARTITIONS ||
        (partitions > 1 && !counters) ||
        !cuda_attention_head_dim_supported(head_dim))
        return cudaErrorInvalidValue;
    if (rope && (!rope->k || !rope->v || rope->rotary_dim < 0 || rope->rotary_dim > head_dim || rope->rotary_dim % 2 ||
                 (rope->rotary_dim > 0 && !rope->table) || !batch->slot_mapping))
        return cudaErrorInvalidValue;
    // the early mode must be taken whenever it is asked for: its GEMV raises the flag regardless
    if (rope && rope->early &&
        (!cuda_attention_early_supported(type, heads, kv_heads, head_dim, batch->num_tokens) ||
         !batch->wide || rope->early_rows < 1 || (partitions > 1 && !counters)))
        return cudaErrorInvalidValue;
    decode_args a;
    a.rk = rope ? rope->k : nullptr;
    a.rv = rope ? rope->v : nullptr;
    a.rope_table = rope ? (const float2 *)rope->table : nullptr;
    a.rotary_dim = rope ? rope->rotary_dim : 0;
    a.rope_neox = rope ? rope->neox : 1;
    a.early = rope ? rope->early : nullptr;
    a.early_rows = rope ? rope->early_rows : 0;
    a.slot_mapping = batch->slot_mapping;
    a.positions = batch->positions;
    a.token_seq = batch->token_seq;
    a.block_tables = batch->block_tables;
    a.token_index = batch->token_index;
    a.block_table_stride = batch->block_table_stride;
    a.block_size = batch->block_size;
    a.block_shift = -1;
    for (int sh = 0; sh < 31; sh++)
        if (batch->block_size == (1 << sh)) a.block_shift = sh;
    a.heads = heads;
    a.kv_heads = kv_heads;
    a.group = heads / kv_heads;
    a.head_chunks = 1;
    a.num_partitions = partitions;
    a.scale = scale;
    a.counters = counters;
    a.head_dim = head_dim;
    // The workspace holds `batch->num_tokens` tokens' partials only when the
    // caller sized it so; the backend sizes it for its largest decode launch
    // and passes prefill-sized batches through the tensor-core kernel.
    const int64_t per_launch = 65535;
    for (int64_t t0 = 0; t0 < batch->num_tokens; t0 += per_launch) {
        const int64_t n = batch->num_tokens - t0 < per_launch ? batch->num_tokens - t0 : per_launch;
        a.token_offset = t0;
        cudaError_t err = cudaSuccess;
        DISPATCH_FLOAT_TYPES(type, T, {
            err = dispatch_decode<T>((T *)out, (const T *)q, (T *)k_cache, (T *)v_cache,
                                     (float *)workspace, a, n, batch->wide, pdl, stream);
        });
        if (err != cudaSuccess) return err;
    }
    return cudaSuccess;
}
