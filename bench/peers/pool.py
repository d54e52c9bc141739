"""Python's Pool (fork context): the peer of bench/bench_pool.cpp."""
import multiprocessing as mp
import time


def square(x):
    return x * x


def ns_per_op(operations, body):
    start = time.perf_counter_ns()
    body()
    return (time.perf_counter_ns() - start) / operations


def main():
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        big = list(range(200_000))
        small = list(range(20_000))
        pool.map(square, small)
        print(f"RESULT pool_map_default python {ns_per_op(len(big), lambda: pool.map(square, big)):.1f} ns/op")
        print(f"RESULT pool_map_chunksize1 python {ns_per_op(len(small), lambda: pool.map(square, small, 1)):.1f} ns/op")
        calls = 2_000
        print(f"RESULT pool_apply_async_get python "
              f"{ns_per_op(calls, lambda: [pool.apply_async(square, (i,)).get() for i in range(calls)]):.1f} ns/op")


if __name__ == "__main__":
    main()
