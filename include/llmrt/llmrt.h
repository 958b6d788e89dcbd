/* llmrt — public C API.
 *
 * Conventions (as in SQLite and libuv): handles are opaque; every fallible
 * call returns an llmrt_status and, on failure, llmrt_last_error() names what
 * was wrong; objects made by llmrt_X_create/load are released by llmrt_X_free;
 * strings and arrays llmrt returns are released with llmrt_free unless a
 * function says otherwise. Options structs are initialised by their _init
 * function, which documents the defaults; set only what you need. */
#ifndef LLMRT_LLMRT_H
#define LLMRT_LLMRT_H

#include <stddef.h>
#include <stdint.h>

#include "llmrt/dtype.h"
#include "llmrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLMRT_VERSION_STRING "0.1.0"

const char *llmrt_version(void);
void llmrt_free(void *ptr);
/* 0 errors only, 1 warnings (default), 2 info (progress lines), 3 debug. */
void llmrt_set_log_level(int level);

/* ---- building engines ------------------------------------------------------ */

typedef struct llmrt_build_options {
    const char *model_dir;      /* HF checkpoint: config.json, *.safetensors, tokenizer files */
    const char *config_path;    /* config.json alone, with random_weights */
    int random_weights;         /* seeded random weights of the right shapes (benchmarks); default 0 */
    uint64_t seed;              /* default 0 */
    const char *output_path;    /* required */
    const char *backend;        /* "cpu" (default) or "cuda": the backend whose activation dtype and default
                                   limits the plan takes; the engine loads on either (llmrt_engine_options) */
    llmrt_dtype dtype;          /* weight storage; default INVALID = the checkpoint's torch_dtype (f32 if unknown) */
    int32_t max_seq_len;        /* default 0 = min(max_position_embeddings, 4096) */
    int32_t max_batch;          /* sequences per step; default 0 = the backend's (cuda 256, cpu 16) */
    int32_t max_num_tokens;     /* tokens per step; default 0 = the backend's (cuda 2048, cpu 512), at least max_batch */
    const char *disabled_passes;/* comma-separated compiler passes to skip (testing); default NULL */
    int allow_nonfinite;        /* build even if a weight holds NaN or Inf; default 0 (an error naming it) */
    int ignore_extra_tensors;   /* build even if the checkpoint has tensors the model does not use; default 0 */
    /* Quantization of the linear layers (the LM head and the embeddings
     * stay in `dtype`): weight-only LLMRT_DTYPE_INT8_WO or
     * LLMRT_DTYPE_INT4_WO (activations stay in `dtype`), or 8-bit weights
     * and activations LLMRT_DTYPE_FP8_W8A8 (E4M3) or LLMRT_DTYPE_INT8_W8A8
     * (int8, SmoothQuant); default INVALID = none. An AWQ or GPTQ
     * checkpoint builds into int4-wo (int8-wo for 8-bit GPTQ) whatever this
     * says, from its own codes. */
    llmrt_dtype quant;
    int32_t group_size;         /* inputs per scale: 0 = default (int8-wo per channel, int4-wo 128) */
    int32_t quant_scheme;       /* 0 = default (int8-wo symmetric, int4-wo asymmetric), 1 symmetric, 2 asymmetric */
    const char *onnx_path;      /* an ONNX decoder (torch.onnx.export) instead of model_dir; config_path then
                                   optional (token ids, RoPE theta), its folder's tokenizer files are embedded */
    int print_report;           /* with onnx_path: print what was recognised and fused to stdout; default 0 */
    /* Tensor parallelism over tp_size ranks (default 0 or 1: none): one
     * engine file per rank, rank 0's at output_path and rank r's at
     * "<output_path>.rank<r>"; run them under mpirun -np tp_size. */
    int32_t tp_size;
    /* Pipeline parallelism over pp_size stages, each a contiguous range of
     * layers; with tp_size too, tp_size · pp_size ranks, rank = stage ·
     * tp_size + tensor-parallel rank; the same file naming. */
    int32_t pp_size;
    /* fp8: 1 = one weight scale per matrix; default 0 = one per output channel */
    int32_t quant_per_tensor;
    /* fp8: activation scales, 0 = default dynamic per token, 1 = static per
     * tensor from calibration (needs the calibration text, --calib) */
    int32_t act_scales;
    /* Calibration: a plain-text file, cut into calib_samples samples of
     * calib_len tokens (the checkpoint's tokenizer) and run through the
     * unquantized model on `backend`, whose LINEARs' input statistics give
     * static activation scales and SmoothQuant's factors; default NULL =
     * none. Too little text is an error saying how many tokens it has. */
    const char *calib_path;
    int32_t calib_samples;      /* default 0 = 64 */
    int32_t calib_len;          /* tokens per sample; default 0 = 512, at most max_seq_len */
    /* SmoothQuant's migration strength for --quant w8a8 with calib_path, in
     * [0, 1]: 0 leaves the activations as they are, 1 moves all of their
     * range into the weights; default 0.5 (llmrt_build_options_init) */
    float smooth_alpha;
    /* What the paged KV cache stores, independent of the weights' mode:
     * default INVALID = the activation dtype; LLMRT_DTYPE_FP8_E4M3 or
     * LLMRT_DTYPE_I8 = one byte per element with an f32 scale per token and
     * KV head (max|x| / 448 or / 127, set when the token is appended), half
     * the bytes of a 16-bit cache, a quarter of an f32 one. */
    llmrt_dtype kv_cache;
} llmrt_build_options;

