#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "llmrt/tokenizer.h"
#include "run_output.h"

void run_settings_init(run_settings *s) {
    memset(s, 0, sizeof *s);
    llmrt_sampling_params_init(&s->params);
}

int write_npy_f32(const char *path, const float *data, int64_t rows, int64_t cols) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    char header[128];
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     (long long)rows, (long long)cols);
    /* magic (6) + version (2) + length (2) + header, padded with spaces to a
     * multiple of 64 and ended by a newline (the .npy v1.0 format) */
    int total = (10 + n + 1 + 63) / 64 * 64;
    int pad = total - 10 - n - 1;
    unsigned short header_len = (unsigned short)(total - 10);
    int ok = fwrite("\x93NUMPY\x01\x00", 1, 8, f) == 8;
    unsigned char len_bytes[2] = {(unsigned char)(header_len & 0xff), (unsigned char)(header_len >> 8)};
    ok = ok && fwrite(len_bytes, 1, 2, f) == 2 && fwrite(header, 1, (size_t)n, f) == (size_t)n;
    for (int i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    ok = ok && fwrite(data, sizeof(float), (size_t)(rows * cols), f) == (size_t)(rows * cols);
    return fclose(f) == 0 && ok;
}

/* Streaming state: text so far, how much of it was printed, stop strings. */
typedef struct stream_state {
    const run_settings *settings;
    llmrt_detokenizer *detok;
    char *text;
    size_t length, capacity, printed;
    int stopped;       /* a stop string matched */
    size_t stop_at;    /* text is cut here when stopped */
    llmrt_status error;
} stream_state;

static int append_text(stream_state *st, const char *piece, size_t n) {
    if (st->length + n + 1 > st->capacity) {
        size_t capacity = (st->length + n + 1) * 2;
        char *grown = realloc(st->text, capacity);
        if (!grown) return 0;
        st->text = grown;
        st->capacity = capacity;
    }
    memcpy(st->text + st->length, piece, n);
    st->length += n;
    st->text[st->length] = '\0';
    return 1;
}

/* Finds the earliest stop string in the text; returns 1 and its offset. */
static int find_stop(const stream_state *st, size_t *at) {
    int found = 0;
    for (int i = 0; i < st->settings->num_stop; i++) {
        const char *hit = strstr(st->text ? st->text : "", st->settings->stop[i]);
        if (hit && (!found || (size_t)(hit - st->text) < *at)) {
            *at = (size_t)(hit - st->text);
            found = 1;
        }
    }
    return found;
}

/* Prints what can no longer become part of a stop string, on a UTF-8
 * character boundary. */
static void print_safe(stream_state *st, int final) {
    if (!st->settings->stream || st->settings->json) return;
    size_t limit = st->stopped ? st->stop_at : st->length;
    if (!final && !st->stopped) {
        size_t hold = 0;
        for (int i = 0; i < st->settings->num_stop; i++) {
            size_t l = strlen(st->settings->stop[i]);
            if (l - 1 > hold) hold = l - 1;
        }
        limit = limit > hold ? limit - hold : 0;
        while (limit > st->printed && limit < st->length && ((unsigned char)st->text[limit] & 0xc0) == 0x80) limit--;
    }
    if (limit > st->printed) {
        fwrite(st->text + st->printed, 1, limit - st->printed, stdout);
        fflush(stdout);
        st->printed = limit;
    }
}

static int on_token(void *user, int32_t id) {
    stream_state *st = user;
    if (!st->detok) return 0;
    const char *piece;
    size_t n;
    st->error = llmrt_detokenizer_step(st->detok, id, &piece, &n);
    if (st->error != LLMRT_OK || !append_text(st, piece, n)) return 1;
    if (st->settings->num_stop && find_stop(st, &st->stop_at)) st->stopped = 1;
    print_safe(st, 0);
    return st->stopped;
}

static int prepare_prompt(const run_request *r, llmrt_tokenizer *tok, int32_t **ids, int32_t *count) {
    if (r->prompt_ids) {
        *ids = malloc((size_t)r->num_prompt_ids * sizeof **ids);
        if (!*ids) return 0;
        memcpy(*ids, r->prompt_ids, (size_t)r->num_prompt_ids * sizeof **ids);
        *count = r->num_prompt_ids;
        return 1;
    }
    char *rendered = NULL;
    const char *text = r->prompt_text;
    int flags = LLMRT_ENCODE_ADD_SPECIAL;
    if (r->chat_path) {
        char *messages = cli_read_file(r->chat_path, NULL);
        if (!messages) {
            fprintf(stderr, "llmrt run: cannot read %s\n", r->chat_path);
            return 0;
        }
        llmrt_chat_options chat = {.add_generation_prompt = 1, .enable_thinking = -1};
        llmrt_status s = llmrt_tokenizer_apply_chat_template(tok, messages, &chat, &rendered);
        free(messages);
        if (s != LLMRT_OK) return report_failure("run") && 0;
        text = rendered;
        flags = LLMRT_ENCODE_PLAIN; /* templates write their own BOS */
    }
    size_t n = 0;
    llmrt_status s = llmrt_tokenizer_encode(tok, text, strlen(text), flags, ids, &n);
    free(rendered);
    if (s != LLMRT_OK) return report_failure("run") && 0;
    *count = (int32_t)n;
    return 1;
}

