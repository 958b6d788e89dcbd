/* Growable buffers and the two hash maps of the tokenizer: token string → id
 * and merge pair → (rank, merged id). Both use open addressing with linear
 * probing over power-of-two tables kept at most half full, because lookups
 * (one per symbol pair during BPE) dominate and must stay one or two probes. */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tokenizer/tokenizer_internal.h"

llmrt_status tok_buf_reserve(tok_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return LLMRT_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory (%zu bytes)", cap);
    b->data = p;
    b->cap = cap;
    return LLMRT_OK;
}

llmrt_status tok_buf_append(tok_buf *b, const void *data, size_t len) {
    LLMRT_TRY(tok_buf_reserve(b, len));
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return LLMRT_OK;
}

void tok_buf_free(tok_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

static llmrt_status ids_reserve(tok_ids *v, size_t extra) {
    if (v->len + extra <= v->cap) return LLMRT_OK;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < v->len + extra) cap *= 2;
    int32_t *p = realloc(v->data, cap * sizeof *p);
    if (!p) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory (%zu ids)", cap);
    v->data = p;
    v->cap = cap;
    return LLMRT_OK;
}

llmrt_status tok_ids_push(tok_ids *v, int32_t id) {
    LLMRT_TRY(ids_reserve(v, 1));
    v->data[v->len++] = id;
    return LLMRT_OK;
}

llmrt_status tok_ids_append(tok_ids *v, const int32_t *ids, size_t n) {
    LLMRT_TRY(ids_reserve(v, n));
    if (n) memcpy(v->data + v->len, ids, n * sizeof *ids);
    v->len += n;
    return LLMRT_OK;
}

void tok_ids_free(tok_ids *v) {
    free(v->data);
    memset(v, 0, sizeof *v);
}

uint64_t tok_hash(const void *data, size_t len) { return XXH3_64bits(data, len); }

static uint32_t table_size_for(size_t expected) {
    uint32_t size = 16;
    while (size < expected * 2 + 16) size *= 2;
    return size;
}

llmrt_status tok_strmap_init(tok_strmap *m, size_t expected) {
    memset(m, 0, sizeof *m);
    uint32_t size = table_size_for(expected);
    m->slots = calloc(size, sizeof *m->slots);
    m->capacity = (uint32_t)(expected ? expected : 16);
    m->entries = malloc(m->capacity * sizeof *m->entries);
    if (!m->slots || !m->entries) {
        tok_strmap_free(m);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for a vocabulary map");
    }
    m->mask = size - 1;
    return LLMRT_OK;
}

static llmrt_status strmap_grow(tok_strmap *m) {
    uint32_t size = (m->mask + 1) * 2;
    uint32_t *slots = calloc(size, sizeof *slots);
    if (!slots) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for a vocabulary map");
    for (uint32_t e = 0; e < m->count; e++) {
        uint32_t i = (uint32_t)m->entries[e].hash & (size - 1);
        while (slots[i]) i = (i + 1) & (size - 1);
        slots[i] = e + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = size - 1;
    return LLMRT_OK;
}

llmrt_status tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t value) {
    uint64_t h = tok_hash(key, len);
    uint32_t i = (uint32_t)h & m->mask;
    while (m->slots[i]) {
        struct tok_strmap_entry *e = &m->entries[m->slots[i] - 1];
        if (e->hash == h && e->len == len && memcmp(m->pool.data + e->offset, key, len) == 0) {
            e->value = value;
            return LLMRT_OK;
        }
        i = (i + 1) & m->mask;
    }
    if (m->count == m->capacity) {
        uint32_t cap = m->capacity * 2;
        struct tok_strmap_entry *p = realloc(m->entries, cap * sizeof *p);
        if (!p) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for a vocabulary map");
        m->entries = p;
        m->capacity = cap;
    }
    if (len > UINT32_MAX || m->pool.len + len > UINT32_MAX)
        return llmrt_error(LLMRT_ERR_CAPACITY, "tokenizer: vocabulary strings exceed 4 GiB");
    uint32_t offset = (uint32_t)m->pool.len;
    LLMRT_TRY(tok_buf_append(&m->pool, key, len));
    m->entries[m->count] = (struct tok_strmap_entry){h, offset, (uint32_t)len, value};
    m->slots[i] = ++m->count;
    if ((size_t)m->count * 2 > (size_t)m->mask + 1) return strmap_grow(m);
    return LLMRT_OK;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    uint64_t h = tok_hash(key, len);
    uint32_t i = (uint32_t)h & m->mask;
    while (m->slots[i]) {
        const struct tok_strmap_entry *e = &m->entries[m->slots[i] - 1];
        if (e->hash == h && e->len == len && memcmp(m->pool.data + e->offset, key, len) == 0) return e->value;
        i = (i + 1) & m->mask;
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    free(m->entries);
    tok_buf_free(&m->pool);
    memset(m, 0, sizeof *m);
}

llmrt_status tok_merge_map_init(tok_merge_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    uint32_t size = table_size_for(expected);
    m->keys = malloc(size * sizeof *m->keys);
    m->ranks = malloc(size * sizeof *m->ranks);
    m->results = malloc(size * sizeof *m->results);
    if (!m->keys || !m->ranks || !m->results) {
        tok_merge_map_free(m);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory for the merges map");
    }
    memset(m->keys, 0xFF, size * sizeof *m->keys);
    m->mask = size - 1;
    return LLMRT_OK;
}

/* The table is sized for all merges up front, so put never grows it. A later
 * duplicate of a pair overwrites the earlier one, as HF's HashMap collect. */
void tok_merge_map_put(tok_merge_map *m, int32_t left, int32_t right, uint32_t rank, int32_t result) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(h >> 32) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & m->mask;
    if (m->keys[i] == UINT64_MAX) m->count++;
    m->keys[i] = key;
    m->ranks[i] = rank;
    m->results[i] = result;
}

void tok_merge_map_free(tok_merge_map *m) {
    free(m->keys);
    free(m->ranks);
    free(m->results);
    memset(m, 0, sizeof *m);
}
