/* A tensor- or pipeline-parallel engine across MPI ranks (one process per
 * rank).
 *
 * Rank r maps its own engine file (rank 0's at the path given, rank r's at
 * "<path>.rank<r>": llmrt_engine_rank_path). Rank 0 runs everything above
 * the backend (tokenizer, scheduler, sampler, HTTP); its backend is wrapped
 * so that each forward step and KV block copy is first broadcast to the
 * other ranks, which replay it on their own backend (llmrt_engine_follow).
 * Every rank therefore runs its plan on the same step, with its own shard
 * of the weights and of the paged KV cache (heads/tp per rank, or its
 * stage's layers), and the plan's ALL_REDUCE / ALL_GATHER or SEND / RECV
 * ops meet in the communicator.
 *
 * The block tables are rank 0's, so all ranks must have as many KV blocks:
 * rank 0 sizes its cache and broadcasts the count before the others start,
 * with the backend it runs on, which every rank must share (a collective
 * moves activations of one dtype, and each backend's in its own).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/log.h"
#include "engine/loaded_engine.h"
#include "engine/micro_batch.h"

void llmrt_engine_rank_path(const char *path, int32_t rank, char *out, size_t size) {
    if (rank == 0) snprintf(out, size, "%s", path);
    else snprintf(out, size, "%s.rank%d", path, (int)rank);
}

/* What rank 0 tells the others before they start. */
typedef struct start_message {
    int32_t kv_blocks;
} start_message;

enum message_kind { MESSAGE_FORWARD = 1, MESSAGE_COPY_KV_BLOCK = 2, MESSAGE_STOP = 3 };

/* What rank 0 broadcasts before each backend call. */
typedef struct step_message {
    int32_t kind;
    int32_t num_tokens, num_seqs, max_blocks_per_seq, num_logits;
    int32_t src_block, dst_block;
    int32_t micro_batches; /* > 1: the pieces llmrt_micro_batches_split makes of it */
    int32_t min_piece_tokens; /* and the fewest tokens it gave a piece */
} step_message;

/* Where a pipeline's micro-batches send their logits: the last stage's
 * first tensor-parallel rank; -1 when the engine is not pipelined. */
static int32_t logits_sender(const llmrt_plan *plan) {
    const int32_t ranks = llmrt_plan_tp_ranks(plan), group = llmrt_plan_tp_group(plan);
    return ranks > group ? ranks - group : -1;
}

typedef struct leader_state {
    const llmrt_backend_ops *inner;
    void *inner_state;
    llmrt_comm *comm;
    int32_t *packed; /* the step's int32 arrays, back to back */
    size_t packed_capacity;
    int32_t micro_batches;  /* most pieces a pipelined step is split into; 1: none */
    int32_t min_piece_tokens; /* LLMRT_MICRO_BATCH_MIN_TOKENS_CPU or _GPU */
    int32_t logits_sender;  /* logits_sender() */
    int32_t vocab;
    float *stage_logits;    /* what this stage's plan leaves in its logits (unused) */
    size_t stage_logits_rows;
    llmrt_micro_batch pieces[LLMRT_MAX_MICRO_BATCHES];
    int32_t *piece_arrays;  /* a piece's rebased seq_start and logits_indices */
    size_t piece_capacity;
    int64_t steps, split_steps; /* for the log at the end */
} leader_state;

static size_t packed_count(const step_message *m) {
    return (size_t)m->num_tokens * 2 + (size_t)m->num_seqs + 1 + (size_t)m->num_seqs * (size_t)m->max_blocks_per_seq +
           (size_t)m->num_logits;
}

/* Room for a step's arrays, grown (not per step: once per larger shape). */
static llmrt_status reserve(int32_t **buf, size_t *capacity, size_t count) {
    if (count <= *capacity) return LLMRT_OK;
    int32_t *grown = realloc(*buf, count * sizeof *grown);
    if (!grown) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory for a tensor-parallel step");
    *buf = grown;
    *capacity = count;
    return LLMRT_OK;
}

/* Grows *buf to hold `need` rows of vocab floats (not per step: once per larger shape). */
static llmrt_status reserve_rows(float **buf, size_t *rows, size_t need, int32_t vocab) {
    if (need <= *rows) return LLMRT_OK;
    float *grown = realloc(*buf, need * (size_t)vocab * sizeof *grown);
    if (!grown) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory for a rank's logits");
    *buf = grown;
    *rows = need;
    return LLMRT_OK;
}

