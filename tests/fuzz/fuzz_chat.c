/* Fuzz target: the conversation a client sends (a JSON array of messages),
 * rendered with each built-in chat template family; the same bytes also as
 * tokenizer_config.json and as a chat template's text. A rendering is
 * well-formed UTF-8; a refusal says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "fuzz_check.h"
#include "llmrt/tokenizer.h"

static const char tiny_tokenizer[] =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"</s>\": 1, \"a\": 2}, \"merges\": []}}";

/* The fragments tok_chat_detect recognises each family by (the real
 * templates are in tests/tokenizer/refs/chat_*.json). */
static const struct {
    const char *family, *text;
} templates[] = {
    {"llama2", "{{ '<<SYS>>\\n' + system_message }}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"},
    {"mistral", "{{ '[INST] ' + message['content'] + ' [/INST]' }}{{ message['content'] + eos_token }}"},
    {"llama3", "<|start_header_id|>{{ message['content'] | trim }}{% if add_generation_prompt %}{% endif %}"},
    {"chatml", "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'}}"},
    {"qwen2", "<|im_start|>You are a helpful assistant.{% if messages[0]['role'] != 'system' %}{% endif %}"},
    {"qwen3", "<|im_start|>{{ reasoning_content }}</think>{% set last_query_index %}"},
};

static const char conversation[] = "[{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"},"
                                   " {\"role\": \"assistant\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"v\"}]";

static void check_render(const llmrt_tokenizer *tok, const char *messages, int variant) {
    const llmrt_chat_options opt = {variant & 1, variant % 3 - 1};
    char *out = NULL;
    llmrt_error_clear();
    if (llmrt_tokenizer_apply_chat_template(tok, messages, variant & 2 ? NULL : &opt, &out) != LLMRT_OK) {
        FUZZ_CHECK(!out && llmrt_last_error()[0] != '\0', "a refused rendering left text or no message");
        return;
    }
    FUZZ_CHECK(out && fuzz_utf8_valid(out, strlen(out)), "rendering: not UTF-8");
    free(out);
}

static llmrt_tokenizer *tiny(void) {
    llmrt_tokenizer *tok = NULL;
    FUZZ_CHECK(llmrt_tokenizer_from_json(tiny_tokenizer, sizeof tiny_tokenizer - 1, "tiny", &tok) == LLMRT_OK, "%s",
               llmrt_last_error());
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_log_set_level(LLMRT_LOG_ERROR);
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* the API takes C strings: the bytes up to the first NUL */
    llmrt_tokenizer *tok = tiny();
    for (size_t k = 0; k < sizeof templates / sizeof *templates; k++) {
        FUZZ_CHECK(llmrt_tokenizer_set_chat_template(tok, templates[k].text) == LLMRT_OK, "%s", llmrt_last_error());
        const char *family = llmrt_tokenizer_chat_template_family(tok);
        FUZZ_CHECK(family && strcmp(family, templates[k].family) == 0, "template %s detected as %s",
                   templates[k].family, family ? family : "none");
        for (int variant = 0; variant < 4; variant++) check_render(tok, text, variant);
    }
    llmrt_tokenizer_free(tok);
    /* the bytes as tokenizer_config.json, then as a template's text */
    tok = tiny();
    llmrt_error_clear();
    if (llmrt_tokenizer_set_config_json(tok, (const char *)data, size) != LLMRT_OK) {
        FUZZ_CHECK(llmrt_last_error()[0] != '\0', "a refused tokenizer_config.json without a message");
    } else {
        check_render(tok, conversation, 1);
    }
    (void)llmrt_tokenizer_bos_id(tok);
    (void)llmrt_tokenizer_eos_id(tok);
    llmrt_tokenizer_free(tok);
    tok = tiny();
    if (llmrt_tokenizer_set_chat_template(tok, text) == LLMRT_OK) check_render(tok, conversation, 1);
    llmrt_tokenizer_free(tok);
    free(text);
    return 0;
}
