"""Generates from the embedded demo model (or an engine given as argv[1])."""
import sys

from llmrt import LLM, SamplingParams

with LLM(sys.argv[1] if len(sys.argv) > 1 else None) as llm:
    prompts = ["Once upon a time", "And it came to pass"]
    for out in llm.generate(prompts, SamplingParams(max_tokens=16)):
        print(f"{out.prompt!r} -> {out.text!r} ({out.finish_reason})")
    for piece in llm.generate_stream("In the beginning", SamplingParams(max_tokens=16)):
        print(piece, end="", flush=True)
    print()
