#!/usr/bin/env python3
"""Summary of the decode block timeline (kernel_probe.cuh's CSV, LLMRT_CUDA_PROBE_OUT).

Records are grouped into launches (one kind and tag, blocks within 1 ms)
and launches into decode steps (a step ends with the logits product, the
GEMV launch with the most blocks). For each probed launch of a layer
(--names; LLaMA's four GEMVs with the attention between q/k/v and o_proj
by default, without it where the records have none) it prints medians
over steps and layers, in µs relative to the previous launch's last
block end (so kernels that are not probed, such as a final norm, show up
as the first start being late): first / median / last block start, median
ready (x made, after the PDL wait; the attention's wait), median and last
mid (the attention's partials counted), first / p10 / median / last
block end (the attention's: the merge done).

usage: probe_summary.py RECORDS.csv [--skip-steps N] [--names qkv,attn,o_proj,gate_up,down]
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
    ap.add_argument("--names", default=None, help="a layer's probed launches, in order")
    args = ap.parse_args()
    recs, phases = [], []
    with open(args.csv) as f:
        for r in csv.DictReader(f):
            if r["kind"] == "attn" and int(r.get("qdone", 0) or 0) and int(r.get("loopdone", 0) or 0):
                t = [int(r[k]) for k in ("ready", "qdone", "loopdone", "mid", "end")]
                if t[3] == 0:
                    t[3] = t[2]
                # a part whose end comes long after its partials merged the others
                kind = 2 if t[4] - t[3] > 300 else 1
                phases.append((kind,) + tuple((b - a) / 1000.0 for a, b in zip(t, t[1:])))
            recs.append((r["kind"] + ":" + r["tag"], int(r["blocks"]), int(r["start"]), int(r["ready"]),
                         int(r["mid"]), int(r["end"])))
    recs.sort(key=lambda r: r[2])
    launches, cur = [], {}
    for tag, blocks, start, ready, mid, end in recs:
        launch = cur.get(tag)
        if launch is None or start - launch["t0"] > 1_000_000:
            launch = {"tag": tag, "t0": start, "blocks": blocks, "start": [], "ready": [], "mid": [], "end": []}
            launches.append(launch)
            cur[tag] = launch
        launch["start"].append(start)
        if ready:
            launch["ready"].append(ready)
        if mid:
            launch["mid"].append(mid)
        launch["end"].append(end)
    launches.sort(key=lambda l: min(l["start"]))
    if not launches:
        raise SystemExit("no records")
    has_attn = any(l["tag"].startswith("attn:") for l in launches)
    if args.names is None:
        args.names = "qkv,attn,o_proj,gate_up,down" if has_attn else "qkv,o_proj,gate_up,down"
    # a step ends with its logits product, the GEMV launch with the most blocks
    last_tag = max((l for l in launches if l["tag"].startswith("gemv:")), key=lambda l: l["blocks"])["tag"]
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
    print("%d complete steps of %d probed launches (%d records)" % (len(steps), n, len(recs)))
    cols = ("first start", "med start", "last start", "med ready", "med mid", "last mid", "first end", "p10 end",
            "med end", "p90 end", "last end")
    nan = float("nan")
    by_kind = collections.defaultdict(lambda: collections.defaultdict(list))
    for s in steps:
        for i in range(1, n):
            prev_end = max(s[i - 1]["end"])
            l = s[i]
            e = sorted(l["end"])
            vals = (min(l["start"]), statistics.median(l["start"]), max(l["start"]),
                    statistics.median(l["ready"]) if l["ready"] else nan,
                    statistics.median(l["mid"]) if l["mid"] else nan, max(l["mid"]) if l["mid"] else nan,
                    e[0], pct(e, 0.1), statistics.median(e), pct(e, 0.9), e[-1])
            kind = "logits" if i == n - 1 else "%d %s" % (i % len(names), names[i % len(names)])
            for c, v in zip(cols, vals):
                by_kind[(kind, l["blocks"])][c].append((v - prev_end) / 1000.0)
    print("µs from the previous launch's last block end (medians over steps and layers)")
    print("%-14s %6s " % ("launch", "blocks") + " ".join("%10s" % c for c in cols))
    for (kind, blocks), d in sorted(by_kind.items()):
        med = [statistics.median(d[c]) for c in cols]
        print("%-14s %6d " % (kind, blocks) + " ".join("%10.2f" % v for v in med))
    attn = [r for r in phases if r[0]]
    if attn:
        print("attention blocks, µs between marks (median / p90 over %d blocks; merging parts apart)" % len(attn))
        names = ("wait -> q made", "q -> rows done", "rows -> partials", "partials -> end")
        for merging in (False, True):
            rows = [r[1:] for r in attn if r[0] == (2 if merging else 1)]
            if not rows:
                continue
            print("  %s (%d):" % ("merging / own-row part" if merging else "other parts", len(rows)),
                  "  ".join("%s %.2f / %.2f" % (n, statistics.median(c), pct(c, 0.9))
                            for n, c in zip(names, zip(*rows))))


if __name__ == "__main__":
    main()
