#include "engine/engine_file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/log.h"
#include "core/quant.h"
#include "core/quant8.h"
#include "engine/plan_json.h"
#include "import/hf_config.h"
#include "models/models.h"

enum { MAX_SECTIONS = 8, SECTION_NAME_BYTES = 24, WEIGHTS_SECTION_ALIGNMENT = 4096 };

/* Header layout (all little-endian):
 *   0  magic[8]  8 u32 version  12 u32 section count  16 u64 file size
 *   24 u64 header checksum (XXH3-64 of the 4096 header bytes with this field 0)
 *   32 sections[8] × {name[24], u64 offset, u64 size, u64 checksum} (48 bytes each) */
typedef struct section {
    char name[SECTION_NAME_BYTES];
    uint64_t offset, size, checksum;
} section;

static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- writing ----------------------------------------------------------------- */

typedef struct writer {
    FILE *f;
    const char *path;
    uint64_t position;
} writer;

static llmrt_status write_bytes(writer *w, const void *data, size_t size) {
    if (size && fwrite(data, 1, size, w->f) != size)
        return llmrt_error(LLMRT_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    w->position += size;
    return LLMRT_OK;
}

static llmrt_status pad_to(writer *w, uint64_t alignment) {
    static const uint8_t zeros[4096];
    uint64_t pad = (alignment - w->position % alignment) % alignment;
    return write_bytes(w, zeros, (size_t)pad);
}

/* Counts the NaN and infinite elements of a floating-point weight (exponent
 * bits all ones) and the index of the first. Branch-free over the bits so
 * it vectorises: it runs over every weight byte of a build, beside the
 * write and the checksum. Other dtypes have none. */
static uint64_t count_nonfinite(const void *data, size_t nbytes, llmrt_dtype dtype, uint64_t *first) {
    uint64_t bad = 0;
    *first = 0;
    if (dtype == LLMRT_DTYPE_F32) {
        const uint32_t *p = data;
        size_t n = nbytes / 4;
        for (size_t i = 0; i < n; i++) bad += (p[i] & 0x7f800000u) == 0x7f800000u;
        if (bad)
            while ((p[*first] & 0x7f800000u) != 0x7f800000u) ++*first;
    } else if (dtype == LLMRT_DTYPE_F16 || dtype == LLMRT_DTYPE_BF16) {
        const uint16_t *p = data;
        const uint16_t mask = dtype == LLMRT_DTYPE_F16 ? 0x7c00u : 0x7f80u;
        size_t n = nbytes / 2;
        for (size_t i = 0; i < n; i++) bad += (uint16_t)(p[i] & mask) == mask;
        if (bad)
            while ((uint16_t)(p[*first] & mask) != mask) ++*first;
    }
    return bad;
}

static json_t *build_meta(const llmrt_engine_write_input *in) {
    json_t *meta = json_object();
    json_object_set_new(meta, "format_version", json_integer(LLMRT_ENGINE_FORMAT_VERSION));
    json_t *build = json_object();
    json_object_set_new(build, "backend", json_string(in->build.backend));
    json_object_set_new(build, "dtype", json_string(llmrt_dtype_name(in->build.dtype)));
    json_object_set_new(build, "act_dtype", json_string(llmrt_dtype_name(in->build.act_dtype)));
    json_object_set_new(build, "source", json_string(in->build.source ? in->build.source : ""));
    json_object_set_new(build, "seed", json_integer((json_int_t)in->build.seed));
    json_object_set_new(meta, "build", build);
    char *config_text = llmrt_model_config_to_json(in->config);
    json_t *config = config_text ? json_loads(config_text, 0, NULL) : NULL;
    free(config_text);
    json_object_set_new(meta, "model_config", config ? config : json_null());
    json_object_set_new(meta, "plan", llmrt_plan_to_json(in->plan));
    return meta;
}

llmrt_status llmrt_engine_write(const char *path, const llmrt_engine_write_input *in) {
    llmrt_plan *plan = (llmrt_plan *)in->plan; /* file offsets are assigned here */
    uint64_t weights_size = 0;
    for (int32_t i = 0; i < plan->num_weights; i++) {
        weights_size = (weights_size + LLMRT_ENGINE_WEIGHT_ALIGNMENT - 1) / LLMRT_ENGINE_WEIGHT_ALIGNMENT *
                       LLMRT_ENGINE_WEIGHT_ALIGNMENT;
        plan->weights[i].file_offset = weights_size;
        weights_size += plan->weights[i].nbytes;
    }
    json_t *meta = build_meta(in);
    char *meta_text = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    if (!meta_text) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: could not serialise the engine metadata", path);

    /* Write to a temporary name and rename, so a failed build never leaves a
     * half-written engine under the final name. */
    size_t path_len = strlen(path);
    char *tmp_path = malloc(path_len + 8);
    if (!tmp_path) {
        free(meta_text);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    snprintf(tmp_path, path_len + 8, "%s.tmp", path);
    writer w = {.path = path};
    llmrt_status opened = llmrt_file_check_output(path, NULL, 0, NULL);
    if (opened == LLMRT_OK) opened = llmrt_file_create_temp(tmp_path, &w.f);
    if (opened != LLMRT_OK) {
        llmrt_status s = opened;
        free(meta_text);
        free(tmp_path);
        return s;
    }
    section sections[MAX_SECTIONS];
    int count = 0;
    uint8_t header[LLMRT_ENGINE_HEADER_BYTES] = {0};
    llmrt_status s = write_bytes(&w, header, sizeof header);
    struct { const char *name; const void *data; size_t size; } blobs[] = {
        {"meta", meta_text, strlen(meta_text)},
        {"tokenizer", in->tokenizer.data, in->tokenizer.size},
        {"tokenizer_config", in->tokenizer_config.data, in->tokenizer_config.size},
        {"generation_config", in->generation_config.data, in->generation_config.size},
    };
    for (size_t b = 0; b < sizeof blobs / sizeof blobs[0] && s == LLMRT_OK; b++) {
        if (!blobs[b].data) continue;
        section *sec = &sections[count++];
        memset(sec, 0, sizeof *sec);
        snprintf(sec->name, sizeof sec->name, "%s", blobs[b].name);
        sec->offset = w.position;
        sec->size = blobs[b].size;
        sec->checksum = XXH3_64bits(blobs[b].data, blobs[b].size);
        s = write_bytes(&w, blobs[b].data, blobs[b].size);
    }
    if (s == LLMRT_OK) s = pad_to(&w, WEIGHTS_SECTION_ALIGNMENT);
    section *weights = &sections[count++];
    memset(weights, 0, sizeof *weights);
    snprintf(weights->name, sizeof weights->name, "weights");
    weights->offset = w.position;
    weights->size = weights_size;
    XXH3_state_t *hash = XXH3_createState();
    if (!hash) s = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    else XXH3_64bits_reset(hash);
    llmrt_progress progress;
    llmrt_progress_begin(&progress, "writing engine", weights_size);
    uint64_t start = w.position;
    for (int32_t i = 0; i < plan->num_weights && s == LLMRT_OK; i++) {
        const llmrt_plan_weight *pw = &plan->weights[i];
        uint64_t before = w.position - start;
        s = pad_to(&w, LLMRT_ENGINE_WEIGHT_ALIGNMENT);
        if (s != LLMRT_OK) break;
        uint64_t pad = w.position - start - before;
        if (pad) {
            static const uint8_t zeros[LLMRT_ENGINE_WEIGHT_ALIGNMENT];
            XXH3_64bits_update(hash, zeros, (size_t)pad);
        }
        if (w.position - start != pw->file_offset) {
            s = llmrt_error(LLMRT_ERR_INTERNAL, "%s: weight layout out of step", path);
            break;
        }
        uint64_t first, bad = in->allow_nonfinite ? 0 : count_nonfinite(pw->data, pw->nbytes, pw->dtype, &first);
        if (bad) {
            s = llmrt_error(LLMRT_ERR_FORMAT,
                            "weight '%s' has %llu non-finite values as %s (NaN or Inf; the first at element %llu): "
                            "not building (--allow-nonfinite to build anyway)",
                            pw->name, (unsigned long long)bad, llmrt_dtype_name(pw->dtype), (unsigned long long)first);
            break;
        }
        s = write_bytes(&w, pw->data, pw->nbytes);
        XXH3_64bits_update(hash, pw->data, pw->nbytes);
        llmrt_progress_add(&progress, pw->nbytes);
    }
    if (hash) {
        weights->checksum = XXH3_64bits_digest(hash);
        XXH3_freeState(hash);
    }
    if (s == LLMRT_OK) llmrt_progress_end(&progress);
    uint64_t file_size = w.position;

    memcpy(header, LLMRT_ENGINE_MAGIC, 8);
    put_u32(header + 8, LLMRT_ENGINE_FORMAT_VERSION);
    put_u32(header + 12, (uint32_t)count);
    put_u64(header + 16, file_size);
    for (int i = 0; i < count; i++) {
        uint8_t *p = header + 32 + 48 * i;
        memcpy(p, sections[i].name, SECTION_NAME_BYTES);
        put_u64(p + 24, sections[i].offset);
        put_u64(p + 32, sections[i].size);
        put_u64(p + 40, sections[i].checksum);
    }
    put_u64(header + 24, XXH3_64bits(header, sizeof header));
    if (s == LLMRT_OK && fseek(w.f, 0, SEEK_SET) != 0) s = llmrt_error(LLMRT_ERR_IO, "%s: seek failed", path);
    if (s == LLMRT_OK && fwrite(header, 1, sizeof header, w.f) != sizeof header)
        s = llmrt_error(LLMRT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (fclose(w.f) != 0 && s == LLMRT_OK) s = llmrt_error(LLMRT_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (s == LLMRT_OK && rename(tmp_path, path) != 0)
        s = llmrt_error(LLMRT_ERR_IO, "%s: cannot rename from %s: %s", path, tmp_path, strerror(errno));
    if (s != LLMRT_OK) remove(tmp_path);
    free(tmp_path);
    free(meta_text);
    return s;
}

/* ---- reading ----------------------------------------------------------------- */

static const section *find_section(const section *sections, int count, const char *name) {
    for (int i = 0; i < count; i++)
        if (strncmp(sections[i].name, name, SECTION_NAME_BYTES) == 0) return &sections[i];
    return NULL;
}

static llmrt_status parse_image(llmrt_engine_image *img, const char *name, int verify_weights) {
    const uint8_t *data = img->file.data;
    size_t size = img->file.size;
    if (size < LLMRT_ENGINE_HEADER_BYTES || memcmp(data, LLMRT_ENGINE_MAGIC, 8) != 0)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: not an llmrt engine file (bad magic or shorter than the header)",
                           name);
    img->format_version = get_u32(data + 8);
    /* Checked before the header checksum: another version may lay out the
     * header differently, and the version is what the user needs to know. */
    if (img->format_version < LLMRT_ENGINE_FORMAT_MIN_VERSION)
        return llmrt_error(LLMRT_ERR_FORMAT,
                           "%s: engine format %u, this llmrt reads formats %d..%d: rebuild the engine from its "
                           "checkpoint (llmrt build)",
                           name, img->format_version, LLMRT_ENGINE_FORMAT_MIN_VERSION, LLMRT_ENGINE_FORMAT_VERSION);
    if (img->format_version > LLMRT_ENGINE_FORMAT_VERSION)
        return llmrt_error(LLMRT_ERR_FORMAT,
                           "%s: engine format %u was made by a newer llmrt; this one reads formats %d..%d: load it "
                           "with that llmrt or rebuild the engine with this one (llmrt build)",
                           name, img->format_version, LLMRT_ENGINE_FORMAT_MIN_VERSION, LLMRT_ENGINE_FORMAT_VERSION);
    uint8_t header[LLMRT_ENGINE_HEADER_BYTES];
    memcpy(header, data, sizeof header);
    uint64_t stored = get_u64(header + 24);
    put_u64(header + 24, 0);
    if (XXH3_64bits(header, sizeof header) != stored)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: header checksum mismatch: the file is corrupted", name);
    uint64_t file_size = get_u64(data + 16);
    if (file_size != size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: file is %zu bytes but its header says %llu: truncated or extended",
                           name, size, (unsigned long long)file_size);
    uint32_t count = get_u32(data + 12);
    if (count == 0 || count > MAX_SECTIONS)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: %u sections (1..%d)", name, count, MAX_SECTIONS);
    section sections[MAX_SECTIONS];
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *p = data + 32 + 48 * i;
        memcpy(sections[i].name, p, SECTION_NAME_BYTES);
        sections[i].name[SECTION_NAME_BYTES - 1] = '\0';
        sections[i].offset = get_u64(p + 24);
        sections[i].size = get_u64(p + 32);
        sections[i].checksum = get_u64(p + 40);
        if (sections[i].offset < LLMRT_ENGINE_HEADER_BYTES || sections[i].offset > size ||
            sections[i].size > size - sections[i].offset)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: section '%s' [%llu, +%llu) lies outside the file", name,
                               sections[i].name, (unsigned long long)sections[i].offset,
                               (unsigned long long)sections[i].size);
        for (uint32_t j = 0; j < i; j++)
            if (sections[i].offset < sections[j].offset + sections[j].size &&
                sections[j].offset < sections[i].offset + sections[i].size)
                return llmrt_error(LLMRT_ERR_FORMAT, "%s: sections '%s' and '%s' overlap", name, sections[j].name,
                                   sections[i].name);
    }
    /* Every section but the weights is checked always (they are small). */
    for (uint32_t i = 0; i < count; i++) {
        if (strcmp(sections[i].name, "weights") == 0 && !verify_weights) continue;
        if (XXH3_64bits(data + sections[i].offset, (size_t)sections[i].size) != sections[i].checksum)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: section '%s' checksum mismatch: the file is corrupted", name,
                               sections[i].name);
    }
    const section *meta_sec = find_section(sections, (int)count, "meta");
    const section *weights_sec = find_section(sections, (int)count, "weights");
    if (!meta_sec || !weights_sec)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: missing the '%s' section", name, meta_sec ? "weights" : "meta");
    const section *blob;
    if ((blob = find_section(sections, (int)count, "tokenizer")))
        img->tokenizer = (llmrt_engine_blob){(const char *)data + blob->offset, (size_t)blob->size};
    if ((blob = find_section(sections, (int)count, "tokenizer_config")))
        img->tokenizer_config = (llmrt_engine_blob){(const char *)data + blob->offset, (size_t)blob->size};
    if ((blob = find_section(sections, (int)count, "generation_config")))
        img->generation_config = (llmrt_engine_blob){(const char *)data + blob->offset, (size_t)blob->size};
    img->weights_section_bytes = weights_sec->size;

    json_error_t jerr;
    json_t *meta = json_loadb((const char *)data + meta_sec->offset, (size_t)meta_sec->size, JSON_REJECT_DUPLICATES,
                              &jerr);
    if (!meta) return llmrt_error(LLMRT_ERR_FORMAT, "%s: metadata is not valid JSON: %s", name, jerr.text);
    llmrt_status s = LLMRT_OK;
    const json_t *build = json_object_get(meta, "build");
    const char *backend = json_string_value(json_object_get(build, "backend"));
    const char *dtype = json_string_value(json_object_get(build, "dtype"));
    const char *act_dtype = json_string_value(json_object_get(build, "act_dtype"));
    const char *source = json_string_value(json_object_get(build, "source"));
    if (!backend || !dtype || !act_dtype || strlen(backend) >= sizeof img->backend)
        s = llmrt_error(LLMRT_ERR_FORMAT, "%s: metadata field 'build' is incomplete", name);
    else if (strcmp(backend, "cpu") != 0 && strcmp(backend, "cuda") != 0)
        s = llmrt_error(LLMRT_ERR_FORMAT, "%s: metadata names an unknown backend '%s' (cpu, cuda)", name, backend);
    if (s == LLMRT_OK) {
        snprintf(img->backend, sizeof img->backend, "%s", backend);
        snprintf(img->source, sizeof img->source, "%s", source ? source : "");
        img->dtype = llmrt_dtype_from_name(dtype);
        img->act_dtype = llmrt_dtype_from_name(act_dtype);
        char *config_text = json_dumps(json_object_get(meta, "model_config"), JSON_COMPACT | JSON_ENCODE_ANY);
        s = config_text ? llmrt_model_config_from_json(config_text, strlen(config_text), &img->config)
                        : llmrt_error(LLMRT_ERR_FORMAT, "%s: metadata has no model_config", name);
        free(config_text);
        if (s != LLMRT_OK) llmrt_error_context(s, "%s: model_config", name);
    }
    if (s == LLMRT_OK) s = llmrt_plan_from_json(json_object_get(meta, "plan"), name, &img->plan);
    json_decref(meta);
    if (s != LLMRT_OK) return s;
    const uint8_t *weights = data + weights_sec->offset;
    for (int32_t i = 0; i < img->plan->num_weights; i++) {
        llmrt_plan_weight *w = &img->plan->weights[i];
        if (w->file_offset > weights_sec->size || w->nbytes > weights_sec->size - w->file_offset ||
            w->file_offset % LLMRT_ENGINE_WEIGHT_ALIGNMENT != 0)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: weight '%s' [%llu, +%zu) lies outside the weights section", name,
                               w->name, (unsigned long long)w->file_offset, w->nbytes);
        w->data = weights + w->file_offset;
    }
    /* a quantized weight's header must describe the matrix its nodes
     * name, since kernels index its sections through it */
    for (int32_t i = 0; i < img->plan->graph->num_nodes; i++) {
        const llmrt_node *n = &img->plan->graph->nodes[i];
        if (n->op != LLMRT_OP_WEIGHT || !llmrt_dtype_is_packed(n->dtype)) continue;
        const llmrt_plan_weight *w = &img->plan->weights[n->weight_slot];
        if (llmrt_dtype_is_q8(n->dtype)) {
            LLMRT_TRY(llmrt_q8weight_check(w->data, w->nbytes, n->dtype, n->dims[0], n->dims[1], w->name));
            continue;
        }
        LLMRT_TRY(llmrt_qweight_check(w->data, w->nbytes, n->dtype, n->dims[0], n->dims[1], n->iattr[1],
                                      (int)n->iattr[3], w->name));
    }
    if (llmrt_model_is_encoder(img->config.architecture)) {
        /* an encoder's output row: hidden state, pooled vector, logits */
        const llmrt_encoder_row_layout row = llmrt_encoder_layout(&img->config);
        if (img->plan->vocab_size != row.hidden + row.pooled + row.labels)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: plan output width %d disagrees with the encoder's %d", name,
                               img->plan->vocab_size, row.hidden + row.pooled + row.labels);
        if (img->plan->input_token_type_ids < 0)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: an encoder plan without a token_type_ids input", name);
    } else if (img->plan->vocab_size != img->config.vocab_size)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: plan vocab %d disagrees with model config %d", name,
                           img->plan->vocab_size, img->config.vocab_size);
    return LLMRT_OK;
}

