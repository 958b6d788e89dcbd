#include "engine/plan_json.h"

#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "core/quant8.h"
#include "llmrt/plugin.h"

static json_t *int_array(const int64_t *values, int32_t count) {
    json_t *a = json_array();
    for (int32_t i = 0; i < count; i++) json_array_append_new(a, json_integer(values[i]));
    return a;
}

/* ---- plugin nodes: params as hex, and the list of plugins the plan needs ---- */

static json_t *params_to_hex(const llmrt_node *n) {
    static const char digits[] = "0123456789abcdef";
    char *hex = malloc((size_t)n->plugin_params_size * 2 + 1);
    if (!hex) return json_null();
    const uint8_t *bytes = n->plugin_params;
    for (int64_t i = 0; i < n->plugin_params_size; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 15];
    }
    hex[2 * n->plugin_params_size] = 0;
    json_t *s = json_string(hex);
    free(hex);
    return s;
}

static int hex_digit(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Each plugin once, with its version: what loading the engine requires
 * (informational: the nodes are what the loader checks). */
static json_t *plugins_used(const llmrt_graph *g) {
    json_t *list = json_array();
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op != LLMRT_OP_PLUGIN || !n->name) continue;
        int seen = 0;
        for (int32_t j = 0; j < i && !seen; j++)
            seen = g->nodes[j].op == LLMRT_OP_PLUGIN && g->nodes[j].name && strcmp(g->nodes[j].name, n->name) == 0;
        if (seen) continue;
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(n->name));
        json_object_set_new(o, "version", json_integer(n->iattr[0]));
        json_array_append_new(list, o);
    }
    return list;
}

json_t *llmrt_plan_to_json(const llmrt_plan *plan) {
    const llmrt_graph *g = plan->graph;
    json_t *nodes = json_array();
    for (int32_t i = 0; i < g->num_nodes; i++) {
        const llmrt_node *n = &g->nodes[i];
        json_t *o = json_object();
        json_object_set_new(o, "op", json_string(llmrt_op_name(n->op)));
        json_object_set_new(o, "dtype", json_string(llmrt_dtype_name(n->dtype)));
        json_object_set_new(o, "dims", int_array(n->dims, n->ndim));
        int64_t inputs[LLMRT_GRAPH_MAX_INPUTS];
        for (int32_t j = 0; j < n->num_inputs; j++) inputs[j] = n->inputs[j];
        json_object_set_new(o, "inputs", int_array(inputs, n->num_inputs));
        json_object_set_new(o, "iattr", int_array(n->iattr, LLMRT_GRAPH_MAX_ATTRS));
        json_t *f = json_array();
        for (int32_t j = 0; j < LLMRT_GRAPH_MAX_ATTRS; j++) json_array_append_new(f, json_real(n->fattr[j]));
        json_object_set_new(o, "fattr", f);
        if (n->name) json_object_set_new(o, "name", json_string(n->name));
        json_object_set_new(o, "alias", json_integer(n->alias_of));
        json_object_set_new(o, "offset", json_integer(n->arena_offset));
        json_object_set_new(o, "slot", json_integer(n->weight_slot));
        if (n->is_output) json_object_set_new(o, "output", json_true());
        if (n->op == LLMRT_OP_PLUGIN) json_object_set_new(o, "params", params_to_hex(n));
        json_array_append_new(nodes, o);
    }
    json_t *weights = json_array();
    for (int32_t i = 0; i < plan->num_weights; i++) {
        const llmrt_plan_weight *w = &plan->weights[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(w->name));
        json_object_set_new(o, "dtype", json_string(llmrt_dtype_name(w->dtype)));
        json_object_set_new(o, "dims", int_array(w->dims, w->ndim));
        json_object_set_new(o, "offset", json_integer((json_int_t)w->file_offset));
        json_object_set_new(o, "nbytes", json_integer((json_int_t)w->nbytes));
        json_array_append_new(weights, o);
    }
    json_t *root = json_object();
    json_object_set_new(root, "act_dtype", json_string(llmrt_dtype_name(g->act_dtype)));
    json_object_set_new(root, "weight_dtype", json_string(llmrt_dtype_name(g->weight_dtype)));
    json_object_set_new(root, "arena_bytes", json_integer((json_int_t)plan->arena_bytes));
    json_object_set_new(root, "naive_arena_bytes", json_integer((json_int_t)plan->naive_arena_bytes));
    json_object_set_new(root, "max_num_tokens", json_integer(plan->max_num_tokens));
    json_object_set_new(root, "max_batch", json_integer(plan->max_batch));
    json_object_set_new(root, "max_seq_len", json_integer(plan->max_seq_len));
    if (plan->kv_dtype != LLMRT_DTYPE_INVALID) /* absent: the activation dtype (engines before 8-bit caches) */
        json_object_set_new(root, "kv_cache_dtype", json_string(llmrt_dtype_name(plan->kv_dtype)));
    json_object_set_new(root, "nodes", nodes);
    json_t *plugins = plugins_used(g);
    if (json_array_size(plugins)) json_object_set_new(root, "plugins", plugins);
    else json_decref(plugins);
    json_object_set_new(root, "weights", weights);
    return root;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct decoder {
    const char *what;
    char where[96];
} decoder;

static llmrt_status bad(const decoder *d, const char *field, const char *why) {
    return llmrt_error(LLMRT_ERR_FORMAT, "%s: plan %s: field '%s' %s", d->what, d->where, field, why);
}

static llmrt_status get_int(const decoder *d, const json_t *o, const char *field, int64_t lo, int64_t hi,
                            int64_t *out) {
    const json_t *v = json_object_get(o, field);
    if (!json_is_integer(v)) return bad(d, field, "is missing or not an integer");
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi) return bad(d, field, "is out of range");
    *out = x;
    return LLMRT_OK;
}

