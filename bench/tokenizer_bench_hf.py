#!/usr/bin/env python3
"""HF tokenizers' side of bench/tokenizer_bench.c: encode MB/s, one thread,
the whole text as one string and line by line (text.split('\n')), best of N.

    RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \
      python3 bench/tokenizer_bench_hf.py TOKENIZER.json TEXT_FILE [--repeat N]
"""
import argparse
import json
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import tokenizers  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer")
    ap.add_argument("text")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = args.tokenizer
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    tok = tokenizers.Tokenizer.from_file(path)
    with open(args.text, "rb") as f:
        data = f.read()
    text = data.decode("utf-8")
    lines = text.split("\n")
    best_whole = best_lines = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        n_whole = len(tok.encode(text, add_special_tokens=False).ids)
        best_whole = min(best_whole, time.perf_counter() - t)
        t = time.perf_counter()
        n_lines = 0
        for line in lines:
            n_lines += len(tok.encode(line, add_special_tokens=False).ids)
        best_lines = min(best_lines, time.perf_counter() - t)
    mb = len(data) / 1e6
    print(json.dumps({"tokenizer": args.tokenizer, "hf_tokenizers": tokenizers.__version__, "bytes": len(data),
                      "whole_mb_s": round(mb / best_whole, 3), "lines_mb_s": round(mb / best_lines, 3),
                      "tokens_whole": n_whole, "tokens_lines": n_lines}))


if __name__ == "__main__":
    main()
