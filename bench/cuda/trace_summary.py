#!/usr/bin/env python3
"""Per-kernel times inside decode steps, from a bench/cuda/cupti_trace.c CSV.

A step starts with the host-to-device copy of its inputs that follows the
device-to-host copies of the step before (a step ends by copying its token
ids back) and comes just before a graph's kernels. The steps with the most common record count are the steady
decode steps; for each position in those steps (kernels and copies) the
script takes the median of
  advance = end - (end of the record before)   how far it moved the timeline
  span    = end - start                         its own duration (with PDL a
                                                kernel starts before the one
                                                before it ends)
and prints them summed by name, plus the host gap between steps.

usage: trace_summary.py TRACE.csv [--skip N]  (N: steps to drop at the start)
"""
import collections
import statistics
import subprocess
import sys


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
        return dict(zip(names, out.splitlines()))
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}


def short(name):
    # "void gemv_multi_kernel<__nv_bfloat16, 1, true, true>(...)" -> "gemv_multi_kernel<bf16,1,true,true>"
    name = name.replace("__nv_bfloat16", "bf16").replace("void ", "", 1)
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    return name[:cut].replace(" ", "")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    skip = int(sys.argv[sys.argv.index("--skip") + 1]) if "--skip" in sys.argv else 2
    recs = []
    with open(sys.argv[1]) as f:
        for line in f:
            kind, start, end, graph, name = line.rstrip("\n").split(",", 4)
            recs.append((int(start), int(end), kind, name, int(graph)))
    recs.sort()
    names = demangle(sorted({r[3] for r in recs if r[2] == "K"}))
    steps, cur, prev = [], [], None
    for i, r in enumerate(recs):
        graph_next = any(q[2] == "K" and q[4] for q in recs[i + 1:i + 4])
        if r[2] == "M" and "kind1-" in r[3] and prev is not None and prev[2] == "M" and "kind2-" in prev[3] \
                and graph_next:
            steps.append(cur)
            cur = []
        cur.append(r)
        prev = r
    steps = steps[skip:]
    if not steps:
        sys.exit("no steps found")
    count = collections.Counter(len(s) for s in steps).most_common(1)[0][0]
    print(f"{len(steps)} steps, {sum(len(s) == count for s in steps)} with the common {count} records")
    advance = [[] for _ in range(count)]
    span = [[] for _ in range(count)]
    step_span, host_gap, steady = [], [], None
    for i, st in enumerate(steps):
        if len(st) != count:
            continue
        steady = steady or st
        for j, (s, e, *_) in enumerate(st):
            advance[j].append(e - (st[j - 1][1] if j else s))
            span[j].append(e - s)
        step_span.append(st[-1][1] - st[0][0])
        if i:
            host_gap.append(st[0][0] - steps[i - 1][-1][1])
    med = lambda v: statistics.median(v) / 1000.0 if v else float("nan")
    label = lambda r: short(names.get(r[3], r[3])) if r[2] == "K" else r[3]
    by_name = collections.OrderedDict()
    for j, r in enumerate(steady):
        e = by_name.setdefault(label(r), [0, 0.0, 0.0])
        e[0] += 1
        e[1] += med(advance[j])
        e[2] += med(span[j])
    print(f"step, first record start to last copy end: {med(step_span):9.1f} us")
    print(f"host gap, last copy end to next step:       {med(host_gap):9.1f} us")
    print(f"{'kernel or copy':58s} {'calls':>5s} {'advance us':>10s} {'per call':>8s} {'span/call':>9s}")
    for name, (n, adv, sp) in sorted(by_name.items(), key=lambda kv: -kv[1][1]):
        print(f"{name[:58]:58s} {n:5d} {adv:10.1f} {adv / n:8.2f} {sp / n:9.2f}")
    print("a step's first and last records (advance / span, us):")
    for j, r in enumerate(steady):
        if j < 12 or j >= count - 12:
            print(f"  {j:3d} {label(r)[:60]:60s} {med(advance[j]):7.2f} {med(span[j]):7.2f}")

if __name__ == "__main__":
    main()
