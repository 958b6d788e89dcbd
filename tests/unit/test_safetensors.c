/* safetensors reader: well-formed files written by llmrt_safetensors_write,
 * hand-crafted corrupt headers (each must fail with the right status and a
 * message naming the file and tensor), and sharded checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "import/safetensors.h"
#include "test_util.h"

/* Checks a status and that the message holds every given substring. */
#define EXPECT_ERROR(expr, want, ...) \
    expect_error_at(__FILE__, __LINE__, (expr), (want), (const char *const[]){__VA_ARGS__, NULL})

static void expect_error_at(const char *file, int line, llmrt_status got, llmrt_status want,
                            const char *const *needles) {
    int ok = got == want;
    for (size_t i = 0; needles[i]; i++) ok = ok && strstr(llmrt_last_error(), needles[i]) != NULL;
    if (ok) {
        test_checks_passed++;
        return;
    }
    test_checks_failed++;
    fprintf(stderr, "%s:%d: expected status %s with", file, line, llmrt_status_name(want));
    for (size_t i = 0; needles[i]; i++) fprintf(stderr, " '%s'", needles[i]);
    fprintf(stderr, ", got %s: %s\n", llmrt_status_name(got), llmrt_last_error());
}

/* A safetensors image: u64 header length, `header` verbatim, `data_size`
 * bytes of data. Caller frees. */
static uint8_t *make_image(const char *header, size_t data_size, size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_size;
    uint8_t *image = malloc(*size);
    for (int i = 0; i < 8; i++) image[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(image + 8, header, n);
    for (size_t i = 0; i < data_size; i++) image[8 + n + i] = (uint8_t)i;
    return image;
}

/* Opens a hand-made image from memory; returns the status (closing on success). */
static llmrt_status open_header(const char *header, size_t data_size) {
    size_t size;
    uint8_t *image = make_image(header, data_size, &size);
    llmrt_checkpoint *cp = NULL;
    llmrt_status status = llmrt_checkpoint_open_memory(image, size, "bad.safetensors", &cp);
    CHECK((status == LLMRT_OK) == (cp != NULL));
    llmrt_checkpoint_close(cp);
    free(image);
    return status;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, size, f) == size);
    fclose(f);
}

static char *join(const char *dir, const char *name) { return llmrt_path_join(dir, name); }

static void test_dtype_names(void) {
    CHECK(llmrt_safetensors_dtype("F32") == LLMRT_DTYPE_F32);
    CHECK(llmrt_safetensors_dtype("F16") == LLMRT_DTYPE_F16);
    CHECK(llmrt_safetensors_dtype("BF16") == LLMRT_DTYPE_BF16);
    CHECK(llmrt_safetensors_dtype("F64") == LLMRT_DTYPE_F64);
    CHECK(llmrt_safetensors_dtype("I8") == LLMRT_DTYPE_I8);
    CHECK(llmrt_safetensors_dtype("U8") == LLMRT_DTYPE_U8);
    CHECK(llmrt_safetensors_dtype("I16") == LLMRT_DTYPE_I16);
    CHECK(llmrt_safetensors_dtype("I32") == LLMRT_DTYPE_I32);
    CHECK(llmrt_safetensors_dtype("I64") == LLMRT_DTYPE_I64);
    CHECK(llmrt_safetensors_dtype("BOOL") == LLMRT_DTYPE_BOOL);
    CHECK(llmrt_safetensors_dtype("F8_E4M3") == LLMRT_DTYPE_FP8_E4M3);
    CHECK(llmrt_safetensors_dtype("F8_E5M2") == LLMRT_DTYPE_FP8_E5M2);
    CHECK(llmrt_safetensors_dtype("f32") == LLMRT_DTYPE_INVALID); /* the format is case-sensitive */
    CHECK(llmrt_safetensors_dtype("U32") == LLMRT_DTYPE_INVALID);
    CHECK(llmrt_safetensors_dtype(NULL) == LLMRT_DTYPE_INVALID);
}

