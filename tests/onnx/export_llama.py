#!/usr/bin/env python3
"""Exports a tiny LLaMA checkpoint to ONNX with torch.onnx.export (opset 17),
once without past key/values (full recompute) and once with them, as test
data for `llmrt build --onnx`. Needs torch + transformers (the GPU machine;
CPU is enough):

    python3 tests/onnx/export_llama.py --out tests/onnx/data \
        [--model tests/golden/cases/llama_f32]

Writes into --out:
  llama_nocache.onnx   inputs input_ids, attention_mask, position_ids → logits
  llama_past.onnx      the same plus past_key_values.{i}.key/value →
                       logits, present.{i}.key/value
  config.json          the checkpoint's config (for --config)
  reference.json       torch's fp32 logits for a short prompt through both,
                       so a test can check the files against their source
The attention is exported in transformers' eager form (QKᵀ, scale, causal
mask added, softmax, ·V), the form `torch.onnx.export` writes for any model
whose attention is plain PyTorch. The causal mask is the model's own; if this
transformers version cannot trace it, the script builds the 4-D additive mask
in the wrapper and says so.
"""
import argparse, inspect, json, os, shutil, sys

import torch
import transformers
from transformers import AutoModelForCausalLM

try:
    from transformers import DynamicCache
except ImportError:  # very old transformers
    DynamicCache = None


def cache_from_flat(config, flat):
    if DynamicCache is None:
        return tuple((flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2))
    try:
        cache = DynamicCache(config=config)
    except TypeError:
        cache = DynamicCache()
    for i in range(len(flat) // 2):
        cache.update(flat[2 * i], flat[2 * i + 1], i)
    return cache


def flat_from_cache(cache, layers):
    out = []
    for i in range(layers):
        if hasattr(cache, "layers"):          # transformers 5
            out += [cache.layers[i].keys, cache.layers[i].values]
        elif hasattr(cache, "key_cache"):     # transformers 4.3x-4.5x
            out += [cache.key_cache[i], cache.value_cache[i]]
        else:                                 # legacy tuples
            out += [cache[i][0], cache[i][1]]
    return out


def causal_mask_4d(attention_mask, q_len, dtype):
    """[B, 1, S, P+S] additive mask: 0 where a query may attend, the dtype's
    minimum elsewhere (future positions and padding). Built from positions
    (Range, comparison, Where) so the traced graph keeps P and S dynamic."""
    total = attention_mask.shape[1]
    big = torch.finfo(dtype).min
    k_pos = torch.arange(total)
    q_pos = torch.arange(q_len) + (total - q_len)
    allowed = (k_pos[None, :] <= q_pos[:, None])[None, None, :, :] & \
        attention_mask[:, None, None, :].bool()
    zero = torch.zeros((), dtype=dtype)
    return torch.where(allowed, zero, torch.full((), big, dtype=dtype))


class Wrapper(torch.nn.Module):
    def __init__(self, model, with_past, own_mask):
        super().__init__()
        self.model, self.with_past, self.own_mask = model, with_past, own_mask
        self.layers = model.config.num_hidden_layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        mask = attention_mask
        if self.own_mask:
            mask = causal_mask_4d(attention_mask, input_ids.shape[1], torch.float32)
        kw = dict(input_ids=input_ids, attention_mask=mask, position_ids=position_ids)
        if self.with_past:
            kw.update(past_key_values=cache_from_flat(self.model.config, list(past)), use_cache=True)
        else:
            kw.update(use_cache=False)
        out = self.model(**kw)
        if not self.with_past:
            return out.logits
        return (out.logits, *flat_from_cache(out.past_key_values, self.layers))


def export(model, path, with_past, own_mask, opset):
    cfg = model.config
    layers = cfg.num_hidden_layers
    kv_heads = getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    batch, seq, past_len = 1, 5, 3 if with_past else 0
    torch.manual_seed(0)
    ids = torch.randint(3, cfg.vocab_size, (batch, seq))
    mask = torch.ones(batch, past_len + seq, dtype=torch.int64)
    pos = torch.arange(past_len, past_len + seq)[None, :].expand(batch, seq).contiguous()
    args = [ids, mask, pos]
    names = ["input_ids", "attention_mask", "position_ids"]
    outs = ["logits"]
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    if with_past:
        for i in range(layers):
            for kind in ("key", "value"):
                args.append(torch.randn(batch, kv_heads, past_len, head_dim))
                n = f"past_key_values.{i}.{kind}"
                names.append(n)
                axes[n] = {0: "batch", 2: "past"}
                o = f"present.{i}.{kind}"
                outs.append(o)
                axes[o] = {0: "batch", 2: "total"}
    wrapper = Wrapper(model, with_past, own_mask).eval()
    kw = dict(input_names=names, output_names=outs, dynamic_axes=axes, opset_version=opset,
              do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False  # the TorchScript exporter: the graphs models arrive as
    with torch.no_grad():
        torch.onnx.export(wrapper, tuple(args), path, **kw)


def reference(model, prompt):
    with torch.no_grad():
        ids = torch.tensor([prompt])
        logits = model(input_ids=ids, use_cache=False).logits[0]
    return logits.tolist()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(here, "..", "golden", "cases", "llama_f32"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    kw = {"attn_implementation": "eager"}
    try:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, **kw)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, **kw)
    model.eval()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for name, with_past in (("llama_nocache.onnx", False), ("llama_past.onnx", True)):
        path = os.path.join(a.out, name)
        try:
            export(model, path, with_past, own_mask=False, opset=a.opset)
            how = "the model's own causal mask"
        except Exception as e:  # noqa: BLE001 - report and take the other mask
            print(f"{name}: transformers' mask did not trace ({type(e).__name__}: {e}); "
                  "building the 4-D mask in the wrapper")
            export(model, path, with_past, own_mask=True, opset=a.opset)
            how = "a 4-D additive mask built in the wrapper"
        print(f"wrote {path} ({os.path.getsize(path)} bytes, {how})")
    shutil.copy(os.path.join(a.model, "config.json"), os.path.join(a.out, "config.json"))
    prompt = [1, 17, 42, 99, 5, 63, 7]
    ref = {"prompt": prompt, "logits": reference(model, prompt),
           "torch": torch.__version__, "transformers": transformers.__version__}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(ref, f)
    try:  # optional self-check: onnxruntime against torch
        import numpy as np
        import onnxruntime as ort
        s = ort.InferenceSession(os.path.join(a.out, "llama_nocache.onnx"))
        ids = np.array([prompt], dtype=np.int64)
        got = s.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                 "position_ids": np.arange(len(prompt))[None, :]})[0][0]
        err = float(np.max(np.abs(got - np.array(ref["logits"]))))
        print(f"onnxruntime vs torch: max abs difference {err:.3g}")
    except ImportError:
        print("onnxruntime not installed: skipped the self-check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
