#!/usr/bin/env python3
"""Runs a sample and checks it: exit code 0 and every pattern found in its
output. Usage: check-sample.py <program> <regex>..."""
import re
import subprocess
import sys

program, patterns = sys.argv[1], sys.argv[2:]
try:
    run = subprocess.run([program], capture_output=True, text=True, timeout=240)
except subprocess.TimeoutExpired:
    print(f"FAIL: {program} did not finish in 240 s")
    sys.exit(1)
print(run.stdout, end="")
print(run.stderr, end="", file=sys.stderr)
missing = [p for p in patterns if not re.search(p, run.stdout)]
if run.returncode != 0 or missing:
    print(f"FAIL: exit code {run.returncode}; patterns not found: {missing}")
    sys.exit(1)
print(f"ok: {program}")
