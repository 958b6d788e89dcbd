/* Retargeting: a compiled plan runs on another backend than the one it was
 * built for, chosen when the engine loads.
 *
 * A plan is backend-neutral but for the dtype its activations take (the
 * CPU computes in f32 whatever the weights' storage, a GPU in the storage
 * dtype) and the arena that dtype sizes: the weights, the fused ops, the
 * KV cache layout and the limits are the same for every backend. So a
 * retarget rewrites the activation dtype of every value a fresh build for
 * the other backend would give it, checks that backend has a kernel for
 * every op, weight and plugin of the plan, and plans the arena again. The
 * limits (max_batch, max_num_tokens, max_seq_len) stay the build's. */
#ifndef LLMRT_COMPILER_RETARGET_H
#define LLMRT_COMPILER_RETARGET_H

#include "compiler/plan.h"
#include "core/status.h"

/* 1 for a backend llmrt compiles for: "cpu", "cuda". */
int llmrt_target_known(const char *target);

/* What `target` computes activations in for weight matrices stored as
 * weight_dtype: f32 on the CPU (its kernels widen each weight row to f32),
 * the storage dtype on CUDA (tensor cores; f32 storage computes in f32). */
llmrt_dtype llmrt_target_act_dtype(const char *target, llmrt_dtype weight_dtype);

/* LLMRT_OK when `plan`, built for any backend, can run on `target` once
 * retargeted; else an error naming the backend and the op, weight dtype or
 * plugin it lacks. The plan is left as it is. */
llmrt_status llmrt_plan_check_target(const llmrt_plan *plan, const char *target);

/* Rewrites `plan` to run on `target` (llmrt_plan_check_target first):
 * activations in llmrt_target_act_dtype, the arena planned again for the
 * plan's max_num_tokens, the result verified. A plan already in that
 * dtype is only checked. */
llmrt_status llmrt_plan_retarget(llmrt_plan *plan, const char *target);

#endif
