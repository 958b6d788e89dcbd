"""Errors, lifetime and building through the Python API."""
import ctypes
import gc
import json
import os
import shutil
import subprocess
import weakref

import pytest

import llmrt
from llmrt import LLM, SamplingParams

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("field,value", [("temperature", -1.0), ("top_p", 0.0), ("top_p", 1.5), ("max_tokens", -2),
                                          ("n", 0), ("logprobs", 21), ("seed", -1), ("presence_penalty", 3.0),
                                          ("repetition_penalty", 0.0), ("stop", [""]), ("top_k", -5)])
def test_bad_sampling_params(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**{field: value})


def test_bad_arguments(llm, engine_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="neither an engine file"):
        LLM(str(tmp_path / "missing"))
    with pytest.raises(TypeError, match="unknown option"):
        LLM(engine_path, max_tokenz=3)
    with pytest.raises(ValueError, match="backend"):
        LLM(engine_path, backend="tpu")
    with pytest.raises(ValueError, match="dtype"):
        LLM(engine_path, dtype="f16")
    with pytest.raises(TypeError, match="prompt"):
        llm.generate([123])
    with pytest.raises(ValueError, match="2 sampling_params for 1 prompts"):
        llm.generate(["a"], [SamplingParams(), SamplingParams()])
    with pytest.raises(ValueError, match="at least one token"):
        llm.generate({"prompt_token_ids": []})


def test_library_errors_carry_its_message(llm, engine_path, tmp_path):
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"not an engine at all" * 10)
    with pytest.raises(llmrt.LLMRTError) as e:
        LLM(str(bad))
    assert str(bad) in str(e.value) and e.value.status != 0 and e.value.status_name
    # A request beyond the engine's context: the library's message names it.
    too_long = {"prompt_token_ids": [5] * 100000}
    with pytest.raises(llmrt.InvalidArgumentError) as e:
        llm.generate(too_long)
    assert "submit:" in str(e.value) and len(str(e.value)) > len("submit: ")
    with pytest.raises(llmrt.InvalidArgumentError, match="vocab|token"):
        llm.generate({"prompt_token_ids": [10 ** 9]})
    # The LLM still works after refusals.
    assert llm.generate("Hello", SamplingParams(max_tokens=3))[0].token_ids
    # The demo model has no chat template: a clear error, not a crash.
    with pytest.raises(llmrt.NotFoundError, match="chat template"):
        llm.chat([{"role": "user", "content": "hi"}])


def test_closed_llm_raises(engine_path):
    llm = LLM(engine_path, kv_cache_bytes=4 << 20)
    tok = llm.tokenizer
    llm.close()
    llm.close()  # idempotent
    assert llm.closed
    with pytest.raises(ValueError, match="closed"):
        llm.generate("Hello")
    with pytest.raises(ValueError, match="closed"):
        tok.encode("Hello")


def test_garbage_collector_frees(engine_path):
    llm = LLM(engine_path, kv_cache_bytes=4 << 20)
    finalizer = llm._finalizer
    ref = weakref.ref(llm)
    del llm
    gc.collect()
    assert ref() is None and not finalizer.alive


def _rss_kib():
    gc.collect()
    _malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _libc_malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return lambda pad: 0


_malloc_trim = _libc_malloc_trim()


def test_thousand_create_close_cycles_leak_nothing(engine_path):
    """RSS is a noisy measure of leaks: glibc keeps freed memory mapped (its
    trim threshold rises to twice the largest block freed, here the 4 MiB KV
    cache) and whether a heap top can be returned depends on where the
    mappings landed, so one process plateaus a few MiB above another (one
    run in three grew ~10 MiB in a step and then stayed flat). So free
    memory is handed back (malloc_trim) before each reading, RSS is read
    after each of ten blocks of cycles, and the check is on the lowest of
    the last three readings: retention steps and one-off spikes do not make
    all three high, while a leak raises every later reading in proportion
    to the cycles run. The bound, 2 KiB a cycle, is far below what a leaked
    runtime, KV cache, engine mapping or tokenizer would add."""
    def cycle():
        with LLM(engine_path, kv_cache_bytes=4 << 20, verify_checksum=0) as model:
            model.tokenizer.encode("hello")

    for _ in range(100):  # warm up allocator pools and caches
        cycle()
    before = _rss_kib()
    readings = []
    for _ in range(10):
        for _ in range(100):
            cycle()
        readings.append(_rss_kib() - before)
    grown = min(readings[-3:])
    assert grown < 2 * 1024, f"RSS grew by {grown} KiB over 1000 cycles (after each 100: {readings})"


