/* ONNX model reader (protobuf-c). See onnx_model.h for what is validated. */
#include "import/onnx_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

enum { ONNX_MIN_OPSET = 13, ONNX_MAX_OPSET = 17 };

typedef struct owned_list {
    void **items;
    size_t count, capacity;
} owned_list;

static void *own(owned_list *list, size_t bytes) {
    if (list->count == list->capacity) {
        size_t cap = list->capacity ? list->capacity * 2 : 64;
        void **items = realloc(list->items, cap * sizeof *items);
        if (!items) return NULL;
        list->items = items;
        list->capacity = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (p) list->items[list->count++] = p;
    return p;
}

static void owned_free(owned_list *list) {
    if (!list) return;
    for (size_t i = 0; i < list->count; i++) free(list->items[i]);
    free(list->items);
    free(list);
}

/* ONNX TensorProto.DataType → llmrt dtype (INVALID for types llmrt has no use for). */
static llmrt_dtype onnx_dtype(int32_t t) {
    switch (t) {
    case 1: return LLMRT_DTYPE_F32;
    case 2: return LLMRT_DTYPE_U8;
    case 3: return LLMRT_DTYPE_I8;
    case 5: return LLMRT_DTYPE_I16;
    case 6: return LLMRT_DTYPE_I32;
    case 7: return LLMRT_DTYPE_I64;
    case 9: return LLMRT_DTYPE_BOOL;
    case 10: return LLMRT_DTYPE_F16;
    case 11: return LLMRT_DTYPE_F64;
    case 16: return LLMRT_DTYPE_BF16;
    default: return LLMRT_DTYPE_INVALID;
    }
}

int64_t onnx_tensor_numel(const onnx_tensor *t) {
    int64_t n = 1;
    for (int32_t d = 0; d < t->ndim; d++) n *= t->dims[d];
    return n;
}

/* Fills `out` from a TensorProto: shape and type checked, data from raw_data
 * or decoded from the typed repeated field into an owned buffer. */
static llmrt_status read_tensor(const Onnx__TensorProto *p, const char *source, const char *what,
                                owned_list *owned, onnx_tensor *out) {
    const char *name = p->name && p->name[0] ? p->name : what;
    memset(out, 0, sizeof *out);
    out->name = name;
    if (p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL || p->n_external_data)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "%s: tensor '%s' keeps its data in an external file; save the model with all "
                           "tensors inside (onnx.save(..., save_as_external_data=False))", source, name);
    out->dtype = onnx_dtype(p->data_type);
    if (out->dtype == LLMRT_DTYPE_INVALID)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: tensor '%s' has ONNX data type %d, which llmrt does not read",
                           source, name, (int)p->data_type);
    if (p->n_dims > ONNX_MAX_DIMS)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' has %zu dims (at most %d)", source, name, p->n_dims,
                           ONNX_MAX_DIMS);
    out->ndim = (int32_t)p->n_dims;
    uint64_t numel = 1;
    for (size_t d = 0; d < p->n_dims; d++) {
        if (p->dims[d] < 0 || p->dims[d] > ((int64_t)1 << 40))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' has dim %zu of size %lld", source, name, d,
                               (long long)p->dims[d]);
        out->dims[d] = p->dims[d];
        numel *= (uint64_t)p->dims[d];
        if (numel > ((uint64_t)1 << 40))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' is too large", source, name);
    }
    unsigned esize = llmrt_dtype_size(out->dtype);
    size_t nbytes = (size_t)numel * esize;
    out->nbytes = nbytes;
    if (p->has_raw_data) {
        if (p->raw_data.len != nbytes)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' holds %zu bytes but its shape and type need %zu",
                               source, name, p->raw_data.len, nbytes);
        out->data = p->raw_data.data;
        return LLMRT_OK;
    }
    size_t have;
    switch (out->dtype) {
    case LLMRT_DTYPE_F32: have = p->n_float_data; break;
    case LLMRT_DTYPE_I64: have = p->n_int64_data; break;
    case LLMRT_DTYPE_F64: have = p->n_double_data; break;
    default: have = p->n_int32_data; break; /* i32, i16, i8, u8, bool, f16, bf16 ride in int32_data */
    }
    if (have != numel)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' holds %zu values but its shape needs %llu", source,
                           name, have, (unsigned long long)numel);
    uint8_t *buf = own(owned, nbytes);
    if (!buf) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory reading '%s'", name);
    if (out->dtype == LLMRT_DTYPE_F32) memcpy(buf, p->float_data, nbytes);
    else if (out->dtype == LLMRT_DTYPE_I64) memcpy(buf, p->int64_data, nbytes);
    else if (out->dtype == LLMRT_DTYPE_F64) memcpy(buf, p->double_data, nbytes);
    else
        for (size_t i = 0; i < numel; i++) {
            int32_t v = p->int32_data[i];
            if (esize == 4) memcpy(buf + i * 4, &v, 4);
            else if (esize == 2) { uint16_t h = (uint16_t)v; memcpy(buf + i * 2, &h, 2); }
            else buf[i] = (uint8_t)v;
        }
    out->data = buf;
    return LLMRT_OK;
}

