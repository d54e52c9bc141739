#!/usr/bin/env python3
"""Sums the doctest totals of every suite in a meson test log and prints them,
ending with the plain line 'doctest: N passed, N failed'."""
import json
import re
import sys

build = sys.argv[1] if len(sys.argv) > 1 else "build"
pattern = re.compile(r"\[doctest\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed \|\s*(\d+) skipped")
passed = failed = skipped = 0
try:
    lines = open(f"{build}/meson-logs/testlog.json").read().splitlines()
except OSError:
    lines = []
for line in lines:
    entry = json.loads(line)
    match = pattern.search(entry.get("stdout") or "")
    if not match:
        print(f"  {entry['name']:<28} {entry['result']} (no doctest summary)")
        continue
    cases, ok, bad, skip = map(int, match.groups())
    passed, failed, skipped = passed + ok, failed + bad, skipped + skip
    print(f"  {entry['name']:<28} {cases:4} test cases, {ok:4} passed, {bad:3} failed  [{entry['result']}]")
print(f"doctest: {passed} passed, {failed} failed, {skipped} skipped")
