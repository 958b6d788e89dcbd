#!/usr/bin/env python3
"""Compares llmrt's prompt logits (.npy from `llmrt run --dump-logits`) and
greedy tokens (`--json`) with a reference (ort_reference.mjs's JSON, or the
exporter's reference.json, which has logits only).

usage: compare.py REF.json LOGITS.npy [RUN.json] [--rtol 1e-4]
Exits 1 with the worst element when the max |a - b| / max |b| exceeds rtol,
or when the greedy tokens differ."""
import argparse, json, sys

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("ref")
ap.add_argument("logits")
ap.add_argument("run", nargs="?")
ap.add_argument("--rtol", type=float, default=1e-4)
a = ap.parse_args()
ref = json.load(open(a.ref))
want = np.array(ref["logits"], dtype=np.float32)
got = np.load(a.logits)
if got.shape != want.shape:
    sys.exit(f"FAIL: logits shape {got.shape}, reference {want.shape}")
err = np.abs(got - want)
rel = float(err.max() / np.abs(want).max())
where = np.unravel_index(int(err.argmax()), err.shape)
status = 0
if rel > a.rtol:
    print(f"FAIL: logits differ by {rel:.3g} relative (> {a.rtol:g}); worst at {where}: "
          f"{got[where]} vs {want[where]}")
    status = 1
if a.run:
    run = json.load(open(a.run))
    if run["output_ids"] != ref["greedy"]:
        print(f"FAIL: greedy tokens {run['output_ids']}, reference {ref['greedy']}")
        status = 1
if status == 0:
    print(f"ok: logits within {rel:.2g} relative" + (", greedy tokens equal" if a.run else ""))
sys.exit(status)