static llmrt_status read_value_info(const Onnx__ValueInfoProto *p, const char *source, onnx_value_info *out) {
    memset(out, 0, sizeof *out);
    out->name = p->name ? p->name : "";
    out->ndim = -1;
    if (!p->type || p->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !p->type->tensor_type)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: graph input/output '%s' is not a tensor", source, out->name);
    const Onnx__TypeProto__Tensor *t = p->type->tensor_type;
    out->dtype = onnx_dtype(t->elem_type);
    if (out->dtype == LLMRT_DTYPE_INVALID)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: graph input/output '%s' has ONNX data type %d", source,
                           out->name, (int)t->elem_type);
    if (!t->shape) return LLMRT_OK;
    if (t->shape->n_dim > ONNX_MAX_DIMS)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: graph input/output '%s' has %zu dims", source, out->name,
                           t->shape->n_dim);
    out->ndim = (int32_t)t->shape->n_dim;
    for (size_t d = 0; d < t->shape->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = t->shape->dim[d];
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (dim->dim_value < 0)
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: graph input/output '%s' has dim %zu of size %lld", source,
                                   out->name, d, (long long)dim->dim_value);
            out->dims[d] = dim->dim_value;
        } else {
            out->dims[d] = ONNX_DIM_SYMBOL;
            out->dim_names[d] = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM
                                    ? dim->dim_param : "";
        }
    }
    return LLMRT_OK;
}

static llmrt_status read_node(const Onnx__NodeProto *p, const char *source, owned_list *owned, onnx_node *out) {
    out->op_type = p->op_type ? p->op_type : "";
    out->name = p->name ? p->name : "";
    if (!out->op_type[0]) return llmrt_error(LLMRT_ERR_FORMAT, "%s: node '%s' has no op type", source, out->name);
    const char *domain = p->domain ? p->domain : "";
    if (domain[0] && strcmp(domain, "ai.onnx") != 0 && strcmp(domain, "com.microsoft") != 0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: node '%s' (%s) is in domain '%s'", source, out->name,
                           out->op_type, domain);
    if (p->n_input > 64 || p->n_output > 64 || p->n_attribute > 64)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: node '%s' (%s) has too many inputs, outputs or attributes", source,
                           out->name, out->op_type);
    out->num_inputs = (int32_t)p->n_input;
    out->num_outputs = (int32_t)p->n_output;
    out->inputs = (const char **)p->input;
    out->outputs = (const char **)p->output;
    out->num_attrs = (int32_t)p->n_attribute;
    out->attrs = own(owned, p->n_attribute * sizeof *out->attrs);
    if (!out->attrs) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < p->n_attribute; i++) {
        const Onnx__AttributeProto *a = p->attribute[i];
        onnx_attr *o = &out->attrs[i];
        o->name = a->name ? a->name : "";
        switch (a->type) {
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: o->kind = ONNX_ATTR_INT; o->i = a->i; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: o->kind = ONNX_ATTR_FLOAT; o->f = a->f; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: o->kind = ONNX_ATTR_STRING; break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
            if (a->n_ints > ONNX_MAX_DIMS * 8)
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: node '%s' (%s): attribute '%s' has %zu values", source,
                                   out->name, out->op_type, o->name, a->n_ints);
            o->kind = ONNX_ATTR_INTS;
            o->num_ints = (int32_t)a->n_ints;
            o->ints = a->ints;
            break;
        case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
            if (!a->t)
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: node '%s' (%s): tensor attribute '%s' is empty", source,
                                   out->name, out->op_type, o->name);
            o->kind = ONNX_ATTR_TENSOR;
            LLMRT_TRY(read_tensor(a->t, source, out->outputs && out->num_outputs ? out->outputs[0] : o->name, owned,
                                  &o->tensor));
            break;
        default: o->kind = ONNX_ATTR_OTHER; break;
        }
    }
    return LLMRT_OK;
}