static llmrt_status get_dtype(const decoder *d, const json_t *o, const char *field, llmrt_dtype *out) {
    const char *s = json_string_value(json_object_get(o, field));
    llmrt_dtype t = s ? llmrt_dtype_from_name(s) : LLMRT_DTYPE_INVALID;
    if (t == LLMRT_DTYPE_INVALID) return bad(d, field, "is not a known dtype");
    *out = t;
    return LLMRT_OK;
}

static llmrt_status get_ints(const decoder *d, const json_t *o, const char *field, int32_t max_count, int64_t lo,
                             int64_t hi, int64_t *values, int32_t *count) {
    const json_t *a = json_object_get(o, field);
    if (!json_is_array(a) || json_array_size(a) > (size_t)max_count) return bad(d, field, "is not a short array");
    *count = (int32_t)json_array_size(a);
    for (int32_t i = 0; i < *count; i++) {
        const json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
            return bad(d, field, "holds a value out of range");
        values[i] = json_integer_value(v);
    }
    return LLMRT_OK;
}

static llmrt_status decode_plugin_params(const decoder *d, const json_t *o, llmrt_node *n) {
    if (!n->name) return bad(d, "name", "is missing for a plugin");
    const char *hex = json_string_value(json_object_get(o, "params"));
    size_t len = hex ? strlen(hex) : 0;
    if (!hex || len % 2 || len / 2 > LLMRT_PLUGIN_MAX_PARAMS_BYTES) return bad(d, "params", "is not a short hex string");
    if (len == 0) return LLMRT_OK;
    uint8_t *bytes = malloc(len / 2);
    if (!bytes) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(bytes);
            return bad(d, "params", "holds a non-hex digit");
        }
        bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    n->plugin_params = bytes;
    n->plugin_params_size = (int64_t)(len / 2);
    return LLMRT_OK;
}

