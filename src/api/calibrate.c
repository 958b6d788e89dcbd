/* Calibration: the unquantized model run on the build's own backend over
 * samples of a text, the inputs of its LINEARs observed on the device
 * (OBSERVE nodes, compiler/observe.c), their column-wise max |x| read back
 * once at the end. One sample per step, a whole prefill of L tokens, as the
 * engine will see prompts. */
#include "api/calibrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "core/file.h"
#include "core/log.h"
#include "llmrt/tokenizer.h"

enum { CALIB_BLOCK = 16 };

/* Tokens of the text, at least `need` if it has them: a prefix of the text
 * is tried first (bytes per token are few), the whole text if it falls short. */
static llmrt_status read_tokens(const llmrt_calibrate_options *o, size_t need, int32_t **ids, size_t *count) {
    *ids = NULL;
    *count = 0;
    char *text = NULL;
    size_t size = 0;
    llmrt_tokenizer *tok = NULL;
    llmrt_status s = llmrt_file_read_all(o->text_path, &text, &size);
    if (s != LLMRT_OK) return llmrt_error_context(s, "--calib");
    s = llmrt_tokenizer_load(o->tokenizer_path, &tok);
    if (s != LLMRT_OK) {
        free(text);
        return llmrt_error_context(s, "--calib needs the checkpoint's tokenizer");
    }
    size_t prefix = need < size / 32 ? need * 32 : size;
    while (prefix < size && text[prefix] != '\n') prefix++; /* whole lines: no split characters */
    s = llmrt_tokenizer_encode(tok, text, prefix, LLMRT_ENCODE_PLAIN, ids, count);
    if (s == LLMRT_OK && *count < need && prefix < size) {
        free(*ids);
        s = llmrt_tokenizer_encode(tok, text, size, LLMRT_ENCODE_PLAIN, ids, count);
    }
    llmrt_tokenizer_free(tok);
    free(text);
    return s;
}

/* One calibration entry per LINEAR weight name (LINEARs sharing a weight,
 * or a name, merge by max), from the OBSERVE node on each one's input. */
static llmrt_status collect(const llmrt_plan *plan, const llmrt_backend *backend, llmrt_calibration *calib) {
    const llmrt_graph *g = plan->graph;
    llmrt_value *observer_of = malloc(((size_t)g->num_nodes + 1) * sizeof *observer_of);
    calib->entries = calloc((size_t)g->num_nodes + 1, sizeof *calib->entries);
    if (!observer_of || !calib->entries) {
        free(observer_of);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "calibration: out of memory");
    }
    for (int32_t i = 0; i < g->num_nodes; i++) observer_of[i] = LLMRT_NO_VALUE;
    for (int32_t i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == LLMRT_OP_OBSERVE) observer_of[g->nodes[i].inputs[0]] = i;
    llmrt_status s = LLMRT_OK;
    for (int32_t i = 0; i < g->num_nodes && s == LLMRT_OK; i++) {
        const llmrt_node *n = &g->nodes[i];
        if (n->op != LLMRT_OP_LINEAR || n->is_output || observer_of[n->inputs[0]] == LLMRT_NO_VALUE) continue;
        const llmrt_node *w = &g->nodes[n->inputs[1]];
        if (w->op != LLMRT_OP_WEIGHT || w->ndim != 2) continue; /* what the observe pass skips */
        const int64_t K = w->dims[1];
        llmrt_calib_entry *e = (llmrt_calib_entry *)llmrt_calibration_find(calib, w->name);
        if (!e) {
            e = &calib->entries[calib->count];
            e->weight = strdup(w->name);
            e->cols = K;
            e->channel_amax = calloc((size_t)K, sizeof(float));
            if (!e->weight || !e->channel_amax) {
                free(e->weight), free(e->channel_amax);
                e->weight = NULL, e->channel_amax = NULL;
                s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "calibration: out of memory");
                break;
            }
            calib->count++;
        } else if (e->cols != K) {
            s = llmrt_error(LLMRT_ERR_FORMAT, "calibration: weight '%s' is read with %lld and %lld inputs", w->name,
                            (long long)e->cols, (long long)K);
            break;
        }
        float *seen = malloc((size_t)K * sizeof *seen);
        if (!seen) {
            s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "calibration: out of memory");
            break;
        }
        s = backend->ops->read_observer(backend->state, observer_of[n->inputs[0]], seen);
        for (int64_t k = 0; s == LLMRT_OK && k < K; k++) {
            if (!isfinite(seen[k]))
                s = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                                "calibration: input %lld of '%s' reached %g on the calibration text (the model's "
                                "activations overflow)", (long long)k, w->name, (double)seen[k]);
            if (seen[k] > e->channel_amax[k]) e->channel_amax[k] = seen[k];
            if (seen[k] > e->input_amax) e->input_amax = seen[k];
        }
        free(seen);
    }
    free(observer_of);
    return s;
}

