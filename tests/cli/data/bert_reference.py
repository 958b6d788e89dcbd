# A tiny BERT checkpoint with random weights and its outputs computed in
# plain Python the way transformers' modeling_bert.py computes them (post-norm
# blocks, exact GELU, bidirectional attention, tanh pooler over [CLS], a
# linear classifier), written as an encoder golden case. It needs neither
# torch nor numpy, so the CLI test checks llmrt's BERT numerically anywhere.
# usage: bert_reference.py OUT_DIR BertModel|BertForSequenceClassification
import json, math, os, random, struct, sys
random.seed(5)
out = sys.argv[1]; arch = sys.argv[2]
H, NH, L, I, V, TV, P, NL = 16, 2, 2, 32, 50, 2, 64, 3
root = "bert." if arch == "BertForSequenceClassification" else ""
W = {}
def mat(name, r, c, s=0.25): W[name] = [[random.gauss(0, s) for _ in range(c)] for _ in range(r)]
def vec(name, n, base=0.0, s=0.1): W[name] = [base + random.gauss(0, s) for _ in range(n)]
mat(root+"embeddings.word_embeddings.weight", V, H, 1.0)
mat(root+"embeddings.position_embeddings.weight", P, H, 1.0)
mat(root+"embeddings.token_type_embeddings.weight", TV, H, 1.0)
vec(root+"embeddings.LayerNorm.weight", H, 1.0); vec(root+"embeddings.LayerNorm.bias", H)
for l in range(L):
    p = f"{root}encoder.layer.{l}."
    for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        mat(p+n+".weight", H, H); vec(p+n+".bias", H)
    vec(p+"attention.output.LayerNorm.weight", H, 1.0); vec(p+"attention.output.LayerNorm.bias", H)
    mat(p+"intermediate.dense.weight", I, H); vec(p+"intermediate.dense.bias", I)
    mat(p+"output.dense.weight", H, I); vec(p+"output.dense.bias", H)
    vec(p+"output.LayerNorm.weight", H, 1.0); vec(p+"output.LayerNorm.bias", H)
mat(root+"pooler.dense.weight", H, H); vec(root+"pooler.dense.bias", H)
if root: mat("classifier.weight", NL, H); vec("classifier.bias", NL)
# round to f32 so the reference sees what the file holds
def f32(x): return struct.unpack("<f", struct.pack("<f", x))[0]
for k, v in W.items():
    W[k] = [[f32(x) for x in r] for r in v] if isinstance(v[0], list) else [f32(x) for x in v]
os.makedirs(out, exist_ok=True)
hdr, blobs, off = {}, [], 0
for k, v in W.items():
    flat = [x for r in v for x in r] if isinstance(v[0], list) else v
    shape = [len(v), len(v[0])] if isinstance(v[0], list) else [len(v)]
    b = struct.pack("<%df" % len(flat), *flat)
    hdr[k] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(hdr).encode(); h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h); [f.write(b) for b in blobs]
cfg = dict(architectures=[arch], model_type="bert", vocab_size=V, hidden_size=H, num_hidden_layers=L,
           num_attention_heads=NH, intermediate_size=I, hidden_act="gelu", max_position_embeddings=P,
           type_vocab_size=TV, layer_norm_eps=1e-12, pad_token_id=0, position_embedding_type="absolute",
           dtype="float32")
if root: cfg["id2label"] = {str(i): f"L{i}" for i in range(NL)}
json.dump(cfg, open(os.path.join(out, "config.json"), "w"))

def linear(x, w, b): return [sum(wi * xi for wi, xi in zip(row, x)) + bb for row, bb in zip(w, b)]
def ln(x, g, b, eps=1e-12):
    m = sum(x) / len(x); v = sum((xi - m) ** 2 for xi in x) / len(x)
    return [(xi - m) / math.sqrt(v + eps) * gi + bi for xi, gi, bi in zip(x, g, b)]
def gelu(x): return 0.5 * x * (1 + math.erf(x / math.sqrt(2)))
def forward(ids, types):
    n = len(ids); D = H // NH
    hs = [ln([a + b + c for a, b, c in zip(W[root+"embeddings.word_embeddings.weight"][t],
              W[root+"embeddings.position_embeddings.weight"][i], W[root+"embeddings.token_type_embeddings.weight"][s])],
             W[root+"embeddings.LayerNorm.weight"], W[root+"embeddings.LayerNorm.bias"]) for i, (t, s) in enumerate(zip(ids, types))]
    for l in range(L):
        p = f"{root}encoder.layer.{l}."
        q = [linear(x, W[p+"attention.self.query.weight"], W[p+"attention.self.query.bias"]) for x in hs]
        k = [linear(x, W[p+"attention.self.key.weight"], W[p+"attention.self.key.bias"]) for x in hs]
        v = [linear(x, W[p+"attention.self.value.weight"], W[p+"attention.self.value.bias"]) for x in hs]
        ctx = []
        for i in range(n):
            row = []
            for hd in range(NH):
                sc = [sum(q[i][hd*D+d] * k[j][hd*D+d] for d in range(D)) / math.sqrt(D) for j in range(n)]
                m = max(sc); e = [math.exp(s - m) for s in sc]; z = sum(e)
                row += [sum(e[j] / z * v[j][hd*D+d] for j in range(n)) for d in range(D)]
            ctx.append(row)
        a = [linear(c, W[p+"attention.output.dense.weight"], W[p+"attention.output.dense.bias"]) for c in ctx]
        hs = [ln([ai + xi for ai, xi in zip(ar, x)], W[p+"attention.output.LayerNorm.weight"], W[p+"attention.output.LayerNorm.bias"]) for ar, x in zip(a, hs)]
        it = [[gelu(y) for y in linear(x, W[p+"intermediate.dense.weight"], W[p+"intermediate.dense.bias"])] for x in hs]
        o = [linear(y, W[p+"output.dense.weight"], W[p+"output.dense.bias"]) for y in it]
        hs = [ln([oi + xi for oi, xi in zip(orow, x)], W[p+"output.LayerNorm.weight"], W[p+"output.LayerNorm.bias"]) for orow, x in zip(o, hs)]
    pooled = [math.tanh(y) for y in linear(hs[0], W[root+"pooler.dense.weight"], W[root+"pooler.dense.bias"])]
    logits = linear(pooled, W["classifier.weight"], W["classifier.bias"]) if root else None
    return hs, pooled, logits
prompts = []
for n in (7, 40):
    ids = [random.randrange(3, V) for _ in range(n)]; types = [0] * (n // 2) + [1] * (n - n // 2)
    hs, pooled, logits = forward(ids, types)
    e = dict(ids=ids, token_type_ids=types, hidden=hs, pooled=pooled)
    if logits: e["logits"] = logits
    prompts.append(e)
json.dump(dict(name=os.path.basename(out), kind="encoder", dtype="float32", prompts=prompts), open(os.path.join(out, "golden.json"), "w"))
