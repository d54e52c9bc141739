"""Python's multiprocessing.Queue (fork context): the peer of bench/bench_queue.cpp."""
import os
import sys

# Run as a script, this directory comes first on sys.path, where other peers'
# files (subprocess.py) would shadow the standard library.
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != os.path.dirname(os.path.abspath(__file__))]

import multiprocessing as mp  # noqa: E402
import time  # noqa: E402

ctx = mp.get_context("fork")


def produce(queue, item, count):
    for _ in range(count):
        queue.put(item)


def consume(queue, count):
    for _ in range(count):
        queue.get()


def run_shape(item, items, producers, consumers):
    """Seconds from the first start until every item was taken, as in bench_queue.cpp."""
    queue = ctx.Queue()
    start = time.perf_counter()
    processes = [ctx.Process(target=produce, args=(queue, item, items // producers)) for _ in range(producers)]
    processes += [ctx.Process(target=consume, args=(queue, items // consumers)) for _ in range(consumers - 1)]
    for process in processes:
        process.start()
    consume(queue, items // consumers)
    for process in processes:
        process.join()
    return time.perf_counter() - start


def report(workload, value, unit):
    print(f"RESULT {workload} python {value:.1f} {unit}", flush=True)


def main():
    run_shape(0, 20_000, 1, 1)
    ints, kib_items, mib_items, small_2x2 = 200_000, 20_000, 200, 200_000
    report("queue_int_1to1", run_shape(42, ints, 1, 1) * 1e9 / ints, "ns/op")
    report("queue_1kib_1to1", run_shape("k" * 1024, kib_items, 1, 1) * 1e9 / kib_items, "ns/op")
    report("queue_1mib_1to1", mib_items * 1.048576 / run_shape("m" * (1 << 20), mib_items, 1, 1), "MB/s")
    report("queue_int_2to2", run_shape(42, small_2x2, 2, 2) * 1e9 / small_2x2, "ns/op")


if __name__ == "__main__":
    main()