/* Rank 0's side of a step split into micro-batches: it posts a receive
 * for each piece's logits from the last stage first, so that the last
 * stage's sends never wait for rank 0, which meanwhile runs stage 0 on
 * piece after piece and hands each on to stage 1 as its plan says. */
static llmrt_status leader_pipelined(leader_state *s, const llmrt_step *step, int32_t parts, float *logits) {
    const size_t V = (size_t)s->vocab;
    void *pending[LLMRT_MAX_MICRO_BATCHES] = {0};
    int32_t most = 0; /* the pieces run one after another and share the scratch */
    for (int32_t g = 0; g < parts; g++)
        if (s->pieces[g].num_logits > most) most = s->pieces[g].num_logits;
    llmrt_status status = reserve_rows(&s->stage_logits, &s->stage_logits_rows, (size_t)most, s->vocab);
    if (status == LLMRT_OK) status = reserve(&s->piece_arrays, &s->piece_capacity,
                                             (size_t)step->num_seqs + 1 + (size_t)step->num_logits);
    for (int32_t g = 0; g < parts && status == LLMRT_OK; g++)
        if (s->pieces[g].num_logits > 0)
            status = llmrt_comm_recv_start(s->comm, logits + (size_t)s->pieces[g].first_logit * V,
                                           (int64_t)((size_t)s->pieces[g].num_logits * V * sizeof(float)),
                                           s->logits_sender, &pending[g]);
    for (int32_t g = 0; g < parts && status == LLMRT_OK; g++) {
        llmrt_step piece;
        llmrt_micro_batch_step(step, &s->pieces[g], s->piece_arrays, &piece);
        status = s->inner->forward(s->inner_state, &piece, s->stage_logits);
    }
    for (int32_t g = 0; g < parts; g++) {
        if (status == LLMRT_OK && pending[g]) status = llmrt_comm_recv_finish(s->comm, pending[g]);
        else llmrt_comm_recv_cancel(s->comm, pending[g]);
    }
    return status;
}

static llmrt_status leader_forward(void *state, const llmrt_step *step, float *logits) {
    leader_state *s = state;
    step_message m = {MESSAGE_FORWARD, step->num_tokens, step->num_seqs, step->max_blocks_per_seq, step->num_logits,
                      0, 0, 1, s->min_piece_tokens};
    if (m.num_tokens < 0 || m.num_seqs < 0 || m.max_blocks_per_seq < 0 || m.num_logits < 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "step: negative sizes");
    const size_t count = packed_count(&m);
    LLMRT_TRY(reserve(&s->packed, &s->packed_capacity, count));
    int32_t *p = s->packed;
    memcpy(p, step->token_ids, (size_t)m.num_tokens * sizeof *p), p += m.num_tokens;
    memcpy(p, step->positions, (size_t)m.num_tokens * sizeof *p), p += m.num_tokens;
    memcpy(p, step->seq_start, (size_t)(m.num_seqs + 1) * sizeof *p), p += m.num_seqs + 1;
    memcpy(p, step->block_tables, (size_t)m.num_seqs * (size_t)m.max_blocks_per_seq * sizeof *p);
    p += (size_t)m.num_seqs * (size_t)m.max_blocks_per_seq;
    memcpy(p, step->logits_indices, (size_t)m.num_logits * sizeof *p);
    if (s->micro_batches > 1 && !step->token_type_ids)
        m.micro_batches = llmrt_micro_batches_split(step, s->micro_batches, s->min_piece_tokens, s->pieces);
    LLMRT_TRY(llmrt_comm_broadcast(s->comm, &m, sizeof m, 0));
    LLMRT_TRY(llmrt_comm_broadcast(s->comm, s->packed, (int64_t)(count * sizeof *p), 0));
    s->steps++;
    if (m.micro_batches > 1) {
        s->split_steps++;
        return leader_pipelined(s, step, m.micro_batches, logits);
    }
    llmrt_step local = *step;
    local.sampling = NULL; /* the wrapper does not sample on the device */
    return s->inner->forward(s->inner_state, &local, logits);
}

static llmrt_status leader_copy_kv_block(void *state, int32_t src, int32_t dst) {
    leader_state *s = state;
    step_message m = {MESSAGE_COPY_KV_BLOCK, 0, 0, 0, 0, src, dst, 1, 0};
    LLMRT_TRY(llmrt_comm_broadcast(s->comm, &m, sizeof m, 0));
    return s->inner->copy_kv_block(s->inner_state, src, dst);
}

static void leader_memory_report(void *state, llmrt_memory_report *out) {
    leader_state *s = state;
    s->inner->memory_report(s->inner_state, out);
}

