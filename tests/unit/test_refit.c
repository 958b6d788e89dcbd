/* llmrt_refit through the C API: the options' defaults, arguments refused
 * by name, and a random-weight engine refit from a golden checkpoint whose
 * weight table holds, slot for slot, the bytes of a fresh build. (The CLI
 * suite, tests/cli/cli_refit.sh, covers every refusal and the outputs.) */
#include <stdio.h>
#include <string.h>

#include "engine/engine_file.h"
#include "llmrt/llmrt.h"
#include "test_util.h"

static char *dir;
static const char *case_dir = LLMRT_SOURCE_DIR "/tests/golden/cases/gpt2_f32";

static void build(const char *out, int random_weights) {
    llmrt_build_options o;
    llmrt_build_options_init(&o);
    o.model_dir = random_weights ? NULL : case_dir;
    o.config_path = random_weights ? LLMRT_SOURCE_DIR "/tests/golden/cases/gpt2_f32/config.json" : NULL;
    o.random_weights = random_weights;
    o.seed = 5;
    o.output_path = out;
    o.max_seq_len = 32;
    CHECK_OK(llmrt_build(&o));
}

static void test_options(void) {
    llmrt_refit_options o;
    memset(&o, 0xff, sizeof o);
    llmrt_refit_options_init(&o);
    CHECK(!o.engine_path && !o.model_dir && !o.output_path && !o.allow_nonfinite && !o.ignore_extra_tensors);
    CHECK(llmrt_refit(&o) == LLMRT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(llmrt_last_error(), "--engine") != NULL);
    o.engine_path = "x.engine";
    CHECK(llmrt_refit(&o) == LLMRT_ERR_INVALID_ARGUMENT);
    CHECK(strstr(llmrt_last_error(), "--model") != NULL);
}

static void test_round_trip(void) {
    char random_path[512], fresh_path[512], out_path[512];
    snprintf(random_path, sizeof random_path, "%s/random.engine", dir);
    snprintf(fresh_path, sizeof fresh_path, "%s/fresh.engine", dir);
    snprintf(out_path, sizeof out_path, "%s/out.engine", dir);
    build(random_path, 1);
    build(fresh_path, 0);
    llmrt_refit_options o;
    llmrt_refit_options_init(&o);
    o.engine_path = random_path;
    o.model_dir = case_dir;
    o.output_path = out_path;
    CHECK_OK(llmrt_refit(&o));
    llmrt_engine_image *fresh = NULL, *refit = NULL, *random = NULL;
    CHECK_OK(llmrt_engine_image_open(fresh_path, 1, &fresh));
    CHECK_OK(llmrt_engine_image_open(out_path, 1, &refit));
    CHECK_OK(llmrt_engine_image_open(random_path, 1, &random));
    if (!fresh || !refit || !random) goto done;
    CHECK(strcmp(refit->source, case_dir) == 0);
    CHECK(refit->plan->num_weights == fresh->plan->num_weights);
    int transposed = 0, differs_from_random = 0;
    for (int32_t i = 0; i < fresh->plan->num_weights && i < refit->plan->num_weights; i++) {
        const llmrt_plan_weight *a = &fresh->plan->weights[i], *b = &refit->plan->weights[i];
        CHECK_MSG(strcmp(a->name, b->name) == 0 && a->nbytes == b->nbytes && memcmp(a->data, b->data, a->nbytes) == 0,
                  "weight %d '%s' differs from a fresh build's", i, a->name);
        transposed += strstr(a->name, "#transposed") != NULL;
        differs_from_random += memcmp(b->data, random->plan->weights[i].data, b->nbytes) != 0;
    }
    CHECK(transposed > 0); /* GPT-2's Conv1D weights went through the transpose */
    CHECK(differs_from_random > 0);
done:
    llmrt_engine_image_close(fresh);
    llmrt_engine_image_close(refit);
    llmrt_engine_image_close(random);
}

int main(void) {
    dir = test_temp_dir();
    RUN_TEST(test_options);
    RUN_TEST(test_round_trip);
    return test_finish();
}
