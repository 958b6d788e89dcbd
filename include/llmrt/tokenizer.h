/* llmrt — tokenizers: text to token ids and back, as HuggingFace `tokenizers`
 * does it, from the tokenizer.json that checkpoints ship.
 *
 * Supported: BPE models (byte-level as GPT-2 / LLaMA-3 / Qwen, and
 * SentencePiece-style with byte fallback as LLaMA-2 / Mistral), added and
 * special tokens, the usual normalizers, pre-tokenizers, post-processors and
 * decoders; incremental (streaming) detokenization; chat templates of the
 * recognised families. Anything else in a tokenizer.json is reported as
 * LLMRT_ERR_UNSUPPORTED with the JSON path of the field at fault.
 *
 * Ownership: an llmrt_tokenizer is created by llmrt_tokenizer_load or
 * llmrt_tokenizer_from_json and freed by llmrt_tokenizer_free. Arrays and
 * strings the calls return through `out` pointers are malloc'd and owned by
 * the caller (free them with free()), except where a comment says "borrowed".
 *
 * Threads: a tokenizer is read-only after loading, except for its encode
 * cache, which a mutex guards (a call that finds it busy runs uncached), so
 * one tokenizer may encode and decode from many threads at once. A stream
 * decoder belongs to one thread at a time.
 *
 * Text: input text is UTF-8. Invalid UTF-8 is not an error: each maximal
 * invalid subsequence is replaced by U+FFFD first, as Python's
 * bytes.decode("utf-8", "replace") does before HF tokenizers sees the text. */
#ifndef LLMRT_TOKENIZER_H
#define LLMRT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "llmrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llmrt_tokenizer llmrt_tokenizer;

/* Loads a tokenizer from a tokenizer.json file, or from a directory holding
 * tokenizer.json and (optionally) tokenizer_config.json, whose chat template
 * and bos/eos token names are then used. */
llmrt_status llmrt_tokenizer_load(const char *path, llmrt_tokenizer **out);

/* Loads a tokenizer from tokenizer.json text in memory (`len` bytes; need not
 * be NUL-terminated). `name` is used in error messages (e.g. the engine
 * file's name). */
llmrt_status llmrt_tokenizer_from_json(const char *json_text, size_t len, const char *name,
                                       llmrt_tokenizer **out);

/* Attaches tokenizer_config.json text: its chat_template (the string, or the
 * entry named "default" of a list), bos_token, eos_token. */
llmrt_status llmrt_tokenizer_set_config_json(llmrt_tokenizer *tok, const char *json_text, size_t len);

/* Sets (replaces) the chat template string directly. */
llmrt_status llmrt_tokenizer_set_chat_template(llmrt_tokenizer *tok, const char *chat_template);

void llmrt_tokenizer_free(llmrt_tokenizer *tok);

/* --- encoding ---------------------------------------------------------------- */

typedef enum llmrt_encode_flags {
    LLMRT_ENCODE_PLAIN = 0,
    /* Apply the post-processor (e.g. TemplateProcessing's BOS), as HF's
     * encode(text, add_special_tokens=True). Special tokens written in the
     * text are recognised either way. */
    LLMRT_ENCODE_ADD_SPECIAL = 1,
} llmrt_encode_flags;

/* Encodes `len` bytes of UTF-8 text. *out_ids is malloc'd (caller frees; may
 * be NULL when *out_count is 0). */
llmrt_status llmrt_tokenizer_encode(const llmrt_tokenizer *tok, const char *text, size_t len, int flags,
                                    int32_t **out_ids, size_t *out_count);

/* --- decoding ---------------------------------------------------------------- */

typedef enum llmrt_decode_flags {
    LLMRT_DECODE_PLAIN = 0,
    LLMRT_DECODE_SKIP_SPECIAL = 1, /* drop special added tokens, as skip_special_tokens=True */
} llmrt_decode_flags;

/* Decodes ids to a malloc'd NUL-terminated UTF-8 string (*out_len bytes, not
 * counting the NUL). Ids outside the vocabulary are skipped, as HF does. */