/* Runs the samples through a fresh backend instance of the plan. */
static llmrt_status run_samples(const llmrt_plan *plan, const char *target, const int32_t *ids, int32_t samples,
                                int32_t len, llmrt_calibration *calib) {
    const llmrt_backend_ops *ops;
    LLMRT_TRY(llmrt_backend_lookup(target, &ops));
    if (!ops->read_observer)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "calibration: the %s backend cannot observe activations", ops->name);
    const int32_t blocks = (len + CALIB_BLOCK - 1) / CALIB_BLOCK;
    llmrt_backend_config config = {.kv_block_size = CALIB_BLOCK, .kv_num_blocks = blocks};
    llmrt_backend backend = {.ops = ops, .plan = plan};
    llmrt_status created = ops->create(plan, &config, &backend.state);
    if (created != LLMRT_OK) return llmrt_error_context(created, "calibration");
    int32_t *positions = malloc((size_t)len * sizeof *positions);
    int32_t *block_table = malloc((size_t)blocks * sizeof *block_table);
    float *logits = malloc((size_t)plan->vocab_size * sizeof *logits);
    llmrt_status s = LLMRT_OK;
    if (!positions || !block_table || !logits) s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "calibration: out of memory");
    for (int32_t t = 0; s == LLMRT_OK && t < len; t++) positions[t] = t;
    for (int32_t b = 0; s == LLMRT_OK && b < blocks; b++) block_table[b] = b;
    const double start = llmrt_now_seconds();
    const int32_t every = samples > 8 ? (samples + 7) / 8 : 1; /* about eight progress lines */
    for (int32_t i = 0; i < samples && s == LLMRT_OK; i++) {
        const int32_t seq_start[2] = {0, len}, last = len - 1;
        const llmrt_step step = {.num_tokens = len, .token_ids = ids + (size_t)i * (size_t)len, .positions = positions,
                                 .num_seqs = 1, .seq_start = seq_start, .block_tables = block_table,
                                 .max_blocks_per_seq = blocks, .num_logits = 1, .logits_indices = &last};
        s = ops->forward(backend.state, &step, logits);
        if (s != LLMRT_OK) llmrt_error_context(s, "calibration: sample %d", (int)(i + 1));
        if (s == LLMRT_OK && ((i + 1) % every == 0 || i + 1 == samples))
            LLMRT_INFO("calibrating: sample %d/%d (%.1f s)", (int)(i + 1), (int)samples, llmrt_now_seconds() - start);
    }
    if (s == LLMRT_OK) s = collect(plan, &backend, calib);
    ops->destroy(backend.state);
    free(positions), free(block_table), free(logits);
    return s;
}

