#!/usr/bin/env python3
"""Summary of the GEMV block timeline (gemv_probe.cuh's CSV, LLMRT_CUDA_PROBE_OUT).

Records are grouped into launches (one weight tag, blocks within 1 ms) and
launches into decode steps (the step's first tag recurring). For each GEMV
of a layer (--names, LLaMA's four by default; a step ends with the
logits product, the launch with the most blocks) it
prints medians over steps and layers, in µs relative to the previous GEMV's
last block end (so attention and norm kernels between GEMVs show up as
the first start being late): first / median / last block start, median
ready (x made, after the PDL wait), first / p10 / median / last block end.

usage: probe_summary.py RECORDS.csv [--skip-steps N] [--names qkv,o_proj,gate_up,down]
"""
import argparse
import collections
import csv
import statistics


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--skip-steps", type=int, default=2)
    ap.add_argument("--names", default="qkv,o_proj,gate_up,down", help="a layer's GEMVs, in order")
    args = ap.parse_args()
    recs = []
    with open(args.csv) as f:
        for r in csv.DictReader(f):
            recs.append((r["tag"], int(r["blocks"]), int(r["start"]), int(r["ready"]), int(r["end"])))
    recs.sort(key=lambda r: r[2])
    launches, cur = [], {}
    for tag, blocks, start, ready, end in recs:
        launch = cur.get(tag)
        if launch is None or start - launch["t0"] > 1_000_000:
            launch = {"tag": tag, "t0": start, "blocks": blocks, "start": [], "ready": [], "end": []}
            launches.append(launch)
            cur[tag] = launch
        launch["start"].append(start)
        if ready:
            launch["ready"].append(ready)
        launch["end"].append(end)
    launches.sort(key=lambda l: min(l["start"]))
    if not launches:
        raise SystemExit("no records")
    # a step ends with its logits product, the launch with the most blocks
    last_tag = max(launches, key=lambda l: l["blocks"])["tag"]
    steps, step = [], None
    for l in launches:
        if step is not None:
            step.append(l)
        if l["tag"] == last_tag:
            if step:
                steps.append(step)
            step = []
    n = collections.Counter(len(s) for s in steps).most_common(1)[0][0]
    steps = [s for s in steps[args.skip_steps:] if len(s) == n]
    names = args.names.split(",")
    print("%d complete steps of %d GEMV launches (%d records)" % (len(steps), n, len(recs)))
    cols = ("first start", "med start", "last start", "med ready", "first end", "p10 end", "med end",
            "p90 end", "last end")
    by_kind = collections.defaultdict(lambda: collections.defaultdict(list))
    for s in steps:
        for i in range(1, n):
            prev_end = max(s[i - 1]["end"])
            l = s[i]
            e = sorted(l["end"])
            vals = (min(l["start"]), statistics.median(l["start"]), max(l["start"]),
                    statistics.median(l["ready"]) if l["ready"] else float("nan"),
                    e[0], pct(e, 0.1), statistics.median(e), pct(e, 0.9), e[-1])
            kind = "logits" if i == n - 1 else "%d %s" % (i % len(names), names[i % len(names)])
            for c, v in zip(cols, vals):
                by_kind[(kind, l["blocks"])][c].append((v - prev_end) / 1000.0)
    print("µs from the previous GEMV's last block end (medians over steps and layers)")
    print("%-14s %6s " % ("launch", "blocks") + " ".join("%10s" % c for c in cols))
    for (kind, blocks), d in sorted(by_kind.items()):
        print("%-14s %6d " % (kind, blocks) + " ".join("%10.2f" % statistics.median(d[c]) for c in cols))


if __name__ == "__main__":
    main()