llmrt_status llmrt_engine_image_open(const char *path, int verify_weights, llmrt_engine_image **out) {
    *out = NULL;
    llmrt_engine_image *img = calloc(1, sizeof *img);
    if (!img) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    llmrt_status s = llmrt_file_map(path, &img->file);
    if (s == LLMRT_OK) s = parse_image(img, path, verify_weights);
    if (s != LLMRT_OK) {
        llmrt_engine_image_close(img);
        return s;
    }
    *out = img;
    return LLMRT_OK;
}

llmrt_status llmrt_engine_image_open_memory(const uint8_t *data, size_t size, const char *name, int verify_weights,
                                            llmrt_engine_image **out) {
    *out = NULL;
    llmrt_engine_image *img = calloc(1, sizeof *img);
    if (!img) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    img->file.data = data;
    img->file.size = size;
    llmrt_status s = parse_image(img, name, verify_weights);
    img->file.data = NULL; /* not ours to unmap */
    img->file.size = 0;
    if (s != LLMRT_OK) {
        llmrt_engine_image_close(img);
        return s;
    }
    *out = img;
    return LLMRT_OK;
}

void llmrt_engine_image_close(llmrt_engine_image *img) {
    if (!img) return;
    llmrt_plan_free(img->plan);
    llmrt_file_unmap(&img->file);
    free(img);
}
