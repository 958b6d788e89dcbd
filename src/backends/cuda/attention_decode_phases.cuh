// The decode attention's phases (attention_decode.cu's kernel, in its
// order): the block's place and its K/V rows; q and the token's own row
// (fused RoPE); the scores and the online softmax; the early mode's merging
// part; the block's result and the merge of the parts. Each is forced
// inline into the kernel: the split is for reading, not a call boundary.
#ifndef LLMRT_CUDA_ATTENTION_DECODE_PHASES_CUH
#define LLMRT_CUDA_ATTENTION_DECODE_PHASES_CUH

#include "backends/cuda/attention_decode_args.cuh"
#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/kernel_probe.cuh"
#include "backends/cuda/rope_fused.cuh"

// ---- the block's place and its K/V rows -------------------------------------

// One instance: the shape (decode_shape) and the launch's compile-time
// choices. EARLY_CAP: the instances that can run the early mode, the WIDE
// one of one query head a block (its registers are free; the others would
// spill), with a column a thread in its merge.
template <typename T_, int D_, bool EXACT_, int NH_, bool PRE2_, bool WIDE_>
struct decode_cfg : decode_shape<T_, D_, NH_> {
    using T = T_;
    static constexpr int D = D_, NH = NH_;
    static constexpr bool EXACT = EXACT_, PRE2 = PRE2_, WIDE = WIDE_;
    static constexpr bool EARLY_CAP = PRE2 && WIDE && NH == 1 && D <= DECODE_THREADS;
};

// What a block works on: token t (a step row), kv head g and its query
// heads h0 .. h0 + nh, keys [start, start + nkeys) of the token's ctx; this
// thread is lane `sub` of row group kg. cur: the token's own row in this
// partition (fused RoPE; outside [0, nkeys): not here).
struct decode_block {
    int64_t t;
    int g, chunk, h0, nh;
    int ctx, part_len, start, live_parts, nkeys, seq;
    int sub, kg, d;
    int cur;
    bool own_here;
};

// Fills b for this block; false when its partition starts past the
// context (nothing to do: only live partitions are merged).
template <typename C>
__device__ __forceinline__ bool place_block(const decode_args &a, bool fused, decode_block &b) {
    const int64_t local = a.token_offset + blockIdx.z;
    b.t = step_token(a, local);
    b.g = blockIdx.y / a.head_chunks;
    b.chunk = blockIdx.y % a.head_chunks;
    b.h0 = b.g * a.group + b.chunk * C::NH;
    b.nh = min(C::NH, a.group - b.chunk * C::NH);
    b.ctx = a.positions[b.t] + 1;
    b.part_len = partition_length(b.ctx, a.num_partitions);
    b.start = blockIdx.x * b.part_len;
    if (b.start >= b.ctx) return false;
    b.live_parts = (b.ctx + b.part_len - 1) / b.part_len;
    b.nkeys = min(b.part_len, b.ctx - b.start);
    b.seq = a.token_seq[b.t];
    b.sub = threadIdx.x % C::TPK;
    b.kg = threadIdx.x / C::TPK;
    b.d = C::EXACT ? C::D : a.head_dim;
    b.cur = fused ? b.ctx - 1 - b.start : -1;
    b.own_here = b.cur >= 0 && b.cur < b.nkeys;
    return true;
}

