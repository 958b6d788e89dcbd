#!/usr/bin/env python3
"""The logits an fp8 engine of a compressed-tensors checkpoint must give,
computed in numpy (float64) straight from the checkpoint's tensors:

  usage: fp8_forward.py CHECKPOINT_DIR IDS OUT.npy

(IDS comma-separated; OUT gets float32 [len(IDS), vocab], as `llmrt run
--dump-logits` writes.) The forward is LLaMA's (Qwen2's adds q/k/v biases):
RMSNorm, rotate-half RoPE, grouped-query causal attention, SiLU-gated MLP.
Every fp8 Linear computes the math of src/core/quant8.h: weights
decode(code) x weight_scale, inputs quantized to E4M3 with the layer's
input_scale (static) or per token (max|x| / 448), y = x_q . w^T + bias.
Checked against the golden f32 logits with quantization off (relative L2
under 1e-6)."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_compressed_tensors import E4M3_MAX, e4m3_decode, e4m3_encode, read_safetensors_tagged  # noqa: E402


def quantize_input(x, input_scale):
    if input_scale is None:  # per token
        s = np.abs(x).max(-1, keepdims=True).astype(np.float32) / np.float32(E4M3_MAX)
        s = np.where(s == 0, 1, s).astype(np.float64)
    else:
        s = np.float64(input_scale)
    return e4m3_decode(e4m3_encode((x / s).astype(np.float32))) * s


class Model:
    def __init__(self, d):
        self.cfg = json.load(open(os.path.join(d, "config.json")))
        self.t = read_safetensors_tagged(os.path.join(d, "model.safetensors"))

    def tensor(self, name):
        return self.t[name][1].astype(np.float64)

    def linear(self, x, stem):
        tag, w = self.t[stem + ".weight"]
        if tag == "F8_E4M3":
            scale = self.tensor(stem + ".weight_scale").reshape(-1, 1)
            w = e4m3_decode(w) * scale
            x = quantize_input(x, self.t[stem + ".input_scale"][1].item() if stem + ".input_scale" in self.t else None)
        y = x @ w.astype(np.float64).T
        return y + self.tensor(stem + ".bias") if stem + ".bias" in self.t else y

    def forward(self, ids):
        c = self.cfg
        hidden, heads, kv_heads = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        D = c.get("head_dim") or hidden // heads
        rope = c.get("rope_parameters") or {}
        theta, eps, T = rope.get("rope_theta", c.get("rope_theta", 10000.0)), c["rms_norm_eps"], len(ids)
        angle = np.outer(np.arange(T), 1.0 / theta ** (np.arange(0, D, 2) / D))
        cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]

        def rotate(q):  # [T, heads, D]
            a, b = q[..., : D // 2], q[..., D // 2 :]
            return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)

        def norm(x, name):
            return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * self.tensor(name)

        x = self.tensor("model.embed_tokens.weight")[ids]
        for layer in range(c["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            h = norm(x, p + "input_layernorm.weight")
            q = rotate(self.linear(h, p + "self_attn.q_proj").reshape(T, heads, D))
            k = rotate(self.linear(h, p + "self_attn.k_proj").reshape(T, kv_heads, D))
            v = self.linear(h, p + "self_attn.v_proj").reshape(T, kv_heads, D)
            k, v = np.repeat(k, heads // kv_heads, 1), np.repeat(v, heads // kv_heads, 1)
            scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(D) + np.triu(np.full((T, T), -np.inf), 1)
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            x = x + self.linear(np.einsum("hts,shd->thd", probs, v).reshape(T, heads * D), p + "self_attn.o_proj")
            h = norm(x, p + "post_attention_layernorm.weight")
            gate, up = self.linear(h, p + "mlp.gate_proj"), self.linear(h, p + "mlp.up_proj")
            x = x + self.linear(gate / (1 + np.exp(-gate)) * up, p + "mlp.down_proj")
        head = "lm_head" if "lm_head.weight" in self.t else "model.embed_tokens"
        return self.linear(norm(x, "model.norm.weight"), head)


if __name__ == "__main__":
    model = Model(sys.argv[1])
    np.save(sys.argv[3], model.forward([int(i) for i in sys.argv[2].split(",")]).astype(np.float32))
