/* llmrt run: generate from an engine, from token ids or text. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "launch.h"
#include "llmrt/llmrt.h"
#include "llmrt/tokenizer.h"
#include "run_output.h"
#include "run_requests.h"

static void run_usage(FILE *out) {
    fprintf(out,
            "usage: llmrt run [--engine FILE] (--prompt TEXT | --prompt-ids 1,2,3 | --chat FILE.json) [options]\n\n"
            "  --engine FILE        the engine to run (default: the embedded demo model, built on first use)\n"
            "  --prompt TEXT        text prompt (uses the engine's embedded tokenizer)\n"
            "  --prompt-ids LIST    prompt token ids, comma-separated\n"
            "  --chat FILE          a JSON array of {role, content} messages, rendered with the chat template\n"
            "  --requests FILE      JSONL, one request per line (prompt or prompt_ids, OpenAI sampling names),\n"
            "                       all batched together; results in input order (the options below are defaults);\n"
            "                       fields: prompt, prompt_ids, max_tokens, temperature, top_p, top_k, min_p, seed,\n"
            "                       stop, n, presence_penalty, frequency_penalty, repetition_penalty, logprobs,\n"
            "                       beams, length_penalty, early_stopping, ignore_eos (others are refused);\n"
            "                       a regular file of at most 256 MiB\n"
            "  --beams N            beam search with N beams (with --requests)\n"
            "  --max-tokens N       tokens to generate (default 16)\n"
            "  --temperature T      0 = greedy (default)\n"
            "  --top-k K            sample from the K most likely tokens (0 = off)\n"
            "  --top-p P            nucleus sampling (1 = off)\n"
            "  --seed S             sampling seed (default 0)\n"
            "  --stop STR           stop when the text contains STR (not emitted); may repeat\n"
            "  --ignore-eos         keep generating past the model's EOS\n"
            "  --stream             print text as tokens arrive\n"
            "  --json               print one JSON object per request\n"
            "  --dump-logits FILE   write the prompt's logits as float32 .npy [prompt_len, vocab]\n"
            "  --threads N          CPU threads (default: all cores)\n"
            CLI_ENGINE_BACKEND_HELP
            CLI_ENGINE_CPU_PRECISION_HELP
            CLI_ENGINE_LIMITS_HELP
            CLI_PLUGIN_HELP
            "  --device N           GPU ordinal (default 0)\n"
            CLI_LAUNCH_HELP
            "  --no-verify          skip the weights checksum on load\n"
            "  --verbose            load time, prompt and decode tokens/s, memory\n");
}

int cmd_run(int argc, char **argv) {
    cli_args a;
    cli_begin(&a, "llmrt run", argc, argv);
    run_request req = {0};
    run_requests_options batch = {0};
    run_settings set;
    run_settings_init(&set);
    llmrt_engine_options eo;
    llmrt_engine_options_init(&eo);
    cli_launch launch = {0};
    const char *opt;
    while ((opt = cli_next(&a))) {
        int64_t x;
        double f;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            run_usage(stdout);
            return 0;
        } else if (strcmp(opt, "--engine") == 0) set.engine_path = cli_value(&a, opt);
        else if (strcmp(opt, "--prompt") == 0) req.prompt_text = cli_value(&a, opt);
        else if (strcmp(opt, "--prompt-ids") == 0) {
            const char *v = cli_value(&a, opt);
            if (v) cli_int_list(&a, opt, v, &req.prompt_ids, &req.num_prompt_ids);
        } else if (strcmp(opt, "--chat") == 0) req.chat_path = cli_value(&a, opt);
        else if (strcmp(opt, "--requests") == 0) batch.path = cli_value(&a, opt);
        else if (strcmp(opt, "--beams") == 0) { if (cli_int(&a, opt, 1, 64, &x)) batch.beams = (int32_t)x; }
        else if (strcmp(opt, "--max-tokens") == 0) { if (cli_int(&a, opt, 0, 1 << 24, &x)) set.params.max_tokens = (int32_t)x; }
        else if (strcmp(opt, "--temperature") == 0) { if (cli_float(&a, opt, 0, 100, &f)) set.params.temperature = (float)f; }
        else if (strcmp(opt, "--top-k") == 0) { if (cli_int(&a, opt, 0, 1 << 24, &x)) set.params.top_k = (int32_t)x; }
        else if (strcmp(opt, "--top-p") == 0) {
            if (cli_float(&a, opt, 0, 1, &f)) {
                if (f <= 0) cli_fail(&a, "--top-p must be > 0");
                set.params.top_p = (float)f;
            }
        } else if (strcmp(opt, "--seed") == 0) { if (cli_int(&a, opt, 0, INT64_MAX, &x)) set.params.seed = (uint64_t)x; }
        else if (strcmp(opt, "--stop") == 0) {
            const char *v = cli_value(&a, opt);
            if (v && !*v) cli_fail(&a, "--stop needs a non-empty string");
            else if (v && set.num_stop < RUN_MAX_STOP) set.stop[set.num_stop++] = v;
            else if (v) cli_fail(&a, "at most %d --stop strings", RUN_MAX_STOP);
        } else if (strcmp(opt, "--ignore-eos") == 0) set.params.ignore_eos = 1;
        else if (strcmp(opt, "--stream") == 0) set.stream = 1;
        else if (strcmp(opt, "--json") == 0) set.json = 1;
        else if (strcmp(opt, "--dump-logits") == 0) set.dump_logits = cli_value(&a, opt);
        else if (strcmp(opt, "--threads") == 0) { if (cli_int(&a, opt, 1, 1024, &x)) eo.num_threads = (int32_t)x; }
        else if (cli_engine_limit(&a, opt, &eo.max_seq_len, &eo.max_batch, &eo.max_num_tokens)) continue;
        else if (cli_engine_backend(&a, opt, &eo.backend)) continue;
        else if (cli_engine_cpu_precision(&a, opt, &eo.cpu_precision)) continue;
        else if (strcmp(opt, "--device") == 0) { if (cli_int(&a, opt, 0, 1024, &x)) eo.device = (int32_t)x; }
        else if (strcmp(opt, "--no-verify") == 0) eo.verify_checksum = 0;
        else if (strcmp(opt, "--verbose") == 0 || strcmp(opt, "-v") == 0) set.verbose = 1;
        else if (cli_plugin(&a, opt)) continue;
        else if (cli_launch_option(&a, opt, &launch)) continue;
        else cli_fail(&a, "unknown option '%s' (see llmrt run --help)", opt);
    }
    int exit_code = 2;
    int sources = (req.prompt_text != NULL) + (req.prompt_ids != NULL) + (req.chat_path != NULL) + (batch.path != NULL);
    if (a.failed) goto done;
    if (sources != 1) {
        fprintf(stderr, "llmrt run: give exactly one of --prompt, --prompt-ids, --chat, --requests\n");
        goto done;
    }
    if (req.prompt_text && !cli_check_utf8("llmrt run", "--prompt", req.prompt_text, strlen(req.prompt_text))) {
        exit_code = 1;
        goto done;
    }
    if (batch.beams && !batch.path) {
        fprintf(stderr, "llmrt run: --beams needs --requests\n");
        goto done;
    }
    exit_code = cli_launch_ranks(&launch, "llmrt run", argc, argv, set.engine_path, eo.backend, eo.num_threads);
    if (exit_code >= 0) goto done;
    char *default_engine = NULL;
    if (!set.engine_path) { /* the embedded default model */
        llmrt_set_log_level(set.verbose ? 2 : 1);
        if (llmrt_default_engine(&default_engine) != LLMRT_OK) {
            exit_code = report_failure("run");
            goto done;
        }
        set.engine_path = default_engine;
    }
    llmrt_set_log_level(set.verbose ? 2 : 1);
    exit_code = batch.path ? run_requests(&set, &eo, &batch) : run_one(&set, &eo, &req);
    llmrt_free(default_engine);
done:
    free(req.prompt_ids);
    return exit_code;
}
