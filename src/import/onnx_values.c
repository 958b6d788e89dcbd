/* Reading the known contents of importer values: folded ints and floats,
 * or an initializer viewed in place in any of its types. */
#include <math.h>
#include <string.h>

#include "core/dtype.h"
#include "import/onnx_internal.h"

int onnx_value_known(const ival *v) { return v->init || v->ints || v->floats; }

int64_t onnx_value_numel(const ival *v) {
    if (v->ndim < 0) return -1;
    int64_t n = 1;
    for (int32_t d = 0; d < v->ndim; d++) {
        if (v->dims[d] < 0) return -1;
        n *= v->dims[d];
    }
    return n;
}

int onnx_same_shape(const ival *a, const ival *b) {
    if (a->ndim < 0 || a->ndim != b->ndim) return 0;
    for (int32_t d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d] || a->dims[d] == SYM_ANY) return 0;
    return 1;
}

int64_t onnx_value_int(const ival *v, int64_t i) {
    if (v->ints) return v->ints[i];
    if (v->floats) return (int64_t)v->floats[i];
    const uint8_t *p = v->init->data;
    switch (v->init->dtype) {
    case LLMRT_DTYPE_I64: { int64_t x; memcpy(&x, p + i * 8, 8); return x; }
    case LLMRT_DTYPE_I32: { int32_t x; memcpy(&x, p + i * 4, 4); return x; }
    case LLMRT_DTYPE_I16: { int16_t x; memcpy(&x, p + i * 2, 2); return x; }
    case LLMRT_DTYPE_I8: return (int8_t)p[i];
    case LLMRT_DTYPE_U8: case LLMRT_DTYPE_BOOL: return p[i];
    default: return (int64_t)onnx_value_float(v, i);
    }
}

double onnx_value_float(const ival *v, int64_t i) {
    if (v->floats) return v->floats[i];
    if (v->ints) return (double)v->ints[i];
    const uint8_t *p = v->init->data;
    switch (v->init->dtype) {
    case LLMRT_DTYPE_F32: { float x; memcpy(&x, p + i * 4, 4); return x; }
    case LLMRT_DTYPE_F64: { double x; memcpy(&x, p + i * 8, 8); return x; }
    case LLMRT_DTYPE_F16: case LLMRT_DTYPE_BF16: {
        float x;
        llmrt_convert_to_f32(&x, p + i * 2, v->init->dtype, 1);
        return x;
    }
    default: return (double)onnx_value_int(v, i);
    }
}

int onnx_scalar(const ival *v, double *out) {
    if (!onnx_value_known(v) || onnx_value_numel(v) != 1) return 0;
    *out = onnx_value_float(v, 0);
    return 1;
}
