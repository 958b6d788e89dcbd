#define _DEFAULT_SOURCE /* madvise */
/* safetensors reader and writer.
 *
 * Layout of a file: u64 little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the data region; offsets are relative to the start of the data region.
 *
 * Nothing read from a file is trusted: every length, offset, dtype and shape
 * is checked before a tensor is exposed, so a view (data, nbytes) handed out
 * always lies inside its mapping. A checkpoint keeps its tensors sorted by
 * name, which gives bsearch lookups and makes a name present twice (two
 * shards, or two files of a directory) an adjacent pair that is easy to find. */
#include "import/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"

/* Real headers are a few hundred kB even for 1000-tensor models; anything
 * near this limit is corruption or an attempt to make us allocate. */
enum { HEADER_LENGTH_LIMIT = 100 * 1000 * 1000 };

struct llmrt_checkpoint {
    llmrt_mapped_file *files; /* the shards; none for a memory image */
    size_t file_count;
    char *memory_name;        /* file_path of tensors from open_memory */
    llmrt_st_tensor *tensors; /* sorted by name once loading is complete */
    size_t tensor_count;
    size_t tensor_capacity;
    unsigned char *used;      /* [tensor_count]: looked up by llmrt_checkpoint_find */
};

llmrt_dtype llmrt_safetensors_dtype(const char *name) {
    static const struct { const char *name; llmrt_dtype dtype; } table[] = {
        {"F32", LLMRT_DTYPE_F32},         {"F16", LLMRT_DTYPE_F16},         {"BF16", LLMRT_DTYPE_BF16},
        {"F64", LLMRT_DTYPE_F64},         {"I8", LLMRT_DTYPE_I8},           {"U8", LLMRT_DTYPE_U8},
        {"I16", LLMRT_DTYPE_I16},         {"I32", LLMRT_DTYPE_I32},         {"I64", LLMRT_DTYPE_I64},
        {"BOOL", LLMRT_DTYPE_BOOL},       {"F8_E4M3", LLMRT_DTYPE_FP8_E4M3}, {"F8_E5M2", LLMRT_DTYPE_FP8_E5M2},
    };
    if (!name) return LLMRT_DTYPE_INVALID;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0) return table[i].dtype;
    return LLMRT_DTYPE_INVALID;
}

static const char *safetensors_dtype_name(llmrt_dtype dtype) {
    switch (dtype) {
    case LLMRT_DTYPE_F32: return "F32";
    case LLMRT_DTYPE_F16: return "F16";
    case LLMRT_DTYPE_BF16: return "BF16";
    case LLMRT_DTYPE_F64: return "F64";
    case LLMRT_DTYPE_I8: return "I8";
    case LLMRT_DTYPE_U8: return "U8";
    case LLMRT_DTYPE_I16: return "I16";
    case LLMRT_DTYPE_I32: return "I32";
    case LLMRT_DTYPE_I64: return "I64";
    case LLMRT_DTYPE_BOOL: return "BOOL";
    case LLMRT_DTYPE_FP8_E4M3: return "F8_E4M3";
    case LLMRT_DTYPE_FP8_E5M2: return "F8_E5M2";
    default: return NULL;
    }
}

/* dtypes the safetensors format defines but llmrt cannot hold: a file using
 * them is valid, so it earns UNSUPPORTED rather than FORMAT. */