static llmrt_status decode_node(decoder *d, const json_t *o, int32_t index, const llmrt_plan *plan, llmrt_node *n) {
    memset(n, 0, sizeof *n);
    if (!json_is_object(o)) return bad(d, "node", "is not an object");
    const char *op = json_string_value(json_object_get(o, "op"));
    n->op = op ? llmrt_op_from_name(op) : LLMRT_OP_COUNT;
    if (n->op == LLMRT_OP_COUNT) return bad(d, "op", "is not a known op");
    LLMRT_TRY(get_dtype(d, o, "dtype", &n->dtype));
    int64_t values[LLMRT_GRAPH_MAX_ATTRS];
    int32_t count;
    LLMRT_TRY(get_ints(d, o, "dims", LLMRT_GRAPH_MAX_DIMS, LLMRT_DIM_LOGITS, (int64_t)1 << 40, values, &count));
    n->ndim = count;
    for (int32_t i = 0; i < count; i++) {
        if (values[i] == 0) return bad(d, "dims", "holds a zero");
        n->dims[i] = values[i];
    }
    LLMRT_TRY(get_ints(d, o, "inputs", LLMRT_GRAPH_MAX_INPUTS, -1, index - 1, values, &count));
    n->num_inputs = count;
    for (int32_t i = 0; i < LLMRT_GRAPH_MAX_INPUTS; i++) n->inputs[i] = i < count ? (llmrt_value)values[i] : -1;
    LLMRT_TRY(get_ints(d, o, "iattr", LLMRT_GRAPH_MAX_ATTRS, INT32_MIN, INT32_MAX, n->iattr, &count));
    const json_t *f = json_object_get(o, "fattr");
    if (!json_is_array(f) || json_array_size(f) > LLMRT_GRAPH_MAX_ATTRS) return bad(d, "fattr", "is not a short array");
    for (size_t i = 0; i < json_array_size(f); i++) {
        const json_t *v = json_array_get(f, i);
        if (!json_is_number(v)) return bad(d, "fattr", "holds a non-number");
        n->fattr[i] = (float)json_number_value(v);
    }
    int64_t x = 0;
    LLMRT_TRY(get_int(d, o, "alias", -1, index - 1, &x));
    n->alias_of = (llmrt_value)x;
    LLMRT_TRY(get_int(d, o, "offset", -1, (int64_t)plan->arena_bytes, &n->arena_offset));
    LLMRT_TRY(get_int(d, o, "slot", -1, plan->num_weights - 1, &x));
    n->weight_slot = (int32_t)x;
    n->is_output = json_is_true(json_object_get(o, "output"));
    const char *name = json_string_value(json_object_get(o, "name"));
    if (name && !(n->name = strdup(name))) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    if (n->op == LLMRT_OP_PLUGIN) LLMRT_TRY(decode_plugin_params(d, o, n));
    /* Structural checks: leaves have a slot, activations fit the arena. */
    int is_leaf = n->op == LLMRT_OP_WEIGHT || n->op == LLMRT_OP_CONSTANT;
    if (is_leaf) {
        if (n->weight_slot < 0) return bad(d, "slot", "is missing for a weight");
        const llmrt_plan_weight *w = &plan->weights[n->weight_slot];
        if (w->ndim != n->ndim || w->dtype != n->dtype || memcmp(w->dims, n->dims, (size_t)n->ndim * sizeof *n->dims))
            return bad(d, "slot", "names a weight of another shape or dtype");
        if (llmrt_dtype_is_packed(n->dtype) && llmrt_node_bytes(n, 0, 0) != w->nbytes)
            return bad(d, "nbytes", "of a quantized weight disagrees with its group size");
        for (int32_t i = 0; i < n->ndim; i++)
            if (n->dims[i] < 0) return bad(d, "dims", "of a weight is symbolic");
    } else {
        if (n->arena_offset < 0) return bad(d, "offset", "is missing for an activation");
        size_t bytes = llmrt_node_bytes(n, plan->max_num_tokens, plan->max_num_tokens);
        if ((size_t)n->arena_offset + bytes > plan->arena_bytes) return bad(d, "offset", "puts the buffer past the arena");
    }
    for (int32_t i = 0; i < n->num_inputs; i++)
        if (n->inputs[i] < 0 && !(n->op == LLMRT_OP_ATTENTION && i == 3)) return bad(d, "inputs", "holds -1");
    return LLMRT_OK;
}

