/* The plugin registry and plugin nodes in plans: registration rules, shape
 * inference through llmrt_plugin_op, the params blob through the plan's
 * JSON (hex) intact, malformed params refused, and the errors for a plugin
 * that is missing or of another version when a plan is read back. */
#include <stdlib.h>
#include <string.h>

#include "compiler/compiler.h"
#include "engine/plan_json.h"
#include "graph/graph.h"
#include "llmrt/plugin.h"
#include "test_util.h"

/* test.concat_last: [T, a] ++ [T, b] → [T, a + b] with params a 3-byte tag */
static llmrt_status concat_infer(const void *params, size_t params_size, const llmrt_plugin_shape *in, int32_t n,
                                 llmrt_plugin_shape *out) {
    if (n != 2 || in[0].ndim != 2 || in[1].ndim != 2 || params_size != 3) return LLMRT_ERR_INVALID_ARGUMENT;
    *out = in[0];
    out->dims[1] = in[0].dims[1] + in[1].dims[1];
    return LLMRT_OK;
}

static llmrt_status concat_cpu(const llmrt_plugin_call *call) { return LLMRT_OK; }

static llmrt_plugin concat_plugin(uint32_t version) {
    return (llmrt_plugin){.abi_version = LLMRT_PLUGIN_ABI_VERSION, .name = "test.concat_last", .version = version,
                          .infer_shape = concat_infer, .enqueue_cpu = concat_cpu};
}

static void test_registration_rules(void) {
    llmrt_plugin p = concat_plugin(1);
    CHECK_OK(llmrt_plugin_register(&p));
    CHECK_OK(llmrt_plugin_register(&p)); /* the same again: a no-op */
    llmrt_plugin other = concat_plugin(2);
    CHECK(llmrt_plugin_register(&other) == LLMRT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(llmrt_last_error(), "already registered") != NULL);
    llmrt_plugin bad = concat_plugin(1);
    bad.name = "concat_last";
    CHECK(llmrt_plugin_register(&bad) == LLMRT_ERR_INVALID_ARGUMENT); /* no '.': llmrt's own */
    bad = concat_plugin(1);
    bad.abi_version = 99;
    bad.name = "test.abi";
    CHECK(llmrt_plugin_register(&bad) == LLMRT_ERR_UNSUPPORTED);
    bad = concat_plugin(1);
    bad.name = "test.no_enqueue";
    bad.enqueue_cpu = NULL;
    CHECK(llmrt_plugin_register(&bad) == LLMRT_ERR_INVALID_ARGUMENT);
    bad.name = "test bad name";
    CHECK(llmrt_plugin_register(&bad) == LLMRT_ERR_INVALID_ARGUMENT);
    CHECK(llmrt_plugin_unregister("test.never") == LLMRT_ERR_NOT_FOUND);
    CHECK(llmrt_plugin_load("/nonexistent/lib.so") == LLMRT_ERR_IO);
}

/* token_ids → emb → plugin(x, x) → gather(logits rows) → logits; compiled. */
static llmrt_plan *compile_with_plugin(const char *params) {
    llmrt_graph *g = llmrt_graph_create(LLMRT_DTYPE_F32, LLMRT_DTYPE_F32);
    const int64_t t[1] = {LLMRT_DIM_TOKENS}, l[1] = {LLMRT_DIM_LOGITS}, table_dims[2] = {8, 4}, head_dims[2] = {8, 8};
    float table[32] = {0}, head[64] = {0};
    llmrt_value ids = llmrt_input(g, "token_ids", LLMRT_DTYPE_I32, 1, t);
    llmrt_input(g, "positions", LLMRT_DTYPE_I32, 1, t);
    llmrt_value rows = llmrt_input(g, "logits_indices", LLMRT_DTYPE_I32, 1, l);
    llmrt_value x = llmrt_gather(g, llmrt_constant(g, "emb", table, 2, table_dims), ids);
    llmrt_value in[2] = {x, x};
    llmrt_value y = llmrt_plugin_op(g, "test.concat_last", in, 2, params, strlen(params));
    llmrt_value logits = llmrt_matmul(g, llmrt_gather(g, y, rows), llmrt_constant(g, "head", head, 2, head_dims), 1);
    llmrt_graph_mark_output(g, logits);
    if (llmrt_graph_status(g) != LLMRT_OK) {
        llmrt_graph_free(g);
        return NULL;
    }
    llmrt_compile_options o = {.target = "cpu", .act_dtype = LLMRT_DTYPE_F32, .weight_dtype = LLMRT_DTYPE_F32,
                               .max_num_tokens = 8, .max_batch = 1, .max_seq_len = 8,
                               .quant_dtype = LLMRT_DTYPE_INVALID};
    llmrt_plan *plan = NULL;
    return llmrt_compile_graph(g, NULL, &o, &plan) == LLMRT_OK ? plan : NULL;
}

