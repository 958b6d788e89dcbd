#!/usr/bin/env python3
"""Makes the golden cases: tiny random HF checkpoints of every supported
architecture in several dtypes, and HF transformers' fp32 logits and greedy
continuations for them. Run on a machine with torch + transformers (the GPU
machine; CPU is enough):

    python3 tests/golden/make_golden.py --out tests/golden/cases

Each case is a folder with the checkpoint (config.json, model.safetensors,
generation_config.json) and golden.json:
  prompts: [{ids, logit_rows, logits (rows × vocab, fp32), greedy, margins}]
The reference model is the saved checkpoint loaded back in fp32
(from_pretrained(dtype=float32)), never .float() on a low-precision model.
Weights are drawn with a std large enough that logits are decisive.
"""
import argparse, inspect, json, os, shutil, sys

import torch
import transformers
from transformers import (AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config)

GREEDY_STEPS = 12
SHORT_LEN, LONG_LEN = 7, 300

def llama_cfg(**kw):
    base = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
                tie_word_embeddings=False)
    base.update(kw)
    return base

CASES = [
    # name, config class, config kwargs, dtype, config dialect ("v4" rewrites rope fields top-level)
    ("llama_f32", LlamaConfig, llama_cfg(), torch.float32, "v5"),
    ("llama_bf16", LlamaConfig, llama_cfg(), torch.bfloat16, "v4"),
    ("llama3_rope_f16", LlamaConfig, llama_cfg(hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
        tie_word_embeddings=True, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=64)), torch.float16, "v4"),
    ("llama_linear_rope_f32", LlamaConfig, llama_cfg(hidden_size=48, num_attention_heads=3, num_key_value_heads=3,
        intermediate_size=80, rope_scaling=dict(rope_type="linear", factor=2.0), attention_bias=True),
        torch.float32, "v5"),
    ("mistral_mqa_bf16", MistralConfig, llama_cfg(hidden_size=48, num_attention_heads=6, num_key_value_heads=1,
        intermediate_size=64, sliding_window=None, num_hidden_layers=3), torch.bfloat16, "v4"),
    ("qwen2_f32", Qwen2Config, llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False), torch.float32, "v5"),
    ("qwen2_bf16", Qwen2Config, llama_cfg(hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=48, rope_theta=1000000.0, use_sliding_window=False), torch.bfloat16, "v4"),
    ("gpt2_f32", GPT2Config, dict(vocab_size=128, n_embd=48, n_layer=2, n_head=4, n_positions=512,
        bos_token_id=1, eos_token_id=2), torch.float32, None),
    ("gpt2_f16", GPT2Config, dict(vocab_size=128, n_embd=32, n_layer=3, n_head=2, n_positions=512, n_inner=80,
        activation_function="gelu_new", bos_token_id=1, eos_token_id=2), torch.float16, None),
]

def adapt_rope_kwargs(cls, kw):
    """transformers 5 takes rope_parameters; older versions rope_theta/rope_scaling."""
    kw = dict(kw)
    if "rope_parameters" not in inspect.signature(cls.__init__).parameters or "rope_theta" not in kw:
        return kw
    rp = dict(kw.pop("rope_scaling", None) or {"rope_type": "default"})
    rp["rope_theta"] = kw.pop("rope_theta")
    kw["rope_parameters"] = rp
    return kw

# Checkpoints the committed tests have never seen (other sizes, head counts,
# dtypes, rope settings, sharded weights): `--set unseen` makes them in a
# scratch folder to try llmrt as a new user would.
UNSEEN = [
    ("u_llama_hd32_mqa_bf16", LlamaConfig, llama_cfg(hidden_size=128, num_attention_heads=4, num_key_value_heads=1,
        intermediate_size=200, num_hidden_layers=3, rope_theta=250000.0), torch.bfloat16, "v5"),
    ("u_llama_bias_f16", LlamaConfig, llama_cfg(hidden_size=96, num_attention_heads=6, num_key_value_heads=3,
        attention_bias=True, mlp_bias=True, vocab_size=300), torch.float16, "v4"),
    ("u_llama31_rope_f32", LlamaConfig, llama_cfg(hidden_size=80, num_attention_heads=5, num_key_value_heads=5,
        rope_theta=500000.0, rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
        high_freq_factor=4.0, original_max_position_embeddings=128)), torch.float32, "v5"),
    ("u_mistral_f16", MistralConfig, llama_cfg(hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
        intermediate_size=112, sliding_window=None), torch.float16, "v5"),
    ("u_qwen2_tied_f16", Qwen2Config, llama_cfg(hidden_size=96, num_attention_heads=12, num_key_value_heads=4,
        tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False, vocab_size=200), torch.float16, "v4"),
    ("u_gpt2_bf16", GPT2Config, dict(vocab_size=200, n_embd=96, n_layer=4, n_head=6, n_positions=400, n_inner=160,
        bos_token_id=1, eos_token_id=2), torch.bfloat16, None),
]

