/* The compiler's tensor- and pipeline-parallel split, checked on plans
 * alone (no ranks): shards are the TP=1 weights' rows or columns, heads and
 * KV geometry are divided, the collectives sit where Megatron puts them,
 * and pipeline stages own disjoint layer ranges. The numbers under mpirun
 * are tests/parallel's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compiler.h"
#include "llmrt/llmrt.h"
#include "models/models.h"
#include "test_util.h"

static llmrt_model_config tiny_llama(void) {
    llmrt_model_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    c.vocab_size = 62;
    c.hidden_size = 32;
    c.num_layers = 3;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 8;
    c.intermediate_size = 40;
    c.max_position_embeddings = 128;
    c.norm_eps = 1e-5f;
    c.activation = LLMRT_ACT_SILU;
    c.rope.type = LLMRT_ROPE_DEFAULT;
    c.rope.theta = 10000.0f;
    c.rope.rotary_dim = 8;
    c.bos_token_id = c.pad_token_id = -1;
    return c;
}

static llmrt_plan *compile(const llmrt_model_config *c, int32_t tp_rank, int32_t tp_size, int32_t stage,
                           int32_t stages) {
    llmrt_compile_options o = {.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                               .max_num_tokens = 16, .max_batch = 2, .max_seq_len = 64, .random_weights = 1,
                               .seed = 5, .tp_rank = tp_rank, .tp_size = tp_size, .pp_stage = stage,
                               .pp_stages = stages};
    llmrt_plan *plan = NULL;
    CHECK_OK(llmrt_compile(c, NULL, &o, &plan));
    return plan;
}

static int count_op(const llmrt_plan *p, llmrt_op op) {
    int n = 0;
    for (int32_t i = 0; i < p->graph->num_nodes; i++) n += p->graph->nodes[i].op == op;
    return n;
}

static const llmrt_plan_weight *find(const llmrt_plan *p, const char *prefix) {
    for (int32_t i = 0; i < p->num_weights; i++)
        if (strncmp(p->weights[i].name, prefix, strlen(prefix)) == 0) return &p->weights[i];
    return NULL;
}

/* q_proj [out, in] splits by rows, o_proj by columns: the shards put
 * together are the TP=1 weights, byte for byte. */
static void test_shards_are_slices(void) {
    llmrt_model_config c = tiny_llama();
    llmrt_plan *whole = compile(&c, 0, 1, 0, 1), *rank[2] = {compile(&c, 0, 2, 0, 1), compile(&c, 1, 2, 0, 1)};
    if (!whole || !rank[0] || !rank[1]) goto done;
    const llmrt_plan_weight *q = find(whole, "model.layers.1.self_attn.q_proj.weight");
    const llmrt_plan_weight *o = find(whole, "model.layers.1.self_attn.o_proj.weight");
    CHECK(q && o);
    for (int r = 0; r < 2 && q && o; r++) {
        const llmrt_plan_weight *qs = find(rank[r], "model.layers.1.self_attn.q_proj.weight#tp");
        const llmrt_plan_weight *os = find(rank[r], "model.layers.1.self_attn.o_proj.weight#tp");
        CHECK(qs && os);
        if (!qs || !os) continue;
        CHECK(qs->dims[0] == q->dims[0] / 2 && qs->dims[1] == q->dims[1]);
        CHECK(os->dims[0] == o->dims[0] && os->dims[1] == o->dims[1] / 2);
        CHECK(memcmp(qs->data, (const float *)q->data + r * qs->dims[0] * qs->dims[1], qs->nbytes) == 0);
        for (int64_t row = 0; row < os->dims[0]; row++)
            CHECK(memcmp((const float *)os->data + row * os->dims[1],
                         (const float *)o->data + row * o->dims[1] + r * os->dims[1],
                         (size_t)os->dims[1] * sizeof(float)) == 0);
    }
    /* the embedding by vocab rows: rank 1 holds rows 31..61 */
    const llmrt_plan_weight *e = find(whole, "model.embed_tokens.weight");
    const llmrt_plan_weight *es = find(rank[1], "model.embed_tokens.weight#tp1/2:0");
    CHECK(e && es);
    if (e && es) {
        CHECK(es->dims[0] == c.vocab_size / 2 && es->dims[1] == c.hidden_size);
        CHECK(memcmp(es->data, (const float *)e->data + es->dims[0] * es->dims[1], es->nbytes) == 0);
    }
    /* per rank: half the heads and KV heads, two all-reduces a layer and
     * one for the embedding, the logits gathered once */
    CHECK(rank[1]->kv_heads == 1 && whole->kv_heads == 2);
    CHECK(count_op(rank[1], LLMRT_OP_ALL_REDUCE) == 2 * c.num_layers + 1);
    CHECK(count_op(rank[1], LLMRT_OP_ALL_GATHER) == 1);
    CHECK(count_op(whole, LLMRT_OP_ALL_REDUCE) == 0);
    CHECK(rank[1]->vocab_size == c.vocab_size);
    CHECK_OK(llmrt_plan_verify(rank[1]));
done:
    llmrt_plan_free(whole);
    llmrt_plan_free(rank[0]);
    llmrt_plan_free(rank[1]);
}

/* Rows [first, first + count) of whole's [rows, cols] weight are the
 * shard's rows from `at`. */
static int same_rows(const llmrt_plan_weight *shard, int64_t at, const llmrt_plan_weight *whole, int64_t first,
                     int64_t count) {
    const int64_t cols = whole->dims[1];
    return shard->dims[1] == cols && memcmp((const float *)shard->data + at * cols,
                                            (const float *)whole->data + first * cols,
                                            (size_t)(count * cols) * sizeof(float)) == 0;
}