static void test_write_and_read(void) {
    char *dir = test_temp_dir();
    char *path = join(dir, "model.safetensors");
    float weight[6] = {1, 2, 3, 4, 5, 6};
    uint16_t bias[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
    int64_t scalar = -42;
    int64_t weight_shape[2] = {2, 3}, bias_shape[1] = {4}, empty_shape[2] = {0, 5};
    llmrt_st_write_entry entries[] = {
        {"model.layers.0.mlp.up_proj.weight", LLMRT_DTYPE_F32, 2, weight_shape, weight},
        {"bias", LLMRT_DTYPE_BF16, 1, bias_shape, bias},
        {"step", LLMRT_DTYPE_I64, 0, NULL, &scalar},
        {"empty", LLMRT_DTYPE_F16, 2, empty_shape, NULL},
    };
    CHECK_OK(llmrt_safetensors_write(path, entries, 4));

    /* The header is padded so the data region starts 8-byte aligned. */
    char *bytes;
    size_t size;
    CHECK_OK(llmrt_file_read_all(path, &bytes, &size));
    uint64_t header_length = 0;
    for (int i = 0; i < 8; i++) header_length |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
    CHECK(header_length % 8 == 0);
    CHECK(size == 8 + header_length + sizeof weight + sizeof bias + sizeof scalar);
    free(bytes);

    llmrt_checkpoint *cp = NULL;
    CHECK_OK(llmrt_checkpoint_open_file(path, &cp));
    CHECK(llmrt_checkpoint_tensor_count(cp) == 4);
    /* Sorted by name. */
    const char *sorted[] = {"bias", "empty", "model.layers.0.mlp.up_proj.weight", "step"};
    for (size_t i = 0; i < 4; i++) CHECK(strcmp(llmrt_checkpoint_tensor(cp, i)->name, sorted[i]) == 0);
    CHECK(llmrt_checkpoint_tensor(cp, 4) == NULL);

    const llmrt_st_tensor *w = llmrt_checkpoint_find(cp, "model.layers.0.mlp.up_proj.weight");
    CHECK(w && w->dtype == LLMRT_DTYPE_F32 && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3);
    CHECK(w && w->nbytes == sizeof weight && memcmp(w->data, weight, sizeof weight) == 0);
    CHECK(w && strcmp(w->file_path, path) == 0);
    const llmrt_st_tensor *b = llmrt_checkpoint_find(cp, "bias");
    CHECK(b && b->dtype == LLMRT_DTYPE_BF16 && b->ndim == 1 && b->shape[0] == 4 && b->nbytes == 8);
    CHECK(b && memcmp(b->data, bias, sizeof bias) == 0);
    /* Tensors are views: consecutive in the one mapping. */
    CHECK(w && b && b->data == w->data + sizeof weight);
    const llmrt_st_tensor *s = llmrt_checkpoint_find(cp, "step");
    CHECK(s && s->ndim == 0 && s->nbytes == 8 && memcmp(s->data, &scalar, 8) == 0);
    const llmrt_st_tensor *e = llmrt_checkpoint_find(cp, "empty");
    CHECK(e && e->ndim == 2 && e->shape[0] == 0 && e->shape[1] == 5 && e->nbytes == 0);
    CHECK(llmrt_checkpoint_find(cp, "missing") == NULL);
    CHECK(llmrt_checkpoint_find(cp, "bia") == NULL);
    llmrt_checkpoint_close(cp);

    /* The same file through open_dir (model.safetensors, no index). */
    CHECK_OK(llmrt_checkpoint_open_dir(dir, &cp));
    CHECK(llmrt_checkpoint_tensor_count(cp) == 4);
    llmrt_checkpoint_close(cp);

    /* A truncated copy: the last tensor now runs past the data region. */
    CHECK_OK(llmrt_file_read_all(path, &bytes, &size));
    char *cut = join(dir, "cut.safetensors");
    write_file(cut, bytes, size - 4);
    EXPECT_ERROR(llmrt_checkpoint_open_file(cut, &cp), LLMRT_ERR_FORMAT, "cut.safetensors", "'step'",
                 "past the end of the data region");
    CHECK(cp == NULL);
    free(bytes);

    EXPECT_ERROR(llmrt_checkpoint_open_file("/nonexistent/x.safetensors", &cp), LLMRT_ERR_IO, "/nonexistent");
    remove(cut);
    remove(path);
    rmdir(dir);
    free(cut);
    free(path);
    free(dir);
}

static void test_many_tensors_lookup(void) {
    enum { N = 1000 };
    char *dir = test_temp_dir();
    char *path = join(dir, "many.safetensors");
    static char names[N][48];
    static int32_t values[N];
    static int64_t one = 1;
    llmrt_st_write_entry entries[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "model.layers.%d.self_attn.q_proj.weight", N - 1 - i);
        values[i] = i * 7;
        entries[i] = (llmrt_st_write_entry){names[i], LLMRT_DTYPE_I32, 1, &one, &values[i]};
    }
    CHECK_OK(llmrt_safetensors_write(path, entries, N));
    llmrt_checkpoint *cp = NULL;
    CHECK_OK(llmrt_checkpoint_open_file(path, &cp));
    CHECK(llmrt_checkpoint_tensor_count(cp) == N);
    int found = 0;
    for (int i = 0; i < N; i++) {
        const llmrt_st_tensor *t = llmrt_checkpoint_find(cp, names[i]);
        int32_t v;
        if (t) memcpy(&v, t->data, 4);
        found += t && v == i * 7;
    }
    CHECK(found == N);
    for (size_t i = 1; i < N; i++)
        CHECK(strcmp(llmrt_checkpoint_tensor(cp, i - 1)->name, llmrt_checkpoint_tensor(cp, i)->name) < 0);
    llmrt_checkpoint_close(cp);
    remove(path);
    rmdir(dir);
    free(path);
    free(dir);
}

