/* llmrt_build: checkpoint (or config + random weights) → engine file. */
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "compiler/compiler.h"
#include "compiler/retarget.h"
#include "core/file.h"
#include "core/log.h"
#include "engine/engine_file.h"
#include "engine/loaded_engine.h"
#include "import/hf_config.h"
#include "import/quant_checkpoint.h"
#include "import/safetensors.h"
#include "api/build_internal.h"
#include "api/calibrate.h"
#include "llmrt/llmrt.h"

void llmrt_build_options_init(llmrt_build_options *o) {
    memset(o, 0, sizeof *o);
    o->backend = "cpu";
    o->dtype = LLMRT_DTYPE_INVALID;
    o->smooth_alpha = 0.5f;
}

/* Limits a served engine needs: a GPU step holds hundreds of sequences and a
 * whole 2048-token prompt (one prefill step, not four); a CPU step gains
 * little from more. The KV cache is sized from memory at load, not here. */
enum { CUDA_MAX_BATCH = 256, CUDA_MAX_NUM_TOKENS = 2048, CPU_MAX_BATCH = 16, CPU_MAX_NUM_TOKENS = 512 };

llmrt_status llmrt_build_compile_options(const llmrt_build_options *o, const llmrt_model_config *config,
                                         llmrt_dtype dtype, llmrt_compile_options *copts) {
    const char *backend = o->backend ? o->backend : "cpu";
    const int on_cpu = strcmp(backend, "cpu") == 0;
    const int q8 = o->quant == LLMRT_DTYPE_FP8_W8A8 || o->quant == LLMRT_DTYPE_INT8_W8A8;
    if (o->quant != LLMRT_DTYPE_INVALID && o->quant != LLMRT_DTYPE_INT8_WO && o->quant != LLMRT_DTYPE_INT4_WO && !q8)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --quant %s (int8-wo, int4-wo, fp8, w8a8)",
                           llmrt_dtype_name(o->quant));
    if (q8 && (o->group_size || o->quant_scheme))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --group-size and --quant-scheme are for int8-wo and "
                           "int4-wo; %s has one scale per output channel, symmetric", llmrt_dtype_name(o->quant));
    if (o->quant_per_tensor < 0 || o->quant_per_tensor > 1 || o->act_scales < 0 || o->act_scales > 1)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: quant_per_tensor %d, act_scales %d (0 or 1)",
                           o->quant_per_tensor, o->act_scales);
    if ((o->quant_per_tensor || o->act_scales) && o->quant != LLMRT_DTYPE_FP8_W8A8)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --weight-scales and --act-scales need --quant fp8");
    if (o->kv_cache != LLMRT_DTYPE_INVALID && o->kv_cache != LLMRT_DTYPE_FP8_E4M3 && o->kv_cache != LLMRT_DTYPE_I8)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --kv-cache %s (fp8, int8 or auto)",
                           llmrt_dtype_name(o->kv_cache));
    if (o->group_size < 0 || (o->group_size > 0 && o->group_size % 32 != 0))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --group-size %d (a multiple of 32: 32, 64, 128, ...)",
                           o->group_size);
    LLMRT_TRY(llmrt_build_check_calibration(o));
    if (o->quant_scheme < 0 || o->quant_scheme > 2)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: quant_scheme %d (0 default, 1 sym, 2 asym)",
                           o->quant_scheme);
    *copts = (llmrt_compile_options){
        .target = backend,
        .act_dtype = llmrt_target_act_dtype(backend, dtype),
        .weight_dtype = dtype,
        .max_batch = o->max_batch > 0 ? o->max_batch : on_cpu ? CPU_MAX_BATCH : CUDA_MAX_BATCH,
        .max_seq_len = o->max_seq_len > 0 ? o->max_seq_len
                                          : (config->max_position_embeddings < 4096 ? config->max_position_embeddings : 4096),
        .disabled_passes = o->disabled_passes,
        .random_weights = o->random_weights,
        .seed = o->seed,
        .quant_dtype = o->quant,
        /* int4 per channel loses too much: 128 unless asked */
        .quant_group_size = o->group_size > 0 ? o->group_size : o->quant == LLMRT_DTYPE_INT4_WO ? 128 : 0,
        .quant_asymmetric = o->quant_scheme == 2 || (o->quant_scheme == 0 && o->quant == LLMRT_DTYPE_INT4_WO),
        .quant_per_tensor = o->quant_per_tensor,
        .quant_static_input = o->act_scales == 1,
        .kv_dtype = o->kv_cache,
    };
    const int32_t default_tokens = on_cpu ? CPU_MAX_NUM_TOKENS : CUDA_MAX_NUM_TOKENS;
    copts->max_num_tokens = o->max_num_tokens > 0             ? o->max_num_tokens
                           : copts->max_batch > default_tokens ? copts->max_batch
                                                              : default_tokens;
    if (copts->max_num_tokens < copts->max_batch)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --max-num-tokens %d is below --max-batch %d",
                           copts->max_num_tokens, copts->max_batch);

    return LLMRT_OK;
}

