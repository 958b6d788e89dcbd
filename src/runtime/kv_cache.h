/* The KV block pool: which of the backend's KV cache blocks are in use, by
 * how many sequences (reference counts), and which full blocks hold which
 * tokens (the prefix index).
 *
 * A block is in one of three states:
 *   in use     ref_count > 0, owned by one or more sequences' block tables;
 *   cached     ref_count == 0 but indexed by content: a later prompt with
 *              the same prefix takes it back; evicted oldest-first (LRU)
 *              when the free list runs dry;
 *   free       ref_count == 0, not indexed.
 * Only full blocks are indexed, and a full block is never written again, so
 * sharing it needs no copy. A partial block shared by forked sequences (n > 1,
 * beams) is copied before a write (copy-on-write; the scheduler does it).
 *
 * The index keys a block by a hash chained over the whole prefix
 * (XXH3(tokens of block j, seed = key of block j-1)), and a lookup also
 * compares the block's tokens and parent key, so a hit is exact up to a
 * 64-bit collision of the parent chain.
 *
 * Not thread-safe: the runtime calls it under its lock. */
#ifndef LLMRT_RUNTIME_KV_CACHE_H
#define LLMRT_RUNTIME_KV_CACHE_H

#include <stdint.h>

#include "core/status.h"

typedef struct kv_cache kv_cache;

typedef struct kv_cache_stats {
    int32_t total_blocks, used_blocks, peak_used_blocks, cached_blocks;
    int64_t queried_blocks, hit_blocks;
} kv_cache_stats;

/* The key of the (empty) prefix before block 0. */
#define KV_CACHE_ROOT_KEY 0x6c6c6d72742d6b76ull

llmrt_status kv_cache_create(int32_t num_blocks, int32_t block_size, kv_cache **out);
void kv_cache_free(kv_cache *kv);

int32_t kv_cache_block_size(const kv_cache *kv);
/* Blocks an allocation could get now: free plus cached. */
int32_t kv_cache_available(const kv_cache *kv);
/* A block with ref_count 1, or -1 when none is left (evicts the oldest
 * cached block if the free list is empty). */
int32_t kv_cache_alloc(kv_cache *kv);
/* Both ignore a negative block (a slot freed outside a sliding window). */
void kv_cache_retain(kv_cache *kv, int32_t block);
void kv_cache_release(kv_cache *kv, int32_t block);
int32_t kv_cache_ref_count(const kv_cache *kv, int32_t block);

/* The key of a full block of `tokens` following the prefix keyed `parent`. */
uint64_t kv_cache_block_key(const kv_cache *kv, uint64_t parent, const int32_t *tokens);

/* Looks up the longest chain of indexed full blocks covering tokens[0..),
 * at most max_blocks of them; writes their ids to blocks[] and the key of the
 * last to *last_key (KV_CACHE_ROOT_KEY if none). Takes no references. */
int32_t kv_cache_match_prefix(const kv_cache *kv, const int32_t *tokens, int32_t max_blocks, int32_t *blocks,
                              uint64_t *last_key);
/* Of these blocks, how many are cached (ref 0): taking them lowers
 * kv_cache_available. */
int32_t kv_cache_count_cached(const kv_cache *kv, const int32_t *blocks, int32_t count);
/* Indexes a full block (in use) under `key`; a no-op when the key is
 * already indexed (another sequence computed the same prefix first). */
void kv_cache_index_block(kv_cache *kv, int32_t block, uint64_t parent, uint64_t key, const int32_t *tokens);
/* Records a prefix lookup for the hit statistics. */
void kv_cache_record_lookup(kv_cache *kv, int32_t queried, int32_t hits);
/* Forgets every cached block (ref 0), e.g. after the cache contents are lost. */
void kv_cache_drop_cached(kv_cache *kv);

void kv_cache_get_stats(const kv_cache *kv, kv_cache_stats *out);

#endif