/* ---- names: an open-addressing table of defined values ------------------- */

typedef struct name_table {
    const char **keys;
    int32_t *producer; /* node index, or -1 for graph inputs and initializers */
    size_t capacity;
} name_table;

uint64_t onnx_name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static size_t slot_of(const name_table *t, const char *key) {
    size_t i = (size_t)onnx_name_hash(key) & (t->capacity - 1);
    while (t->keys[i] && strcmp(t->keys[i], key) != 0) i = (i + 1) & (t->capacity - 1);
    return i;
}

/* 0 when added, 1 when the name was already defined. */
static int define(name_table *t, const char *key, int32_t producer) {
    size_t i = slot_of(t, key);
    if (t->keys[i]) return 1;
    t->keys[i] = key;
    t->producer[i] = producer;
    return 0;
}

/* The producer (>= -1) or -2 when undefined. */
static int32_t lookup(const name_table *t, const char *key) {
    size_t i = slot_of(t, key);
    return t->keys[i] ? t->producer[i] : -2;
}

static const char *node_label(const onnx_node *n, char *buf, size_t size) {
    snprintf(buf, size, "node '%s' (%s)", n->name[0] ? n->name : (n->num_outputs ? n->outputs[0] : "?"), n->op_type);
    return buf;
}

/* Every input defined once, no cycles; reorders the nodes topologically. */
static llmrt_status check_graph(onnx_model *m, const char *source) {
    size_t cap = 16;
    size_t names = (size_t)m->num_initializers + (size_t)m->num_inputs + 1;
    for (int32_t i = 0; i < m->num_nodes; i++) names += (size_t)m->nodes[i].num_outputs;
    while (cap < names * 2) cap *= 2;
    name_table t = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(int32_t)), cap};
    int32_t *pending = calloc((size_t)m->num_nodes + 1, sizeof *pending);
    int32_t *order = calloc((size_t)m->num_nodes + 1, sizeof *order);
    int32_t *uses_start = NULL, *uses = NULL;
    llmrt_status s = LLMRT_OK;
    char label[256];
    if (!t.keys || !t.producer || !pending || !order) {
        s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < m->num_initializers; i++)
        if (define(&t, m->initializers[i].name, -1)) {
            s = llmrt_error(LLMRT_ERR_FORMAT, "%s: initializer '%s' is defined twice", source, m->initializers[i].name);
            goto done;
        }
    for (int32_t i = 0; i < m->num_inputs; i++)
        if (define(&t, m->inputs[i].name, -1)) {
            s = llmrt_error(LLMRT_ERR_FORMAT, "%s: graph input '%s' is defined twice", source, m->inputs[i].name);
            goto done;
        }
    for (int32_t i = 0; i < m->num_nodes; i++)
        for (int32_t o = 0; o < m->nodes[i].num_outputs; o++) {
            const char *name = m->nodes[i].outputs[o];
            if (!name[0]) continue;
            if (define(&t, name, i)) {
                s = llmrt_error(LLMRT_ERR_FORMAT, "%s: %s writes '%s', which is already defined", source,
                                node_label(&m->nodes[i], label, sizeof label), name);
                goto done;
            }
        }
    /* consumers of each node's outputs, for Kahn's algorithm */
    uses_start = calloc((size_t)m->num_nodes + 2, sizeof *uses_start);
    size_t total_uses = 0;
    for (int32_t i = 0; i < m->num_nodes; i++) total_uses += (size_t)m->nodes[i].num_inputs;
    uses = calloc(total_uses + 1, sizeof *uses);
    if (!uses_start || !uses) {
        s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < m->num_nodes; i++)
        for (int32_t k = 0; k < m->nodes[i].num_inputs; k++) {
            const char *name = m->nodes[i].inputs[k];
            if (!name[0]) continue;
            int32_t p = lookup(&t, name);
            if (p == -2) {
                s = llmrt_error(LLMRT_ERR_FORMAT,
                                "%s: %s reads '%s', which no node, graph input or initializer defines (a missing "
                                "initializer?)", source, node_label(&m->nodes[i], label, sizeof label), name);
                goto done;
            }
            if (p >= 0) {
                pending[i]++;
                uses_start[p + 1]++;
            }
        }
    for (int32_t i = 0; i < m->num_nodes; i++) uses_start[i + 1] += uses_start[i];
    {
        int32_t *fill = calloc((size_t)m->num_nodes + 1, sizeof *fill);
        if (!fill) {
            s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
        for (int32_t i = 0; i < m->num_nodes; i++)
            for (int32_t k = 0; k < m->nodes[i].num_inputs; k++) {
                const char *name = m->nodes[i].inputs[k];
                int32_t p = name[0] ? lookup(&t, name) : -1;
                if (p >= 0) uses[uses_start[p] + fill[p]++] = i;
            }
        free(fill);
    }
    int32_t head = 0, tail = 0;
    for (int32_t i = 0; i < m->num_nodes; i++)
        if (pending[i] == 0) order[tail++] = i;
    while (head < tail) {
        int32_t n = order[head++];
        for (int32_t u = uses_start[n]; u < uses_start[n + 1]; u++)
            if (--pending[uses[u]] == 0) order[tail++] = uses[u];
    }
    if (tail < m->num_nodes) {
        for (int32_t i = 0; i < m->num_nodes; i++)
            if (pending[i] > 0) {
                s = llmrt_error(LLMRT_ERR_FORMAT, "%s: the graph has a cycle through %s", source,
                                node_label(&m->nodes[i], label, sizeof label));
                goto done;
            }
    }
    for (int32_t i = 0; i < m->num_outputs; i++)
        if (lookup(&t, m->outputs[i].name) == -2) {
            s = llmrt_error(LLMRT_ERR_FORMAT, "%s: graph output '%s' is not defined", source, m->outputs[i].name);
            goto done;
        }
    onnx_node *sorted = malloc((size_t)m->num_nodes * sizeof *sorted + 1);
    if (!sorted) {
        s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < m->num_nodes; i++) sorted[i] = m->nodes[order[i]];
    memcpy(m->nodes, sorted, (size_t)m->num_nodes * sizeof *sorted);
    free(sorted);
done:
    free(t.keys);
    free(t.producer);
    free(pending);
    free(order);
    free(uses_start);
    free(uses);
    return s;
}

