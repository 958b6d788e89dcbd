/* Chat templates. Rather than interpret Jinja, llmrt recognises the
 * templates of the families it supports by distinctive fragments of their
 * text and renders them with built-in code that reproduces what
 * transformers' apply_chat_template produces for them, character for
 * character (tests/tokenizer compares against recorded renderings).
 * An unrecognised template is an error, never a guess.
 *
 * Recognised: LLaMA-2 chat, Mistral Instruct v0.1/v0.2, LLaMA-3 Instruct
 * (and the variant that always appends the assistant header), ChatML,
 * Qwen2 (ChatML with its default system prompt), Qwen3 (thinking). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

tok_chat_family tok_chat_detect(const char *t) {
    if (!t) return CHAT_NONE;
    int tools = strstr(t, "tools") != NULL || strstr(t, "date_string") != NULL;
    if (strstr(t, "<|im_start|>")) {
        if (strstr(t, "reasoning_content") && strstr(t, "</think>") && strstr(t, "last_query_index")) return CHAT_QWEN3;
        if (tools) return CHAT_NONE; /* Qwen2.5 and later: tool calling templates */
        if (strstr(t, "You are a helpful assistant.") && strstr(t, "messages[0]['role'] != 'system'")) return CHAT_QWEN2;
        if (strstr(t, "'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'") &&
            !strstr(t, "You are"))
            return CHAT_CHATML;
        return CHAT_NONE;
    }
    if (strstr(t, "<|start_header_id|>") && strstr(t, "message['content'] | trim") && !tools)
        return strstr(t, "add_generation_prompt") ? CHAT_LLAMA3 : CHAT_LLAMA3_ALWAYS_PROMPT;
    if (strstr(t, "<<SYS>>\\n' + system_message") && strstr(t, "[INST] ' + content.strip() + ' [/INST]"))
        return CHAT_LLAMA2;
    if (strstr(t, "'[INST] ' + message['content'] + ' [/INST]'") && strstr(t, "message['content'] + eos_token") &&
        !strstr(t, "system"))
        return CHAT_MISTRAL;
    return CHAT_NONE;
}

const char *tok_chat_family_name(tok_chat_family family) {
    switch (family) {
    case CHAT_NONE: return NULL;
    case CHAT_LLAMA2: return "llama2";
    case CHAT_LLAMA3: return "llama3";
    case CHAT_LLAMA3_ALWAYS_PROMPT: return "llama3";
    case CHAT_MISTRAL: return "mistral";
    case CHAT_CHATML: return "chatml";
    case CHAT_QWEN2: return "qwen2";
    case CHAT_QWEN3: return "qwen3";
    }
    return NULL;
}

typedef struct message {
    const char *role, *content, *reasoning; /* reasoning: NULL when absent or null */
    size_t content_len, reasoning_len;
} message;

/* A string view, for the Python string methods the templates call. */
typedef struct view {
    const char *s;
    size_t len;
} view;

/* Python's str.isspace() characters, which str.strip() and Jinja's trim remove. */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || tok_is_whitespace(c);
}

static view py_strip(view v, int left, int right) {
    while (left && v.len) {
        uint32_t cp;
        size_t n = tok_utf8_decode(v.s, v.len, &cp);
        if (!n || !py_space(cp)) break;
        v.s += n;
        v.len -= n;
    }
    while (right && v.len) {
        size_t k = v.len - 1;
        while (k > 0 && ((uint8_t)v.s[k] & 0xC0) == 0x80) k--;
        uint32_t cp;
        size_t n = tok_utf8_decode(v.s + k, v.len - k, &cp);
        if (!n || !py_space(cp)) break;
        v.len = k;
    }
    return v;
}

/* str.strip('\n') and friends. */
static view strip_newlines(view v, int left, int right) {
    while (left && v.len && v.s[0] == '\n') v.s++, v.len--;
    while (right && v.len && v.s[v.len - 1] == '\n') v.len--;
    return v;
}

static const char *find(view v, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= v.len; i++)
        if (memcmp(v.s + i, needle, n) == 0) return v.s + i;
    return NULL;
}

static const char *find_last(view v, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = v.len + 1; i-- > n;)
        if (memcmp(v.s + i - n, needle, n) == 0) return v.s + i - n;
    return NULL;
}

static int starts_with(view v, const char *p) { return v.len >= strlen(p) && memcmp(v.s, p, strlen(p)) == 0; }
static int ends_with(view v, const char *p) {
    size_t n = strlen(p);
    return v.len >= n && memcmp(v.s + v.len - n, p, n) == 0;
}

typedef struct text_out {
    tok_buf buf;
    llmrt_status st;
} text_out;

static void put(text_out *o, const char *s) {
    if (o->st == LLMRT_OK) o->st = tok_buf_append(&o->buf, s, strlen(s));
}

static void put_view(text_out *o, view v) {
    if (o->st == LLMRT_OK) o->st = tok_buf_append(&o->buf, v.s, v.len);
}

static view content_of(const message *m) { return (view){m->content, m->content_len}; }

static llmrt_status alternate_error(void) {
    return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                       "chat template: Conversation roles must alternate user/assistant/user/assistant/...");
}

