/* The CUDA backend's settings: every switch it reads from the environment,
 * read once by cuda_settings_read when the backend is created and kept in
 * its state (cuda_state.settings). Nothing here is process-wide: a launch
 * gets what it needs (PDL, resident GEMV blocks) as arguments.
 *
 * | field          | environment                 | default | what it does                                      |
 * |----------------|-----------------------------|---------|---------------------------------------------------|
 * | graphs         | LLMRT_CUDA_GRAPHS           | 1       | decode steps replay a CUDA graph per shape        |
 * | gemv           | LLMRT_CUDA_GEMV             | 1       | own GEMV for ≤ 4 rows (else cuBLASLt)             |
 * | gemv_groups    | LLMRT_CUDA_GEMV_GROUPS      | 1       | q/k/v and gate/up (+ SiLU·mul) as one GEMV        |
 * | gemv_resident  | LLMRT_CUDA_GEMV_RESIDENT    | 1       | grouped GEMVs in as many blocks as fit at once    |
 * | fuse_norm      | LLMRT_CUDA_FUSE_NORM        | 1       | (add +) RMSNorm in the next GEMV's prologue       |
 * | fuse_rope      | LLMRT_CUDA_FUSE_ROPE        | 1       | RoPE and the KV write inside the decode attention |
 * | prefill_kernel | LLMRT_CUDA_PREFILL_KERNEL   | 1       | tensor-core prefill attention (else split-K)      |
 * | attn_wide      | LLMRT_CUDA_ATTN_WIDE        | 1       | register-rich decode attention for small launches |
 * | attn_early     | LLMRT_CUDA_ATTN_EARLY       | 1       | batch-1 attention runs beside the q/k/v GEMV      |
 * | pdl            | LLMRT_CUDA_PDL              | 1       | programmatic dependent launch (Hopper and later)  |
 * | gemm_autotune  | LLMRT_CUDA_GEMM_AUTOTUNE    | 0       | time cuBLASLt's candidates per new large shape    |
 * | probe_out      | LLMRT_CUDA_PROBE_OUT        | unset   | CSV of the block timeline (-DLLMRT_CUDA_PROBE=ON) |
 *
 * Switches take 0 or 1; unset or empty means the default. Anything else
 * fails the backend's creation with LLMRT_ERR_INVALID_ARGUMENT naming the
 * variable. The off values are ablations (tests, bench/cuda/ab_env.sh):
 * each turns one optimisation off, for comparison. */
#ifndef LLMRT_BACKENDS_CUDA_SETTINGS_H
#define LLMRT_BACKENDS_CUDA_SETTINGS_H

#include "core/status.h"

typedef struct cuda_settings {
    int graphs;
    int gemv;
    int gemv_groups;
    int gemv_resident;
    int fuse_norm;
    int fuse_rope;
    int prefill_kernel;
    int attn_wide;
    int attn_early;
    int pdl; /* asked for; the backend also needs compute capability ≥ 9 */
    int gemm_autotune;
    const char *probe_out; /* NULL: no probe records; else the environment's string */
} cuda_settings;

/* Fills *out from the environment (defaults above). */
llmrt_status cuda_settings_read(cuda_settings *out);

#endif