llmrt_status onnx_model_parse(const uint8_t *data, size_t size, const char *source, onnx_model **out) {
    *out = NULL;
    Onnx__ModelProto *proto = onnx__model_proto__unpack(NULL, size, data);
    if (!proto)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: not an ONNX model (the protobuf is truncated or malformed)", source);
    onnx_model *m = calloc(1, sizeof *m);
    owned_list *owned = calloc(1, sizeof *owned);
    if (!m || !owned) {
        free(m);
        free(owned);
        onnx__model_proto__free_unpacked(proto, NULL);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    m->proto = proto;
    m->owned = owned;
    llmrt_status s = LLMRT_OK;
    m->opset = -1;
    for (size_t i = 0; i < proto->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = proto->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0) m->opset = o->version;
    }
    const Onnx__GraphProto *g = proto->graph;
    if (!g) s = llmrt_error(LLMRT_ERR_FORMAT, "%s: the model has no graph", source);
    else if (m->opset < ONNX_MIN_OPSET || m->opset > ONNX_MAX_OPSET)
        s = llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: opset %lld (llmrt imports opsets %d to %d; re-export with "
                        "opset_version in that range)", source, (long long)m->opset, ONNX_MIN_OPSET, ONNX_MAX_OPSET);
    else if (g->n_node > (1u << 24) || g->n_initializer > (1u << 24) || g->n_input > 4096 || g->n_output > 4096)
        s = llmrt_error(LLMRT_ERR_FORMAT, "%s: the graph is too large", source);
    if (s == LLMRT_OK) {
        m->num_nodes = (int32_t)g->n_node;
        m->num_initializers = (int32_t)g->n_initializer;
        m->num_outputs = (int32_t)g->n_output;
        m->nodes = own(owned, g->n_node * sizeof *m->nodes);
        m->initializers = own(owned, g->n_initializer * sizeof *m->initializers);
        m->inputs = own(owned, g->n_input * sizeof *m->inputs);
        m->outputs = own(owned, g->n_output * sizeof *m->outputs);
        if (!m->nodes || !m->initializers || !m->inputs || !m->outputs)
            s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    for (size_t i = 0; s == LLMRT_OK && i < g->n_initializer; i++) {
        s = read_tensor(g->initializer[i], source, "", owned, &m->initializers[i]);
        if (s == LLMRT_OK && !m->initializers[i].name[0])
            s = llmrt_error(LLMRT_ERR_FORMAT, "%s: initializer %zu has no name", source, i);
    }
    for (size_t i = 0; s == LLMRT_OK && i < g->n_input; i++) {
        /* Older exporters list initializers among the inputs too. */
        if (g->input[i]->name && onnx_model_initializer(m, g->input[i]->name)) continue;
        s = read_value_info(g->input[i], source, &m->inputs[m->num_inputs]);
        if (s == LLMRT_OK) m->num_inputs++;
    }
    for (size_t i = 0; s == LLMRT_OK && i < g->n_output; i++) s = read_value_info(g->output[i], source, &m->outputs[i]);
    for (size_t i = 0; s == LLMRT_OK && i < g->n_node; i++) s = read_node(g->node[i], source, owned, &m->nodes[i]);
    if (s == LLMRT_OK && m->num_outputs == 0) s = llmrt_error(LLMRT_ERR_FORMAT, "%s: the graph has no outputs", source);
    if (s == LLMRT_OK) s = check_graph(m, source);
    if (s != LLMRT_OK) {
        onnx_model_free(m);
        return s;
    }
    *out = m;
    return LLMRT_OK;
}

void onnx_model_free(onnx_model *m) {
    if (!m) return;
    if (m->proto) onnx__model_proto__free_unpacked(m->proto, NULL);
    owned_free(m->owned);
    free(m);
}

const onnx_attr *onnx_node_attr(const onnx_node *node, const char *name) {
    for (int32_t i = 0; i < node->num_attrs; i++)
        if (strcmp(node->attrs[i].name, name) == 0) return &node->attrs[i];
    return NULL;
}

int64_t onnx_attr_int(const onnx_node *node, const char *name, int64_t fallback) {
    const onnx_attr *a = onnx_node_attr(node, name);
    return a && a->kind == ONNX_ATTR_INT ? a->i : fallback;
}

float onnx_attr_float(const onnx_node *node, const char *name, float fallback) {
    const onnx_attr *a = onnx_node_attr(node, name);
    return a && a->kind == ONNX_ATTR_FLOAT ? a->f : fallback;
}

const onnx_tensor *onnx_model_initializer(const onnx_model *m, const char *name) {
    for (int32_t i = 0; i < m->num_initializers; i++)
        if (m->initializers[i].name && strcmp(m->initializers[i].name, name) == 0) return &m->initializers[i];
    return NULL;
}
