/* Chat templates: for each tests/tokenizer/refs/chat_<family>.json, the
 * template must be recognised as that family and every conversation must
 * render exactly as transformers' apply_chat_template did (or fail where
 * the template raised). Needs no downloaded data. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt/tokenizer.h"
#include "test_util.h"

static const char *families[] = {"llama2", "mistral", "llama3", "qwen3", "chatml", "qwen2"};

static const char tiny_tokenizer[] =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"</s>\": 1, \"a\": 2}, \"merges\": []}}";

int main(void) {
    for (size_t k = 0; k < sizeof families / sizeof *families; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/tokenizer/refs/chat_%s.json", LLMRT_SOURCE_DIR, families[k]);
        json_error_t jerr;
        json_t *refs = json_load_file(path, 0, &jerr);
        CHECK_MSG(refs != NULL, "%s: reference file missing or invalid (%s): run tests/tokenizer/make_refs.py", path,
                  jerr.text);
        if (!refs) continue;
        llmrt_tokenizer *tok = NULL;
        CHECK_OK(llmrt_tokenizer_from_json(tiny_tokenizer, sizeof tiny_tokenizer - 1, "tiny", &tok));
        /* tokenizer_config.json as the checkpoint would have it */
        json_t *config = json_object();
        json_object_set(config, "chat_template", json_object_get(refs, "template"));
        json_object_set(config, "bos_token", json_object_get(refs, "bos_token"));
        json_object_set(config, "eos_token", json_object_get(refs, "eos_token"));
        char *config_text = json_dumps(config, 0);
        CHECK_OK(llmrt_tokenizer_set_config_json(tok, config_text, strlen(config_text)));
        free(config_text);
        json_decref(config);
        const char *family = llmrt_tokenizer_chat_template_family(tok);
        const char *want_family = strcmp(families[k], "mistral") == 0 ? "mistral" : families[k];
        CHECK_MSG(family && strcmp(family, want_family) == 0, "%s: detected as %s", families[k], family ? family : "none");
        json_t *cases = json_object_get(refs, "cases");
        int before = test_checks_failed;
        for (size_t i = 0; i < json_array_size(cases); i++) {
            json_t *c = json_array_get(cases, i);
            char *messages = json_dumps(json_object_get(c, "messages"), 0);
            json_t *thinking = json_object_get(c, "enable_thinking");
            llmrt_chat_options opt = {json_is_true(json_object_get(c, "add_generation_prompt")),
                                      thinking ? json_is_true(thinking) : -1};
            char *out = NULL;
            llmrt_status st = llmrt_tokenizer_apply_chat_template(tok, messages, &opt, &out);
            json_t *want = json_object_get(c, "rendered");
            if (want) {
                CHECK_MSG(st == LLMRT_OK && out && strcmp(out, json_string_value(want)) == 0,
                          "%s case %zu: rendered\n---- got:\n%s\n---- want:\n%s\n----", families[k], i,
                          out ? out : llmrt_last_error(), json_string_value(want));
            } else {
                CHECK_MSG(st != LLMRT_OK, "%s case %zu: rendered, but transformers raised \"%s\"", families[k], i,
                          json_string_value(json_object_get(c, "error")));
            }
            free(out);
            free(messages);
        }
        fprintf(stderr, "chat %s: %zu cases, %d failed checks (%s)\n", families[k], json_array_size(cases),
                test_checks_failed - before, json_string_value(json_object_get(refs, "renderer")));
        llmrt_tokenizer_free(tok);
        json_decref(refs);
    }
    return test_finish();
}