static void leader_destroy(void *state) {
    leader_state *s = state;
    if (!s) return;
    if (!s->comm->broken) { /* release the followers */
        step_message m = {MESSAGE_STOP, 0, 0, 0, 0, 0, 0, 1, 0};
        if (llmrt_comm_broadcast(s->comm, &m, sizeof m, 0) != LLMRT_OK)
            LLMRT_WARN("tensor-parallel shutdown: %s", llmrt_last_error());
    }
    if (s->micro_batches > 1)
        LLMRT_INFO("pipeline: %lld of %lld steps ran in micro-batches", (long long)s->split_steps,
                   (long long)s->steps);
    s->inner->destroy(s->inner_state);
    free(s->packed);
    free(s->stage_logits);
    free(s->piece_arrays);
    free(s);
}

static const llmrt_backend_ops leader_ops = {
    .name = "tensor-parallel",
    .forward = leader_forward,
    .copy_kv_block = leader_copy_kv_block,
    .memory_report = leader_memory_report,
    .destroy = leader_destroy,
};

/* Which communicator CUDA ranks' collectives take. NCCL moves device
 * buffers GPU to GPU, but two ranks on one GPU cannot both be NCCL ranks;
 * MPI stages through the host and works either way. LLMRT_COMM (rank 0's)
 * = "nccl" or "mpi" decides; unset or "auto", NCCL when every rank has a
 * GPU of its own (host name and PCI address gathered from all ranks). The
 * step broadcasts stay on MPI. */
static llmrt_status choose_device_comms(llmrt_engine *e, const llmrt_backend_config *config,
                                        llmrt_backend_config *local) {
    char(*ids)[LLMRT_COMM_DEVICE_ID_BYTES] = calloc((size_t)e->comm->size, sizeof *ids);
    char mine[LLMRT_COMM_DEVICE_ID_BYTES] = {0}, host[64] = "?", pci[32] = "?";
    if (!ids) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    gethostname(host, sizeof host - 1);
#ifdef LLMRT_HAVE_CUDA
    if (!llmrt_cuda_device_pci_id(config->device, pci, (int)sizeof pci))
        snprintf(pci, sizeof pci, "device %d", (int)config->device);
#endif
    snprintf(mine, sizeof mine, "%s/%s", host, pci);
    llmrt_status s = llmrt_comm_all_gather(e->comm, mine, ids, LLMRT_COMM_DEVICE_ID_BYTES / 4, LLMRT_DTYPE_I32);
    for (int32_t r = 0; s == LLMRT_OK && r < e->comm->size; r++) ids[r][LLMRT_COMM_DEVICE_ID_BYTES - 1] = '\0';
    /* 0 mpi, 1 nccl, -1 refused: rank 0's decision, so every rank takes the
     * same road (and fails together rather than waiting on rank 0) */
    int32_t choice = 0;
    if (s == LLMRT_OK && e->comm->rank == 0) {
        const char *env = getenv("LLMRT_COMM");
        const int distinct = llmrt_comm_devices_distinct((const char(*)[LLMRT_COMM_DEVICE_ID_BYTES])ids, e->comm->size);
        choice = env && strcmp(env, "nccl") == 0 ? 1 : env && strcmp(env, "mpi") == 0 ? 0 : distinct;
        if (env && *env && strcmp(env, "nccl") != 0 && strcmp(env, "mpi") != 0 && strcmp(env, "auto") != 0)
            LLMRT_WARN("LLMRT_COMM=%s: expected nccl, mpi or auto; choosing as for auto", env);
        if (choice && !distinct) choice = -1;
    }
    free(ids);
    if (s == LLMRT_OK) s = llmrt_comm_broadcast(e->comm, &choice, sizeof choice, 0);
    if (s == LLMRT_OK && choice < 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "LLMRT_COMM=nccl, but ranks share a GPU: NCCL needs one GPU a "
                                                       "rank (LLMRT_COMM=mpi stages through the host)");
    if (s != LLMRT_OK || !choice) {
        if (s == LLMRT_OK) LLMRT_INFO("CUDA ranks: collectives through the host over MPI");
        return s;
    }
    s = llmrt_comm_create_nccl(e->comm, config->device, &e->device_comm);
    if (s == LLMRT_OK && e->tp_comm) s = llmrt_comm_create_nccl(e->tp_comm, config->device, &e->device_tp_comm);
    if (s != LLMRT_OK)
        return llmrt_error_context(s, "NCCL for %d CUDA ranks (LLMRT_COMM=mpi stages through the host instead)",
                                   (int)e->comm->size);
    local->comm = e->device_comm;
    local->tp_comm = e->device_tp_comm;
    LLMRT_INFO("CUDA ranks: collectives over NCCL, one GPU a rank");
    return LLMRT_OK;
}

