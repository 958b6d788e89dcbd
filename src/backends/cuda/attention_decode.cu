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
#include "backends/cuda/cuda_device.cuh"
#include "backends/cuda/kernel_probe.cuh"
#include "backends/cuda/rope_fused.cuh"

PROBE_BIND(cuda_probe_bind_attention)

template <typename T, int D, bool EXACT, int NH, bool PRE2, bool WIDE = false>
__global__ void __launch_bounds__(DECODE_THREADS, NH > 1 || WIDE ? 1 : PRE2 ? PRE2_MIN_BLOCKS : MIN_BLOCKS)
    attention_decode_kernel(T *out, const T *q, T *k_cache, T *v_cache, float *workspace, decode_args a) {
    using S = decode_shape<T, D, NH>;
    constexpr int VEC = S::VEC, TPK = S::TPK, CPT = S::CPT, KPB = S::KPB, CHUNKS = S::CHUNKS, U = S::UNROLL;
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
    // Early mode (small launches of one query head a block): q comes from
    // a flag the q/k/v GEMV raises before it ends; the token's own key and
    // value only with the GEMV's end, in the part that holds their row.
    // the WIDE instance only (its registers are free; the others would spill)
    constexpr bool EARLY_CAP = PRE2 && WIDE && NH == 1 && D <= DECODE_THREADS; // a column a thread in the merge
    const bool early = EARLY_CAP && a.early != nullptr;
    if (!fused) pdl_wait();

    const int64_t local = a.token_offset + blockIdx.z, t = step_token(a, local);
    const int g = blockIdx.y / a.head_chunks, chunk = blockIdx.y % a.head_chunks;
    const int h0 = g * a.group + chunk * NH;
    const int nh = min(NH, a.group - chunk * NH);
    const int ctx = a.positions[t] + 1;
    const int part_len = partition_length(ctx, a.num_partitions);
    const int start = blockIdx.x * part_len;
    if (start >= ctx) return; // nothing here; only live partitions are merged
    const int live_parts = (ctx + part_len - 1) / part_len;
    const int nkeys = min(part_len, ctx - start);
    const int seq = a.token_seq[t];
    const int sub = threadIdx.x % TPK, kg = threadIdx.x / TPK;
    const int d = EXACT ? D : a.head_dim;

    // cur: the index of the token's own row in this partition (fused RoPE;
    // ≥ nkeys or < 0: not here).
    const int cur = fused ? ctx - 1 - start : -1;
    const bool own_here = cur >= 0 && cur < nkeys;
    // Rows j0 + u·KPB of the partition from `base` on into (kd, vd), the own
    // row from (kc, vc) (zeros before they exist), zeros past nkeys. With
    // PRE2 (small launches, where latency is all) the second batch goes out
    // before the wait too, into registers of its own, so that a partition of
    // up to 2·KPB·U rows has all its K/V in flight before the q/k/v GEMV
    // ends (shared memory instead cost more: its carveout serialised the
    // kernels around it).
    const int j0 = kg;
    uint4 kv[U][CPT], vv[U][CPT], kv2[PRE2 ? U : 1][CPT], vv2[PRE2 ? U : 1][CPT];
    auto load_rows = [&](uint4 (&kd)[U][CPT], uint4 (&vd)[U][CPT], int base, const uint4 *kc, const uint4 *vc) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int j = base + j0 + u * KPB;
            const bool own = j == cur;
            const int64_t row = j < nkeys && !own ? cache_row(a, seq, start + j, g) * d : -1;
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                const int ci = sub + c * TPK;
                const bool live = row >= 0 && ci < CHUNKS;
                kd[u][c] = live ? load16_masked<T, EXACT>(k_cache + row, ci * VEC, d)
                                : own && kc && ci < CHUNKS ? kc[c] : make_uint4(0, 0, 0, 0);
                vd[u][c] = live ? load16_masked<T, EXACT>(v_cache + row, ci * VEC, d)
                                : own && vc && ci < CHUNKS ? vc[c] : make_uint4(0, 0, 0, 0);
            }
        }
    };
    load_rows(kv, vv, 0, nullptr, nullptr);
    if constexpr (PRE2) load_rows(kv2, vv2, KPB * U, nullptr, nullptr);
    if (early) block_wait_at_least(a.early, a.early_rows);
    else if (fused) pdl_wait();
    PROBE_ATTN_MARK(PROBE_T1);

    // Fused RoPE: the table row of this token; the token's own key (rotated)
    // and value for this thread's columns (kc, vc); q (pre-scaled) for each
    // head of the chunk (qr).
    const float2 *cs = fused ? a.rope_table + (int64_t)t * (a.rotary_dim / 2) : nullptr;
    const int rot = fused ? a.rotary_dim : 0;
    const int64_t kv_row = (t * a.kv_heads + g) * d;
    uint4 kc[CPT], vc[CPT];
    float qr[NH][CPT][VEC];
    // The partition holding the token's row writes it into the cache.
    auto store_own_row = [&]() {
        if (!own_here || chunk != 0 || kg != 0 || a.slot_mapping[t] < 0) return;
        const int64_t dst = ((int64_t)a.slot_mapping[t] * a.kv_heads + g) * d;
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int ci = sub + c * TPK;
            if (ci >= CHUNKS) continue;
            if (EXACT) {
                *reinterpret_cast<uint4 *>(k_cache + dst + ci * VEC) = kc[c];
                *reinterpret_cast<uint4 *>(v_cache + dst + ci * VEC) = vc[c];
            } else {
                const T *ke = reinterpret_cast<const T *>(&kc[c]), *ve = reinterpret_cast<const T *>(&vc[c]);
                for (int i = 0; i < VEC && ci * VEC + i < d; i++) {
                    k_cache[dst + ci * VEC + i] = ke[i];
                    v_cache[dst + ci * VEC + i] = ve[i];
                }
            }
        }
    };
    auto set_q = [&](int h, int c, const uint4 &raw) {
        const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
        for (int i = 0; i < VEC; i++) qr[h][c][i] = to_float<T>(e[i]) * a.scale;
    };
    if constexpr (PRE2) {
        // Everything the block reads that the q/k/v GEMV wrote goes out at
        // once (one round trip, partner chunks included where registers
        // allow: q of 8 heads twice over would spill), then is rotated; then
        // the cache write.
        constexpr bool Q_PARTNER = NH * CPT <= 4;
        rope_raw qraw[NH][CPT], kraw[CPT];
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int ci = sub + c * TPK;
            kraw[c].in = kraw[c].partner = vc[c] = make_uint4(0, 0, 0, 0);
            if (own_here && !early && ci < CHUNKS) {
                kraw[c] = load16_rope_raw<T, EXACT, true>((const T *)a.rk + kv_row, ci * VEC, d, rot, a.rope_neox);
                vc[c] = load16_masked<T, EXACT>((const T *)a.rv + kv_row, ci * VEC, d);
            }
#pragma unroll
            for (int h = 0; h < NH; h++) {
                qraw[h][c].in = qraw[h][c].partner = make_uint4(0, 0, 0, 0);
                if (h < nh && ci < CHUNKS)
                    qraw[h][c] = load16_rope_raw<T, EXACT, Q_PARTNER>(q + (t * a.heads + h0 + h) * d, ci * VEC, d,
                                                                      rot, a.rope_neox);
            }
        }
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int ci = sub + c * TPK;
            kc[c] = own_here && !early && ci < CHUNKS
                        ? rope16<T, EXACT, true>(kraw[c], (const T *)a.rk + kv_row, ci * VEC, d, cs, rot, a.rope_neox)
                        : kraw[c].in;
