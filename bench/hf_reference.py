#!/usr/bin/env python3
"""The reference side of the GPU benchmark: HF transformers (eager, bf16) on
the same shapes as llmrt's engine, random weights, in the same run.

    python3 bench/hf_reference.py bench/configs/llama2-7b.json [--json]

Reports batch-1 decode ms/token after a 128- and a 2048-token prompt (median
of the per-token times of a cached generate) and time to first token for a
128- and a 2048-token prompt (median of 5 after warm-up).
"""
import argparse, json, statistics, time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

def timed(fn, repeat=5):
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)

@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--decode-tokens", type=int, default=64)
    args = ap.parse_args()
    config = AutoConfig.from_pretrained(args.config)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="eager").eval()
    results = {}
    for prompt in (128, 2048):
        ids = torch.randint(3, config.vocab_size, (1, prompt), device="cuda")
        model(ids)  # warm-up
        results[f"ttft_ms_{prompt}"] = 1000 * timed(lambda: model(ids))
        n = args.decode_tokens
        gen = lambda: model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        gen()
        total = timed(gen, repeat=3)
        results[f"decode_ms_per_token_{prompt}"] = 1000 * (total - results[f"ttft_ms_{prompt}"] / 1000) / (n - 1)
    import transformers
    results["transformers"] = transformers.__version__
    print(json.dumps(results) if args.json else "\n".join(f"{k}: {v}" for k, v in results.items()), flush=True)

if __name__ == "__main__":
    main()