def randomize(model, gen):
    """Decisive logits: matrices with std 0.25 (≫ HF's 0.02), gains near 1, small biases."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.25)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.1)

def to_v4_dialect(path):
    """transformers 5 writes rope_parameters; rewrite as rope_theta/rope_scaling."""
    cfg = json.load(open(path))
    rp = cfg.pop("rope_parameters", None)
    if rp is not None:
        if "full_attention" in rp:
            rp = rp["full_attention"]
        cfg["rope_theta"] = rp.pop("rope_theta", 10000.0)
        if rp.get("rope_type", "default") != "default":
            cfg["rope_scaling"] = rp
    json.dump(cfg, open(path, "w"), indent=2)

@torch.no_grad()
def reference(model, ids):
    x = torch.tensor([ids])
    logits = model(x).logits[0].float()
    seq, greedy, margins = list(ids), [], []
    for _ in range(GREEDY_STEPS):
        out = model(torch.tensor([seq])).logits[0, -1].float()
        top = torch.topk(out, 2)
        greedy.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        seq.append(greedy[-1])
    return logits, greedy, margins

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", choices=["committed", "unseen"], default="committed")
    ap.add_argument("--shard", action="store_true", help="save sharded checkpoints (model.safetensors.index.json)")
    args = ap.parse_args()
    cases = CASES if args.set == "committed" else UNSEEN
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    for name, cls, kw, dtype, dialect in cases:
        d = os.path.join(args.out, name)
        shutil.rmtree(d, ignore_errors=True)
        cfg = cls(**adapt_rope_kwargs(cls, kw))
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
        randomize(model, gen)
        model = model.to(dtype)
        model.save_pretrained(d, safe_serialization=True, **({"max_shard_size": "40KB"} if args.shard else {}))
        if dialect == "v4":
            to_v4_dialect(os.path.join(d, "config.json"))
        ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        vocab = cfg.vocab_size
        # HF's own half-precision error on the same prompts: the yardstick for
        # llmrt's bf16/fp16 engines (these decisive random weights amplify
        # rounding far more than trained weights do).
        device = "cuda" if torch.cuda.is_available() else "cpu"
        half = {}
        for hdt in (torch.bfloat16, torch.float16):
            half[str(hdt).replace("torch.", "")] = AutoModelForCausalLM.from_pretrained(
                d, dtype=hdt, attn_implementation="eager").to(device).eval()
        prompts = []
        for length in (SHORT_LEN, LONG_LEN):
            ids = torch.randint(3, vocab, (length,), generator=gen).tolist()
            logits, greedy, margins = reference(ref, ids)
            hf_half = {}
            with torch.no_grad():
                for hname, hmodel in half.items():
                    hl = hmodel(torch.tensor([ids], device=device)).logits[0].float().cpu()
                    hf_half[hname] = float((hl - logits).norm() / logits.norm())
            rows = list(range(length)) if length <= 16 else sorted(set(range(0, length, 7)) | set(range(length - 8, length)))
            prompts.append(dict(ids=ids, hf_half_rel_l2=hf_half, logit_rows=rows, logits=[[round(float(v), 7) for v in logits[r]] for r in rows],
                                greedy=greedy, margins=margins))
        json.dump(dict(name=name, dtype=str(dtype).replace("torch.", ""), transformers=transformers.__version__,
                       vocab_size=vocab, prompts=prompts), open(os.path.join(d, "golden.json"), "w"))
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{name:28s} {size/1024:7.1f} KiB  greedy {prompts[0]['greedy'][:6]}...", flush=True)

if __name__ == "__main__":
    sys.exit(main())
