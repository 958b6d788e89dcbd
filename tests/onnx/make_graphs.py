#!/usr/bin/env python3
"""Builds tiny decoder graphs with onnx.helper, in the forms torch.onnx.export
writes for transformers models, for the ONNX import tests:

  llama.onnx        LLaMA: RMSNorm (Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul),
                    RoPE from inv_freq (MatMul, Transpose, Concat, Cos, Sin,
                    rotate_half with Slice, Neg, Concat), GQA repeat_kv
                    (Slice, Unsqueeze, Expand, Reshape), the causal mask from shapes
                    (Shape, Gather, Range, Unsqueeze, Less/Greater, Where, Trilu,
                    ConstantOfShape, Equal, Expand), QKᵀ/√D, Softmax, SwiGLU
                    (Sigmoid, Mul), opset 17
  llama_past.onnx   the same with past_key_values.{i}.key/value inputs and
                    present.{i}.* outputs (Concat along the sequence)
  gpt.onnx          GPT-2 style, opset 13: LayerNormalization written out
                    (ReduceMean, Sub, Pow, Sqrt, Div), learned positions, fused
                    qkv split with Split, Kᵀ straight from the reshape, scale by
                    Mul, Where mask (Range, Greater, Not), tanh-GELU (Pow, Tanh), Gemm on a flattened
                    [T, hidden] view, Squeeze/Unsqueeze with axes inputs
  gpt_ln.onnx       GPT-2 style, opset 17: the LayerNormalization op, exact GELU (Erf)
  ops.onnx          the rest of the op set (see llama's `ops`), with past key/values

llama_ext.onnx (llama.onnx with its tensors in llama_ext.data beside it), and
malformed variants of llama.onnx (bad_*.onnx, listed in malformed.txt with
the words each error must contain).

usage: make_graphs.py OUT_DIR | --fuzz-seeds CORPUS_DIR | --from-checkpoint CASE_DIR OUT_DIR
"""
import json, os, sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


class G:
    def __init__(self, seed):
        self.nodes, self.inits, self.n = [], [], 0
        self.rng = np.random.default_rng(seed)
        self.source = None

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def op(self, op, inputs, outputs=1, hint=None, **attrs):
        outs = [self.name(hint or op.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name("/" + op), **attrs))
        return outs[0] if outputs == 1 else outs

    def const(self, value, dtype=np.int64):
        arr = np.array(value, dtype=dtype)
        out = self.name("const")
        self.nodes.append(helper.make_node("Constant", [], [out], name=self.name("/Constant"),
                                           value=numpy_helper.from_array(arr)))
        return out

    def weight(self, name, shape, std=None, offset=0.0):
        std = std if std is not None else 1.0 / np.sqrt(shape[0])
        arr = (offset + std * self.rng.standard_normal(shape)).astype(np.float32)
        if self.source is not None:  # a checkpoint's tensor in place of the random one
            arr = self.source(name)
            assert list(arr.shape) == list(shape), (name, arr.shape, shape)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(arr, name))
        return name


def dim(g, x, i):
    """x.shape[i] as a 1-element int64 vector (Shape, Gather, Unsqueeze)."""
    s = g.op("Shape", [x])
    d = g.op("Gather", [s, g.const(i)], axis=0)
    return g.op("Unsqueeze", [d, g.const([0])])


def rms_norm(g, x, w, eps):
    x = g.op("Cast", [x], to=F)
    var = g.op("ReduceMean", [g.op("Pow", [x, g.const(2.0, np.float32)])], axes=[-1], keepdims=1)
    r = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [var, g.const(eps, np.float32)])])])
    return g.op("Mul", [w, g.op("Cast", [g.op("Mul", [x, r])], to=F)])


def heads(g, x, n, d, perm=(0, 2, 1, 3), arith=False):
    nv, dv = g.const([n]), g.const([d])
    if arith:  # the same numbers through Abs, Min and Max, folded at import
        nv = g.op("Abs", [g.op("Min", [g.const([-n]), g.const([n])])])
        dv = g.op("Max", [g.const([d]), g.const([1])])
    shape = g.op("Concat", [dim(g, x, 0), dim(g, x, 1), nv, dv], axis=0)
    return g.op("Transpose", [g.op("Reshape", [x, shape])], perm=list(perm))


