/* llmrt serve: the HTTP server (src/server/) over an engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "launch.h"
#include "llmrt/llmrt.h"
#include "server/server.h"

static void serve_usage(FILE *out) {
    fprintf(out,
            "usage: llmrt serve [--engine FILE] [options]\n\n"
            "OpenAI-compatible (/v1/models, /v1/completions, /v1/chat/completions) and Triton/KServe v2\n"
            "(/v2/...) HTTP APIs, /health, /version, /metrics (Prometheus) and a chat page at /.\n\n"
            "  --engine FILE            the engine to serve (default: the embedded demo model)\n"
            "  --host HOST              address to listen on (default 127.0.0.1)\n"
            "  --port N                 port (default 8000; 0 = any free port, printed at start-up)\n"
            "  --api-key KEY            require 'Authorization: Bearer KEY' (health endpoints and / excepted)\n"
            "  --served-model-name NAME the model's name in the APIs (default: the engine file's name)\n"
            "  --max-concurrent N       requests generating at once (default 256)\n"
            "  --max-queue N            requests waiting beyond that before 429 (default 1024)\n"
            "  --max-body-bytes N       largest request body (default 4194304)\n"
            "  --drain-timeout S        on SIGTERM, seconds to let in-flight requests finish (default 30)\n"
            "  --kv-cache-memory X      KV cache budget: bytes (> 1, e.g. 536870912) or a fraction (0, 1]\n"
            "                           (GPU: of the memory left, default 0.9; CPU: of the memory\n"
            "                           available, default 0.5; at most max-batch full sequences)\n"
            "  --threads N              CPU threads (default: all cores)\n"
            CLI_ENGINE_BACKEND_HELP
            CLI_ENGINE_CPU_PRECISION_HELP
            CLI_ENGINE_LIMITS_HELP
            CLI_PLUGIN_HELP
            "  --device N               GPU ordinal (default 0)\n"
            CLI_LAUNCH_HELP
            "  --no-access-log          no per-request log line on stderr\n"
            "  --verbose                engine loading progress\n");
}

int cmd_serve(int argc, char **argv) {
    cli_args a;
    cli_begin(&a, "llmrt serve", argc, argv);
    srv_options o;
    srv_options_init(&o);
    int verbose = 0;
    cli_launch launch = {0};
    const char *opt;
    while ((opt = cli_next(&a))) {
        int64_t x;
        double f;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            serve_usage(stdout);
            return 0;
        } else if (strcmp(opt, "--engine") == 0) o.engine_path = cli_value(&a, opt);
        else if (strcmp(opt, "--host") == 0) o.host = cli_value(&a, opt);
        else if (strcmp(opt, "--port") == 0) { if (cli_int(&a, opt, 0, 65535, &x)) o.port = (int)x; }
        else if (strcmp(opt, "--api-key") == 0) {
            o.api_key = cli_value(&a, opt);
            if (o.api_key && !*o.api_key) cli_fail(&a, "--api-key needs a non-empty key");
        } else if (strcmp(opt, "--served-model-name") == 0) {
            o.served_model_name = cli_value(&a, opt);
            if (o.served_model_name && (!*o.served_model_name || strchr(o.served_model_name, '/')))
                cli_fail(&a, "--served-model-name must be non-empty and without '/'");
        } else if (strcmp(opt, "--max-concurrent") == 0) { if (cli_int(&a, opt, 1, 65536, &x)) o.max_concurrent = (int32_t)x; }
        else if (strcmp(opt, "--max-queue") == 0) { if (cli_int(&a, opt, 0, 1 << 20, &x)) o.max_queue = (int32_t)x; }
        else if (strcmp(opt, "--max-body-bytes") == 0) { if (cli_int(&a, opt, 64, INT64_C(1) << 32, &x)) o.max_body_bytes = (size_t)x; }
        else if (strcmp(opt, "--drain-timeout") == 0) { if (cli_float(&a, opt, 0, 86400, &f)) o.drain_timeout = f; }
        else if (strcmp(opt, "--kv-cache-memory") == 0) {
            if (cli_float(&a, opt, 0, 1e15, &f)) {
                if (f <= 0) cli_fail(&a, "--kv-cache-memory must be > 0");
                o.kv_cache_memory = f;
            }
        } else if (strcmp(opt, "--threads") == 0) { if (cli_int(&a, opt, 1, 1024, &x)) o.num_threads = (int32_t)x; }
        else if (cli_engine_limit(&a, opt, &o.max_seq_len, &o.max_batch, &o.max_num_tokens)) continue;
        else if (cli_engine_backend(&a, opt, &o.backend)) continue;
        else if (cli_engine_cpu_precision(&a, opt, &o.cpu_precision)) continue;
        else if (strcmp(opt, "--device") == 0) { if (cli_int(&a, opt, 0, 1024, &x)) o.device = (int32_t)x; }
        else if (strcmp(opt, "--no-access-log") == 0) o.access_log = 0;
        else if (strcmp(opt, "--verbose") == 0 || strcmp(opt, "-v") == 0) verbose = 1;
        else if (cli_plugin(&a, opt)) continue;
        else if (cli_launch_option(&a, opt, &launch)) continue;
        else cli_fail(&a, "unknown option '%s' (see llmrt serve --help)", opt);
    }
    if (a.failed) return 2;
    const int launched = cli_launch_ranks(&launch, "llmrt serve", argc, argv, o.engine_path, o.backend, o.num_threads);
    if (launched >= 0) return launched;
    llmrt_set_log_level(verbose ? 2 : 1);
    char *default_engine = NULL;
    if (!o.engine_path) {
        if (llmrt_default_engine(&default_engine) != LLMRT_OK) return report_failure("serve");
        o.engine_path = default_engine;
        if (!o.served_model_name) o.served_model_name = "demo";
    }
    int code = srv_run(&o);
    llmrt_free(default_engine);
    return code;
}
