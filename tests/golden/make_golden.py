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
import argparse, inspect, json, os, shutil, sys, traceback

import torch
import transformers
from transformers import (AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config)

def cfg_class(name):
    """A config class by name, or None where this transformers lacks it."""
    return getattr(transformers, name, None)

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
    if "rope_local_base_freq" in kw:  # Gemma 3: one rope per layer type
        kw["rope_parameters"] = {
            "full_attention": {"rope_type": "default", "rope_theta": kw.pop("rope_theta")},
            "sliding_attention": {"rope_type": "default", "rope_theta": kw.pop("rope_local_base_freq")}}
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


# The families beyond LLaMA and GPT-2 (`--set families`): one tiny checkpoint
# per architecture and per feature that changes the network (parallel
# residual, multi-query, ALiBi, sliding windows, soft-capping, experts).
# A family's cases move to the committed set once llmrt runs it.
FAMILIES = [
    ("gptj_f32", "GPTJConfig", dict(vocab_size=128, n_positions=1024, n_embd=64, n_layer=2, n_head=4, rotary_dim=8,
        activation_function="gelu_new", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2), torch.float32, None),
    ("neox_parallel_f32", "GPTNeoXConfig", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, rotary_pct=0.25, partial_rotary_factor=0.25,
        use_parallel_residual=True, max_position_embeddings=1024, hidden_act="gelu", tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2), torch.float32, None),
    ("neox_serial_f16", "GPTNeoXConfig", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=96, rotary_pct=0.5, partial_rotary_factor=0.5,
        use_parallel_residual=False, max_position_embeddings=1024, hidden_act="gelu", tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2), torch.float16, None),
    ("bigcode_mqa_f32", "GPTBigCodeConfig", dict(vocab_size=128, n_positions=512, n_embd=64, n_layer=2, n_head=4,
        multi_query=True, activation_function="gelu_pytorch_tanh", bos_token_id=1, eos_token_id=2),
        torch.float32, None),
    ("mpt_alibi_f32", "MptConfig", dict(vocab_size=128, d_model=64, n_heads=4, n_layers=2, expansion_ratio=2,
        max_seq_len=512, no_bias=True, attn_config=dict(alibi=True, alibi_bias_max=8), bos_token_id=1,
        eos_token_id=2), torch.float32, None),
    ("falcon_gqa_f32", "FalconConfig", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_kv_heads=2, new_decoder_architecture=True, parallel_attn=True, bias=False,
        alibi=False, max_position_embeddings=1024, rope_theta=10000.0, bos_token_id=1, eos_token_id=2),
        torch.float32, None),
    ("falcon_mqa_bf16", "FalconConfig", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, multi_query=True, new_decoder_architecture=False, parallel_attn=True, bias=False,
        alibi=False, max_position_embeddings=1024, rope_theta=10000.0, bos_token_id=1, eos_token_id=2),
        torch.bfloat16, None),
    ("opt_f32", "OPTConfig", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, ffn_dim=128,
        num_attention_heads=4, max_position_embeddings=512, word_embed_proj_dim=64, do_layer_norm_before=True,
        activation_function="relu", bos_token_id=1, eos_token_id=2, pad_token_id=0), torch.float32, None),
    ("opt_proj_postnorm_f32", "OPTConfig", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, ffn_dim=128,
        num_attention_heads=4, max_position_embeddings=512, word_embed_proj_dim=32, do_layer_norm_before=False,
        activation_function="relu", bos_token_id=1, eos_token_id=2, pad_token_id=0), torch.float32, None),
    ("bloom_f32", "BloomConfig", dict(vocab_size=128, hidden_size=48, n_layer=2, n_head=6, bos_token_id=1,
        eos_token_id=2), torch.float32, None),
    ("glm_f32", "GlmConfig", dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, partial_rotary_factor=0.5, attention_bias=True,
        max_position_embeddings=1024, rope_theta=10000.0, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
        pad_token_id=0, tie_word_embeddings=False), torch.float32, "v5"),
    ("qwen3_f32", "Qwen3Config", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        head_dim=32, rope_theta=1000000.0, use_sliding_window=False, tie_word_embeddings=True), torch.float32, "v5"),
    ("qwen3_bf16", "Qwen3Config", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, rope_theta=1000000.0, use_sliding_window=False), torch.bfloat16, "v4"),
    ("gemma_f32", "GemmaConfig", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=1,
        head_dim=32, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True), torch.float32, "v5"),
    ("gemma2_f32", "Gemma2Config", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, num_hidden_layers=4, query_pre_attn_scalar=16, sliding_window=16,
        attn_logit_softcapping=10.0, final_logit_softcapping=15.0, hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True), torch.float32, "v5"),
    ("gemma2_bf16", "Gemma2Config", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, num_hidden_layers=4, query_pre_attn_scalar=16, sliding_window=16,
        attn_logit_softcapping=10.0, final_logit_softcapping=15.0, hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True), torch.bfloat16, "v4"),
    ("gemma3_f32", "Gemma3TextConfig", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, num_hidden_layers=3, query_pre_attn_scalar=16, sliding_window=16,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"], sliding_window_pattern=3,
        rope_theta=1000000.0, rope_local_base_freq=10000.0, hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True), torch.float32, None),
    ("phi3_longrope_f32", "Phi3Config", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
        pad_token_id=0,
        max_position_embeddings=1024, original_max_position_embeddings=64,
        rope_scaling=dict(rope_type="longrope", type="longrope",
            short_factor=[1.0 + 0.05 * i for i in range(8)], long_factor=[1.0 + 0.6 * i for i in range(8)],
            original_max_position_embeddings=64)), torch.float32, "v4"),
    ("phi3_f32", "Phi3Config", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        pad_token_id=0),
        torch.float32, "v5"),
    ("mixtral_f32", "MixtralConfig", llama_cfg(hidden_size=64, intermediate_size=48, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, sliding_window=None), torch.float32, "v5"),
    ("mixtral_bf16", "MixtralConfig", llama_cfg(hidden_size=64, intermediate_size=48, num_attention_heads=4,
        num_key_value_heads=1, num_local_experts=8, num_experts_per_tok=2, sliding_window=None), torch.bfloat16,
        "v4"),
    ("mistral_window_f32", "MistralConfig", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        sliding_window=16), torch.float32, "v5"),
    ("mistral_window_bf16", "MistralConfig", llama_cfg(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
        sliding_window=40), torch.bfloat16, "v4"),
]