#pragma unroll
            for (int h = 0; h < NH; h++)
                set_q(h, c,
                      fused && h < nh && ci < CHUNKS
                          ? rope16<T, EXACT, Q_PARTNER>(qraw[h][c], q + (t * a.heads + h0 + h) * d, ci * VEC, d, cs,
                                                        rot, a.rope_neox)
                          : qraw[h][c].in);
        }
        if (fused && !early) store_own_row();
    } else {
        // Larger launches keep the leaner order (registers are occupancy
        // there): own row, cache write, then q.
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int ci = sub + c * TPK;
            kc[c] = vc[c] = make_uint4(0, 0, 0, 0);
            if (own_here && ci < CHUNKS) {
                const T *krow = (const T *)a.rk + kv_row;
                kc[c] = rope16<T, EXACT, false>(load16_rope_raw<T, EXACT, false>(krow, ci * VEC, d, rot, a.rope_neox),
                                                krow, ci * VEC, d, cs, rot, a.rope_neox);
                vc[c] = load16_masked<T, EXACT>((const T *)a.rv + kv_row, ci * VEC, d);
            }
        }
        store_own_row();
#pragma unroll
        for (int h = 0; h < NH; h++)
#pragma unroll
            for (int c = 0; c < CPT; c++) {
                const int ci = sub + c * TPK;
                uint4 raw = make_uint4(0, 0, 0, 0);
                if (h < nh && ci < CHUNKS) {
                    const T *qrow = q + (t * a.heads + h0 + h) * d;
                    raw = fused ? rope16<T, EXACT, false>(load16_rope_raw<T, EXACT, false>(qrow, ci * VEC, d, rot,
                                                                                          a.rope_neox),
                                                          qrow, ci * VEC, d, cs, rot, a.rope_neox)
                                : load16_masked<T, EXACT>(qrow, ci * VEC, d);
                }
                set_q(h, c, raw);
            }
    }

    PROBE_ATTN_MARK(PROBE_T3);
    // The own row in the preloaded batches (loaded before kc, vc existed).
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            if (j0 + u * KPB == cur) {
                kv[u][c] = kc[c];
                vv[u][c] = vc[c];
            }
            if constexpr (PRE2)
                if (KPB * U + j0 + u * KPB == cur) {
                    kv2[u][c] = kc[c];
                    vv2[u][c] = vc[c];
                }
        }

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

    // The bound is uniform across the block (the shuffles below need every
    // lane); rows past nkeys are masked.
    for (int base = 0; base < nkeys; base += KPB * U) {
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
            load_rows(kv, vv, base, kc, vc);
        }
        float s[NH][U];
