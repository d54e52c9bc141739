#!/usr/bin/env python3
"""Sums the doctest totals of every suite in a meson test log and prints them.
Tests that are not doctest executables (sample checks, compile-fail checks,
consumer builds) count as one case each, by meson's verdict. The last line is
the plain 'tests: N passed, N failed, N skipped', after the end of each failed
test's output: CI logs keep only their tail, where meson's own error logs are
long gone."""
import json
import re
import sys

build = sys.argv[1] if len(sys.argv) > 1 else "build"
pattern = re.compile(r"\[doctest\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed \|\s*(\d+) skipped")
passed = failed = skipped = 0
failures = []
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
        if not ok and not skipped_here:
            failures.append(entry)
        continue
    cases, ok, bad, skip = map(int, match.groups())
    passed, failed, skipped = passed + ok, failed + bad, skipped + skip
    print(f"  {entry['name']:<28} {cases:4} test cases, {ok:4} passed, {bad:3} failed  [{entry['result']}]")
    if bad or entry["result"] not in ("OK", "EXPECTEDFAIL"):
        failures.append(entry)
for entry in failures:
    stdout = (entry.get("stdout") or "").splitlines()
    first_case = next((i for i, text in enumerate(stdout) if text.startswith("TEST CASE:")), len(stdout) - 38)
    stderr = (entry.get("stderr") or "").splitlines()
    print(f"--- {entry['name']} [{entry['result']}]: its first failed case (or its last lines), then the end of its stderr")
    print("\n".join(stdout[max(first_case - 2, 0):][:60] + stderr[-20:]))
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
