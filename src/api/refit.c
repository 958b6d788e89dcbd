/* llmrt_refit: an engine's weights replaced by name from a checkpoint.
 *
 * The engine's plan already says which checkpoint tensor each weight slot
 * holds (its weight nodes keep the checkpoint name and the transpose flag the
 * weight_layout pass set), so refit skips the network build and the passes:
 * it binds each slot through the compiler's own binder, keeps the constants
 * (RoPE tables and the like, which come from the config, not the checkpoint),
 * and writes the engine again. The plan, the limits and the tokenizer are the
 * engine's; only the weights and the recorded source change. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/compiler.h"
#include "core/file.h"
#include "core/log.h"
#include "engine/engine_file.h"
#include "engine/loaded_engine.h"
#include "import/hf_config.h"
#include "import/safetensors.h"
#include "llmrt/llmrt.h"

void llmrt_refit_options_init(llmrt_refit_options *o) { memset(o, 0, sizeof *o); }

/* The first weight node bound to `slot`, or NULL for a constant's slot.
 * Nodes sharing a slot (a tied LM head) name the same tensor. */
static const llmrt_node *weight_node_of_slot(const llmrt_graph *g, int32_t slot) {
    for (int32_t i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == LLMRT_OP_WEIGHT && g->nodes[i].weight_slot == slot) return &g->nodes[i];
    return NULL;
}

/* The engine keeps its own config (its plan was compiled from it): a
 * checkpoint whose config.json says otherwise in a field the weights'
 * shapes do not show (rope_theta, an epsilon) is worth a warning naming
 * the field. A checkpoint without config.json is taken as it is. */
static void warn_config_differences(const char *model_dir, const llmrt_model_config *engine_config) {
    char *path = llmrt_path_join(model_dir, "config.json");
    if (!path || !llmrt_file_exists(path)) {
        free(path);
        return;
    }
    llmrt_model_config checkpoint_config;
    llmrt_status s = llmrt_hf_config_load(path, &checkpoint_config);
    free(path);
    if (s != LLMRT_OK) {
        LLMRT_WARN("refit: %s (the engine keeps its own config)", llmrt_last_error());
        return;
    }
    char *a = llmrt_model_config_to_json(engine_config), *b = llmrt_model_config_to_json(&checkpoint_config);
    json_t *ja = a ? json_loads(a, 0, NULL) : NULL, *jb = b ? json_loads(b, 0, NULL) : NULL;
    const char *key;
    json_t *value;
    json_object_foreach(ja, key, value) {
        /* generation_config.json may set the EOS ids; refit keeps the engine's */
        if (strcmp(key, "eos_token_ids") == 0) continue;
        if (!json_equal(value, json_object_get(jb, key))) {
            LLMRT_WARN("refit: %s/config.json differs from the engine's config in '%s'; the engine keeps its own",
                       model_dir, key);
            break;
        }
    }
    json_decref(ja);
    json_decref(jb);
    free(a);
    free(b);
}

/* A shard's pieces along its split axis, from its slot name
 * "<name>#tp<i>/<n>:<axis>@<offset>+<length>..." (the build keeps them in
 * the name, not in the plan's nodes); none for an equal split. */
static llmrt_status shard_segments(const char *slot_name, llmrt_node *node) {
    node->num_segments = 0;
    const char *tp = strstr(slot_name, "#tp"), *p = tp ? strchr(tp, '@') : NULL;
    while (p) {
        long long offset, length;
        int used = 0;
        if (node->num_segments >= LLMRT_GRAPH_MAX_SEGMENTS || sscanf(p, "@%lld+%lld%n", &offset, &length, &used) != 2 ||
            offset < 0 || length <= 0)
            return llmrt_error(LLMRT_ERR_FORMAT, "weight slot '%s': malformed tensor-parallel pieces", slot_name);
        node->segments[node->num_segments][0] = offset;
        node->segments[node->num_segments][1] = length;
        node->num_segments++;
        p = p[used] == '@' ? p + used : NULL;
    }
    return LLMRT_OK;
}

/* Binds every weight slot of `plan` from `checkpoint` into freshly owned
 * buffers. On error the slots already bound keep their new buffers (owned,
 * freed with the plan); the engine file is not touched either way. */
static llmrt_status bind_all(const char *engine_path, const llmrt_model_config *config, llmrt_plan *plan,
                             const llmrt_checkpoint *checkpoint) {
    uint64_t total = 0;
    for (int32_t i = 0; i < plan->num_weights; i++)
        if (weight_node_of_slot(plan->graph, i)) total += plan->weights[i].nbytes;
    llmrt_progress progress;
    llmrt_progress_begin(&progress, "refitting weights", total);
    for (int32_t i = 0; i < plan->num_weights; i++) {
        llmrt_plan_weight *pw = &plan->weights[i];
        const llmrt_node *found = weight_node_of_slot(plan->graph, i);
        if (!found) continue;
        llmrt_node node = *found;
        if (node.iattr[6] > 1) LLMRT_TRY(shard_segments(pw->name, &node));
        if (node.dtype != pw->dtype || llmrt_node_bytes(&node, 0, 0) != pw->nbytes)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: weight '%s' disagrees with its plan node (%s, %zu bytes)",
                               engine_path, pw->name, llmrt_dtype_name(node.dtype), llmrt_node_bytes(&node, 0, 0));
        void *bytes = malloc(pw->nbytes ? pw->nbytes : 1);
        if (!bytes) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory for weight '%s'", pw->name);
        pw->owned_data = bytes;
        pw->data = bytes;
        llmrt_status s = llmrt_compile_bind_weight(config, checkpoint, &node, bytes, &progress);
        if (s != LLMRT_OK) return llmrt_error_context(s, "refit %s: weight '%s'", engine_path, pw->name);
    }
    llmrt_progress_end(&progress);
    return LLMRT_OK;
}