static llmrt_status render_llama2(const message *m, size_t n, const char *bos, const char *eos, text_out *o) {
    size_t first = 0;
    const message *system = NULL;
    if (n > 0 && strcmp(m[0].role, "system") == 0) {
        system = &m[0];
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        size_t index = i - first;
        if ((strcmp(m[i].role, "user") == 0) != (index % 2 == 0)) return alternate_error();
        tok_buf content = {0};
        view c = content_of(&m[i]);
        if (index == 0 && system) {
            llmrt_status st = tok_buf_append(&content, "<<SYS>>\n", 8);
            if (st == LLMRT_OK) st = tok_buf_append(&content, system->content, system->content_len);
            if (st == LLMRT_OK) st = tok_buf_append(&content, "\n<</SYS>>\n\n", 11);
            if (st == LLMRT_OK) st = tok_buf_append(&content, c.s, c.len);
            if (st != LLMRT_OK) {
                tok_buf_free(&content);
                return st;
            }
            c = (view){content.data, content.len};
        }
        if (strcmp(m[i].role, "user") == 0) {
            put(o, bos);
            put(o, "[INST] ");
            put_view(o, py_strip(c, 1, 1));
            put(o, " [/INST]");
        } else if (strcmp(m[i].role, "assistant") == 0) {
            put(o, " ");
            put_view(o, py_strip(c, 1, 1));
            put(o, " ");
            put(o, eos);
        }
        tok_buf_free(&content);
    }
    return o->st;
}

static llmrt_status render_mistral(const message *m, size_t n, const char *bos, const char *eos, text_out *o) {
    put(o, bos);
    for (size_t i = 0; i < n; i++) {
        if ((strcmp(m[i].role, "user") == 0) != (i % 2 == 0)) return alternate_error();
        if (strcmp(m[i].role, "user") == 0) {
            put(o, "[INST] ");
            put_view(o, content_of(&m[i]));
            put(o, " [/INST]");
        } else if (strcmp(m[i].role, "assistant") == 0) {
            put_view(o, content_of(&m[i]));
            put(o, eos);
        } else {
            return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "chat template: Only user and assistant roles are supported!");
        }
    }
    return o->st;
}

static llmrt_status render_llama3(const message *m, size_t n, const char *bos, int generation_prompt, text_out *o) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0) put(o, bos);
        put(o, "<|start_header_id|>");
        put(o, m[i].role);
        put(o, "<|end_header_id|>\n\n");
        put_view(o, py_strip(content_of(&m[i]), 1, 1));
        put(o, "<|eot_id|>");
    }
    if (generation_prompt) put(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return o->st;
}

static llmrt_status render_chatml(const message *m, size_t n, int default_system, int generation_prompt,
                                  text_out *o) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && default_system && strcmp(m[0].role, "system") != 0)
            put(o, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n");
        put(o, "<|im_start|>");
        put(o, m[i].role);
        put(o, "\n");
        put_view(o, content_of(&m[i]));
        put(o, "<|im_end|>\n");
    }
    if (generation_prompt) put(o, "<|im_start|>assistant\n");
    return o->st;
}

static llmrt_status render_qwen3(const message *m, size_t n, const llmrt_chat_options *opt, text_out *o) {
    if (n > 0 && strcmp(m[0].role, "system") == 0) {
        put(o, "<|im_start|>system\n");
        put_view(o, content_of(&m[0]));
        put(o, "<|im_end|>\n");
    }
    /* The last user query that is not a wrapped tool response. */
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        view c = content_of(&m[k]);
        if (strcmp(m[k].role, "user") == 0 && !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i].role;
        view c = content_of(&m[i]);
        if (strcmp(role, "user") == 0 || (strcmp(role, "system") == 0 && i != 0)) {
            put(o, "<|im_start|>");
            put(o, role);
            put(o, "\n");
            put_view(o, c);
            put(o, "<|im_end|>\n");
        } else if (strcmp(role, "assistant") == 0) {
            view content = c, reasoning = {"", 0};
            if (m[i].reasoning) {
                reasoning = (view){m[i].reasoning, m[i].reasoning_len};
            } else if (find(c, "</think>")) {
                const char *last = find_last(c, "</think>");
                content = strip_newlines((view){last + 8, (size_t)(c.s + c.len - last - 8)}, 1, 0);
                const char *first = find(c, "</think>");
                view before = strip_newlines((view){c.s, (size_t)(first - c.s)}, 0, 1);
                const char *open = find_last(before, "<think>");
                if (open) before = (view){open + 7, (size_t)(before.s + before.len - open - 7)};
                reasoning = strip_newlines(before, 1, 0);
            }
            int is_last = i + 1 == n;
            put(o, "<|im_start|>");
            put(o, role);
            if (i > last_query && (is_last || reasoning.len > 0)) {
                put(o, "\n<think>\n");
                put_view(o, strip_newlines(reasoning, 1, 1));
                put(o, "\n</think>\n\n");
                put_view(o, strip_newlines(content, 1, 0));
            } else {
                put(o, "\n");
                put_view(o, content);
            }
            put(o, "<|im_end|>\n");
        } else if (strcmp(role, "tool") == 0) {
            if (i == 0 || strcmp(m[i - 1].role, "tool") != 0) put(o, "<|im_start|>user");
            put(o, "\n<tool_response>\n");
            put_view(o, c);
            put(o, "\n</tool_response>");
            if (i + 1 == n || strcmp(m[i + 1].role, "tool") != 0) put(o, "<|im_end|>\n");
        }
    }
    if (opt->add_generation_prompt) {
        put(o, "<|im_start|>assistant\n");
        if (opt->enable_thinking == 0) put(o, "<think>\n\n</think>\n\n");
    }
    return o->st;
}

