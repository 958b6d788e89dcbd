/* Loading a tokenizer from tokenizer.json (and tokenizer_config.json), and
 * the vocabulary calls of the public API. Every field read is checked; an
 * error names its JSON path, e.g. "tokenizer.json: $.model.merges[12]: ...". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "tokenizer/tokenizer_internal.h"

llmrt_status tok_json_string(json_t *obj, const char *key, const char *where, int required, const char **out,
                             size_t *len) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return llmrt_error(LLMRT_ERR_FORMAT, "%s.%s: missing", where, key);
        *out = NULL;
        if (len) *len = 0;
        return LLMRT_OK;
    }
    if (!json_is_string(v)) return llmrt_error(LLMRT_ERR_FORMAT, "%s.%s: expected a string", where, key);
    *out = json_string_value(v);
    if (len) *len = json_string_length(v);
    return LLMRT_OK;
}

int tok_json_bool(json_t *obj, const char *key, int fallback) {
    json_t *v = json_object_get(obj, key);
    if (json_is_boolean(v)) return json_is_true(v);
    return fallback;
}

char *tok_dup_bytes(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static llmrt_status parse_component(json_t *node, const char *where, const tok_component_kind *kind, char *items,
                                    size_t *count) {
    if (json_is_null(node)) return LLMRT_OK;
    if (!json_is_object(node)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: expected an object", where);
    const char *type = NULL;
    LLMRT_TRY(tok_json_string(node, "type", where, 1, &type, NULL));
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(node, kind->sequence_key);
        if (!json_is_array(list))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.%s: expected an array", where, kind->sequence_key);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[300];
            snprintf(sub, sizeof sub, "%s.%s[%zu]", where, kind->sequence_key, i);
            LLMRT_TRY(parse_component(json_array_get(list, i), sub, kind, items, count));
        }
        return LLMRT_OK;
    }
    if (*count >= kind->capacity)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: more than %zu %s", where, kind->capacity, kind->noun);
    /* counted before it is filled, so that a failure part-way releases what it holds */
    return kind->parse(node, type, where, items + (*count)++ * kind->item_size);
}

llmrt_status tok_components_parse(json_t *node, const char *where, const tok_component_kind *kind, void **out,
                                  size_t *count) {
    *out = NULL;
    *count = 0;
    if (!node || json_is_null(node)) return LLMRT_OK;
    char *items = calloc(kind->capacity, kind->item_size);
    if (!items) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
    size_t n = 0;
    llmrt_status st = parse_component(node, where, kind, items, &n);
    if (st != LLMRT_OK) {
        kind->free_list(items, n);
        return st;
    }
    *out = items;
    *count = n;
    return LLMRT_OK;
}

int32_t tok_added_lookup(const llmrt_tokenizer *tok, const char *s, size_t len) {
    for (size_t i = 0; i < tok->added_count; i++)
        if (tok->added[i].len == len && memcmp(tok->added[i].content, s, len) == 0) return tok->added[i].id;
    return -1;
}

