/* config.json fields of the families whose blocks differ from LLaMA's in
 * layout: GPT-J, GPT-NeoX, Falcon, OPT, GPTBigCode, GLM and Phi-3. Each
 * family's defaults are its transformers config class's, and every field
 * that selects a layout llmrt cannot run is refused by name. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "import/hf_config_fields.h"

static int is_family(const llmrt_model_config *c, const char *model_type, const char *architecture) {
    return strcmp(c->model_type, model_type) == 0 || strcmp(c->architecture, architecture) == 0;
}

static int present(const json_t *root, const char *field) {
    const json_t *v = json_object_get(root, field);
    return v && !json_is_null(v);
}

int llmrt_hf_layout_has_learned_positions(const json_t *root, const llmrt_model_config *c) {
    (void)root;
    return is_family(c, "opt", "OPTForCausalLM") || is_family(c, "gpt_bigcode", "GPTBigCodeForCausalLM");
}

/* Defaults of a config that leaves the activation or norm epsilon out,
 * where the family's differ from the generic (silu, 1e-6). */
static llmrt_status family_defaults(const char *source, const json_t *root, llmrt_model_config *c,
                                    llmrt_activation activation, float eps, int32_t tie) {
    if (!present(root, "hidden_act") && !present(root, "activation_function") && !present(root, "hidden_activation"))
        c->activation = activation;
    if (!present(root, "rms_norm_eps") && !present(root, "layer_norm_epsilon") && !present(root, "layer_norm_eps") &&
        !present(root, "layernorm_epsilon"))
        c->norm_eps = eps;
    return llmrt_hf_get_bool(source, root, "tie_word_embeddings", tie, &c->tie_word_embeddings);
}

/* rotary_dim recomputed from a fraction of the head (NeoX rotary_pct, GLM's
 * default half), as transformers does: int(head_dim * fraction). */
static llmrt_status rotary_fraction(const char *source, const char *field, float fraction, llmrt_model_config *c) {
    if (!(fraction > 0.0f && fraction <= 1.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %g is not in (0, 1]", source, field, (double)fraction);
    int32_t dim = (int32_t)floor((double)c->head_dim * (double)fraction);
    if (dim <= 0 || dim % 2 != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' = %g gives rotary_dim %d of head_dim %d, not a positive "
                           "even number", source, field, (double)fraction, dim, c->head_dim);
    c->rope.rotary_dim = dim;
    return LLMRT_OK;
}

static int has_partial_rotary_factor(const json_t *root) {
    const json_t *params = json_object_get(root, "rope_parameters");
    return present(root, "partial_rotary_factor") ||
           (json_is_object(params) && present(params, "partial_rotary_factor"));
}

/* GPT-J: one LayerNorm feeds attention and MLP in parallel; RoPE on the
 * first rotary_dim dims of each head, pairs interleaved; no q/k/v/out biases. */
static llmrt_status parse_gptj(const char *source, const json_t *root, llmrt_model_config *c) {
    LLMRT_TRY(family_defaults(source, root, c, LLMRT_ACT_GELU_TANH, 1e-5f, 0));
    c->parallel_residual = 1;
    c->parallel_norms = 1;
    c->attention_bias = c->attention_out_bias = 0;
    c->mlp_bias = 1;
    c->rope.interleaved = 1;
    LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("rotary_dim"), 0, c->head_dim, 0, 1 << 20, &c->rope.rotary_dim));
    if (c->rope.rotary_dim <= 0 || c->rope.rotary_dim % 2 != 0 || c->rope.rotary_dim > c->head_dim)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rotary_dim' = %d must be even and in (0, head size = %d]",
                           source, c->rope.rotary_dim, c->head_dim);
    return LLMRT_OK;
}

/* GPT-NeoX / Pythia: fused query_key_value per head, partial rotary
 * (rotary_pct in transformers 4), parallel or serial residual. */