llmrt_status llmrt_plan_from_json(const json_t *root, const char *what, llmrt_plan **out) {
    *out = NULL;
    decoder d = {.what = what, .where = "header"};
    if (!json_is_object(root)) return bad(&d, "plan", "is not an object");
    llmrt_plan *plan = calloc(1, sizeof *plan);
    if (!plan) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = LLMRT_OK;
    llmrt_dtype act = LLMRT_DTYPE_F32, wdt = LLMRT_DTYPE_F32;
    int64_t x = 0;
#define STEP(expr) do { if (s == LLMRT_OK) s = (expr); } while (0)
    STEP(get_dtype(&d, root, "act_dtype", &act));
    STEP(get_dtype(&d, root, "weight_dtype", &wdt));
    STEP(get_int(&d, root, "arena_bytes", 0, (int64_t)1 << 42, &x));
    plan->arena_bytes = (size_t)x;
    STEP(get_int(&d, root, "naive_arena_bytes", 0, INT64_MAX, &x));
    plan->naive_arena_bytes = (size_t)x;
    STEP(get_int(&d, root, "max_num_tokens", 1, 1 << 24, &x));
    plan->max_num_tokens = (int32_t)x;
    STEP(get_int(&d, root, "max_batch", 1, 1 << 20, &x));
    plan->max_batch = (int32_t)x;
    STEP(get_int(&d, root, "max_seq_len", 1, 1 << 24, &x));
    plan->max_seq_len = (int32_t)x;
    if (s == LLMRT_OK && json_object_get(root, "kv_cache_dtype")) {
        STEP(get_dtype(&d, root, "kv_cache_dtype", &plan->kv_dtype));
        if (s == LLMRT_OK && plan->kv_dtype != LLMRT_DTYPE_FP8_E4M3 && plan->kv_dtype != LLMRT_DTYPE_I8)
            s = bad(&d, "kv_cache_dtype", "is not an 8-bit KV cache type (fp8_e4m3, i8)");
    }
    const json_t *weights = json_object_get(root, "weights");
    const json_t *nodes = json_object_get(root, "nodes");
    if (s == LLMRT_OK && (!json_is_array(weights) || !json_is_array(nodes) || json_array_size(nodes) > (1u << 22) ||
                          json_array_size(weights) > (1u << 22)))
        s = bad(&d, "nodes/weights", "are not arrays of sane length");
    if (s == LLMRT_OK) {
        plan->weights = calloc(json_array_size(weights) + 1, sizeof *plan->weights);
        plan->graph = llmrt_graph_create(act, wdt);
        if (!plan->weights || !plan->graph) s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (size_t i = 0; s == LLMRT_OK && i < json_array_size(weights); i++) {
        const json_t *o = json_array_get(weights, i);
        llmrt_plan_weight *w = &plan->weights[i];
        snprintf(d.where, sizeof d.where, "weight %zu", i);
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!name) { s = bad(&d, "name", "is missing"); break; }
        if (!(w->name = strdup(name))) { s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory"); break; }
        plan->num_weights++;
        snprintf(d.where, sizeof d.where, "weight '%.80s'", name);
        STEP(get_dtype(&d, o, "dtype", &w->dtype));
        int64_t dims[LLMRT_GRAPH_MAX_DIMS];
        int32_t ndim = 0;
        STEP(get_ints(&d, o, "dims", LLMRT_GRAPH_MAX_DIMS, 1, (int64_t)1 << 40, dims, &ndim));
        w->ndim = ndim;
        memcpy(w->dims, dims, (size_t)ndim * sizeof *dims);
        STEP(get_int(&d, o, "offset", 0, INT64_MAX, &x));
        w->file_offset = (uint64_t)x;
        STEP(get_int(&d, o, "nbytes", 0, INT64_MAX, &x));
        w->nbytes = (size_t)x;
        if (s != LLMRT_OK) break;
        /* nbytes must equal the product of dims × element size, without
         * overflow; a quantized matrix's size depends on its group size,
         * which its nodes carry (checked against them in decode_node) */
        unsigned __int128 expected = llmrt_dtype_size(w->dtype);
        for (int32_t k = 0; k < ndim; k++) expected *= (unsigned __int128)w->dims[k];
        if (llmrt_dtype_is_quantized(w->dtype)) {
            if (ndim != 2 || w->nbytes < llmrt_qweight_bytes(w->dtype, w->dims[0], w->dims[1], w->dims[1], 0))
                s = bad(&d, "nbytes", "is too small for a quantized matrix of these dims");
        } else if (llmrt_dtype_is_q8(w->dtype)) {
            if (ndim != 2 || w->nbytes != llmrt_q8weight_bytes(w->dtype, w->dims[0], w->dims[1]))
                s = bad(&d, "nbytes", "disagrees with the 8-bit matrix layout of these dims");
        } else if (expected != (unsigned __int128)w->nbytes) {
            s = bad(&d, "nbytes", "disagrees with dims and dtype");
        }
    }
    for (size_t i = 0; s == LLMRT_OK && i < json_array_size(nodes); i++) {
        snprintf(d.where, sizeof d.where, "node %zu", i);
        llmrt_node n;
        s = decode_node(&d, json_array_get(nodes, i), (int32_t)i, plan, &n);
        if (s != LLMRT_OK) {
            free(n.name);
            free(n.plugin_params);
            break;
        }
        if (llmrt_graph_append(plan->graph, &n) == LLMRT_NO_VALUE) {
            free(n.name);
            free(n.plugin_params);
            s = llmrt_graph_status(plan->graph);
        }
    }
#undef STEP
    if (s == LLMRT_OK) {
        s = llmrt_plan_resolve_bindings(plan);
        if (s == LLMRT_OK) s = llmrt_plan_verify(plan);
        if (s != LLMRT_OK) llmrt_error_context(s, "%s", what);
    }
    if (s != LLMRT_OK) {
        llmrt_plan_free(plan);
        return s;
    }
    *out = plan;
    return LLMRT_OK;
}
