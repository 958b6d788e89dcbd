#!/usr/bin/env python3
"""Exports a tiny LLaMA checkpoint to ONNX with torch.onnx.export (opset 17),
once without past key/values (full recompute) and once with them, as test
data for `llmrt build --onnx`. Needs torch + transformers (the GPU machine;
CPU is enough):

    python3 tests/onnx/export_llama.py --out tests/onnx/data \
        [--model tests/golden/cases/llama_f32]

or, for the speed comparison with a native engine, a LLaMA-2-7B-shaped model
with random weights in fp16 (tensors in files beside the .onnx: over 2 GB):

    python3 tests/onnx/export_llama.py --shape llama2-7b --dtype fp16 \
        --variants past --out /tmp/llama7b_onnx

Writes into --out:
  llama_nocache.onnx   inputs input_ids, attention_mask, position_ids → logits
  llama_past.onnx      the same plus past_key_values.{i}.key/value →
                       logits, present.{i}.key/value
  config.json          the checkpoint's config (for --config)
  reference.json       torch's logits for a short prompt (prompt, logits),
                       so a test can hold both files against their source
                       (not with --shape: random weights)
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
    k_pos = torch.arange(total, device=attention_mask.device)
    q_pos = torch.arange(q_len, device=attention_mask.device) + (total - q_len)
    allowed = (k_pos[None, :] <= q_pos[:, None])[None, None, :, :] & \
        attention_mask[:, None, None, :].bool()
    zero = torch.zeros((), dtype=dtype, device=attention_mask.device)
    return torch.where(allowed, zero, torch.full((), big, dtype=dtype, device=attention_mask.device))


class Wrapper(torch.nn.Module):
    def __init__(self, model, with_past, own_mask):
        super().__init__()
        self.model, self.with_past, self.own_mask = model, with_past, own_mask
        self.layers = model.config.num_hidden_layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        mask = attention_mask
        if self.own_mask:
            mask = causal_mask_4d(attention_mask, input_ids.shape[1], self.model.dtype)
        kw = dict(input_ids=input_ids, attention_mask=mask, position_ids=position_ids)
        if self.with_past:
            kw.update(past_key_values=cache_from_flat(self.model.config, list(past)), use_cache=True)
        else:
            kw.update(use_cache=False)
        out = self.model(**kw)
        if not self.with_past:
            return out.logits
        return (out.logits, *flat_from_cache(out.past_key_values, self.layers))


SHAPES = {  # random-weight models of a known shape, for speed comparisons
    "llama2-7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                      rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
                      tie_word_embeddings=False),
}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def load_model(a):
    kw = {"attn_implementation": "eager"}
    dtype = DTYPES[a.dtype]
    if a.shape:
        from transformers import LlamaConfig
        cfg = LlamaConfig(**SHAPES[a.shape], **kw)
        torch.manual_seed(0)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        with torch.device(device):
            try:
                model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
            except TypeError:
                model = AutoModelForCausalLM.from_config(cfg, torch_dtype=dtype)
        return model.eval()
    try:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, **kw)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=dtype, **kw)
    return model.eval()


def export(model, path, with_past, own_mask, opset):
    cfg = model.config
    layers = cfg.num_hidden_layers
    kv_heads = getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    batch, seq, past_len = 1, 5, 3 if with_past else 0
    torch.manual_seed(0)
    device, dtype = model.device, model.dtype
    ids = torch.randint(3, cfg.vocab_size, (batch, seq), device=device)
    mask = torch.ones(batch, past_len + seq, dtype=torch.int64, device=device)
    pos = torch.arange(past_len, past_len + seq, device=device)[None, :].expand(batch, seq).contiguous()
    args = [ids, mask, pos]
    names = ["input_ids", "attention_mask", "position_ids"]
    outs = ["logits"]
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    if with_past:
        for i in range(layers):
            for kind in ("key", "value"):
                args.append(torch.randn(batch, kv_heads, past_len, head_dim, device=device, dtype=dtype))
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
        ids = torch.tensor([prompt], device=model.device)
        logits = model(input_ids=ids, use_cache=False).logits[0]
    return logits.float().tolist()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(here, "..", "golden", "cases", "llama_f32"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--shape", choices=sorted(SHAPES), help="random weights of this shape instead of --model")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    ap.add_argument("--variants", default="nocache,past", help="nocache, past or both (comma-separated)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    model = load_model(a)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    wanted = set(a.variants.split(","))
    for name, with_past in (("llama_nocache.onnx", False), ("llama_past.onnx", True)):
        if ("past" if with_past else "nocache") not in wanted:
            continue
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
    if a.shape:  # random weights: the config for --config, no reference logits
        model.config.save_pretrained(a.out)
        return 0
    shutil.copy(os.path.join(a.model, "config.json"), os.path.join(a.out, "config.json"))
    prompt = [1, 17, 42, 99, 5, 63, 7]
    ref = {"prompt": prompt, "logits": reference(model, prompt),
           "torch": torch.__version__, "transformers": transformers.__version__}
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(ref, f)
    try:  # optional self-check: onnxruntime against torch
        import numpy as np
        import onnxruntime as ort
        if "nocache" not in wanted:
            return 0
        s = ort.InferenceSession(os.path.join(a.out, "llama_nocache.onnx"))
        ids = np.array([prompt], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                 "position_ids": np.arange(len(prompt), dtype=np.int64)[None, :]}
        names = {i.name for i in s.get_inputs()}
        got = s.run(["logits"], {k: v for k, v in feeds.items() if k in names})[0][0]
        err = float(np.max(np.abs(got - np.array(ref["logits"]))))
        print(f"onnxruntime vs torch: max abs difference {err:.3g}")
    except ImportError:
        print("onnxruntime not installed: skipped the self-check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
