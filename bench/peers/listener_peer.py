"""Python's Listener/Client round trip over loopback TCP: the peer of bench/bench_listener.cpp."""
import multiprocessing as mp
import time
from multiprocessing.connection import Client, Listener

ROUND_TRIPS = 20_000


def echo(address):
    with Client(address, authkey=b"bench") as conn:
        for _ in range(ROUND_TRIPS + 100):
            conn.send_bytes(conn.recv_bytes())


def main():
    with Listener(("127.0.0.1", 0), authkey=b"bench") as listener:
        child = mp.get_context("fork").Process(target=echo, args=(listener.address,))
        child.start()
        with listener.accept() as conn:
            for _ in range(100):
                conn.send_bytes(b"ping-ping-ping-ping")
                conn.recv_bytes()
            start = time.perf_counter_ns()
            for _ in range(ROUND_TRIPS):
                conn.send_bytes(b"ping-ping-ping-ping")
                conn.recv_bytes()
            elapsed = time.perf_counter_ns() - start
        child.join()
    print(f"RESULT tcp_roundtrip python {elapsed / ROUND_TRIPS:.1f} ns/op")


if __name__ == "__main__":
    main()
