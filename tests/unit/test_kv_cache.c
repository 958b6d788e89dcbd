/* The KV block pool: reference counts, the free list, the prefix index
 * (chained keys, exact token match), LRU eviction of cached blocks, stats. */
#include <stdlib.h>
#include <string.h>

#include "llmrt/llmrt.h"
#include "runtime/kv_cache.h"
#include "test_util.h"

enum { BS = 4 };

static void test_alloc_release(void) {
    kv_cache *kv;
    CHECK_OK(kv_cache_create(3, BS, &kv));
    int32_t a = kv_cache_alloc(kv), b = kv_cache_alloc(kv), c = kv_cache_alloc(kv);
    CHECK(a >= 0 && b >= 0 && c >= 0 && a != b && b != c && a != c);
    CHECK(kv_cache_alloc(kv) == -1); /* exhausted: a value, not a crash */
    CHECK(kv_cache_available(kv) == 0);
    kv_cache_retain(kv, b);
    CHECK(kv_cache_ref_count(kv, b) == 2);
    kv_cache_release(kv, b);
    CHECK(kv_cache_available(kv) == 0);
    kv_cache_release(kv, b);
    CHECK(kv_cache_available(kv) == 1);
    CHECK(kv_cache_alloc(kv) == b);
    kv_cache_stats st;
    kv_cache_get_stats(kv, &st);
    CHECK(st.total_blocks == 3 && st.used_blocks == 3 && st.peak_used_blocks == 3);
    kv_cache_release(kv, a);
    kv_cache_release(kv, b);
    kv_cache_release(kv, c);
    kv_cache_get_stats(kv, &st);
    CHECK(st.used_blocks == 0 && st.peak_used_blocks == 3);
    kv_cache_free(kv);
    CHECK(kv_cache_create(0, BS, &kv) == LLMRT_ERR_INVALID_ARGUMENT);
}

/* Indexes the full blocks of tokens[0..n) held in blocks[]. */
static void index_all(kv_cache *kv, const int32_t *tokens, int32_t nblocks, const int32_t *blocks) {
    uint64_t parent = KV_CACHE_ROOT_KEY;
    for (int32_t i = 0; i < nblocks; i++) {
        uint64_t key = kv_cache_block_key(kv, parent, tokens + i * BS);
        kv_cache_index_block(kv, blocks[i], parent, key, tokens + i * BS);
        parent = key;
    }
}

static void test_prefix_index(void) {
    kv_cache *kv;
    CHECK_OK(kv_cache_create(8, BS, &kv));
    int32_t tokens[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int32_t blocks[3] = {kv_cache_alloc(kv), kv_cache_alloc(kv), kv_cache_alloc(kv)};
    index_all(kv, tokens, 3, blocks);
    int32_t found[3];
    uint64_t key;
    CHECK(kv_cache_match_prefix(kv, tokens, 3, found, &key) == 3);
    CHECK(memcmp(found, blocks, sizeof found) == 0);
    CHECK(kv_cache_match_prefix(kv, tokens, 2, found, &key) == 2); /* bounded by max_blocks */
    /* a different first block breaks the chain even if later blocks agree */
    int32_t other[12] = {1, 2, 3, 99, 5, 6, 7, 8, 9, 10, 11, 12};
    CHECK(kv_cache_match_prefix(kv, other, 3, found, &key) == 0 && key == KV_CACHE_ROOT_KEY);
    int32_t diverge[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0};
    CHECK(kv_cache_match_prefix(kv, diverge, 3, found, &key) == 2);
    CHECK(key == kv_cache_block_key(kv, kv_cache_block_key(kv, KV_CACHE_ROOT_KEY, tokens), tokens + 4));
    /* released indexed blocks stay findable (cached) until evicted */
    for (int i = 0; i < 3; i++) kv_cache_release(kv, blocks[i]);
    kv_cache_stats st;
    kv_cache_get_stats(kv, &st);
    CHECK(st.cached_blocks == 3 && st.used_blocks == 0);
    CHECK(kv_cache_match_prefix(kv, tokens, 3, found, &key) == 3);
    CHECK(kv_cache_count_cached(kv, found, 3) == 3);
    kv_cache_retain(kv, found[0]); /* taking one back */
    CHECK(kv_cache_count_cached(kv, found, 3) == 2 && kv_cache_available(kv) == 7);
    kv_cache_release(kv, found[0]);
    /* free blocks go first; then the least recently released cached one */
    int32_t fresh[5];
    for (int i = 0; i < 5; i++) fresh[i] = kv_cache_alloc(kv);
    for (int i = 0; i < 5; i++) CHECK(fresh[i] != blocks[0] && fresh[i] != blocks[1] && fresh[i] != blocks[2]);
    int32_t evicted = kv_cache_alloc(kv);
    CHECK(evicted == blocks[1]); /* LRU order 1, 2, 0: blocks[0] was released last */
    CHECK(kv_cache_match_prefix(kv, tokens, 3, found, &key) == 1);
    kv_cache_record_lookup(kv, 3, 1);
    kv_cache_get_stats(kv, &st);
    CHECK(st.queried_blocks == 3 && st.hit_blocks == 1);
    /* the same content indexed twice keeps the first */
    int32_t dup = kv_cache_alloc(kv);
    uint64_t k0 = kv_cache_block_key(kv, KV_CACHE_ROOT_KEY, tokens);
    kv_cache_index_block(kv, dup, KV_CACHE_ROOT_KEY, k0, tokens);
    CHECK(kv_cache_match_prefix(kv, tokens, 1, found, &key) == 1 && found[0] == blocks[0]);
    kv_cache_drop_cached(kv);
    CHECK(kv_cache_match_prefix(kv, tokens, 1, found, &key) == 0);
    kv_cache_free(kv);
}

int main(void) {
    RUN_TEST(test_alloc_release);
    RUN_TEST(test_prefix_index);
    return test_finish();
}
