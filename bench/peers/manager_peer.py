"""Python's multiprocessing.Manager (fork context): a dict set+get round
trip from a child process, and 4 processes incrementing a Value under a
manager Lock: the peer of bench/bench_manager.cpp."""
import os
import sys

# Run as a script, this directory comes first on sys.path, where other peers'
# files (subprocess.py) would shadow the standard library.
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != os.path.dirname(os.path.abspath(__file__))]

import multiprocessing as mp  # noqa: E402
import time  # noqa: E402

ROUNDS = 5
ROUND_TRIPS = 5_000
INCREMENTS_PER_PROCESS = 500
INCREMENTERS = 4


def round_trips(d, count):
    for i in range(count):
        d[i % 100] = i
        assert d[i % 100] == i


def increment(value, lock, count):
    for _ in range(count):
        with lock:
            value.value += 1


def dict_round_trip_ns(ctx, manager):
    d = manager.dict()
    start = time.perf_counter_ns()
    child = ctx.Process(target=round_trips, args=(d, ROUND_TRIPS))
    child.start()
    child.join()
    assert child.exitcode == 0
    return (time.perf_counter_ns() - start) / ROUND_TRIPS


def value_increment_ns(ctx, manager):
    value = manager.Value("i", 0)
    lock = manager.Lock()
    start = time.perf_counter_ns()
    children = [ctx.Process(target=increment, args=(value, lock, INCREMENTS_PER_PROCESS))
                for _ in range(INCREMENTERS)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    elapsed = time.perf_counter_ns() - start
    assert value.value == INCREMENTERS * INCREMENTS_PER_PROCESS
    return elapsed / (INCREMENTERS * INCREMENTS_PER_PROCESS)


def main():
    ctx = mp.get_context("fork")
    with ctx.Manager() as manager:
        for _ in range(ROUNDS):
            print(f"RESULT manager_dict_roundtrip python {dict_round_trip_ns(ctx, manager):.1f} ns/op", flush=True)
            print(f"RESULT manager_value_increment_4 python {value_increment_ns(ctx, manager):.1f} ns/op", flush=True)


if __name__ == "__main__":
    main()