llmrt_status llmrt_calibrate(const llmrt_model_config *config, const llmrt_checkpoint *checkpoint,
                             const llmrt_compile_options *build, const llmrt_calibrate_options *o,
                             llmrt_calibration **out) {
    *out = NULL;
    const int32_t samples = o->samples > 0 ? o->samples : LLMRT_CALIB_DEFAULT_SAMPLES;
    int32_t len = o->sample_len > 0 ? o->sample_len : LLMRT_CALIB_DEFAULT_LEN;
    if (len > build->max_seq_len) len = build->max_seq_len;
    if (samples < 1 || len < 1)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "--calib: %d samples of %d tokens", (int)samples, (int)len);
    const size_t need = (size_t)samples * (size_t)len;
    int32_t *ids = NULL;
    size_t count = 0;
    LLMRT_TRY(read_tokens(o, need, &ids, &count));
    if (count < need) {
        free(ids);
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "--calib %s: the text has %zu tokens; %d samples of %d tokens need %zu (give more text, "
                           "or fewer --calib-samples or a shorter --calib-len)",
                           o->text_path, count, (int)samples, (int)len, need);
    }

    /* the build's network, backend and dtypes, but full precision, and room
     * for one sample a step */
    llmrt_compile_options copts = *build;
    copts.quant_dtype = LLMRT_DTYPE_INVALID;
    copts.quant_group_size = 0;
    copts.quant_asymmetric = 0;
    copts.kv_dtype = LLMRT_DTYPE_INVALID; /* and the activation dtype's KV cache */
    copts.calibration = NULL;
    copts.smooth = 0;
    copts.observe = 1;
    copts.max_batch = 1;
    copts.max_num_tokens = len;
    /* a cache of one sample; LongRoPE picks its factors by max_seq_len, so
     * there the engine's stays */
    if (config->rope.type != LLMRT_ROPE_LONGROPE) copts.max_seq_len = len;
    LLMRT_INFO("calibrating on %d samples of %d tokens of %s (%s backend)", (int)samples, (int)len, o->text_path,
               build->target);
    llmrt_plan *plan = NULL;
    llmrt_status s = llmrt_compile(config, checkpoint, &copts, &plan);
    if (s != LLMRT_OK) llmrt_error_context(s, "calibration");
    llmrt_calibration *calib = s == LLMRT_OK ? calloc(1, sizeof *calib) : NULL;
    if (s == LLMRT_OK && !calib) s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "calibration: out of memory");
    if (s == LLMRT_OK) {
        calib->samples = samples;
        calib->sample_len = len;
        s = run_samples(plan, build->target, ids, samples, len, calib);
    }
    llmrt_plan_free(plan);
    free(ids);
    if (s != LLMRT_OK) {
        llmrt_calibration_free(calib);
        return s;
    }
    *out = calib;
    return LLMRT_OK;
}

llmrt_status llmrt_build_check_calibration(const llmrt_build_options *o) {
    if (o->calib_samples < 0 || o->calib_len < 0)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --calib-samples %d, --calib-len %d (positive)",
                           (int)o->calib_samples, (int)o->calib_len);
    if (!(o->smooth_alpha >= 0.0f && o->smooth_alpha <= 1.0f))
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "build: --smooth-alpha %g (0 to 1; default 0.5)",
                           (double)o->smooth_alpha);
    if (o->calib_path && o->onnx_path)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "build: --calib with --onnx is not supported");
    if (o->calib_path && (o->tp_size > 1 || o->pp_size > 1))
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "build: --calib with --tp or --pp is not supported");
    if (o->calib_path && o->random_weights)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT,
                           "build: --calib runs the checkpoint's model over text: give --model DIR, not "
                           "--random-weights");
    return LLMRT_OK;
}

llmrt_status llmrt_build_calibration(const llmrt_build_options *o, const llmrt_model_config *config,
                                     const llmrt_checkpoint *checkpoint, llmrt_compile_options *copts,
                                     llmrt_calibration **out) {
    *out = NULL;
    const int w8a8 = o->quant == LLMRT_DTYPE_INT8_W8A8;
    if (o->smooth_alpha != 0.5f && !(w8a8 && o->calib_path))
        LLMRT_WARN("--smooth-alpha is for --quant w8a8 with --calib: ignored");
    if (!o->calib_path) {
        if (w8a8) LLMRT_WARN("--quant w8a8 without --calib: building without SmoothQuant smoothing");
        return LLMRT_OK;
    }
    if (!w8a8 && o->quant != LLMRT_DTYPE_FP8_W8A8)
        LLMRT_WARN("--calib: nothing in this build reads the statistics (--quant w8a8 and --quant fp8 "
                   "--act-scales static do)");
    char *tokenizer = llmrt_path_join(o->model_dir, "tokenizer.json");
    if (!tokenizer) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    const llmrt_calibrate_options co = {.text_path = o->calib_path, .tokenizer_path = tokenizer,
                                        .samples = o->calib_samples, .sample_len = o->calib_len};
    llmrt_status s = llmrt_calibrate(config, checkpoint, copts, &co, out);
    free(tokenizer);
    LLMRT_TRY(s);
    copts->calibration = *out;
    copts->smooth = w8a8;
    copts->smooth_alpha = o->smooth_alpha;
    return LLMRT_OK;
}
