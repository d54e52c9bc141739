#!/usr/bin/env python3
"""Sums the doctest totals of every suite in a meson test log and prints them.
Tests that are not doctest executables (sample checks, compile-fail checks,
consumer builds) count as one case each, by meson's verdict. The last line is
the plain 'tests: N passed, N failed, N skipped'."""
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
        ok = entry["result"] in ("OK", "EXPECTEDFAIL")
        skipped_here = entry["result"] == "SKIP"
        passed += ok
        skipped += skipped_here
        failed += not ok and not skipped_here
        print(f"  {entry['name']:<28}    1 check            [{entry['result']}]")
        continue
    cases, ok, bad, skip = map(int, match.groups())
    passed, failed, skipped = passed + ok, failed + bad, skipped + skip
    print(f"  {entry['name']:<28} {cases:4} test cases, {ok:4} passed, {bad:3} failed  [{entry['result']}]")
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
