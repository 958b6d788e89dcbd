/* UTF-8, the whitespace and word-character classes HF's added-token matcher
 * uses, canonical composition (NFC, the Qwen normalizer) and the GPT-2
 * byte ↔ unicode map. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode_tables.h"

/* The second byte's valid range depends on the lead byte: this excludes
 * overlong forms, surrogates and code points above U+10FFFF (RFC 3629). */
static int second_byte_ok(uint8_t lead, uint8_t b) {
    switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
    }
}

static size_t sequence_length(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

size_t tok_utf8_decode(const char *str, size_t len, uint32_t *cp) {
    const uint8_t *s = (const uint8_t *)str;
    size_t n = sequence_length(s[0]);
    if (n == 0 || n > len) return 0;
    if (n == 1) {
        *cp = s[0];
        return 1;
    }
    if (!second_byte_ok(s[0], s[1])) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    uint32_t c = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) c = (c << 6) | (s[i] & 0x3F);
    *cp = c;
    return n;
}

size_t tok_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tok_utf8_invalid_span(const char *str, size_t len) {
    const uint8_t *s = (const uint8_t *)str;
    size_t n = sequence_length(s[0]);
    if (n <= 1) return 1;
    if (len < 2 || !second_byte_ok(s[0], s[1])) return 1;
    size_t i = 2;
    while (i < n && i < len && (s[i] & 0xC0) == 0x80) i++;
    return i; /* only called where the whole sequence is invalid, so i < n */
}

int tok_utf8_valid(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        /* ASCII runs 8 bytes at a time: most text is mostly ASCII. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= len) break;
        if ((uint8_t)s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

llmrt_status tok_utf8_append_lossy(tok_buf *out, const char *s, size_t len) {
    LLMRT_TRY(tok_buf_reserve(out, len));
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        uint32_t cp;
        size_t n;
        while (i < len && (n = tok_utf8_decode(s + i, len - i, &cp)) != 0) i += n;
        LLMRT_TRY(tok_buf_append(out, s + start, i - start));
        if (i < len) {
            LLMRT_TRY(tok_buf_append(out, "\xEF\xBF\xBD", 3));
            i += tok_utf8_invalid_span(s + i, len - i);
        }
    }
    return LLMRT_OK;
}

int tok_is_whitespace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int tok_is_word_char(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (tok_is_whitespace(c)) return 0;
    /* General punctuation, CJK symbols and punctuation, fullwidth forms' punctuation. */
    if ((c >= 0x2000 && c <= 0x206F) || (c >= 0x3000 && c <= 0x303F) || (c >= 0xFF00 && c <= 0xFF0F)) return 0;
    return 1;
}

/* --- NFC ------------------------------------------------------------------------- */

enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7, L_COUNT = 19, V_COUNT = 21,
       T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT };

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = sizeof unicode_ccc / sizeof unicode_ccc[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (unicode_ccc[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < sizeof unicode_ccc / sizeof unicode_ccc[0] && unicode_ccc[lo].cp == cp ? unicode_ccc[lo].ccc : 0;
}

static int decomposition_of(uint32_t cp, uint32_t *first, uint32_t *second) {
    size_t lo = 0, hi = sizeof unicode_decomp / sizeof unicode_decomp[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (unicode_decomp[mid].cp < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo < sizeof unicode_decomp / sizeof unicode_decomp[0] && unicode_decomp[lo].cp == cp) {
        *first = unicode_decomp[lo].first;
        *second = unicode_decomp[lo].second;
        return 1;
    }
    return 0;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE && b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = sizeof unicode_compose / sizeof unicode_compose[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const uint32_t f = unicode_compose[mid].first, s = unicode_compose[mid].second;
        if (f < a || (f == a && s < b)) lo = mid + 1;
        else hi = mid;
    }
    if (lo < sizeof unicode_compose / sizeof unicode_compose[0] && unicode_compose[lo].first == a &&
        unicode_compose[lo].second == b)
        return unicode_compose[lo].composite;
    return 0;
}

static int nfc_unstable(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t n = sizeof unicode_nfc_unstable / sizeof unicode_nfc_unstable[0];
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (unicode_nfc_unstable[mid][1] < cp) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && unicode_nfc_unstable[lo][0] <= cp;
}

int tok_nfc_quick_check(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t b = (uint8_t)s[i];
        /* Nothing below U+0300 (lead bytes < 0xCC) can change under NFC. */
        if (b < 0xCC) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        if (!n) return 0;
        if (nfc_unstable(cp)) return 0;
        i += n;
    }
    return 1;
}

typedef struct cp_vec {
    uint32_t *data;
    size_t len, cap;
} cp_vec;

static llmrt_status cp_push(cp_vec *v, uint32_t cp) {
    uint32_t *p = tok_grow(v->data, v->len, &v->cap, sizeof *p, 64);
    if (!p) return llmrt_error(LLMRT_ERR_OUT_OF_MEMORY, "tokenizer: out of memory in NFC");
    v->data = p;
    v->data[v->len++] = cp;
    return LLMRT_OK;
}

static llmrt_status decompose(cp_vec *v, uint32_t cp, int depth) {
    if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
        uint32_t s = cp - S_BASE;
        LLMRT_TRY(cp_push(v, L_BASE + s / N_COUNT));
        LLMRT_TRY(cp_push(v, V_BASE + (s % N_COUNT) / T_COUNT));
        if (s % T_COUNT) LLMRT_TRY(cp_push(v, T_BASE + s % T_COUNT));
        return LLMRT_OK;
    }
    uint32_t first, second;
    if (cp >= 0xC0 && depth < 8 && decomposition_of(cp, &first, &second)) {
        LLMRT_TRY(decompose(v, first, depth + 1));
        if (second) LLMRT_TRY(decompose(v, second, depth + 1));
        return LLMRT_OK;
    }
    return cp_push(v, cp);
}

llmrt_status tok_strip_accents_append(tok_buf *out, const char *s, size_t len) {
    cp_vec v = {0};
    llmrt_status st = LLMRT_OK;
    for (size_t i = 0; i < len && st == LLMRT_OK;) {
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        if (!n) {
            cp = 0xFFFD;
            n = tok_utf8_invalid_span(s + i, len - i);
        }
        v.len = 0;
        st = decompose(&v, cp, 0);
        /* combining marks (a non-zero combining class: HF drops category Mn) */
        for (size_t k = 0; k < v.len && st == LLMRT_OK; k++) {
            if (ccc_of(v.data[k]) != 0) continue;
            char utf8[4];
            st = tok_buf_append(out, utf8, tok_utf8_encode(v.data[k], utf8));
        }
        i += n;
    }
    free(v.data);
    return st;
}

/* Decompose, order combining marks canonically, recompose: the algorithm of
 * UAX #15 as its reference implementation writes it. */
llmrt_status tok_nfc_append(tok_buf *out, const char *s, size_t len) {
    if (tok_nfc_quick_check(s, len)) return tok_buf_append(out, s, len);
    cp_vec v = {0};
    llmrt_status st = LLMRT_OK;
    for (size_t i = 0; i < len && st == LLMRT_OK;) {
        uint32_t cp;
        size_t n = tok_utf8_decode(s + i, len - i, &cp);
        if (!n) {
            cp = 0xFFFD;
            n = tok_utf8_invalid_span(s + i, len - i);
        }
        st = decompose(&v, cp, 0);
        i += n;
    }
    if (st == LLMRT_OK) {
        /* Canonical ordering: a stable insertion sort of each run of marks. */
        for (size_t i = 1; i < v.len; i++) {
            int c = ccc_of(v.data[i]);
            if (!c) continue;
            size_t j = i;
            uint32_t cp = v.data[i];
            while (j > 0 && ccc_of(v.data[j - 1]) > c) {
                v.data[j] = v.data[j - 1];
                j--;
            }
            v.data[j] = cp;
        }
        if (v.len > 0) {
            size_t starter = 0, out_len = 1;
            int last_class = ccc_of(v.data[0]) ? 256 : 0;
            for (size_t i = 1; i < v.len; i++) {
                uint32_t cp = v.data[i];
                int c = ccc_of(cp);
                uint32_t composite = compose_pair(v.data[starter], cp);
                if (composite && (last_class < c || last_class == 0)) {
                    v.data[starter] = composite;
                } else {
                    if (c == 0) starter = out_len;
                    last_class = c;
                    v.data[out_len++] = cp;
                }
            }
            v.len = out_len;
        }
        st = tok_buf_reserve(out, v.len * 4);
        for (size_t i = 0; i < v.len && st == LLMRT_OK; i++) {
            char enc[4];
            size_t n = tok_utf8_encode(v.data[i], enc);
            st = tok_buf_append(out, enc, n);
        }
    }
    free(v.data);
    return st;
}

/* --- the byte-level map ------------------------------------------------------------ */

static tok_byte_map byte_map;
static pthread_once_t byte_map_once = PTHREAD_ONCE_INIT;

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100.. in byte order. */
static void byte_map_init(void) {
    memset(byte_map.byte_of_cp, 0xFF, sizeof byte_map.byte_of_cp);
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        uint32_t cp = printable ? (uint32_t)b : next++;
        char enc[4];
        size_t n = tok_utf8_encode(cp, enc);
        memcpy(byte_map.utf8[b], enc, n);
        byte_map.utf8_len[b] = (uint8_t)n;
        byte_map.byte_of_cp[cp] = (int16_t)b;
    }
}

const tok_byte_map *tok_byte_level_map(void) {
    pthread_once(&byte_map_once, byte_map_init);
    return &byte_map;
}
