"""Python's Pipe (fork context): the peer of bench/bench_connection.cpp."""
import multiprocessing as mp
import time

ROUND_TRIPS = 20_000


def echo(conn):
    for _ in range(ROUND_TRIPS):
        conn.send(conn.recv())


def main():
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=echo, args=(child,))
    process.start()
    child.close()
    start = time.perf_counter_ns()
    for i in range(ROUND_TRIPS):
        parent.send((i, 0.5))
        parent.recv()
    elapsed = time.perf_counter_ns() - start
    process.join()
    print(f"RESULT pipe_pingpong python {elapsed / ROUND_TRIPS:.1f} ns/op")


if __name__ == "__main__":
    main()