static void test_truncated_and_header_length(void) {
    llmrt_checkpoint *cp = NULL;
    uint8_t small[7] = {0};
    EXPECT_ERROR(llmrt_checkpoint_open_memory(small, 0, "bad.safetensors", &cp), LLMRT_ERR_FORMAT,
                 "bad.safetensors", "8-byte");
    EXPECT_ERROR(llmrt_checkpoint_open_memory(small, 7, "bad.safetensors", &cp), LLMRT_ERR_FORMAT,
                 "bad.safetensors", "7 bytes");
    CHECK(cp == NULL);

    /* Header length one past the end of the file. */
    size_t size;
    uint8_t *image = make_image("{}", 0, &size);
    image[0] = 3;
    EXPECT_ERROR(llmrt_checkpoint_open_memory(image, size, "bad.safetensors", &cp), LLMRT_ERR_FORMAT,
                 "bad.safetensors", "header length 3", "past the end of the file");
    /* Absurd header length (2^62): refused before anything looks at it. */
    image[0] = 0;
    image[7] = 0x40;
    EXPECT_ERROR(llmrt_checkpoint_open_memory(image, size, "bad.safetensors", &cp), LLMRT_ERR_FORMAT,
                 "bad.safetensors", "limit");
    memset(image, 0, 8);
    image[3] = 0x10; /* 256 MiB */
    EXPECT_ERROR(llmrt_checkpoint_open_memory(image, size, "bad.safetensors", &cp), LLMRT_ERR_FORMAT, "limit");
    free(image);

    /* An empty header object is a valid, empty checkpoint. */
    CHECK_OK(open_header("{}", 0));
    CHECK_OK(open_header("{\"__metadata__\": {\"format\": \"pt\"}}   ", 0));
}