static llmrt_status parse_added_tokens(llmrt_tokenizer *tok, json_t *list, const char *where) {
    if (!list || json_is_null(list)) return LLMRT_OK;
    if (!json_is_array(list)) return llmrt_error(LLMRT_ERR_FORMAT, "%s.added_tokens: expected an array", where);
    size_t n = json_array_size(list);
    tok->added = calloc(n ? n : 1, sizeof *tok->added);
    if (!tok->added) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s.added_tokens: out of memory", where);
    for (size_t i = 0; i < n; i++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.added_tokens[%zu]", where, i);
        json_t *item = json_array_get(list, i);
        if (!json_is_object(item)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: expected an object", sub);
        json_t *id = json_object_get(item, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX - 1)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.id: expected a non-negative integer", sub);
        const char *content = NULL;
        size_t len = 0;
        LLMRT_TRY(tok_json_string(item, "content", sub, 1, &content, &len));
        tok_added_token *t = &tok->added[tok->added_count++];
        t->content = tok_dup_bytes(content, len);
        if (!t->content) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", sub);
        t->len = len;
        t->id = (int32_t)json_integer_value(id);
        t->special = tok_json_bool(item, "special", 0);
        t->lstrip = tok_json_bool(item, "lstrip", 0);
        t->rstrip = tok_json_bool(item, "rstrip", 0);
        t->single_word = tok_json_bool(item, "single_word", 0);
        /* HF's default: normalized unless special. */
        t->normalized = tok_json_bool(item, "normalized", !t->special);
    }
    return LLMRT_OK;
}

/* id → token strings for the model's vocabulary and the added tokens. */
static llmrt_status build_id_table(llmrt_tokenizer *tok, const char *where) {
    size_t size = 0;
    const tok_strmap *v = &tok->bpe.vocab;
    for (uint32_t e = 0; e < v->count; e++)
        if ((size_t)v->entries[e].value + 1 > size) size = (size_t)v->entries[e].value + 1;
    for (size_t i = 0; i < tok->added_count; i++)
        if ((size_t)tok->added[i].id + 1 > size) size = (size_t)tok->added[i].id + 1;
    if (size > (size_t)16 << 20)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: ids up to %zu: implausibly large vocabulary", where, size);
    tok->vocab_size = size;
    tok->id_to_token = calloc(size ? size : 1, sizeof *tok->id_to_token);
    tok->id_is_special = calloc(size ? size : 1, 1);
    if (!tok->id_to_token || !tok->id_is_special)
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu ids", where, size);
    for (uint32_t e = 0; e < v->count; e++) {
        const struct tok_strmap_entry *entry = &v->entries[e];
        char *s = tok_dup_bytes(v->pool.data + entry->offset, entry->len);
        if (!s) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
        free(tok->id_to_token[entry->value]);
        tok->id_to_token[entry->value] = s;
    }
    /* Added tokens win, as HF's decode looks them up first. */
    for (size_t i = 0; i < tok->added_count; i++) {
        const tok_added_token *t = &tok->added[i];
        char *s = tok_dup_bytes(t->content, t->len);
        if (!s) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
        free(tok->id_to_token[t->id]);
        tok->id_to_token[t->id] = s;
        tok->id_is_special[t->id] = (uint8_t)t->special;
    }
    return LLMRT_OK;
}

/* See the comment on split_before_metaspace in tokenizer_internal.h. */
static int metaspace_split_is_safe(const llmrt_tokenizer *tok) {
    if (tok->pretokenizer_count != 0 || tok->bpe.byte_level || tok->bpe.ignore_merges) return 0;
    if (tok->bpe.continuing_prefix_len || tok->bpe.end_suffix_len) return 0;
    const tok_strmap *v = &tok->bpe.vocab;
    static const char meta[] = "\xE2\x96\x81"; /* ▁ */
    int uses_meta = 0;
    for (uint32_t e = 0; e < v->count; e++) {
        const char *s = v->pool.data + v->entries[e].offset;
        size_t len = v->entries[e].len;
        for (size_t i = 1; i + 3 <= len; i++) {
            if (memcmp(s + i, meta, 3) != 0) continue;
            uses_meta = 1;
            /* the char before this ▁: a non-▁ char there makes the cut unsafe */
            if (i < 3 || memcmp(s + i - 3, meta, 3) != 0) return 0;
        }
        if (len >= 3 && memcmp(s, meta, 3) == 0) uses_meta = 1;
    }
    return uses_meta;
}

static llmrt_status load_tokenizer(llmrt_tokenizer *tok, json_t *root, const char *where) {
    if (!json_is_object(root)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: expected a JSON object", where);
    json_t *model = json_object_get(root, "model");
    if (!model) return llmrt_error(LLMRT_ERR_FORMAT, "%s.model: missing", where);
    char sub[512];
    int byte_level = 0;
    snprintf(sub, sizeof sub, "%s.normalizer", where);
    LLMRT_TRY(tok_normalizers_parse(json_object_get(root, "normalizer"), sub, &tok->normalizers,
                                    &tok->normalizer_count));
    snprintf(sub, sizeof sub, "%s.pre_tokenizer", where);
    LLMRT_TRY(tok_pretokenizers_parse(json_object_get(root, "pre_tokenizer"), sub, &tok->pretokenizers,
                                      &tok->pretokenizer_count, &byte_level));
    snprintf(sub, sizeof sub, "%s.model", where);
    LLMRT_TRY(tok_bpe_parse(model, sub, &tok->bpe, byte_level));
    LLMRT_TRY(parse_added_tokens(tok, json_object_get(root, "added_tokens"), where));
    LLMRT_TRY(build_id_table(tok, where));
    LLMRT_TRY(tok_added_matcher_build(&tok->match_raw, tok->added, tok->added_count, 0, NULL, 0));
    LLMRT_TRY(tok_added_matcher_build(&tok->match_normalized, tok->added, tok->added_count, 1, tok->normalizers,
                                      tok->normalizer_count));
    snprintf(sub, sizeof sub, "%s.post_processor", where);
    LLMRT_TRY(tok_post_processor_parse(json_object_get(root, "post_processor"), sub, tok, &tok->post));
    snprintf(sub, sizeof sub, "%s.decoder", where);
    json_t *decoder = json_object_get(root, "decoder");
    tok->has_decoder = decoder && !json_is_null(decoder);
    LLMRT_TRY(tok_decoders_parse(decoder, sub, &tok->decoders, &tok->decoder_count));
    tok->split_before_metaspace = metaspace_split_is_safe(tok);
    json_t *truncation = json_object_get(root, "truncation"), *padding = json_object_get(root, "padding");
    if (truncation && !json_is_null(truncation))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.truncation: truncation is not supported (set it to null)", where);
    if (padding && !json_is_null(padding))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.padding: padding is not supported (set it to null)", where);
    return LLMRT_OK;
}

llmrt_status llmrt_tokenizer_from_json(const char *json_text, size_t len, const char *name, llmrt_tokenizer **out) {
    if (!out || (!json_text && len))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "llmrt_tokenizer_from_json: NULL argument");
    *out = NULL;
    if (!name) name = "tokenizer.json";
    json_error_t jerr;
    json_t *root = json_loadb(json_text ? json_text : "", len, JSON_ALLOW_NUL, &jerr);
    if (!root)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: invalid JSON at line %d column %d: %s", name, jerr.line,
                           jerr.column, jerr.text);
    llmrt_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        json_decref(root);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    }
    tok->name = tok_dup_bytes(name, strlen(name));
    /* Errors name JSONPath-style fields: "tokenizer.json: $.model.vocab: ...". */
    char where[256];
    snprintf(where, sizeof where, "%s: $", name);
    llmrt_status st = tok->name ? load_tokenizer(tok, root, where)
                                : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    json_decref(root);
    if (st != LLMRT_OK) {
        llmrt_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return LLMRT_OK;
}