static llmrt_status parse_neox(const char *source, const json_t *root, llmrt_model_config *c) {
    LLMRT_TRY(family_defaults(source, root, c, LLMRT_ACT_GELU, 1e-5f, 0));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "use_parallel_residual", 1, &c->parallel_residual));
    c->parallel_norms = 2;
    c->qkv_grouped = 1;
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "attention_bias", 1, &c->attention_bias));
    c->attention_out_bias = c->attention_bias;
    c->mlp_bias = 1;
    if (!has_partial_rotary_factor(root) && present(root, "rotary_pct")) {
        float pct;
        LLMRT_TRY(llmrt_hf_get_float(source, root, ALIASES("rotary_pct"), 1.0f, &pct));
        LLMRT_TRY(rotary_fraction(source, "rotary_pct", pct, c));
    }
    if (!present(root, "rope_theta") && !present(root, "rope_parameters") && present(root, "rotary_emb_base")) {
        LLMRT_TRY(llmrt_hf_get_float(source, root, ALIASES("rotary_emb_base"), 10000.0f, &c->rope.theta));
        if (!(c->rope.theta > 0.0f))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rotary_emb_base' = %g must be positive", source,
                               (double)c->rope.theta);
    }
    return LLMRT_OK;
}

/* Falcon: new_decoder_architecture groups q/k/v per KV head and may give
 * attention and MLP a LayerNorm each; the original layout is multi-query
 * ([q | k | v], one KV head) or per head ([heads, 3, D]). */
static llmrt_status parse_falcon(const char *source, const json_t *root, llmrt_model_config *c) {
    int32_t alibi, new_arch, multi_query, parallel_attn, has_bias;
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "alibi", 0, &alibi));
    if (alibi)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'alibi' = true: Falcon with ALiBi is not supported",
                           source);
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "new_decoder_architecture", 0, &new_arch));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "multi_query", 1, &multi_query));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "parallel_attn", 1, &parallel_attn));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "bias", 0, &has_bias));
    LLMRT_TRY(family_defaults(source, root, c, LLMRT_ACT_GELU, 1e-5f, 1));
    const json_t *act = json_object_get(root, "activation");
    if (act && !json_is_null(act)) {
        const char *name = json_is_string(act) ? json_string_value(act) : "";
        if (strcmp(name, "gelu") == 0) c->activation = LLMRT_ACT_GELU;
        else if (strcmp(name, "relu") == 0) c->activation = LLMRT_ACT_RELU;
        else
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'activation' = '%.40s' is not supported (gelu, relu)",
                               source, name);
    }
    LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("ffn_hidden_size"), 0, 4LL * c->hidden_size, 1, 1 << 20,
                               &c->intermediate_size));
    c->attention_bias = c->attention_out_bias = c->mlp_bias = has_bias;
    if (new_arch) {
        if (!parallel_attn)
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'parallel_attn' = false with "
                               "new_decoder_architecture is not a layout Falcon defines", source);
        LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("num_kv_heads", "n_head_kv"), 0, c->num_heads, 1,
                                   c->num_heads, &c->num_kv_heads));
        if (c->num_heads % c->num_kv_heads != 0)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'num_kv_heads' = %d does not divide num_attention_heads "
                               "= %d", source, c->num_kv_heads, c->num_heads);
        LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("num_ln_in_parallel_attn"), 0, 2, 1, 2, &c->parallel_norms));
    } else {
        c->num_kv_heads = multi_query ? 1 : c->num_heads;
        c->parallel_norms = 1;
    }
    c->qkv_grouped = new_arch || !multi_query;
    c->parallel_residual = parallel_attn;
    return LLMRT_OK;
}

/* OPT: learned positions (offset 2), ReLU, optional word_embed_proj_dim
 * projections, pre- or post-norm blocks (do_layer_norm_before). */
static llmrt_status parse_opt(const char *source, const json_t *root, llmrt_model_config *c) {
    int32_t norm_before, remove_final, affine, bias;
    LLMRT_TRY(family_defaults(source, root, c, LLMRT_ACT_RELU, 1e-5f, 1));
    c->norm_eps = 1e-5f; /* nn.LayerNorm's default: OPTConfig has no epsilon */
    LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("ffn_dim"), 0, 4LL * c->hidden_size, 1, 1 << 20,
                               &c->intermediate_size));
    LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("word_embed_proj_dim"), 0, c->hidden_size, 1, 1 << 17,
                               &c->embed_dim));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "do_layer_norm_before", 1, &norm_before));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "_remove_final_layer_norm", 0, &remove_final));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "layer_norm_elementwise_affine", 1, &affine));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "enable_bias", 1, &bias));
    if (!affine)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'layer_norm_elementwise_affine' = false is not supported",
                           source);
    c->post_norm = !norm_before;
    c->final_norm = norm_before && !remove_final;
    c->attention_bias = c->attention_out_bias = c->mlp_bias = bias;
    return LLMRT_OK;
}

