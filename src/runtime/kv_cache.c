#include "runtime/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

struct kv_cache {
    int32_t num_blocks, block_size;
    int32_t *ref_count;   /* [num_blocks] */
    int32_t *free_stack;  /* never-indexed free blocks */
    int32_t num_free;
    /* Cached blocks in LRU order (head = least recently released), as a
     * doubly linked list over block ids, so that taking one back is O(1). */
    int32_t *lru_prev, *lru_next;
    int32_t lru_head, lru_tail, num_cached;
    /* The prefix index: chained hash buckets over block ids. */
    uint8_t *indexed;
    uint64_t *key, *parent_key;
    int32_t *bucket_head, *bucket_next;
    uint32_t bucket_mask;
    int32_t *tokens;      /* [num_blocks, block_size]: what an indexed block holds */
    int32_t used, peak_used;
    int64_t queried, hits;
};

llmrt_status kv_cache_create(int32_t num_blocks, int32_t block_size, kv_cache **out) {
    *out = NULL;
    if (num_blocks < 1 || block_size < 1)
        return llmrt_error(LLMRT_ERR_INVALID_ARGUMENT, "kv cache: %d blocks of %d tokens", num_blocks, block_size);
    kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "kv cache: out of memory");
    uint32_t buckets = 1;
    while (buckets < (uint32_t)num_blocks * 2u) buckets <<= 1;
    size_t n = (size_t)num_blocks;
    kv->num_blocks = num_blocks;
    kv->block_size = block_size;
    kv->bucket_mask = buckets - 1;
    kv->ref_count = calloc(n, sizeof *kv->ref_count);
    kv->free_stack = malloc(n * sizeof *kv->free_stack);
    kv->lru_prev = malloc(n * sizeof *kv->lru_prev);
    kv->lru_next = malloc(n * sizeof *kv->lru_next);
    kv->indexed = calloc(n, 1);
    kv->key = calloc(n, sizeof *kv->key);
    kv->parent_key = calloc(n, sizeof *kv->parent_key);
    kv->bucket_head = malloc(buckets * sizeof *kv->bucket_head);
    kv->bucket_next = malloc(n * sizeof *kv->bucket_next);
    kv->tokens = malloc(n * (size_t)block_size * sizeof *kv->tokens);
    if (!kv->ref_count || !kv->free_stack || !kv->lru_prev || !kv->lru_next || !kv->indexed || !kv->key ||
        !kv->parent_key || !kv->bucket_head || !kv->bucket_next || !kv->tokens) {
        kv_cache_free(kv);
        return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "kv cache: out of memory for %d blocks", num_blocks);
    }
    /* pop order 0, 1, 2, ... (the stack's top is its end) */
    for (int32_t i = 0; i < num_blocks; i++) kv->free_stack[i] = num_blocks - 1 - i;
    kv->num_free = num_blocks;
    for (uint32_t i = 0; i < buckets; i++) kv->bucket_head[i] = -1;
    kv->lru_head = kv->lru_tail = -1;
    *out = kv;
    return LLMRT_OK;
}

void kv_cache_free(kv_cache *kv) {
    if (!kv) return;
    free(kv->ref_count);
    free(kv->free_stack);
    free(kv->lru_prev);
    free(kv->lru_next);
    free(kv->indexed);
    free(kv->key);
    free(kv->parent_key);
    free(kv->bucket_head);
    free(kv->bucket_next);
    free(kv->tokens);
    free(kv);
}

int32_t kv_cache_block_size(const kv_cache *kv) { return kv->block_size; }
int32_t kv_cache_available(const kv_cache *kv) { return kv->num_free + kv->num_cached; }
int32_t kv_cache_ref_count(const kv_cache *kv, int32_t block) { return kv->ref_count[block]; }

static void lru_remove(kv_cache *kv, int32_t b) {
    int32_t p = kv->lru_prev[b], n = kv->lru_next[b];
    if (p >= 0) kv->lru_next[p] = n;
    else kv->lru_head = n;
    if (n >= 0) kv->lru_prev[n] = p;
    else kv->lru_tail = p;
    kv->num_cached--;
}

static void lru_push(kv_cache *kv, int32_t b) {
    kv->lru_prev[b] = kv->lru_tail;
    kv->lru_next[b] = -1;
    if (kv->lru_tail >= 0) kv->lru_next[kv->lru_tail] = b;
    else kv->lru_head = b;
    kv->lru_tail = b;
    kv->num_cached++;
}