def test_builds_a_checkpoint_into_the_cache(engine_path):
    params = SamplingParams(max_tokens=12)
    with LLM(os.path.join(REPO, "models", "demo"), backend="cpu", max_seq_len=256, kv_cache_bytes=8 << 20) as built:
        assert built.engine_path.endswith(".engine") and os.path.isfile(built.engine_path)
        got = built.generate("Once upon a time", params)[0]
        path = built.engine_path
    with LLM(os.path.join(REPO, "models", "demo"), backend="cpu", max_seq_len=256, kv_cache_bytes=8 << 20) as again:
        assert again.engine_path == path  # built once
    with LLM(engine_path) as demo:
        assert demo.generate("Once upon a time", params)[0].token_ids == got.token_ids


def test_backend_at_load(llm, tmp_path):
    """An engine built for CUDA runs on the CPU with backend="cpu": the CPU build's tokens."""
    cuda_engine = str(tmp_path / "demo-cuda.engine")
    subprocess.run([os.environ.get("LLMRT_CLI", "llmrt"), "build", "--model", os.path.join(REPO, "models", "demo"),
                    "--backend", "cuda", "--max-seq-len", "256", "--output", cuda_engine, "--quiet"], check=True)
    params = SamplingParams(max_tokens=8)
    with LLM(cuda_engine, backend="cpu", kv_cache_bytes=8 << 20) as other:
        assert other.backend == "cpu"
        assert other.generate("In the beginning", params)[0].token_ids == \
            llm.generate("In the beginning", params)[0].token_ids
    assert llm.backend == "cpu"


def test_cpu_precision(llm):
    """cpu_precision="fp32" keeps the demo model's (bf16) activations in
    fp32; a bad value is a ValueError naming the option."""
    params = SamplingParams(max_tokens=8)
    with LLM(llm.engine_path, cpu_precision="fp32", kv_cache_bytes=8 << 20) as exact:
        assert len(exact.generate("In the beginning", params)[0].token_ids) == 8
    with pytest.raises(ValueError, match="cpu_precision"):
        LLM(llm.engine_path, cpu_precision="fp16")


def test_builds_a_quantized_engine():
    """quant= builds a weight-only int4 engine of the checkpoint; it runs,
    and a bad value is a ValueError naming the option."""
    demo = os.path.join(REPO, "models", "demo")
    with LLM(demo, backend="cpu", quant="int4-wo", group_size=64, max_seq_len=256, kv_cache_bytes=8 << 20) as q:
        out = q.generate("Once upon a time", SamplingParams(max_tokens=8))[0]
        assert len(out.token_ids) == 8
    with pytest.raises(ValueError, match="quant"):
        LLM(demo, backend="cpu", quant="int3", max_seq_len=256)
    with pytest.raises(ValueError, match="quant_scheme"):
        LLM(demo, backend="cpu", quant="int8-wo", quant_scheme="half", max_seq_len=256)


def test_builds_an_fp8_engine():
    """quant="fp8" with per-tensor weight scales builds and runs; a bad
    weight_scales is a ValueError naming it."""
    demo = os.path.join(REPO, "models", "demo")
    with LLM(demo, backend="cpu", quant="fp8", weight_scales="tensor", max_seq_len=256, kv_cache_bytes=8 << 20) as q:
        out = q.generate("Once upon a time", SamplingParams(max_tokens=8))[0]
        assert len(out.token_ids) == 8
    with pytest.raises(ValueError, match="weight_scales"):
        LLM(demo, backend="cpu", quant="fp8", weight_scales="row", max_seq_len=256)