/* GPTBigCode (StarCoder, SantaCoder): GPT-2 blocks with one fused c_attn,
 * multi-query ([q | k | v], one KV head) or per head ([heads, 3, D]). */
static llmrt_status parse_bigcode(const char *source, const json_t *root, llmrt_model_config *c) {
    int32_t multi_query, scale_weights;
    LLMRT_TRY(family_defaults(source, root, c, LLMRT_ACT_GELU_TANH, 1e-5f, 1));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "multi_query", 1, &multi_query));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "scale_attn_weights", 1, &scale_weights));
    if (!scale_weights)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'scale_attn_weights' = false is not supported", source);
    c->num_kv_heads = multi_query ? 1 : c->num_heads;
    c->qkv_grouped = !multi_query;
    c->attention_bias = c->attention_out_bias = c->mlp_bias = 1;
    return LLMRT_OK;
}

/* GLM: q/k/v carry a bias, o_proj none; RoPE on half the head by default,
 * pairs interleaved. */
static llmrt_status parse_glm(const char *source, const json_t *root, llmrt_model_config *c) {
    LLMRT_TRY(family_defaults(source, root, c, LLMRT_ACT_SILU, 1.5625e-07f, 0));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "attention_bias", 1, &c->attention_bias));
    c->attention_out_bias = 0;
    c->mlp_bias = 0;
    c->rope.interleaved = 1;
    if (!has_partial_rotary_factor(root)) LLMRT_TRY(rotary_fraction(source, "partial_rotary_factor", 0.5f, c));
    return LLMRT_OK;
}

/* ChatGLM2 / ChatGLM3 / GLM-4 remote-code checkpoints (ChatGLMModel): GLM's
 * block in THUDM's naming, q/k/v fused as [q | k | v] (multi-query groups),
 * RoPE interleaved on half of each head with base 10000 · rope_ratio. The
 * first ChatGLM (2D positions, post-norm alpha residual) is refused. */
static llmrt_status parse_chatglm(const char *source, const json_t *root, llmrt_model_config *c) {
    int32_t multi_query, rmsnorm, post_residual, post_layer_norm, qkv_bias, linear_bias;
    if (present(root, "position_encoding_2d"))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'position_encoding_2d': the first ChatGLM (2D "
                           "positions) is not supported, ChatGLM2 and later are", source);
    LLMRT_TRY(family_defaults(source, root, c, LLMRT_ACT_SILU, 1e-5f, 0));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "rmsnorm", 1, &rmsnorm));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "apply_residual_connection_post_layernorm", 0, &post_residual));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "post_layer_norm", 1, &post_layer_norm));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "multi_query_attention", 0, &multi_query));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "add_qkv_bias", 0, &qkv_bias));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "add_bias_linear", 0, &linear_bias));
    if (!rmsnorm)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'rmsnorm' = false is not supported", source);
    if (post_residual)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: field 'apply_residual_connection_post_layernorm' = true is "
                           "not supported", source);
    LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("kv_channels"), 0, c->head_dim, 1, 1 << 10, &c->head_dim));
    c->num_kv_heads = c->num_heads;
    if (multi_query)
        LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("multi_query_group_num"), 0, 1, 1, c->num_heads,
                                   &c->num_kv_heads));
    if (c->num_heads % c->num_kv_heads != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'multi_query_group_num' = %d does not divide "
                           "num_attention_heads = %d", source, c->num_kv_heads, c->num_heads);
    c->attention_bias = qkv_bias;
    c->attention_out_bias = c->mlp_bias = linear_bias;
    c->final_norm = post_layer_norm;
    float rope_ratio;
    LLMRT_TRY(llmrt_hf_get_float(source, root, ALIASES("rope_ratio"), 1.0f, &rope_ratio));
    if (!(rope_ratio > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope_ratio' = %g must be positive", source, (double)rope_ratio);
    c->rope.theta = 10000.0f * rope_ratio;
    c->rope.interleaved = 1;
    return rotary_fraction(source, "kv_channels", 0.5f, c);
}

/* The object holding the RoPE parameters in either dialect (see parse_rope). */
static const json_t *rope_object(const json_t *root, const char **prefix) {
    const json_t *params = json_object_get(root, "rope_parameters");
    if (json_is_object(params)) {
        const json_t *full = json_object_get(params, "full_attention");
        *prefix = json_is_object(full) ? "rope_parameters.full_attention" : "rope_parameters";
        return json_is_object(full) ? full : params;
    }
    *prefix = "rope_scaling";
    return json_object_get(root, "rope_scaling");
}

static llmrt_status factor_list(const char *source, const char *prefix, const char *key, const json_t *scaling,
                                int32_t count, float *out) {
    char field[96];
    snprintf(field, sizeof field, "%s.%s", prefix, key);
    const json_t *list = json_object_get(scaling, key);
    if (!json_is_array(list))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' must be a list of numbers for rope type longrope", source,
                           field);
    if ((int32_t)json_array_size(list) != count)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' has %zu factors, rotary_dim / 2 = %d expected", source,
                           field, json_array_size(list), count);
    for (int32_t i = 0; i < count; i++) {
        LLMRT_TRY(llmrt_hf_float_value(source, field, json_array_get(list, (size_t)i), &out[i]));
        if (!(out[i] > 0.0f))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s' has factor %d = %g, not positive", source, field,
                               (int)i, (double)out[i]);
    }
    return LLMRT_OK;
}

