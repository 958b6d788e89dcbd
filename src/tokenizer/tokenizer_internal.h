/* Internal structures of the tokenizer module. The pipeline mirrors HF
 * `tokenizers`: added-token extraction → normalizers → pre-tokenizers →
 * model (BPE) → post-processor for encoding; id → token → decoders for
 * decoding. Each stage lives in its own file:
 *
 *   tokenizer.c     loading tokenizer.json (+ tokenizer_config.json), vocabulary calls
 *   encode.c        the encode pipeline and post-processors
 *   added_tokens.c  matching added/special tokens in text
 *   normalize.c     normalizers (Prepend, Replace, NFC, Strip, Sequence)
 *   pretokenize.c   pre-tokenizers (Split, ByteLevel, Metaspace, Sequence)
 *   bpe.c           the BPE model: merges by rank with a heap, the word cache
 *   wordpiece.c     the WordPiece model (BERT): greedy longest match with "##"
 *   bert_text.c     BertNormalizer and BertPreTokenizer
 *   decode.c        decoders and the streaming detokenizer
 *   chat_template.c built-in renderers of recognised chat templates
 *   unicode.c       UTF-8, White_Space, NFC
 *   maps.c          hash maps and growable buffers */
#ifndef LLMRT_TOKENIZER_INTERNAL_H
#define LLMRT_TOKENIZER_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>
#include <pcre2.h>

#include "core/status.h"
#include "llmrt/tokenizer.h"

/* --- growable buffers (maps.c) ------------------------------------------------ */

typedef struct tok_buf {
    char *data;
    size_t len, cap;
} tok_buf;

/* Room for element `len` of a growable array of elem_size-byte elements
 * with *cap allocated: data itself while len < *cap, else data reallocated
 * to twice *cap (`first` when empty) and *cap updated; NULL when out of
 * memory, data then still valid and *cap unchanged. Inline: the pushes
 * that call it run per piece and per code point. */
static inline void *tok_grow(void *data, size_t len, size_t *cap, size_t elem_size, size_t first) {
    if (len < *cap) return data;
    size_t grown = *cap ? *cap * 2 : first;
    void *p = realloc(data, grown * elem_size);
    if (p) *cap = grown;
    return p;
}

llmrt_status tok_buf_reserve(tok_buf *b, size_t extra);
llmrt_status tok_buf_append(tok_buf *b, const void *data, size_t len);
void tok_buf_free(tok_buf *b);

typedef struct tok_ids {
    int32_t *data;
    size_t len, cap;
} tok_ids;

llmrt_status tok_ids_push(tok_ids *v, int32_t id);
llmrt_status tok_ids_append(tok_ids *v, const int32_t *ids, size_t n);
void tok_ids_free(tok_ids *v);

/* --- string → id map (maps.c) ------------------------------------------------ */
/* Open addressing; keys are copied into the map's own pool. */
typedef struct tok_strmap {
    uint32_t *slots; /* entry index + 1; 0 = empty */
    uint32_t mask;
    struct tok_strmap_entry {
        uint64_t hash;
        uint32_t offset, len; /* into pool */
        int32_t value;
    } *entries;
    uint32_t count, capacity;
    tok_buf pool;
} tok_strmap;

llmrt_status tok_strmap_init(tok_strmap *m, size_t expected);
/* Inserts or overwrites. */
llmrt_status tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t value);
/* Returns the value or -1. */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len);
void tok_strmap_free(tok_strmap *m);
uint64_t tok_hash(const void *data, size_t len);

/* --- merge map: (left id, right id) → (rank, merged id) (maps.c) ------------- */
typedef struct tok_merge_map {
    uint64_t *keys; /* (left << 32 | right), UINT64_MAX = empty */
    uint32_t *ranks;
    int32_t *results;
    uint32_t mask, count;
} tok_merge_map;

llmrt_status tok_merge_map_init(tok_merge_map *m, size_t expected);
void tok_merge_map_put(tok_merge_map *m, int32_t left, int32_t right, uint32_t rank, int32_t result);
/* Returns 1 and fills rank/result when the pair merges. */
static inline int tok_merge_map_get(const tok_merge_map *m, int32_t left, int32_t right, uint32_t *rank,
                                    int32_t *result) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    uint32_t i = (uint32_t)(h >> 32) & m->mask;
    for (;;) {
        uint64_t k = m->keys[i];
        if (k == key) {
            *rank = m->ranks[i];
            *result = m->results[i];
            return 1;
        }
        if (k == UINT64_MAX) return 0;
        i = (i + 1) & m->mask;
    }
}
void tok_merge_map_free(tok_merge_map *m);

