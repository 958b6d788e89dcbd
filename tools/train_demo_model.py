#!/usr/bin/env python3
"""Trains llmrt's embedded demo model: a small LLaMA-architecture model on
the King James Bible (public domain; Debian's bible-kjv package prints it with
`bible -f "Gen1:1-Rev22:21"`), with its own byte-level BPE tokenizer.

    python3 tools/train_demo_model.py --text kjv.txt --out models/demo [--minutes 4]

Writes config.json, model.safetensors (bf16), tokenizer.json,
tokenizer_config.json, generation_config.json, validation.txt (the held-out
last 5% of verses) and training.json (loss curve, validation perplexity).
Validation perplexity is measured on the saved checkpoint loaded back in
fp32, over non-overlapping windows of EVAL_WINDOW tokens of validation.txt
encoded without special tokens; `llmrt perplexity` computes the same.
"""
import argparse, json, math, os, re, time

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB = 4096
SEQ = 256
EVAL_WINDOW = 256
EOS = "<|endoftext|>"

def load_verses(path):
    verses = []
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^\S+\d+:\d+ (.*)$", line.rstrip("\n"))
        if m and m.group(1).strip():
            verses.append(m.group(1).strip())
    return verses

def train_tokenizer(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text], trainer=trainer)
    return tok

@torch.no_grad()
def perplexity(model, ids, device):
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, EVAL_WINDOW):
        window = ids[start:start + EVAL_WINDOW]
        if len(window) < 2:
            break
        x = torch.tensor([window], device=device)
        logits = model(x).logits.float()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:], reduction="sum")
        total += float(loss)
        count += len(window) - 1
    return math.exp(total / count), count

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=4.0)
    args = ap.parse_args()
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    verses = load_verses(args.text)
    split = int(len(verses) * 0.95)
    train_text = "\n".join(verses[:split]) + "\n"
    val_text = "\n".join(verses[split:]) + "\n"
    os.makedirs(args.out, exist_ok=True)
    tok = train_tokenizer(train_text)
    eos_id = tok.token_to_id(EOS)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    json.dump({"bos_token": EOS, "eos_token": EOS, "model_max_length": 1024, "tokenizer_class": "PreTrainedTokenizerFast"},
              open(os.path.join(args.out, "tokenizer_config.json"), "w"), indent=2)
    open(os.path.join(args.out, "validation.txt"), "w", encoding="utf-8").write(val_text)
    train_ids = torch.tensor(tok.encode(train_text).ids, dtype=torch.long)
    val_ids = tok.encode(val_text).ids
    print(f"tokens: train {len(train_ids)}, validation {len(val_ids)}", flush=True)

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=704, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024,
                         rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=eos_id, eos_token_id=eos_id)
    model = LlamaForCausalLM(config).to(device)
    params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {params/1e6:.2f} M", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1)
    batch, budget = 64, args.minutes * 60
    start, step, history = time.time(), 0, []
    est_steps = 2500
    # Early stopping on held-out loss: the KJV is ~1M tokens, so a 7M-parameter
    # model memorises it within a few thousand steps; keep the best state.
    probe = val_ids[:EVAL_WINDOW * 24]
    best_ppl, best_state, stale = float("inf"), None, 0
    while time.time() - start < budget and stale < 6:
        lr = 2e-3 * min(1.0, (step + 1) / 200) * max(0.05, 0.5 * (1 + math.cos(math.pi * min(1.0, step / est_steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train_ids) - SEQ - 1, (batch,))
        x = torch.stack([train_ids[s:s + SEQ] for s in starts]).to(device)
        y = torch.stack([train_ids[s + 1:s + SEQ + 1] for s in starts]).to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, VOCAB), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 and step > 0:
            model.eval()
            val_ppl, _ = perplexity(model, probe, device)
            model.train()
            history.append({"step": step, "loss": round(float(loss), 4), "val_ppl": round(val_ppl, 3),
                            "seconds": round(time.time() - start, 1)})
            print(history[-1], flush=True)
            if val_ppl < best_ppl:
                best_ppl, stale = val_ppl, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
        step += 1
    if best_state is not None:
        model.load_state_dict(best_state)
    model = model.to(torch.bfloat16)
    model.generation_config.eos_token_id = eos_id
    model.generation_config.bos_token_id = eos_id
    model.save_pretrained(args.out, safe_serialization=True)
    ref = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.float32).to(device).eval()
    ppl, count = perplexity(ref, val_ids, device)
    prompt = tok.encode("And God said").ids
    out = ref.generate(torch.tensor([prompt], device=device), max_new_tokens=40, do_sample=False)
    sample = tok.decode(out[0].tolist())
    print(f"steps {step}, validation perplexity {ppl:.3f} over {count} tokens\nsample: {sample}", flush=True)
    json.dump({"steps": step, "parameters": params, "train_tokens": len(train_ids), "validation_tokens": len(val_ids),
               "eval_window": EVAL_WINDOW, "validation_perplexity_fp32": ppl, "history": history,
               "greedy_sample": sample}, open(os.path.join(args.out, "training.json"), "w"), indent=2)

if __name__ == "__main__":
    main()