static int is_known_unsupported_dtype(const char *name) {
    static const char *const names[] = {"U16", "U32", "U64", "C64", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

static llmrt_status push_tensor(llmrt_checkpoint *cp, const llmrt_st_tensor *tensor, const char *path) {
    if (cp->tensor_count == cp->tensor_capacity) {
        size_t capacity = cp->tensor_capacity ? cp->tensor_capacity * 2 : 64;
        llmrt_st_tensor *grown = realloc(cp->tensors, capacity * sizeof *grown);
        if (!grown) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory for the tensor table", path);
        cp->tensors = grown;
        cp->tensor_capacity = capacity;
    }
    llmrt_st_tensor *slot = &cp->tensors[cp->tensor_count];
    *slot = *tensor;
    slot->name = strdup(tensor->name);
    if (!slot->name) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory for tensor names", path);
    cp->tensor_count++;
    return LLMRT_OK;
}

/* Reads a JSON integer that must be >= 0 (shape dims and offsets are usize in
 * the format; 4.0 is not an integer there, so it is rejected too). */
static int json_to_u64(const json_t *value, uint64_t *out) {
    if (!json_is_integer(value)) return 0;
    json_int_t v = json_integer_value(value);
    if (v < 0) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* jansson reports a duplicate key without naming it, but its position is
 * just past the key's closing quote: step back over the string token so the
 * message can name the tensor. */
static void duplicate_key_at(const char *text, size_t length, size_t position, const char **key, int *key_length) {
    *key = "?";
    *key_length = 1;
    if (position > length) return;
    size_t end = position;
    while (end > 0 && text[end - 1] != '"') end--;
    if (end == 0) return;
    size_t close = end - 1, open = close;
    while (open > 0) {
        open--;
        if (text[open] != '"') continue;
        size_t backslashes = 0;
        while (open >= backslashes + 1 && text[open - backslashes - 1] == '\\') backslashes++;
        if (backslashes % 2 == 0) break;
    }
    if (text[open] != '"' || open == close) return;
    *key = text + open + 1;
    *key_length = (int)(close - open - 1 > 200 ? 200 : close - open - 1);
}

typedef struct extent {
    uint64_t begin, end;
    const char *name;
} extent;

static int compare_extents(const void *a, const void *b) {
    const extent *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Validates one header entry and fills `tensor` (name and file_path are set
 * by the caller). `data_size` is the size of the data region. */
static llmrt_status parse_entry(const char *path, const char *name, const json_t *entry, const uint8_t *data_region,
                                uint64_t data_size, llmrt_st_tensor *tensor, extent *ext) {
    if (!json_is_object(entry))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': header entry is not a JSON object", path, name);

    const json_t *dtype_value = json_object_get(entry, "dtype");
    if (!dtype_value) return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': missing field 'dtype'", path, name);
    if (!json_is_string(dtype_value))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': field 'dtype' is not a string", path, name);
    const char *dtype_name = json_string_value(dtype_value);
    tensor->dtype = llmrt_safetensors_dtype(dtype_name);
    if (tensor->dtype == LLMRT_DTYPE_INVALID) {
        if (is_known_unsupported_dtype(dtype_name))
            return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype '%s' is not supported", path, name,
                               dtype_name);
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.64s'", path, name, dtype_name);
    }

    const json_t *shape = json_object_get(entry, "shape");
    if (!shape) return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': missing field 'shape'", path, name);
    if (!json_is_array(shape))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': field 'shape' is not an array", path, name);
    size_t ndim = json_array_size(shape);
    if (ndim > LLMRT_MAX_DIMS)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s: tensor '%s': %zu dimensions, at most %d are supported", path,
                           name, ndim, (int)LLMRT_MAX_DIMS);
    uint64_t elements = 1;
    int overflow = 0;
    tensor->ndim = (int32_t)ndim;
    for (size_t d = 0; d < ndim; d++) {
        uint64_t dim;
        if (!json_to_u64(json_array_get(shape, d), &dim) || dim > (uint64_t)INT64_MAX)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", path,
                               name, d);
        tensor->shape[d] = (int64_t)dim;
        /* Keep multiplying after an overflow: a later 0 dim makes the true
         * product 0, which is valid. */
        if (__builtin_mul_overflow(elements, dim, &elements)) overflow = 1;
        if (dim == 0) overflow = 0, elements = 0;
    }
    uint64_t expected_bytes = 0;
    if (overflow || __builtin_mul_overflow(elements, (uint64_t)llmrt_dtype_size(tensor->dtype), &expected_bytes))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': shape product overflows", path, name);

    const json_t *offsets = json_object_get(entry, "data_offsets");
    if (!offsets) return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': missing field 'data_offsets'", path, name);
    if (!json_is_array(offsets) || json_array_size(offsets) != 2)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets' is not an array of 2 integers",
                           path, name);
    uint64_t begin, end;
    if (!json_to_u64(json_array_get(offsets, 0), &begin) || !json_to_u64(json_array_get(offsets, 1), &end))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': data_offsets are not non-negative integers", path,
                           name);
    if (end < begin)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", path,
                           name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return llmrt_error(LLMRT_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data region (%llu bytes)",
                           path, name, (unsigned long long)begin, (unsigned long long)end,
                           (unsigned long long)data_size);
    if (end - begin != expected_bytes)
        return llmrt_error(LLMRT_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape x dtype needs %llu",
                           path, name, (unsigned long long)begin, (unsigned long long)end,
                           (unsigned long long)(end - begin), (unsigned long long)expected_bytes);
    tensor->data = data_region + begin;
    tensor->nbytes = (size_t)(end - begin);
    ext->begin = begin;
    ext->end = end;
    ext->name = name;
    return LLMRT_OK;
}