static void test_bad_json(void) {
    EXPECT_ERROR(open_header("{\"w\": ", 0), LLMRT_ERR_FORMAT, "bad.safetensors", "not valid JSON");
    EXPECT_ERROR(open_header("{} trailing", 0), LLMRT_ERR_FORMAT, "bad.safetensors", "not valid JSON");
    EXPECT_ERROR(open_header("[1, 2]", 0), LLMRT_ERR_FORMAT, "bad.safetensors", "not a JSON object");
    EXPECT_ERROR(open_header("\"str\"", 0), LLMRT_ERR_FORMAT, "bad.safetensors", "not valid JSON");
    EXPECT_ERROR(open_header("{\"w\": 5}", 0), LLMRT_ERR_FORMAT, "bad.safetensors", "'w'", "not a JSON object");
    EXPECT_ERROR(open_header("{\"__metadata__\": [1]}", 0), LLMRT_ERR_FORMAT, "'__metadata__'");
    EXPECT_ERROR(open_header("{\"__metadata__\": {\"format\": 1}}", 0), LLMRT_ERR_FORMAT, "'__metadata__.format'");
    /* A NUL byte inside the header. */
    size_t size;
    uint8_t *image = make_image("{\"a\":{}}", 0, &size);
    image[8 + 2] = 0;
    llmrt_checkpoint *cp = NULL;
    EXPECT_ERROR(llmrt_checkpoint_open_memory(image, size, "bad.safetensors", &cp), LLMRT_ERR_FORMAT,
                 "bad.safetensors");
    free(image);
}

static void test_bad_entries(void) {
    const char *w = "'model.layers.0.mlp.up_proj.weight'";
#define ENTRY(body) "{\"model.layers.0.mlp.up_proj.weight\": " body "}"
    EXPECT_ERROR(open_header(ENTRY("{\"shape\": [2], \"data_offsets\": [0, 8]}"), 8), LLMRT_ERR_FORMAT, w,
                 "missing field 'dtype'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"data_offsets\": [0, 8]}"), 8), LLMRT_ERR_FORMAT, w,
                 "missing field 'shape'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2]}"), 8), LLMRT_ERR_FORMAT, w,
                 "missing field 'data_offsets'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": 4, \"shape\": [2], \"data_offsets\": [0, 8]}"), 8), LLMRT_ERR_FORMAT,
                 w, "'dtype'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": \"2\", \"data_offsets\": [0, 8]}"), 8),
                 LLMRT_ERR_FORMAT, w, "'shape'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": {\"a\": 1}}"), 8),
                 LLMRT_ERR_FORMAT, w, "'data_offsets'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0]}"), 8),
                 LLMRT_ERR_FORMAT, w, "'data_offsets'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8, 16]}"), 16),
                 LLMRT_ERR_FORMAT, w, "'data_offsets'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, \"8\"]}"), 8),
                 LLMRT_ERR_FORMAT, w, "data_offsets");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [-8, 0]}"), 8),
                 LLMRT_ERR_FORMAT, w, "data_offsets");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0.0, 8.0]}"), 8),
                 LLMRT_ERR_FORMAT, w, "data_offsets");
    /* dtypes: garbage is malformed, a real-but-unsupported one is unsupported. */
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F99\", \"shape\": [2], \"data_offsets\": [0, 8]}"), 8),
                 LLMRT_ERR_FORMAT, w, "unknown dtype 'F99'");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"U32\", \"shape\": [2], \"data_offsets\": [0, 8]}"), 8),
                 LLMRT_ERR_UNSUPPORTED, w, "'U32'");
    /* Shapes. */
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}"), 8),
                 LLMRT_ERR_FORMAT, w, "shape[0]");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [1, 2.0], \"data_offsets\": [0, 8]}"), 8),
                 LLMRT_ERR_FORMAT, w, "shape[1]");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [true], \"data_offsets\": [0, 8]}"), 8),
                 LLMRT_ERR_FORMAT, w, "shape[0]");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,2], \"data_offsets\": [0, 8]}"),
                             8),
                 LLMRT_ERR_UNSUPPORTED, w, "9 dimensions");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 16], "
                                   "\"data_offsets\": [0, 8]}"),
                             8),
                 LLMRT_ERR_FORMAT, w, "overflows");
    /* Elements fit but bytes do not: 2^62 * 4. */
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [4611686018427387904], \"data_offsets\": [0, 8]}"),
                             8),
                 LLMRT_ERR_FORMAT, w, "overflows");
    /* A zero dim after an overflowing prefix: the true size is 0, valid. */
    CHECK_OK(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 0], "
                               "\"data_offsets\": [0, 0]}"),
                         0));
    /* Offsets. */
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}"), 8),
                 LLMRT_ERR_FORMAT, w, "end before begin");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [10, 10], \"data_offsets\": [0, 400]}"), 320),
                 LLMRT_ERR_FORMAT,
                 "bad.safetensors: tensor 'model.layers.0.mlp.up_proj.weight': data_offsets [0, 400] past the end of "
                 "the data region (320 bytes)");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}"), 8),
                 LLMRT_ERR_FORMAT, w, "8 bytes", "needs 12");
    EXPECT_ERROR(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 9]}"), 16),
                 LLMRT_ERR_FORMAT, w, "needs 8");
    /* Unknown extra fields in an entry are ignored, as by the reference reader. */
    CHECK_OK(open_header(ENTRY("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"x\": 1}"), 8));
