#!/usr/bin/env python3
"""Writes a compressed-tensors FP8 checkpoint from a golden case, the way
llm-compressor saves one (numpy only, no torch):

  usage: make_compressed_tensors.py CASE_DIR OUT_DIR REF_DIR SCHEME

SCHEME "static"  ("…-FP8"): per-tensor weight scales, static per-tensor
                 activation scales (input_scale);
       "dynamic" ("…-FP8-dynamic"): per-channel weight scales, activations
                 per token at run time;
       "dynamic-head": as "dynamic", the LM head too (nothing ignored).
Every "*_proj.weight" matrix becomes "weight" F8_E4M3 [out, in] (OCP e4m3fn,
round to nearest even, saturating at 448) and "weight_scale" F32 ([1] or
[out, 1]); the rest (embeddings, norms, biases, lm_head, which `ignore`
names) is copied. REF_DIR gets the same model with the dequantized weights
(code x scale) as f32: the values the fp8 engine must compute with.

Scales are rounded to 10 significant bits and each row's largest weight is
given the code ±448, so that max|w| / 448 of the dequantized weights gives
back exactly the stored scale and the stored codes (what `llmrt build
--quant fp8` does per channel on REF_DIR)."""
import json
import os
import shutil
import struct
import sys

import numpy as np

E4M3_MAX = 448.0


def e4m3_values():
    """Value of every non-negative finite e4m3fn code 0x00..0x7e (increasing)."""
    codes = np.arange(0x7F)
    exp, man = codes >> 3, codes & 7
    return np.where(exp == 0, man / 8.0 * 2.0**-6, (1 + man / 8.0) * 2.0 ** (exp - 7))


VALUES = e4m3_values()


def e4m3_encode(x):
    """Codes (uint8) of float array x: nearest value, ties to the even code, saturated."""
    a = np.minimum(np.abs(x.astype(np.float64)), E4M3_MAX)
    hi = np.clip(np.searchsorted(VALUES, a), 1, len(VALUES) - 1)
    lo = hi - 1
    d_lo, d_hi = a - VALUES[lo], VALUES[hi] - a
    code = np.where(d_lo < d_hi, lo, np.where(d_hi < d_lo, hi, np.where(lo % 2 == 0, lo, hi)))
    code = np.where(a >= VALUES[-1], len(VALUES) - 1, code)
    return (code | np.where(np.signbit(x), 0x80, 0)).astype(np.uint8)


def e4m3_decode(codes):
    mag = VALUES[(codes & 0x7F).astype(np.int64)]
    return np.where(codes & 0x80, -mag, mag)


def round_scale(s):
    """s rounded to 10 significant bits (float32 exact, and 448·s too)."""
    m, e = np.frexp(np.float64(s))
    return np.float32(np.ldexp(np.round(m * 1024.0), e - 10))


def read_safetensors_tagged(path):
    """name -> (dtype tag, numpy array); F8_E4M3 as its uint8 codes."""
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + n])
    kinds = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "F8_E4M3": np.uint8}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        data = np.frombuffer(blob[8 + n + a : 8 + n + b], dtype=kinds[info["dtype"]])
        out[name] = (info["dtype"], data.reshape(info["shape"]))
    return out


def read_safetensors(path):
    return {name: t for name, (_, t) in read_safetensors_tagged(path).items()}


def write_safetensors(path, tensors):
    """tensors: name -> (dtype tag, numpy array)."""
    header, offset, chunks = {}, 0, []
    for name in sorted(tensors):
        tag, arr = tensors[name]
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": tag, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        chunks.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def quantize(w, per_channel):
    """(codes [N, K] uint8, scales f32 [N] or [1]) of float matrix w."""
    w = w.astype(np.float32)
    rows = w if per_channel else w.reshape(1, -1)
    scales = np.array([round_scale(max(np.abs(r).max(), 1e-8) / E4M3_MAX) for r in rows], dtype=np.float32)
    codes = np.empty(rows.shape, dtype=np.uint8)
    for i, r in enumerate(rows):
        codes[i] = e4m3_encode(r / scales[i])
        top = np.abs(r).argmax()  # the row's largest weight takes the largest code
        codes[i, top] = 0x7E | (0x80 if r[top] < 0 else 0)
    return codes.reshape(w.shape), scales


def scheme(static):
    args = lambda strategy, dynamic: {"num_bits": 8, "type": "float", "symmetric": True, "strategy": strategy,
                                      "dynamic": dynamic, "group_size": None, "block_structure": None,
                                      "actorder": None, "observer": None if dynamic else "minmax",
                                      "observer_kwargs": {}}
    return {"targets": ["Linear"],
            "weights": args("tensor" if static else "channel", False),
            "input_activations": args("tensor", False) if static else args("token", True),
            "output_activations": None, "format": "float-quantized"}


def main():
    case_dir, out_dir, ref_dir, which = sys.argv[1:5]
    static, with_head = which == "static", which == "dynamic-head"
    tensors = read_safetensors(os.path.join(case_dir, "model.safetensors"))
    out, ref = {}, {}
    for name, t in tensors.items():
        tag = "F32" if t.dtype == np.float32 else "F16" if t.dtype == np.float16 else None
        if not ((name.endswith("_proj.weight") or (with_head and name == "lm_head.weight")) and t.ndim == 2):
            out[name] = ref[name] = (tag, t)
            continue
        codes, scales = quantize(t, per_channel=not static)
        deq = (e4m3_decode(codes) * np.repeat(scales, t.size // scales.size).reshape(t.shape).astype(np.float64))
        ref[name] = ("F32", deq.astype(np.float32))
        stem = name[: -len(".weight")]
        out[name] = ("F8_E4M3", codes)
        out[stem + ".weight_scale"] = ("F32", scales.reshape(-1, 1) if not static else scales.reshape(1))
        if static:  # a fixed activation range: |x| up to 64 without saturating
            out[stem + ".input_scale"] = ("F32", np.array([64.0 / E4M3_MAX], dtype=np.float32))
    config = json.load(open(os.path.join(case_dir, "config.json")))
    for d in (out_dir, ref_dir):
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(case_dir, "generation_config.json"), d)
    json.dump(config, open(os.path.join(ref_dir, "config.json"), "w"), indent=2)
    config["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "float-quantized", "quantization_status": "compressed",
        "config_groups": {"group_0": scheme(static)}, "ignore": [] if with_head else ["lm_head"], "kv_cache_scheme": None,
        "global_compression_ratio": None, "sparsity_config": {},
    }
    json.dump(config, open(os.path.join(out_dir, "config.json"), "w"), indent=2)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), out)
    write_safetensors(os.path.join(ref_dir, "model.safetensors"), ref)


if __name__ == "__main__":
    main()