// Rows kg + u·KPB of the partition from `base` on into (kd, vd), the own
// row from (kc, vc) (NULL before they exist: zeros), zeros past nkeys.
template <typename C>
__device__ __forceinline__ void load_kv_rows(uint4 (&kd)[C::UNROLL][C::CPT], uint4 (&vd)[C::UNROLL][C::CPT], int base,
                                             const uint4 *kc, const uint4 *vc, const typename C::T *k_cache,
                                             const typename C::T *v_cache, const decode_args &a,
                                             const decode_block &b) {
    using T = typename C::T;
#pragma unroll
    for (int u = 0; u < C::UNROLL; u++) {
        const int j = base + b.kg + u * C::KPB;
        const bool own = j == b.cur;
        const int64_t row = j < b.nkeys && !own ? cache_row(a, b.seq, b.start + j, b.g) * b.d : -1;
#pragma unroll
        for (int c = 0; c < C::CPT; c++) {
            const int ci = b.sub + c * C::TPK;
            const bool live = row >= 0 && ci < C::CHUNKS;
            kd[u][c] = live ? load16_masked<T, C::EXACT>(k_cache + row, ci * C::VEC, b.d)
                            : own && kc && ci < C::CHUNKS ? kc[c] : make_uint4(0, 0, 0, 0);
            vd[u][c] = live ? load16_masked<T, C::EXACT>(v_cache + row, ci * C::VEC, b.d)
                            : own && vc && ci < C::CHUNKS ? vc[c] : make_uint4(0, 0, 0, 0);
        }
    }
}

// ---- q and the token's own row (fused RoPE) ---------------------------------

// q chunk c of head h as the scores use it: fp32, times the scale.
template <typename C>
__device__ __forceinline__ void set_q(float (&qr)[C::NH][C::CPT][C::VEC], int h, int c, const uint4 &raw,
                                      float scale) {
    const typename C::T *e = reinterpret_cast<const typename C::T *>(&raw);
#pragma unroll
    for (int i = 0; i < C::VEC; i++) qr[h][c][i] = to_float<typename C::T>(e[i]) * scale;
}

// The partition holding the token's row writes it (kc, vc) into the cache.
template <typename C>
__device__ __forceinline__ void store_own_row(const uint4 (&kc)[C::CPT], const uint4 (&vc)[C::CPT],
                                              typename C::T *k_cache, typename C::T *v_cache, const decode_args &a,
                                              const decode_block &b) {
    if (!b.own_here || b.chunk != 0 || b.kg != 0 || a.slot_mapping[b.t] < 0) return;
    const int64_t dst = ((int64_t)a.slot_mapping[b.t] * a.kv_heads + b.g) * b.d;
#pragma unroll
    for (int c = 0; c < C::CPT; c++) {
        const int ci = b.sub + c * C::TPK;
        if (ci >= C::CHUNKS) continue;
        if (C::EXACT) {
            *reinterpret_cast<uint4 *>(k_cache + dst + ci * C::VEC) = kc[c];
            *reinterpret_cast<uint4 *>(v_cache + dst + ci * C::VEC) = vc[c];
        } else {
            const typename C::T *ke = reinterpret_cast<const typename C::T *>(&kc[c]),
                                *ve = reinterpret_cast<const typename C::T *>(&vc[c]);
            for (int i = 0; i < C::VEC && ci * C::VEC + i < b.d; i++) {
                k_cache[dst + ci * C::VEC + i] = ke[i];
                v_cache[dst + ci * C::VEC + i] = ve[i];
            }
        }
    }
}