/* LongRoPE (Phi-3): inv_freq[i] = 1 / (factor[i] · θ^(2i/d)) with the short
 * or the long list, cos and sin scaled by attention_factor, which defaults to
 * √(1 + ln(s) / ln(original)) for s = max_position_embeddings / original. */
static llmrt_status parse_longrope(const char *source, const json_t *root, llmrt_model_config *c) {
    llmrt_rope_config *r = &c->rope;
    const char *prefix;
    const json_t *scaling = rope_object(root, &prefix);
    int32_t count = r->rotary_dim / 2;
    if (count > LLMRT_ROPE_MAX_FACTORS)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: longrope with rotary_dim %d (at most %d supported)", source,
                           r->rotary_dim, 2 * LLMRT_ROPE_MAX_FACTORS);
    LLMRT_TRY(factor_list(source, prefix, "short_factor", scaling, count, r->short_factor));
    LLMRT_TRY(factor_list(source, prefix, "long_factor", scaling, count, r->long_factor));
    int32_t original;
    const json_t *holder = present(scaling, "original_max_position_embeddings") ? scaling : root;
    LLMRT_TRY(llmrt_hf_get_int(source, holder, ALIASES("original_max_position_embeddings"), 1, 0, 1, 1 << 26,
                               &original));
    r->original_max_position_embeddings = original;
    float factor = (float)((double)c->max_position_embeddings / (double)original);
    LLMRT_TRY(llmrt_hf_get_float(source, scaling, ALIASES("factor"), factor, &factor));
    float fallback = factor <= 1.0f ? 1.0f : (float)sqrt(1.0 + log((double)factor) / log((double)original));
    LLMRT_TRY(llmrt_hf_get_float(source, scaling, ALIASES("attention_factor"), fallback, &r->attention_factor));
    if (!(r->attention_factor > 0.0f))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '%s.attention_factor' = %g must be positive", source, prefix,
                           (double)r->attention_factor);
    return LLMRT_OK;
}

llmrt_status llmrt_hf_parse_layouts(const char *source, const json_t *root, llmrt_model_config *c) {
    c->final_norm = 1;
    c->embed_dim = c->hidden_size;
    c->rope.attention_factor = 1.0f;
    if (c->rope.type == LLMRT_ROPE_LONGROPE) LLMRT_TRY(parse_longrope(source, root, c));
    if (is_family(c, "gptj", "GPTJForCausalLM")) return parse_gptj(source, root, c);
    if (is_family(c, "gpt_neox", "GPTNeoXForCausalLM")) return parse_neox(source, root, c);
    if (is_family(c, "falcon", "FalconForCausalLM")) return parse_falcon(source, root, c);
    if (is_family(c, "opt", "OPTForCausalLM")) return parse_opt(source, root, c);
    if (is_family(c, "gpt_bigcode", "GPTBigCodeForCausalLM")) return parse_bigcode(source, root, c);
    if (is_family(c, "glm", "GlmForCausalLM")) return parse_glm(source, root, c);
    if (is_family(c, "chatglm", "ChatGLMModel")) return parse_chatglm(source, root, c);
    return LLMRT_OK;
}