static void unindex(kv_cache *kv, int32_t b) {
    int32_t *link = &kv->bucket_head[kv->key[b] & kv->bucket_mask];
    while (*link != b) link = &kv->bucket_next[*link];
    *link = kv->bucket_next[b];
    kv->indexed[b] = 0;
}

static void mark_used(kv_cache *kv) {
    kv->used++;
    if (kv->used > kv->peak_used) kv->peak_used = kv->used;
}

int32_t kv_cache_alloc(kv_cache *kv) {
    int32_t b;
    if (kv->num_free > 0) {
        b = kv->free_stack[--kv->num_free];
    } else if (kv->lru_head >= 0) {
        b = kv->lru_head; /* evict the least recently used cached prefix block */
        lru_remove(kv, b);
        unindex(kv, b);
    } else {
        return -1;
    }
    kv->ref_count[b] = 1;
    mark_used(kv);
    return b;
}

/* Negative ids are a block table's slots freed outside a sliding window. */
void kv_cache_retain(kv_cache *kv, int32_t b) {
    if (b < 0) return;
    if (kv->ref_count[b]++ == 0) {
        lru_remove(kv, b); /* only indexed blocks sit at ref 0 outside the free stack */
        mark_used(kv);
    }
}

void kv_cache_release(kv_cache *kv, int32_t b) {
    if (b < 0) return;
    if (--kv->ref_count[b] > 0) return;
    kv->used--;
    if (kv->indexed[b]) lru_push(kv, b);
    else kv->free_stack[kv->num_free++] = b;
}

uint64_t kv_cache_block_key(const kv_cache *kv, uint64_t parent, const int32_t *tokens) {
    return XXH3_64bits_withSeed(tokens, (size_t)kv->block_size * sizeof *tokens, parent);
}

static int32_t find(const kv_cache *kv, uint64_t parent, uint64_t key, const int32_t *tokens) {
    for (int32_t b = kv->bucket_head[key & kv->bucket_mask]; b >= 0; b = kv->bucket_next[b])
        if (kv->key[b] == key && kv->parent_key[b] == parent &&
            memcmp(kv->tokens + (size_t)b * kv->block_size, tokens, (size_t)kv->block_size * sizeof *tokens) == 0)
            return b;
    return -1;
}

int32_t kv_cache_match_prefix(const kv_cache *kv, const int32_t *tokens, int32_t max_blocks, int32_t *blocks,
                              uint64_t *last_key) {
    uint64_t parent = KV_CACHE_ROOT_KEY;
    int32_t n = 0;
    while (n < max_blocks) {
        const int32_t *t = tokens + (size_t)n * kv->block_size;
        uint64_t key = kv_cache_block_key(kv, parent, t);
        int32_t b = find(kv, parent, key, t);
        if (b < 0) break;
        blocks[n++] = b;
        parent = key;
    }
    *last_key = parent;
    return n;
}

int32_t kv_cache_count_cached(const kv_cache *kv, const int32_t *blocks, int32_t count) {
    int32_t cached = 0;
    for (int32_t i = 0; i < count; i++) cached += kv->ref_count[blocks[i]] == 0;
    return cached;
}

void kv_cache_index_block(kv_cache *kv, int32_t b, uint64_t parent, uint64_t key, const int32_t *tokens) {
    if (kv->indexed[b] || find(kv, parent, key, tokens) >= 0) return;
    kv->indexed[b] = 1;
    kv->key[b] = key;
    kv->parent_key[b] = parent;
    memcpy(kv->tokens + (size_t)b * kv->block_size, tokens, (size_t)kv->block_size * sizeof *tokens);
    uint32_t bucket = (uint32_t)(key & kv->bucket_mask);
    kv->bucket_next[b] = kv->bucket_head[bucket];
    kv->bucket_head[bucket] = b;
}

void kv_cache_record_lookup(kv_cache *kv, int32_t queried, int32_t hits) {
    kv->queried += queried;
    kv->hits += hits;
}

void kv_cache_drop_cached(kv_cache *kv) {
    while (kv->lru_head >= 0) {
        int32_t b = kv->lru_head;
        lru_remove(kv, b);
        unindex(kv, b);
        kv->free_stack[kv->num_free++] = b;
    }
}

void kv_cache_get_stats(const kv_cache *kv, kv_cache_stats *out) {
    out->total_blocks = kv->num_blocks;
    out->used_blocks = kv->used;
    out->peak_used_blocks = kv->peak_used;
    out->cached_blocks = kv->num_cached;
    out->queried_blocks = kv->queried;
    out->hit_blocks = kv->hits;
}