llmrt_status llmrt_tokenizer_decode(const llmrt_tokenizer *tok, const int32_t *ids, size_t count, int flags,
                                    char **out_text, size_t *out_len);

/* A streaming decoder: feed ids one at a time as a model produces them and get
 * back the new text, never a broken UTF-8 sequence (bytes of a character that
 * is split over several byte-fallback or byte-level tokens are held back until
 * it is complete). It follows HF's DecodeStream, and the text it emits, flush
 * included, concatenates to exactly llmrt_tokenizer_decode of all ids fed —
 * with one exception HF shares: stray byte-fallback tokens right after a
 * complete character make ByteFallback decode the whole byte group as U+FFFDs,
 * and the character already emitted cannot be taken back. It borrows the
 * tokenizer, which must outlive it. */
typedef struct llmrt_detokenizer llmrt_detokenizer;

llmrt_status llmrt_detokenizer_create(const llmrt_tokenizer *tok, int decode_flags, llmrt_detokenizer **out);
void llmrt_detokenizer_free(llmrt_detokenizer *d);

/* Feeds one id. *out_text points at the new text (borrowed: valid until the
 * next call on `d`; NUL-terminated), *out_len may be 0. */
llmrt_status llmrt_detokenizer_step(llmrt_detokenizer *d, int32_t id, const char **out_text, size_t *out_len);

/* Emits whatever is still held back at the end of a stream (an incomplete
 * character decodes to U+FFFD, as in the full decode). Borrowed as above. */
llmrt_status llmrt_detokenizer_flush(llmrt_detokenizer *d, const char **out_text, size_t *out_len);

/* --- vocabulary ------------------------------------------------------------- */

/* One more than the largest id (model vocabulary and added tokens). */
size_t llmrt_tokenizer_vocab_size(const llmrt_tokenizer *tok);

/* The id of a token string (added tokens first, then the model's vocabulary),
 * or -1 when there is none. */
int32_t llmrt_tokenizer_token_to_id(const llmrt_tokenizer *tok, const char *token);

/* The token string of an id (borrowed, NUL-terminated, valid as long as the
 * tokenizer), or NULL when the id is unused. Byte-level vocabularies return
 * the mapped form (e.g. "Ġworld"), as HF's id_to_token does. */
const char *llmrt_tokenizer_id_to_token(const llmrt_tokenizer *tok, int32_t id);

/* 1 if `id` is a special added token (those skip_special drops), else 0. */
int llmrt_tokenizer_is_special(const llmrt_tokenizer *tok, int32_t id);

/* The BOS and EOS ids, from tokenizer_config.json's bos_token / eos_token
 * when attached, otherwise from well-known token names (<s>, </s>,
 * <|begin_of_text|>, <|end_of_text|>, <|endoftext|>, ...); -1 when unknown. */
int32_t llmrt_tokenizer_bos_id(const llmrt_tokenizer *tok);
int32_t llmrt_tokenizer_eos_id(const llmrt_tokenizer *tok);

/* --- chat templates --------------------------------------------------------- */

typedef struct llmrt_chat_options {
    int add_generation_prompt; /* append the assistant header */
    int enable_thinking;       /* Qwen3: -1 undefined (default), 0 false, 1 true */
} llmrt_chat_options;

/* Which built-in renderer the attached chat template maps to: "llama2",
 * "llama3", "mistral", "chatml", "qwen2", "qwen3", or NULL when there is no
 * template or it is not recognised. */
const char *llmrt_tokenizer_chat_template_family(const llmrt_tokenizer *tok);

/* Renders a conversation — a JSON array of {"role": ..., "content": ...}
 * objects — with the attached chat template, exactly as transformers'
 * apply_chat_template(messages, tokenize=False, ...) does. `options` may be
 * NULL (no generation prompt). *out_text is malloc'd; encode it without
 * LLMRT_ENCODE_ADD_SPECIAL, since templates write their own BOS. */
llmrt_status llmrt_tokenizer_apply_chat_template(const llmrt_tokenizer *tok, const char *messages_json,
                                                 const llmrt_chat_options *options, char **out_text);

#ifdef __cplusplus
}
#endif
#endif