/* ---- engine config JSON ---------------------------------------------------- */

int llmrt_layout_fields_to_json(json_t *root, json_t *rope_object, const llmrt_model_config *c) {
    const llmrt_rope_config *r = &c->rope;
    int ok = json_object_set_new(root, "parallel_residual", json_boolean(c->parallel_residual)) == 0;
    ok &= json_object_set_new(root, "parallel_norms", json_integer(c->parallel_norms)) == 0;
    ok &= json_object_set_new(root, "qkv_grouped", json_boolean(c->qkv_grouped)) == 0;
    ok &= json_object_set_new(root, "post_norm", json_boolean(c->post_norm)) == 0;
    ok &= json_object_set_new(root, "final_norm", json_boolean(c->final_norm)) == 0;
    ok &= json_object_set_new(root, "embed_dim", json_integer(c->embed_dim)) == 0;
    ok &= json_object_set_new(rope_object, "interleaved", json_boolean(r->interleaved)) == 0;
    ok &= json_object_set_new(rope_object, "attention_factor", json_real(r->attention_factor)) == 0;
    ok &= json_object_set_new(rope_object, "use_long_factors", json_boolean(r->use_long_factors)) == 0;
    if (r->type != LLMRT_ROPE_LONGROPE) return ok;
    const char *keys[2] = {"short_factor", "long_factor"};
    const float *lists[2] = {r->short_factor, r->long_factor};
    for (int k = 0; k < 2; k++) {
        json_t *list = json_array();
        ok &= list != NULL;
        for (int32_t i = 0; list && i < r->rotary_dim / 2 && i < LLMRT_ROPE_MAX_FACTORS; i++)
            ok &= json_array_append_new(list, json_real(lists[k][i])) == 0;
        if (list) ok &= json_object_set_new(rope_object, keys[k], list) == 0;
    }
    return ok;
}

llmrt_status llmrt_layout_fields_from_json(const char *source, const json_t *root, const json_t *rope_object,
                                           llmrt_model_config *c) {
    llmrt_rope_config *r = &c->rope;
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "parallel_residual", 0, &c->parallel_residual));
    LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("parallel_norms"), 0, 0, 0, 2, &c->parallel_norms));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "qkv_grouped", 0, &c->qkv_grouped));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "post_norm", 0, &c->post_norm));
    LLMRT_TRY(llmrt_hf_get_bool(source, root, "final_norm", 1, &c->final_norm));
    LLMRT_TRY(llmrt_hf_get_int(source, root, ALIASES("embed_dim"), 0, c->hidden_size, 0, 1 << 17, &c->embed_dim));
    LLMRT_TRY(llmrt_hf_get_bool(source, rope_object, "interleaved", 0, &r->interleaved));
    LLMRT_TRY(llmrt_hf_get_float(source, rope_object, ALIASES("attention_factor"), 1.0f, &r->attention_factor));
    LLMRT_TRY(llmrt_hf_get_bool(source, rope_object, "use_long_factors", 0, &r->use_long_factors));
    if (r->type != LLMRT_ROPE_LONGROPE) return LLMRT_OK;
    if (r->rotary_dim <= 0 || r->rotary_dim / 2 > LLMRT_ROPE_MAX_FACTORS || !(r->attention_factor > 0.0f) ||
        r->original_max_position_embeddings <= 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'rope': longrope needs rotary_dim <= %d, attention_factor > 0 "
                           "and original_max_position_embeddings > 0", source, 2 * LLMRT_ROPE_MAX_FACTORS);
    LLMRT_TRY(factor_list(source, "rope", "short_factor", rope_object, r->rotary_dim / 2, r->short_factor));
    return factor_list(source, "rope", "long_factor", rope_object, r->rotary_dim / 2, r->long_factor);
}
