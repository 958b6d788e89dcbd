/* llmrt perplexity: perplexity of a text under an engine, from llmrt's own
 * logits, over non-overlapping windows of W tokens (the text encoded without
 * special tokens; each window predicts its tokens 1..W-1) — the same
 * procedure tools/train_demo_model.py uses for PyTorch's figure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "launch.h"
#include "llmrt/llmrt.h"
#include "llmrt/tokenizer.h"

int cmd_perplexity(int argc, char **argv) {
    cli_args a;
    cli_begin(&a, "llmrt perplexity", argc, argv);
    const char *engine_path = NULL, *text_path = NULL;
    int64_t window = 256, max_tokens = 0;
    int json = 0;
    llmrt_engine_options eo;
    llmrt_engine_options_init(&eo);
    cli_launch launch = {0};
    const char *opt;
    while ((opt = cli_next(&a))) {
        int64_t x;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            printf("usage: llmrt perplexity [--engine FILE] [--text FILE] [--window N] [--max-tokens N] [--json]\n\n"
                   "  --engine FILE   default: the embedded demo model\n"
                   "  --text FILE     default: the demo model's validation.txt (UTF-8, at most 256 MiB)\n"
                   "  --window N      tokens per window (default 256)\n"
                   "  --max-tokens N  stop after N tokens of text (default: all)\n"
                   "  --threads N     CPU threads\n"
                   "  --device N      GPU ordinal (default 0)\n"
                   CLI_LAUNCH_HELP
                   "  --backend B     run on cpu or cuda (default: the backend the engine was built for)\n"
                   "  --cpu-precision P  16-bit engines on the CPU: auto (bf16 activations into bf16 linears\n"
                   "                  where the CPU has AVX512-BF16) or fp32 (exact)\n");
            return 0;
        } else if (strcmp(opt, "--engine") == 0) engine_path = cli_value(&a, opt);
        else if (strcmp(opt, "--text") == 0) text_path = cli_value(&a, opt);
        else if (strcmp(opt, "--window") == 0) cli_int(&a, opt, 2, 1 << 20, &window);
        else if (strcmp(opt, "--max-tokens") == 0) cli_int(&a, opt, 0, INT32_MAX, &max_tokens);
        else if (strcmp(opt, "--threads") == 0) { if (cli_int(&a, opt, 1, 1024, &x)) eo.num_threads = (int32_t)x; }
        else if (strcmp(opt, "--device") == 0) { if (cli_int(&a, opt, 0, 1024, &x)) eo.device = (int32_t)x; }
        else if (cli_engine_backend(&a, opt, &eo.backend)) continue;
        else if (cli_engine_cpu_precision(&a, opt, &eo.cpu_precision)) continue;
        else if (strcmp(opt, "--json") == 0) json = 1;
        else if (cli_launch_option(&a, opt, &launch)) continue;
        else cli_fail(&a, "unknown option '%s' (see llmrt perplexity --help)", opt);
    }
    if (a.failed) return 2;
    const int launched = cli_launch_ranks(&launch, "llmrt perplexity", argc, argv, engine_path, eo.backend,
                                          eo.num_threads);
    if (launched >= 0) return launched;
    char *default_engine = NULL, default_text[1024];
    if (!engine_path) {
        if (llmrt_default_engine(&default_engine) != LLMRT_OK) return report_failure("perplexity");
        engine_path = default_engine;
    }
    if (!text_path) {
        snprintf(default_text, sizeof default_text, "%s/validation.txt", llmrt_default_model_dir());
        text_path = default_text;
    }
    int code = 1;
    llmrt_engine *engine = NULL;
    llmrt_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    size_t text_size = 0, count = 0;
    char *text = cli_read_file(text_path, &text_size);
    if (!text) goto fail;
    if (!cli_check_utf8("llmrt perplexity", text_path, text, text_size)) goto done;
    if (llmrt_engine_load(engine_path, &eo, &engine) != LLMRT_OK) goto fail;
    if (llmrt_engine_rank(engine) > 0) { /* a rank of a split engine: rank 0 drives it */
        code = llmrt_engine_follow(engine) == LLMRT_OK ? 0 : report_failure("perplexity");
        goto done;
    }
    if (llmrt_engine_tokenizer(engine, &tok) != LLMRT_OK) goto fail;
    if (llmrt_tokenizer_encode(tok, text, text_size, LLMRT_ENCODE_PLAIN, &ids, &count) != LLMRT_OK) goto fail;
    if (max_tokens > 0 && (size_t)max_tokens < count) count = (size_t)max_tokens;
    if (window > llmrt_engine_max_seq_len(engine)) window = llmrt_engine_max_seq_len(engine);
    int32_t vocab = llmrt_engine_vocab_size(engine);
    logits = malloc((size_t)window * (size_t)vocab * sizeof *logits);
    if (!logits) goto done;
    double nll = 0;
    size_t predicted = 0;
    for (size_t start = 0; start + 1 < count; start += (size_t)window) {
        int32_t n = (int32_t)(count - start < (size_t)window ? count - start : (size_t)window);
        if (n < 2) break;
        if (llmrt_prompt_logits(engine, ids + start, n, logits) != LLMRT_OK) goto fail;
        for (int32_t t = 0; t + 1 < n; t++) {
            const float *row = logits + (size_t)t * (size_t)vocab;
            float max = row[0];
            for (int32_t v = 1; v < vocab; v++) max = row[v] > max ? row[v] : max;
            double sum = 0;
            for (int32_t v = 0; v < vocab; v++) sum += exp((double)row[v] - max);
            nll += log(sum) + max - row[ids[start + (size_t)t + 1]];
            predicted++;
        }
    }
    if (predicted == 0) {
        fprintf(stderr, "llmrt perplexity: %s: %zu tokens, too short for one prediction (at least 2 needed)\n",
                text_path, count);
        goto done;
    }
    double ppl = exp(nll / (double)predicted);
    if (!isfinite(nll)) {
        fprintf(stderr, "llmrt perplexity: %s: the model's logits are not finite (NaN or Inf)\n", engine_path);
        goto done;
    }
    if (json) printf("{\"perplexity\": %.6f, \"tokens\": %zu, \"window\": %lld}\n", ppl, predicted, (long long)window);
    else printf("perplexity %.4f over %zu predicted tokens (windows of %lld) of %s\n", ppl, predicted,
                (long long)window, text_path);
    code = 0;
    goto done;
fail:
    code = report_failure("perplexity");
done:
    free(logits);
    free(ids);
    free(text);
    llmrt_tokenizer_free(tok);
    llmrt_engine_free(engine);
    llmrt_free(default_engine);
    return code;
}
