// RoPE applied as q and k are loaded (the decode attention's fused form):
// the raw 16-byte chunk and its NeoX partner loaded in one round trip, then
// rotated exactly as the RoPE kernel rotates (rope_pair) and rounded to T.
#ifndef LLMRT_CUDA_ROPE_FUSED_CUH
#define LLMRT_CUDA_ROPE_FUSED_CUH

#include "backends/cuda/cuda_device.cuh"

// 16 bytes of a raw q or k row from column col, and (PARTNER, NeoX pairing
// with whole chunks in each half) the 16 bytes of partner columns: loaded
// together, before anything is stored, so that they take one round trip.
// Without PARTNER (fewer registers) rope16 reads the partners one by one.
struct rope_raw {
    uint4 in, partner;
};

template <typename T, bool EXACT, bool PARTNER>
__device__ __forceinline__ rope_raw load16_rope_raw(const T *row, int col, int d, int rot, int neox) {
    constexpr int VEC = 16 / sizeof(T);
    rope_raw r;
    r.in = load16_masked<T, EXACT>(row, col, d);
    r.partner = make_uint4(0, 0, 0, 0);
    const int half = rot / 2;
    if (PARTNER && EXACT && neox && col < rot && half % VEC == 0)
        r.partner = *reinterpret_cast<const uint4 *>(row + (col < half ? col + half : col - half));
    return r;
}

// The chunk at col rotated (HF pairing, the table row cs) where col < rot
// and rounded to T as the RoPE kernel stores it; zeros at and past d.
template <typename T, bool EXACT, bool PARTNER>
__device__ __forceinline__ uint4 rope16(const rope_raw &r, const T *row, int col, int d, const float2 *cs, int rot,
                                        int neox) {
    constexpr int VEC = 16 / sizeof(T);
    if (col >= rot) return r.in;
    uint4 out = r.in;
    const T *x = reinterpret_cast<const T *>(&r.in), *px = reinterpret_cast<const T *>(&r.partner);
    T *y = reinterpret_cast<T *>(&out);
    const int half = rot / 2;
    const bool chunk_partner = PARTNER && EXACT && neox && half % VEC == 0;
#pragma unroll
    for (int i = 0; i < VEC; i++) {
        const int c = col + i;
        if (c >= rot || c >= d) continue;
        const bool first = neox ? c < half : (c & 1) == 0;
        const int partner = neox ? (first ? c + half : c - half) : c ^ 1;
        const int idx = neox ? (first ? c : c - half) : c >> 1;
        const float v = to_float<T>(x[i]);
        const float p = chunk_partner                             ? to_float<T>(px[i])
                        : partner >= col && partner < col + VEC ? to_float<T>(x[partner - col])
                                                                : to_float<T>(row[partner]);
        const float2 t = cs[idx];
        float o1, o2;
        if (first) {
            rope_pair(v, p, t.x, t.y, o1, o2);
            y[i] = from_float<T>(o1);
        } else {
            rope_pair(p, v, t.x, t.y, o1, o2);
            y[i] = from_float<T>(o2);
        }
    }
    return out;
}

#endif