/* --- unicode.c ------------------------------------------------------------------ */

/* Decodes one UTF-8 character at s[0..len) (len > 0). Returns its byte length,
 * or 0 when the bytes there are not valid UTF-8 (*cp untouched). */
size_t tok_utf8_decode(const char *s, size_t len, uint32_t *cp);
/* Encodes cp; returns the byte length (1..4). */
size_t tok_utf8_encode(uint32_t cp, char out[4]);
/* Length of the maximal invalid prefix at s (Unicode "maximal subpart"
 * substitution, as Python's errors="replace" and Rust's from_utf8_lossy). */
size_t tok_utf8_invalid_span(const char *s, size_t len);
/* 1 if the bytes are valid UTF-8. */
int tok_utf8_valid(const char *s, size_t len);
/* Appends s with each maximal invalid subsequence replaced by U+FFFD. */
llmrt_status tok_utf8_append_lossy(tok_buf *out, const char *s, size_t len);
/* Unicode White_Space, as Rust's char::is_whitespace. */
int tok_is_whitespace(uint32_t cp);
/* Letters and digits (an approximation beyond ASCII: every non-ASCII code
 * point that is not whitespace or punctuation counts), for single_word. */
int tok_is_word_char(uint32_t cp);
/* Appends s fully decomposed (NFD) without its combining marks: BERT's
 * strip_accents ("é" → "e"). */
llmrt_status tok_strip_accents_append(tok_buf *out, const char *s, size_t len);
/* Appends the NFC normalization of valid UTF-8 s. */
llmrt_status tok_nfc_append(tok_buf *out, const char *s, size_t len);
/* 1 if s is certainly NFC already (quick check). */
int tok_nfc_quick_check(const char *s, size_t len);

/* The GPT-2 byte ↔ unicode map: every byte maps to a printable code point. */
typedef struct tok_byte_map {
    char utf8[256][2]; /* the mapped char of each byte, 1 or 2 bytes of UTF-8 */
    uint8_t utf8_len[256];
    int16_t byte_of_cp[324]; /* mapped code point → byte, -1 if none */
} tok_byte_map;
const tok_byte_map *tok_byte_level_map(void);

/* --- normalizers (normalize.c) --------------------------------------------------- */

typedef enum { NORM_PREPEND, NORM_REPLACE, NORM_NFC, NORM_STRIP, NORM_BERT } tok_norm_type;

typedef struct tok_normalizer {
    tok_norm_type type;
    char *text;        /* Prepend: the prefix; Replace: the replacement */
    size_t text_len;
    char *pattern;     /* Replace with a String pattern */
    size_t pattern_len;
    pcre2_code *regex; /* Replace with a Regex pattern */
    int strip_left, strip_right;
    int clean_text, handle_chinese_chars, strip_accents, lowercase; /* BertNormalizer */
} tok_normalizer;

llmrt_status tok_normalizers_parse(json_t *node, const char *where, tok_normalizer **out, size_t *count);
void tok_normalizers_free(tok_normalizer *n, size_t count);
/* Normalizes s into out (out is cleared first). */
llmrt_status tok_normalize(const tok_normalizer *n, size_t count, const char *s, size_t len, tok_buf *out);

/* --- pre-tokenizers (pretokenize.c) ----------------------------------------------- */

typedef enum { PRE_SPLIT, PRE_BYTE_LEVEL, PRE_METASPACE, PRE_WHITESPACE_SPLIT, PRE_BERT } tok_pre_type;
typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_WITH_PREVIOUS, SPLIT_MERGED_WITH_NEXT,
               SPLIT_CONTIGUOUS } tok_split_behavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } tok_prepend_scheme;

typedef struct tok_pretokenizer {
    tok_pre_type type;
    pcre2_code *regex; /* Split, and ByteLevel with use_regex */
    tok_split_behavior behavior;
    int invert;
    int add_prefix_space; /* ByteLevel */
    char replacement[8];  /* Metaspace: UTF-8 of the replacement char */
    size_t replacement_len;
    tok_prepend_scheme prepend_scheme;
    int split;            /* Metaspace */
} tok_pretokenizer;

/* A piece of text: a byte range of a buffer. */
typedef struct tok_piece {
    size_t offset, len;
} tok_piece;

typedef struct tok_pieces {
    tok_piece *data;
    size_t len, cap;
} tok_pieces;

llmrt_status tok_pieces_push(tok_pieces *p, size_t offset, size_t len);

llmrt_status tok_pretokenizers_parse(json_t *node, const char *where, tok_pretokenizer **out, size_t *count,
                                     int *byte_level);