def rotate_half(g, x, d):
    x1 = g.op("Slice", [x, g.const([0]), g.const([d // 2]), g.const([-1]), g.const([1])])
    x2 = g.op("Slice", [x, g.const([d // 2]), g.const([2 ** 62]), g.const([-1]), g.const([1])])
    return g.op("Concat", [g.op("Neg", [x2]), x1], axis=-1)


def repeat_kv(g, x, kvh, rep, d):
    if rep == 1:
        return x
    # x[:, :, None] as torch traces it: a Slice that keeps everything, then Unsqueeze
    full = g.op("Slice", [x, g.const([0]), g.const([2 ** 63 - 1]), g.const([1]), g.const([1])])
    u = g.op("Unsqueeze", [full, g.const([2])])
    b, s = dim(g, x, 0), dim(g, x, 2)
    e = g.op("Expand", [u, g.op("Concat", [b, g.const([kvh]), g.const([rep]), s, g.const([d])], axis=0)])
    return g.op("Reshape", [e, g.op("Concat", [b, g.const([kvh * rep]), s, g.const([d])], axis=0)])


def causal_mask_logic(g, ids, total_from):
    """The same causal mask through And, Or, Less, LessOrEqual, GreaterOrEqual."""
    s = g.op("Squeeze", [dim(g, ids, 1), g.const([0])])
    total = g.op("Squeeze", [dim(g, total_from, 1), g.const([0])])
    kpos = g.op("Unsqueeze", [g.op("Range", [g.const(0), total, g.const(1)]), g.const([0])])
    qpos = g.op("Unsqueeze", [g.op("Add", [g.op("Range", [g.const(0), s, g.const(1)]), g.op("Sub", [total, s])]),
                              g.const([1])])
    allowed = g.op("And", [g.op("LessOrEqual", [kpos, qpos]), g.op("GreaterOrEqual", [kpos, g.const(0)])])
    masked = g.op("Or", [g.op("Not", [allowed]), g.op("Less", [kpos, g.const(0)])])
    mask = g.op("Where", [masked, g.const(np.finfo(np.float32).min, np.float32), g.const(0.0, np.float32)])
    return g.op("Unsqueeze", [mask, g.const([0, 1])])


def causal_mask(g, ids, total_from):
    """[1, 1, S, P+S] additive mask from shapes: Range, comparisons, Where, plus a
    Trilu over a ConstantOfShape table sliced to size (as older exports did)."""
    s = g.op("Squeeze", [dim(g, ids, 1), g.const([0])])
    total = g.op("Squeeze", [dim(g, total_from, 1), g.const([0])])
    past = g.op("Sub", [total, s])
    zero, one = g.const(0), g.const(1)
    kpos = g.op("Range", [zero, total, one])
    qpos = g.op("Add", [g.op("Range", [zero, s, one]), past])
    future = g.op("Greater", [g.op("Unsqueeze", [kpos, g.const([0])]), g.op("Unsqueeze", [qpos, g.const([1])])])
    big = g.const(np.finfo(np.float32).min, np.float32)
    mask = g.op("Where", [future, big, g.const(0.0, np.float32)])
    # a no-op Trilu chain of the kind older exports carry: ones[s, total] → triu → Equal → Where
    shape2 = g.op("Concat", [g.op("Unsqueeze", [s, g.const([0])]), g.op("Unsqueeze", [total, g.const([0])])], axis=0)
    ones = g.op("ConstantOfShape", [shape2], value=numpy_helper.from_array(np.array([1.0], np.float32)))
    tri = g.op("Trilu", [ones, g.op("Add", [past, one])], upper=1)
    keep = g.op("Equal", [tri, g.const(1.0, np.float32)])
    mask = g.op("Where", [keep, big, mask])
    return g.op("Unsqueeze", [mask, g.const([0, 1])])


def llama(with_past, seed=1, vocab=96, hidden=32, nh=4, kvh=2, inter=48, layers=2, eps=1e-5, theta=10000.0,
          ops=False, source=None):
    """ops=True: the rest of the supported op set: SimplifiedLayerNormalization,
    SDPA's √scale on q and kᵀ, a mask through boolean logic, reshape targets
    through Abs/Min/Max, and an MLP of Relu, Exp, ReduceSum, Div, Dropout,
    Flatten. source: name → array, the weights of a checkpoint (from_checkpoint)."""
    g = G(seed)
    g.source = source
    d = hidden // nh
    ids = "input_ids"
    inputs = [helper.make_tensor_value_info("input_ids", I64, ["batch", "seq"]),
              helper.make_tensor_value_info("attention_mask", I64, ["batch", "total"]),
              helper.make_tensor_value_info("position_ids", I64, ["batch", "seq"])]
    outputs = [helper.make_tensor_value_info("logits", F, ["batch", "seq", vocab])]
    h = g.op("Gather", [g.weight("model.embed_tokens.weight", [vocab, hidden], std=1.0), ids], axis=0)
    # RoPE tables: inv_freq[None, :, None] @ position_ids[:, None, :] → cos, sin
    inv = (1.0 / theta ** (np.arange(0, d, 2, dtype=np.float32) / d)).astype(np.float32)
    inv_e = g.op("Expand", [g.op("Unsqueeze", [g.op("Unsqueeze", [g.init("model.rotary_emb.inv_freq", inv),
                                                                     g.const([0])]), g.const([2])]),
                            g.op("Concat", [dim(g, "position_ids", 0), g.const([d // 2]), g.const([1])], axis=0)])
    pos = g.op("Cast", [g.op("Unsqueeze", ["position_ids", g.const([1])])], to=F)
    freqs = g.op("Transpose", [g.op("MatMul", [inv_e, pos])], perm=[0, 2, 1])
    emb = g.op("Concat", [freqs, freqs], axis=-1)
    cos = g.op("Unsqueeze", [g.op("Cos", [emb]), g.const([1])])
    sin = g.op("Unsqueeze", [g.op("Sin", [emb]), g.const([1])])
    mask = causal_mask_logic(g, ids, "attention_mask") if ops else causal_mask(g, ids, "attention_mask")

    def norm(x, w):
        if ops:
            return g.op("SimplifiedLayerNormalization", [x, w], axis=-1, epsilon=eps)
        return rms_norm(g, x, w, eps)

    for l in range(layers):
        p = f"model.layers.{l}"
        x = norm(h, g.weight(f"{p}.input_layernorm.weight", [hidden], std=0.1, offset=1.0))
        q = heads(g, g.op("MatMul", [x, g.weight(f"onnx::MatMul_q{l}", [hidden, nh * d])]), nh, d, arith=ops)
        k = heads(g, g.op("MatMul", [x, g.weight(f"onnx::MatMul_k{l}", [hidden, kvh * d])]), kvh, d, arith=ops)
        v = heads(g, g.op("MatMul", [x, g.weight(f"onnx::MatMul_v{l}", [hidden, kvh * d])]), kvh, d, arith=ops)
        q = g.op("Add", [g.op("Mul", [q, cos]), g.op("Mul", [rotate_half(g, q, d), sin])])
        k = g.op("Add", [g.op("Mul", [k, cos]), g.op("Mul", [rotate_half(g, k, d), sin])])
        if with_past:
            pk, pv = f"past_key_values.{l}.key", f"past_key_values.{l}.value"
            inputs += [helper.make_tensor_value_info(pk, F, ["batch", kvh, "past", d]),
                       helper.make_tensor_value_info(pv, F, ["batch", kvh, "past", d])]
            k = g.op("Concat", [pk, k], axis=-2)
            v = g.op("Concat", [pv, v], axis=2)
            g.nodes.append(helper.make_node("Identity", [k], [f"present.{l}.key"], name=g.name("/Identity")))
            g.nodes.append(helper.make_node("Identity", [v], [f"present.{l}.value"], name=g.name("/Identity")))
            outputs += [helper.make_tensor_value_info(f"present.{l}.key", F, ["batch", kvh, "total", d]),
                        helper.make_tensor_value_info(f"present.{l}.value", F, ["batch", kvh, "total", d])]
        k = repeat_kv(g, k, kvh, nh // kvh, d)
        v = repeat_kv(g, v, kvh, nh // kvh, d)
        if ops:  # SDPA's export: √scale on q and on kᵀ
            root = g.const(d ** -0.25, np.float32)
            s = g.op("MatMul", [g.op("Mul", [q, root]), g.op("Mul", [g.op("Transpose", [k], perm=[0, 1, 3, 2]), root])])
        else:
            s = g.op("Div", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                             g.const(np.sqrt(d), np.float32)])
        kv_len = dim(g, k, 2)
        m = g.op("Slice", [mask, g.const([0]), kv_len, g.const([3]), g.const([1])])
        pr = g.op("Cast", [g.op("Softmax", [g.op("Add", [s, m])], axis=-1)], to=F)
        o = g.op("Transpose", [g.op("MatMul", [pr, v])], perm=[0, 2, 1, 3])
        o = g.op("Reshape", [o, g.op("Concat", [dim(g, x, 0), dim(g, x, 1), g.const([-1])], axis=0)])
        h = g.op("Add", [h, g.op("MatMul", [o, g.weight(f"onnx::MatMul_o{l}", [nh * d, hidden])])])
        x = norm(h, g.weight(f"{p}.post_attention_layernorm.weight", [hidden], std=0.1, offset=1.0))
        if ops:
            u = g.op("Relu", [g.op("MatMul", [x, g.weight(f"onnx::MatMul_up{l}", [hidden, inter])])])
            e = g.op("Exp", [g.op("Mul", [u, g.const(-0.5, np.float32)])])
            u = g.op("Div", [e, g.op("ReduceSum", [e, g.const([-1])], keepdims=1)])
            u = g.op("Dropout", [g.op("Mul", [u, g.const(float(inter), np.float32)])])
            flat = g.op("Flatten", [u], axis=2)  # [1, T, inter] → [T, inter]
            down = g.op("MatMul", [flat, g.weight(f"onnx::MatMul_down{l}", [inter, hidden])])
            h = g.op("Add", [h, g.op("Reshape", [down, g.op("Concat", [dim(g, h, 0), dim(g, h, 1), g.const([hidden])],
                                                              axis=0)])])
            continue
        gate = g.op("MatMul", [x, g.weight(f"onnx::MatMul_gate{l}", [hidden, inter])])
        up = g.op("MatMul", [x, g.weight(f"onnx::MatMul_up{l}", [hidden, inter])])
        act = g.op("Mul", [gate, g.op("Sigmoid", [gate])])
        h = g.op("Add", [h, g.op("MatMul", [g.op("Mul", [act, up]),
                                           g.weight(f"onnx::MatMul_down{l}", [inter, hidden])])])
    h = norm(h, g.weight("model.norm.weight", [hidden], std=0.1, offset=1.0))
    # hidden_states[:, slice(0, None), :] and logits.float(), as transformers writes them
    h = g.op("Slice", [h, g.const([0]), g.const([2 ** 63 - 1]), g.const([1]), g.const([1])])
    head = g.op("MatMul", [h, g.weight("onnx::MatMul_lm_head", [hidden, vocab])])
    g.nodes.append(helper.make_node("Cast", [head], ["logits"], name="/Cast_logits", to=F))
    graph = helper.make_graph(g.nodes, "llama", inputs, outputs, g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="llmrt-tests")


def layer_norm_expanded(g, x, w, b, eps):
    mean = g.op("ReduceMean", [x], axes=[-1], keepdims=1)
    c = g.op("Sub", [x, mean])
    var = g.op("ReduceMean", [g.op("Pow", [c, g.const(2.0, np.float32)])], axes=[-1], keepdims=1)
    n = g.op("Div", [c, g.op("Sqrt", [g.op("Add", [var, g.const(eps, np.float32)])])])
    return g.op("Add", [g.op("Mul", [n, w]), b])


def gelu_tanh(g, x):
    inner = g.op("Mul", [g.const(np.sqrt(2 / np.pi), np.float32),
                         g.op("Add", [x, g.op("Mul", [g.const(0.044715, np.float32),
                                                      g.op("Pow", [x, g.const(3.0, np.float32)])])])])
    return g.op("Mul", [g.op("Mul", [g.const(0.5, np.float32), x]),
                        g.op("Add", [g.const(1.0, np.float32), g.op("Tanh", [inner])])])


def gelu_erf(g, x):
    e = g.op("Erf", [g.op("Div", [x, g.const(np.sqrt(2.0), np.float32)])])
    return g.op("Mul", [g.op("Mul", [x, g.op("Add", [e, g.const(1.0, np.float32)])]), g.const(0.5, np.float32)])


def gpt(ln_op, seed=2, vocab=80, hidden=24, nh=3, layers=2, npos=64, eps=1e-5):
    g = G(seed)
    d = hidden // nh
    inputs = [helper.make_tensor_value_info("input_ids", I64, ["batch", "seq"]),
              helper.make_tensor_value_info("position_ids", I64, ["batch", "seq"])]
    outputs = [helper.make_tensor_value_info("logits", F, ["batch", "seq", vocab])]
    h = g.op("Add", [g.op("Gather", [g.weight("transformer.wte.weight", [vocab, hidden], std=0.3), "input_ids"]),
                     g.op("Gather", [g.weight("transformer.wpe.weight", [npos, hidden], std=0.5), "position_ids"])])
    ids = "input_ids"
    s = dim(g, ids, 1)
    for l in range(layers):
        p = f"transformer.h.{l}"
        w1, b1 = g.weight(f"{p}.ln_1.weight", [hidden], std=0.1, offset=1.0), g.weight(f"{p}.ln_1.bias", [hidden], 0.1)
        x = (g.op("LayerNormalization", [h, w1, b1], axis=-1, epsilon=eps) if ln_op
             else layer_norm_expanded(g, h, w1, b1, eps))
        # c_attn as Gemm over [T, hidden] (a flattened view), then back to [1, T, 3·hidden]
        flat = g.op("Reshape", [x, g.const([-1, hidden])])
        qkv = g.op("Gemm", [flat, g.weight(f"{p}.attn.c_attn.weight", [hidden, 3 * hidden]),
                            g.weight(f"{p}.attn.c_attn.bias", [3 * hidden], 0.1)])
        qkv = g.op("Reshape", [qkv, g.op("Concat", [dim(g, x, 0), s, g.const([3 * hidden])], axis=0)])
        q, k, v = g.op("Split", [qkv, g.const([hidden] * 3)], outputs=3, axis=2)
        q = heads(g, q, nh, d)
        v = heads(g, v, nh, d)
        kt = heads(g, k, nh, d, perm=(0, 2, 3, 1))
        scores = g.op("MatMul", [q, kt])
        scores = g.op("Mul", [scores, g.const(1.0 / np.sqrt(d), np.float32)])
        # boolean causal mask: keep[i, j] = not (j > i)
        n = g.op("Squeeze", [s, g.const([0])])
        r = g.op("Range", [g.const(0), n, g.const(1)])
        future = g.op("Greater", [g.op("Unsqueeze", [r, g.const([0])]), g.op("Unsqueeze", [r, g.const([1])])])
        keep = g.op("Unsqueeze", [g.op("Not", [future]), g.const([0, 1])])
        scores = g.op("Where", [keep, scores, g.const(-1e9, np.float32)])
        pr = g.op("Softmax", [scores], axis=-1)
        o = g.op("Transpose", [g.op("MatMul", [pr, v])], perm=[0, 2, 1, 3])
        o = g.op("Reshape", [o, g.op("Concat", [dim(g, x, 0), s, g.const([hidden])], axis=0)])
        o = g.op("Add", [g.op("MatMul", [o, g.weight(f"{p}.attn.c_proj.weight", [hidden, hidden])]),
                         g.weight(f"{p}.attn.c_proj.bias", [hidden], 0.1)])
        h = g.op("Add", [h, o])
        w2, b2 = g.weight(f"{p}.ln_2.weight", [hidden], std=0.1, offset=1.0), g.weight(f"{p}.ln_2.bias", [hidden], 0.1)
        x = (g.op("LayerNormalization", [h, w2, b2], axis=-1, epsilon=eps) if ln_op
             else layer_norm_expanded(g, h, w2, b2, eps))
        u = g.op("Add", [g.op("MatMul", [x, g.weight(f"{p}.mlp.c_fc.weight", [hidden, 4 * hidden])]),
                         g.weight(f"{p}.mlp.c_fc.bias", [4 * hidden], 0.1)])
        u = gelu_erf(g, u) if ln_op else gelu_tanh(g, u)
        u = g.op("Add", [g.op("MatMul", [u, g.weight(f"{p}.mlp.c_proj.weight", [4 * hidden, hidden])]),
                         g.weight(f"{p}.mlp.c_proj.bias", [hidden], 0.1)])
        h = g.op("Identity", [g.op("Add", [h, u])])
    wf, bf = g.weight("transformer.ln_f.weight", [hidden], std=0.1, offset=1.0), g.weight("transformer.ln_f.bias", [hidden], 0.1)
    h = g.op("LayerNormalization", [h, wf, bf], axis=-1, epsilon=eps) if ln_op else layer_norm_expanded(g, h, wf, bf, eps)
    # tied head: MatMul by the transposed embedding
    g.nodes.append(helper.make_node("MatMul", [h, g.op("Transpose", ["transformer.wte.weight"], perm=[1, 0])],
                                    ["logits"], name="/lm_head/MatMul"))
    graph = helper.make_graph(g.nodes, "gpt", inputs, outputs, g.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17 if ln_op else 13)],
                             producer_name="llmrt-tests")


def malformed(out):
    """Broken variants of llama.onnx, each with the words its error must contain
    (malformed.txt: file, then the expected text, tab-separated)."""
    good = llama(False)
    good.ir_version = 8
    raw = good.SerializeToString()
    cases = []

    def save(name, model_or_bytes, expect):
        data = model_or_bytes if isinstance(model_or_bytes, bytes) else model_or_bytes.SerializeToString()
        with open(os.path.join(out, name + ".onnx"), "wb") as f:
            f.write(data)
        cases.append((name, expect))

    def variant(edit):
        m = onnx.ModelProto()
        m.CopyFrom(good)
        edit(m)
        return m

    save("bad_truncated", raw[: len(raw) // 2], "truncated or malformed")
    save("bad_garbage", bytes(range(256)) * 8, "not an ONNX model")

    def wrong_bytes(m):  # a float tensor whose bytes do not fill its shape
        t = m.graph.initializer[1]
        t.raw_data = t.raw_data[:-3]
    save("bad_tensor_bytes", variant(wrong_bytes), "bytes but its shape and type need")

    def wrong_dtype(m):  # a projection weight stored as int64
        for t in m.graph.initializer:
            if t.name == "onnx::MatMul_q0":
                arr = numpy_helper.to_array(t).astype(np.int64)
                t.CopyFrom(numpy_helper.from_array(arr, t.name))
    save("bad_weight_type", variant(wrong_dtype), "onnx::MatMul_q0' has type i64")

    def cycle(m):  # the final norm reads the LM head's output
        nodes = m.graph.node
        last_mul = [n for n in nodes if n.op_type == "Mul"][-1]
        last_mul.input[0] = "logits"
    save("bad_cycle", variant(cycle), "cycle")

    def missing(m):
        keep = [t for t in m.graph.initializer if t.name != "onnx::MatMul_up1"]
        del m.graph.initializer[:]
        m.graph.initializer.extend(keep)
    save("bad_missing_initializer", variant(missing), "reads 'onnx::MatMul_up1', which no node")

    def shapes(m):  # the down projection's rows disagree with the MLP width
        for t in m.graph.initializer:
            if t.name == "onnx::MatMul_down0":
                arr = numpy_helper.to_array(t)[:-5]
                t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arr), t.name))
    save("bad_shapes", variant(shapes), "inner dims disagree (48 and 43)")

    def unsupported(m):
        sig = [n for n in m.graph.node if n.op_type == "Sigmoid"]
        sig[0].op_type = "HardSigmoid"
        sig[1].op_type = "Einsum"
    save("bad_unsupported", variant(unsupported), "2 nodes have op types llmrt does not import")

    def fixed(m):  # traced at one length, no dynamic axes
        for i in m.graph.input:
            for d in i.type.tensor_type.shape.dim:
                if d.dim_param:
                    d.dim_value = 1 if d.dim_param == "batch" else 7
    save("bad_fixed_length", variant(fixed), "has a fixed sequence length")

    def external(location, offset):
        def edit(m):
            t = [t for t in m.graph.initializer if t.name == "onnx::MatMul_k0"][0]
            t.ClearField("raw_data")
            t.data_location = TensorProto.EXTERNAL
            for k, v in (("location", location), ("offset", str(offset))):
                e = t.external_data.add()
                e.key, e.value = k, v
        return edit
    with open(os.path.join(out, "bad_external.data"), "wb") as f:
        f.write(bytes(64))
    save("bad_external_escape", variant(external("../bad_external.data", 0)), "is not a file beside the model")
    save("bad_external_range", variant(external("bad_external.data", 32)), "are outside bad_external.data")
    save("bad_external_missing", variant(external("absent.data", 0)), "external data of tensor 'onnx::MatMul_k0'")

    def opset(m):
        m.opset_import[0].version = 11
    save("bad_opset", variant(opset), "opset 11")

    with open(os.path.join(out, "malformed.txt"), "w") as f:
        for name, expect in cases:
            f.write(f"{name}\t{expect}\n")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    kinds = {"F32": np.float32, "F16": np.float16}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype=kinds[t["dtype"]]).reshape(t["shape"]).astype(np.float32)
    return out


def from_checkpoint(case, out):
    """llama_ckpt.onnx and llama_ckpt_past.onnx: the LLaMA graph with an HF
    LLaMA checkpoint's weights (a tests/golden case), so that an engine built
    from it can be held against the native engine of the same checkpoint and
    against transformers' logits in the case's golden.json."""
    cfg = json.load(open(os.path.join(case, "config.json")))
    tensors = read_safetensors(os.path.join(case, "model.safetensors"))
    names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
             "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}

    def source(name):
        if name == "onnx::MatMul_lm_head":
            return np.ascontiguousarray(tensors["lm_head.weight"].T)
        if name.startswith("onnx::MatMul_"):  # nn.Linear [out, in] stored transposed, as torch exports it
            key = name[len("onnx::MatMul_"):].rstrip("0123456789")
            layer = name[len("onnx::MatMul_") + len(key):]
            return np.ascontiguousarray(tensors[f"model.layers.{layer}.{names[key]}.weight"].T)
        return tensors[name]

    rope = cfg.get("rope_parameters") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    kw = dict(vocab=cfg["vocab_size"], hidden=cfg["hidden_size"], nh=cfg["num_attention_heads"],
              kvh=cfg["num_key_value_heads"], inter=cfg["intermediate_size"], layers=cfg["num_hidden_layers"],
              eps=cfg["rms_norm_eps"], theta=theta, source=source)
    assert cfg.get("head_dim", kw["hidden"] // kw["nh"]) == kw["hidden"] // kw["nh"]
    for name, past in (("llama_ckpt", False), ("llama_ckpt_past", True)):
        model = llama(past, **kw)
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, os.path.join(out, name + ".onnx"))


def fuzz_seeds(out):
    """Small versions of the graphs, the fuzz corpus (tests/fuzz/corpus/onnx)."""
    tiny = dict(vocab=16, hidden=8, nh=2, kvh=1, inter=12, layers=1)
    for name, model in (("llama", llama(False, **tiny)), ("llama_past", llama(True, **tiny)),
                        ("gpt", gpt(False, vocab=16, hidden=8, nh=2, layers=1, npos=16))):
        model.ir_version = 8
        onnx.save(model, os.path.join(out, f"seed_{name}.onnx"))


def main():
    if sys.argv[1] == "--fuzz-seeds":
        return fuzz_seeds(sys.argv[2]) or 0
    if sys.argv[1] == "--from-checkpoint":
        return from_checkpoint(sys.argv[2], sys.argv[3]) or 0
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, model in (("llama", llama(False)), ("llama_past", llama(True)), ("gpt", gpt(False)),
                        ("gpt_ln", gpt(True)), ("ops", llama(True, seed=3, ops=True))):
        model.ir_version = 8
        if name != "ops":  # SimplifiedLayerNormalization is onnxruntime's, not in onnx's checker
            onnx.checker.check_model(model)
        onnx.save(model, os.path.join(out, name + ".onnx"))
    # llama.onnx again with its tensors in a file beside it (external data), as
    # torch.onnx.export writes models over protobuf's 2 GB
    ext = llama(False)
    ext.ir_version = 8
    onnx.save(ext, os.path.join(out, "llama_ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="llama_ext.data", size_threshold=0)
    malformed(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