# Encoders (`--set families`, "bert" in the name): last hidden states (and a
# classifier's logits) for prompts with token types.
ENCODERS = [
    ("bert_f32", "BertConfig", "BertModel", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, max_position_embeddings=512, type_vocab_size=2),
        torch.float32),
    ("bert_cls_f32", "BertConfig", "BertForSequenceClassification", dict(vocab_size=128, hidden_size=48,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, max_position_embeddings=512,
        type_vocab_size=2, num_labels=3), torch.float32),
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

def make_causal(out, name, cls, kw, dtype, dialect, gen):
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    cfg = cls(**adapt_rope_kwargs(cls, kw))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    randomize(model, gen)
    model = model.to(dtype)
    model.save_pretrained(d, safe_serialization=True, **({"max_shard_size": "40KB"} if SHARD else {}))
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
        prompts.append(dict(ids=ids, hf_half_rel_l2=hf_half, logit_rows=rows,
                            logits=[[round(float(v), 7) for v in logits[r]] for r in rows],
                            greedy=greedy, margins=margins))
    json.dump(dict(name=name, dtype=str(dtype).replace("torch.", ""), transformers=transformers.__version__,
                   vocab_size=vocab, prompts=prompts), open(os.path.join(d, "golden.json"), "w"))
    return d, prompts[0]["greedy"][:6]

