"""Throughput of llm.generate on synthetic requests, as `llmrt bench` measures
it: random prompts of --input-len ids, exactly --output-len tokens each (EOS
ignored), a warm-up batch first. Prints output tokens per second.

    python3 python/examples/bench.py [ENGINE] --input-len 128 --output-len 128 --requests 64
"""
import argparse
import json
import random
import time

from llmrt import LLM, SamplingParams

ap = argparse.ArgumentParser()
ap.add_argument("engine", nargs="?")
ap.add_argument("--input-len", type=int, default=128)
ap.add_argument("--output-len", type=int, default=128)
ap.add_argument("--requests", type=int, default=64)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()

rng = random.Random(args.seed)
with LLM(args.engine) as llm:
    vocab = llm.tokenizer.vocab_size

    def prompts():  # fresh ids each batch, so the prefix cache shares nothing
        return [{"prompt_token_ids": [rng.randrange(vocab) for _ in range(args.input_len)]}
                for _ in range(args.requests)]

    params = SamplingParams(max_tokens=args.output_len, ignore_eos=True)
    llm.generate(prompts(), params)  # warm-up
    batch = prompts()
    start = time.perf_counter()
    outs = llm.generate(batch, params)
    secs = time.perf_counter() - start
    tokens = sum(len(o.token_ids) for o in outs)
    print(json.dumps({"requests": len(outs), "seconds": secs, "output_tokens": tokens,
                      "output_tokens_per_s": tokens / secs}))
