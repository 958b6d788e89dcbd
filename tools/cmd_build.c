#include <stdio.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "llmrt/llmrt.h"

static void build_usage(FILE *out) {
    fprintf(out,
            "usage: llmrt build --model DIR --output FILE.engine [options]\n"
            "       llmrt build --config config.json --random-weights --output FILE.engine [options]\n"
            "       llmrt build --onnx model.onnx [--config config.json] --output FILE.engine [options]\n\n"
            "  --model DIR            HuggingFace checkpoint (config.json, *.safetensors, tokenizer.json)\n"
            "  --config FILE          config.json alone (with --random-weights), or beside --onnx\n"
            "  --onnx FILE            a decoder exported by torch.onnx.export (opset 13-17, with or without\n"
            "                         past key/values); prints what it recognised and fused\n"
            "  --random-weights       seeded random weights of the right shapes (benchmarks)\n"
            "  --seed N               random-weight seed (default 0)\n"
            "  --output FILE          the engine file to write\n"
            "  --backend cpu|cuda     the backend the plan is made for: its activation dtype and default\n"
            "                         limits (default cpu); the engine also runs on the other (--backend\n"
            "                         at load)\n"
            "  --dtype fp32|fp16|bf16 weight storage (default: the checkpoint's torch_dtype)\n"
            "  --quant int8-wo|int4-wo  weight-only quantization of the linear layers (not the LM head\n"
            "                         or embeddings; activations stay in the engine's precision)\n"
            "  --quant fp8|w8a8       8-bit weights and activations of the linear layers: E4M3 (fp8) or\n"
            "                         int8 (w8a8), weights per output channel, activations per token\n"
            "  --weight-scales channel|tensor  fp8 weight scales (default channel)\n"
            "  --act-scales dynamic|static  fp8 activation scales: per token at run time (default), or\n"
            "                         per tensor from calibration (needs --calib)\n"
            "  --group-size N         inputs per scale: int8-wo default per channel, int4-wo 128 (32, 64, 128)\n"
            "  --quant-scheme sym|asym  zero points: int8-wo default sym, int4-wo asym\n"
            "  --calib FILE           calibration text (plain UTF-8): run through the unquantized model on\n"
            "                         the target backend to measure each linear layer's inputs, for\n"
            "                         --quant w8a8 (SmoothQuant) and --quant fp8 --act-scales static\n"
            "  --calib-samples N      samples of the text (default 64)\n"
            "  --calib-len N          tokens per sample (default 512, at most --max-seq-len)\n"
            "  --smooth-alpha A       SmoothQuant migration strength for w8a8, 0 to 1 (default 0.5)\n"
            "  --kv-cache fp8|int8|auto  KV cache storage: 8-bit codes with a scale per token and KV head\n"
            "                         (half the bytes of 16 bits: twice the tokens fit); auto (default)\n"
            "                         stores the activation dtype\n"
            "  --max-seq-len N        tokens per sequence (default min(max_position_embeddings, 4096))\n"
            "  --max-batch N          sequences per step (default 256 on cuda, 16 on cpu)\n"
            "  --max-num-tokens N     tokens per step; longer prompts prefill in chunks\n"
            "                         (default 2048 on cuda, 512 on cpu, at least max-batch)\n"
            "  --tp N                 tensor parallelism over N ranks: one engine per rank (FILE for\n"
            "                         rank 0, FILE.rank<r> for rank r), run under mpirun -np N\n"
            "  --pp N                 pipeline parallelism over N stages (layer ranges), files as --tp\n"
            "  --disable-passes LIST  skip compiler passes, comma-separated (testing)\n"
            "  --allow-nonfinite      build even if a weight holds NaN or Inf (by default an error naming it)\n"
            "  --ignore-extra-tensors build even if the checkpoint has tensors the model does not use\n"
            "  --quiet                no progress lines\n"
            CLI_PLUGIN_HELP "\n"
            "The KV cache is sized when the engine loads: 0.9 of the GPU memory left, or 0.5 of the\n"
            "host memory available (at most max-batch sequences of max-seq-len).\n");
}