static llmrt_status check_metadata(const char *path, const json_t *metadata) {
    /* The format defines __metadata__ as a string → string map. */
    if (!json_is_object(metadata))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '__metadata__' is not a JSON object", path);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)metadata, key, value) {
        if (!json_is_string(value))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: field '__metadata__.%s' is not a string", path, key);
    }
    return LLMRT_OK;
}

/* Parses one safetensors image and appends its tensors to `cp`. On failure
 * the tensors already appended stay owned by `cp`, which the caller frees. */
static llmrt_status parse_image(llmrt_checkpoint *cp, const uint8_t *data, size_t size, const char *path) {
    if (size < 8)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: file is %zu bytes, too short for the 8-byte header length", path,
                           size);
    uint64_t header_length = 0;
    for (int i = 0; i < 8; i++) header_length |= (uint64_t)data[i] << (8 * i);
    if (header_length > HEADER_LENGTH_LIMIT)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: header length %llu is over the %d-byte limit", path,
                           (unsigned long long)header_length, (int)HEADER_LENGTH_LIMIT);
    if (header_length > size - 8)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                           (unsigned long long)header_length, size);

    const char *header = (const char *)data + 8;
    json_error_t json_error;
    json_t *root = json_loadb(header, (size_t)header_length, JSON_REJECT_DUPLICATES, &json_error);
    if (!root) {
        if (json_error_code(&json_error) == json_error_duplicate_key) {
            const char *key;
            int key_length;
            duplicate_key_at(header, (size_t)header_length, (size_t)json_error.position, &key, &key_length);
            return llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%.*s': name appears twice in the header", path,
                               key_length, key);
        }
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: header is not valid JSON: %s (line %d, column %d)", path,
                           json_error.text, json_error.line, json_error.column);
    }
    llmrt_status status = LLMRT_OK;
    extent *extents = NULL;
    if (!json_is_object(root)) {
        status = llmrt_error(LLMRT_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }

    const uint8_t *data_region = data + 8 + header_length;
    uint64_t data_size = size - 8 - header_length;
    extents = malloc((json_object_size(root) + 1) * sizeof *extents);
    if (!extents) {
        status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
    }
    size_t extent_count = 0, misaligned = 0;
    const char *name;
    json_t *entry;
    json_object_foreach(root, name, entry) {
        if (strcmp(name, "__metadata__") == 0) {
            status = check_metadata(path, entry);
            if (status != LLMRT_OK) goto done;
            continue;
        }
        llmrt_st_tensor tensor = {.name = name};
        extent ext;
        status = parse_entry(path, name, entry, data_region, data_size, &tensor, &ext);
        if (status != LLMRT_OK) goto done;
        /* The format does not require offsets aligned to the element size
         * (and the header length need not be a multiple of 8), so accept and
         * count: consumers read through memcpy-safe paths anyway. */
        if (ext.begin % llmrt_dtype_size(tensor.dtype) != 0 || (uintptr_t)tensor.data % llmrt_dtype_size(tensor.dtype))
            misaligned++;
        tensor.file_path = path;
        status = push_tensor(cp, &tensor, path);
        if (status != LLMRT_OK) goto done;
        /* Empty tensors occupy no bytes, so they cannot overlap anything. */
        if (ext.end > ext.begin) extents[extent_count++] = ext;
    }
    if (misaligned)
        LLMRT_DEBUG("%s: %zu tensors are not aligned to their element size", path, misaligned);

    qsort(extents, extent_count, sizeof *extents, compare_extents);
    for (size_t i = 1; i < extent_count; i++) {
        if (extents[i].begin < extents[i - 1].end) {
            status = llmrt_error(LLMRT_ERR_FORMAT,
                                 "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]", path,
                                 extents[i].name, (unsigned long long)extents[i].begin,
                                 (unsigned long long)extents[i].end, extents[i - 1].name,
                                 (unsigned long long)extents[i - 1].begin, (unsigned long long)extents[i - 1].end);
            goto done;
        }
    }
done:
    free(extents);
    json_decref(root);
    return status;
}