static int is_directory(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

llmrt_status llmrt_tokenizer_load(const char *path, llmrt_tokenizer **out) {
    if (!path || !out) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "llmrt_tokenizer_load: NULL argument");
    *out = NULL;
    char *file = is_directory(path) ? llmrt_path_join(path, "tokenizer.json") : strdup(path);
    if (!file) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    char *text = NULL;
    size_t size = 0;
    llmrt_status st = llmrt_file_read_all(file, &text, &size);
    if (st == LLMRT_OK) st = llmrt_tokenizer_from_json(text, size, file, out);
    free(text);
    free(file);
    if (st != LLMRT_OK || !is_directory(path)) return st;
    char *config = llmrt_path_join(path, "tokenizer_config.json");
    if (config && llmrt_file_exists(config)) {
        st = llmrt_file_read_all(config, &text, &size);
        if (st == LLMRT_OK) st = llmrt_tokenizer_set_config_json(*out, text, size);
        if (st != LLMRT_OK) st = llmrt_error_context(st, "%s", config);
        free(text);
    }
    free(config);
    if (st != LLMRT_OK) {
        llmrt_tokenizer_free(*out);
        *out = NULL;
    }
    return st;
}

/* bos_token / eos_token: a string, or an AddedToken object {"content": ...}. */
static llmrt_status config_token(json_t *root, const char *key, char **out) {
    json_t *v = json_object_get(root, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!v || json_is_null(v)) return LLMRT_OK;
    if (!json_is_string(v))
        return llmrt_error(LLMRT_ERR_FORMAT, "tokenizer_config.json: %s: expected a string or {\"content\": ...}", key);
    free(*out);
    *out = tok_dup_bytes(json_string_value(v), json_string_length(v));
    return *out ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer_config.json: out of memory");
}

