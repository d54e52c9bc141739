#!/usr/bin/env python3
"""Runs a sample and checks it: exit code 0 and every pattern found in its
output. Usage: check-sample.py [--launch 'COMMAND ARGS'] <program> <regex>...
--launch prefixes the program with a launcher (scripts/mpirun.sh -n 3)."""
import re
import shlex
import subprocess
import sys

args = sys.argv[1:]
launcher = []
if args[:1] == ["--launch"]:
    launcher, args = shlex.split(args[1]), args[2:]
program, patterns = args[0], args[1:]
try:
    run = subprocess.run(launcher + [program], capture_output=True, text=True, timeout=240)
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