static int compare_tensor_names(const void *a, const void *b) {
    return strcmp(((const llmrt_st_tensor *)a)->name, ((const llmrt_st_tensor *)b)->name);
}

/* Sorts the table for lookup and rejects a name present twice (possible only
 * across files: within one header jansson already rejects duplicates). */
static llmrt_status finish_table(llmrt_checkpoint *cp) {
    if (cp->tensor_count > 1) qsort(cp->tensors, cp->tensor_count, sizeof *cp->tensors, compare_tensor_names);
    for (size_t i = 1; i < cp->tensor_count; i++) {
        if (strcmp(cp->tensors[i].name, cp->tensors[i - 1].name) == 0)
            return llmrt_error(LLMRT_ERR_FORMAT, "tensor '%s' is present in both %s and %s", cp->tensors[i].name,
                               cp->tensors[i - 1].file_path, cp->tensors[i].file_path);
    }
    cp->used = calloc(cp->tensor_count + 1, 1);
    return cp->used ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
}

static llmrt_checkpoint *checkpoint_new(size_t file_capacity) {
    llmrt_checkpoint *cp = calloc(1, sizeof *cp);
    if (!cp) return NULL;
    if (file_capacity) {
        cp->files = calloc(file_capacity, sizeof *cp->files);
        if (!cp->files) {
            free(cp);
            return NULL;
        }
    }
    return cp;
}

void llmrt_checkpoint_close(llmrt_checkpoint *cp) {
    if (!cp) return;
    for (size_t i = 0; i < cp->tensor_count; i++) free((char *)cp->tensors[i].name);
    free(cp->tensors);
    for (size_t i = 0; i < cp->file_count; i++) llmrt_file_unmap(&cp->files[i]);
    free(cp->files);
    free(cp->memory_name);
    free(cp->used);
    free(cp);
}

/* Maps `path` as the next shard of `cp` and parses it. */
static llmrt_status add_file(llmrt_checkpoint *cp, const char *path) {
    llmrt_mapped_file *file = &cp->files[cp->file_count];
    LLMRT_TRY(llmrt_file_map(path, file));
    cp->file_count++;
    return parse_image(cp, file->data, file->size, file->path);
}