/* Reads an optional file of the checkpoint directory (NULL if absent). */
static llmrt_status read_optional(const char *dir, const char *name, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    if (!dir) return LLMRT_OK;
    char *path = llmrt_path_join(dir, name);
    if (!path) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = llmrt_file_exists(path) ? llmrt_file_read_all(path, data, size) : LLMRT_OK;
    free(path);
    return s;
}

/* Writes the engine, with the tokenizer and generation config files of
 * `dir` when present. */
llmrt_status llmrt_build_write(const llmrt_build_options *o, const llmrt_plan *plan, const llmrt_model_config *config,
                               const llmrt_engine_build_info *info, const char *dir) {
    char *tokenizer = NULL, *tokenizer_config = NULL, *generation_config = NULL;
    size_t tokenizer_size = 0, tokenizer_config_size = 0, generation_config_size = 0;
    llmrt_status s = read_optional(dir, "tokenizer.json", &tokenizer, &tokenizer_size);
    if (s == LLMRT_OK) s = read_optional(dir, "tokenizer_config.json", &tokenizer_config, &tokenizer_config_size);
    if (s == LLMRT_OK) s = read_optional(dir, "generation_config.json", &generation_config, &generation_config_size);
    if (s == LLMRT_OK) {
        llmrt_engine_write_input in = {
            .plan = plan,
            .config = config,
            .build = *info,
            .tokenizer = {tokenizer, tokenizer_size},
            .tokenizer_config = {tokenizer_config, tokenizer_config_size},
            .generation_config = {generation_config, generation_config_size},
            .allow_nonfinite = o->allow_nonfinite,
        };
        s = llmrt_engine_write(o->output_path, &in);
    }
    free(tokenizer);
    free(tokenizer_config);
    free(generation_config);
    return s;
}

/* One engine file per rank (llmrt_engine_rank_path), tensor-parallel
 * (--tp) or pipeline stage (--pp): each holds only its rank's weights, so
 * a rank maps just its own. */
static llmrt_status build_tensor_parallel(const llmrt_build_options *o, const llmrt_model_config *config,
                                          const llmrt_checkpoint *checkpoint, llmrt_compile_options *copts,
                                          llmrt_dtype dtype) {
    const int32_t tp = o->tp_size > 1 ? o->tp_size : 1, pp = o->pp_size > 1 ? o->pp_size : 1;
    if (tp > 64 || pp > 64) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --tp %d --pp %d (1..64)", tp, pp);
    const int32_t ranks = tp * pp; /* rank = stage · tp + tensor-parallel rank */
    if (!llmrt_comm_have_mpi())
        return llmrt_error(LLMRT_ERR_UNSUPPORTED,
                           "build: --tp and --pp need MPI to run, and this llmrt was built without it "
                           "(Debian: apt-get install openmpi-bin libopenmpi-dev, then rebuild)");
    const char *backend = o->backend ? o->backend : "cpu";
    llmrt_engine_build_info info = {.backend = backend, .dtype = dtype, .act_dtype = copts->act_dtype,
                                    .source = o->random_weights ? "random" : o->model_dir, .seed = o->seed};
    for (int32_t rank = 0; rank < ranks; rank++) {
        copts->tp_rank = rank % tp;
        copts->tp_size = tp;
        copts->pp_stage = rank / tp;
        copts->pp_stages = pp;
        llmrt_plan *plan = NULL;
        LLMRT_TRY(llmrt_compile(config, checkpoint, copts, &plan));
        char path[4096];
        llmrt_engine_rank_path(o->output_path, rank, path, sizeof path);
        llmrt_build_options rank_options = *o;
        rank_options.output_path = path;
        llmrt_status s = llmrt_build_write(&rank_options, plan, config, &info, o->model_dir);
        if (s == LLMRT_OK)
            LLMRT_INFO("wrote %s (rank %d of %d, %.1f MiB of weights)", path, (int)rank, (int)ranks,
                       (double)llmrt_plan_weight_bytes(plan, NULL) / 1048576.0);
        llmrt_plan_free(plan);
        LLMRT_TRY(s);
    }
    return LLMRT_OK;
}

