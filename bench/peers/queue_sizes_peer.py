"""Python's multiprocessing.Queue (fork context) throughput against message size:
the peer of bench/bench_queue_sizes.cpp, with the same sizes and item counts."""
import multiprocessing as mp
import time

# (label, bytes, items): keep in step with bench/bench_queue_sizes.cpp.
SIZES = [("64", 64, 100_000), ("1k", 1024, 100_000), ("16k", 16 * 1024, 16_000),
         ("256k", 256 * 1024, 1_000), ("1m", 1024 * 1024, 256)]

ctx = mp.get_context("fork")


def produce(queue, message, items):
    for _ in range(items):
        queue.put(message)


def seconds_1to1(size, items):
    """Seconds from the producer's start until this process took every item."""
    queue = ctx.Queue()
    message = b"x" * size
    start = time.perf_counter()
    producer = ctx.Process(target=produce, args=(queue, message, items))
    producer.start()
    for _ in range(items):
        if len(queue.get()) != size:
            raise AssertionError("short message")
    producer.join()
    return time.perf_counter() - start


def main():
    seconds_1to1(SIZES[0][1], SIZES[0][2])  # warm up, as the C++ bench does
    for label, size, items in SIZES:
        mbps = size * items / 1e6 / seconds_1to1(size, items)
        print(f"RESULT queue_mbps_{label} python {mbps:.1f} MB/s", flush=True)


if __name__ == "__main__":
    main()
