#!/usr/bin/env python3
"""Builds GPT-2's tokenizer.json (as HF ships it for "gpt2") from the original
OpenAI files encoder.json + vocab.bpe. Standard library only.

Usage: make-gpt2-tokenizer.py encoder.json vocab.bpe OUT_DIR
Writes OUT_DIR/tokenizer.json and OUT_DIR/tokenizer_config.json."""
import json
import os
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    encoder_path, bpe_path, out_dir = sys.argv[1:]
    with open(encoder_path, encoding="utf-8") as f:
        vocab = json.load(f)
    with open(bpe_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    # The first line is "#version: 0.2"; the rest are "a b" merges in rank order.
    merges = [line for line in lines[1:] if line.strip()]
    eot = "<|endoftext|>"
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": vocab[eot], "content": eot, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
    }
    config = {"add_prefix_space": False, "bos_token": eot, "eos_token": eot, "unk_token": eot,
              "model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer"}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)


if __name__ == "__main__":
    main()