void tok_pretokenizers_free(tok_pretokenizer *p, size_t count);
/* Splits text (held in *buf, which Metaspace may extend) into pieces.
 * `at_start` says the text begins the original input (Metaspace "first"). */
llmrt_status tok_pretokenize(const tok_pretokenizer *p, size_t count, tok_buf *buf, int at_start,
                             tok_pieces *out, tok_pieces *scratch);
/* Compiles an HF (Oniguruma) regex with PCRE2, UTF + UCP, JIT. */
llmrt_status tok_regex_compile(const char *pattern, size_t len, int literal, const char *where,
                               pcre2_code **out);

/* --- BPE model (bpe.c) ------------------------------------------------------------- */

typedef struct tok_bpe_cache tok_bpe_cache;

typedef struct tok_bpe {
    tok_strmap vocab;
    tok_merge_map merges;
    int32_t unk_id; /* -1 when none */
    int fuse_unk, byte_fallback, ignore_merges, byte_level;
    char *continuing_prefix, *end_suffix; /* NULL or "" when none */
    size_t continuing_prefix_len, end_suffix_len;
    int32_t byte_fallback_ids[256]; /* <0xNN> ids, -1 if missing */
    int32_t byte_level_ids[256];    /* id of each byte's mapped char, -1 if missing */
    int byte_level_fast;            /* every byte_level_ids set, no prefix/suffix */
    tok_bpe_cache *cache;
    pthread_mutex_t cache_lock;
    /* the WordPiece model instead (wordpiece.c): vocab, unk_id and
     * continuing_prefix are its own */
    int wordpiece;
    size_t max_input_chars_per_word;
} tok_bpe;

/* model.vocab {"piece": id, ...} into vocab_out, for BPE and WordPiece alike. */
llmrt_status tok_vocab_parse(json_t *model, const char *where, tok_strmap *vocab_out);
llmrt_status tok_bpe_parse(json_t *model, const char *where, tok_bpe *bpe, int byte_level);
void tok_bpe_free(tok_bpe *bpe);
/* Tokenizes one pre-token (raw bytes; byte-level mapping applied inside when
 * bpe->byte_level), appending ids. `cache` may be NULL. */
llmrt_status tok_bpe_tokenize(const tok_bpe *bpe, tok_bpe_cache *cache, const char *s, size_t len,
                              tok_ids *out);
/* --- BERT (wordpiece.c, bert_text.c) ------------------------------------------------- */

/* Reads a {"type": "WordPiece"} model into bpe (zeroed by the caller). */
llmrt_status tok_wordpiece_parse(json_t *model, const char *where, tok_bpe *bpe);
/* One word: the longest vocabulary prefix, then "##"-continued pieces; the
 * whole word becomes unk when a part has no match or it is too long. */
llmrt_status tok_wordpiece_tokenize(const tok_bpe *bpe, const char *s, size_t len, tok_ids *out);
/* BertNormalizer on s into out (cleared first). */
llmrt_status tok_bert_normalize(const tok_normalizer *n, const char *s, size_t len, tok_buf *out);
/* BertPreTokenizer: pieces of s[0..len) split at whitespace (dropped) and
 * punctuation (each its own piece), offsets plus `base`, appended to out. */
llmrt_status tok_bert_pretokenize(const char *s, size_t len, size_t base, tok_pieces *out);

/* Takes the cache if it is free (returns NULL otherwise); release after. */
tok_bpe_cache *tok_bpe_cache_acquire(tok_bpe *bpe);
void tok_bpe_cache_release(tok_bpe *bpe, tok_bpe_cache *cache);

/* --- added tokens (added_tokens.c) --------------------------------------------------- */

typedef struct tok_added_token {
    char *content;
    size_t len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} tok_added_token;

/* Matches a set of added tokens leftmost-longest. */
typedef struct tok_added_matcher {
    const tok_added_token **tokens; /* sorted by first byte, then longest first */
    size_t count;
    uint32_t first[257]; /* tokens[first[b] .. first[b+1]) start with byte b */
    char **patterns;     /* the text matched for each token (normalized content for normalized ones) */
    size_t *pattern_lens;
} tok_added_matcher;

typedef struct tok_segment {
    size_t offset, len;
    int32_t id; /* the added token's id, or -1 for text */
} tok_segment;

typedef struct tok_segments {
    tok_segment *data;
    size_t len, cap;
} tok_segments;

llmrt_status tok_added_matcher_build(tok_added_matcher *m, const tok_added_token *tokens, size_t count,
                                     int normalized, const tok_normalizer *norm, size_t norm_count);
void tok_added_matcher_free(tok_added_matcher *m);
/* Splits s into text and added-token segments (appended to out; offsets are
 * relative to s plus `base`). */