llmrt_status llmrt_checkpoint_open_memory(const uint8_t *data, size_t size, const char *name,
                                          llmrt_checkpoint **out) {
    *out = NULL;
    if (!data && size) return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "safetensors image: NULL data");
    llmrt_checkpoint *cp = checkpoint_new(0);
    if (!cp) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "safetensors image: out of memory");
    cp->memory_name = strdup(name ? name : "<memory>");
    llmrt_status status = cp->memory_name ? LLMRT_OK : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    if (status == LLMRT_OK) status = parse_image(cp, data ? data : (const uint8_t *)"", size, cp->memory_name);
    if (status == LLMRT_OK) status = finish_table(cp);
    if (status != LLMRT_OK) {
        llmrt_checkpoint_close(cp);
        return status;
    }
    *out = cp;
    return LLMRT_OK;
}

llmrt_status llmrt_checkpoint_open_file(const char *path, llmrt_checkpoint **out) {
    *out = NULL;
    llmrt_checkpoint *cp = checkpoint_new(1);
    if (!cp) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    llmrt_status status = add_file(cp, path);
    if (status == LLMRT_OK) status = finish_table(cp);
    if (status != LLMRT_OK) {
        llmrt_checkpoint_close(cp);
        return status;
    }
    *out = cp;
    return LLMRT_OK;
}

void llmrt_checkpoint_release(const llmrt_checkpoint *cp, const uint8_t *data, size_t nbytes) {
    if (!cp || !data || !nbytes) return;
    for (size_t i = 0; i < cp->file_count; i++) {
        const llmrt_mapped_file *f = &cp->files[i];
        if (!f->data || data < f->data || nbytes > f->size || (size_t)(data - f->data) > f->size - nbytes) continue;
        const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        const uintptr_t begin = ((uintptr_t)data + page - 1) / page * page, end = ((uintptr_t)data + nbytes) / page * page;
        if (end > begin) (void)madvise((void *)begin, end - begin, MADV_DONTNEED);
        return;
    }
}

size_t llmrt_checkpoint_tensor_count(const llmrt_checkpoint *cp) { return cp ? cp->tensor_count : 0; }

const llmrt_st_tensor *llmrt_checkpoint_tensor(const llmrt_checkpoint *cp, size_t index) {
    return cp && index < cp->tensor_count ? &cp->tensors[index] : NULL;
}

llmrt_status llmrt_checkpoint_open_views(const llmrt_st_tensor *tensors, size_t count, const char *name,
                                         llmrt_checkpoint **out) {
    *out = NULL;
    llmrt_checkpoint *cp = checkpoint_new(0);
    if (!cp) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
    cp->memory_name = strdup(name ? name : "<memory>");
    cp->tensors = calloc(count + 1, sizeof *cp->tensors);
    llmrt_status status = cp->memory_name && cp->tensors ? LLMRT_OK
                                                         : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < count && status == LLMRT_OK; i++) {
        cp->tensors[i] = tensors[i];
        cp->tensors[i].file_path = cp->memory_name;
        cp->tensors[i].name = strdup(tensors[i].name);
        if (!cp->tensors[i].name) status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        else cp->tensor_count++;
    }
    cp->tensor_capacity = count + 1;
    if (status == LLMRT_OK) status = finish_table(cp);
    if (status != LLMRT_OK) {
        llmrt_checkpoint_close(cp);
        return status;
    }
    *out = cp;
    return LLMRT_OK;
}

const llmrt_st_tensor *llmrt_checkpoint_peek(const llmrt_checkpoint *cp, const char *name) {
    if (!cp || !name || cp->tensor_count == 0) return NULL;
    llmrt_st_tensor key = {.name = name};
    return bsearch(&key, cp->tensors, cp->tensor_count, sizeof key, compare_tensor_names);
}

const llmrt_st_tensor *llmrt_checkpoint_find(const llmrt_checkpoint *cp, const char *name) {
    const llmrt_st_tensor *t = llmrt_checkpoint_peek(cp, name);
    if (t && cp->used) cp->used[t - cp->tensors] = 1;
    return t;
}

