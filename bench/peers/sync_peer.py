"""Python's multiprocessing.Lock and Value (fork context): the peer of bench/bench_sync.cpp."""
import multiprocessing as mp
import time

ROUNDS = 5
LOCK_OPERATIONS = 200_000
INCREMENTS_PER_PROCESS = 100_000


def ns_per_op(operations, body):
    start = time.perf_counter_ns()
    body()
    return (time.perf_counter_ns() - start) / operations


def lock_loop(lock):
    acquire, release = lock.acquire, lock.release
    for _ in range(LOCK_OPERATIONS):
        acquire()
        release()


def increment(value):
    for _ in range(INCREMENTS_PER_PROCESS):
        with value.get_lock():
            value.value += 1


def two_process_increments(ctx, value):
    children = [ctx.Process(target=increment, args=(value,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join()


def main():
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    value = ctx.Value("l", 0)
    for _ in range(ROUNDS):
        print(f"RESULT lock_uncontended python {ns_per_op(LOCK_OPERATIONS, lambda: lock_loop(lock)):.1f} ns/op",
              flush=True)
        per_op = ns_per_op(2 * INCREMENTS_PER_PROCESS, lambda: two_process_increments(ctx, value))
        print(f"RESULT value_increment_2proc python {per_op:.1f} ns/op", flush=True)
    assert value.value == ROUNDS * 2 * INCREMENTS_PER_PROCESS, value.value


if __name__ == "__main__":
    main()
