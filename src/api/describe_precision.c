/* The precision part of `llmrt inspect`: each layer's matrix dtypes
 * (consecutive layers alike on one line) and the weight bytes by kind,
 * packed matrices split into codes and scales. */
#include "api/describe_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/quant.h"
#include "core/quant8.h"

/* The layer index of a weight name ("model.layers.12.mlp.up_proj.weight"
 * → 12, `rest` "mlp.up_proj"), or -1 with `rest` the name less "model."
 * and ".weight". The first all-digit component is the index; a "#…"
 * suffix is dropped. */
static int64_t split_name(const char *name, char *rest, size_t size) {
    int64_t layer = -1;
    const char *tail = name;
    for (const char *p = name; *p; p++) {
        if ((p == name || p[-1] == '.') && isdigit((unsigned char)*p)) {
            const char *q = p;
            while (isdigit((unsigned char)*q)) q++;
            if (*q == '.' || !*q) {
                layer = strtoll(p, NULL, 10);
                tail = *q ? q + 1 : q;
                break;
            }
        }
    }
    if (layer < 0 && strncmp(tail, "model.", 6) == 0) tail += 6;
    snprintf(rest, size, "%s", tail);
    char *mark = strchr(rest, '#'); /* "…weight#transposed": a layout note */
    if (mark) *mark = '\0';
    const size_t n = strlen(rest);
    if (n > 7 && strcmp(rest + n - 7, ".weight") == 0) rest[n - 7] = '\0';
    return layer;
}

static void add(char **buf, size_t *len, size_t *cap, const char *fmt, const char *a, const char *b) {
    char piece[512];
    const int n = snprintf(piece, sizeof piece, fmt, a, b);
    if (n <= 0) return;
    const size_t want = *len + (size_t)(n < (int)sizeof piece ? n : (int)sizeof piece - 1) + 1;
    if (want > *cap) {
        char *grown = realloc(*buf, want * 2);
        if (!grown) return;
        *buf = grown, *cap = want * 2;
    }
    memcpy(*buf + *len, piece, want - *len);
    *len = want - 1;
}

/* A matrix's precision label: its dtype, with "/tensor" and "/static"
 * for 8-bit ones of one weight scale and a calibrated input scale. */
static void label_of(const llmrt_plan_weight *w, char *label, size_t size) {
    int per_tensor = 0, fixed_input = 0;
    if (llmrt_dtype_is_q8(w->dtype) && w->data && w->nbytes >= LLMRT_Q8WEIGHT_HEADER_BYTES) {
        const llmrt_q8weight_header *h = w->data;
        per_tensor = (h->flags & LLMRT_Q8_PER_TENSOR) != 0;
        fixed_input = (h->flags & LLMRT_Q8_STATIC_INPUT) != 0;
    }
    snprintf(label, size, "%s%s%s", llmrt_dtype_name(w->dtype), per_tensor ? "/tensor" : "", fixed_input ? "/static" : "");
}

/* Layer `layer`'s matrices by precision: "fp8: self_attn.q_proj k_proj
 * ...; bf16: ..." (a name's prefix shown only where it changes). */
static char *layer_summary(const llmrt_plan *plan, int64_t layer) {
    char *s = NULL;
    size_t len = 0, cap = 0;
    char done[8][32];
    int ndone = 0;
    for (int32_t i = 0; i < plan->num_weights; i++) {
        const llmrt_plan_weight *w = &plan->weights[i];
        char rest[256], label[32];
        if (w->ndim < 2 || split_name(w->name, rest, sizeof rest) != layer) continue;
        label_of(w, label, sizeof label);
        int seen = 0;
        for (int d = 0; d < ndone; d++) seen |= strcmp(done[d], label) == 0;
        if (seen || ndone == 8) continue;
        snprintf(done[ndone++], sizeof done[0], "%s", label);
        add(&s, &len, &cap, len ? "; %s:%s" : "%s:%s", label, "");
        char prefix[256] = "";
        for (int32_t j = i; j < plan->num_weights; j++) {
            const llmrt_plan_weight *v = &plan->weights[j];
            char name[256], other[32];
            if (v->ndim < 2 || split_name(v->name, name, sizeof name) != layer) continue;
            label_of(v, other, sizeof other);
            if (strcmp(other, label) != 0) continue;
            const char *dot = strrchr(name, '.');
            const size_t plen = dot ? (size_t)(dot - name) + 1 : 0;
            const int same = plen && strncmp(prefix, name, plen) == 0 && prefix[plen] == '\0';
            add(&s, &len, &cap, " %s%s", same ? name + plen : name, "");
            snprintf(prefix, sizeof prefix, "%.*s", (int)plen, name);
        }
    }
    return s;
}