llmrt_status llmrt_pp_micro_batches(int32_t stages, int32_t *out) {
    *out = 1;
    if (stages < 2) return LLMRT_OK;
    const char *env = getenv("LLMRT_PP_MICRO_BATCHES");
    if (!env || !*env) { /* two a stage: each step fills and drains the pipeline once */
        *out = 2 * stages < LLMRT_MAX_MICRO_BATCHES ? 2 * stages : LLMRT_MAX_MICRO_BATCHES;
        return LLMRT_OK;
    }
    char *end = NULL;
    const long n = strtol(env, &end, 10);
    if (*end || n < 1 || n > LLMRT_MAX_MICRO_BATCHES)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "LLMRT_PP_MICRO_BATCHES is \"%s\": give a count from 1 to %d",
                           env, LLMRT_MAX_MICRO_BATCHES);
    *out = (int32_t)n;
    return LLMRT_OK;
}

llmrt_status llmrt_parallel_engine_start(llmrt_engine *e, const llmrt_backend_ops *ops,
                                         const llmrt_backend_config *config) {
    const int32_t ranks = llmrt_plan_tp_ranks(e->image->plan);
    if (ranks != e->comm->size)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "this engine is built for %d rank%s but mpirun started %d",
                           (int)ranks, ranks == 1 ? "" : "s", (int)e->comm->size);
    llmrt_backend_config local = *config;
    local.comm = e->comm;
    const int32_t group = llmrt_plan_tp_group(e->image->plan);
    const int32_t micro_batches = e->pp_micro_batches > 1 ? e->pp_micro_batches : 1;
    if (group > 1 && group < ranks) { /* tp × pp: rank = stage · group + tp rank */
        LLMRT_TRY(llmrt_comm_split(e->comm, e->comm->rank / group, e->comm->rank % group, &e->tp_comm));
        local.tp_comm = e->tp_comm;
    }
    if (strcmp(ops->name, "cuda") == 0) LLMRT_TRY(choose_device_comms(e, config, &local));
    start_message start = {0};
    if (e->comm->rank != 0) { /* rank 0's KV block count first (the ranks agreed on the backend at load) */
        LLMRT_TRY(llmrt_comm_broadcast(e->comm, &start, sizeof start, 0));
        local.kv_num_blocks = start.kv_blocks;
    }
    void *inner_state = NULL;
    LLMRT_TRY(ops->create(e->image->plan, &local, &inner_state));
    e->backend.plan = e->image->plan;
    if (e->comm->rank != 0) {
        e->backend.ops = ops;
        e->backend.state = inner_state;
        return LLMRT_OK;
    }
    llmrt_memory_report report;
    ops->memory_report(inner_state, &report);
    start.kv_blocks = report.kv_num_blocks;
    leader_state *s = calloc(1, sizeof *s);
    llmrt_status status = s ? llmrt_comm_broadcast(e->comm, &start, sizeof start, 0)
                            : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    if (status != LLMRT_OK) {
        free(s);
        ops->destroy(inner_state);
        return status;
    }
    *s = (leader_state){.inner = ops, .inner_state = inner_state, .comm = e->comm, .micro_batches = micro_batches,
                        .logits_sender = logits_sender(e->image->plan), .vocab = e->image->plan->vocab_size,
                        .min_piece_tokens = strcmp(ops->name, "cpu") == 0 ? LLMRT_MICRO_BATCH_MIN_TOKENS_CPU
                                                                          : LLMRT_MICRO_BATCH_MIN_TOKENS_GPU};
    if (micro_batches > 1)
        LLMRT_INFO("pipeline: steps of %d+ tokens in up to %d micro-batches of %d+", 2 * s->min_piece_tokens,
                   (int)micro_batches, (int)s->min_piece_tokens);
    e->backend.ops = &leader_ops;
    e->backend.state = s;
    return LLMRT_OK;
}

int32_t llmrt_engine_rank(const llmrt_engine *e) { return e->comm ? e->comm->rank : 0; }

/* A follower's side of a step split into micro-batches: the same pieces
 * as rank 0's, in order; the last stage's first rank sends each piece's
 * logits to rank 0, which posted the receives before it began. */