/* Buffers some exporters save that no model reads: not an error. */
static int is_ignorable_tensor(const char *name) {
    const char *suffix = ".rotary_emb.inv_freq";
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

size_t llmrt_checkpoint_unused(const llmrt_checkpoint *cp, char *list, size_t cap) {
    size_t count = 0, len = 0;
    if (cap) list[0] = '\0';
    for (size_t i = 0; cp && cp->used && i < cp->tensor_count; i++) {
        if (cp->used[i] || is_ignorable_tensor(cp->tensors[i].name)) continue;
        count++;
        if (len < cap) {
            int n = snprintf(list + len, cap - len, "%s%s", count > 1 ? ", " : "", cp->tensors[i].name);
            len = n < 0 ? cap : len + (size_t)n;
        }
    }
    if (cap > 4 && len >= cap) memcpy(list + cap - 4, "...", 4);
    return count;
}

/* ---- sharded checkpoints --------------------------------------------------- */

/* A shard name comes from the index file, so it must not reach outside the
 * checkpoint directory. */
static int is_safe_shard_name(const char *name) {
    return name[0] != '\0' && !strchr(name, '/') && !strchr(name, '\\') && !strstr(name, "..");
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Opens every shard named by an index once (in sorted order), then checks
 * that each tensor the index names lives in the shard it says. */
static llmrt_status open_index(const char *dir, const char *index_path, llmrt_checkpoint **out) {
    char *text = NULL;
    size_t length = 0;
    LLMRT_TRY(llmrt_file_read_all(index_path, &text, &length));
    json_error_t json_error;
    json_t *root = json_loadb(text, length, JSON_REJECT_DUPLICATES, &json_error);
    free(text);
    if (!root)
        return llmrt_error(LLMRT_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", index_path,
                           json_error.text, json_error.line, json_error.column);

    llmrt_status status = LLMRT_OK;
    const char **shards = NULL;
    char *path = NULL;
    llmrt_checkpoint *cp = NULL;
    json_t *weight_map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(weight_map)) {
        status = llmrt_error(LLMRT_ERR_FORMAT, "%s: field 'weight_map' is missing or not an object", index_path);
        goto done;
    }
    size_t entry_count = json_object_size(weight_map), shard_count = 0;
    shards = malloc((entry_count + 1) * sizeof *shards);
    if (!shards) {
        status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", index_path);
        goto done;
    }
    const char *tensor_name;
    json_t *shard_value;
    json_object_foreach(weight_map, tensor_name, shard_value) {
        if (!json_is_string(shard_value)) {
            status = llmrt_error(LLMRT_ERR_FORMAT, "%s: weight_map['%s'] is not a string", index_path, tensor_name);
            goto done;
        }
        const char *shard = json_string_value(shard_value);
        if (!is_safe_shard_name(shard)) {
            status = llmrt_error(LLMRT_ERR_FORMAT, "%s: weight_map['%s'] = '%.200s' is not a plain file name",
                                 index_path, tensor_name, shard);
            goto done;
        }
        shards[shard_count++] = shard;
    }
    if (shard_count == 0) {
        status = llmrt_error(LLMRT_ERR_FORMAT, "%s: weight_map is empty", index_path);
        goto done;
    }
    qsort(shards, shard_count, sizeof *shards, compare_strings);
    size_t unique = 0;
    for (size_t i = 0; i < shard_count; i++)
        if (unique == 0 || strcmp(shards[unique - 1], shards[i]) != 0) shards[unique++] = shards[i];

    cp = checkpoint_new(unique);
    if (!cp) {
        status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", index_path);
        goto done;
    }
    for (size_t i = 0; i < unique && status == LLMRT_OK; i++) {
        path = llmrt_path_join(dir, shards[i]);
        if (!path) status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", index_path);
        else if (!llmrt_file_exists(path))
            status = llmrt_error(LLMRT_ERR_NOT_FOUND, "%s: shard '%s' named by the index does not exist", index_path,
                                 shards[i]);
        else status = add_file(cp, path);
        free(path);
        path = NULL;
    }
    if (status == LLMRT_OK) status = finish_table(cp);
    if (status != LLMRT_OK) goto done;

    json_object_foreach(weight_map, tensor_name, shard_value) {
        const char *shard = json_string_value(shard_value);
        const llmrt_st_tensor *tensor = llmrt_checkpoint_find(cp, tensor_name);
        if (!tensor) {
            status = llmrt_error(LLMRT_ERR_NOT_FOUND, "%s: tensor '%s' is not in shard '%s'", index_path, tensor_name,
                                 shard);
            goto done;
        }
        const char *slash = strrchr(tensor->file_path, '/');
        const char *actual = slash ? slash + 1 : tensor->file_path;
        if (strcmp(actual, shard) != 0) {
            status = llmrt_error(LLMRT_ERR_FORMAT, "%s: tensor '%s' is in shard '%s', not in '%s' as the index says",
                                 index_path, tensor_name, actual, shard);
            goto done;
        }
    }
    memset(cp->used, 0, cp->tensor_count); /* the lookups above were checks, not uses */
    /* Tensors a shard holds beyond the index are kept: transformers ignores
     * them too, and a builder only ever asks for names it knows. */
    if (cp->tensor_count > entry_count)
        LLMRT_DEBUG("%s: shards hold %zu tensors the index does not name", index_path, cp->tensor_count - entry_count);

done:
    free(shards);
    json_decref(root);
    if (status != LLMRT_OK) {
        llmrt_checkpoint_close(cp);
        return status;
    }
    *out = cp;
    return LLMRT_OK;
}

static int has_suffix(const char *name, const char *suffix) {
    size_t a = strlen(name), b = strlen(suffix);
    return a >= b && strcmp(name + a - b, suffix) == 0;
}

/* No index and no model.safetensors: every *.safetensors file, in sorted
 * order so that tensor order and error messages are reproducible. */
static llmrt_status open_all_files(const char *dir, llmrt_checkpoint **out) {
    DIR *handle = opendir(dir);
    if (!handle) return llmrt_error(LLMRT_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t count = 0, capacity = 0;
    llmrt_status status = LLMRT_OK;
    struct dirent *entry;
    while ((entry = readdir(handle)) != NULL) {
        if (entry->d_name[0] == '.' || !has_suffix(entry->d_name, ".safetensors")) continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            char **grown = realloc(names, capacity * sizeof *names);
            if (!grown) {
                status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
                break;
            }
            names = grown;
        }
        names[count] = strdup(entry->d_name);
        if (!names[count]) {
            status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
            break;
        }
        count++;
    }
    closedir(handle);
    llmrt_checkpoint *cp = NULL;
    if (status == LLMRT_OK && count == 0)
        status = llmrt_error(LLMRT_ERR_NOT_FOUND, "%s: no model.safetensors.index.json and no *.safetensors files", dir);
    if (status == LLMRT_OK) {
        qsort(names, count, sizeof *names, compare_strings);
        cp = checkpoint_new(count);
        if (!cp) status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    }
    for (size_t i = 0; i < count && status == LLMRT_OK; i++) {
        char *path = llmrt_path_join(dir, names[i]);
        status = path ? add_file(cp, path) : llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
        free(path);
    }
    if (status == LLMRT_OK) status = finish_table(cp);
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    if (status != LLMRT_OK) {
        llmrt_checkpoint_close(cp);
        return status;
    }
    *out = cp;
    return LLMRT_OK;
}

llmrt_status llmrt_checkpoint_open_dir(const char *dir, llmrt_checkpoint **out) {
    *out = NULL;
    char *index_path = llmrt_path_join(dir, "model.safetensors.index.json");
    char *single_path = llmrt_path_join(dir, "model.safetensors");
    llmrt_status status;
    if (!index_path || !single_path) status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    else if (llmrt_file_exists(index_path)) status = open_index(dir, index_path, out);
    else if (llmrt_file_exists(single_path)) status = llmrt_checkpoint_open_file(single_path, out);
    else status = open_all_files(dir, out);
    free(index_path);
    free(single_path);
    return status;
}

/* ---- writer ----------------------------------------------------------------- */

static llmrt_status build_header(const char *path, const llmrt_st_write_entry *entries, size_t count,
                                 char **out_text) {
    *out_text = NULL;
    json_t *root = json_object();
    if (!root) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    llmrt_status status = LLMRT_OK;
    uint64_t offset = 0;
    for (size_t i = 0; i < count && status == LLMRT_OK; i++) {
        const llmrt_st_write_entry *e = &entries[i];
        const char *dtype = safetensors_dtype_name(e->dtype);
        if (!e->name || !dtype || e->ndim < 0 || e->ndim > LLMRT_MAX_DIMS || (e->ndim && !e->shape)) {
            status = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: entry %zu ('%s'): bad name, dtype or shape", path,
                                 i, e->name ? e->name : "(null)");
            break;
        }
        if (json_object_get(root, e->name)) {
            status = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: tensor '%s' given twice", path, e->name);
            break;
        }
        uint64_t bytes = llmrt_dtype_size(e->dtype);
        json_t *shape = json_array();
        for (int32_t d = 0; d < e->ndim && status == LLMRT_OK; d++) {
            if (e->shape[d] < 0 || __builtin_mul_overflow(bytes, (uint64_t)e->shape[d], &bytes) ||
                bytes > (uint64_t)INT64_MAX)
                status = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: tensor '%s': bad shape", path, e->name);
            else json_array_append_new(shape, json_integer(e->shape[d]));
        }
        if (status == LLMRT_OK && bytes && !e->data)
            status = llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "%s: tensor '%s': NULL data", path, e->name);
        if (status != LLMRT_OK) {
            json_decref(shape);
            break;
        }
        /* "o" steals the reference to shape, on failure too. */
        json_t *item = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype, "shape", shape, "data_offsets",
                                 (json_int_t)offset, (json_int_t)(offset + bytes));
        if (!item || json_object_set_new(root, e->name, item) != 0)
            status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        offset += bytes;
    }
    char *text = status == LLMRT_OK ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (status == LLMRT_OK && !text) status = llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    *out_text = text;
    return status;
}

