/* BERT (Devlin et al., 2018): a bidirectional encoder of post-norm blocks
 * with learned absolute positions and token type (segment) embeddings; a
 * pooler (tanh dense over [CLS]) and, for BertForSequenceClassification, a
 * linear classifier over the pooled vector.
 *
 *   h = LN(word(ids) + token_type(types) + position(positions))
 *   for each layer: h = LN(h + o(attn(q(h), k(h), v(h))))      (no mask)
 *                   h = LN(h + down(gelu(up(h))))
 *   row = [h | tanh(pooler(h)) | classifier(tanh(pooler(h)))]   at logits_indices
 *
 * The pooler is HF's on the [CLS] row; computing it on every returned row
 * keeps the step's single [L, width] output (one hidden×hidden product a
 * row, 1/12 of a layer's), and callers read the pooled part of each
 * sequence's first row, asking for those rows alone when that is all they
 * need. */
#include <stdio.h>
#include <string.h>

#include "layers/layers.h"
#include "models/models.h"

static int bert_is_classifier(const llmrt_model_config *c) {
    return strcmp(c->architecture, "BertForSequenceClassification") == 0;
}

llmrt_encoder_row_layout llmrt_encoder_layout(const llmrt_model_config *c) {
    return (llmrt_encoder_row_layout){c->hidden_size, c->hidden_size, bert_is_classifier(c) ? c->num_labels : 0};
}

static llmrt_status bert_validate(const llmrt_model_config *c) {
    if (c->num_kv_heads != c->num_heads)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_key_value_heads %d differs from num_attention_heads %d (BERT "
                           "has no grouped-query attention)", c->architecture, c->num_kv_heads, c->num_heads);
    if (c->head_dim * c->num_heads != c->hidden_size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: hidden_size %d is not num_attention_heads %d × head_dim %d",
                           c->architecture, c->hidden_size, c->num_heads, c->head_dim);
    if (c->type_vocab_size < 1)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: type_vocab_size %d must be at least 1", c->architecture,
                           c->type_vocab_size);
    if (bert_is_classifier(c) && c->num_labels < 1)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: num_labels %d must be at least 1", c->architecture, c->num_labels);
    return LLMRT_OK;
}

static llmrt_value bert_build(llmrt_graph *g, const llmrt_model_config *c) {
    llmrt_model_inputs in = llmrt_model_declare_inputs(g);
    int64_t tokens = LLMRT_DIM_TOKENS, hidden = c->hidden_size;
    llmrt_value types = llmrt_input(g, "token_type_ids", LLMRT_DTYPE_I32, 1, &tokens);
    /* BertModel checkpoints name weights from the encoder down, a head's
     * checkpoint under "bert." (alias_weight tries the other spelling). */
    const char *root = bert_is_classifier(c) ? "bert." : "";
    char name[128], prefix[8][128];

    snprintf(name, sizeof name, "%sembeddings.word_embeddings.weight", root);
    llmrt_value h = llmrt_embedding_layer(g, in.token_ids, name, c->vocab_size, hidden);
    /* summed in HF's order: words + token types, then positions */
    snprintf(name, sizeof name, "%sembeddings.token_type_embeddings.weight", root);
    h = llmrt_add(g, h, llmrt_embedding_layer(g, types, name, c->type_vocab_size, hidden));
    snprintf(name, sizeof name, "%sembeddings.position_embeddings.weight", root);
    h = llmrt_add(g, h, llmrt_embedding_layer(g, in.positions, name, c->max_position_embeddings, hidden));
    snprintf(name, sizeof name, "%sembeddings.LayerNorm", root);
    h = llmrt_layernorm_layer(g, h, name, hidden, c->norm_eps);

    llmrt_attention_layer_params attention = llmrt_model_attention_params(c);
    attention.rotary_dim = 0;
    attention.qkv_bias = attention.out_bias = 1;
    attention.non_causal = 1;
    llmrt_mlp_layer_params mlp = llmrt_model_mlp_params(c);
    mlp.bias = 1;
    for (int32_t l = 0; l < c->num_layers; l++) {
        static const char *const parts[8] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                             "attention.output.dense", "attention.output.LayerNorm",
                                             "intermediate.dense", "output.dense", "output.LayerNorm"};
        for (int i = 0; i < 8; i++)
            snprintf(prefix[i], sizeof prefix[i], "%sencoder.layer.%d.%s", root, (int)l, parts[i]);
        llmrt_attention_layer_names names = {.q = prefix[0], .k = prefix[1], .v = prefix[2], .out = prefix[3]};
        h = llmrt_add(g, h, llmrt_attention_layer(g, h, &attention, l, &names, LLMRT_NO_VALUE));
        h = llmrt_layernorm_layer(g, h, prefix[4], hidden, c->norm_eps);
        h = llmrt_add(g, h, llmrt_mlp_layer(g, h, &mlp, prefix[5], prefix[6], 0));
        h = llmrt_layernorm_layer(g, h, prefix[7], hidden, c->norm_eps);
    }

    h = llmrt_gather(g, h, in.logits_indices);
    snprintf(name, sizeof name, "%spooler.dense", root);
    llmrt_value pooled = llmrt_tanh(g, llmrt_linear_layer(g, h, name, hidden, hidden, 1, 0));
    llmrt_value row[3] = {h, pooled, LLMRT_NO_VALUE};
    int32_t count = 2;
    if (bert_is_classifier(c)) row[count++] = llmrt_linear_layer(g, pooled, "classifier", hidden, c->num_labels, 1, 0);
    llmrt_value out = llmrt_concat(g, row, count, 1);
    llmrt_graph_mark_output(g, out);
    return out;
}

/* "bert.<name>" ↔ "<name>": a BertModel saved from a task model carries the
 * prefix, a head's encoder may be saved without it. */
static const char *bert_alias(const char *name, char *buf, size_t size) {
    static const char prefix[] = "bert.";
    if (strncmp(name, prefix, sizeof prefix - 1) == 0) snprintf(buf, size, "%s", name + sizeof prefix - 1);
    else if (strncmp(name, "classifier.", 11) != 0) snprintf(buf, size, "%s%s", prefix, name);
    else return NULL;
    return buf;
}

const llmrt_model_family llmrt_family_bert = {"BertModel", bert_validate, bert_build, bert_alias};
const llmrt_model_family llmrt_family_bert_classifier = {"BertForSequenceClassification", bert_validate, bert_build,
                                                         bert_alias};
