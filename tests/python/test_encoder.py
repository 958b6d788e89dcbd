"""Encoder engines (BERT) through the Python API, against `llmrt embed`."""
import json
import os
import subprocess

import pytest

import llmrt

CLI = os.environ.get("LLMRT_CLI", "llmrt")
CONFIG = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 60,
          "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
          "hidden_act": "gelu", "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
          "id2label": {"0": "NEG", "1": "POS"}}


@pytest.fixture(scope="module")
def bert_engine(tmp_path_factory):
    d = tmp_path_factory.mktemp("bert")
    (d / "config.json").write_text(json.dumps(CONFIG))
    path = str(d / "bert.engine")
    subprocess.run([CLI, "build", "--config", str(d / "config.json"), "--random-weights", "--output", path,
                    "--quiet"], check=True)
    return path


def cli_embed(engine, ids, *args):
    out = subprocess.run([CLI, "embed", "--engine", engine, "--ids", ",".join(map(str, ids)), "--json", *args],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def close(a, b, tol=1e-6):
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) < tol


def test_embed_and_encode_match_the_cli(bert_engine):
    with llmrt.Encoder(bert_engine, num_threads=1) as enc:
        assert enc.hidden_size == 32
        inputs = [[2, 7, 9, 3], [5, 6], [1] * 30]
        vectors = enc.embed(inputs)
        assert len(vectors) == 3 and all(len(v) == 32 for v in vectors)
        for ids, v in zip(inputs, vectors):
            assert close(v, cli_embed(bert_engine, ids)["embedding"])
        assert close(enc.embed([5, 6], pooling="mean")[0], cli_embed(bert_engine, [5, 6], "--pooling", "mean")["embedding"])
        out = enc.encode([2, 7, 9, 3], token_type_ids=[0, 0, 1, 1])
        ref = cli_embed(bert_engine, [2, 7, 9, 3], "--token-types", "0,0,1,1")
        assert len(out["hidden"]) == 4 and close(out["hidden"][0], ref["embedding"])
        assert close(out["pooled"], ref["pooled"]) and close(out["logits"], ref["logits"])


def test_refusals(bert_engine, engine_path):
    with pytest.raises(ValueError, match="decoder engine"):
        llmrt.Encoder(engine_path)
    with pytest.raises(llmrt.LLMRTError, match="is an encoder"):
        llmrt.LLM(bert_engine)
    with llmrt.Encoder(bert_engine) as enc:
        with pytest.raises(ValueError, match="pooling"):
            enc.embed([1, 2], pooling="max")
        with pytest.raises(llmrt.InvalidArgumentError, match="outside the vocabulary"):
            enc.embed([[1, 2], [1, 99]])
        with pytest.raises(ValueError, match="token_type_ids"):
            enc.encode([1, 2], token_type_ids=[0])
        with pytest.raises(llmrt.LLMRTError, match="no tokenizer|tokenizer"):
            enc.embed("hello")
    with pytest.raises(ValueError, match="closed"):
        enc.embed([1])
    with pytest.raises(ValueError, match="cpu_precision"):
        llmrt.Encoder(bert_engine, cpu_precision="fp16")
    with llmrt.Encoder(bert_engine, cpu_precision="fp32") as exact, llmrt.Encoder(bert_engine) as auto:
        # an f32 engine computes in fp32 either way
        assert exact.embed([[1, 2, 3]]) == auto.embed([[1, 2, 3]])
