/* fuse_rmsnorm on Gemma's x̂·(1 + w): one RMSNORM of the weight itself
 * with the offset in fattr[1]; a plain RMSNorm keeps offset 0; a gain that
 * is not weight + scalar constant (here weight + weight) stays unfused. */
#include <string.h>

#include "compiler/passes.h"
#include "layers/layers.h"
#include "test_util.h"

static int count_op(const llmrt_graph *g, llmrt_op op) {
    int n = 0;
    for (int32_t i = 0; i < g->num_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

static const llmrt_node *find_rmsnorm(const llmrt_graph *g) {
    for (int32_t i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == LLMRT_OP_RMSNORM) return &g->nodes[i];
    return NULL;
}

static void fuse(llmrt_graph *g, llmrt_value out) {
    llmrt_graph_mark_output(g, out);
    CHECK_OK(llmrt_graph_status(g));
    llmrt_pass_context ctx;
    memset(&ctx, 0, sizeof ctx);
    CHECK_OK(llmrt_pass_fuse_rmsnorm(g, &ctx));
    CHECK_OK(llmrt_pass_dead_code(g, &ctx));
}

static void test_plus_one(void) {
    int64_t dims[2] = {LLMRT_DIM_TOKENS, 16};
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    llmrt_value x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, dims);
    fuse(g, llmrt_rmsnorm_plus_one_layer(g, x, "norm", 16, 1e-6f));
    const llmrt_node *r = find_rmsnorm(g);
    CHECK(r && count_op(g, LLMRT_OP_RMSNORM) == 1 && count_op(g, LLMRT_OP_ADD) == 0);
    CHECK(r && r->fattr[0] == 1e-6f && r->fattr[1] == 1.0f && g->nodes[r->inputs[1]].op == LLMRT_OP_WEIGHT);
    llmrt_graph_free(g);

    g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, dims);
    fuse(g, llmrt_rmsnorm_layer(g, x, "norm", 16, 1e-6f));
    r = find_rmsnorm(g);
    CHECK(r && r->fattr[1] == 0.0f);
    llmrt_graph_free(g);

    /* x̂·(w + w'): not an offset */
    g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    x = llmrt_input(g, "x", LLMRT_DTYPE_F32, 2, dims);
    int64_t d = 16;
    llmrt_value variance = llmrt_mean(g, llmrt_pow(g, x, 2.0f));
    llmrt_value normed = llmrt_mul(g, x, llmrt_rsqrt(g, llmrt_add(g, variance, llmrt_scalar(g, 1e-6f))));
    llmrt_value gain = llmrt_add(g, llmrt_weight(g, "a.weight", 1, &d), llmrt_weight(g, "b.weight", 1, &d));
    fuse(g, llmrt_mul(g, normed, gain));
    CHECK(count_op(g, LLMRT_OP_RMSNORM) == 0);
    llmrt_graph_free(g);
}

int main(void) {
    RUN_TEST(test_plus_one);
    return test_finish();
}
