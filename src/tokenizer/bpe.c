/* The BPE model: a word's characters become symbols, then the adjacent pair
 * with the lowest merge rank is merged until none merges, exactly as HF's
 * Word::merge_all — a binary heap of candidate pairs keyed by (rank,
 * position) over a doubly linked list of symbols, so a word of n characters
 * costs O(n log n), never a rescan per merge. Stale heap entries (a side
 * already merged away) are skipped when popped.
 *
 * Most text repeats its words, so the ids of each short piece are cached
 * (raw bytes → ids) in a table that is simply emptied when full. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

enum { CACHE_SLOTS = 1 << 17, CACHE_MAX_ENTRIES = CACHE_SLOTS / 2, CACHE_MAX_KEY = 64,
       CACHE_MAX_POOL = 8 << 20 };

struct tok_bpe_cache {
    uint32_t *slots; /* entry index + 1 */
    struct cache_entry {
        uint64_t hash;
        uint32_t key_offset, key_len, ids_offset, ids_len;
    } *entries;
    uint32_t count;
    tok_buf keys;
    tok_ids ids;
};

static tok_bpe_cache *cache_create(void) {
    tok_bpe_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->slots = calloc(CACHE_SLOTS, sizeof *c->slots);
    c->entries = malloc(CACHE_MAX_ENTRIES * sizeof *c->entries);
    if (!c->slots || !c->entries) {
        free(c->slots);
        free(c->entries);
        free(c);
        return NULL;
    }
    return c;
}

static void cache_free(tok_bpe_cache *c) {
    if (!c) return;
    free(c->slots);
    free(c->entries);
    tok_buf_free(&c->keys);
    tok_ids_free(&c->ids);
    free(c);
}

static void cache_clear(tok_bpe_cache *c) {
    memset(c->slots, 0, CACHE_SLOTS * sizeof *c->slots);
    c->count = 0;
    c->keys.len = 0;
    c->ids.len = 0;
}

/* Returns the slot where key is, or the empty slot where it would go. */
static uint32_t cache_find(const tok_bpe_cache *c, const char *key, size_t len, uint64_t h) {
    uint32_t i = (uint32_t)h & (CACHE_SLOTS - 1);
    while (c->slots[i]) {
        const struct cache_entry *e = &c->entries[c->slots[i] - 1];
        if (e->hash == h && e->key_len == len && memcmp(c->keys.data + e->key_offset, key, len) == 0) return i;
        i = (i + 1) & (CACHE_SLOTS - 1);
    }
    return i;
}

static void cache_put(tok_bpe_cache *c, const char *key, size_t len, uint64_t h, const int32_t *ids, size_t n) {
    if (c->count >= CACHE_MAX_ENTRIES || c->keys.len + len > CACHE_MAX_POOL) cache_clear(c);
    uint32_t slot = cache_find(c, key, len, h);
    if (c->slots[slot]) return;
    uint32_t key_offset = (uint32_t)c->keys.len, ids_offset = (uint32_t)c->ids.len;
    /* A failed allocation only means this word is not cached. */
    if (tok_buf_append(&c->keys, key, len) != LLMRT_OK) return;
    if (tok_ids_append(&c->ids, ids, n) != LLMRT_OK) {
        c->keys.len = key_offset;
        return;
    }
    c->entries[c->count] = (struct cache_entry){h, key_offset, (uint32_t)len, ids_offset, (uint32_t)n};
    c->slots[slot] = ++c->count;
}

tok_bpe_cache *tok_bpe_cache_acquire(tok_bpe *bpe) {
    if (pthread_mutex_trylock(&bpe->cache_lock) != 0) return NULL;
    if (!bpe->cache) bpe->cache = cache_create();
    if (!bpe->cache) {
        pthread_mutex_unlock(&bpe->cache_lock);
        return NULL;
    }
    return bpe->cache;
}

void tok_bpe_cache_release(tok_bpe *bpe, tok_bpe_cache *cache) {
    if (cache) pthread_mutex_unlock(&bpe->cache_lock);
}

/* --- merging ------------------------------------------------------------------------ */

typedef struct symbol {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    int32_t alive;
} symbol;

