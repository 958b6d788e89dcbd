/* ONNX import driver: parse, index the values, check the op types, infer
 * shapes, find the attention sites, lower, and describe the model. */
#include "import/onnx_import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "import/onnx_internal.h"
#include "models/models.h"

struct llmrt_onnx_file {
    onnx_model *model;
    llmrt_mapped_file map; /* the .onnx file (empty for an image in memory) */
};

/* Every op the importer knows: lowered on activations, or evaluated at
 * import in shape arithmetic, or part of the subgraphs the attention op
 * replaces (mask, RoPE tables) and so never run. */
static const char *const SUPPORTED_OPS[] = {
    "Abs", "Add", "And", "Cast", "Concat", "Constant", "ConstantOfShape", "Cos", "Div", "Dropout", "Equal", "Erf",
    "Exp", "Expand", "Flatten", "Gather", "Gemm", "Greater", "GreaterOrEqual", "Identity",
    "LayerNormalization", "Less", "LessOrEqual", "MatMul", "Max", "Min", "Mul", "Neg", "Not", "Or", "Pow", "Range",
    "Reciprocal", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Shape", "Sigmoid", "SimplifiedLayerNormalization",
    "Sin", "Slice", "Softmax", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Trilu", "Unsqueeze", "Where",
};

int onnx_op_known(const char *op) {
    for (size_t i = 0; i < sizeof SUPPORTED_OPS / sizeof SUPPORTED_OPS[0]; i++)
        if (!strcmp(SUPPORTED_OPS[i], op)) return 1;
    return 0;
}

const char *onnx_node_label(const onnx_ctx *c, int32_t n, char *buf, size_t size) {
    const onnx_node *node = &c->model->nodes[n];
    snprintf(buf, size, "node '%s' (%s)", node->name[0] ? node->name : node->num_outputs ? node->outputs[0] : "?",
             node->op_type);
    return buf;
}

int32_t onnx_producer_is(const onnx_ctx *c, int32_t v, const char *op) {
    if (v < 0 || v >= c->num_values) return -1;
    int32_t n = c->values[v].producer;
    return n >= 0 && !strcmp(c->model->nodes[n].op_type, op) ? n : -1;
}

int32_t onnx_find_value(const onnx_ctx *c, const char *name) {
    for (int32_t i = c->num_values - 1; i >= 0; i--)
        if (c->values[i].name && !strcmp(c->values[i].name, name)) return i;
    return -1;
}

/* A hash from names to values, for wiring node inputs. */
typedef struct name_index {
    int32_t *slots;
    size_t mask;
} name_index;

static void index_put(name_index *ix, const ival *values, int32_t v) {
    size_t i = (size_t)onnx_name_hash(values[v].name) & ix->mask;
    while (ix->slots[i] >= 0 && strcmp(values[ix->slots[i]].name, values[v].name)) i = (i + 1) & ix->mask;
    ix->slots[i] = v;
}

static int32_t index_get(const name_index *ix, const ival *values, const char *name) {
    size_t i = (size_t)onnx_name_hash(name) & ix->mask;
    while (ix->slots[i] >= 0) {
        if (!strcmp(values[ix->slots[i]].name, name)) return ix->slots[i];
        i = (i + 1) & ix->mask;
    }
    return -1;
}

/* The symbols of the graph inputs' dims: batch (dim 0) is 1, the ids'
 * sequence axis is T, a past key/value's axis 2 is P, the mask's axis 1 is
 * P + T. Other symbolic dims stay untracked. */
static void seed_input(ival *v, const onnx_value_info *info, const char *seq_name) {
    v->dtype = info->dtype;
    v->ndim = info->ndim;
    int past = strstr(info->name, "past") != NULL && info->ndim == 4;
    int mask = strstr(info->name, "attention_mask") != NULL;
    for (int32_t d = 0; d < info->ndim; d++) {
        int64_t x = info->dims[d];
        if (x != ONNX_DIM_SYMBOL) v->dims[d] = x;
        else if (d == 0) v->dims[d] = 1;
        else if (past && d == 2) v->dims[d] = SYM_P;
        else if (mask && d == 1) v->dims[d] = SYM_TOTAL;
        else if (seq_name && info->dim_names[d] && !strcmp(info->dim_names[d], seq_name)) v->dims[d] = SYM_T;
        else v->dims[d] = SYM_ANY;
    }
}

