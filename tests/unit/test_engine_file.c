/* Engine files: build → load round trip, and every kind of damage rejected
 * with a clear message (never a crash): truncation, bad magic, another
 * format version, flipped bytes in each section, random bytes, a tampered
 * plan whose checksums were recomputed (the plan verifier must catch it). */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "engine/engine_file.h"
#include "llmrt/llmrt.h"
#include "test_util.h"

static char *dir;
static char engine_path[512];

static const char *tiny_config =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 32,"
    " \"intermediate_size\": 48, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"vocab_size\": 97, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0,"
    " \"eos_token_id\": 2}";

static uint8_t *read_bytes(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc(*size);
    if (fread(data, 1, *size, f) != *size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

static void build_tiny(void) {
    char config_path[512];
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    FILE *f = fopen(config_path, "w");
    fputs(tiny_config, f);
    fclose(f);
    snprintf(engine_path, sizeof engine_path, "%s/tiny.engine", dir);
    llmrt_build_options o;
    llmrt_build_options_init(&o);
    o.config_path = config_path;
    o.random_weights = 1;
    o.seed = 7;
    o.output_path = engine_path;
    o.max_seq_len = 64;
    CHECK_OK(llmrt_build(&o));
}

static void test_round_trip(void) {
    llmrt_engine_image *img = NULL;
    CHECK_OK(llmrt_engine_image_open(engine_path, 1, &img));
    if (!img) return;
    CHECK(img->config.hidden_size == 32 && img->config.vocab_size == 97 && img->config.num_kv_heads == 2);
    CHECK(img->plan->vocab_size == 97 && img->plan->max_seq_len == 64 && img->plan->num_kv_layers == 2);
    CHECK(strcmp(img->backend, "cpu") == 0);
    for (int32_t i = 0; i < img->plan->num_weights; i++)
        CHECK(((uintptr_t)img->plan->weights[i].data) % LLMRT_ENGINE_WEIGHT_ALIGNMENT == 0);
    llmrt_engine_image_close(img);
    /* the same seed gives the same weights: a rebuild is byte-identical */
    size_t a_size, b_size;
    uint8_t *a = read_bytes(engine_path, &a_size);
    build_tiny();
    uint8_t *b = read_bytes(engine_path, &b_size);
    CHECK(a && b && a_size == b_size && memcmp(a, b, a_size) == 0);
    free(a);
    free(b);
}

/* Writes `data` to a file and expects open to fail with `status` and a
 * message containing `needle`. */
static void expect_rejected(const uint8_t *data, size_t size, llmrt_status status, const char *needle, const char *what) {
    char path[512];
    snprintf(path, sizeof path, "%s/damaged.engine", dir);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, size, f);
    fclose(f);
    llmrt_engine_image *img = NULL;
    llmrt_status s = llmrt_engine_image_open(path, 1, &img);
    CHECK_MSG(s == status, "%s: got status %d (%s), want %d", what, s, llmrt_last_error(), status);
    CHECK_MSG(strstr(llmrt_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what, llmrt_last_error(), needle);
    llmrt_engine_image_close(img);
    /* the public loader reports the same */
    llmrt_engine *engine = NULL;
    CHECK(llmrt_engine_load(path, NULL, &engine) != LLMRT_OK && engine == NULL);
}

static void test_damage(void) {
    size_t size;
    uint8_t *good = read_bytes(engine_path, &size);
    CHECK(good != NULL);
    if (!good) return;
    uint8_t *copy = malloc(size);

    expect_rejected(good, 100, LLMRT_ERR_FORMAT, "not an llmrt engine", "shorter than header");
    expect_rejected(good, size - 1, LLMRT_ERR_FORMAT, "truncated", "truncated by one byte");
    expect_rejected(good, size / 2, LLMRT_ERR_FORMAT, "truncated", "truncated by half");

    memcpy(copy, good, size);
    copy[0] = 'X';
    expect_rejected(copy, size, LLMRT_ERR_FORMAT, "bad magic", "magic");

    memcpy(copy, good, size);
    copy[8] = 99; /* format version */
    expect_rejected(copy, size, LLMRT_ERR_FORMAT, "engine format 99 was made by a newer llmrt", "newer version");
    copy[8] = 0;
    expect_rejected(copy, size, LLMRT_ERR_FORMAT, "engine format 0, this llmrt reads formats 1..1", "older version");

    memcpy(copy, good, size);
    copy[40] ^= 1; /* a section name byte */
    expect_rejected(copy, size, LLMRT_ERR_FORMAT, "header checksum", "header byte");

    memcpy(copy, good, size);
    copy[4096 + 10] ^= 0x20; /* inside the meta section */
    expect_rejected(copy, size, LLMRT_ERR_FORMAT, "'meta' checksum", "meta byte");

    memcpy(copy, good, size);
    copy[size - 5] ^= 0x01; /* inside the weights */
    expect_rejected(copy, size, LLMRT_ERR_FORMAT, "'weights' checksum", "weight byte");

    uint64_t state = 42;
    for (size_t i = 0; i < size; i++) copy[i] = (uint8_t)test_rand_u64(&state);
    expect_rejected(copy, size, LLMRT_ERR_FORMAT, "not an llmrt engine", "random bytes");

    /* Tamper with the plan and recompute every checksum: only the plan
     * verifier stands between this file and an out-of-bounds kernel. */
    memcpy(copy, good, size);
    const uint8_t *sec = copy + 32; /* first section: meta */
    uint64_t offset = 0, length = 0;
    for (int i = 0; i < 8; i++) offset |= (uint64_t)sec[24 + i] << (8 * i);
    for (int i = 0; i < 8; i++) length |= (uint64_t)sec[32 + i] << (8 * i);
    char *meta = (char *)copy + offset;
    char *hit = memmem(meta, length, "\"dims\":[-1,32]", 14);
    CHECK(hit != NULL);
    if (hit) {
        memcpy(hit, "\"dims\":[-1,64]", 14);
        uint64_t sum = XXH3_64bits(meta, length);
        for (int i = 0; i < 8; i++) copy[32 + 40 + i] = (uint8_t)(sum >> (8 * i));
        memset(copy + 24, 0, 8);
        uint64_t header_sum = XXH3_64bits(copy, 4096);
        for (int i = 0; i < 8; i++) copy[24 + i] = (uint8_t)(header_sum >> (8 * i));
        expect_rejected(copy, size, LLMRT_ERR_FORMAT, "plan node", "tampered plan");
    }
    free(copy);
    free(good);
}

static void test_missing_file(void) {
    llmrt_engine_image *img = NULL;
    CHECK(llmrt_engine_image_open("/nonexistent/x.engine", 1, &img) == LLMRT_ERR_IO);
    CHECK(strstr(llmrt_last_error(), "/nonexistent/x.engine") != NULL);
}

/* The writer refuses a weight holding NaN or Inf (naming it, leaving no
 * file) unless told otherwise, and the reader an unknown backend name. */
static void test_writer_refusals(void) {
    llmrt_engine_image *img = NULL;
    CHECK_OK(llmrt_engine_image_open(engine_path, 1, &img));
    if (!img) return;
    llmrt_engine_write_input in = {.plan = img->plan, .config = &img->config,
                                   .build = {.backend = "tpu", .dtype = img->dtype, .act_dtype = img->act_dtype,
                                             .source = "test"}};
    char path[600], tmp[700];
    snprintf(path, sizeof path, "%s/tpu.engine", dir);
    CHECK_OK(llmrt_engine_write(path, &in));
    llmrt_engine_image *other = NULL;
    CHECK(llmrt_engine_image_open(path, 1, &other) == LLMRT_ERR_FORMAT);
    CHECK(strstr(llmrt_last_error(), "unknown backend 'tpu'") != NULL);

    in.build.backend = "cpu";
    llmrt_plan_weight *w = &img->plan->weights[img->plan->num_weights - 1];
    CHECK(w->dtype == LLMRT_DTYPE_F32 && w->nbytes >= 8);
    const void *saved = w->data;
    float *copy = malloc(w->nbytes);
    memcpy(copy, saved, w->nbytes);
    copy[w->nbytes / 4 - 1] = NAN;
    copy[1] = -INFINITY;
    w->data = copy;
    snprintf(path, sizeof path, "%s/nan.engine", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(llmrt_engine_write(path, &in) == LLMRT_ERR_FORMAT);
    CHECK(strstr(llmrt_last_error(), w->name) != NULL);
    CHECK(strstr(llmrt_last_error(), "2 non-finite values") != NULL);
    CHECK(strstr(llmrt_last_error(), "first at element 1)") != NULL);
    CHECK(access(path, F_OK) != 0 && access(tmp, F_OK) != 0);
    in.allow_nonfinite = 1;
    CHECK_OK(llmrt_engine_write(path, &in));
    w->data = saved;
    free(copy);
    CHECK(llmrt_engine_write(dir, &in) == LLMRT_ERR_INVALID_ARGUMENT); /* a directory */
    CHECK(strstr(llmrt_last_error(), "not a regular file") != NULL);
    llmrt_engine_image_close(img);
}

int main(void) {
    dir = test_temp_dir();
    build_tiny();
    RUN_TEST(test_round_trip);
    RUN_TEST(test_damage);
    RUN_TEST(test_missing_file);
    RUN_TEST(test_writer_refusals);
    return test_finish();
}
