#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "llmrt/runtime.h"
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

/* Streaming: the runtime hands over text that is final (stop strings are
 * held back until decided and cut exactly), so it is printed as it comes. */
static int on_event(void *user, const llmrt_token_event *event) {
    (void)user;
    if (event->text_len) {
        fwrite(event->text, 1, event->text_len, stdout);
        fflush(stdout);
    }
    return 0;
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
        if (!messages) return report_failure("run") && 0;
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

void note_if_cut(size_t index, int32_t prompt_tokens, const llmrt_sequence_output *g, int32_t max_tokens,
                 int32_t max_seq_len) {
    if (!g->finish_reason || strcmp(g->finish_reason, "length") != 0 || g->num_output >= max_tokens ||
        prompt_tokens + g->num_output < max_seq_len)
        return;
    char label[32] = "";
    if (index != SIZE_MAX) snprintf(label, sizeof label, "[%zu] ", index);
    fprintf(stderr, "llmrt run: %scut at the engine's max sequence length of %d tokens (%d of prompt, %d of the %d "
                    "requested generated)\n", label, max_seq_len, prompt_tokens, g->num_output, max_tokens);
}

static void print_json(const int32_t *prompt, int32_t n, const llmrt_sequence_output *g) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(0));
    json_t *p = json_array(), *out = json_array();
    for (int32_t i = 0; i < n; i++) json_array_append_new(p, json_integer(prompt[i]));
    for (int32_t i = 0; i < g->num_output; i++) json_array_append_new(out, json_integer(g->output_ids[i]));
    json_object_set_new(o, "prompt_ids", p);
    json_object_set_new(o, "output_ids", out);
    json_object_set_new(o, "text", json_stringn(g->text ? g->text : "", g->text ? g->text_len : 0));
    json_object_set_new(o, "finish_reason", json_string(g->finish_reason));
    json_t *usage = json_object();
    json_object_set_new(usage, "prompt_tokens", json_integer(n));
    json_object_set_new(usage, "completion_tokens", json_integer(g->num_output));
    json_object_set_new(o, "usage", usage);
    char *dump = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (dump) puts(dump);
    free(dump);
    json_decref(o);
}

int run_one(const run_settings *s, const llmrt_engine_options *eo, const run_request *r) {
    llmrt_engine *engine = NULL;
    llmrt_tokenizer *tok = NULL;
    llmrt_runtime *rt = NULL;
    int32_t *prompt = NULL, count = 0;
    float *logits = NULL;
    llmrt_result result = {0};
    int code = 1, have_result = 0;
    if (llmrt_engine_load(s->engine_path, eo, &engine) != LLMRT_OK) {
        code = report_failure("run");
        goto done;
    }
    if (llmrt_engine_rank(engine) > 0) { /* a tensor-parallel rank: rank 0 drives it */
        code = llmrt_engine_follow(engine) == LLMRT_OK ? 0 : report_failure("run");
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
    if (s->dump_logits) { /* before the runtime takes the engine */
        int32_t vocab = llmrt_engine_vocab_size(engine);
        logits = malloc((size_t)count * (size_t)vocab * sizeof *logits);
        if (!logits || llmrt_prompt_logits(engine, prompt, count, logits) != LLMRT_OK) {
            code = report_failure("run");
            goto done;
        }
        const char *inputs[] = {s->engine_path, r->chat_path};
        if (llmrt_check_output_path(s->dump_logits, inputs, 2) != LLMRT_OK) {
            code = report_failure("run");
            goto done;
        }
        if (!write_npy_f32(s->dump_logits, logits, count, vocab)) {
            fprintf(stderr, "llmrt run: cannot write %s\n", s->dump_logits);
            goto done;
        }
    }
    /* One request through the runtime: the same path as --requests and the
     * server (stop strings, streaming text, timings). */
    llmrt_runtime_options ro;
    llmrt_runtime_options_init(&ro);
    ro.background = 0;
    llmrt_request req;
    llmrt_request_init(&req);
    req.prompt_ids = prompt;
    req.num_prompt_ids = count;
    req.sampling = s->params;
    req.stop = s->stop;
    req.num_stop = s->num_stop;
    req.detokenize = tok != NULL;
    if (s->stream && !s->json) req.callback = on_event;
    llmrt_request_id id;
    int done_flag = 0;
    if (llmrt_runtime_create(engine, &ro, &rt) != LLMRT_OK || llmrt_runtime_submit(rt, &req, &id) != LLMRT_OK ||
        llmrt_runtime_wait(rt, id, -1, &result, &done_flag) != LLMRT_OK) {
        code = report_failure("run");
        goto done;
    }
    have_result = 1;
    if (result.status != LLMRT_OK || result.num_sequences < 1) {
        fprintf(stderr, "llmrt run: %s\n", result.error ? result.error : "the request produced no output");
        goto done;
    }
    const llmrt_sequence_output *g = &result.sequences[0];
    if (s->json) {
        print_json(prompt, count, g);
    } else if (s->stream) {
        putchar('\n');
    } else if (tok) {
        fwrite(g->text ? g->text : "", 1, g->text ? g->text_len : 0, stdout);
        putchar('\n');
    } else {
        for (int32_t i = 0; i < g->num_output; i++) printf("%s%d", i ? "," : "", g->output_ids[i]);
        putchar('\n');
    }
    if (!s->json) note_if_cut(SIZE_MAX, count, g, s->params.max_tokens, llmrt_engine_max_seq_len(engine));
    if (s->verbose) {
        uint64_t w, act, kv;
        llmrt_engine_memory(engine, &w, &act, &kv);
        double prefill = result.ttft_seconds, decode = result.e2e_seconds - result.ttft_seconds;
        fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tokens/s)\n", count, prefill,
                prefill > 0 ? count / prefill : 0.0);
        if (g->num_output > 1)
            fprintf(stderr, "decode: %d tokens in %.3f s (%.2f tokens/s)\n", g->num_output - 1, decode,
                    decode > 0 ? (g->num_output - 1) / decode : 0.0);
        fprintf(stderr, "memory: weights %.1f MiB, activations %.1f MiB, KV cache %.1f MiB\n", (double)w / 1048576.0,
                (double)act / 1048576.0, (double)kv / 1048576.0);
    }
    code = 0;
done:
    if (have_result) llmrt_result_free(&result);
    llmrt_runtime_free(rt);
    free(prompt);
    free(logits);
    llmrt_tokenizer_free(tok);
    llmrt_engine_free(engine);
    return code;
}