static llmrt_status build_values(onnx_ctx *c) {
    const onnx_model *m = c->model;
    int32_t count = m->num_initializers + m->num_inputs, inputs = 0;
    for (int32_t n = 0; n < m->num_nodes; n++) {
        count += m->nodes[n].num_outputs;
        inputs += m->nodes[n].num_inputs;
    }
    c->values = calloc((size_t)count + 1, sizeof *c->values);
    c->node_out = calloc((size_t)m->num_nodes + 1, sizeof *c->node_out);
    c->node_in = calloc((size_t)inputs + 1, sizeof *c->node_in);
    c->node_in_start = calloc((size_t)m->num_nodes + 1, sizeof *c->node_in_start);
    size_t cap = 16;
    while (cap < (size_t)count * 2) cap *= 2;
    name_index ix = {malloc(cap * sizeof(int32_t)), cap - 1};
    if (!c->values || !c->node_out || !c->node_in || !c->node_in_start || !ix.slots) {
        free(ix.slots);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    memset(ix.slots, 0xff, cap * sizeof(int32_t));
    /* the sequence axis: dim 1 of the ids (input_ids, or the first rank-2 int input) */
    const char *seq_name = NULL;
    for (int32_t i = 0; i < m->num_inputs && !seq_name; i++)
        if (m->inputs[i].ndim == 2 && (m->inputs[i].dtype == LLMRT_DTYPE_I64 || m->inputs[i].dtype == LLMRT_DTYPE_I32) &&
            !strstr(m->inputs[i].name, "mask") && m->inputs[i].dims[1] == ONNX_DIM_SYMBOL)
            seq_name = m->inputs[i].dim_names[1];
    if (!seq_name) {
        /* a graph traced at one length has that length baked into every reshape */
        for (int32_t i = 0; i < m->num_inputs; i++)
            if (m->inputs[i].ndim == 2 && !strstr(m->inputs[i].name, "mask") &&
                (m->inputs[i].dtype == LLMRT_DTYPE_I64 || m->inputs[i].dtype == LLMRT_DTYPE_I32)) {
                free(ix.slots);
                return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                                   "%s: input '%s' has a fixed sequence length; export with a dynamic axis for it "
                                   "(torch.onnx.export(..., dynamic_axes={'%s': {0: 'batch', 1: 'seq'}, ...}))",
                                   c->source, m->inputs[i].name, m->inputs[i].name);
            }
        free(ix.slots);
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: no input of token ids [batch, sequence] (int64 or int32)",
                           c->source);
    }
    int32_t v = 0;
    for (int32_t i = 0; i < m->num_initializers; i++, v++) {
        ival *iv = &c->values[v];
        const onnx_tensor *t = &m->initializers[i];
        iv->name = t->name;
        iv->producer = -1;
        iv->dtype = t->dtype;
        iv->ndim = t->ndim;
        memcpy(iv->dims, t->dims, sizeof iv->dims);
        iv->init = t;
        index_put(&ix, c->values, v);
    }
    for (int32_t i = 0; i < m->num_inputs; i++, v++) {
        ival *iv = &c->values[v];
        iv->name = m->inputs[i].name;
        iv->producer = -1;
        seed_input(iv, &m->inputs[i], seq_name);
        index_put(&ix, c->values, v);
    }
    int32_t in = 0;
    for (int32_t n = 0; n < m->num_nodes; n++) {
        c->node_in_start[n] = in;
        for (int32_t k = 0; k < m->nodes[n].num_inputs; k++, in++) {
            const char *name = m->nodes[n].inputs[k];
            c->node_in[in] = name[0] ? index_get(&ix, c->values, name) : -1;
            if (c->node_in[in] >= 0) c->values[c->node_in[in]].uses++;
        }
        c->node_out[n] = v;
        for (int32_t k = 0; k < m->nodes[n].num_outputs; k++, v++) {
            ival *iv = &c->values[v];
            iv->name = m->nodes[n].outputs[k][0] ? m->nodes[n].outputs[k] : "";
            iv->producer = n;
            iv->ndim = -1;
            if (iv->name[0]) index_put(&ix, c->values, v);
        }
    }
    c->num_values = v;
    for (int32_t i = 0; i < c->num_values; i++) c->values[i].gv = LLMRT_NO_VALUE;
    free(ix.slots);
    return LLMRT_OK;
}

/* The model spec from what the graph says; config.json's fields stay where
 * the graph is silent (token ids, norm eps for reference). */