typedef struct candidate {
    uint32_t rank, pos;
    int32_t result;
} candidate;

static int candidate_less(const candidate *a, const candidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(candidate *heap, size_t *n, candidate c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!candidate_less(&c, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = c;
}

static candidate heap_pop(candidate *heap, size_t *n) {
    candidate top = heap[0];
    candidate last = heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && candidate_less(&heap[child + 1], &heap[child])) child++;
        if (!candidate_less(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n > 0) heap[i] = last;
    return top;
}

static void push_pair(const tok_bpe *bpe, const symbol *syms, candidate *heap, size_t *n, int32_t pos) {
    int32_t next = syms[pos].next;
    if (next < 0) return;
    uint32_t rank;
    int32_t result;
    if (tok_merge_map_get(&bpe->merges, syms[pos].id, syms[next].id, &rank, &result))
        heap_push(heap, n, (candidate){rank, (uint32_t)pos, result});
}

/* Merges the symbols (ids) in place; returns the number left. */
static size_t merge_all(const tok_bpe *bpe, int32_t *ids, size_t count, symbol *syms, candidate *heap) {
    if (count < 2) return count;
    for (size_t i = 0; i < count; i++)
        syms[i] = (symbol){ids[i], (int32_t)i - 1, i + 1 < count ? (int32_t)i + 1 : -1, 1};
    size_t heap_len = 0;
    for (size_t i = 0; i + 1 < count; i++) push_pair(bpe, syms, heap, &heap_len, (int32_t)i);
    while (heap_len > 0) {
        candidate top = heap_pop(heap, &heap_len);
        symbol *left = &syms[top.pos];
        if (!left->alive || left->next < 0) continue;
        symbol *right = &syms[left->next];
        uint32_t rank;
        int32_t result;
        /* Skip a stale entry: the pair at pos no longer makes the token
         * queued (HF compares only the merged id, and so do we). */
        if (!tok_merge_map_get(&bpe->merges, left->id, right->id, &rank, &result) || result != top.result)
            continue;
        left->id = result;
        right->alive = 0;
        left->next = right->next;
        if (right->next >= 0) syms[right->next].prev = (int32_t)top.pos;
        if (left->prev >= 0) push_pair(bpe, syms, heap, &heap_len, left->prev);
        push_pair(bpe, syms, heap, &heap_len, (int32_t)top.pos);
    }
    size_t n = 0;
    for (int32_t i = 0; i >= 0; i = syms[i].next) ids[n++] = syms[i].id;
    return n;
}

/* --- initial symbols ------------------------------------------------------------------ */

/* HF's merge_word before merging: one symbol per character (with the
 * continuing-subword prefix / end-of-word suffix), byte fallback to <0xNN>
 * for characters not in the vocabulary, else unk (fused if fuse_unk). */
static llmrt_status initial_symbols(const tok_bpe *bpe, const char *w, size_t len, tok_ids *out) {
    int32_t unk_pending = -1; /* id of a pending unk, flushed before the next known symbol */
    tok_buf key = {0};
    llmrt_status st = LLMRT_OK;
    size_t i = 0;
    while (i < len && st == LLMRT_OK) {
        uint32_t cp;
        size_t n = tok_utf8_decode(w + i, len - i, &cp);
        if (!n) n = 1; /* cannot happen: text is valid UTF-8 by now */
        int is_first = i == 0, is_last = i + n == len;
        const char *s = w + i;
        size_t s_len = n;
        if ((!is_first && bpe->continuing_prefix_len) || (is_last && bpe->end_suffix_len)) {
            key.len = 0;
            if (!is_first && bpe->continuing_prefix_len)
                st = tok_buf_append(&key, bpe->continuing_prefix, bpe->continuing_prefix_len);
            if (st == LLMRT_OK) st = tok_buf_append(&key, w + i, n);
            if (st == LLMRT_OK && is_last && bpe->end_suffix_len)
                st = tok_buf_append(&key, bpe->end_suffix, bpe->end_suffix_len);
            if (st != LLMRT_OK) break;
            s = key.data;
            s_len = key.len;
        }
        int32_t id = tok_strmap_get(&bpe->vocab, s, s_len);
        if (id >= 0) {
            if (unk_pending >= 0) {
                st = tok_ids_push(out, unk_pending);
                unk_pending = -1;
            }
            if (st == LLMRT_OK) st = tok_ids_push(out, id);
        } else {
            int done = 0;
            if (bpe->byte_fallback) {
                int all = 1;
                for (size_t b = 0; b < s_len; b++)
                    if (bpe->byte_fallback_ids[(uint8_t)s[b]] < 0) all = 0;
                if (all) {
                    /* As HF: a pending unk is not flushed here. */
                    for (size_t b = 0; b < s_len && st == LLMRT_OK; b++)
                        st = tok_ids_push(out, bpe->byte_fallback_ids[(uint8_t)s[b]]);
                    done = 1;
                }
            }
            if (!done && bpe->unk_id >= 0) {
                if (unk_pending >= 0 && !bpe->fuse_unk) st = tok_ids_push(out, unk_pending);
                unk_pending = bpe->unk_id;
            }
        }
        i += n;
    }
    if (st == LLMRT_OK && unk_pending >= 0) st = tok_ids_push(out, unk_pending);
    tok_buf_free(&key);
    return st;
}

static llmrt_status merge_into(const tok_bpe *bpe, tok_ids *out, size_t start) {
    size_t count = out->len - start;
    if (count < 2) return LLMRT_OK;
    enum { SMALL = 64 };
    symbol small_syms[SMALL];
    candidate small_heap[3 * SMALL];
    symbol *syms = small_syms;
    candidate *heap = small_heap;
    if (count > SMALL) {
        syms = malloc(count * sizeof *syms);
        heap = malloc(3 * count * sizeof *heap);
        if (!syms || !heap) {
            free(syms);
            free(heap);
            return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory merging a %zu-symbol word", count);
        }
    }
    out->len = start + merge_all(bpe, out->data + start, count, syms, heap);
    if (syms != small_syms) {
        free(syms);
        free(heap);
    }
    return LLMRT_OK;
}

static llmrt_status tokenize_uncached(const tok_bpe *bpe, const char *s, size_t len, tok_ids *out) {
    size_t start = out->len;
    if (bpe->byte_level && bpe->byte_level_fast && !bpe->ignore_merges) {
        /* Each byte's mapped character is one vocabulary entry: no strings. */
        for (size_t i = 0; i < len; i++) LLMRT_TRY(tok_ids_push(out, bpe->byte_level_ids[(uint8_t)s[i]]));
        return merge_into(bpe, out, start);
    }
    tok_buf mapped = {0};
    const char *w = s;
    size_t w_len = len;
    if (bpe->byte_level) {
        const tok_byte_map *map = tok_byte_level_map();
        llmrt_status st = tok_buf_reserve(&mapped, 2 * len);
        for (size_t i = 0; i < len && st == LLMRT_OK; i++)
            st = tok_buf_append(&mapped, map->utf8[(uint8_t)s[i]], map->utf8_len[(uint8_t)s[i]]);
        if (st != LLMRT_OK) {
            tok_buf_free(&mapped);
            return st;
        }
        w = mapped.data;
        w_len = mapped.len;
    }
    llmrt_status st = LLMRT_OK;
    int32_t whole = bpe->ignore_merges ? tok_strmap_get(&bpe->vocab, w, w_len) : -1;
    if (whole >= 0) {
        st = tok_ids_push(out, whole);
    } else {
        st = initial_symbols(bpe, w, w_len, out);
        if (st == LLMRT_OK) st = merge_into(bpe, out, start);
    }
    tok_buf_free(&mapped);
    return st;
}

llmrt_status tok_bpe_tokenize(const tok_bpe *bpe, tok_bpe_cache *cache, const char *s, size_t len, tok_ids *out) {
    if (len == 0) return LLMRT_OK;
    if (bpe->wordpiece) return tok_wordpiece_tokenize(bpe, s, len, out);
    if (!cache || len > CACHE_MAX_KEY) return tokenize_uncached(bpe, s, len, out);
    uint64_t h = tok_hash(s, len);
    uint32_t slot = cache_find(cache, s, len, h);
    if (cache->slots[slot]) {
        const struct cache_entry *e = &cache->entries[cache->slots[slot] - 1];
        return tok_ids_append(out, cache->ids.data + e->ids_offset, e->ids_len);
    }
    size_t start = out->len;
    LLMRT_TRY(tokenize_uncached(bpe, s, len, out));
    cache_put(cache, s, len, h, out->data + start, out->len - start);
    return LLMRT_OK;
}

/* --- loading ---------------------------------------------------------------------------- */

static llmrt_status optional_string(json_t *model, const char *key, const char *where, char **out, size_t *len) {
    const char *s = NULL;
    size_t n = 0;
    LLMRT_TRY(tok_json_string(model, key, where, 0, &s, &n));
    *out = NULL;
    *len = 0;
    if (s && n) {
        *out = malloc(n + 1);
        if (!*out) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "%s.%s: out of memory", where, key);
        memcpy(*out, s, n + 1);
        *len = n;
    }
    return LLMRT_OK;
}

/* One merge: "left right" (a string) or ["left", "right"]. */
static llmrt_status merge_parts(json_t *item, const char *where, size_t index, const char **a, size_t *a_len,
                                const char **b, size_t *b_len) {
    if (json_is_string(item)) {
        const char *s = json_string_value(item);
        size_t len = json_string_length(item);
        const char *space = memchr(s, ' ', len);
        if (!space || memchr(space + 1, ' ', len - (size_t)(space + 1 - s)))
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.merges[%zu]: expected \"left right\", got \"%.60s\"", where,
                               index, s);
        *a = s;
        *a_len = (size_t)(space - s);
        *b = space + 1;
        *b_len = len - *a_len - 1;
        return LLMRT_OK;
    }
    if (json_is_array(item) && json_array_size(item) == 2 && json_is_string(json_array_get(item, 0)) &&
        json_is_string(json_array_get(item, 1))) {
        *a = json_string_value(json_array_get(item, 0));
        *a_len = json_string_length(json_array_get(item, 0));
        *b = json_string_value(json_array_get(item, 1));
        *b_len = json_string_length(json_array_get(item, 1));
        return LLMRT_OK;
    }
    return llmrt_error(LLMRT_ERR_FORMAT, "%s.merges[%zu]: expected a string or a pair of strings", where, index);
}