// Small launches (PRE2): everything the block reads that the q/k/v GEMV
// wrote goes out at once (one round trip, partner chunks included where
// registers allow: q of 8 heads twice over would spill), then is rotated;
// then the cache write. q (pre-scaled) into qr; the own key (rotated) and
// value into kc, vc, except in the early mode (they come after the GEMV).
template <typename C>
__device__ __forceinline__ void load_q_own_row_latency(float (&qr)[C::NH][C::CPT][C::VEC], uint4 (&kc)[C::CPT],
                                                       uint4 (&vc)[C::CPT], const typename C::T *q,
                                                       typename C::T *k_cache, typename C::T *v_cache,
                                                       const float2 *cs, int rot, int64_t kv_row, bool fused,
                                                       bool early, const decode_args &a, const decode_block &b) {
    using T = typename C::T;
    constexpr bool EXACT = C::EXACT, Q_PARTNER = C::NH * C::CPT <= 4;
    const int d = b.d;
    rope_raw qraw[C::NH][C::CPT], kraw[C::CPT];
#pragma unroll
    for (int c = 0; c < C::CPT; c++) {
        const int ci = b.sub + c * C::TPK;
        kraw[c].in = kraw[c].partner = vc[c] = make_uint4(0, 0, 0, 0);
        if (b.own_here && !early && ci < C::CHUNKS) {
            kraw[c] = load16_rope_raw<T, EXACT, true>((const T *)a.rk + kv_row, ci * C::VEC, d, rot, a.rope_neox);
            vc[c] = load16_masked<T, EXACT>((const T *)a.rv + kv_row, ci * C::VEC, d);
        }
#pragma unroll
        for (int h = 0; h < C::NH; h++) {
            qraw[h][c].in = qraw[h][c].partner = make_uint4(0, 0, 0, 0);
            if (h < b.nh && ci < C::CHUNKS)
                qraw[h][c] = load16_rope_raw<T, EXACT, Q_PARTNER>(q + (b.t * a.heads + b.h0 + h) * d, ci * C::VEC, d,
                                                                  rot, a.rope_neox);
        }
    }
#pragma unroll
    for (int c = 0; c < C::CPT; c++) {
        const int ci = b.sub + c * C::TPK;
        kc[c] = b.own_here && !early && ci < C::CHUNKS
                    ? rope16<T, EXACT, true>(kraw[c], (const T *)a.rk + kv_row, ci * C::VEC, d, cs, rot, a.rope_neox)
                    : kraw[c].in;
#pragma unroll
        for (int h = 0; h < C::NH; h++)
            set_q<C>(qr, h, c,
                     fused && h < b.nh && ci < C::CHUNKS
                         ? rope16<T, EXACT, Q_PARTNER>(qraw[h][c], q + (b.t * a.heads + b.h0 + h) * d, ci * C::VEC,
                                                       d, cs, rot, a.rope_neox)
                         : qraw[h][c].in,
                     a.scale);
    }
    if (fused && !early) store_own_row<C>(kc, vc, k_cache, v_cache, a, b);
}

// Larger launches keep the leaner order (registers are occupancy there):
// the own row, the cache write, then q.
template <typename C>
__device__ __forceinline__ void load_q_own_row_lean(float (&qr)[C::NH][C::CPT][C::VEC], uint4 (&kc)[C::CPT],
                                                    uint4 (&vc)[C::CPT], const typename C::T *q,
                                                    typename C::T *k_cache, typename C::T *v_cache, const float2 *cs,
                                                    int rot, int64_t kv_row, bool fused, const decode_args &a,
                                                    const decode_block &b) {
    using T = typename C::T;
    constexpr bool EXACT = C::EXACT;
    const int d = b.d;
#pragma unroll
    for (int c = 0; c < C::CPT; c++) {
        const int ci = b.sub + c * C::TPK;
        kc[c] = vc[c] = make_uint4(0, 0, 0, 0);
        if (b.own_here && ci < C::CHUNKS) {
            const T *krow = (const T *)a.rk + kv_row;
            kc[c] = rope16<T, EXACT, false>(load16_rope_raw<T, EXACT, false>(krow, ci * C::VEC, d, rot, a.rope_neox),
                                            krow, ci * C::VEC, d, cs, rot, a.rope_neox);
            vc[c] = load16_masked<T, EXACT>((const T *)a.rv + kv_row, ci * C::VEC, d);
        }
    }
    store_own_row<C>(kc, vc, k_cache, v_cache, a, b);
#pragma unroll
    for (int h = 0; h < C::NH; h++)
#pragma unroll
        for (int c = 0; c < C::CPT; c++) {
            const int ci = b.sub + c * C::TPK;
            uint4 raw = make_uint4(0, 0, 0, 0);
            if (h < b.nh && ci < C::CHUNKS) {
                const T *qrow = q + (b.t * a.heads + b.h0 + h) * d;
                raw = fused ? rope16<T, EXACT, false>(load16_rope_raw<T, EXACT, false>(qrow, ci * C::VEC, d, rot,
                                                                                      a.rope_neox),
                                                      qrow, ci * C::VEC, d, cs, rot, a.rope_neox)
                            : load16_masked<T, EXACT>(qrow, ci * C::VEC, d);
            }
            set_q<C>(qr, h, c, raw, a.scale);
        }
}

