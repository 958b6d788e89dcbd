/* Fuzz target: config.json text. Accepted configs must satisfy the
 * invariants builders rely on and survive the round trip through the engine's
 * config JSON unchanged; the same bytes are also fed to that engine-side
 * parser directly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "import/hf_config.h"

static void check_invariants(const llmrt_model_config *c) {
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->num_layers <= 0 || c->num_heads <= 0) abort();
    if (c->num_kv_heads <= 0 || c->num_heads % c->num_kv_heads != 0) abort();
    if (c->head_dim <= 0 || c->intermediate_size <= 0 || c->max_position_embeddings <= 0) abort();
    if (!(c->norm_eps > 0.0f)) abort();
    if (c->num_eos_tokens < 0 || c->num_eos_tokens > LLMRT_MAX_EOS_TOKENS) abort();
    if (memchr(c->architecture, 0, sizeof c->architecture) == NULL) abort();
    if (c->rope.type != LLMRT_ROPE_NONE &&
        (!(c->rope.theta > 0.0f) || c->rope.rotary_dim <= 0 || c->rope.rotary_dim % 2 || c->rope.rotary_dim > c->head_dim))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_model_config config;
    llmrt_log_set_level(LLMRT_LOG_ERROR); /* warnings about odd inputs are expected */
    llmrt_error_clear();
    if (llmrt_hf_config_parse((const char *)data, size, "fuzz.json", &config) == LLMRT_OK) {
        check_invariants(&config);
        char *json = llmrt_model_config_to_json(&config);
        if (!json) abort();
        llmrt_model_config back;
        if (llmrt_model_config_from_json(json, strlen(json), &back) != LLMRT_OK) abort();
        if (memcmp(&config, &back, sizeof back) != 0) abort();
        free(json);
    } else if (llmrt_last_error()[0] == '\0') {
        abort();
    }
    if (llmrt_model_config_from_json((const char *)data, size, &config) == LLMRT_OK) check_invariants(&config);
    return 0;
}
