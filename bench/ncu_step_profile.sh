#!/usr/bin/env bash
# Per-kernel GPU time of llmrt's steps, grouped by kernel and grid, from
# ncu (one launch at a time, so no overlap: a sum of kernel times).
# usage: bench/ncu_step_profile.sh SKIP COUNT -- llmrt bench ARGS...
set -uo pipefail
skip=$1 count=$2; shift 3
ncu --csv --metrics gpu__time_duration.sum --launch-skip "$skip" --launch-count "$count" "$@" 2>/dev/null |
python3 -c '
import csv, sys, re, collections
rows = [r for r in csv.reader(l for l in sys.stdin if l.startswith("\""))]
hdr = rows[0]; ix = {h: i for i, h in enumerate(hdr)}
agg = collections.OrderedDict()
for r in rows[1:]:
    if r[ix["Metric Name"]] != "gpu__time_duration.sum": continue
    name = re.sub(r"\(.*", "", r[ix["Kernel Name"]]).replace("void ", "")[:60]
    key = (name, r[ix["Grid Size"]])
    v = float(r[ix["Metric Value"]].replace(",", ""))
    unit = r[ix["Metric Unit"]]
    v = v / 1000 if unit == "nsecond" else v * 1000 if unit == "msecond" else v
    c, t = agg.get(key, (0, 0.0)); agg[key] = (c + 1, t + v)
tot = sum(t for c, t in agg.values())
print("%-60s %-16s %6s %9s %9s %6s" % ("kernel", "grid", "count", "avg us", "sum us", "%"))
for (n, g), (c, t) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print("%-60s %-16s %6d %9.2f %9.1f %6.1f" % (n, g, c, t / c, t, 100 * t / tot))
print("total %.1f us over %d launches" % (tot, sum(c for c, t in agg.values())))
'