#pragma unroll
        for (int u = 0; u < U; u++) {
#pragma unroll
            for (int h = 0; h < NH; h++) {
                float dot = 0.0f;
#pragma unroll
                for (int c = 0; c < CPT; c++) {
                    const T *e = reinterpret_cast<const T *>(&kv[u][c]);
#pragma unroll
                    for (int i = 0; i < VEC; i++) dot = fmaf(qr[h][c][i], to_float<T>(e[i]), dot);
                }
#pragma unroll
                for (int o = TPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
                const int j = base + j0 + u * KPB;
                s[h][u] = j < nkeys && !(early && j == cur) ? dot : -INFINITY; // early: the own row comes later
            }
        }
#pragma unroll
        for (int h = 0; h < NH; h++) {
            float mt = s[h][0];
#pragma unroll
            for (int u = 1; u < U; u++) mt = fmaxf(mt, s[h][u]);
            const float m_new = fmaxf(m[h], mt);
            if (m_new == -INFINITY) continue; // no live row yet in this group
            const float corr = __expf(m[h] - m_new);
            m[h] = m_new;
            l[h] *= corr;
#pragma unroll
            for (int c = 0; c < CPT; c++)
#pragma unroll
                for (int i = 0; i < VEC; i++) acc[h][c][i] *= corr;
#pragma unroll
            for (int u = 0; u < U; u++) {
                const float p = __expf(s[h][u] - m_new);
                l[h] += p;
#pragma unroll
                for (int c = 0; c < CPT; c++) {
                    const T *e = reinterpret_cast<const T *>(&vv[u][c]);
#pragma unroll
                    for (int i = 0; i < VEC; i++) acc[h][c][i] = fmaf(p, to_float<T>(e[i]), acc[h][c][i]);
                }
            }
        }
    }

    PROBE_ATTN_MARK(PROBE_T4);
    // Early mode, the part that holds the own row, which merges the others.
    // Everything that does not need the token's own key and value is done
    // before the GEMV's end, while it streams: this block's row groups
    // merged (thread c then holds column c), the other parts' partials
    // (published meanwhile) combined with them, and the RoPE table row
    // copied to shared memory (the acquire of the q flag made it visible:
    // the GEMV waited for every kernel before it; after the GEMV's end a
    // read from global memory would go to L2: the acquires invalidate L1).
    // After the end only the own row is left: one round trip for its key
    // and value, the score, and each thread's column out, with no barrier.
    if (early && own_here) {
        constexpr int MAXP = CUDA_DECODE_MAX_PARTITIONS;
        if (sub == 0) {
            m_s[kg][0] = m[0];
            l_s[kg][0] = l[0];
        }
        __syncthreads();
        float M = -INFINITY, L = 0.0f;
#pragma unroll
        for (int r = 0; r < KPB; r++) M = fmaxf(M, m_s[r][0]);
#pragma unroll
        for (int r = 0; r < KPB; r++) L += m_s[r][0] == -INFINITY ? 0.0f : __expf(m_s[r][0] - M) * l_s[r][0];
        const float mine = m[0] == -INFINITY ? 0.0f : __expf(m[0] - M);
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int ci = sub + c * TPK;
            if (ci < CHUNKS)
#pragma unroll
                for (int i = 0; i < VEC; i++) red[kg][ci * VEC + i] = acc[0][c][i] * mine;
        }
        const int col = threadIdx.x; // D ≤ DECODE_THREADS: a column a thread
        const int others = live_parts - 1;
        float o_max = -INFINITY, o_sum = 0.0f, o_acc = 0.0f;
        if (others > 0) {
            int32_t *counter = a.counters + (int64_t)blockIdx.z * gridDim.y + blockIdx.y;
            block_wait_at_least(counter, others);
            const int64_t head = (int64_t)blockIdx.z * a.heads + h0;
            const float *e = workspace + (int64_t)gridDim.z * a.heads * a.num_partitions * d +
                             head * a.num_partitions * 2;
            const float *acc_p = workspace + head * a.num_partitions * d;
            const int lane = threadIdx.x & 31;
            const float m_l = lane < others ? __ldcg(e + 2 * lane) : -INFINITY;
            const float l_l = lane < others ? __ldcg(e + 2 * lane + 1) : 0.0f;
            float part[EARLY_CAP ? MAXP : 1];
#pragma unroll
            for (int p = 0; p < (EARLY_CAP ? MAXP : 1); p++)
                part[p] = p < others && col < d ? __ldcg(acc_p + (int64_t)p * d + col) : 0.0f;
            o_max = warp_max(m_l);
            const float w = lane < others ? __expf(m_l - o_max) : 0.0f;
            o_sum = warp_sum(w * l_l);
#pragma unroll
            for (int p = 0; p < (EARLY_CAP ? MAXP : 1); p++) o_acc = fmaf(__shfl_sync(0xffffffffu, w, p), part[p], o_acc);
        }
        __syncthreads(); // red complete; every other part has counted
        if (others > 0 && threadIdx.x == 0) *(a.counters + (int64_t)blockIdx.z * gridDim.y + blockIdx.y) = 0;
        float A = 0.0f; // column col of this block's rows, against M
        if (col < d)