llmrt_status llmrt_build(const llmrt_build_options *o) {
    if (!o->output_path) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: no output path (--output)");
    if (o->onnx_path) return llmrt_build_onnx(o);
    if (!o->model_dir && !(o->random_weights && o->config_path))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: give --model DIR, or --config FILE with --random-weights");
    const char *backend = o->backend ? o->backend : "cpu";
    if (!llmrt_target_known(backend))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: unknown backend '%s' (cpu, cuda)", backend);
    const char *inputs[] = {o->config_path};
    LLMRT_TRY(llmrt_file_check_output(o->output_path, inputs, 1, o->model_dir));
    double start = llmrt_now_seconds();

    llmrt_model_config config;
    char *config_path = o->config_path ? strdup(o->config_path) : llmrt_path_join(o->model_dir, "config.json");
    if (!config_path) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = llmrt_hf_config_load(config_path, &config);
    free(config_path);
    if (s != LLMRT_OK) return s;
    if (o->model_dir) {
        char *gen_path = llmrt_path_join(o->model_dir, "generation_config.json");
        s = gen_path ? llmrt_hf_generation_config_merge(gen_path, &config)
                     : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        free(gen_path);
        if (s != LLMRT_OK) return s;
    }

    llmrt_dtype dtype = o->dtype;
    if (dtype == LLMRT_DTYPE_INVALID)
        dtype = config.checkpoint_dtype == LLMRT_DTYPE_F16 || config.checkpoint_dtype == LLMRT_DTYPE_BF16
                    ? config.checkpoint_dtype
                    : LLMRT_DTYPE_F32;
    if (dtype != LLMRT_DTYPE_F32 && dtype != LLMRT_DTYPE_F16 && dtype != LLMRT_DTYPE_BF16)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "build: --dtype %s (fp32, fp16, bf16)", llmrt_dtype_name(dtype));
    llmrt_quant_config prequantized;
    LLMRT_TRY(llmrt_quant_config_load(o->random_weights ? NULL : o->model_dir, &prequantized));
    const int packed = prequantized.method != LLMRT_QUANT_METHOD_NONE;
    char scheme[160] = "";
    if (packed) llmrt_quant_config_describe(&prequantized, scheme, sizeof scheme);
    if (packed && o->quant != LLMRT_DTYPE_INVALID && o->quant != llmrt_quant_config_dtype(&prequantized))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: %s holds %s; --quant %s cannot change them",
                           o->model_dir, scheme, llmrt_dtype_name(o->quant));
    if (packed) LLMRT_INFO("%s: %s", prequantized.source, scheme);
    llmrt_compile_options copts;
    LLMRT_TRY(llmrt_build_compile_options(o, &config, dtype, &copts));
    copts.prequantized = packed ? &prequantized : NULL;

    llmrt_checkpoint *checkpoint = NULL;
    if (!o->random_weights) {
        LLMRT_INFO("opening checkpoint %s", o->model_dir);
        LLMRT_TRY(llmrt_checkpoint_open_dir(o->model_dir, &checkpoint));
    }
    llmrt_plan *plan = NULL;
    LLMRT_INFO("compiling %s: %d layers, hidden %d, %s weights, %s backend", config.architecture, config.num_layers,
               config.hidden_size, llmrt_dtype_name(dtype), backend);
    if (o->tp_size > 1 || o->pp_size > 1) {
        s = build_tensor_parallel(o, &config, checkpoint, &copts, dtype);
        llmrt_checkpoint_close(checkpoint);
        return s;
    }
    llmrt_calibration *calib = NULL;
    s = llmrt_build_calibration(o, &config, checkpoint, &copts, &calib);
    if (s == LLMRT_OK) s = llmrt_compile(&config, checkpoint, &copts, &plan);
    llmrt_calibration_free(calib);
    char unused[1024];
    size_t num_unused = s == LLMRT_OK ? llmrt_checkpoint_unused(checkpoint, unused, sizeof unused) : 0;
    llmrt_checkpoint_close(checkpoint);
    if (s != LLMRT_OK) return s;
    if (num_unused && !o->ignore_extra_tensors) {
        llmrt_plan_free(plan);
        return llmrt_error(LLMRT_ERR_FORMAT,
                           "%s: %zu tensors the model does not use (does config.json match the checkpoint?): %s "
                           "(--ignore-extra-tensors to build anyway)",
                           o->model_dir, num_unused, unused);
    }
    if (num_unused) LLMRT_WARN("ignoring %zu checkpoint tensors the model does not use: %s", num_unused, unused);

    llmrt_engine_build_info info = {.backend = backend, .dtype = dtype, .act_dtype = copts.act_dtype,
                                    .source = o->random_weights ? "random" : o->model_dir, .seed = o->seed};
    s = llmrt_build_write(o, plan, &config, &info, o->model_dir);
    if (s == LLMRT_OK)
        LLMRT_INFO("wrote %s (%.1f MiB of weights) in %.1f s", o->output_path,
                   (double)llmrt_plan_weight_bytes(plan, NULL) / 1048576.0, llmrt_now_seconds() - start);
    llmrt_plan_free(plan);
    return s;
}
