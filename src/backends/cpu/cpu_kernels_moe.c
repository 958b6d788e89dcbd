/* Mixture of experts on the CPU: routing, then each expert's SwiGLU MLP as
 * GEMMs over the tokens routed to it (cpu_linear_group, threaded on the
 * pool), then the weighted sum back into token order. Tokens are grouped by
 * expert so each active expert's weights stream once per step, and experts
 * no token chose are never read (a decode step reads k of E). */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/thread_pool.h"

void cpu_moe_route(int32_t *experts, float *weights, const float *logits, int64_t T, int64_t E, int64_t k) {
    for (int64_t t = 0; t < T; t++) {
        const float *row = logits + t * E;
        int32_t *ids = experts + t * k;
        float *w = weights + t * k;
        float max = row[0];
        for (int64_t e = 1; e < E; e++) max = row[e] > max ? row[e] : max;
        float sum = 0.0f;
        for (int64_t e = 0; e < E; e++) sum += expf(row[e] - max);
        /* Top k by selection: a strictly greater probability displaces, so
         * among equals the lower expert index wins (torch.topk's order). */
        for (int64_t j = 0; j < k; j++) {
            int32_t best = -1;
            for (int64_t e = 0; e < E; e++) {
                int taken = 0;
                for (int64_t i = 0; i < j; i++) taken |= ids[i] == e;
                if (!taken && (best < 0 || row[e] > row[best])) best = (int32_t)e;
            }
            ids[j] = best;
            w[j] = expf(row[best] - max) / sum;
        }
        /* Mixtral renormalises the k probabilities to sum to 1. */
        float top = 0.0f;
        for (int64_t j = 0; j < k; j++) top += w[j];
        for (int64_t j = 0; j < k; j++) w[j] /= top;
    }
}

size_t cpu_moe_scratch_bytes(int64_t T, int64_t H, int64_t I, int64_t E, int64_t k) {
    const int64_t A = T * k; /* (token, expert) assignments */
    return (size_t)(A * (2 + 2 * H + 2 * I) + 2 * A + E + 1) * sizeof(float) + 64;
}

typedef struct combine_job {
    float *y;
    const float *expert_out; /* [A, H] in grouped order */
    const int32_t *experts, *slot_of;
    const float *weights;
    int64_t H, k;
} combine_job;

/* y[t] = Σ_j w[t,j] · out[slot(t,j)], summed in ascending expert order as HF
 * adds the experts' outputs (index_add_ per expert). */
static void combine_chunk(void *ctx, int64_t begin, int64_t end) {
    const combine_job *c = ctx;
    for (int64_t t = begin; t < end; t++) {
        float *y = c->y + t * c->H;
        memset(y, 0, (size_t)c->H * sizeof *y);
        int32_t done = -1;
        for (int64_t n = 0; n < c->k; n++) {
            int64_t pick = -1;
            for (int64_t j = 0; j < c->k; j++) {
                int32_t e = c->experts[t * c->k + j];
                if (e > done && (pick < 0 || e < c->experts[t * c->k + pick])) pick = j;
            }
            done = c->experts[t * c->k + pick];
            const float w = c->weights[t * c->k + pick];
            const float *out = c->expert_out + (int64_t)c->slot_of[t * c->k + pick] * c->H;
            for (int64_t i = 0; i < c->H; i++) y[i] += w * out[i];
        }
    }
}

void cpu_moe(float *y, const float *x, const float *router_logits, const void *w_gate, const void *w_up,
             const void *w_down, llmrt_dtype w_type, int64_t T, int64_t H, int64_t I, int64_t E, int64_t k,
             void *scratch) {
    const int64_t A = T * k;
    float *weights = scratch;
    float *xs = weights + A;          /* [A, H] the tokens, grouped by expert */
    float *gate = xs + A * H;         /* [A, I] */
    float *up = gate + A * I;         /* [A, I] */
    float *out = up + A * I;          /* [A, H] */
    int32_t *experts = (int32_t *)(out + A * H);
    int32_t *slot_of = experts + A;   /* assignment t·k + j → its row in the grouped order */
    int32_t *token_of = slot_of + A;  /* grouped row → token */
    int32_t *offsets = token_of + A;  /* [E + 1] first grouped row of each expert */
    cpu_moe_route(experts, weights, router_logits, T, E, k);

    memset(offsets, 0, (size_t)(E + 1) * sizeof *offsets);
    for (int64_t a = 0; a < A; a++) offsets[experts[a] + 1]++;
    for (int64_t e = 0; e < E; e++) offsets[e + 1] += offsets[e];
    /* stable: within an expert, tokens keep their order */
    for (int64_t e = 0, row = 0; e < E; e++)
        for (int64_t a = 0; a < A; a++)
            if (experts[a] == e) {
                slot_of[a] = (int32_t)row;
                token_of[row++] = (int32_t)(a / k);
            }
    for (int64_t row = 0; row < A; row++) memcpy(xs + row * H, x + (int64_t)token_of[row] * H, (size_t)H * sizeof *x);

    const size_t es = llmrt_dtype_size(w_type);
    for (int64_t e = 0; e < E; e++) {
        const int64_t first = offsets[e], rows = offsets[e + 1] - first;
        if (rows == 0) continue;
        cpu_linear_part parts[2] = {
            {.y = gate + first * I, .w = (const uint8_t *)w_gate + (size_t)(e * I * H) * es, .w_type = w_type, .N = I},
            {.y = up + first * I, .w = (const uint8_t *)w_up + (size_t)(e * I * H) * es, .w_type = w_type, .N = I},
        };
        cpu_linear_group(parts, 2, xs + first * H, rows, H, gate + first * I);
        cpu_linear(out + first * H, gate + first * I, (const uint8_t *)w_down + (size_t)(e * H * I) * es, w_type,
                   NULL, rows, H, I);
    }
    combine_job job = {.y = y, .expert_out = out, .experts = experts, .slot_of = slot_of, .weights = weights,
                       .H = H, .k = k};
    llmrt_parallel_for(T, llmrt_parallel_chunk(T, 1), T * H * k >= (1 << 15), combine_chunk, &job);
}
