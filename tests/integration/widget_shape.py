#!/usr/bin/env python3
"""Checks a widget snapshot (JSON on stdin or in argv[2]) against the original Tokfence's shape
(tests/fixtures/widget_snapshot_original.json, argv[1]): every key present with one of its types,
budgets' keys too. Keys beyond the original are allowed (tokfence's additions). Exit 1 with every
mismatch listed."""
import json, re, sys

fixture = json.load(open(sys.argv[1]))
snap = json.load(open(sys.argv[2]) if len(sys.argv) > 2 else sys.stdin)
errors = []

def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)

def check(value, kind):
    if kind == "null": return value is None
    if kind == "boolean": return isinstance(value, bool)
    if kind == "integer": return is_int(value)
    if kind == "string": return isinstance(value, str)
    if kind == "rfc3339_utc":
        return isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value) is not None
    if kind == "hh_mm_ss": return isinstance(value, str) and re.fullmatch(r"\d\d:\d\d:\d\d", value) is not None
    if kind == "daily_or_monthly": return value in ("daily", "monthly")
    if kind.startswith("array:"):
        item = kind[6:]
        if not isinstance(value, list): return False
        if item == "budget":
            for i, b in enumerate(value): check_object(b, fixture["budget"], "budgets[%d]" % i)
            return True
        return all(check(v, item) for v in value)
    if kind.startswith("object:"):
        return isinstance(value, dict) and all(check(v, kind[7:]) for v in value.values())
    raise SystemExit("fixture: unknown type " + kind)

def check_object(obj, spec, where):
    if not isinstance(obj, dict):
        errors.append("%s: not an object" % where); return
    for key, kinds in spec.items():
        if key not in obj:
            errors.append("%s: missing key %s" % (where, key))
        elif not any(check(obj[key], k) for k in kinds):
            errors.append("%s.%s = %r: expected %s" % (where, key, obj[key], " or ".join(kinds)))

check_object(snap, fixture["keys"], "snapshot")
for e in errors: print("widget_shape: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