void llmrt_build_options_init(llmrt_build_options *options);
llmrt_status llmrt_build(const llmrt_build_options *options);

/* Refit: replaces an engine's weights by name with a checkpoint's, without
 * recompiling. Every weight of the engine must be in the checkpoint with the
 * shape the engine's config implies and a float dtype; it is converted with
 * the build's own rules (layout, storage dtype). On any error the engine is
 * left as it was: the new one is written to a temporary file and renamed. */
typedef struct llmrt_refit_options {
    const char *engine_path;    /* required: the engine to refit */
    const char *model_dir;      /* required: HF checkpoint with the new weights */
    const char *output_path;    /* default NULL = replace engine_path in place */
    int allow_nonfinite;        /* accept a weight holding NaN or Inf; default 0 (an error naming it) */
    int ignore_extra_tensors;   /* accept checkpoint tensors the engine does not use; default 0 */
} llmrt_refit_options;

void llmrt_refit_options_init(llmrt_refit_options *options);
llmrt_status llmrt_refit(const llmrt_refit_options *options);

/* A human-readable summary of an engine file (architecture, dims, ops before
 * and after fusion, weight bytes by dtype, activation memory). Free with llmrt_free. */
llmrt_status llmrt_engine_describe(const char *path, char **out_text);
/* The same with the plan as it runs on `backend` ("cpu", "cuda"; NULL or ""
 * = the one it was built for): its activation dtype and arena there. An
 * engine that cannot run on it is an error saying why. */
llmrt_status llmrt_engine_describe_on(const char *path, const char *backend, char **out_text);

/* The ranks an engine file was built for: tp_size × pp_size, 1 when it is
 * not split (mpirun -np must start as many). Reads the plan, not the
 * weights. */
llmrt_status llmrt_engine_file_ranks(const char *path, int32_t *out_ranks);

/* The CUDA devices on this host (0 when there are none or no driver); an
 * error when this llmrt was built without the CUDA backend. */
llmrt_status llmrt_gpu_count(int32_t *out_count);

/* The embedded default model (models/demo, or $LLMRT_DEMO_MODEL): the path
 * of its engine, built on first use into the cache folder ($LLMRT_CACHE_DIR,
 * else $XDG_CACHE_HOME/llmrt, else ~/.cache/llmrt). Free with llmrt_free. */
llmrt_status llmrt_default_engine(char **out_path);
const char *llmrt_default_model_dir(void);

/* ---- running engines ------------------------------------------------------- */

typedef struct llmrt_engine llmrt_engine;