llmrt_status tok_vocab_parse(json_t *model, const char *where, tok_strmap *vocab_out) {
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) return llmrt_error(LLMRT_ERR_FORMAT, "%s.vocab: expected an object", where);
    LLMRT_TRY(tok_strmap_init(vocab_out, json_object_size(vocab)));
    const char *key;
    json_t *value;
    json_object_foreach(vocab, key, value) {
        if (!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) > INT32_MAX - 1)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.vocab[\"%.60s\"]: expected a non-negative integer id", where, key);
        LLMRT_TRY(tok_strmap_put(vocab_out, key, strlen(key), (int32_t)json_integer_value(value)));
    }
    return LLMRT_OK;
}

llmrt_status tok_bpe_parse(json_t *model, const char *where, tok_bpe *bpe, int byte_level) {
    memset(bpe, 0, sizeof *bpe);
    bpe->unk_id = -1;
    pthread_mutex_init(&bpe->cache_lock, NULL);
    if (!json_is_object(model)) return llmrt_error(LLMRT_ERR_FORMAT, "%s: expected an object", where);
    const char *type = NULL;
    LLMRT_TRY(tok_json_string(model, "type", where, 0, &type, NULL));
    if (type && strcmp(type, "WordPiece") == 0) return tok_wordpiece_parse(model, where, bpe);
    if (type && strcmp(type, "BPE") != 0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.type: model \"%s\" is not supported (BPE, WordPiece)", where,
                           type);
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return llmrt_error(LLMRT_ERR_UNSUPPORTED, "%s.dropout: BPE dropout is not supported", where);
    LLMRT_TRY(tok_vocab_parse(model, where, &bpe->vocab));
    bpe->byte_fallback = tok_json_bool(model, "byte_fallback", 0);
    bpe->fuse_unk = tok_json_bool(model, "fuse_unk", 0);
    bpe->ignore_merges = tok_json_bool(model, "ignore_merges", 0);
    bpe->byte_level = byte_level;
    LLMRT_TRY(optional_string(model, "continuing_subword_prefix", where, &bpe->continuing_prefix,
                              &bpe->continuing_prefix_len));
    LLMRT_TRY(optional_string(model, "end_of_word_suffix", where, &bpe->end_suffix, &bpe->end_suffix_len));
    const char *unk = NULL;
    size_t unk_len = 0;
    LLMRT_TRY(tok_json_string(model, "unk_token", where, 0, &unk, &unk_len));
    if (unk) {
        bpe->unk_id = tok_strmap_get(&bpe->vocab, unk, unk_len);
        if (bpe->unk_id < 0)
            return llmrt_error(LLMRT_ERR_FORMAT, "%s.unk_token: \"%s\" is not in the vocabulary", where, unk);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        bpe->byte_fallback_ids[b] = tok_strmap_get(&bpe->vocab, name, 6);
    }
    const tok_byte_map *map = tok_byte_level_map();
    bpe->byte_level_fast = byte_level && !bpe->continuing_prefix_len && !bpe->end_suffix_len;
    for (int b = 0; b < 256; b++) {
        bpe->byte_level_ids[b] = tok_strmap_get(&bpe->vocab, map->utf8[b], map->utf8_len[b]);
        if (bpe->byte_level_ids[b] < 0) bpe->byte_level_fast = 0;
    }

    json_t *merges = json_object_get(model, "merges");
    if (merges && !json_is_array(merges))
        return llmrt_error(LLMRT_ERR_FORMAT, "%s.merges: expected an array", where);
    size_t merge_count = merges ? json_array_size(merges) : 0;
    LLMRT_TRY(tok_merge_map_init(&bpe->merges, merge_count));
    tok_buf joined = {0};
    for (size_t i = 0; i < merge_count; i++) {
        const char *a = NULL, *b = NULL;
        size_t a_len = 0, b_len = 0;
        llmrt_status st = merge_parts(json_array_get(merges, i), where, i, &a, &a_len, &b, &b_len);
        int32_t left = st == LLMRT_OK ? tok_strmap_get(&bpe->vocab, a, a_len) : -1;
        int32_t right = st == LLMRT_OK ? tok_strmap_get(&bpe->vocab, b, b_len) : -1;
        if (st == LLMRT_OK && (left < 0 || right < 0))
            st = llmrt_error(LLMRT_ERR_FORMAT, "%s.merges[%zu]: \"%.*s\" is not in the vocabulary", where, i,
                             (int)(left < 0 ? a_len : b_len), left < 0 ? a : b);
        /* The merged token drops the right part's continuing-subword prefix. */
        size_t skip = bpe->continuing_prefix_len && b_len >= bpe->continuing_prefix_len &&
                              memcmp(b, bpe->continuing_prefix, bpe->continuing_prefix_len) == 0
                          ? bpe->continuing_prefix_len
                          : 0;
        joined.len = 0;
        if (st == LLMRT_OK) st = tok_buf_append(&joined, a, a_len);
        if (st == LLMRT_OK) st = tok_buf_append(&joined, b + skip, b_len - skip);
        int32_t result = st == LLMRT_OK ? tok_strmap_get(&bpe->vocab, joined.data, joined.len) : -1;
        if (st == LLMRT_OK && result < 0)
            st = llmrt_error(LLMRT_ERR_FORMAT, "%s.merges[%zu]: merged token \"%.*s\" is not in the vocabulary",
                             where, i, (int)joined.len, joined.data);
        if (st != LLMRT_OK) {
            tok_buf_free(&joined);
            return st;
        }
        tok_merge_map_put(&bpe->merges, left, right, (uint32_t)i, result);
    }
    tok_buf_free(&joined);
    return LLMRT_OK;
}

void tok_bpe_free(tok_bpe *bpe) {
    tok_strmap_free(&bpe->vocab);
    tok_merge_map_free(&bpe->merges);
    free(bpe->continuing_prefix);
    free(bpe->end_suffix);
    cache_free(bpe->cache);
    pthread_mutex_destroy(&bpe->cache_lock);
    memset(bpe, 0, sizeof *bpe);
}