#pragma unroll
            for (int r = 0; r < KPB; r++) A += red[r][col];
        const float Mx = fmaxf(M, o_max);
        const float self_w = M == -INFINITY ? 0.0f : __expf(M - Mx);
        const float other_w = o_max == -INFINITY ? 0.0f : __expf(o_max - Mx);
        A = self_w * A + other_w * o_acc;
        L = self_w * L + other_w * o_sum;
        // the table row where red was (it is read): more shared memory would
        // change the kernel's carveout and keep its blocks from the GEMV's SMs
        static_assert(sizeof(red) >= D / 2 * sizeof(float2), "the RoPE table row fits red");
        float2 *cs_s = reinterpret_cast<float2 *>(&red[0][0]);
        __syncthreads();
        for (int i = threadIdx.x; i < rot / 2 && i < D / 2; i += DECODE_THREADS) cs_s[i] = cs[i];
        __syncthreads();

        pdl_wait();
        PROBE_ATTN_MARK(PROBE_T2);
        rope_raw kr[CPT];
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int ci = sub + c * TPK;
            kr[c].in = kr[c].partner = vc[c] = make_uint4(0, 0, 0, 0);
            if (ci < CHUNKS) {
                kr[c] = load16_rope_raw<T, EXACT, true>((const T *)a.rk + kv_row, ci * VEC, d, rot, a.rope_neox);
                if (kg == 0) vc[c] = load16_masked<T, EXACT>((const T *)a.rv + kv_row, ci * VEC, d); // for the cache
            }
        }
        const float v_own = col < d ? to_float<T>(((const T *)a.rv)[kv_row + col]) : 0.0f;
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int ci = sub + c * TPK;
            kc[c] = ci < CHUNKS ? rope16<T, EXACT, true>(kr[c], (const T *)a.rk + kv_row, ci * VEC, d, cs_s, rot,
                                                         a.rope_neox)
                                : kr[c].in;
        }
        store_own_row();
        // every row group scores the row (the shuffles need whole warps)
        float dot = 0.0f;
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const T *e = reinterpret_cast<const T *>(&kc[c]);
#pragma unroll
            for (int i = 0; i < VEC; i++) dot = fmaf(qr[0][c][i], to_float<T>(e[i]), dot);
        }