typedef struct llmrt_engine_options {
    int32_t num_threads;        /* CPU threads; default 0 = all cores */
    int32_t device;             /* GPU ordinal; default 0 */
    int verify_checksum;        /* check the weights' checksum on load; default 1 */
    int32_t kv_block_size;      /* tokens per KV block; default 16 */
    float kv_cache_fraction;    /* share of memory for the KV cache: GPU memory free after weights and
                                   activations (default 0.9), CPU memory available at load (default 0.5);
                                   0 = the backend's default. Never more than max_batch full sequences. */
    uint64_t kv_cache_bytes;    /* a KV cache of this many bytes instead (rounded down to whole blocks);
                                   default 0 = by kv_cache_fraction */
    /* Limits a server tunes, set at load rather than baked in at build; 0
     * keeps the build's. max_seq_len goes up to the model's
     * max_position_embeddings; max_num_tokens is at least max_batch. */
    int32_t max_seq_len;        /* tokens per sequence */
    int32_t max_batch;          /* sequences per step */
    int32_t max_num_tokens;     /* tokens per step (a longer prompt prefills in chunks) */
    /* Tensor parallelism, when the process was started by mpirun: the bound
     * on every collective (a dead rank is an error after it, not a hang);
     * default 0 = 60 s. */
    int32_t comm_timeout_ms;
    /* The backend to run on, "cpu" or "cuda"; default NULL (or "") = the
     * one the engine was built for. Any engine runs on either: another
     * backend retargets the plan as it loads (activations in that
     * backend's dtype, f32 on the CPU and the weights' dtype on CUDA, and
     * the activation arena planned again); the limits above stay the
     * build's unless set. An op, weight or plugin the backend has no
     * kernel for is an error naming it. */
    const char *backend;
    /* The CPU backend's arithmetic for 16-bit engines: "auto" (default
     * NULL or "") rounds a bf16 weight's linear input to bf16 and sums the
     * exact products in fp32 where the CPU has a faster path for it
     * (AVX512-BF16), as HF transformers and llama.cpp compute 16-bit
     * models; "fp32" keeps activations in fp32 (the engine then matches HF
     * in fp32 on the same weights). fp32 engines are exact either way. */
    const char *cpu_precision;
} llmrt_engine_options;

void llmrt_engine_options_init(llmrt_engine_options *options);
llmrt_status llmrt_engine_load(const char *path, const llmrt_engine_options *options, llmrt_engine **out);
void llmrt_engine_free(llmrt_engine *engine);

/* Tensor-parallel engines (built with tp_size > 1) load under mpirun -np N:
 * each process maps its rank's file. Rank 0 is used as any engine; every
 * other rank calls llmrt_engine_follow, which replays rank 0's steps on
 * this rank's shard until rank 0 frees its engine. */
int32_t llmrt_engine_rank(const llmrt_engine *engine); /* 0 without MPI */
llmrt_status llmrt_engine_follow(llmrt_engine *engine);  /* returns at once on rank 0 */

int32_t llmrt_engine_vocab_size(const llmrt_engine *engine);
int32_t llmrt_engine_max_seq_len(const llmrt_engine *engine);
/* The backend the engine runs on ("cpu", "cuda"), which may differ from
 * the one it was built for (llmrt_engine_options.backend). */
const char *llmrt_engine_backend(const llmrt_engine *engine);
/* What its KV cache stores: LLMRT_DTYPE_FP8_E4M3 or LLMRT_DTYPE_I8 (built
 * with kv_cache), else the activation dtype. */
llmrt_dtype llmrt_engine_kv_cache_dtype(const llmrt_engine *engine);
/* The tokenizer.json text embedded at build time (NULL, 0 if none). */
const char *llmrt_engine_tokenizer_json(const llmrt_engine *engine, size_t *size);
/* A tokenizer from the engine's embedded tokenizer.json, with its
 * tokenizer_config.json (chat template, bos/eos names) attached. The caller
 * frees it with llmrt_tokenizer_free (include/llmrt/tokenizer.h). */
typedef struct llmrt_tokenizer llmrt_tokenizer;
llmrt_status llmrt_engine_tokenizer(const llmrt_engine *engine, llmrt_tokenizer **out);
/* The end-of-sequence ids from the model's config / generation config. */
int32_t llmrt_engine_eos_ids(const llmrt_engine *engine, const int32_t **ids);
/* Memory in use: weights, activations, KV cache (bytes). */
void llmrt_engine_memory(const llmrt_engine *engine, uint64_t *weights, uint64_t *activations, uint64_t *kv_cache);

typedef struct llmrt_sampling_params {
    int32_t max_tokens;         /* default 16 */
    float temperature;          /* 0 = greedy (default) */
    int32_t top_k;              /* 0 = off (default) */
    float top_p;                /* 1 = off (default) */
    uint64_t seed;              /* default 0 */
    int ignore_eos;             /* default 0: stop at the model's EOS ids */
    const int32_t *stop_ids;    /* extra stop token ids; default none */
    int32_t num_stop_ids;
} llmrt_sampling_params;

void llmrt_sampling_params_init(llmrt_sampling_params *params);

/* Called with each new token; return non-zero to stop generating. */
typedef int (*llmrt_token_callback)(void *user_data, int32_t token_id);

typedef struct llmrt_generation {
    int32_t *output_ids;        /* generated ids (EOS not included); llmrt_generation_free releases */
    int32_t num_output;
    const char *finish_reason;  /* "length", "stop" or "cancelled" (static string) */
    int32_t prompt_tokens;
    double prefill_seconds;     /* time to first token */
    double decode_seconds;      /* the remaining tokens */
} llmrt_generation;

