/* safetensors reader: single files and sharded checkpoints
 * (model.safetensors.index.json). Files are memory-mapped; tensors are views
 * into the maps, never copies. Every length, offset, dtype and shape in a
 * header is validated before anything is exposed: a truncated file, a header
 * length past the end, offsets out of range or overlapping, a size that
 * disagrees with the shape, an unknown dtype, a name twice → an error naming
 * the file and the tensor. The format does not require offsets aligned to the
 * element size, so such files are accepted: `data` may be unaligned for its
 * dtype; read it with memcpy or copy it. Tensors are sorted by name. */
#ifndef LLMRT_IMPORT_SAFETENSORS_H
#define LLMRT_IMPORT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "llmrt/dtype.h"

enum { LLMRT_MAX_DIMS = 8 };

typedef struct llmrt_st_tensor {
    const char *name;       /* owned by the checkpoint */
    llmrt_dtype dtype;
    int32_t ndim;
    int64_t shape[LLMRT_MAX_DIMS];
    const uint8_t *data;    /* view into the mapped file */
    size_t nbytes;
    const char *file_path;  /* the shard it lives in */
} llmrt_st_tensor;

typedef struct llmrt_checkpoint llmrt_checkpoint; /* opaque: one or more mapped shards */

/* Opens one .safetensors file. */
llmrt_status llmrt_checkpoint_open_file(const char *path, llmrt_checkpoint **out);
/* Opens a checkpoint directory: model.safetensors.index.json if present
 * (every shard it names, each tensor in the shard the index says), else
 * model.safetensors, else every *.safetensors file in the directory. */
llmrt_status llmrt_checkpoint_open_dir(const char *dir, llmrt_checkpoint **out);
/* Parses a safetensors image already in memory (no copy; `data` must outlive
 * the checkpoint). Used by the fuzz target and tests. */
llmrt_status llmrt_checkpoint_open_memory(const uint8_t *data, size_t size, const char *name,
                                          llmrt_checkpoint **out);
/* A checkpoint of tensors held elsewhere (the initializers of an ONNX
 * model): the table is copied, the data stays a view and must outlive it. */
llmrt_status llmrt_checkpoint_open_views(const llmrt_st_tensor *tensors, size_t count, const char *name,
                                         llmrt_checkpoint **out);
void llmrt_checkpoint_close(llmrt_checkpoint *checkpoint);

size_t llmrt_checkpoint_tensor_count(const llmrt_checkpoint *checkpoint);
const llmrt_st_tensor *llmrt_checkpoint_tensor(const llmrt_checkpoint *checkpoint, size_t index);
/* NULL if absent. */
const llmrt_st_tensor *llmrt_checkpoint_find(const llmrt_checkpoint *checkpoint, const char *name);
/* The same lookup without counting the tensor as read (probing whether an
 * optional tensor is there). */
const llmrt_st_tensor *llmrt_checkpoint_peek(const llmrt_checkpoint *checkpoint, const char *name);
/* Drops the mapped pages wholly inside [data, data + nbytes) from this
 * process (madvise DONTNEED; a later read maps them again from the page
 * cache): a build converts a tensor and lets its bytes go, so its resident
 * memory does not grow by the checkpoint's size. Nothing for a range outside
 * the checkpoint's file maps (memory images, views). */
void llmrt_checkpoint_release(const llmrt_checkpoint *checkpoint, const uint8_t *data, size_t nbytes);
/* How many tensors llmrt_checkpoint_find has not been asked for (apart from
 * buffers such as rotary_emb.inv_freq), and their names, comma-separated, in
 * list[cap] ("..." at the end when cut). */
size_t llmrt_checkpoint_unused(const llmrt_checkpoint *checkpoint, char *list, size_t cap);

/* Maps safetensors dtype strings ("F32", "F16", "BF16", "F64", "I8", "U8",
 * "I16", "I32", "I64", "BOOL", "F8_E4M3", "F8_E5M2") to llmrt_dtype. */
llmrt_dtype llmrt_safetensors_dtype(const char *name);

/* Writes a single-file safetensors image (tests and tools): tensors in the
 * given order, 8-byte aligned header. */
typedef struct llmrt_st_write_entry {
    const char *name;
    llmrt_dtype dtype;
    int32_t ndim;
    const int64_t *shape;
    const void *data;
} llmrt_st_write_entry;
llmrt_status llmrt_safetensors_write(const char *path, const llmrt_st_write_entry *entries, size_t count);

#endif