def test_builds_a_calibrated_fp8_engine(tmp_path):
    """calib= with act_scales="static" builds an fp8 engine with calibrated
    activation scales that generates; static scales without calib, or a
    calib that is not a file, are errors naming what is wrong."""
    demo = os.path.join(REPO, "models", "demo")
    with open(os.path.join(demo, "validation.txt"), encoding="utf-8") as f:
        text = f.read()[-20000:]
    calib = tmp_path / "calib.txt"
    calib.write_text(text, encoding="utf-8")
    opts = dict(backend="cpu", quant="fp8", max_seq_len=256, kv_cache_bytes=8 << 20)
    with LLM(demo, act_scales="static", calib=str(calib), calib_samples=4, calib_len=128, **opts) as q:
        out = q.generate("Once upon a time", SamplingParams(max_tokens=8))[0]
        assert len(out.token_ids) == 8
    with pytest.raises(llmrt.LLMRTError, match="calib"):
        LLM(demo, act_scales="static", **opts)
    with pytest.raises(FileNotFoundError, match="calib"):
        LLM(demo, act_scales="static", calib=str(tmp_path / "missing.txt"), **opts)
    with pytest.raises(ValueError, match="act_scales"):
        LLM(demo, act_scales="sometimes", **opts)


def test_builds_an_8bit_kv_cache():
    """kv_cache= builds an engine whose KV cache stores fp8 codes (a
    separate engine in the cache) that generates; a bad value is a
    ValueError naming the option."""
    demo = os.path.join(REPO, "models", "demo")
    opts = dict(backend="cpu", max_seq_len=256, kv_cache_bytes=8 << 20)
    with LLM(demo, kv_cache="fp8", **opts) as q, LLM(demo, **opts) as plain:
        assert q.engine_path != plain.engine_path
        lib = q._lib
        lib.llmrt_engine_kv_cache_dtype.restype = ctypes.c_int
        fp8 = lib.llmrt_dtype_from_name(b"fp8_e4m3")
        assert lib.llmrt_engine_kv_cache_dtype(ctypes.c_void_p(q._handles["engine"])) == fp8
        out = q.generate("Once upon a time", SamplingParams(max_tokens=8))[0]
        assert len(out.token_ids) == 8
    with pytest.raises(ValueError, match="kv_cache"):
        LLM(demo, kv_cache="fp16", **opts)


def test_chat_template_from_checkpoint(tmp_path, monkeypatch):
    """A checkpoint whose tokenizer_config.json has a chat template: the
    rendering equals transformers' (tests/tokenizer/refs), and chat()
    generates from the rendered conversation."""
    ref = json.load(open(os.path.join(REPO, "tests", "tokenizer", "refs", "chat_chatml.json")))
    model = tmp_path / "demo-chat"
    shutil.copytree(os.path.join(REPO, "models", "demo"), model)
    config = json.load(open(model / "tokenizer_config.json"))
    config["chat_template"] = ref["template"]
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    monkeypatch.setenv("LLMRT_CACHE_DIR", str(tmp_path / "cache"))
    with LLM(str(model), max_seq_len=512, kv_cache_bytes=8 << 20) as llm:
        assert llm.engine_path.startswith(str(tmp_path / "cache"))
        for case in ref["cases"]:
            got = llm.apply_chat_template(case["messages"], add_generation_prompt=case["add_generation_prompt"])
            assert got == case["rendered"]
        messages = [{"role": "user", "content": "Hello!"}]
        params = SamplingParams(max_tokens=12, temperature=0.7, seed=11)
        reply = llm.chat(messages, params)
        ids = llm.tokenizer.encode(llm.apply_chat_template(messages), add_special_tokens=False)
        assert reply.prompt_token_ids == ids
        assert reply.token_ids == llm.generate({"prompt_token_ids": ids}, params)[0].token_ids
        with pytest.raises(TypeError, match="messages"):
            llm.chat("Hello!")


def test_load_plugin():
    with pytest.raises(llmrt.NotFoundError, match="nonexistent"):
        llmrt.load_plugin("/nonexistent/libnothing.so")
    example = os.path.join(os.path.dirname(os.environ.get("LLMRT_LIBRARY", "")), "examples", "plugins",
                           "libscaled_residual.so")
    if not os.path.exists(example):
        pytest.skip("the example plugin is not built")
    llmrt.load_plugin(example)
    llmrt.load_plugin(example)  # the same library again is a no-op