static const llmrt_node *find_plugin_node(const llmrt_plan *plan) {
    for (int32_t i = 0; i < plan->graph->num_nodes; i++)
        if (plan->graph->nodes[i].op == LLMRT_OP_PLUGIN) return &plan->graph->nodes[i];
    return NULL;
}

static void test_plan_round_trip(void) {
    /* shape inference rejects what the plugin rejects */
    CHECK(compile_with_plugin("toolong") == NULL);
    CHECK(strstr(llmrt_last_error(), "test.concat_last") != NULL);
    llmrt_plan *plan = compile_with_plugin("\x01\xff" "a");
    CHECK(plan != NULL);
    if (!plan) return;
    const llmrt_node *n = find_plugin_node(plan);
    CHECK(n && n->dims[1] == 8 && n->iattr[0] == 1);
    json_t *json = llmrt_plan_to_json(plan);
    const json_t *plugins = json_object_get(json, "plugins");
    CHECK(json_array_size(plugins) == 1 &&
          !strcmp(json_string_value(json_object_get(json_array_get(plugins, 0), "name")), "test.concat_last"));

    llmrt_plan *back = NULL;
    CHECK_OK(llmrt_plan_from_json(json, "round trip", &back));
    const llmrt_node *m = back ? find_plugin_node(back) : NULL;
    CHECK(m && m->plugin_params_size == 3 && !memcmp(m->plugin_params, "\x01\xff" "a", 3) &&
          !strcmp(m->name, "test.concat_last"));
    llmrt_plan_free(back);

    /* malformed params: odd length, a non-hex digit */
    json_t *nodes = json_object_get(json, "nodes");
    json_t *node = NULL;
    for (size_t i = 0; i < json_array_size(nodes); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(nodes, i), "op")), "plugin"))
            node = json_array_get(nodes, i);
    const char *bad_params[] = {"01f", "01zz61"};
    for (int i = 0; i < 2; i++) {
        json_object_set_new(node, "params", json_string(bad_params[i]));
        back = NULL;
        CHECK(llmrt_plan_from_json(json, "bad params", &back) == LLMRT_ERR_FORMAT);
        CHECK(strstr(llmrt_last_error(), "params") != NULL);
        llmrt_plan_free(back);
    }
    json_object_set_new(node, "params", json_string("01ff61"));

    /* another version registered, then none */
    CHECK_OK(llmrt_plugin_unregister("test.concat_last"));
    back = NULL;
    CHECK(llmrt_plan_from_json(json, "missing", &back) == LLMRT_ERR_NOT_FOUND);
    CHECK(strstr(llmrt_last_error(), "'test.concat_last' (version 1) is not loaded") != NULL);
    llmrt_plugin v2 = concat_plugin(2);
    CHECK_OK(llmrt_plugin_register(&v2));
    CHECK(llmrt_plan_from_json(json, "v2", &back) == LLMRT_ERR_UNSUPPORTED);
    CHECK(strstr(llmrt_last_error(), "built with version 1, the loaded plugin is version 2") != NULL);
    llmrt_plan_free(back);
    json_decref(json);
    llmrt_plan_free(plan);
}

int main(void) {
    RUN_TEST(test_registration_rules);
    RUN_TEST(test_plan_round_trip);
    return test_finish();
}