#undef ENTRY
}

static void test_overlap_alignment_duplicates(void) {
    EXPECT_ERROR(open_header("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                             " \"b\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}",
                             24),
                 LLMRT_ERR_FORMAT, "bad.safetensors", "overlap", "'a'", "'b'");
    /* Same region twice (listed in reverse offset order). */
    EXPECT_ERROR(open_header("{\"late\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]},"
                             " \"x\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [4, 8]},"
                             " \"early\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]}}",
                             8),
                 LLMRT_ERR_FORMAT, "overlap");
    /* Touching is fine; a hole is fine; an empty tensor inside another is fine. */
    CHECK_OK(open_header("{\"a\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 4]},"
                         " \"b\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [4, 8]},"
                         " \"c\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [10, 12]},"
                         " \"e\": {\"dtype\": \"U8\", \"shape\": [0], \"data_offsets\": [2, 2]}}",
                         12));
    /* Offsets not aligned to the element size are accepted; data is exact. */
    size_t size;
    uint8_t *image = make_image("{\"odd\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [3, 11]}}", 11,
                                &size);
    llmrt_checkpoint *cp = NULL;
    CHECK_OK(llmrt_checkpoint_open_memory(image, size, "odd.safetensors", &cp));
    const llmrt_st_tensor *t = llmrt_checkpoint_find(cp, "odd");
    CHECK(t && t->nbytes == 8 && t->data == image + size - 8 && t->data[0] == 3);
    CHECK(t && strcmp(t->file_path, "odd.safetensors") == 0);
    llmrt_checkpoint_close(cp);
    free(image);
    /* A duplicate name: jansson rejects it, and the message still names it. */
    EXPECT_ERROR(open_header("{\"model.layers.0.mlp.up_proj.weight\": {\"dtype\": \"U8\", \"shape\": [1], "
                             "\"data_offsets\": [0, 1]}, \"model.layers.0.mlp.up_proj.weight\" : {\"dtype\": \"U8\", "
                             "\"shape\": [1], \"data_offsets\": [1, 2]}}",
                             2),
                 LLMRT_ERR_FORMAT, "bad.safetensors", "'model.layers.0.mlp.up_proj.weight'", "twice");
    EXPECT_ERROR(open_header("{\"a\\\"b\": {}, \"a\\\"b\": {}}", 0), LLMRT_ERR_FORMAT, "'a\\\"b'", "twice");
}

