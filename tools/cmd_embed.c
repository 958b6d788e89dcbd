/* llmrt embed: one input through an encoder engine (BERT) — its embedding
 * ([CLS] row or mean of the last hidden state), the pooler's output and,
 * for a classifier, the label logits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "llmrt/llmrt.h"
#include "llmrt/tokenizer.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: llmrt embed --engine FILE (--text TEXT | --ids 1,2,3) [--token-types 0,0,1]\n"
            "                   [--pooling cls|mean] [--json]\n\n"
            "  --engine FILE       an encoder engine (BertModel, BertForSequenceClassification)\n"
            "  --text TEXT         input text (the engine's tokenizer, with its special tokens)\n"
            "  --ids LIST          input token ids instead of text\n"
            "  --token-types LIST  segment ids, one per token (default all 0)\n"
            "  --pooling P         cls: the first row of the last hidden state (default); mean: the mean\n"
            "  --threads N         CPU threads\n"
            "  --device N          GPU ordinal (default 0)\n"
            CLI_ENGINE_BACKEND_HELP
            CLI_ENGINE_CPU_PRECISION_HELP
            "  --json              print {\"embedding\", \"pooled\", \"logits\", \"num_tokens\"}\n");
}

static void print_floats(const char *key, const float *v, int32_t n, int json) {
    if (json) printf(", \"%s\": [", key);
    for (int32_t i = 0; i < n; i++) printf(i ? (json ? ", %.9g" : ",%.9g") : "%.9g", (double)v[i]);
    fputs(json ? "]" : "\n", stdout);
}

int cmd_embed(int argc, char **argv) {
    cli_args a;
    cli_begin(&a, "llmrt embed", argc, argv);
    const char *engine_path = NULL, *text = NULL, *pooling_name = "cls";
    int32_t *ids = NULL, *types = NULL, num_ids = 0, num_types = 0;
    int json = 0;
    llmrt_engine_options eo;
    llmrt_engine_options_init(&eo);
    const char *opt;
    while ((opt = cli_next(&a))) {
        int64_t x;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout);
            free(ids), free(types);
            return 0;
        } else if (strcmp(opt, "--engine") == 0) engine_path = cli_value(&a, opt);
        else if (strcmp(opt, "--text") == 0) text = cli_value(&a, opt);
        else if (strcmp(opt, "--ids") == 0) {
            const char *v = cli_value(&a, opt);
            free(ids), ids = NULL;
            if (v) cli_int_list(&a, opt, v, &ids, &num_ids);
        } else if (strcmp(opt, "--token-types") == 0) {
            const char *v = cli_value(&a, opt);
            free(types), types = NULL;
            if (v) cli_int_list(&a, opt, v, &types, &num_types);
        } else if (strcmp(opt, "--pooling") == 0) pooling_name = cli_value(&a, opt);
        else if (strcmp(opt, "--threads") == 0) { if (cli_int(&a, opt, 1, 1024, &x)) eo.num_threads = (int32_t)x; }
        else if (strcmp(opt, "--device") == 0) { if (cli_int(&a, opt, 0, 1024, &x)) eo.device = (int32_t)x; }
        else if (cli_engine_backend(&a, opt, &eo.backend)) continue;
        else if (cli_engine_cpu_precision(&a, opt, &eo.cpu_precision)) continue;
        else if (strcmp(opt, "--json") == 0) json = 1;
        else cli_fail(&a, "unknown option '%s' (see llmrt embed --help)", opt);
    }
    llmrt_pooling pooling = LLMRT_POOLING_CLS;
    if (!a.failed && !engine_path) cli_fail(&a, "--engine is required");
    else if (!a.failed && !text == !ids) cli_fail(&a, "give exactly one of --text and --ids");
    else if (!a.failed && pooling_name && strcmp(pooling_name, "mean") == 0) pooling = LLMRT_POOLING_MEAN;
    else if (!a.failed && (!pooling_name || strcmp(pooling_name, "cls") != 0))
        cli_fail(&a, "--pooling must be cls or mean");
    if (!a.failed && text && !cli_check_utf8("llmrt embed", "--text", text, strlen(text))) a.failed = 1;
    if (a.failed) {
        free(ids), free(types);
        return 2;
    }

    int code = 1;
    llmrt_engine *engine = NULL;
    llmrt_tokenizer *tok = NULL;
    llmrt_encoding enc = {0};
    float *embedding = NULL;
    if (llmrt_engine_load(engine_path, &eo, &engine) != LLMRT_OK) goto fail;
    if (!llmrt_engine_is_encoder(engine)) {
        fprintf(stderr, "llmrt embed: %s is a decoder engine; embeddings need an encoder (BertModel, "
                        "BertForSequenceClassification)\n", engine_path);
        goto done;
    }
    if (text) {
        size_t count = 0;
        if (llmrt_engine_tokenizer(engine, &tok) != LLMRT_OK) goto fail;
        if (llmrt_tokenizer_encode(tok, text, strlen(text), LLMRT_ENCODE_ADD_SPECIAL, &ids, &count) != LLMRT_OK)
            goto fail;
        num_ids = (int32_t)count;
    }
    if (types && num_types != num_ids) {
        fprintf(stderr, "llmrt embed: --token-types has %d ids for %d tokens\n", num_types, num_ids);
        code = 2;
        goto done;
    }
    if (llmrt_encode(engine, ids, types, num_ids, &enc) != LLMRT_OK) goto fail;
    embedding = malloc((size_t)enc.hidden_size * sizeof *embedding);
    if (!embedding) goto done;
    if (llmrt_encoding_pool(&enc, pooling, embedding) != LLMRT_OK) goto fail;
    if (json) printf("{\"num_tokens\": %d, \"pooling\": \"%s\"", enc.num_tokens, pooling_name);
    print_floats("embedding", embedding, enc.hidden_size, json);
    print_floats("pooled", enc.pooled, enc.hidden_size, json);
    if (enc.num_labels > 0) print_floats("logits", enc.logits, enc.num_labels, json);
    if (json) fputs("}\n", stdout);
    code = 0;
    goto done;
fail:
    code = report_failure("embed");
done:
    free(embedding);
    llmrt_encoding_free(&enc);
    llmrt_tokenizer_free(tok);
    llmrt_engine_free(engine);
    free(ids), free(types);
    return code;
}