@torch.no_grad()
def make_encoder(out, name, cls, model_cls, kw, dtype, gen):
    """Encoders: the last hidden state of every row (and the classifier's
    logits where the model has a head) for prompts with token types."""
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    cfg = cls(**kw)
    torch.manual_seed(0)
    mcls = getattr(transformers, model_cls)
    model = mcls._from_config(cfg, attn_implementation="eager")
    randomize(model, gen)
    model.to(dtype).save_pretrained(d, safe_serialization=True)
    ref = mcls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    # HF's own half-precision error on the last hidden state: the yardstick
    # for llmrt's bf16/fp16 encoder engines, as for the decoders
    device = "cuda" if torch.cuda.is_available() else "cpu"
    half = {str(hdt).replace("torch.", ""): mcls.from_pretrained(d, dtype=hdt, attn_implementation="eager")
            .to(device).eval() for hdt in (torch.bfloat16, torch.float16)}
    prompts = []
    for length in (SHORT_LEN, LONG_LEN):
        ids = torch.randint(3, cfg.vocab_size, (length,), generator=gen).tolist()
        types = [0] * (length // 2) + [1] * (length - length // 2)
        o = ref(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types]), output_hidden_states=True)
        hidden = o.hidden_states[-1][0] if hasattr(o, "hidden_states") and o.hidden_states else o.last_hidden_state[0]
        hf_half = {}
        for hname, hmodel in half.items():
            ho = hmodel(input_ids=torch.tensor([ids], device=device), token_type_ids=torch.tensor([types], device=device),
                        output_hidden_states=True)
            hh = ho.hidden_states[-1][0].float().cpu()
            hf_half[hname] = float((hh - hidden).norm() / hidden.norm())
        entry = dict(ids=ids, token_type_ids=types, hf_half_rel_l2=hf_half,
                     hidden=[[round(float(v), 7) for v in r] for r in hidden])
        if hasattr(o, "logits"):
            entry["logits"] = [round(float(v), 7) for v in o.logits[0]]
        if getattr(o, "pooler_output", None) is not None:
            entry["pooled"] = [round(float(v), 7) for v in o.pooler_output[0]]
        prompts.append(entry)
    json.dump(dict(name=name, kind="encoder", dtype=str(dtype).replace("torch.", ""),
                   transformers=transformers.__version__, prompts=prompts), open(os.path.join(d, "golden.json"), "w"))
    return d, None

SHARD = False

def main():
    global SHARD
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", choices=["committed", "unseen", "families"], default="committed")
    ap.add_argument("--only", default="", help="comma-separated case names (default: all of the set)")
    ap.add_argument("--shard", action="store_true", help="save sharded checkpoints (model.safetensors.index.json)")
    args = ap.parse_args()
    SHARD = args.shard
    cases = {"committed": CASES, "unseen": UNSEEN, "families": FAMILIES}[args.set]
    encoders = ENCODERS if args.set == "families" else []
    only = set(filter(None, args.only.split(",")))
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    failed = 0
    for case in cases + encoders:
        name = case[0]
        if only and name not in only:
            continue
        try:
            # encoder entries have five fields too: tell them apart by list
            if case not in encoders:
                name, cls, kw, dtype, dialect = case
                cls = cfg_class(cls) if isinstance(cls, str) else cls
                if cls is None:
                    raise RuntimeError(f"transformers {transformers.__version__} has no {case[1]}")
                d, greedy = make_causal(args.out, name, cls, kw, dtype, dialect, gen)
            else:
                name, cls, model_cls, kw, dtype = case
                d, greedy = make_encoder(args.out, name, cfg_class(cls), model_cls, kw, dtype, gen)
        except Exception as e:  # one family's failure must not lose the others
            failed += 1
            print(f"{name:28s} FAILED: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            continue
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"{name:28s} {size/1024:7.1f} KiB  greedy {greedy}", flush=True)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
