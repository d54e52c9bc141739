"""Python's multiprocessing.Queue of a small tuple (fork context) and the C
pickle module on a 1,000-item dict: the peer of bench/bench_object.cpp."""
import os
import sys

# Run as a script, this directory comes first on sys.path, where other peers'
# files (subprocess.py) would shadow the standard library.
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != os.path.dirname(os.path.abspath(__file__))]

import multiprocessing as mp  # noqa: E402
import pickle  # noqa: E402
import time  # noqa: E402

ROUNDS = 5
TUPLE_ITEMS = 50_000
DICT_ROUND_TRIPS = 2_000


def produce(queue, item, count):
    for _ in range(count):
        queue.put(item)


def queue_tuple_ns(ctx, item):
    queue = ctx.Queue()
    start = time.perf_counter_ns()
    producer = ctx.Process(target=produce, args=(queue, item, TUPLE_ITEMS))
    producer.start()
    for _ in range(TUPLE_ITEMS):
        queue.get()
    producer.join()
    return (time.perf_counter_ns() - start) / TUPLE_ITEMS


def pickle_dict_ns(big):
    dumps, loads = pickle.dumps, pickle.loads
    start = time.perf_counter_ns()
    for _ in range(DICT_ROUND_TRIPS):
        assert len(loads(dumps(big))) == 1000
    return (time.perf_counter_ns() - start) / DICT_ROUND_TRIPS


def main():
    ctx = mp.get_context("fork")
    item = (1, "abc", 2.5)
    big = {"key%d" % i: i for i in range(1000)}
    for _ in range(ROUNDS):
        print(f"RESULT queue_object_tuple_1to1 python {queue_tuple_ns(ctx, item):.1f} ns/op", flush=True)
        print(f"RESULT pickle_dict_1000 python {pickle_dict_ns(big):.1f} ns/op", flush=True)


if __name__ == "__main__":
    main()
