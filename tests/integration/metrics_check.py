#!/usr/bin/env python3
"""Parses a Prometheus text-format exposition (version 0.0.4) strictly and compares its counters with
the request log (`tokfence log --json`).  usage: metrics_check.py METRICS_FILE LOG_JSON
Exit 1 listing every mismatch; prints a one-line summary on success."""
import json, math, re, sys
from collections import defaultdict

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(r"^(" + NAME + r")(?:\{(.*)\})? (\S+)$")
errors = []


def parse(text):
    """-> {family: {"type": t, "samples": [(name, labels dict, value)]}}"""
    families, types, seen_samples = {}, {}, set()
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if kind not in ("counter", "gauge", "histogram", "summary", "untyped"):
                errors.append("line %d: bad type %s" % (n, kind))
            if name in types:
                errors.append("line %d: TYPE of %s given twice" % (n, name))
            types[name] = kind
            families[name] = {"type": kind, "samples": []}
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            errors.append("line %d: not a sample: %r" % (n, line))
            continue
        name, label_text, value = m.group(1), m.group(2) or "", m.group(3)
        labels = {}
        rest = label_text
        while rest:
            lm = re.match(LABEL + r"(,|$)", rest)
            if not lm:
                errors.append("line %d: bad labels: %r" % (n, label_text))
                break
            labels[lm.group(1)] = lm.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            rest = rest[lm.end():]
        try:
            v = float(value)
        except ValueError:
            errors.append("line %d: bad value %r" % (n, value))
            continue
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in types and types[name[: -len(suffix)]] == "histogram":
                family = name[: -len(suffix)]
        if family not in families:
            errors.append("line %d: sample %s before its TYPE" % (n, name))
            continue
        key = (name, tuple(sorted(labels.items())))
        if key in seen_samples:
            errors.append("line %d: duplicate sample %s %s" % (n, name, labels))
        seen_samples.add(key)
        families[family]["samples"].append((name, labels, v))
    return families


def check_histograms(families):
    for fam, f in families.items():
        if f["type"] != "histogram":
            continue
        series = defaultdict(dict)
        for name, labels, v in f["samples"]:
            base = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            if name.endswith("_bucket"):
                series[base].setdefault("buckets", []).append((float(labels["le"]), v))
            else:
                series[base][name[len(fam) + 1:]] = v
        for base, s in series.items():
            b = s.get("buckets", [])
            if not b or b[-1][0] != math.inf:
                errors.append("%s%s: no +Inf bucket" % (fam, base))
                continue
            if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                errors.append("%s%s: buckets not cumulative" % (fam, base))
            if b[-1][1] != s.get("count"):
                errors.append("%s%s: +Inf bucket %s != count %s" % (fam, base, b[-1][1], s.get("count")))


def by(families, family, sample_name, keys):
    out = defaultdict(float)
    for name, labels, v in families.get(family, {"samples": []})["samples"]:
        if name == sample_name:
            out[tuple(labels.get(k, "") for k in keys)] += v
    return dict(out)


def expect(what, got, want, tolerance=0.0):
    for key in sorted(set(got) | set(want)):
        g, w = got.get(key, 0), want.get(key, 0)
        if abs(g - w) > tolerance:
            errors.append("%s %s: metrics say %s, the log says %s" % (what, key, g, w))


fams = parse(open(sys.argv[1]).read())
rows = json.load(open(sys.argv[2]))
check_histograms(fams)

PM = ("gen_ai_provider_name", "gen_ai_request_model")
requests, tokens, token_counts, cost, unpriced = (defaultdict(float) for _ in range(5))
for r in rows:
    pm = (r["provider"], r["model"])
    requests[pm + (str(r["status"]),)] += 1
    for t in ("input", "output", "cache_read", "cache_write"):
        if r[t + "_tokens"] > 0:
            tokens[pm + (t,)] += r[t + "_tokens"]
            token_counts[(t,)] += 1
    if r["cost_pico"] is None:
        unpriced[pm] += 1
    else:
        cost[pm] += r["cost_pico"] / 1e12

expect("requests", by(fams, "tokfence_requests_total", "tokfence_requests_total", PM + ("http_response_status_code",)), requests)
expect("durations observed", by(fams, "gen_ai_client_operation_duration_seconds",
                                "gen_ai_client_operation_duration_seconds_count", PM + ("http_response_status_code",)), requests)
expect("tokens", by(fams, "gen_ai_client_token_usage", "gen_ai_client_token_usage_sum", PM + ("gen_ai_token_type",)), tokens)
expect("requests with tokens", by(fams, "gen_ai_client_token_usage", "gen_ai_client_token_usage_count",
                                  ("gen_ai_token_type",)), token_counts)
expect("cost (USD)", {k: v for k, v in by(fams, "tokfence_cost_usd_total", "tokfence_cost_usd_total", PM).items() if v},
       {k: v for k, v in cost.items() if v}, 1e-9)
expect("unpriced", by(fams, "tokfence_unpriced_requests_total", "tokfence_unpriced_requests_total", PM), unpriced)
committed = by(fams, "tokfence_request_log_rows_total", "tokfence_request_log_rows_total", ("state",))
expect("committed rows", {("committed",): committed.get(("committed",), 0)}, {("committed",): len(rows)})

for e in errors:
    print("metrics_check: " + e, file=sys.stderr)
if errors:
    sys.exit(1)
print("metrics_check: %d families, %d log rows, counters match" % (len(fams), len(rows)))
