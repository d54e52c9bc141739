"""Python's Process (fork context) start+join of a no-op: the peer of bench/bench_process.cpp."""
import multiprocessing as mp
import time

ROUNDS = 5
OPERATIONS = 300


def noop():
    pass


def start_join(ctx):
    process = ctx.Process(target=noop)
    process.start()
    process.join()


def ns_per_op(ctx, count):
    start = time.perf_counter_ns()
    for _ in range(count):
        start_join(ctx)
    return (time.perf_counter_ns() - start) / count


def main():
    ctx = mp.get_context("fork")
    ns_per_op(ctx, 20)  # warm up, as bench_process.cpp does
    for _ in range(ROUNDS):
        print(f"RESULT process_start_join python {ns_per_op(ctx, OPERATIONS):.1f} ns/op", flush=True)


if __name__ == "__main__":
    main()