// The own row into the batches loaded before kc, vc existed.
template <typename C>
__device__ __forceinline__ void place_own_row(uint4 (&kv)[C::UNROLL][C::CPT], uint4 (&vv)[C::UNROLL][C::CPT],
                                              uint4 (&kv2)[C::PRE2 ? C::UNROLL : 1][C::CPT],
                                              uint4 (&vv2)[C::PRE2 ? C::UNROLL : 1][C::CPT],
                                              const uint4 (&kc)[C::CPT], const uint4 (&vc)[C::CPT],
                                              const decode_block &b) {
#pragma unroll
    for (int u = 0; u < C::UNROLL; u++)
#pragma unroll
        for (int c = 0; c < C::CPT; c++) {
            if (b.kg + u * C::KPB == b.cur) {
                kv[u][c] = kc[c];
                vv[u][c] = vc[c];
            }
            if constexpr (C::PRE2)
                if (C::KPB * C::UNROLL + b.kg + u * C::KPB == b.cur) {
                    kv2[u][c] = kc[c];
                    vv2[u][c] = vc[c];
                }
        }
}

// ---- scores and the online softmax -----------------------------------------

// s[h][u]: q of head h against key row base + kg + u·KPB (the TPK lanes of
// the row group add their chunks); -inf past nkeys, and for the own row in
// the early mode (it is added after the q/k/v GEMV's end).
template <typename C>
__device__ __forceinline__ void score_rows(float (&s)[C::NH][C::UNROLL], const float (&qr)[C::NH][C::CPT][C::VEC],
                                           const uint4 (&kv)[C::UNROLL][C::CPT], int base, bool early,
                                           const decode_block &b) {
#pragma unroll
    for (int u = 0; u < C::UNROLL; u++) {
#pragma unroll
        for (int h = 0; h < C::NH; h++) {
            float dot = 0.0f;
#pragma unroll
            for (int c = 0; c < C::CPT; c++) {
                const typename C::T *e = reinterpret_cast<const typename C::T *>(&kv[u][c]);
#pragma unroll
                for (int i = 0; i < C::VEC; i++) dot = fmaf(qr[h][c][i], to_float<typename C::T>(e[i]), dot);
            }
#pragma unroll
            for (int o = C::TPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
            const int j = base + b.kg + u * C::KPB;
            s[h][u] = j < b.nkeys && !(early && j == b.cur) ? dot : -INFINITY;
        }
    }
}

// The row group's running max m, sum l and output acc, per head, after the
// batch's scores s and values vv.
template <typename C>
__device__ __forceinline__ void online_softmax(float (&acc)[C::NH][C::CPT][C::VEC], float (&m)[C::NH],
                                               float (&l)[C::NH], const float (&s)[C::NH][C::UNROLL],
                                               const uint4 (&vv)[C::UNROLL][C::CPT]) {
#pragma unroll
    for (int h = 0; h < C::NH; h++) {
        float mt = s[h][0];
#pragma unroll
        for (int u = 1; u < C::UNROLL; u++) mt = fmaxf(mt, s[h][u]);
        const float m_new = fmaxf(m[h], mt);
        if (m_new == -INFINITY) continue; // no live row yet in this group
        const float corr = __expf(m[h] - m_new);
        m[h] = m_new;
        l[h] *= corr;
#pragma unroll
        for (int c = 0; c < C::CPT; c++)
#pragma unroll
            for (int i = 0; i < C::VEC; i++) acc[h][c][i] *= corr;
#pragma unroll
        for (int u = 0; u < C::UNROLL; u++) {
            const float p = __expf(s[h][u] - m_new);
            l[h] += p;
#pragma unroll
            for (int c = 0; c < C::CPT; c++) {
                const typename C::T *e = reinterpret_cast<const typename C::T *>(&vv[u][c]);
#pragma unroll
                for (int i = 0; i < C::VEC; i++) acc[h][c][i] = fmaf(p, to_float<typename C::T>(e[i]), acc[h][c][i]);
            }
        }
    }
}

// ---- the early mode's merging part ------------------------------------------

// Head 0's row groups merged against the block's max M (sum L): thread c
// then finds column c's terms in red[0..KPB)[c].
template <typename C>
__device__ __forceinline__ void early_merge_row_groups(float (&red)[C::KPB][C::D], float (&m_s)[C::KPB][C::NH],
                                                       float (&l_s)[C::KPB][C::NH],
                                                       const float (&acc)[C::NH][C::CPT][C::VEC],
                                                       const float (&m)[C::NH], const float (&l)[C::NH], float &M,
                                                       float &L, const decode_block &b) {
    if (b.sub == 0) {
        m_s[b.kg][0] = m[0];
        l_s[b.kg][0] = l[0];
    }
    __syncthreads();
    M = -INFINITY;
    L = 0.0f;
#pragma unroll
    for (int r = 0; r < C::KPB; r++) M = fmaxf(M, m_s[r][0]);
#pragma unroll
    for (int r = 0; r < C::KPB; r++) L += m_s[r][0] == -INFINITY ? 0.0f : __expf(m_s[r][0] - M) * l_s[r][0];
    const float mine = m[0] == -INFINITY ? 0.0f : __expf(m[0] - M);
#pragma unroll
    for (int c = 0; c < C::CPT; c++) {
        const int ci = b.sub + c * C::TPK;
        if (ci < C::CHUNKS)
#pragma unroll
            for (int i = 0; i < C::VEC; i++) red[b.kg][ci * C::VEC + i] = acc[0][c][i] * mine;
    }
}

// The other live parts' partials, once they have all counted: their max
// o_max, sum o_sum and column col's output o_acc against o_max (lane p
// holds part p's (m, l); shuffles hand the weights round).
template <typename C>
__device__ __forceinline__ void early_other_parts(float &o_max, float &o_sum, float &o_acc, int col, int others,
                                                  const float *workspace, const decode_args &a,
                                                  const decode_block &b) {
    constexpr int MAXP = CUDA_DECODE_MAX_PARTITIONS, P = C::EARLY_CAP ? MAXP : 1;
    int32_t *counter = a.counters + (int64_t)blockIdx.z * gridDim.y + blockIdx.y;
    block_wait_at_least(counter, others);
    const int64_t head = (int64_t)blockIdx.z * a.heads + b.h0;
    const float *e = workspace + (int64_t)gridDim.z * a.heads * a.num_partitions * b.d + head * a.num_partitions * 2;
    const float *acc_p = workspace + head * a.num_partitions * b.d;
    const int lane = threadIdx.x & 31;
    const float m_l = lane < others ? __ldcg(e + 2 * lane) : -INFINITY;
    const float l_l = lane < others ? __ldcg(e + 2 * lane + 1) : 0.0f;
    float part[P];
#pragma unroll
    for (int p = 0; p < P; p++) part[p] = p < others && col < b.d ? __ldcg(acc_p + (int64_t)p * b.d + col) : 0.0f;
    o_max = warp_max(m_l);
    const float w = lane < others ? __expf(m_l - o_max) : 0.0f;
    o_sum = warp_sum(w * l_l);
#pragma unroll
    for (int p = 0; p < P; p++) o_acc = fmaf(__shfl_sync(0xffffffffu, w, p), part[p], o_acc);
}

// After the q/k/v GEMV's end: the own key (rotated with the table row in
// shared memory) and value, into the cache; its score against the merged
// (A, L) at max Mx; column col of the output. Every row group scores the
// row (the shuffles need whole warps).
template <typename C>
__device__ __forceinline__ void early_own_row(typename C::T *out, typename C::T *k_cache, typename C::T *v_cache,
                                              uint4 (&kc)[C::CPT], uint4 (&vc)[C::CPT],
                                              const float (&qr)[C::NH][C::CPT][C::VEC], const float2 *cs_s, int rot,
                                              int64_t kv_row, int col, float Mx, float A, float L,
                                              const decode_args &a, const decode_block &b) {
    using T = typename C::T;
    constexpr bool EXACT = C::EXACT;
    const int d = b.d;
    rope_raw kr[C::CPT];
#pragma unroll
    for (int c = 0; c < C::CPT; c++) {
        const int ci = b.sub + c * C::TPK;
        kr[c].in = kr[c].partner = vc[c] = make_uint4(0, 0, 0, 0);
        if (ci < C::CHUNKS) {
            kr[c] = load16_rope_raw<T, EXACT, true>((const T *)a.rk + kv_row, ci * C::VEC, d, rot, a.rope_neox);
            if (b.kg == 0) vc[c] = load16_masked<T, EXACT>((const T *)a.rv + kv_row, ci * C::VEC, d); // for the cache
        }
    }
    const float v_own = col < d ? to_float<T>(((const T *)a.rv)[kv_row + col]) : 0.0f;
#pragma unroll
    for (int c = 0; c < C::CPT; c++) {
        const int ci = b.sub + c * C::TPK;
        kc[c] = ci < C::CHUNKS
                    ? rope16<T, EXACT, true>(kr[c], (const T *)a.rk + kv_row, ci * C::VEC, d, cs_s, rot, a.rope_neox)
                    : kr[c].in;
    }
    store_own_row<C>(kc, vc, k_cache, v_cache, a, b);
    float dot = 0.0f;
#pragma unroll
    for (int c = 0; c < C::CPT; c++) {
        const T *e = reinterpret_cast<const T *>(&kc[c]);
#pragma unroll
        for (int i = 0; i < C::VEC; i++) dot = fmaf(qr[0][c][i], to_float<T>(e[i]), dot);
    }
#pragma unroll
    for (int o = C::TPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (col < d) {
        const float Mn = fmaxf(Mx, dot), old_w = Mx == -INFINITY ? 0.0f : __expf(Mx - Mn), p = __expf(dot - Mn);
        out[(b.t * a.heads + b.h0) * d + col] = from_float<T>((old_w * A + p * v_own) / (old_w * L + p));
    }
}

// Early mode, the part that holds the own row, which merges the others.
// Everything that does not need the token's own key and value is done
// before the GEMV's end, while it streams: this block's row groups merged
// (thread c then holds column c), the other parts' partials (published
// meanwhile) combined with them, and the RoPE table row copied to shared
// memory (the acquire of the q flag made it visible: the GEMV waited for
// every kernel before it; after the GEMV's end a read from global memory
// would go to L2: the acquires invalidate L1). After the end only the own
// row is left: one round trip for its key and value, the score, and each
// thread's column out, with no barrier.
template <typename C>
__device__ __forceinline__ void early_merge(typename C::T *out, typename C::T *k_cache, typename C::T *v_cache,
                                            const float *workspace, float (&red)[C::KPB][C::D],
                                            float (&m_s)[C::KPB][C::NH], float (&l_s)[C::KPB][C::NH],
                                            const float (&acc)[C::NH][C::CPT][C::VEC], const float (&m)[C::NH],
                                            const float (&l)[C::NH], const float (&qr)[C::NH][C::CPT][C::VEC],
                                            uint4 (&kc)[C::CPT], uint4 (&vc)[C::CPT], const float2 *cs, int rot,
                                            int64_t kv_row, const decode_args &a, const decode_block &b) {
    float M, L;
    early_merge_row_groups<C>(red, m_s, l_s, acc, m, l, M, L, b);
    const int col = threadIdx.x; // D ≤ DECODE_THREADS: a column a thread
    const int others = b.live_parts - 1;
    float o_max = -INFINITY, o_sum = 0.0f, o_acc = 0.0f;
    if (others > 0) early_other_parts<C>(o_max, o_sum, o_acc, col, others, workspace, a, b);
    __syncthreads(); // red complete; every other part has counted
    if (others > 0 && threadIdx.x == 0) *(a.counters + (int64_t)blockIdx.z * gridDim.y + blockIdx.y) = 0;
    float A = 0.0f; // column col of this block's rows, against M
    if (col < b.d)
#pragma unroll
        for (int r = 0; r < C::KPB; r++) A += red[r][col];
    const float Mx = fmaxf(M, o_max);
    const float self_w = M == -INFINITY ? 0.0f : __expf(M - Mx);
    const float other_w = o_max == -INFINITY ? 0.0f : __expf(o_max - Mx);
    A = self_w * A + other_w * o_acc;
    L = self_w * L + other_w * o_sum;
    // the table row where red was (it is read): more shared memory would
    // change the kernel's carveout and keep its blocks from the GEMV's SMs
    static_assert(sizeof(red) >= C::D / 2 * sizeof(float2), "the RoPE table row fits red");
    float2 *cs_s = reinterpret_cast<float2 *>(&red[0][0]);
    __syncthreads();
    for (int i = threadIdx.x; i < rot / 2 && i < C::D / 2; i += DECODE_THREADS) cs_s[i] = cs[i];
    __syncthreads();

    pdl_wait();
    PROBE_ATTN_MARK(PROBE_T2);
    early_own_row<C>(out, k_cache, v_cache, kc, vc, qr, cs_s, rot, kv_row, col, Mx, A, L, a, b);
    // the last (token, head chunk) to merge sets the q flag back
    if (threadIdx.x == 0 && atomicAdd(a.early + 1, 1) == (int)(gridDim.y * gridDim.z) - 1) {
        atomicExch(a.early, 0);
        atomicExch(a.early + 1, 0);
    }
}

// ---- the block's result and the merge of the parts --------------------------

// The row groups merged, each rescaled to the block's max: the output when
// this part is the token's only one (`single`), else its partials (the
// unnormalised output, max M and sum L) to the workspace.
template <typename C>
__device__ __forceinline__ void merge_row_groups(typename C::T *out, float *workspace, float (&red)[C::KPB][C::D],
                                                 float (&m_s)[C::KPB][C::NH], float (&l_s)[C::KPB][C::NH],
                                                 const float (&acc)[C::NH][C::CPT][C::VEC], const float (&m)[C::NH],
                                                 const float (&l)[C::NH], bool single, const decode_args &a,
                                                 const decode_block &b) {
    if (b.sub == 0)
#pragma unroll
        for (int h = 0; h < C::NH; h++) {
            m_s[b.kg][h] = m[h];
            l_s[b.kg][h] = l[h];
        }
    __syncthreads();
    const int part = blockIdx.x, d = b.d;
#pragma unroll
    for (int h = 0; h < C::NH; h++) {
        if (h >= b.nh) continue; // nh is uniform across the block: the barriers are safe
        float M = -INFINITY;
#pragma unroll
        for (int r = 0; r < C::KPB; r++) M = fmaxf(M, m_s[r][h]);
        float L = 0.0f;
#pragma unroll
        for (int r = 0; r < C::KPB; r++) L += m_s[r][h] == -INFINITY ? 0.0f : __expf(m_s[r][h] - M) * l_s[r][h];
        const float mine = m[h] == -INFINITY ? 0.0f : __expf(m[h] - M);
        __syncthreads();
#pragma unroll
        for (int c = 0; c < C::CPT; c++) {
            const int ci = b.sub + c * C::TPK;
            if (ci < C::CHUNKS)
#pragma unroll
                for (int i = 0; i < C::VEC; i++) red[b.kg][ci * C::VEC + i] = acc[h][c][i] * mine;
        }
        __syncthreads();
        const int64_t head = (int64_t)blockIdx.z * a.heads + b.h0 + h; // launch-relative token
        for (int c = threadIdx.x; c < d; c += DECODE_THREADS) {
            float sum = 0.0f;
#pragma unroll
            for (int r = 0; r < C::KPB; r++) sum += red[r][c];
            if (single) {
                out[(b.t * a.heads + b.h0 + h) * d + c] = from_float<typename C::T>(sum / L);
            } else {
                workspace[(head * a.num_partitions + part) * d + c] = sum;
            }
        }
        if (!single && threadIdx.x == 0) {
            float *ml = workspace + (int64_t)gridDim.z * a.heads * a.num_partitions * d;
            ml[(head * a.num_partitions + part) * 2 + 0] = M;
            ml[(head * a.num_partitions + part) * 2 + 1] = L;
        }
    }
}

// Counts this part of its (token, head chunk) once its partials are
// visible; true in the last one to finish, which resets the counter for the
// next launch and merges the parts.
__device__ __forceinline__ bool last_part_to_finish(int &last, const decode_args &a, const decode_block &b) {
    __threadfence(); // this block's partials are visible before it is counted
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t *counter = a.counters + (int64_t)blockIdx.z * gridDim.y + blockIdx.y;
        last = atomicAdd(counter, 1) == b.live_parts - 1;
        if (last) *counter = 0; // ready for the next launch
    }
    __syncthreads();
    return last;
}

// out = Σ e^{m_p−M} acc_p / Σ e^{m_p−M} l_p over the token's live parts.
// The partials were written by other blocks: read from L2 (ld.cg). In
// small launches (PRE2) every (m, l) and this thread's column of every
// partial are loaded at once, one round trip (the (m, l) a lane each,
// combined by shuffles); else in loops (fewer registers).
template <typename C>
__device__ __forceinline__ void merge_parts(typename C::T *out, const float *workspace, const decode_args &a,
                                            const decode_block &b) {
    __threadfence(); // the other partitions' partials
    const int d = b.d, live_parts = b.live_parts;
    const float *ml = workspace + (int64_t)gridDim.z * a.heads * a.num_partitions * d;
    for (int h = 0; h < b.nh; h++) {
        const int64_t head = (int64_t)blockIdx.z * a.heads + b.h0 + h;
        const float *e = ml + head * a.num_partitions * 2;
        const float *acc_p = workspace + head * a.num_partitions * d;
        typename C::T *o = out + (b.t * a.heads + b.h0 + h) * d;
        if constexpr (C::PRE2) {
            // lane p holds partition p's (m, l); shuffles hand them round
            constexpr int MAXP = CUDA_DECODE_MAX_PARTITIONS;
            const int lane = threadIdx.x & 31;
            const float m_l = lane < live_parts ? __ldcg(e + 2 * lane) : -INFINITY;
            const float l_l = lane < live_parts ? __ldcg(e + 2 * lane + 1) : 0.0f;
            // every lane shuffles (the column loop below may leave some out)
            const float M = warp_max(m_l);
            const float w = lane < live_parts ? __expf(m_l - M) : 0.0f;
            const float inv = 1.0f / warp_sum(w * l_l);
            float wp[MAXP];
#pragma unroll
            for (int p = 0; p < MAXP; p++) wp[p] = __shfl_sync(0xffffffffu, w, p);
            for (int c = threadIdx.x; c < d; c += DECODE_THREADS) {
                float part[MAXP];
#pragma unroll
                for (int p = 0; p < MAXP; p++) part[p] = p < live_parts ? __ldcg(acc_p + (int64_t)p * d + c) : 0.0f;
                float sum = 0.0f;
#pragma unroll
                for (int p = 0; p < MAXP; p++) sum += wp[p] * part[p];
                o[c] = from_float<typename C::T>(sum * inv);
            }
        } else {
            float M = -INFINITY;
            for (int p = 0; p < live_parts; p++) M = fmaxf(M, __ldcg(e + 2 * p));
            float L = 0.0f;
            for (int p = 0; p < live_parts; p++) L += __expf(__ldcg(e + 2 * p) - M) * __ldcg(e + 2 * p + 1);
            const float inv = 1.0f / L;
            for (int c = threadIdx.x; c < d; c += DECODE_THREADS) {
                float sum = 0.0f;
                for (int p = 0; p < live_parts; p++)
                    sum += __expf(__ldcg(e + 2 * p) - M) * __ldcg(acc_p + (int64_t)p * d + c);
                o[c] = from_float<typename C::T>(sum * inv);
            }
        }
    }
}

#endif
