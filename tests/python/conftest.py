"""Shared fixtures: the demo engine, one LLM over it, and the llmrt program.

ctest sets PYTHONPATH (python/), LLMRT_LIBRARY (build/libllmrt.so),
LLMRT_CLI (build/llmrt) and LLMRT_CACHE_DIR (a folder under build/)."""
import json
import os
import subprocess

import pytest

import llmrt


@pytest.fixture(scope="session")
def engine_path():
    with llmrt.LLM() as llm:  # builds the demo engine into the cache on first use
        return llm.engine_path


@pytest.fixture(scope="session")
def llm(engine_path):
    with llmrt.LLM(engine_path) as model:
        yield model


@pytest.fixture(scope="session")
def cli_run(engine_path):
    cli = os.environ.get("LLMRT_CLI", "llmrt")

    def run(prompt, *args):
        out = subprocess.run([cli, "run", "--engine", engine_path, "--prompt", prompt, "--json", *args],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    return run