llmrt_status llmrt_tokenizer_set_config_json(llmrt_tokenizer *tok, const char *json_text, size_t len) {
    if (!tok || !json_text) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "set_config_json: NULL argument");
    json_error_t jerr;
    json_t *root = json_loadb(json_text, len, JSON_DECODE_INT_AS_REAL, &jerr); /* model_max_length can be 1e30 */
    if (!root)
        return llmrt_error(LLMRT_ERR_FORMAT, "tokenizer_config.json: invalid JSON at line %d column %d: %s",
                           jerr.line, jerr.column, jerr.text);
    llmrt_status st = LLMRT_OK;
    if (!json_is_object(root)) st = llmrt_error(LLMRT_ERR_FORMAT, "tokenizer_config.json: expected an object");
    if (st == LLMRT_OK) st = config_token(root, "bos_token", &tok->bos_token);
    if (st == LLMRT_OK) st = config_token(root, "eos_token", &tok->eos_token);
    json_t *tmpl = st == LLMRT_OK ? json_object_get(root, "chat_template") : NULL;
    if (json_is_array(tmpl)) { /* [{"name": "default", "template": ...}, ...] */
        json_t *chosen = NULL;
        size_t i;
        json_t *item;
        json_array_foreach(tmpl, i, item) {
            json_t *name = json_object_get(item, "name");
            if (json_is_string(name) && strcmp(json_string_value(name), "default") == 0)
                chosen = json_object_get(item, "template");
        }
        tmpl = chosen;
    }
    if (st == LLMRT_OK && tmpl && !json_is_null(tmpl)) {
        if (!json_is_string(tmpl)) st = llmrt_error(LLMRT_ERR_FORMAT, "tokenizer_config.json: chat_template: expected a string");
        else st = llmrt_tokenizer_set_chat_template(tok, json_string_value(tmpl));
    }
    json_decref(root);
    return st;
}

llmrt_status llmrt_tokenizer_set_chat_template(llmrt_tokenizer *tok, const char *chat_template) {
    if (!tok) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "set_chat_template: NULL tokenizer");
    free(tok->chat_template);
    tok->chat_template = NULL;
    tok->chat_family = CHAT_NONE;
    if (!chat_template) return LLMRT_OK;
    tok->chat_template = tok_dup_bytes(chat_template, strlen(chat_template));
    if (!tok->chat_template) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    tok->chat_family = tok_chat_detect(chat_template);
    return LLMRT_OK;
}

void llmrt_tokenizer_free(llmrt_tokenizer *tok) {
    if (!tok) return;
    tok_bpe_free(&tok->bpe);
    for (size_t i = 0; i < tok->added_count; i++) free(tok->added[i].content);
    free(tok->added);
    tok_added_matcher_free(&tok->match_raw);
    tok_added_matcher_free(&tok->match_normalized);
    tok_normalizers_free(tok->normalizers, tok->normalizer_count);
    tok_pretokenizers_free(tok->pretokenizers, tok->pretokenizer_count);
    free(tok->post.prefix);
    free(tok->post.suffix);
    tok_decoders_free(tok->decoders, tok->decoder_count);
    if (tok->id_to_token)
        for (size_t i = 0; i < tok->vocab_size; i++) free(tok->id_to_token[i]);
    free(tok->id_to_token);
    free(tok->id_is_special);
    free(tok->chat_template);
    free(tok->bos_token);
    free(tok->eos_token);
    free(tok->name);
    free(tok);
}

size_t llmrt_tokenizer_vocab_size(const llmrt_tokenizer *tok) { return tok ? tok->vocab_size : 0; }

int32_t llmrt_tokenizer_token_to_id(const llmrt_tokenizer *tok, const char *token) {
    if (!tok || !token) return -1;
    size_t len = strlen(token);
    int32_t id = tok_added_lookup(tok, token, len);
    return id >= 0 ? id : tok_strmap_get(&tok->bpe.vocab, token, len);
}

const char *llmrt_tokenizer_id_to_token(const llmrt_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || (size_t)id >= tok->vocab_size) return NULL;
    return tok->id_to_token[id];
}

int llmrt_tokenizer_is_special(const llmrt_tokenizer *tok, int32_t id) {
    if (!tok || id < 0 || (size_t)id >= tok->vocab_size) return 0;
    return tok->id_is_special[id];
}

static int32_t first_known(const llmrt_tokenizer *tok, const char *const *names) {
    for (; *names; names++) {
        int32_t id = llmrt_tokenizer_token_to_id(tok, *names);
        if (id >= 0) return id;
    }
    return -1;
}

int32_t llmrt_tokenizer_bos_id(const llmrt_tokenizer *tok) {
    if (!tok) return -1;
    if (tok->bos_token) return llmrt_tokenizer_token_to_id(tok, tok->bos_token);
    static const char *const names[] = {"<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>", NULL};
    return first_known(tok, names);
}

int32_t llmrt_tokenizer_eos_id(const llmrt_tokenizer *tok) {
    if (!tok) return -1;
    if (tok->eos_token) return llmrt_tokenizer_token_to_id(tok, tok->eos_token);
    static const char *const names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>", NULL};
    return first_known(tok, names);
}

const char *llmrt_tokenizer_chat_template_family(const llmrt_tokenizer *tok) {
    return tok ? tok_chat_family_name(tok->chat_family) : NULL;
}
