// Reference outputs from onnxruntime (the onnxruntime-node package, CPU) for
// the ONNX import tests: the prompt's logits and a greedy continuation.
// A graph with past_key_values.* inputs is run as a server would: the prompt
// with an empty past, then one token a step with the presents fed back.
// usage: node ort_reference.mjs MODEL.onnx 1,2,3 STEPS OUT.json
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const ort = require("onnxruntime-node");
const [model, idsArg, stepsArg, outPath] = process.argv.slice(2);
const prompt = idsArg.split(",").map(Number);
const steps = Number(stepsArg);

const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3 });
const pastNames = session.inputNames.filter((n) => n.startsWith("past_key_values."));
const ints = (a, dims) => new ort.Tensor("int64", BigInt64Array.from(a.map(BigInt)), dims);
const range = (a, b) => Array.from({ length: b - a }, (_, i) => a + i);

function feeds(ids, past, pastLen) {
  const f = { input_ids: ints(ids, [1, ids.length]) };
  if (session.inputNames.includes("position_ids"))
    f.position_ids = ints(range(pastLen, pastLen + ids.length), [1, ids.length]);
  if (session.inputNames.includes("attention_mask"))
    f.attention_mask = ints(new Array(pastLen + ids.length).fill(1), [1, pastLen + ids.length]);
  for (const n of pastNames) f[n] = past[n];
  return f;
}

function argmaxRow(t, row) {
  const v = t.dims[2], data = t.data;
  let best = 0;
  for (let j = 1; j < v; j++) if (data[row * v + j] > data[row * v + best]) best = j;
  return best;
}

let past = {};
for (const n of pastNames) {
  const meta = session.inputMetadata?.find?.((m) => m.name === n);
  const dims = meta?.shape ?? [];
  const kvh = typeof dims[1] === "number" ? dims[1] : 1, d = typeof dims[3] === "number" ? dims[3] : 1;
  past[n] = new ort.Tensor("float32", new Float32Array(0), [1, kvh, 0, d]);
}
let out = await session.run(feeds(prompt, past, 0));
const logits = out.logits;
const rows = [];
for (let i = 0; i < prompt.length; i++)
  rows.push(Array.from(logits.data.slice(i * logits.dims[2], (i + 1) * logits.dims[2])));
const greedy = [];
let seq = prompt.slice();
let next = argmaxRow(logits, prompt.length - 1);
for (let s = 0; s < steps; s++) {
  greedy.push(next);
  seq.push(next);
  if (s + 1 === steps) break;
  if (pastNames.length) {
    for (const n of pastNames) past[n] = out[n.replace("past_key_values.", "present.")];
    out = await session.run(feeds([next], past, seq.length - 1));
    next = argmaxRow(out.logits, 0);
  } else {
    out = await session.run(feeds(seq, {}, 0));
    next = argmaxRow(out.logits, seq.length - 1);
  }
}
writeFileSync(outPath, JSON.stringify({ prompt, logits: rows, greedy }));