static double mib(uint64_t bytes) { return (double)bytes / 1048576.0; }

char *llmrt_describe_precision(const llmrt_plan *plan) {
    char *out = NULL;
    size_t len = 0, cap = 0;
    char line[640];
    int64_t layers = 0;
    for (int32_t i = 0; i < plan->num_weights; i++) {
        char rest[256];
        const int64_t l = split_name(plan->weights[i].name, rest, sizeof rest);
        if (l + 1 > layers) layers = l + 1;
    }
    /* one line per run of layers with the same summary */
    char *previous = NULL;
    int64_t first = 0;
    for (int64_t l = 0; l <= layers; l++) {
        char *now = l < layers ? layer_summary(plan, l) : NULL;
        const int same = previous && now && strcmp(previous, now) == 0;
        if (previous && !same) {
            char range[48];
            if (first == l - 1) snprintf(range, sizeof range, "layer %lld", (long long)first);
            else snprintf(range, sizeof range, "layers %lld-%lld", (long long)first, (long long)(l - 1));
            snprintf(line, sizeof line, "              %-14s ", range);
            add(&out, &len, &cap, "%s%s\n", line, previous);
        }
        if (!same) free(previous), previous = now, first = l;
        else free(now);
    }
    free(previous);
    /* the matrices outside the layers: embeddings, LM head */
    char *others = NULL;
    size_t olen = 0, ocap = 0;
    for (int32_t i = 0; i < plan->num_weights; i++) {
        const llmrt_plan_weight *w = &plan->weights[i];
        char rest[256];
        if (w->ndim >= 2 && split_name(w->name, rest, sizeof rest) < 0)
            add(&others, &olen, &ocap, olen ? ", %s %s" : "%s %s", rest, llmrt_dtype_name(w->dtype));
    }
    if (others) {
        snprintf(line, sizeof line, "              %-14s ", "other");
        add(&out, &len, &cap, "%s%s\n", line, others);
        free(others);
    }
    /* bytes by kind */
    uint64_t floats[LLMRT_DTYPE_COUNT] = {0}, vectors = 0, codes[2] = {0}, scales[2] = {0}, packed[2] = {0};
    for (int32_t i = 0; i < plan->num_weights; i++) {
        const llmrt_plan_weight *w = &plan->weights[i];
        if (llmrt_dtype_is_q8(w->dtype) && w->ndim == 2) {
            const int k = w->dtype == LLMRT_DTYPE_INT8_W8A8;
            codes[k] += (uint64_t)(w->dims[0] * w->dims[1]);
            scales[k] += (uint64_t)w->dims[0] * 4;
            packed[k] += w->nbytes;
        } else if (w->ndim < 2 && !llmrt_dtype_is_packed(w->dtype)) {
            vectors += w->nbytes;
        } else if ((unsigned)w->dtype < LLMRT_DTYPE_COUNT) {
            floats[w->dtype] += w->nbytes;
        }
    }
    char bytes[640];
    size_t at = 0;
    for (int k = 0; k < 2; k++)
        if (packed[k])
            at += (size_t)snprintf(bytes + at, sizeof bytes - at, "%s%s codes %.2f MiB + f32 scales %.3f MiB",
                                   at ? ", " : "", k ? "w8a8 int8" : "fp8 e4m3", mib(codes[k]), mib(scales[k]));
    for (int d = 0; d < LLMRT_DTYPE_COUNT && at < sizeof bytes; d++)
        if (floats[d])
            at += (size_t)snprintf(bytes + at, sizeof bytes - at, "%s%s matrices %.2f MiB", at ? ", " : "",
                                   llmrt_dtype_name((llmrt_dtype)d), mib(floats[d]));
    if (vectors && at < sizeof bytes)
        snprintf(bytes + at, sizeof bytes - at, "%svectors (norms, biases) %.3f MiB", at ? ", " : "", mib(vectors));
    add(&out, &len, &cap, "bytes         %s%s\n", bytes, "");
    return out;
}