/* A fused projection's shard is its rank's q rows, then its k and v rows
 * ([q | k | v] blocks: Phi-3's qkv_proj with GQA; [gate | up]: gate_up_proj),
 * and with fewer KV heads than ranks each rank copies the one it reads. */
static void test_fused_shards_are_pieces(void) {
    llmrt_model_config c = tiny_llama();
    snprintf(c.architecture, sizeof c.architecture, "Phi3ForCausalLM");
    const int64_t D = c.head_dim, H = c.num_heads, KV = c.num_kv_heads, I = c.intermediate_size;
    for (int32_t tp = 2; tp <= 4; tp += 2) {
        llmrt_plan *whole = compile(&c, 0, 1, 0, 1);
        const llmrt_plan_weight *qkv = whole ? find(whole, "model.layers.1.self_attn.qkv_proj.weight") : NULL;
        const llmrt_plan_weight *gate_up = whole ? find(whole, "model.layers.1.mlp.gate_up_proj.weight") : NULL;
        CHECK(qkv && gate_up && qkv->dims[0] == (H + 2 * KV) * D);
        for (int32_t r = 0; r < tp && qkv && gate_up; r++) {
            llmrt_plan *part = compile(&c, r, tp, 0, 1);
            const llmrt_plan_weight *s = part ? find(part, "model.layers.1.self_attn.qkv_proj.weight#tp") : NULL;
            const llmrt_plan_weight *m = part ? find(part, "model.layers.1.mlp.gate_up_proj.weight#tp") : NULL;
            CHECK(s && m);
            if (s && m) {
                const int64_t heads = H / tp, kv = KV >= tp ? KV / tp : 1, kv_first = r * KV / tp;
                CHECK(s->dims[0] == (heads + 2 * kv) * D);
                CHECK(same_rows(s, 0, qkv, r * heads * D, heads * D));
                CHECK(same_rows(s, heads * D, qkv, (H + kv_first) * D, kv * D));
                CHECK(same_rows(s, (heads + kv) * D, qkv, (H + KV + kv_first) * D, kv * D));
                CHECK(part->kv_heads == kv);
                const int64_t w = I / tp;
                CHECK(m->dims[0] == 2 * w && same_rows(m, 0, gate_up, r * w, w) &&
                      same_rows(m, w, gate_up, I + r * w, w));
                CHECK_OK(llmrt_plan_verify(part));
            }
            llmrt_plan_free(part);
        }
        llmrt_plan_free(whole);
    }
}

/* Heads that do not divide, and families that cannot split, are errors
 * naming the reason. */
static void test_refusals(void) {
    llmrt_model_config c = tiny_llama();
    llmrt_compile_options o = {.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                               .max_num_tokens = 16, .max_batch = 2, .max_seq_len = 64, .random_weights = 1,
                               .tp_rank = 0, .tp_size = 4};
    llmrt_plan *plan = NULL;
    o.tp_size = 3; /* 4 query heads over 3 ranks */
    CHECK(llmrt_compile(&c, NULL, &o, &plan) != LLMRT_OK);
    CHECK(strstr(llmrt_last_error(), "LlamaForCausalLM network: tensor parallelism over 3 ranks: 4 query heads and "
                                     "2 key/value heads do not split") != NULL);
    o.tp_size = 4;
    c.intermediate_size = 42; /* the heads split, the MLP does not */
    CHECK(llmrt_compile(&c, NULL, &o, &plan) != LLMRT_OK);
    CHECK(strstr(llmrt_last_error(), "intermediate size 42 does not split") != NULL);
    c.intermediate_size = 40;
    o.tp_size = 1;
    o.pp_stages = 4; /* more stages than layers */
    CHECK(llmrt_compile(&c, NULL, &o, &plan) != LLMRT_OK);
    snprintf(c.architecture, sizeof c.architecture, "GPT2LMHeadModel");
    c.rope.type = LLMRT_ROPE_NONE;
    c.num_kv_heads = 4;
    o.pp_stages = 2;
    CHECK(llmrt_compile(&c, NULL, &o, &plan) != LLMRT_OK);
    CHECK(strstr(llmrt_last_error(), "pipeline stages") != NULL);
    CHECK(plan == NULL);
}

/* Three layers over two stages: 0 on stage 0 (with the embedding), 1..2 on
 * stage 1 (with the head); each stage's KV cache counts only its layers. */
static void test_pipeline_stages(void) {
    llmrt_model_config c = tiny_llama();
    llmrt_plan *first = compile(&c, 0, 1, 0, 2), *last = compile(&c, 0, 1, 1, 2);
    if (first && last) {
        CHECK(first->num_kv_layers == 1 && last->num_kv_layers == 2);
        CHECK(find(first, "model.embed_tokens.weight") && !find(first, "lm_head.weight"));
        CHECK(!find(last, "model.embed_tokens.weight") && find(last, "lm_head.weight"));
        CHECK(find(first, "model.layers.0.") && !find(first, "model.layers.1."));
        CHECK(find(last, "model.layers.2.") && !find(last, "model.layers.0."));
        CHECK(count_op(first, LLMRT_OP_SEND) == 1 && count_op(first, LLMRT_OP_RECV) == 1);
        CHECK(count_op(last, LLMRT_OP_SEND) == 1 && count_op(last, LLMRT_OP_RECV) == 1);
        CHECK(first->vocab_size == c.vocab_size && last->vocab_size == c.vocab_size);
        CHECK_OK(llmrt_plan_verify(first));
        CHECK_OK(llmrt_plan_verify(last));
    }
    llmrt_plan_free(first);
    llmrt_plan_free(last);
}

int main(void) {
    RUN_TEST(test_shards_are_slices);
    RUN_TEST(test_fused_shards_are_pieces);
    RUN_TEST(test_refusals);
    RUN_TEST(test_pipeline_stages);
    return test_finish();
}
