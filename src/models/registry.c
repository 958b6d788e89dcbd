#include "models/models.h"

#include <string.h>

static const llmrt_model_family *const families[] = {
    &llmrt_family_llama,
    &llmrt_family_mistral,
    &llmrt_family_qwen2,
    &llmrt_family_gpt2,
};

const char *llmrt_model_supported_list(void) {
    return "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel";
}

llmrt_status llmrt_model_lookup(const char *architecture, const llmrt_model_family **out) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        if (strcmp(families[i]->architecture, architecture) == 0) {
            *out = families[i];
            return LLMRT_OK;
        }
    }
    *out = NULL;
    return llmrt_error(LLMRT_ERR_UNSUPPORTED, "architecture '%s' is not supported (supported: %s)", architecture,
                       llmrt_model_supported_list());
}

llmrt_model_inputs llmrt_model_declare_inputs(llmrt_graph *g) {
    int64_t tokens = LLMRT_DIM_TOKENS, logits = LLMRT_DIM_LOGITS;
    llmrt_model_inputs in;
    in.token_ids = llmrt_input(g, "token_ids", LLMRT_DTYPE_I32, 1, &tokens);
    in.positions = llmrt_input(g, "positions", LLMRT_DTYPE_I32, 1, &tokens);
    in.logits_indices = llmrt_input(g, "logits_indices", LLMRT_DTYPE_I32, 1, &logits);
    return in;
}