#pragma unroll
        for (int o = TPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        if (col < d) {
            const float Mn = fmaxf(Mx, dot), old_w = Mx == -INFINITY ? 0.0f : __expf(Mx - Mn), p = __expf(dot - Mn);
            out[(t * a.heads + h0) * d + col] = from_float<T>((old_w * A + p * v_own) / (old_w * L + p));
        }
        // the last (token, head chunk) to merge sets the q flag back
        if (threadIdx.x == 0 && atomicAdd(a.early + 1, 1) == (int)(gridDim.y * gridDim.z) - 1) {
            atomicExch(a.early, 0);
            atomicExch(a.early + 1, 0);
        }
        PROBE_ATTN_RECORD(k_cache);
        return;
    }

    // Merge the row groups: each rescales to the block's max.
    if (sub == 0)
#pragma unroll
        for (int h = 0; h < NH; h++) {
            m_s[kg][h] = m[h];
            l_s[kg][h] = l[h];
        }
    __syncthreads();
    const bool single = live_parts == 1; // write the output here; the merge skips such tokens
    const int part = blockIdx.x;
#pragma unroll
    for (int h = 0; h < NH; h++) {
        if (h >= nh) continue; // nh is uniform across the block: the barriers are safe
        float M = -INFINITY;
#pragma unroll
        for (int r = 0; r < KPB; r++) M = fmaxf(M, m_s[r][h]);
        float L = 0.0f;
#pragma unroll
        for (int r = 0; r < KPB; r++) L += m_s[r][h] == -INFINITY ? 0.0f : __expf(m_s[r][h] - M) * l_s[r][h];
        const float mine = m[h] == -INFINITY ? 0.0f : __expf(m[h] - M);
        __syncthreads();
#pragma unroll
        for (int c = 0; c < CPT; c++) {
            const int ci = sub + c * TPK;
            if (ci < CHUNKS)
#pragma unroll
                for (int i = 0; i < VEC; i++) red[kg][ci * VEC + i] = acc[h][c][i] * mine;
        }
        __syncthreads();
        const int64_t head = (int64_t)blockIdx.z * a.heads + h0 + h; // launch-relative token
        for (int c = threadIdx.x; c < d; c += DECODE_THREADS) {
            float sum = 0.0f;
#pragma unroll
            for (int r = 0; r < KPB; r++) sum += red[r][c];
            if (single) {
                out[(t * a.heads + h0 + h) * d + c] = from_float<T>(sum / L);
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

    // The last partition of this (token, head chunk) to finish merges all:
    // out = Σ e^{m_p−M} acc_p / Σ e^{m_p−M} l_p.
    __shared__ int last;
    PROBE_ATTN_MARK(PROBE_T2);
    __threadfence(); // this block's partials are visible before it is counted
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t *counter = a.counters + (int64_t)blockIdx.z * gridDim.y + blockIdx.y;
        last = atomicAdd(counter, 1) == live_parts - 1;
        if (last) *counter = 0; // ready for the next launch
    }
    __syncthreads();
    if (!last) {
        PROBE_ATTN_RECORD(k_cache);
        return;
    }
    __threadfence(); // the other partitions' partials
    // The partials were written by other blocks: read from L2 (ld.cg). In
    // small launches (PRE2) every (m, l) and this thread's column of every
    // partial are loaded at once, one round trip (the (m, l) a lane each,
    // combined by shuffles); else in loops (fewer registers).
    const float *ml = workspace + (int64_t)gridDim.z * a.heads * a.num_partitions * d;
    for (int h = 0; h < nh; h++) {
        const int64_t head = (int64_t)blockIdx.z * a.heads + h0 + h;
        const float *e = ml + head * a.num_partitions * 2;
        const float *acc_p = workspace + head * a.num_partitions * d;
        T *o = out + (t * a.heads + h0 + h) * d;
        if constexpr (PRE2) {
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
                o[c] = from_float<T>(sum * inv);
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
                o[c] = from_float<T>(sum * inv);
            }
        }
    }
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