static void test_writer_arguments(void) {
    char *dir = test_temp_dir();
    char *path = join(dir, "w.safetensors");
    int64_t shape[1] = {1};
    float x = 1;
    llmrt_st_write_entry dup[] = {{"a", LLMRT_DTYPE_F32, 1, shape, &x}, {"a", LLMRT_DTYPE_F32, 1, shape, &x}};
    EXPECT_ERROR(llmrt_safetensors_write(path, dup, 2), LLMRT_ERR_INVALID_ARGUMENT, "'a'");
    llmrt_st_write_entry bad_dtype[] = {{"a", LLMRT_DTYPE_INVALID, 1, shape, &x}};
    EXPECT_ERROR(llmrt_safetensors_write(path, bad_dtype, 1), LLMRT_ERR_INVALID_ARGUMENT, "'a'");
    int64_t negative[1] = {-1};
    llmrt_st_write_entry bad_shape[] = {{"b", LLMRT_DTYPE_F32, 1, negative, &x}};
    EXPECT_ERROR(llmrt_safetensors_write(path, bad_shape, 1), LLMRT_ERR_INVALID_ARGUMENT, "'b'");
    EXPECT_ERROR(llmrt_safetensors_write("/nonexistent/dir/w.safetensors", NULL, 0), LLMRT_ERR_IO, "/nonexistent");
    /* An empty checkpoint is valid. */
    CHECK_OK(llmrt_safetensors_write(path, NULL, 0));
    llmrt_checkpoint *cp = NULL;
    CHECK_OK(llmrt_checkpoint_open_file(path, &cp));
    CHECK(llmrt_checkpoint_tensor_count(cp) == 0 && llmrt_checkpoint_find(cp, "a") == NULL);
    llmrt_checkpoint_close(cp);
    remove(path);
    rmdir(dir);
    free(path);
    free(dir);
}

/* ---- sharded checkpoints ------------------------------------------------------ */

static const char *SHARD1 = "model-00001-of-00002.safetensors";
static const char *SHARD2 = "model-00002-of-00002.safetensors";

static void write_shard(const char *dir, const char *name, const char *const *tensors, size_t count) {
    static const float values[4] = {1, 2, 3, 4};
    static const int64_t shape[1] = {4};
    llmrt_st_write_entry entries[8];
    for (size_t i = 0; i < count; i++)
        entries[i] = (llmrt_st_write_entry){tensors[i], LLMRT_DTYPE_F32, 1, shape, values};
    char *path = join(dir, name);
    CHECK_OK(llmrt_safetensors_write(path, entries, count));
    free(path);
}

static void write_index(const char *dir, const char *json) {
    char *path = join(dir, "model.safetensors.index.json");
    write_file(path, json, strlen(json));
    free(path);
}

static void remove_all(const char *dir, const char *const *names) {
    for (size_t i = 0; names[i]; i++) {
        char *path = join(dir, names[i]);
        remove(path);
        free(path);
    }
    rmdir(dir);
}