static llmrt_status parse_messages(json_t *root, message **out, size_t *count) {
    if (!json_is_array(root))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "chat messages: expected a JSON array of {role, content}");
    size_t n = json_array_size(root);
    message *m = calloc(n ? n : 1, sizeof *m);
    if (!m) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "chat messages: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(root, i);
        json_t *role = json_object_get(item, "role"), *content = json_object_get(item, "content");
        json_t *reasoning = json_object_get(item, "reasoning_content");
        json_t *tool_calls = json_object_get(item, "tool_calls");
        llmrt_status st = LLMRT_OK;
        if (!json_is_object(item)) st = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "chat messages[%zu]: expected an object", i);
        else if (!json_is_string(role)) st = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "chat messages[%zu].role: expected a string", i);
        else if (!json_is_string(content))
            st = llmrt_error(LLMRT_ERR_UNSUPPORTED, "chat messages[%zu].content: only string content is supported", i);
        else if (reasoning && !json_is_null(reasoning) && !json_is_string(reasoning))
            st = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "chat messages[%zu].reasoning_content: expected a string", i);
        else if (tool_calls && !json_is_null(tool_calls) && !(json_is_array(tool_calls) && json_array_size(tool_calls) == 0))
            st = llmrt_error(LLMRT_ERR_UNSUPPORTED, "chat messages[%zu].tool_calls: tool calls are not supported", i);
        if (st != LLMRT_OK) {
            free(m);
            return st;
        }
        m[i].role = json_string_value(role);
        m[i].content = json_string_value(content);
        m[i].content_len = json_string_length(content);
        if (json_is_string(reasoning)) {
            m[i].reasoning = json_string_value(reasoning);
            m[i].reasoning_len = json_string_length(reasoning);
        }
    }
    *out = m;
    *count = n;
    return LLMRT_OK;
}

llmrt_status llmrt_tokenizer_apply_chat_template(const llmrt_tokenizer *tok, const char *messages_json,
                                                 const llmrt_chat_options *options, char **out_text) {
    if (!tok || !messages_json || !out_text)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "apply_chat_template: NULL argument");
    *out_text = NULL;
    llmrt_chat_options defaults = {0, -1};
    const llmrt_chat_options *opt = options ? options : &defaults;
    if (!tok->chat_template)
        return llmrt_error(LLMRT_ERR_NOT_FOUND, "%s: no chat template (tokenizer_config.json has no chat_template)",
                           tok->name);
    if (tok->chat_family == CHAT_NONE)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: chat template not recognised (supported: LLaMA-2, LLaMA-3, "
                                                  "Mistral, ChatML, Qwen2, Qwen3)", tok->name);
    json_error_t jerr;
    json_t *root = json_loads(messages_json, 0, &jerr);
    if (!root)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "chat messages: invalid JSON at line %d column %d: %s",
                           jerr.line, jerr.column, jerr.text);
    message *m = NULL;
    size_t n = 0;
    llmrt_status st = parse_messages(root, &m, &n);
    text_out o = {{0}, LLMRT_OK};
    const char *bos = tok->bos_token ? tok->bos_token : "";
    const char *eos = tok->eos_token ? tok->eos_token : "";
    if (st == LLMRT_OK) {
        switch (tok->chat_family) {
        case CHAT_LLAMA2: st = render_llama2(m, n, bos, eos, &o); break;
        case CHAT_MISTRAL: st = render_mistral(m, n, bos, eos, &o); break;
        case CHAT_LLAMA3: st = render_llama3(m, n, bos, opt->add_generation_prompt, &o); break;
        case CHAT_LLAMA3_ALWAYS_PROMPT: st = render_llama3(m, n, bos, 1, &o); break;
        case CHAT_CHATML: st = render_chatml(m, n, 0, opt->add_generation_prompt, &o); break;
        case CHAT_QWEN2: st = render_chatml(m, n, 1, opt->add_generation_prompt, &o); break;
        case CHAT_QWEN3: st = render_qwen3(m, n, opt, &o); break;
        case CHAT_NONE: break;
        }
    }
    if (st == LLMRT_OK) st = o.st;
    if (st == LLMRT_OK) st = tok_buf_append(&o.buf, "", 0);
    free(m);
    json_decref(root);
    if (st != LLMRT_OK) {
        tok_buf_free(&o.buf);
        return st;
    }
    *out_text = o.buf.data;
    return LLMRT_OK;
}
