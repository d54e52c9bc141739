"""Python's subprocess.run: the peer of bench/bench_subprocess.cpp."""
import os
import sys

# This file's own name would shadow the standard module: drop its directory
# from the import path before importing it.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402


def ns_per_op(operations, body):
    start = time.perf_counter_ns()
    for _ in range(operations):
        body()
    return (time.perf_counter_ns() - start) / operations


def main():
    rounds, operations = 5, 200
    run_true, run_capture = [], []
    for _ in range(rounds):
        run_true.append(ns_per_op(operations, lambda: subprocess.run(["true"])))
        run_capture.append(ns_per_op(
            operations, lambda: subprocess.run(["echo", "hello"], capture_output=True)))
    print(f"RESULT run_true python {statistics.median(run_true):.1f} ns/op")
    print(f"RESULT run_capture_echo python {statistics.median(run_capture):.1f} ns/op")


if __name__ == "__main__":
    main()