static llmrt_status follow_pieces(llmrt_engine *e, const llmrt_step *step, int32_t parts, int32_t min_tokens,
                                  llmrt_micro_batch *pieces,
                                  int32_t **arrays, size_t *capacity, float *logits, int sends_logits) {
    if (llmrt_micro_batches_split(step, parts, min_tokens, pieces) != parts) /* it makes at most the maximum */
        return llmrt_error(LLMRT_ERR_INTERNAL, "pipeline rank %d: the step does not split into the %d micro-batches "
                           "rank 0 made", (int)e->comm->rank, (int)parts);
    LLMRT_TRY(reserve(arrays, capacity, (size_t)step->num_seqs + 1 + (size_t)step->num_logits));
    const size_t V = (size_t)e->image->plan->vocab_size;
    for (int32_t g = 0; g < parts; g++) {
        llmrt_step piece;
        llmrt_micro_batch_step(step, &pieces[g], *arrays, &piece);
        LLMRT_TRY(e->backend.ops->forward(e->backend.state, &piece, logits));
        if (sends_logits && piece.num_logits > 0)
            LLMRT_TRY(llmrt_comm_send(e->comm, logits, (int64_t)((size_t)piece.num_logits * V * sizeof(float)), 0));
    }
    return LLMRT_OK;
}

llmrt_status llmrt_engine_follow(llmrt_engine *e) {
    if (!e->comm || e->comm->rank == 0) return LLMRT_OK;
    const llmrt_plan *plan = e->image->plan;
    /* Rows as rank 0 asks for them (a few per decode step; a prompt's
     * scoring may ask for many), grown when a step needs more. */
    float *logits = NULL;
    size_t logits_rows = 0;
    int32_t *packed = NULL, *piece_arrays = NULL;
    size_t capacity = 0, piece_capacity = 0;
    llmrt_micro_batch pieces[LLMRT_MAX_MICRO_BATCHES];
    const int32_t sends_logits = logits_sender(plan) == e->comm->rank;
    llmrt_status status = LLMRT_OK;
    const int32_t step_timeout = e->comm->timeout_ms;
    for (;;) {
        step_message m;
        /* Between steps rank 0 may idle as long as it likes (a server with
         * no requests); if it dies, mpirun ends this rank. */
        e->comm->timeout_ms = INT_MAX;
        status = llmrt_comm_broadcast(e->comm, &m, sizeof m, 0);
        e->comm->timeout_ms = step_timeout;
        if (status != LLMRT_OK || m.kind == MESSAGE_STOP) break;
        if (m.kind == MESSAGE_COPY_KV_BLOCK) {
            status = e->backend.ops->copy_kv_block(e->backend.state, m.src_block, m.dst_block);
        } else if (m.kind == MESSAGE_FORWARD && m.num_tokens >= 0 && m.num_seqs >= 0 && m.max_blocks_per_seq >= 0 &&
                   m.num_logits >= 0 && m.num_tokens <= plan->max_num_tokens) {
            const size_t count = packed_count(&m);
            status = reserve(&packed, &capacity, count);
            if (status == LLMRT_OK)
                status = reserve_rows(&logits, &logits_rows, (size_t)m.num_logits, plan->vocab_size);
            if (status == LLMRT_OK)
                status = llmrt_comm_broadcast(e->comm, packed, (int64_t)(count * sizeof *packed), 0);
            if (status == LLMRT_OK) {
                const int32_t *p = packed;
                llmrt_step step = {.num_tokens = m.num_tokens, .num_seqs = m.num_seqs,
                                   .max_blocks_per_seq = m.max_blocks_per_seq, .num_logits = m.num_logits};
                step.token_ids = p, p += m.num_tokens;
                step.positions = p, p += m.num_tokens;
                step.seq_start = p, p += m.num_seqs + 1;
                step.block_tables = p, p += (size_t)m.num_seqs * (size_t)m.max_blocks_per_seq;
                step.logits_indices = p;
                if (m.micro_batches <= 1)
                    status = e->backend.ops->forward(e->backend.state, &step, logits);
                else
                    status = follow_pieces(e, &step, m.micro_batches, m.min_piece_tokens, pieces, &piece_arrays,
                                           &piece_capacity, logits, sends_logits);
            }
        } else {
            status = llmrt_error(LLMRT_ERR_INTERNAL, "tensor-parallel rank %d: malformed step message (kind %d)",
                                 (int)e->comm->rank, (int)m.kind);
        }
        if (status != LLMRT_OK) break;
    }
    /* A rank that failed on its own has left rank 0 behind: its collectives
     * cannot finish, so the communicator must not wait on them at exit. */
    if (status != LLMRT_OK) e->comm->broken = 1;
    free(packed);
    free(piece_arrays);
    free(logits);
    return status;
}