int cmd_build(int argc, char **argv) {
    llmrt_build_options o;
    llmrt_build_options_init(&o);
    cli_args a;
    cli_begin(&a, "llmrt build", argc, argv);
    int quiet = 0, weight_scales = 0, act_scales = 0;
    const char *opt;
    while ((opt = cli_next(&a))) {
        int64_t x;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            build_usage(stdout);
            return 0;
        } else if (strcmp(opt, "--model") == 0) o.model_dir = cli_value(&a, opt);
        else if (strcmp(opt, "--config") == 0) o.config_path = cli_value(&a, opt);
        else if (strcmp(opt, "--onnx") == 0) o.onnx_path = cli_value(&a, opt);
        else if (strcmp(opt, "--random-weights") == 0) o.random_weights = 1;
        else if (strcmp(opt, "--seed") == 0) { if (cli_int(&a, opt, 0, INT64_MAX, &x)) o.seed = (uint64_t)x; }
        else if (strcmp(opt, "--output") == 0 || strcmp(opt, "-o") == 0) o.output_path = cli_value(&a, opt);
        else if (strcmp(opt, "--backend") == 0) o.backend = cli_value(&a, opt);
        else if (strcmp(opt, "--dtype") == 0) {
            const char *v = cli_value(&a, opt);
            if (v) {
                o.dtype = llmrt_dtype_from_name(v);
                if (o.dtype != LLMRT_DTYPE_F32 && o.dtype != LLMRT_DTYPE_F16 && o.dtype != LLMRT_DTYPE_BF16)
                    cli_fail(&a, "--dtype '%s': expected fp32, fp16 or bf16", v);
            }
        } else if (strcmp(opt, "--quant") == 0) {
            const char *v = cli_value(&a, opt);
            if (v && strcmp(v, "none") != 0) {
                o.quant = llmrt_dtype_from_name(v);
                if (o.quant != LLMRT_DTYPE_INT8_WO && o.quant != LLMRT_DTYPE_INT4_WO &&
                    o.quant != LLMRT_DTYPE_FP8_W8A8 && o.quant != LLMRT_DTYPE_INT8_W8A8)
                    cli_fail(&a, "--quant '%s': expected int8-wo, int4-wo, fp8, w8a8 or none", v);
            }
        } else if (strcmp(opt, "--weight-scales") == 0) {
            const char *v = cli_value(&a, opt);
            if (v && strcmp(v, "channel") == 0) o.quant_per_tensor = 0, weight_scales = 1;
            else if (v && strcmp(v, "tensor") == 0) o.quant_per_tensor = 1, weight_scales = 1;
            else if (v) cli_fail(&a, "--weight-scales '%s': expected channel or tensor", v);
        } else if (strcmp(opt, "--act-scales") == 0) {
            const char *v = cli_value(&a, opt);
            if (v && strcmp(v, "dynamic") == 0) o.act_scales = 0, act_scales = 1;
            else if (v && strcmp(v, "static") == 0) o.act_scales = 1, act_scales = 1;
            else if (v) cli_fail(&a, "--act-scales '%s': expected dynamic or static", v);
        } else if (strcmp(opt, "--kv-cache") == 0) {
            const char *v = cli_value(&a, opt);
            if (v && strcmp(v, "fp8") == 0) o.kv_cache = LLMRT_DTYPE_FP8_E4M3;
            else if (v && strcmp(v, "int8") == 0) o.kv_cache = LLMRT_DTYPE_I8;
            else if (v && strcmp(v, "auto") == 0) o.kv_cache = LLMRT_DTYPE_INVALID;
            else if (v) cli_fail(&a, "--kv-cache '%s': expected fp8, int8 or auto", v);
        } else if (strcmp(opt, "--group-size") == 0) {
            if (cli_int(&a, opt, 32, 1 << 20, &x)) {
                if (x % 32 != 0) cli_fail(&a, "--group-size %lld: expected a multiple of 32 (32, 64, 128)", (long long)x);
                o.group_size = (int32_t)x;
            }
        } else if (strcmp(opt, "--quant-scheme") == 0) {
            const char *v = cli_value(&a, opt);
            if (v && strcmp(v, "sym") == 0) o.quant_scheme = 1;
            else if (v && strcmp(v, "asym") == 0) o.quant_scheme = 2;
            else if (v) cli_fail(&a, "--quant-scheme '%s': expected sym or asym", v);
        } else if (strcmp(opt, "--max-seq-len") == 0) { if (cli_int(&a, opt, 1, 1 << 22, &x)) o.max_seq_len = (int32_t)x; }
        else if (strcmp(opt, "--max-batch") == 0) { if (cli_int(&a, opt, 1, 1 << 16, &x)) o.max_batch = (int32_t)x; }
        else if (strcmp(opt, "--tp") == 0) { if (cli_int(&a, opt, 1, 64, &x)) o.tp_size = (int32_t)x; }
        else if (strcmp(opt, "--pp") == 0) { if (cli_int(&a, opt, 1, 64, &x)) o.pp_size = (int32_t)x; }
        else if (strcmp(opt, "--max-num-tokens") == 0) {
            if (cli_int(&a, opt, 1, 1 << 20, &x)) o.max_num_tokens = (int32_t)x;
        } else if (strcmp(opt, "--disable-passes") == 0) o.disabled_passes = cli_value(&a, opt);
        else if (strcmp(opt, "--allow-nonfinite") == 0) o.allow_nonfinite = 1;
        else if (strcmp(opt, "--ignore-extra-tensors") == 0) o.ignore_extra_tensors = 1;
        else if (strcmp(opt, "--calib") == 0) o.calib_path = cli_value(&a, opt);
        else if (strcmp(opt, "--calib-samples") == 0) {
            if (cli_int(&a, opt, 1, 1 << 20, &x)) o.calib_samples = (int32_t)x;
        } else if (strcmp(opt, "--calib-len") == 0) {
            if (cli_int(&a, opt, 1, 1 << 22, &x)) o.calib_len = (int32_t)x;
        } else if (strcmp(opt, "--smooth-alpha") == 0) {
            double alpha;
            if (cli_float(&a, opt, 0.0, 1.0, &alpha)) o.smooth_alpha = (float)alpha;
        } else if (strcmp(opt, "--quiet") == 0) quiet = 1;
        else if (cli_plugin(&a, opt)) continue;
        else cli_fail(&a, "unknown option '%s' (see llmrt build --help)", opt);
    }
    if (a.failed) return 2;
    if (o.onnx_path) {
        if (!o.output_path || o.model_dir || o.random_weights) {
            fprintf(stderr, "llmrt build: --onnx needs --output and takes its weights from the file (no --model, "
                            "--random-weights)\n");
            return 2;
        }
        o.print_report = !quiet;
        llmrt_set_log_level(quiet ? 1 : 2);
        if (llmrt_build(&o) != LLMRT_OK) return report_failure("build");
        return 0;
    }
    if (!o.output_path || (!o.model_dir && !o.config_path)) {
        fprintf(stderr, "llmrt build: --output and one of --model / --config are required\n\n");
        build_usage(stderr);
        return 2;
    }
    if (o.model_dir && (o.config_path || o.random_weights)) {
        fprintf(stderr, "llmrt build: --model DIR builds the checkpoint's weights: give either --model or "
                        "--config FILE --random-weights, not both\n");
        return 2;
    }
    const int q8 = o.quant == LLMRT_DTYPE_FP8_W8A8 || o.quant == LLMRT_DTYPE_INT8_W8A8;
    if ((o.group_size || o.quant_scheme) && (o.quant == LLMRT_DTYPE_INVALID || q8)) {
        fprintf(stderr, "llmrt build: --group-size and --quant-scheme need --quant int8-wo|int4-wo%s\n",
                q8 ? " (fp8 and w8a8 scale each output channel, symmetric)" : "");
        return 2;
    }
    if ((weight_scales || act_scales) && o.quant != LLMRT_DTYPE_FP8_W8A8) {
        fprintf(stderr, "llmrt build: --weight-scales and --act-scales need --quant fp8\n");
        return 2;
    }
    if ((o.calib_samples || o.calib_len) && !o.calib_path) {
        fprintf(stderr, "llmrt build: --calib-samples and --calib-len need --calib FILE\n");
        return 2;
    }
    if (o.calib_path && !o.model_dir) {
        fprintf(stderr, "llmrt build: --calib runs the checkpoint's model over text: it needs --model DIR\n");
        return 2;
    }
    if (o.config_path && !o.random_weights) {
        fprintf(stderr, "llmrt build: --config needs --random-weights (or use --model DIR)\n");
        return 2;
    }
    llmrt_set_log_level(quiet ? 1 : 2);
    if (llmrt_build(&o) != LLMRT_OK) return report_failure("build");
    return 0;
}