static llmrt_status describe(onnx_ctx *c, llmrt_model_config *config) {
    const attention_site *s0 = &c->sites[0];
    for (int32_t i = 1; i < c->num_sites; i++)
        if (c->sites[i].num_kv_heads != s0->num_kv_heads || c->sites[i].head_dim != s0->head_dim)
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: attention layers with different KV geometry", c->source);
    const llmrt_node *out = NULL;
    for (int32_t i = 0; i < c->g->num_nodes; i++)
        if (c->g->nodes[i].is_output) out = &c->g->nodes[i];
    if (!config->architecture[0]) snprintf(config->architecture, sizeof config->architecture, "OnnxDecoder");
    if (!config->model_type[0]) snprintf(config->model_type, sizeof config->model_type, "onnx");
    config->vocab_size = out ? (int32_t)out->dims[1] : 0;
    config->num_layers = c->num_sites;
    config->num_heads = s0->num_heads;
    config->num_kv_heads = s0->num_kv_heads;
    config->head_dim = s0->head_dim;
    int64_t hidden = c->values[s0->xq].ndim == 3 ? c->values[s0->output].dims[2] : 0;
    if (!config->hidden_size) config->hidden_size = (int32_t)hidden;
    if (config->max_position_embeddings <= 0) config->max_position_embeddings = 4096;
    for (int32_t i = 0; i < c->g->num_nodes && config->norm_eps <= 0; i++) {
        /* the eps of the first norm: the scalar added to a mean of squares */
        const llmrt_node *n = &c->g->nodes[i], *a, *b;
        if (n->op != LLMRT_OP_ADD) continue;
        a = &c->g->nodes[n->inputs[0]];
        b = &c->g->nodes[n->inputs[1]];
        if (a->op == LLMRT_OP_MEAN && b->op == LLMRT_OP_CONSTANT && llmrt_node_numel(b, 0, 0) == 1 &&
            b->const_data[0] > 0)
            config->norm_eps = b->const_data[0];
    }
    if (config->norm_eps <= 0) config->norm_eps = 1e-5f;
    if (config->intermediate_size <= 0) {
        /* the widest projection that is not the LM head: the MLP's */
        for (int32_t i = 0; i < c->g->num_nodes; i++) {
            const llmrt_node *n = &c->g->nodes[i];
            if (n->op != LLMRT_OP_MATMUL) continue;
            const llmrt_node *w = &c->g->nodes[n->inputs[1]];
            int64_t width = w->op == LLMRT_OP_WEIGHT && w->ndim == 2 ? w->dims[n->iattr[0] ? 0 : 1] : 0;
            if (width != config->vocab_size && width > config->intermediate_size && width <= (1 << 20))
                config->intermediate_size = (int32_t)width;
        }
        if (config->intermediate_size <= 0) config->intermediate_size = config->hidden_size;
    }
    if (s0->rope) {
        config->rope.rotary_dim = s0->head_dim;
        if (config->rope.type == LLMRT_ROPE_NONE) config->rope.type = LLMRT_ROPE_DEFAULT;
        if (s0->inv_freq >= 0 && s0->head_dim >= 4) {
            /* inv_freq[i] = theta^(-2i/D): theta from the second element */
            double f1 = onnx_value_float(&c->values[s0->inv_freq], 1);
            if (f1 > 0 && f1 < 1) config->rope.theta = (float)pow(f1, -(double)s0->head_dim / 2.0);
        }
    } else {
        config->rope.type = LLMRT_ROPE_NONE;
    }
    return LLMRT_OK;
}

/* The float initializers, as a checkpoint the compiler's binder reads. */
static llmrt_status weights_view(const onnx_model *m, const char *source, llmrt_checkpoint **out) {
    llmrt_st_tensor *t = calloc((size_t)m->num_initializers + 1, sizeof *t);
    if (!t) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    size_t count = 0;
    for (int32_t i = 0; i < m->num_initializers; i++) {
        const onnx_tensor *x = &m->initializers[i];
        if (x->dtype != LLMRT_DTYPE_F32 && x->dtype != LLMRT_DTYPE_F16 && x->dtype != LLMRT_DTYPE_BF16 &&
            x->dtype != LLMRT_DTYPE_F64)
            continue;
        t[count] = (llmrt_st_tensor){.name = x->name, .dtype = x->dtype, .ndim = x->ndim, .data = x->data,
                                     .nbytes = x->nbytes};
        memcpy(t[count].shape, x->dims, sizeof x->dims);
        count++;
    }
    llmrt_status s = llmrt_checkpoint_open_views(t, count, source, out);
    free(t);
    return s;
}