llmrt_status llmrt_generate(llmrt_engine *engine, const int32_t *prompt_ids, int32_t num_prompt_ids,
                            const llmrt_sampling_params *params, llmrt_token_callback callback, void *user_data,
                            llmrt_generation *out);
void llmrt_generation_free(llmrt_generation *generation);

/* Logits at every prompt position: logits[num_prompt_ids × vocab] (caller-allocated). */
llmrt_status llmrt_prompt_logits(llmrt_engine *engine, const int32_t *prompt_ids, int32_t num_prompt_ids,
                                 float *logits);

/* ---- encoders (BERT) ---------------------------------------------------------- */

/* An encoder engine (BertModel, BertForSequenceClassification) runs one
 * bidirectional forward per input: no KV cache reuse, no sampling. It has
 * no generation (llmrt_generate, llmrt_prompt_logits and runtimes refuse
 * it); a decoder engine refuses llmrt_encode and llmrt_embed. Like
 * llmrt_prompt_logits, these take the engine for the call ("engine busy"
 * while a runtime or another call holds it). */
int llmrt_engine_is_encoder(const llmrt_engine *engine);

typedef struct llmrt_encoding {
    int32_t num_tokens;
    int32_t hidden_size;
    float *hidden;        /* [num_tokens × hidden_size]: the last hidden state */
    float *pooled;        /* [hidden_size]: the pooler's tanh(dense(hidden[0])) */
    int32_t num_labels;   /* classifier outputs; 0 without a classification head */
    float *logits;        /* [num_labels], or NULL */
} llmrt_encoding;

/* Encodes ids[0..n) (one input: n ≤ the engine's max_seq_len and
 * max_num_tokens) with segment ids token_type_ids (NULL: all 0). The caller
 * frees *out with llmrt_encoding_free. */
llmrt_status llmrt_encode(llmrt_engine *engine, const int32_t *ids, const int32_t *token_type_ids, int32_t n,
                          llmrt_encoding *out);
void llmrt_encoding_free(llmrt_encoding *encoding);

typedef enum llmrt_pooling {
    LLMRT_POOLING_CLS = 0,  /* the first ([CLS]) row of the last hidden state */
    LLMRT_POOLING_MEAN = 1, /* the mean of its rows */
} llmrt_pooling;

/* An encoding's embedding: embedding[hidden_size] (caller-allocated), the
 * pooling llmrt_embed applies, without another forward. */
llmrt_status llmrt_encoding_pool(const llmrt_encoding *encoding, llmrt_pooling pooling, float *embedding);

/* One input's embedding: embedding[hidden_size] (caller-allocated;
 * llmrt_engine_hidden_size tells the size). */
llmrt_status llmrt_embed(llmrt_engine *engine, const int32_t *ids, int32_t n, llmrt_pooling pooling,
                         float *embedding);
/* Embeddings of several inputs (ids[i][0..counts[i])) into
 * embeddings[num_inputs × hidden_size]: as many inputs a step as the
 * engine's max_batch, max_num_tokens and KV cache allow, so short inputs
 * share forwards. Same values as llmrt_embed input by input. */
llmrt_status llmrt_embed_batch(llmrt_engine *engine, const int32_t *const *ids, const int32_t *counts,
                               int32_t num_inputs, llmrt_pooling pooling, float *embeddings);
/* The width of an encoder's embeddings (0 for a decoder). */
int32_t llmrt_engine_hidden_size(const llmrt_engine *engine);

/* ---- files ------------------------------------------------------------------ */

/* What the library and the llmrt program read: regular files only (a FIFO,
 * device or directory is refused before anything blocks or reads forever),
 * and at most LLMRT_READ_MAX bytes of a whole-file read or a stream. */
#define LLMRT_READ_MAX ((size_t)256 << 20)

/* Reads a whole regular file of at most max_bytes into a NUL-terminated
 * buffer (free with llmrt_free); out_size may be NULL. */
llmrt_status llmrt_read_file(const char *path, size_t max_bytes, char **out_data, size_t *out_size);
/* Reads a stream to its end (stdin), failing past max_bytes; `name` names it
 * in messages. Free with llmrt_free. */
llmrt_status llmrt_read_stream(void *stdio_file, const char *name, size_t max_bytes, char **out_data,
                               size_t *out_size);
/* Checks that `path` may be written: absent, or an existing regular file that
 * is none of inputs[0..num_inputs) (NULL entries skipped). */
llmrt_status llmrt_check_output_path(const char *path, const char *const *inputs, size_t num_inputs);

#ifdef __cplusplus
}
#endif
#endif