static void print_json(const run_request *r, const int32_t *prompt, int32_t n, const llmrt_generation *g,
                       const char *text, size_t text_len, const char *finish) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(0));
    json_t *p = json_array(), *out = json_array();
    for (int32_t i = 0; i < n; i++) json_array_append_new(p, json_integer(prompt[i]));
    for (int32_t i = 0; i < g->num_output; i++) json_array_append_new(out, json_integer(g->output_ids[i]));
    json_object_set_new(o, "prompt_ids", p);
    json_object_set_new(o, "output_ids", out);
    json_object_set_new(o, "text", json_stringn(text ? text : "", text ? text_len : 0));
    json_object_set_new(o, "finish_reason", json_string(finish));
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(n));
    json_object_set_new(usage, "completion_tokens", json_integer(g->num_output));
    json_object_set_new(o, "usage", usage);
    (void)r;
    char *dump = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (dump) puts(dump);
    free(dump);
    json_decref(o);
}

int run_one(const run_settings *s, const llmrt_engine_options *eo, const run_request *r) {
    llmrt_engine *engine = NULL;
    llmrt_tokenizer *tok = NULL;
    int32_t *prompt = NULL, count = 0;
    float *logits = NULL;
    llmrt_generation g = {0};
    stream_state st = {.settings = s};
    int code = 1;
    if (llmrt_engine_load(s->engine_path, eo, &engine) != LLMRT_OK) {
        code = report_failure("run");
        goto done;
    }
    int needs_text = r->prompt_text || r->chat_path || s->num_stop || s->stream;
    if (llmrt_engine_tokenizer_json(engine, NULL)) {
        if (llmrt_engine_tokenizer(engine, &tok) != LLMRT_OK) {
            code = report_failure("run");
            goto done;
        }
    } else if (needs_text) {
        fprintf(stderr, "llmrt run: %s has no tokenizer: use --prompt-ids and no --stop/--stream\n", s->engine_path);
        goto done;
    }
    if (!prepare_prompt(r, tok, &prompt, &count)) goto done;
    if (s->dump_logits) {
        int32_t vocab = llmrt_engine_vocab_size(engine);
        logits = malloc((size_t)count * (size_t)vocab * sizeof *logits);
        if (!logits || llmrt_prompt_logits(engine, prompt, count, logits) != LLMRT_OK) {
            code = report_failure("run");
            goto done;
        }
        if (!write_npy_f32(s->dump_logits, logits, count, vocab)) {
            fprintf(stderr, "llmrt run: cannot write %s\n", s->dump_logits);
            goto done;
        }
    }
    if (tok && llmrt_detokenizer_create(tok, LLMRT_DECODE_SKIP_SPECIAL, &st.detok) != LLMRT_OK) {
        code = report_failure("run");
        goto done;
    }
    if (llmrt_generate(engine, prompt, count, &s->params, on_token, &st, &g) != LLMRT_OK) {
        code = report_failure("run");
        goto done;
    }
    if (st.error != LLMRT_OK) {
        code = report_failure("run");
        goto done;
    }
    const char *finish = st.stopped ? "stop" : g.finish_reason;
    if (st.detok && !st.stopped) {
        const char *piece;
        size_t n;
        if (llmrt_detokenizer_flush(st.detok, &piece, &n) == LLMRT_OK) append_text(&st, piece, n);
    }
    size_t text_len = st.stopped ? st.stop_at : st.length;
    if (s->json) {
        print_json(r, prompt, count, &g, st.text, text_len, finish);
    } else if (s->stream) {
        print_safe(&st, 1);
        putchar('\n');
    } else if (tok) {
        fwrite(st.text ? st.text : "", 1, text_len, stdout);
        putchar('\n');
    } else {
        for (int32_t i = 0; i < g.num_output; i++) printf("%s%d", i ? "," : "", g.output_ids[i]);
        putchar('\n');
    }
    if (s->verbose) {
        uint64_t w, act, kv;
        llmrt_engine_memory(engine, &w, &act, &kv);
        fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tokens/s)\n", count, g.prefill_seconds,
                g.prefill_seconds > 0 ? count / g.prefill_seconds : 0.0);
        if (g.num_output > 1)
            fprintf(stderr, "decode: %d tokens in %.3f s (%.2f tokens/s)\n", g.num_output - 1, g.decode_seconds,
                    g.decode_seconds > 0 ? (g.num_output - 1) / g.decode_seconds : 0.0);
        fprintf(stderr, "memory: weights %.1f MiB, activations %.1f MiB, KV cache %.1f MiB\n", (double)w / 1048576.0,
                (double)act / 1048576.0, (double)kv / 1048576.0);
    }
    code = 0;
done:
    llmrt_generation_free(&g);
    llmrt_detokenizer_free(st.detok);
    free(st.text);
    free(prompt);
    free(logits);
    llmrt_tokenizer_free(tok);
    llmrt_engine_free(engine);
    return code;
}