static void test_sharded(void) {
    char *dir = test_temp_dir();
    write_shard(dir, SHARD1, (const char *const[]){"embed.weight", "layers.0.weight"}, 2);
    write_shard(dir, SHARD2, (const char *const[]){"layers.1.weight", "lm_head.weight"}, 2);
    char index[1024];
    snprintf(index, sizeof index,
             "{\"metadata\": {\"total_size\": 64}, \"weight_map\": {\"embed.weight\": \"%s\", "
             "\"layers.0.weight\": \"%s\", \"layers.1.weight\": \"%s\", \"lm_head.weight\": \"%s\"}}",
             SHARD1, SHARD1, SHARD2, SHARD2);
    write_index(dir, index);
    llmrt_checkpoint *cp = NULL;
    CHECK_OK(llmrt_checkpoint_open_dir(dir, &cp));
    CHECK(llmrt_checkpoint_tensor_count(cp) == 4);
    const llmrt_st_tensor *t = llmrt_checkpoint_find(cp, "lm_head.weight");
    CHECK(t && strstr(t->file_path, SHARD2) != NULL);
    t = llmrt_checkpoint_find(cp, "embed.weight");
    CHECK(t && strstr(t->file_path, SHARD1) != NULL && t->nbytes == 16);
    llmrt_checkpoint_close(cp);
    cp = NULL;

    /* The index names a shard that is not there. */
    snprintf(index, sizeof index, "{\"weight_map\": {\"embed.weight\": \"%s\", \"x\": \"model-00003.safetensors\"}}",
             SHARD1);
    write_index(dir, index);
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_NOT_FOUND, "model.safetensors.index.json",
                 "'model-00003.safetensors'");
    CHECK(cp == NULL);

    /* A tensor the index places in a shard that does not hold it. */
    snprintf(index, sizeof index, "{\"weight_map\": {\"embed.weight\": \"%s\", \"ghost.weight\": \"%s\"}}", SHARD1,
             SHARD1);
    write_index(dir, index);
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_NOT_FOUND, "'ghost.weight'", SHARD1);

    /* A tensor in a different shard than the index says. */
    snprintf(index, sizeof index, "{\"weight_map\": {\"embed.weight\": \"%s\", \"layers.0.weight\": \"%s\"}}",
             SHARD2, SHARD1);
    write_index(dir, index);
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "'embed.weight'", SHARD1, SHARD2);

    /* Path traversal in shard names. */
    const char *evil[] = {"../model.safetensors", "sub/model.safetensors", "/etc/passwd", "..", ""};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        snprintf(index, sizeof index, "{\"weight_map\": {\"embed.weight\": \"%s\"}}", evil[i]);
        write_index(dir, index);
        EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "'embed.weight'", "plain file name");
    }

    /* Malformed index files. */
    write_index(dir, "{\"weight_map\": [1]}");
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "'weight_map'");
    write_index(dir, "{\"weight_map\": {\"embed.weight\": 7}}");
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "'embed.weight'");
    write_index(dir, "{\"weight_map\": {}}");
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "empty");
    write_index(dir, "{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}");
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "model.safetensors.index.json");
    write_index(dir, "not json");
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "not valid JSON");

    /* A tensor held by two shards. */
    write_shard(dir, SHARD2, (const char *const[]){"embed.weight", "lm_head.weight"}, 2);
    snprintf(index, sizeof index, "{\"weight_map\": {\"embed.weight\": \"%s\", \"lm_head.weight\": \"%s\"}}", SHARD1,
             SHARD2);
    write_index(dir, index);
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "'embed.weight'", "both", SHARD1, SHARD2);

    /* A corrupt shard: the message names the shard and tensor. */
    char *shard_path = join(dir, SHARD2);
    const char *header = "{\"lm_head.weight\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 99]}}";
    size_t size;
    uint8_t *image = make_image(header, 16, &size);
    write_file(shard_path, image, size);
    free(image);
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, SHARD2, "'lm_head.weight'");
    free(shard_path);

    remove_all(dir, (const char *const[]){"model.safetensors.index.json", SHARD1, SHARD2, NULL});
    free(dir);
}

static void test_dir_without_index(void) {
    char *dir = test_temp_dir();
    llmrt_checkpoint *cp = NULL;
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_NOT_FOUND, dir);
    /* Every *.safetensors file is read when there is no index. */
    write_shard(dir, "b.safetensors", (const char *const[]){"y"}, 1);
    write_shard(dir, "a.safetensors", (const char *const[]){"x"}, 1);
    char *other = join(dir, "notes.txt"); /* not a .safetensors file: ignored */
    write_file(other, "hello", 5);
    CHECK_OK(llmrt_checkpoint_open_dir(dir, &cp));
    CHECK(llmrt_checkpoint_tensor_count(cp) == 2);
    const llmrt_st_tensor *y = llmrt_checkpoint_find(cp, "y");
    CHECK(y && strstr(y->file_path, "b.safetensors") != NULL);
    llmrt_checkpoint_close(cp);
    /* ... and the same name in two of them is an error. */
    write_shard(dir, "c.safetensors", (const char *const[]){"x"}, 1);
    EXPECT_ERROR(llmrt_checkpoint_open_dir(dir, &cp), LLMRT_ERR_FORMAT, "'x'", "a.safetensors", "c.safetensors");
    remove_all(dir, (const char *const[]){"a.safetensors", "b.safetensors", "c.safetensors", "notes.txt", NULL});
    free(other);
    free(dir);
}

int main(void) {
    RUN_TEST(test_dtype_names);
    RUN_TEST(test_write_and_read);
    RUN_TEST(test_many_tensors_lookup);
    RUN_TEST(test_truncated_and_header_length);
    RUN_TEST(test_bad_json);
    RUN_TEST(test_bad_entries);
    RUN_TEST(test_overlap_alignment_duplicates);
    RUN_TEST(test_writer_arguments);
    RUN_TEST(test_sharded);
    RUN_TEST(test_dir_without_index);
    return test_finish();
}