llmrt_status llmrt_safetensors_write(const char *path, const llmrt_st_write_entry *entries, size_t count) {
    char *header = NULL;
    LLMRT_TRY(build_header(path, entries, count, &header));
    /* Pad the header with spaces (valid JSON whitespace) so the data region
     * starts 8-byte aligned, as the reference writer does. */
    size_t text_length = strlen(header);
    size_t padded = (text_length + 7) & ~(size_t)7;
    uint8_t length_bytes[8];
    for (int i = 0; i < 8; i++) length_bytes[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(header);
        return llmrt_error(LLMRT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    int ok = fwrite(length_bytes, 1, 8, f) == 8 && fwrite(header, 1, text_length, f) == text_length;
    for (size_t i = text_length; i < padded && ok; i++) ok = fputc(' ', f) != EOF;
    for (size_t i = 0; i < count && ok; i++) {
        size_t bytes = llmrt_dtype_size(entries[i].dtype);
        for (int32_t d = 0; d < entries[i].ndim; d++) bytes *= (size_t)entries[i].shape[d];
        if (bytes) ok = fwrite(entries[i].data, 1, bytes, f) == bytes;
    }
    free(header);
    if (fclose(f) != 0) ok = 0;
    if (!ok) return llmrt_error(LLMRT_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    return LLMRT_OK;
}
