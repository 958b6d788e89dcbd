/* Requantizes an F16 GGUF (say, one bench/../shared/bench/make_gguf_random.py
 * wrote) to llama.cpp's Q8_0 or Q4_0, for side-by-side runs with llmrt's
 * int8-wo / int4-wo engines of the same shape. Like llmrt's engines, the
 * token embeddings and the output (LM head) stay F16; every other 2-D F16
 * tensor whose rows are whole 32-blocks is quantized as ggml's reference
 * quantizers do (quantize_row_q8_0_ref, quantize_row_q4_0_ref). Where no
 * numpy is at hand for gguf-py and no llama-quantize is built. From the
 * repository root:
 *
 *   gcc -O2 -std=c11 -Iinclude -Isrc bench/gguf_requant.c src/core/dtype.c -lm -o build/gguf_requant
 *   build/gguf_requant IN.gguf OUT.gguf q8_0|q4_0 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"

enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q8_0 = 8 };

typedef struct tensor {
    char name[256];
    uint32_t ndim, type, new_type;
    uint64_t dims[4], offset, new_offset, bytes, new_bytes;
} tensor;

static const unsigned char *p, *end;

static int need(size_t n) { return (size_t)(end - p) >= n; }
static uint32_t rd32(void) { uint32_t v; memcpy(&v, p, 4); p += 4; return v; }
static uint64_t rd64(void) { uint64_t v; memcpy(&v, p, 8); p += 8; return v; }

/* Skips one KV value of `type` (arrays recursively). */
static int skip_value(uint32_t type) {
    static const int sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type > 12) return 0;
    if (type == 8) { /* string */
        if (!need(8)) return 0;
        uint64_t n = rd64();
        if (!need(n)) return 0;
        p += n;
        return 1;
    }
    if (type == 9) { /* array */
        if (!need(12)) return 0;
        uint32_t elem = rd32();
        uint64_t n = rd64();
        for (uint64_t i = 0; i < n; i++)
            if (!skip_value(elem)) return 0;
        return 1;
    }
    if (!need((size_t)sizes[type])) return 0;
    p += sizes[type];
    return 1;
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static void quantize_row(unsigned char *out, const uint16_t *in, int64_t n, int type) {
    for (int64_t b = 0; b < n / 32; b++) {
        float x[32];
        for (int i = 0; i < 32; i++) x[i] = llmrt_f16_to_f32(in[b * 32 + i]);
        if (type == GGML_Q8_0) {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
            const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
            unsigned char *blk = out + b * 34;
            uint16_t h = llmrt_f32_to_f16(d);
            memcpy(blk, &h, 2);
            for (int i = 0; i < 32; i++) blk[2 + i] = (unsigned char)(int8_t)roundf(x[i] * id);
        } else {
            float amax = 0, max = 0;
            for (int i = 0; i < 32; i++)
                if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
            const float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
            unsigned char *blk = out + b * 18;
            uint16_t h = llmrt_f32_to_f16(d);
            memcpy(blk, &h, 2);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
                q0 = q0 > 15 ? 15 : q0, q1 = q1 > 15 ? 15 : q1;
                blk[2 + j] = (unsigned char)(q0 | (q1 << 4));
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[3], "q8_0") && strcmp(argv[3], "q4_0"))) {
        fprintf(stderr, "usage: gguf_requant IN.gguf OUT.gguf q8_0|q4_0\n");
        return 2;
    }
    const int qtype = strcmp(argv[3], "q8_0") == 0 ? GGML_Q8_0 : GGML_Q4_0;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return perror(argv[1]), 1;
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *in = malloc((size_t)size);
    if (!in || fread(in, 1, (size_t)size, f) != (size_t)size) return fprintf(stderr, "cannot read %s\n", argv[1]), 1;
    fclose(f);
    p = in, end = in + size;
    if (!need(24) || memcmp(p, "GGUF", 4) != 0) return fprintf(stderr, "%s: not GGUF\n", argv[1]), 1;
    p += 4;
    if (rd32() != 3) return fprintf(stderr, "%s: GGUF version is not 3\n", argv[1]), 1;
    const uint64_t count = rd64(), kvs = rd64();
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < kvs; i++) {
        if (!need(8)) return 1;
        const uint64_t klen = rd64();
        if (!need(klen + 4)) return 1;
        const int is_alignment = klen == 17 && memcmp(p, "general.alignment", 17) == 0;
        p += klen;
        const uint32_t type = rd32();
        if (is_alignment && type == 4) {
            alignment = rd32();
            continue;
        }
        if (!skip_value(type)) return fprintf(stderr, "%s: bad metadata\n", argv[1]), 1;
    }
    const size_t kv_end = (size_t)(p - in);
    tensor *t = calloc(count, sizeof *t);
    for (uint64_t i = 0; i < count; i++) {
        const uint64_t nlen = rd64();
        if (nlen >= sizeof t[i].name || !need(nlen + 4)) return 1;
        memcpy(t[i].name, p, nlen);
        p += nlen;
        t[i].ndim = rd32();
        if (t[i].ndim > 4) return 1;
        uint64_t elems = 1;
        for (uint32_t d = 0; d < t[i].ndim; d++) elems *= (t[i].dims[d] = rd64());
        t[i].type = rd32();
        t[i].offset = rd64();
        t[i].bytes = t[i].type == GGML_F32 ? elems * 4 : t[i].type == GGML_F16 ? elems * 2 : 0;
        if (!t[i].bytes) return fprintf(stderr, "%s: tensor %s is neither F32 nor F16\n", argv[1], t[i].name), 1;
        const int keep = t[i].type != GGML_F16 || t[i].ndim != 2 || t[i].dims[0] % 32 != 0 ||
                         strcmp(t[i].name, "token_embd.weight") == 0 || strcmp(t[i].name, "output.weight") == 0;
        t[i].new_type = keep ? t[i].type : (uint32_t)qtype;
        t[i].new_bytes = keep ? t[i].bytes : elems / 32 * (qtype == GGML_Q8_0 ? 34 : 18);
    }
    const uint64_t data_start = align_up((uint64_t)(p - in), alignment);
    uint64_t at = 0;
    for (uint64_t i = 0; i < count; i++) {
        t[i].new_offset = at;
        at = align_up(at + t[i].new_bytes, alignment);
    }
    FILE *o = fopen(argv[2], "wb");
    if (!o) return perror(argv[2]), 1;
    fwrite(in, 1, kv_end, o); /* header and metadata as they were */
    for (uint64_t i = 0; i < count; i++) {
        const uint64_t nlen = strlen(t[i].name);
        fwrite(&nlen, 8, 1, o);
        fwrite(t[i].name, 1, nlen, o);
        fwrite(&t[i].ndim, 4, 1, o);
        fwrite(t[i].dims, 8, t[i].ndim, o);
        fwrite(&t[i].new_type, 4, 1, o);
        fwrite(&t[i].new_offset, 8, 1, o);
    }
    for (long pos = ftell(o); (uint64_t)pos < align_up((uint64_t)pos, alignment); pos++) fputc(0, o);
    unsigned char *buf = malloc(1 << 26);
    for (uint64_t i = 0; i < count; i++) {
        while ((uint64_t)ftell(o) < align_up((uint64_t)ftell(o), alignment)) fputc(0, o);
        const unsigned char *src = in + data_start + t[i].offset;
        if (t[i].new_type == t[i].type) {
            fwrite(src, 1, t[i].bytes, o);
            continue;
        }
        const int64_t row = (int64_t)t[i].dims[0], rows = (int64_t)t[i].dims[1];
        const size_t row_out = (size_t)row / 32 * (qtype == GGML_Q8_0 ? 34 : 18);
        for (int64_t r = 0; r < rows; r++) {
            quantize_row(buf, (const uint16_t *)(src + (size_t)r * (size_t)row * 2), row, qtype);
            fwrite(buf, 1, row_out, o);
        }
    }
    fclose(o);
    printf("%s: %llu tensors, %s except token_embd / output\n", argv[2], (unsigned long long)count, argv[3]);
    return 0;
}