static void ctx_free(onnx_ctx *c) {
    for (int32_t i = 0; c->values && i < c->num_values; i++) {
        free(c->values[i].ints);
        free(c->values[i].floats);
    }
    free(c->values);
    free(c->node_out);
    free(c->node_in);
    free(c->node_in_start);
    free(c->sites);
}

static llmrt_status import_model(onnx_ctx *c, llmrt_onnx_report *report) {
    LLMRT_TRY(build_values(c));
    LLMRT_TRY(onnx_infer_shapes(c));
    LLMRT_TRY(onnx_find_attention(c));
    if (c->num_sites == 0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "%s: no attention subgraph recognised (QKᵀ, scale, mask, softmax, ·V over heads split by "
                           "Reshape and Transpose); llmrt imports decoder-only transformers", c->source);
    llmrt_model_inputs in = llmrt_model_declare_inputs(c->g);
    c->token_ids = in.token_ids;
    c->positions = in.positions;
    c->logits_indices = in.logits_indices;
    for (int32_t i = 0; i < c->model->num_inputs; i++) {
        int32_t v = onnx_find_value(c, c->model->inputs[i].name);
        ival *iv = &c->values[v];
        int ids = iv->ndim == 2 && iv->dims[1] == SYM_T;
        if (ids && strstr(iv->name, "position")) iv->gv = c->positions;
        else if (ids && iv->dtype != LLMRT_DTYPE_F32) iv->gv = c->token_ids;
        if (strstr(iv->name, "past")) report->kv_cache_inputs = 1;
    }
    report->attention_sites = c->num_sites;
    for (int32_t i = 0; i < c->num_sites; i++) report->rope_sites += c->sites[i].rope;
    LLMRT_TRY(onnx_lower(c));
    report->graph_nodes = c->g->num_nodes;
    return LLMRT_OK;
}

static llmrt_status import_image(const uint8_t *data, size_t size, const char *source, const char *base_dir,
                                 llmrt_model_config *config, llmrt_graph *g, llmrt_onnx_file **file,
                                 llmrt_checkpoint **weights, llmrt_onnx_report *report) {
    *file = NULL;
    *weights = NULL;
    memset(report, 0, sizeof *report);
    onnx_model *m;
    LLMRT_TRY(onnx_model_parse(data, size, source, base_dir, &m));
    report->opset = m->opset;
    report->onnx_nodes = m->num_nodes;
    onnx_ctx c = {.model = m, .source = source, .g = g, .config = config, .report = report};
    llmrt_status s = import_model(&c, report);
    if (s == LLMRT_OK) s = describe(&c, config);
    ctx_free(&c);
    if (s == LLMRT_OK) s = weights_view(m, source, weights);
    if (s != LLMRT_OK) {
        onnx_model_free(m);
        return s;
    }
    *file = calloc(1, sizeof **file);
    if (!*file) {
        llmrt_checkpoint_close(*weights);
        *weights = NULL;
        onnx_model_free(m);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    (*file)->model = m;
    return LLMRT_OK;
}

llmrt_status llmrt_onnx_import_memory(const uint8_t *data, size_t size, const char *source,
                                      llmrt_model_config *config, llmrt_graph *g, llmrt_onnx_file **file,
                                      llmrt_checkpoint **weights, llmrt_onnx_report *report) {
    return import_image(data, size, source, NULL, config, g, file, weights, report);
}

llmrt_status llmrt_onnx_import(const char *path, llmrt_model_config *config, llmrt_graph *g, llmrt_onnx_file **file,
                               llmrt_checkpoint **weights, llmrt_onnx_report *report) {
    *file = NULL;
    *weights = NULL;
    llmrt_mapped_file map;
    LLMRT_TRY(llmrt_file_map(path, &map));
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup(".");
    llmrt_status s = dir ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    if (s == LLMRT_OK) {
        static const uint8_t empty[1];
        s = import_image(map.data ? map.data : empty, map.size, path, dir, config, g, file, weights, report);
    }
    free(dir);
    if (s != LLMRT_OK) {
        llmrt_file_unmap(&map);
        return s;
    }
    (*file)->map = map;
    return LLMRT_OK;
}

void llmrt_onnx_close(llmrt_onnx_file *file) {
    if (!file) return;
    onnx_model_free(file->model);
    llmrt_file_unmap(&file->map);
    free(file);
}
