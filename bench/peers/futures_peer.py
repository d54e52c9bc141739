"""Python's ProcessPoolExecutor (fork context): the peer of bench/bench_futures.cpp."""
import os
import sys

# The peer bench/peers/subprocess.py would shadow the standard module that
# concurrent.futures imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import multiprocessing as mp  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402


def square(x):
    return x * x


def ns_per_op(operations, body):
    start = time.perf_counter_ns()
    body()
    return (time.perf_counter_ns() - start) / operations


def main():
    with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as executor:
        items = list(range(200_000))
        list(executor.map(square, range(2_000)))
        calls = 2_000
        print(f"RESULT futures_submit_result python "
              f"{ns_per_op(calls, lambda: [executor.submit(square, i).result() for i in range(calls)]):.1f} ns/op")
        print(f"RESULT futures_map_200k python "
              f"{ns_per_op(len(items), lambda: sum(executor.map(square, items))):.1f} ns/op")
        print(f"RESULT futures_map_200k_chunksize1000 python "
              f"{ns_per_op(len(items), lambda: sum(executor.map(square, items, chunksize=1000))):.1f} ns/op")


if __name__ == "__main__":
    main()
