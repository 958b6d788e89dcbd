#include "models/models.h"

#include <string.h>

static const llmrt_model_family *const families[] = {
    &llmrt_family_llama,
    &llmrt_family_mistral,
    &llmrt_family_qwen2,
    &llmrt_family_gpt2,
    &llmrt_family_mixtral,
    /* attention variants */
    &llmrt_family_qwen3,
    &llmrt_family_gemma,
    &llmrt_family_gemma2,
    &llmrt_family_gemma3,
    &llmrt_family_mpt,
    &llmrt_family_bloom,
    /* rotary and layout variants */
    &llmrt_family_gpt_neox,
    &llmrt_family_gptj,
    &llmrt_family_falcon,
    &llmrt_family_opt,
    &llmrt_family_gpt_bigcode,
    &llmrt_family_glm,
    &llmrt_family_chatglm,
    &llmrt_family_phi3,
    /* encoders */
    &llmrt_family_bert,
    &llmrt_family_bert_classifier,
};

int llmrt_model_is_encoder(const char *architecture) {
    return strcmp(architecture, llmrt_family_bert.architecture) == 0 ||
           strcmp(architecture, llmrt_family_bert_classifier.architecture) == 0;
}

const char *llmrt_model_supported_list(void) {
    return "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GPT2LMHeadModel"
           ", MixtralForCausalLM"
           /* attention variants */
           ", Qwen3ForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, MptForCausalLM"
           ", BloomForCausalLM"
           /* rotary and layout variants */
           ", GPTNeoXForCausalLM, GPTJForCausalLM, FalconForCausalLM, OPTForCausalLM,"
           " GPTBigCodeForCausalLM, GlmForCausalLM, ChatGLMModel, Phi3ForCausalLM"
           ", BertModel, BertForSequenceClassification";
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
