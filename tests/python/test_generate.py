"""Generation through Python against `llmrt run`, batching, streaming, logprobs."""
import threading
import time

import pytest

from llmrt import SamplingParams

PROMPTS = ["Once upon a time", "The king said", "And it came to pass", "In the beginning", "Hello",
           "The cat sat on the mat and", "Wherefore", "A"]


@pytest.mark.parametrize("prompt", PROMPTS[:3])
def test_greedy_equals_cli(llm, cli_run, prompt):
    want = cli_run(prompt, "--max-tokens", "24")
    got = llm.generate(prompt, SamplingParams(max_tokens=24))[0]
    assert got.prompt_token_ids == want["prompt_ids"]
    assert got.token_ids == want["output_ids"]
    assert got.text == want["text"]
    assert got.finish_reason == want["finish_reason"]


@pytest.mark.parametrize("seed,temperature,top_p,top_k", [(7, 0.8, 1.0, 0), (1234, 1.0, 0.9, 0), (99, 1.3, 1.0, 40)])
def test_sampled_equals_cli(llm, cli_run, seed, temperature, top_p, top_k):
    want = cli_run("Once upon a time", "--max-tokens", "32", "--seed", str(seed), "--temperature", str(temperature),
                   "--top-p", str(top_p), "--top-k", str(top_k))
    params = SamplingParams(max_tokens=32, seed=seed, temperature=temperature, top_p=top_p, top_k=top_k)
    got = llm.generate(["Once upon a time"], params)[0]
    assert got.token_ids == want["output_ids"]
    assert got.text == want["text"]


def test_batched_equals_single(llm):
    params = [SamplingParams(max_tokens=20 + i, temperature=0.9 if i % 2 else 0.0, seed=i) for i in range(len(PROMPTS))]
    batched = llm.generate(PROMPTS, params)
    assert len(batched) == len(PROMPTS)
    for prompt, p, out in zip(PROMPTS, params, batched):
        single = llm.generate(prompt, p)[0]
        assert out.prompt == prompt
        assert out.token_ids == single.token_ids
        assert out.text == single.text
        assert len(out.token_ids) <= p.max_tokens


@pytest.mark.parametrize("params", [SamplingParams(max_tokens=40), SamplingParams(max_tokens=40, temperature=1.0, seed=3),
                                    SamplingParams(max_tokens=60, stop=[" and"])])
def test_stream_concatenates_to_text(llm, params):
    pieces = list(llm.generate_stream("Once upon a time", params))
    full = llm.generate("Once upon a time", params)[0]
    assert len(pieces) > 1
    assert "".join(pieces) == full.text


def test_stream_closed_early_cancels(llm):
    stream = llm.generate_stream("Once upon a time", SamplingParams(max_tokens=200, ignore_eos=True))
    first = next(stream)
    assert first
    stream.close()
    # The runtime is free for what comes next.
    assert llm.generate("Hello", SamplingParams(max_tokens=5))[0].finish_reason == "length"


def test_stop_string_cuts_text(llm):
    out = llm.generate("Once upon a time", SamplingParams(max_tokens=60, stop=" and"))[0]
    assert out.finish_reason == "stop"
    assert " and" not in out.text


def test_n_sequences_and_logprobs(llm):
    out = llm.generate("The king said", SamplingParams(max_tokens=12, temperature=1.0, seed=5, n=3, logprobs=4))[0]
    assert len(out.outputs) == 3
    for seq in out.outputs:
        assert len(seq.logprobs) == len(seq.token_ids)
        for token, alternatives in zip(seq.token_ids, seq.logprobs):
            assert token in alternatives
            assert 4 <= len(alternatives) <= 5
            assert all(v <= 0 for v in alternatives.values())
        assert seq.cumulative_logprob == pytest.approx(sum(d[t] for t, d in zip(seq.token_ids, seq.logprobs)),
                                                       rel=1e-4, abs=1e-3)
    assert llm.generate("Hello", SamplingParams(max_tokens=4))[0].logprobs is None


def test_prompt_logprobs_score_the_continuation(llm):
    """The prompt's scores of a greedy continuation are the log-probabilities
    it was generated with."""
    first = llm.generate("The king said", SamplingParams(max_tokens=6, logprobs=0))[0]
    ids = llm.tokenizer.encode("The king said") + first.token_ids
    out = llm.generate({"prompt_token_ids": ids}, SamplingParams(max_tokens=1, prompt_logprobs=2))[0]
    scores = out.prompt_logprobs
    assert len(scores) == len(ids) and scores[0] is None
    assert all(ids[k] in scores[k] and 2 <= len(scores[k]) <= 3 for k in range(1, len(ids)))
    generated = [d[t] for t, d in zip(first.token_ids, first.logprobs)]
    tail = [scores[k][ids[k]] for k in range(len(ids) - 6, len(ids))]
    assert tail == pytest.approx(generated, abs=1e-4)
    assert llm.generate("Hello", SamplingParams(max_tokens=2))[0].prompt_logprobs is None


def test_bad_words_are_not_generated(llm):
    free = llm.generate("Once upon a time", SamplingParams(max_tokens=8))[0]
    word = llm.tokenizer.decode(free.token_ids[:1])
    banned = llm.generate("Once upon a time", SamplingParams(max_tokens=8, bad_words=[word]))[0]
    assert banned.token_ids[0] != free.token_ids[0]
    with pytest.raises(ValueError):
        SamplingParams(bad_words=[""])


def test_prompt_token_ids_and_tokenizer(llm, cli_run):
    want = cli_run("In the beginning", "--max-tokens", "10")
    ids = llm.tokenizer.encode("In the beginning")
    assert ids == want["prompt_ids"]
    assert llm.tokenizer.decode(llm.tokenizer.encode("In the beginning", add_special_tokens=False)) == "In the beginning"
    out = llm.generate({"prompt_token_ids": ids}, SamplingParams(max_tokens=10))[0]
    assert out.token_ids == want["output_ids"]
    assert llm.tokenizer.decode(out.token_ids) == out.text


def test_generation_releases_the_gil(llm):
    """Another Python thread keeps running while generate is inside the library."""
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    try:
        start = time.perf_counter()
        llm.generate(PROMPTS * 4, SamplingParams(max_tokens=128, ignore_eos=True))
        elapsed = time.perf_counter() - start
    finally:
        stop.set()
        t.join()
    # With the GIL held, the counter would tick only between the 0.25 s
    # slices the library runs (4 a second); 20 a second leaves room for a
    # loaded machine.
    assert len(ticks) >= max(5, 20 * elapsed), (len(ticks), elapsed)


def test_keyboard_interrupt_stops_generate(llm):
    """A signal during a long generate raises in Python; the LLM stays usable."""
    import _thread

    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        llm.generate(PROMPTS * 8, SamplingParams(max_tokens=400, ignore_eos=True))
    timer.cancel()
    assert llm.generate("Hello", SamplingParams(max_tokens=5))[0].finish_reason == "length"