/* A split engine is one file per rank (llmrt_engine_rank_path): all are
 * bound before any is written, so a failure leaves every file as it was. */
#define REFIT_MAX_RANKS 1024

llmrt_status llmrt_refit(const llmrt_refit_options *o) {
    if (!o->engine_path) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "refit: no engine (--engine)");
    if (!o->model_dir) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "refit: no checkpoint (--model)");
    const int in_place = !o->output_path || strcmp(o->output_path, o->engine_path) == 0;
    const char *output = in_place ? o->engine_path : o->output_path;
    int32_t ranks = 1;
    LLMRT_TRY(llmrt_engine_file_ranks(o->engine_path, &ranks));
    if (ranks < 1 || ranks > REFIT_MAX_RANKS)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: built for %d ranks", o->engine_path, (int)ranks);
    char(*paths)[2][4096] = calloc((size_t)ranks, sizeof *paths); /* [rank][input, output] */
    llmrt_engine_image **images = calloc((size_t)ranks, sizeof *images);
    if (!paths || !images) {
        free(paths), free(images);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    llmrt_status s = LLMRT_OK;
    for (int32_t r = 0; r < ranks && s == LLMRT_OK; r++) {
        llmrt_engine_rank_path(o->engine_path, r, paths[r][0], sizeof paths[r][0]);
        llmrt_engine_rank_path(output, r, paths[r][1], sizeof paths[r][1]);
        /* In place, the engine is the output and the rename replaces it; to
         * another path, the engine is an input that must not be clobbered. */
        const char *inputs[] = {in_place ? NULL : paths[r][0]};
        s = llmrt_file_check_output(paths[r][1], inputs, 1, o->model_dir);
    }
    double start = llmrt_now_seconds();
    llmrt_checkpoint *checkpoint = NULL;
    if (s == LLMRT_OK) s = llmrt_engine_image_open(paths[0][0], 1, &images[0]);
    if (s == LLMRT_OK) {
        LLMRT_INFO("opening checkpoint %s", o->model_dir);
        warn_config_differences(o->model_dir, &images[0]->config);
        s = llmrt_checkpoint_open_dir(o->model_dir, &checkpoint);
    }
    for (int32_t r = 0; r < ranks && s == LLMRT_OK; r++) {
        if (r > 0) s = llmrt_engine_image_open(paths[r][0], 1, &images[r]);
        if (s == LLMRT_OK) s = bind_all(paths[r][0], &images[r]->config, images[r]->plan, checkpoint);
    }
    char unused[1024];
    size_t num_unused = s == LLMRT_OK ? llmrt_checkpoint_unused(checkpoint, unused, sizeof unused) : 0;
    llmrt_checkpoint_close(checkpoint);
    if (s == LLMRT_OK && num_unused && !o->ignore_extra_tensors)
        s = llmrt_error(LLMRT_ERR_FORMAT,
                        "%s: %zu tensors the engine does not use (is this the engine's model?): %s "
                        "(--ignore-extra-tensors to refit anyway)",
                        o->model_dir, num_unused, unused);
    else if (s == LLMRT_OK && num_unused)
        LLMRT_WARN("ignoring %zu checkpoint tensors the engine does not use: %s", num_unused, unused);
    uint64_t bytes = 0;
    for (int32_t r = 0; r < ranks && s == LLMRT_OK; r++) {
        llmrt_engine_image *image = images[r];
        llmrt_engine_write_input in = {
            .plan = image->plan,
            .config = &image->config,
            .build = {.backend = image->backend, .dtype = image->dtype, .act_dtype = image->act_dtype,
                      .source = o->model_dir, .seed = 0},
            .tokenizer = image->tokenizer,
            .tokenizer_config = image->tokenizer_config,
            .generation_config = image->generation_config,
            .allow_nonfinite = o->allow_nonfinite,
        };
        /* The image's map stays valid while the new file is renamed over it:
         * the mapping holds the old inode. */
        s = llmrt_engine_write(paths[r][1], &in);
        bytes += llmrt_plan_weight_bytes(image->plan, NULL);
    }
    if (s == LLMRT_OK)
        LLMRT_INFO("refit %s%s from %s (%.1f MiB of weights) in %.1f s", output, ranks > 1 ? " and its rank files" : "",
                   o->model_dir, (double)bytes / 1048576.0, llmrt_now_seconds() - start);
    for (int32_t r = 0; r < ranks; r++) llmrt_engine_image_close(images[r]);
    free(images);
    free(paths);
    return s;
}