llmrt_status tok_added_split(const tok_added_matcher *m, const char *s, size_t len, size_t base,
                             tok_segments *out);

/* --- post-processor (encode.c) ------------------------------------------------------- */

typedef struct tok_post_processor {
    int32_t *prefix, *suffix; /* ids around the sequence when adding special tokens */
    size_t prefix_len, suffix_len;
} tok_post_processor;

llmrt_status tok_post_processor_parse(json_t *node, const char *where, const struct llmrt_tokenizer *tok,
                                      tok_post_processor *out);

/* --- decoders (decode.c) ------------------------------------------------------------- */

typedef enum { DEC_BYTE_LEVEL, DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE,
               DEC_WORDPIECE } tok_dec_type;

typedef struct tok_decoder {
    tok_dec_type type;
    char *pattern, *content; /* Replace; Strip's content */
    size_t pattern_len, content_len;
    uint32_t strip_char;
    int strip_start, strip_stop;
    char replacement[8]; /* Metaspace */
    size_t replacement_len;
    int prepend; /* Metaspace: prepend_scheme != never */
    int cleanup; /* WordPiece: " ." → "." and the like (its prefix is `pattern`) */
} tok_decoder;

llmrt_status tok_decoders_parse(json_t *node, const char *where, tok_decoder **out, size_t *count);
void tok_decoders_free(tok_decoder *d, size_t count);

/* --- chat templates (chat_template.c) ------------------------------------------------ */

typedef enum { CHAT_NONE, CHAT_LLAMA2, CHAT_LLAMA3, CHAT_LLAMA3_ALWAYS_PROMPT, CHAT_MISTRAL, CHAT_CHATML,
               CHAT_QWEN2, CHAT_QWEN3 } tok_chat_family;

tok_chat_family tok_chat_detect(const char *chat_template);
const char *tok_chat_family_name(tok_chat_family family);

/* --- the tokenizer --------------------------------------------------------------------- */

struct llmrt_tokenizer {
    char *name;
    tok_bpe bpe;
    tok_added_token *added;
    size_t added_count;
    tok_added_matcher match_raw;        /* added tokens with normalized = false */
    tok_added_matcher match_normalized; /* normalized = true */
    tok_normalizer *normalizers;
    size_t normalizer_count;
    tok_pretokenizer *pretokenizers;
    size_t pretokenizer_count;
    tok_post_processor post;
    tok_decoder *decoders;
    size_t decoder_count;
    int has_decoder;
    /* A SentencePiece-style model without pre-tokenizer runs BPE on the whole
     * normalized text; when no merge joins a non-▁ char to a following ▁, the
     * text can be cut before each such ▁ with identical results, and the
     * pieces cached. */
    int split_before_metaspace;
    /* id → token string, for the model vocabulary and the added tokens. */
    char **id_to_token;
    uint8_t *id_is_special;
    size_t vocab_size; /* max id + 1 */
    char *chat_template;
    tok_chat_family chat_family;
    char *bos_token, *eos_token; /* from tokenizer_config.json */
};

int32_t tok_added_lookup(const llmrt_tokenizer *tok, const char *s, size_t len);

/* The JSON path helpers for error messages (tokenizer.c). */
llmrt_status tok_json_string(json_t *obj, const char *key, const char *where, int required, const char **out,
                             size_t *len);
int tok_json_bool(json_t *obj, const char *key, int fallback);
/* A NUL-terminated copy of s[0..len), or NULL when out of memory. */
char *tok_dup_bytes(const char *s, size_t len);

/* Normalizers, pre-tokenizers and decoders share one shape in tokenizer.json:
 * null, one {"type": ...} object, or {"type": "Sequence", "<key>": [...]}
 * holding more of them, nested. A kind says how to read one of the three;
 * tok_components_parse flattens the shape into an array of items. */
typedef struct tok_component_kind {
    const char *sequence_key; /* "normalizers", "pretokenizers", "decoders" */
    const char *noun;         /* for "more than <capacity> <noun>" */
    size_t item_size;
    size_t capacity;          /* items at most */
    /* Fills `item` (zeroed) from `node`, an object of this `type` (never
     * "Sequence"). On failure the item is released with the list. */
    llmrt_status (*parse)(json_t *node, const char *type, const char *where, void *item);
    /* Releases `count` items and the array. */
    void (*free_list)(void *items, size_t count);
} tok_component_kind;

/* *out: a new array of *count items (NULL and 0 when node is absent or
 * null), for kind->free_list; nothing is left allocated on failure. */
llmrt_status tok_components_parse(json_t *node, const char *where, const tok_component_kind *kind, void **out,
                                  size_t *count);

#endif
